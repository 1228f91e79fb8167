// Socket helpers: netns cookie of a namespace file, and original destination of an accepted socket.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace smesh {

// Blocking. Reads SO_NETNS_COOKIE from a socket created inside the network namespace at `netns_path`,
// on a dedicated thread that setns()es and exits, so no other thread's namespace changes.
uint64_t NetnsCookie(const std::string& netns_path);

// Blocking. A TCP listening socket (family AF_INET: 127.0.0.1 port 0; AF_INET6: [::1] port 0, IPv6 only; close-on-exec,
// SO_REUSEADDR) created inside the network
// namespace at `netns_path`, on a dedicated thread as NetnsCookie does. The caller owns the returned fd.
int NetnsListener(const std::string& netns_path, int backlog, int family);

// A bpf_link attaching `prog_fd` (an sk_lookup program) to the network namespace at `netns_path`, pinned at
// `pin_path` so that it outlives the process. A pin that already holds a live sk_lookup link of that same
// namespace gets the program swapped in place (agent restart: no gap); a stale pin is replaced.
int AttachNetnsLookup(int prog_fd, const std::string& netns_path, const std::string& pin_path);

// Blocking. Makes `addr`/`prefix_len` (IPv4, network order) local on lo of the network namespace at `netns_path`
// (a route of type local in table local, tagged with smesh's route protocol), unless a route for that prefix is
// there already (e.g. the operator put the capture address on lo with that prefix).
void EnsureLocalRoute(const std::string& netns_path, const uint8_t addr[4], int prefix_len);
// Blocking. Removes that route if smesh added it (same protocol tag); absent is fine.
void RemoveLocalRoute(const std::string& netns_path, const uint8_t addr[4], int prefix_len);

// A TCP socket on `host` (IPv4 or IPv6 literal) : `port` in the calling process's network namespace with SO_REUSEADDR
// and SO_REUSEPORT set (close-on-exec, non-blocking), bound, and listening with `backlog` when backlog > 0 (0: bound
// only, a later listen() joins it to the port's reuseport group). Another process of the same uid can bind the same
// address meanwhile: a second agent pod's supervisor during a maxSurge rollout. The caller owns the returned fd.
int ReusePortSocket(const std::string& host, uint16_t port, int backlog);

struct OriginalDst {
  uint8_t addr[16];  // network order; IPv4 as v4-mapped
  uint16_t port;     // host order
  bool from_map;     // true: found by (peer, local) address lookup in the pinned smesh_conns_v2 map
};

// SO_ORIGINAL_DST (SOL_IP or SOL_IPV6 by the socket's family), answered by cgroup/getsockopt. If the
// kernel says ENOPROTOOPT/ENOENT and `conns_pin_path` is not empty, looks the connection (peer address, local
// address) up in that pinned map (smesh_conns_v2) instead. Returns nullopt when neither knows the connection.
std::optional<OriginalDst> OriginalDestination(int fd, const std::string& conns_pin_path);

}  // namespace smesh
