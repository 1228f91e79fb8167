# Image fragment: `make image` builds the smesh image (deploy/Dockerfile) with buildah — no Docker engine, no registry.
# Included by the top-level Makefile. Everything it makes lives under build/image/ (gitignored with build/):
#   build/image/base-<key>.tar   Debian bookworm root filesystem from mmdebstrap, reused while its inputs are unchanged
#   build/image/storage, run     buildah's image store (layers cached between builds) and run state
# Images (buildah's local store): $(BASE_IMAGE) from that tarball; $(NODE_IMAGE), this machine's Node.js (binary,
# headers, npm) laid out as the official node image; $(IMAGE), the smesh image. `buildah $(BUILDAH_STORE) images` lists
# them; `make image-clean` removes the store. Needs root (it installs buildah, runc and mmdebstrap if they are missing).

IMAGE_VERSION  := $(shell node -p "require('./package.json').version" 2>/dev/null || echo dev)
IMAGE          ?= localhost/smesh/agent:$(IMAGE_VERSION)
IMAGE_DIR      := build/image
BUILDAH_STORE  := --root $(CURDIR)/$(IMAGE_DIR)/storage --runroot $(CURDIR)/$(IMAGE_DIR)/run --storage-driver overlay
BUILDAH        := buildah $(BUILDAH_STORE)
# crun refuses hybrid cgroup hierarchies (as on this kind of machine); runc handles both.
IMAGE_RUNTIME  ?= runc
DEBIAN_SUITE   ?= bookworm
DEBIAN_MIRROR  ?= http://deb.debian.org/debian
DEBIAN_SECURITY ?= http://deb.debian.org/debian-security
BASE_PACKAGES  := ca-certificates
BASE_OPTS      := --variant=minbase --mode=root --format=tar --include=$(BASE_PACKAGES)
BASE_MIRRORS   := "deb $(DEBIAN_MIRROR) $(DEBIAN_SUITE) main" "deb $(DEBIAN_MIRROR) $(DEBIAN_SUITE)-updates main" \
                  "deb $(DEBIAN_SECURITY) $(DEBIAN_SUITE)-security main"
BASE_KEY       := $(shell echo '$(BASE_OPTS) $(DEBIAN_SUITE) $(BASE_MIRRORS)' | sha256sum | cut -c1-12)
BASE_TAR       := $(IMAGE_DIR)/base-$(DEBIAN_SUITE)-$(BASE_KEY).tar
BASE_IMAGE     := localhost/smesh/debian-base:$(DEBIAN_SUITE)-$(BASE_KEY)
HOST_NODE      := $(shell command -v node)
HOST_NODE_VERSION := $(shell node --version 2>/dev/null)
NODE_IMAGE     := localhost/smesh/node:$(HOST_NODE_VERSION)
# The npm registry's CA bundle as this machine's npm trusts it (a TLS-inspecting proxy's CA included).
NPM_CAFILE     := $(or $(filter-out null undefined,$(shell npm config get cafile 2>/dev/null)),/etc/ssl/certs/ca-certificates.crt)
IMAGE_PKGS     := buildah runc mmdebstrap uidmap

.PHONY: image image-deps image-base image-node image-clean image-name

# The image reference (tests compare it with deploy/*.yaml, which name it without the localhost/ prefix).
image-name:
	@echo $(IMAGE)

image: image-base image-node
	$(BUILDAH) build --layers --force-rm --runtime $(IMAGE_RUNTIME) --network host \
	  --build-arg BASE_IMAGE=$(BASE_IMAGE) --build-arg NODE_IMAGE=$(NODE_IMAGE) --secret id=npm-ca,src=$(NPM_CAFILE) \
	  -f deploy/Dockerfile -t $(IMAGE) .
	@echo "built $(IMAGE) (buildah $(BUILDAH_STORE) images)"

image-deps:
	@missing=""; for p in $(IMAGE_PKGS); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; fi

$(BASE_TAR): | image-deps
	@mkdir -p $(IMAGE_DIR)
	rm -f $(IMAGE_DIR)/base-*.tar
	mmdebstrap --quiet $(BASE_OPTS) $(DEBIAN_SUITE) $@.tmp.tar $(BASE_MIRRORS) && mv $@.tmp.tar $@

# The base image is re-imported when the tarball is new or the store lost it.
image-base: $(BASE_TAR)
	@if ! $(BUILDAH) inspect --type image $(BASE_IMAGE) >/dev/null 2>&1; then \
	  set -e; c=$$($(BUILDAH) from scratch); \
	  $(BUILDAH) add $$c $(BASE_TAR) / >/dev/null; \
	  $(BUILDAH) config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd /bin/bash $$c; \
	  $(BUILDAH) commit -q --rm $$c $(BASE_IMAGE) >/dev/null; echo "imported $(BASE_TAR) as $(BASE_IMAGE)"; fi

# This machine's Node.js (the node the repository is developed and tested with) as a scratch image in the official
# node image's layout; deploy/Dockerfile copies from it. Its npm and headers come from the same installation.
image-node: | image-deps
	@if ! $(BUILDAH) inspect --type image $(NODE_IMAGE) >/dev/null 2>&1; then \
	  set -e; npm_dir=$$(dirname "$$(readlink -f "$$(command -v npm)")")/..; \
	  node_inc=$$(npm config get nodedir)/include/node; \
	  test -f "$$node_inc/node_api.h" || { echo "node headers not found at $$node_inc" >&2; exit 1; }; \
	  c=$$($(BUILDAH) from scratch); \
	  $(BUILDAH) copy $$c $(HOST_NODE) /usr/local/bin/node >/dev/null; \
	  $(BUILDAH) copy $$c "$$node_inc" /usr/local/include/node >/dev/null; \
	  $(BUILDAH) copy $$c "$$npm_dir" /usr/local/lib/node_modules/npm >/dev/null; \
	  $(BUILDAH) commit -q --rm $$c $(NODE_IMAGE) >/dev/null; echo "made $(NODE_IMAGE) from $(HOST_NODE)"; fi

image-clean:
	-$(BUILDAH) rm --all >/dev/null 2>&1
	rm -rf $(IMAGE_DIR)
