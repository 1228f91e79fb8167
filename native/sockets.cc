// Socket helpers implementation: per-thread setns for netns cookies; SO_ORIGINAL_DST with map fallback; the local
// route of the capture tuples (netlink).
#include "sockets.h"

#include <bpf/bpf.h>
#include <errno.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
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

int ReusePortSocket(const std::string& host, uint16_t port, int backlog) {
  sockaddr_storage ss{};
  socklen_t len;
  const std::string where = (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
  if (inet_pton(AF_INET, host.c_str(), &reinterpret_cast<sockaddr_in*>(&ss)->sin_addr) == 1) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    len = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, host.c_str(), &reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr) == 1) {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    len = sizeof(sockaddr_in6);
  } else {
    throw NativeError("reusePortSocket: '" + host + "' is not an IPv4 or IPv6 address literal", EINVAL);
  }
  int sock = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (sock < 0) ThrowErrno("create a TCP socket for " + where, errno);
  try {
    int one = 1;
    if (setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0) ThrowErrno("set SO_REUSEADDR on " + where, errno);
    if (setsockopt(sock, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) ThrowErrno("set SO_REUSEPORT on " + where, errno);
    if (bind(sock, reinterpret_cast<sockaddr*>(&ss), len) != 0) ThrowErrno("bind " + where, errno);
    if (backlog > 0 && listen(sock, backlog) != 0) ThrowErrno("listen on " + where, errno);
  } catch (...) {
    close(sock);
    throw;
  }
  return sock;
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
      if (setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &reuse, sizeof(reuse)) != 0) ThrowErrno("set SO_REUSEADDR in netns " + netns_path, errno);
      int rc;
      if (v6) {
        // IPv6 only: the sk_lookup program hands it IPv6 connections; IPv4 ones go to the AF_INET listener.
        int one = 1;
        if (setsockopt(sock, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0) ThrowErrno("set IPV6_V6ONLY in netns " + netns_path, errno);
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
    const bool same = bpf_obj_get_info_by_fd(pinned, &info, &len) == 0 && info.type == BPF_LINK_TYPE_NETNS && info.netns.attach_type == BPF_SK_LOOKUP &&
                      info.netns.netns_ino == ns_stat.st_ino;
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

namespace {

// rtm_protocol of the routes smesh adds (RTPROT_* values below 5 are the kernel's; this one is unassigned).
constexpr unsigned char kSmeshRouteProtocol = 115;

struct RouteRequest {
  nlmsghdr header;
  rtmsg route;
  char attrs[64];
};

void AddAttr(RouteRequest& req, unsigned short type, const void* data, size_t len) {
  auto* rta = reinterpret_cast<rtattr*>(reinterpret_cast<char*>(&req) + NLMSG_ALIGN(req.header.nlmsg_len));
  rta->rta_type = type;
  rta->rta_len = static_cast<unsigned short>(RTA_LENGTH(len));
  std::memcpy(RTA_DATA(rta), data, len);
  req.header.nlmsg_len = NLMSG_ALIGN(req.header.nlmsg_len) + RTA_ALIGN(rta->rta_len);
}

// One RTM_NEWROUTE/RTM_DELROUTE on a local route for addr/prefix_len via lo; returns the kernel's errno (0 = done).
int RouteRequestInNetns(const std::string& netns_path, int type, int flags, const uint8_t addr[4], int prefix_len) {
  int result = 0;
  RunInNetns(netns_path, [&] {
    const unsigned lo = if_nametoindex("lo");
    if (lo == 0) ThrowErrno("find lo in netns " + netns_path, errno);
    int sock = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (sock < 0) ThrowErrno("open a netlink socket in netns " + netns_path, errno);
    RouteRequest req{};
    req.header.nlmsg_len = NLMSG_LENGTH(sizeof(rtmsg));
    req.header.nlmsg_type = static_cast<unsigned short>(type);
    req.header.nlmsg_flags = static_cast<unsigned short>(NLM_F_REQUEST | NLM_F_ACK | flags);
    req.header.nlmsg_seq = 1;
    req.route.rtm_family = AF_INET;
    req.route.rtm_dst_len = static_cast<unsigned char>(prefix_len);
    req.route.rtm_table = RT_TABLE_LOCAL;
    req.route.rtm_protocol = kSmeshRouteProtocol;
    req.route.rtm_scope = RT_SCOPE_HOST;
    req.route.rtm_type = RTN_LOCAL;
    uint8_t prefix[4];
    std::memcpy(prefix, addr, 4);
    const uint32_t mask = prefix_len == 0 ? 0 : htonl(~0u << (32 - prefix_len));
    uint32_t masked;
    std::memcpy(&masked, prefix, 4);
    masked &= mask;
    AddAttr(req, RTA_DST, &masked, 4);
    const uint32_t oif = lo;
    AddAttr(req, RTA_OIF, &oif, 4);
    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    if (sendto(sock, &req, req.header.nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof(kernel)) < 0) {
      int err = errno;
      close(sock);
      ThrowErrno("send a route request in netns " + netns_path, err);
    }
    char buf[1024];
    ssize_t n = recv(sock, buf, sizeof(buf), 0);
    int err = errno;
    close(sock);
    if (n < 0) ThrowErrno("read the route request's answer in netns " + netns_path, err);
    auto* answer = reinterpret_cast<nlmsghdr*>(buf);
    if (!NLMSG_OK(answer, static_cast<unsigned>(n)) || answer->nlmsg_type != NLMSG_ERROR)
      ThrowMessage("unexpected netlink answer to a route request in netns " + netns_path);
    result = -reinterpret_cast<nlmsgerr*>(NLMSG_DATA(answer))->error;
  });
  return result;
}

std::string PrefixText(const uint8_t addr[4], int prefix_len) {
  return std::to_string(addr[0]) + "." + std::to_string(addr[1]) + "." + std::to_string(addr[2]) + "." + std::to_string(addr[3]) + "/" +
         std::to_string(prefix_len);
}

}  // namespace

void EnsureLocalRoute(const std::string& netns_path, const uint8_t addr[4], int prefix_len) {
  int err = RouteRequestInNetns(netns_path, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, addr, prefix_len);
  if (err != 0 && err != EEXIST) ThrowErrno("add local route " + PrefixText(addr, prefix_len) + " dev lo in netns " + netns_path, err);
}

void RemoveLocalRoute(const std::string& netns_path, const uint8_t addr[4], int prefix_len) {
  int err = RouteRequestInNetns(netns_path, RTM_DELROUTE, 0, addr, prefix_len);
  if (err != 0 && err != ESRCH && err != ENOENT) ThrowErrno("remove local route " + PrefixText(addr, prefix_len) + " dev lo in netns " + netns_path, err);
}

std::optional<OriginalDst> OriginalDestination(int fd, const std::string& conns_pin_path) {
  sockaddr_storage local{};
  socklen_t len = sizeof(local);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) != 0) ThrowErrno("getsockname on fd " + std::to_string(fd), errno);
  if (local.ss_family != AF_INET && local.ss_family != AF_INET6) ThrowMessage("fd " + std::to_string(fd) + " is not an IPv4/IPv6 socket");

  OriginalDst result{};
  sockaddr_storage orig{};
  const bool v6 = local.ss_family == AF_INET6;
  len = v6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  if (getsockopt(fd, v6 ? SOL_IPV6 : SOL_IP, SMESH_SO_ORIGINAL_DST, &orig, &len) == 0) {
    ToMapped(orig, result.addr, &result.port);
    result.from_map = false;
    return result;
  }
  if (errno != ENOPROTOOPT && errno != ENOENT) ThrowErrno("getsockopt SO_ORIGINAL_DST on fd " + std::to_string(fd), errno);
  if (conns_pin_path.empty()) return std::nullopt;

  // Fallback: the getsockopt program is not in this socket's cgroup; ask the map directly, by (client end, capture tuple).
  sockaddr_storage peer{};
  len = sizeof(peer);
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) != 0) ThrowErrno("getpeername on fd " + std::to_string(fd), errno);
  smesh_flow_key key{};
  ToMapped(peer, reinterpret_cast<uint8_t*>(key.src), &key.sport);
  ToMapped(local, reinterpret_cast<uint8_t*>(key.dst), &key.dport);
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
