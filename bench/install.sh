#!/usr/bin/env bash
# Installs the Debian packages `make bench` needs: iperf3 (bulk), wrk (HTTP requests/s, new connections/s), sockperf (TCP ping-pong latency), gcc (the bench's tiny HTTP server), nginx with its stream module and haproxy (the mTLS tunnel peers), openssl (their certificates).
set -euo pipefail
if [[ $(id -u) -ne 0 ]]; then echo "run as root (apt-get)" >&2; exit 1; fi
need=()
for pair in iperf3:iperf3 wrk:wrk sockperf:sockperf gcc:gcc curl:curl ss:iproute2 openssl:openssl nginx:nginx haproxy:haproxy; do
  bin=${pair%%:*}; pkg=${pair#*:}
  command -v "$bin" >/dev/null 2>&1 || need+=("$pkg")
done
# libc6-dev: headers for bench/httpd.c (gcc alone does not pull them in on a minimal image).
command -v gcc >/dev/null 2>&1 && ! echo '#include <sys/epoll.h>' | gcc -E -x c - >/dev/null 2>&1 && need+=(libc6-dev)
# Debian builds nginx's stream module as a separate package (libnginx-mod-stream); bench/lib/peers.ts loads it.
[[ -e /usr/lib/nginx/modules/ngx_stream_module.so ]] || need+=(libnginx-mod-stream)
if [[ ${#need[@]} -eq 0 ]]; then echo "bench tools already installed"; exit 0; fi
export DEBIAN_FRONTEND=noninteractive
# The bench starts its own nginx/haproxy processes inside its namespaces: the packages' system services must not start
# (they would listen on the host's port 80). iperf3's debconf question "start a daemon?" defaults to no.
made_policy=
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
  printf '#!/bin/sh\n# temporary, bench/install.sh: no service starts during this install\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d; made_policy=1
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}"
# …nor start at the next boot.
if [[ -n $made_policy ]] && command -v systemctl >/dev/null 2>&1; then
  for unit in nginx haproxy; do systemctl disable "$unit" >/dev/null 2>&1 || true; done
fi
echo "installed: ${need[*]}"
