// The BPF ABI checked mechanically: every struct of bpf/shared/abi.h has the same size and member offsets in the BPF object (its BTF), in the addon's C++ (offsetof) and in the TypeScript packers (agent/native/abi.ts).
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { TS_PACKED_LAYOUTS } from '../../agent/native/abi';
import { loadRawNative } from '../../agent/native/raw';

const REPO = path.resolve(__dirname, '../..');
const BPF_OBJECT = path.join(REPO, 'build/native/gen/smesh.bpf.o');
const BPFTOOL = ['/usr/sbin/bpftool', '/sbin/bpftool', '/usr/bin/bpftool'].find((p) => fs.existsSync(p)) ?? 'bpftool';

interface Layout {
  size: number;
  members: Record<string, number>;
}

/** `smesh_*` structs of the object's BTF: size and member byte offsets (from `bpftool btf dump ... format raw`). */
function btfLayouts(object: string): Record<string, Layout> {
  const text = execFileSync(BPFTOOL, ['btf', 'dump', 'file', object, 'format', 'raw'], { encoding: 'utf8' });
  const out: Record<string, Layout> = {};
  let current: Layout | undefined;
  for (const line of text.split('\n')) {
    const head = /^\[\d+\] STRUCT '(smesh_[a-z0-9_]+)' size=(\d+) vlen=\d+/.exec(line);
    if (head) {
      current = { size: Number(head[2]), members: {} };
      out[head[1]!] = current;
      continue;
    }
    const member = /^\s+'([a-z0-9_]+)' type_id=\d+ bits_offset=(\d+)/.exec(line);
    if (member && current) {
      const bits = Number(member[2]);
      expect(bits % 8, `${line}: a bit field in an ABI struct`).toBe(0);
      current.members[member[1]!] = bits / 8;
      continue;
    }
    if (/^\[\d+\]/.test(line)) current = undefined;
  }
  return out;
}

describe('BPF ABI layouts (bpf/shared/abi.h)', () => {
  const cxx = loadRawNative().abiLayout();
  const btf = btfLayouts(BPF_OBJECT);

  it('the BPF object has BTF for the ABI structs', () => {
    expect(Object.keys(btf).length, `no smesh_* structs in ${BPF_OBJECT}`).toBeGreaterThanOrEqual(8);
  });

  it('every smesh_* struct of the BPF object is laid out the same by the addon (a new struct must be added to abiLayout)', () => {
    for (const [name, layout] of Object.entries(btf)) {
      expect(cxx[name], `struct ${name} is in the BPF object but not in native abiLayout()`).toBeDefined();
      expect(cxx[name], `struct ${name}: BPF (BTF) vs C++ (offsetof)`).toEqual(layout);
    }
  });

  it('every struct the addon checks is in the BPF object too', () => {
    for (const name of Object.keys(cxx)) expect(btf[name], `struct ${name} has no BTF in ${BPF_OBJECT}`).toBeDefined();
  });

  it('the TypeScript packers use the same layouts', () => {
    for (const [name, layout] of Object.entries(TS_PACKED_LAYOUTS)) {
      expect({ size: layout.size, members: { ...layout.members } }, `struct ${name}: TypeScript vs BPF`).toEqual(btf[name]);
    }
  });
});
