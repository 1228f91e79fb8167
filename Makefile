# smesh build: bpf objects → native addon → TypeScript. `make test` runs every test; `make demo` runs the mesh.
SHELL := /bin/bash
.DEFAULT_GOAL := build

include mk/datapath.mk
include mk/proto.mk
include mk/image.mk

.PHONY: setup build ts deps lint format test test-unit demo bench clean

# Debian packages (clang, libbpf-dev, bpftool, …) and bpffs; idempotent and quick once everything is present.
setup:
	bash scripts/install-deps.sh

deps: node_modules/.package-lock.json

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

ts: deps
	npx tsc -p tsconfig.json

build: setup deps
	$(MAKE) bpf native ts

# Every suite on the default data plane (the native HBONE engine), the e2e suites again on the JS fallback, and the
# native engine's tests under AddressSanitizer + UBSan. The supervisor suite (restarts under load) runs on the default
# data plane only: on the JS relay a SIGKILLed agent's in-flight connection may end with a FIN instead of a reset, and
# one in 500 was reset during the surge hand-over — its exact per-connection counts do not allow for that (README, Tests).
# test/e2e/faults.test.ts runs in both passes: all four faults on the default data plane (~2.3 min: a 30 s control-plane
# outage, the previous commit built in a git worktree under /tmp), only the link-down one on the JS relay (~25 s).
test: build lint
	npx vitest run
	SMESH_DATAPLANE=js npx vitest run test/e2e --exclude test/e2e/supervisor.test.ts
	$(MAKE) test-native-asan

# Formatting and lint of the TypeScript (biome.json: Biome's formatter and recommended rules, minus the house idioms it
# lists as off; `npx biome check --write agent control core cli test bench scripts` fixes what it can), and the type check of
# everything, tests and benches included (tsconfig.test.json, strict, no output).
# C/C++ under clang-format (native/.clang-format, bpf/.clang-format); bpf/vmlinux.h is generated and left alone.
CLANG_FORMAT_SOURCES = $(wildcard native/*.cc native/*.h bpf/*.c bpf/lib/*.h bpf/shared/*.h)

lint: deps
	npx biome ci agent control core cli test bench scripts
	npx tsc -p tsconfig.test.json
	@command -v clang-format >/dev/null || { echo "clang-format is missing: apt-get install clang-format (scripts/install-deps.sh)"; exit 1; }
	clang-format --dry-run --Werror $(CLANG_FORMAT_SOURCES)

# Rewrites the C/C++ sources in the house style (what `make lint` checks).
format:
	npx biome check --write agent control core cli test bench scripts
	clang-format -i $(CLANG_FORMAT_SOURCES)

# The unit suite needs no root and no addon: the TypeScript build (for the tests that run the built CLI), then every
# file in parallel without per-file module isolation (unit tests keep no global state between files; ~50 s on 2
# cores instead of ~100 s one file at a time, each loading the same module graph again).
test-unit: ts
	npx vitest run test/unit --fileParallelism --no-isolate

demo: build
	npx tsx scripts/demo.ts

bench: build
	bash bench/install.sh
	npx tsx bench/run.ts
	npx tsx bench/noisy-neighbour.ts

clean:
	rm -rf dist build bpf/.output
