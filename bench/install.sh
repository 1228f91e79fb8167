#!/usr/bin/env bash
# Installs the Debian packages `make bench` needs: iperf3 (bulk), wrk (HTTP requests/s, new connections/s), sockperf (TCP ping-pong latency), gcc (the bench's tiny HTTP server).
set -euo pipefail
if [[ $(id -u) -ne 0 ]]; then echo "run as root (apt-get)" >&2; exit 1; fi
need=()
for pair in iperf3:iperf3 wrk:wrk sockperf:sockperf gcc:gcc curl:curl ss:iproute2; do
  bin=${pair%%:*}; pkg=${pair#*:}
  command -v "$bin" >/dev/null 2>&1 || need+=("$pkg")
done
# libc6-dev: headers for bench/httpd.c (gcc alone does not pull them in on a minimal image).
command -v gcc >/dev/null 2>&1 && ! echo '#include <sys/epoll.h>' | gcc -E -x c - >/dev/null 2>&1 && need+=(libc6-dev)
if [[ ${#need[@]} -eq 0 ]]; then echo "bench tools already installed"; exit 0; fi
export DEBIAN_FRONTEND=noninteractive
# iperf3's debconf question "start a daemon?" defaults to no: nothing is left listening on the host.
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}"
echo "installed: ${need[*]}"
