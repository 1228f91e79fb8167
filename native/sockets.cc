// Socket helpers implementation: per-thread setns for netns cookies; SO_ORIGINAL_DST with map fallback.
#include "sockets.h"

#include <bpf/bpf.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <exception>
#include <thread>

#include "abi.h"
#include "errors.h"
#include "maps.h"

namespace smesh {

namespace {

void ToMapped(const sockaddr_storage& ss, uint8_t out[16], uint16_t* port) {
  if (ss.ss_family == AF_INET) {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(&ss);
    std::memset(out, 0, 10);
    out[10] = 0xff;
    out[11] = 0xff;
    std::memcpy(out + 12, &sin->sin_addr, 4);
    *port = ntohs(sin->sin_port);
  } else {
    const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    std::memcpy(out, &sin6->sin6_addr, 16);
    *port = ntohs(sin6->sin6_port);
  }
}

}  // namespace

// Runs `fn` on a dedicated thread that first enters the network namespace at `netns_path`. setns(CLONE_NEWNET)
// changes only the calling thread, and this one ends right after, so neither the main thread nor the libuv pool
// ever runs in a pod's namespace. Exceptions from `fn` (or from entering) are rethrown on the caller's thread.
template <typename Fn>
void RunInNetns(const std::string& netns_path, Fn fn) {
  std::exception_ptr failure;
  std::thread worker([&] {
    try {
      int ns_fd = open(netns_path.c_str(), O_RDONLY | O_CLOEXEC);
      if (ns_fd < 0) ThrowErrno("open netns " + netns_path, errno);
      if (setns(ns_fd, CLONE_NEWNET) != 0) {
        int err = errno;
        close(ns_fd);
        ThrowErrno("setns into " + netns_path + " (is it a network namespace file?)", err);
      }
      close(ns_fd);
      fn();
    } catch (...) {
      failure = std::current_exception();
    }
  });
  worker.join();
  if (failure) std::rethrow_exception(failure);
}

uint64_t NetnsCookie(const std::string& netns_path) {
  uint64_t cookie = 0;
  RunInNetns(netns_path, [&] {
    int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0) ThrowErrno("create socket in netns " + netns_path, errno);
    socklen_t len = sizeof(cookie);
    int rc = getsockopt(sock, SOL_SOCKET, SMESH_SO_NETNS_COOKIE, &cookie, &len);
    int err = errno;
    close(sock);
    if (rc != 0) ThrowErrno("read SO_NETNS_COOKIE in netns " + netns_path, err);
  });
  return cookie;
}

int NetnsListener(const std::string& netns_path, int backlog, int family) {
  int result = -1;
  RunInNetns(netns_path, [&] {
    const bool v6 = family == AF_INET6;
    int sock = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (sock < 0) ThrowErrno("create listening socket in netns " + netns_path, errno);
    try {
      // Accepted sockets carry the pod's address and port (sk_lookup) and inherit this flag: without it a captured
      // connection still open or closing would make the app's own bind() of its port fail with EADDRINUSE.
      int reuse = 1;
      if (setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &reuse, sizeof(reuse)) != 0)
        ThrowErrno("set SO_REUSEADDR in netns " + netns_path, errno);
      int rc;
      if (v6) {
        // IPv6 only: the sk_lookup program hands it IPv6 connections; IPv4 ones go to the AF_INET listener.
        int one = 1;
        if (setsockopt(sock, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0)
          ThrowErrno("set IPV6_V6ONLY in netns " + netns_path, errno);
        sockaddr_in6 addr{};
        addr.sin6_family = AF_INET6;
        addr.sin6_addr = in6addr_loopback;
        rc = bind(sock, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
        if (rc != 0) ThrowErrno("bind [::1]:0 in netns " + netns_path + " (is its loopback up, IPv6 enabled?)", errno);
      } else {
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr.sin_port = 0;
        rc = bind(sock, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
        if (rc != 0) ThrowErrno("bind 127.0.0.1:0 in netns " + netns_path + " (is its loopback up?)", errno);
      }
      if (listen(sock, backlog) != 0) ThrowErrno("listen in netns " + netns_path, errno);
    } catch (...) {
      close(sock);
      throw;
    }
    result = sock;
  });
  return result;
}

int AttachNetnsLookup(int prog_fd, const std::string& netns_path, const std::string& pin_path) {
  struct stat ns_stat {};
  if (stat(netns_path.c_str(), &ns_stat) != 0) ThrowErrno("stat netns " + netns_path, errno);
  int pinned = bpf_obj_get(pin_path.c_str());
  if (pinned < 0 && errno != ENOENT) ThrowErrno("open pinned link " + pin_path, errno);
  if (pinned >= 0) {
    bpf_link_info info{};
    uint32_t len = sizeof(info);
    const bool same = bpf_obj_get_info_by_fd(pinned, &info, &len) == 0 && info.type == BPF_LINK_TYPE_NETNS &&
                      info.netns.attach_type == BPF_SK_LOOKUP && info.netns.netns_ino == ns_stat.st_ino;
    if (same && bpf_link_update(pinned, prog_fd, nullptr) == 0) return pinned;
    // Another namespace's (or a detached) link under this name: retire it.
    bpf_link_detach(pinned);
    close(pinned);
    if (unlink(pin_path.c_str()) != 0 && errno != ENOENT) ThrowErrno("remove stale link pin " + pin_path, errno);
  }
  int ns_fd = open(netns_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (ns_fd < 0) ThrowErrno("open netns " + netns_path, errno);
  int link = bpf_link_create(prog_fd, ns_fd, BPF_SK_LOOKUP, nullptr);
  int err = errno;
  close(ns_fd);
  if (link < 0) ThrowErrno("attach sk_lookup to netns " + netns_path, err);
  if (bpf_obj_pin(link, pin_path.c_str()) != 0) {
    err = errno;
    bpf_link_detach(link);
    close(link);
    ThrowErrno("pin sk_lookup link at " + pin_path, err);
  }
  return link;
}

std::optional<OriginalDst> OriginalDestination(int fd, const std::string& conns_pin_path) {
  sockaddr_storage local{};
  socklen_t len = sizeof(local);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) != 0)
    ThrowErrno("getsockname on fd " + std::to_string(fd), errno);
  if (local.ss_family != AF_INET && local.ss_family != AF_INET6)
    ThrowMessage("fd " + std::to_string(fd) + " is not an IPv4/IPv6 socket");

  OriginalDst result{};
  sockaddr_storage orig{};
  const bool v6 = local.ss_family == AF_INET6;
  len = v6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  if (getsockopt(fd, v6 ? SOL_IPV6 : SOL_IP, SMESH_SO_ORIGINAL_DST, &orig, &len) == 0) {
    ToMapped(orig, result.addr, &result.port);
    result.from_map = false;
    return result;
  }
  if (errno != ENOPROTOOPT && errno != ENOENT)
    ThrowErrno("getsockopt SO_ORIGINAL_DST on fd " + std::to_string(fd), errno);
  if (conns_pin_path.empty()) return std::nullopt;

  // Fallback: the getsockopt program is not in this socket's cgroup; ask the map directly.
  sockaddr_storage peer{};
  len = sizeof(peer);
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) != 0)
    ThrowErrno("getpeername on fd " + std::to_string(fd), errno);
  smesh_addr_port key{};
  uint16_t port = 0;
  ToMapped(peer, reinterpret_cast<uint8_t*>(key.addr), &port);
  key.port = port;
  int map_fd = bpf_obj_get(conns_pin_path.c_str());
  if (map_fd < 0) ThrowErrno("open pinned map " + conns_pin_path, errno);
  smesh_orig_dst value{};
  bool found = false;
  try {
    found = ConnLookup(map_fd, key, &value);
  } catch (...) {
    close(map_fd);
    throw;
  }
  close(map_fd);
  if (!found) return std::nullopt;
  std::memcpy(result.addr, value.addr, 16);
  result.port = value.port;
  result.from_map = true;
  return result;
}

}  // namespace smesh
