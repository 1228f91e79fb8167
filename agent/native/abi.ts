// Layouts of the bpf/shared/abi.h structs that TypeScript packs itself (byte offsets and sizes); test/native/abi-layout.test.ts checks them against the BPF object's BTF and the addon's C++ layout.

/** struct smesh_addr_port: 16-byte address (network order, v4-mapped), u16 port in host order, u16 pad. */
export const ADDR_PORT = { size: 20, members: { addr: 0, port: 16, pad: 18 } } as const;

/** The structs above by their C name, for the layout test. */
export const TS_PACKED_LAYOUTS: Readonly<Record<string, { readonly size: number; readonly members: Readonly<Record<string, number>> }>> = {
  smesh_addr_port: ADDR_PORT,
};
