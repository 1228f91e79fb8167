# Datapath build fragment (BPF object, libbpf skeleton, native addon). Included by the top-level
# Makefile; also usable alone: `make -f mk/datapath.mk bpf native`.
#   bpf      the BPF object and its libbpf skeleton, build/native/gen/smesh.bpf.o and smesh.skel.h: one rule, in
#            native/CMakeLists.txt (the addon embeds the skeleton), so `bpf` builds the addon
#   native   build build/native/Release/smesh_native.node (cmake-js; compiles the BPF object first)
#   vmlinux  regenerate the committed bpf/vmlinux.h from the running kernel's BTF
#   native-asan       the addon built with -fsanitize=address,undefined into build/native-asan
#   test-native-asan  the native HBONE and HTTP/1.1 engine tests against that build (libasan preloaded into node)
# Paths are relative to the repository root (run make from there).

BPFTOOL     ?= bpftool
CMAKE_JS    ?= npx --no-install cmake-js
VMLINUX_BTF ?= /sys/kernel/btf/vmlinux
BPF_SRC     := bpf/smesh.bpf.c
BPF_DEPS    := $(BPF_SRC) bpf/vmlinux.h $(wildcard bpf/lib/*.h) $(wildcard bpf/shared/*.h)
BPF_OBJ     := build/native/gen/smesh.bpf.o
NATIVE_NODE := build/native/Release/smesh_native.node
NATIVE_DEPS := $(wildcard native/*.cc native/*.h) native/CMakeLists.txt $(BPF_DEPS)

.PHONY: bpf native vmlinux clean-datapath native-asan test-native-asan

bpf: native

native: $(NATIVE_NODE)

$(NATIVE_NODE): $(NATIVE_DEPS)
	$(CMAKE_JS) compile -d native -O build/native

NATIVE_ASAN_NODE := build/native-asan/Release/smesh_native.node
ASAN_TESTS       ?= test/native/hbone-engine.test.ts test/native/http1-engine.test.ts test/native/http1-inbound.test.ts test/native/hbone-qos.test.ts

native-asan: $(NATIVE_ASAN_NODE)

$(NATIVE_ASAN_NODE): $(NATIVE_DEPS)
	$(CMAKE_JS) compile -d native -O build/native-asan --CDSMESH_ASAN=ON

# node is not instrumented: libasan must be the first library loaded. Leak checking is off (node's own allocations at
# exit would drown ours); every other ASan/UBSan finding aborts the test process.
test-native-asan: $(NATIVE_ASAN_NODE)
	LD_PRELOAD="$$($(CC) -print-file-name=libasan.so)" \
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:halt_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	SMESH_NATIVE_ADDON=$(NATIVE_ASAN_NODE) npx vitest run $(ASAN_TESTS)

vmlinux:
	$(BPFTOOL) btf dump file $(VMLINUX_BTF) format c > bpf/vmlinux.h.tmp && mv bpf/vmlinux.h.tmp bpf/vmlinux.h

clean-datapath:
	rm -rf build/native build/native-asan
