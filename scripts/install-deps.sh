#!/usr/bin/env bash
# Installs the Debian packages smesh builds and tests with (idempotent; skips apt when everything is present) and mounts bpffs.
set -euo pipefail
PKGS=(clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev pkg-config iproute2 util-linux cmake make g++ curl openssl ca-certificates python3 python3-h2 iperf3 libnghttp2-dev clang-format)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if ! command -v node >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm
fi
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
