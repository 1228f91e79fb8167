# Wire-contract fragment: regenerates the committed TypeScript types in proto/generated/ from the
# .proto files under proto/. Included by the top-level Makefile; also usable alone:
#   make -f mk/proto.mk proto
# Run it after editing any .proto file, then commit proto/generated/ with the change
# (`make proto-check` fails if the committed types are stale).
# The flags must match the load options in proto/index.ts (MESH_PROTO_OPTIONS): camelCase field
# names (no --keepCase), 64-bit integers as numbers, enums as strings, defaults and oneof
# discriminators filled in. Paths are relative to the repository root (run make from there).

PROTO_GEN_TYPES ?= npx --no-install proto-loader-gen-types
PROTO_DIR       := proto
PROTO_OUT_DIR   := proto/generated
# One entry file that imports all the others (relative to PROTO_DIR); it yields one root type
# file, proto/generated/mesh.ts, plus one file per message/enum/service under its package path.
PROTO_FILES     := smesh/mesh.proto
PROTO_GEN_FLAGS := --longs=Number --enums=String --defaults --oneofs --includeComments \
                   --grpcLib=@grpc/grpc-js

.PHONY: proto proto-check

proto:
	rm -rf $(PROTO_OUT_DIR)
	$(PROTO_GEN_TYPES) $(PROTO_GEN_FLAGS) -I $(PROTO_DIR) -O $(PROTO_OUT_DIR) $(PROTO_FILES)

# Regenerates into a scratch directory and compares with the committed types.
proto-check:
	@tmp=$$(mktemp -d) && \
	$(PROTO_GEN_TYPES) $(PROTO_GEN_FLAGS) -I $(PROTO_DIR) -O $$tmp $(PROTO_FILES) && \
	diff -r $$tmp $(PROTO_OUT_DIR) >/dev/null; rc=$$?; rm -rf $$tmp; \
	if [ $$rc -ne 0 ]; then echo "proto/generated is stale: run 'make proto' and commit it" >&2; exit 1; fi
