// BPF loader implementation on libbpf 1.1: skeleton phases, pinned maps, cgroup links via
// bpf_link_create (never legacy BPF_PROG_ATTACH), in-place program swap with bpf_link_update.
#include "loader.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <dirent.h>
#include <ifaddrs.h>
#include <linux/netlink.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdarg>
#include <algorithm>
#include <cstring>
#include <exception>
#include <mutex>
#include <thread>

#include "errors.h"
#include "maps.h"
#include "smesh.skel.h"
#include "sockets.h"

namespace smesh {

namespace {

struct ProgramSpec {
  const char* name;  // link pin name
  bpf_program* (*program)(struct smesh_bpf*);
  bpf_attach_type attach_type;
};

const ProgramSpec kPrograms[] = {
    {"connect4", [](struct smesh_bpf* s) { return s->progs.smesh_connect4; }, BPF_CGROUP_INET4_CONNECT},
    {"connect6", [](struct smesh_bpf* s) { return s->progs.smesh_connect6; }, BPF_CGROUP_INET6_CONNECT},
    {"sockops", [](struct smesh_bpf* s) { return s->progs.smesh_sockops; }, BPF_CGROUP_SOCK_OPS},
    {"getsockopt", [](struct smesh_bpf* s) { return s->progs.smesh_getsockopt; }, BPF_CGROUP_GETSOCKOPT},
    {"getpeername4", [](struct smesh_bpf* s) { return s->progs.smesh_getpeername4; }, BPF_CGROUP_INET4_GETPEERNAME},
    {"getpeername6", [](struct smesh_bpf* s) { return s->progs.smesh_getpeername6; }, BPF_CGROUP_INET6_GETPEERNAME},
    {"strict_ingress", [](struct smesh_bpf* s) { return s->progs.smesh_strict_ingress; }, BPF_CGROUP_INET_INGRESS},
};
constexpr size_t kProgramCount = sizeof(kPrograms) / sizeof(kPrograms[0]);
// The node-netns sk_lookup link of the capture tuples (a netns link, not a cgroup one).
constexpr const char* kCaptureLookupLink = "capture-lookup";

// libbpf warnings (verifier log, pin mismatches) of the current thread, attached to load errors.
thread_local std::string t_libbpf_log;
std::once_flag g_print_once;

int CollectLibbpfLog(enum libbpf_print_level level, const char* format, va_list args) {
  if (level == LIBBPF_DEBUG) return 0;
  va_list copy;
  va_copy(copy, args);
  int n = vsnprintf(nullptr, 0, format, copy);
  va_end(copy);
  if (n > 0) {
    std::string line(static_cast<size_t>(n) + 1, '\0');
    vsnprintf(line.data(), line.size(), format, args);
    line.resize(static_cast<size_t>(n));
    t_libbpf_log += line;
    if (t_libbpf_log.size() > 65536) t_libbpf_log.erase(0, t_libbpf_log.size() - 65536);
  }
  return 0;
}

std::string LogTail() {
  if (t_libbpf_log.empty()) return "";
  std::string tail = t_libbpf_log.size() > 2000 ? t_libbpf_log.substr(t_libbpf_log.size() - 2000) : t_libbpf_log;
  while (!tail.empty() && tail.back() == '\n') tail.pop_back();
  return " (libbpf: " + tail + ")";
}

void MkdirP(const std::string& path) {
  std::string partial;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    partial = path.substr(0, pos);
    if (partial.empty()) continue;
    if (mkdir(partial.c_str(), 0700) != 0 && errno != EEXIST) ThrowErrno("create directory " + partial, errno);
  }
}

uint64_t CgroupId(const std::string& path) {
  alignas(struct file_handle) char buf[sizeof(struct file_handle) + sizeof(uint64_t)] = {};
  auto* handle = reinterpret_cast<struct file_handle*>(buf);
  int mount_id = 0;
  handle->handle_bytes = sizeof(uint64_t);
  if (name_to_handle_at(AT_FDCWD, path.c_str(), handle, &mount_id, 0) != 0) ThrowErrno("read cgroup id of " + path, errno);
  uint64_t id = 0;
  std::memcpy(&id, handle->f_handle, sizeof(id));
  return id;
}

void CloseFd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

}  // namespace

std::string MapPinPath(const std::string& bpffs_dir, const char* map_name) { return bpffs_dir + "/maps/" + map_name; }

std::string LinkPinPath(const std::string& bpffs_dir, const char* link_name) { return bpffs_dir + "/links/" + link_name; }

std::unique_ptr<Datapath> Datapath::Open(const LoaderOptions& options) {
  std::call_once(g_print_once, [] { libbpf_set_print(CollectLibbpfLog); });
  t_libbpf_log.clear();

  std::unique_ptr<Datapath> dp(new Datapath());
  dp->bpffs_dir_ = options.bpffs_dir;
  while (dp->bpffs_dir_.size() > 1 && dp->bpffs_dir_.back() == '/') dp->bpffs_dir_.pop_back();
  const std::string& dir = dp->bpffs_dir_;

  try {
    // Preconditions, checked before anything is loaded so errors name the bad input.
    dp->cgroup_fd_ = open(options.cgroup_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dp->cgroup_fd_ < 0) ThrowErrno("open cgroup " + options.cgroup_path, errno);
    struct statfs fs {};
    if (fstatfs(dp->cgroup_fd_, &fs) != 0) ThrowErrno("statfs cgroup " + options.cgroup_path, errno);
    if (fs.f_type != CGROUP2_SUPER_MAGIC) ThrowMessage("cgroup " + options.cgroup_path + " is not on a cgroup2 filesystem");
    const uint64_t cgroup_id = CgroupId(options.cgroup_path);

    MkdirP(dir + "/maps");
    MkdirP(dir + "/links");
    if (statfs(dir.c_str(), &fs) != 0) ThrowErrno("statfs bpffs dir " + dir, errno);
    if (fs.f_type != BPF_FS_MAGIC) ThrowMessage("bpffs dir " + dir + " is not on a bpf filesystem (mount -t bpf bpf /sys/fs/bpf)");

    // Phase 1: open.
    dp->skel_ = smesh_bpf__open();
    if (!dp->skel_) ThrowErrno("open BPF skeleton" + LogTail(), errno);

    // Phase 2: configure read-only data.
    auto* ro = dp->skel_->rodata;
    std::memcpy(&ro->smesh_capture_ip4, options.capture_ip4, 4);
    ro->smesh_capture_port = options.capture_port;
    if (options.capture_spread < 1 || options.capture_spread > SMESH_MAX_CAPTURE_SPREAD)
      ThrowMessage("capture spread " + std::to_string(options.capture_spread) + " is outside 1.." + std::to_string(SMESH_MAX_CAPTURE_SPREAD));
    if (options.capture_spread > 1 && options.capture_netns_path.empty())
      ThrowMessage("capture spread " + std::to_string(options.capture_spread) + " needs the capture network namespace (where the outbound listener is)");
    if (options.capture_ip4[3] + options.capture_spread - 1 > 254)
      ThrowMessage("capture spread " + std::to_string(options.capture_spread) + " from capture address ." + std::to_string(options.capture_ip4[3]) +
                   " leaves its /24 (last address must be .254 or lower)");
    ro->smesh_capture_spread = options.capture_spread;
    std::memcpy(dp->capture_ip4_, options.capture_ip4, 4);
    if (options.has_capture_ip6) {
      std::memcpy(ro->smesh_capture_ip6, options.capture_ip6, 16);
      ro->smesh_capture_ip6_enabled = 1;
    }

    // Phase 3: pin paths; libbpf reuses a compatible pinned map and pins new ones at load.
    bpf_map* map;
    bpf_object__for_each_map(map, dp->skel_->obj) {
      if (bpf_map__is_internal(map)) continue;
      const std::string pin = MapPinPath(dir, bpf_map__name(map));
      int err = bpf_map__set_pin_path(map, pin.c_str());
      if (err) ThrowErrno("set pin path " + pin, err);
    }

    // Phase 4: load.
    int err = smesh_bpf__load(dp->skel_);
    if (err) ThrowErrno("load BPF programs (maps pinned under " + dir + "/maps)" + LogTail(), err);

    // Phase 5: fill maps.
    for (const auto& pod : options.pods) PodPut(dp->pods_fd(), pod.first, pod.second);
    for (const auto& dest : options.dests) DestPut(dp->dests_fd(), dest);

    // Phase 6: attach, swapping programs into pinned links where they exist.
    // Phase 7: pin newly created links.
    dp->link_fds_.assign(kProgramCount, -1);
    dp->link_created_.assign(kProgramCount, false);
    for (size_t i = 0; i < kProgramCount; i++) {
      const ProgramSpec& spec = kPrograms[i];
      const std::string pin = LinkPinPath(dir, spec.name);
      const int prog_fd = bpf_program__fd(spec.program(dp->skel_));
      int& link_fd = dp->link_fds_[i];

      link_fd = bpf_obj_get(pin.c_str());
      if (link_fd < 0 && errno != ENOENT) ThrowErrno("open pinned link " + pin, errno);
      if (link_fd >= 0) {
        bpf_link_info info{};
        uint32_t len = sizeof(info);
        if (bpf_obj_get_info_by_fd(link_fd, &info, &len) != 0) ThrowErrno("inspect pinned link " + pin, errno);
        const bool same_target = info.type == BPF_LINK_TYPE_CGROUP && info.cgroup.cgroup_id == cgroup_id && info.cgroup.attach_type == spec.attach_type;
        if (same_target) {
          if (bpf_link_update(link_fd, prog_fd, nullptr) != 0) ThrowErrno(std::string("replace program of pinned link ") + pin, errno);
          dp->attach_.reused = true;
          dp->attach_.links.push_back(pin);
          continue;
        }
        // A pin of ours pointing elsewhere (another cgroup, or a cgroup that was removed): retire it.
        bpf_link_detach(link_fd);
        CloseFd(link_fd);
        if (unlink(pin.c_str()) != 0 && errno != ENOENT) ThrowErrno("remove stale link pin " + pin, errno);
      }

      link_fd = bpf_link_create(prog_fd, dp->cgroup_fd_, spec.attach_type, nullptr);
      if (link_fd < 0) ThrowErrno(std::string("attach ") + spec.name + " to " + options.cgroup_path, errno);
      dp->link_created_[i] = true;
      if (bpf_obj_pin(link_fd, pin.c_str()) != 0) ThrowErrno(std::string("pin link ") + spec.name + " at " + pin, errno);
      dp->attach_.links.push_back(pin);
    }

    // Capture tuples: the capture /24 made local in the listener's namespace, and the sk_lookup program that steers
    // every tuple into the one listener attached there (pinned link, program swapped in place on restart).
    const std::string capture_pin = LinkPinPath(dir, kCaptureLookupLink);
    if (!options.capture_netns_path.empty()) {
      dp->capture_netns_path_ = options.capture_netns_path;
      if (options.capture_spread > 1) EnsureLocalRoute(options.capture_netns_path, options.capture_ip4, 24);
      dp->capture_link_fd_ = AttachNetnsLookup(bpf_program__fd(dp->skel_->progs.smesh_capture_lookup), options.capture_netns_path, capture_pin);
      dp->attach_.links.push_back(capture_pin);
    } else {
      // No capture namespace: a steering link an earlier agent pinned is retired.
      int stale = bpf_obj_get(capture_pin.c_str());
      if (stale >= 0) {
        bpf_link_detach(stale);
        close(stale);
      }
      if (unlink(capture_pin.c_str()) != 0 && errno != ENOENT) ThrowErrno("remove link pin " + capture_pin, errno);
    }
  } catch (...) {
    dp->Teardown(/*drop_created_links=*/true);
    throw;
  }
  return dp;
}

Datapath::~Datapath() { Teardown(false); }

int Datapath::pods_fd() const {
  if (!skel_) ThrowMessage("datapath is closed");
  return bpf_map__fd(skel_->maps.smesh_pods);
}

int Datapath::dests_fd() const {
  if (!skel_) ThrowMessage("datapath is closed");
  return bpf_map__fd(skel_->maps.smesh_dests);
}

int Datapath::deny_fd() const {
  if (!skel_) ThrowMessage("datapath is closed");
  return bpf_map__fd(skel_->maps.smesh_deny);
}

int Datapath::strict_fd() const {
  if (!skel_) ThrowMessage("datapath is closed");
  return bpf_map__fd(skel_->maps.smesh_strict);
}

int Datapath::strict_stats_fd() const {
  if (!skel_) ThrowMessage("datapath is closed");
  return bpf_map__fd(skel_->maps.smesh_strict_stats);
}

int Datapath::deny_stats_fd() const {
  if (!skel_) ThrowMessage("datapath is closed");
  return bpf_map__fd(skel_->maps.smesh_deny_stats);
}

int Datapath::strict_drop_stats_fd() const {
  if (!skel_) ThrowMessage("datapath is closed");
  return bpf_map__fd(skel_->maps.smesh_strict_drop_stats);
}

int Datapath::inpod_listeners_fd() const {
  if (!skel_) ThrowMessage("datapath is closed");
  return bpf_map__fd(skel_->maps.smesh_inpod_listeners);
}

int Datapath::inpod_pods_fd() const {
  if (!skel_) ThrowMessage("datapath is closed");
  return bpf_map__fd(skel_->maps.smesh_inpod_pods);
}

int Datapath::inpod_stats_fd() const {
  if (!skel_) ThrowMessage("datapath is closed");
  return bpf_map__fd(skel_->maps.smesh_inpod_stats);
}

int Datapath::capture_listener_fd() const {
  if (!skel_) ThrowMessage("datapath is closed");
  return bpf_map__fd(skel_->maps.smesh_capture_listener);
}

int Datapath::program_fd(const std::string& name) const {
  if (!skel_) ThrowMessage("datapath is closed");
  struct bpf_program* prog = bpf_object__find_program_by_name(skel_->obj, name.c_str());
  if (!prog) ThrowMessage("no BPF program named " + name);
  return bpf_program__fd(prog);
}

int Datapath::inpod_lookup_prog_fd() const {
  if (!skel_) ThrowMessage("datapath is closed");
  return bpf_program__fd(skel_->progs.smesh_inbound_lookup);
}

int Datapath::bandwidth_fd() const {
  if (!skel_) ThrowMessage("datapath is closed");
  return bpf_map__fd(skel_->maps.smesh_bandwidth);
}

int Datapath::bandwidth_prog_fd(uint32_t direction) const {
  if (!skel_) ThrowMessage("datapath is closed");
  if (direction == SMESH_BW_EGRESS) return bpf_program__fd(skel_->progs.smesh_bandwidth_egress);
  if (direction == SMESH_BW_INGRESS) return bpf_program__fd(skel_->progs.smesh_bandwidth_ingress);
  ThrowMessage("bandwidth direction " + std::to_string(direction) + " is neither egress (1) nor ingress (2)");
}

std::string Datapath::conns_pin_path() const { return MapPinPath(bpffs_dir_, "smesh_conns_v2"); }

void Datapath::Close() { Teardown(false); }

void Datapath::Destroy() {
  std::string failures;
  for (size_t i = 0; i < kProgramCount; i++) {
    const std::string pin = LinkPinPath(bpffs_dir_, kPrograms[i].name);
    int fd = i < link_fds_.size() ? link_fds_[i] : -1;
    bool opened_here = false;
    if (fd < 0) {
      fd = bpf_obj_get(pin.c_str());
      opened_here = fd >= 0;
    }
    // Detaching (not just unpinning) matters: a link stays attached while any fd holds it.
    if (fd >= 0 && bpf_link_detach(fd) != 0 && errno != ENOLINK) failures += " detach " + pin + ": " + strerror(errno) + ";";
    if (opened_here) close(fd);
    if (unlink(pin.c_str()) != 0 && errno != ENOENT) failures += " unlink " + pin + ": " + strerror(errno) + ";";
  }
  {
    const std::string pin = LinkPinPath(bpffs_dir_, kCaptureLookupLink);
    int fd = capture_link_fd_ >= 0 ? capture_link_fd_ : bpf_obj_get(pin.c_str());
    if (fd >= 0 && bpf_link_detach(fd) != 0 && errno != ENOLINK) failures += " detach " + pin + ": " + strerror(errno) + ";";
    if (fd >= 0 && fd != capture_link_fd_) close(fd);
    if (unlink(pin.c_str()) != 0 && errno != ENOENT) failures += " unlink " + pin + ": " + strerror(errno) + ";";
    // The capture /24's local route, if smesh added it (a namespace that is gone took it along).
    if (!capture_netns_path_.empty() && access(capture_netns_path_.c_str(), F_OK) == 0) {
      try {
        RemoveLocalRoute(capture_netns_path_, capture_ip4_, 24);
      } catch (const std::exception& e) {
        failures += std::string(" ") + e.what() + ";";
      }
    }
  }
  // Per-pod-namespace sk_lookup links (inbound plaintext capture), pinned as links/inpod-<netns inode>.
  if (DIR* dir = opendir((bpffs_dir_ + "/links").c_str())) {
    while (struct dirent* entry = readdir(dir)) {
      if (std::strncmp(entry->d_name, "inpod-", 6) != 0) continue;
      const std::string pin = bpffs_dir_ + "/links/" + entry->d_name;
      int fd = bpf_obj_get(pin.c_str());
      if (fd >= 0) {
        if (bpf_link_detach(fd) != 0 && errno != ENOLINK) failures += " detach " + pin + ": " + strerror(errno) + ";";
        close(fd);
      }
      if (unlink(pin.c_str()) != 0 && errno != ENOENT) failures += " unlink " + pin + ": " + strerror(errno) + ";";
    }
    closedir(dir);
  }
  // Pacing filters live on pod devices, not in pins: emptied, the map they still hold makes them pass every packet.
  {
    int fd = skel_ ? bpf_map__fd(skel_->maps.smesh_bandwidth) : bpf_obj_get(MapPinPath(bpffs_dir_, "smesh_bandwidth").c_str());
    if (fd >= 0) {
      try {
        for (const auto& entry : BandwidthList(fd)) BandwidthDelete(fd, entry.first);
      } catch (const std::exception& e) {
        failures += std::string(" ") + e.what() + ";";
      }
      if (!skel_) close(fd);
    }
  }
  // smesh_conns: retired (kept here so that an older agent's pin is removed too).
  const char* maps[] = {"smesh_pods",        "smesh_dests",      "smesh_socks",        "smesh_conns_v2",          "smesh_capture_listener",
                        "smesh_conns",       "smesh_deny",       "smesh_strict",       "smesh_strict_stats",      "smesh_inpod_listeners",
                        "smesh_inpod_stats", "smesh_deny_stats", "smesh_strict_flows", "smesh_strict_drop_stats", "smesh_inpod_pods",
                        "smesh_bandwidth"};
  for (const char* name : maps) {
    const std::string pin = MapPinPath(bpffs_dir_, name);
    if (unlink(pin.c_str()) != 0 && errno != ENOENT) failures += " unlink " + pin + ": " + strerror(errno) + ";";
  }
  for (const std::string& d : {bpffs_dir_ + "/links", bpffs_dir_ + "/maps", bpffs_dir_}) {
    if (rmdir(d.c_str()) != 0 && errno != ENOENT) failures += " rmdir " + d + ": " + strerror(errno) + ";";
  }
  Teardown(false);
  if (!failures.empty()) ThrowMessage("destroy datapath under " + bpffs_dir_ + ":" + failures);
}

// The one cleanup path: on a failed open, links created by this open are unpinned (and detach as their
// last fd closes); links we only updated stay pinned and keep working.
void Datapath::Teardown(bool drop_created_links) {
  for (size_t i = 0; i < link_fds_.size(); i++) {
    if (drop_created_links && i < link_created_.size() && link_created_[i]) {
      if (link_fds_[i] >= 0) bpf_link_detach(link_fds_[i]);
      unlink(LinkPinPath(bpffs_dir_, kPrograms[i].name).c_str());
    }
    CloseFd(link_fds_[i]);
  }
  link_fds_.clear();
  link_created_.clear();
  CloseFd(capture_link_fd_);
  if (skel_) {
    smesh_bpf__destroy(skel_);
    skel_ = nullptr;
  }
  CloseFd(cgroup_fd_);
}

namespace {

// tc filter identity of the pacing program on a device (clsact egress): fixed, so a re-attach replaces it in place.
constexpr uint32_t kPacingHandle = 0x5e5;
constexpr uint32_t kPacingPriority = 0x5e5;

// Runs `fn` on a thread that first enters the network namespace at `netns_path` (empty: the caller's, no thread
// switch needed but one is used anyway so that errors travel the same way). setns changes only that thread.
template <typename Fn>
void RunInNamespace(const std::string& netns_path, Fn fn) {
  std::exception_ptr failure;
  std::thread worker([&] {
    try {
      if (!netns_path.empty()) {
        int ns_fd = open(netns_path.c_str(), O_RDONLY | O_CLOEXEC);
        if (ns_fd < 0) ThrowErrno("open netns " + netns_path, errno);
        if (setns(ns_fd, CLONE_NEWNET) != 0) {
          int err = errno;
          close(ns_fd);
          ThrowErrno("setns into " + netns_path + " (is it a network namespace file?)", err);
        }
        close(ns_fd);
      }
      fn();
    } catch (...) {
      failure = std::current_exception();
    }
  });
  worker.join();
  if (failure) std::rethrow_exception(failure);
}

std::string Where(const std::string& netns_path, int ifindex) {
  char name[IF_NAMESIZE] = {};
  std::string dev = if_indextoname(static_cast<unsigned>(ifindex), name) ? std::string(name) : "ifindex " + std::to_string(ifindex);
  return dev + (netns_path.empty() ? "" : " in " + netns_path);
}

struct NetlinkRequest {
  nlmsghdr header;
  union {
    tcmsg tc;
    ifinfomsg link;
  } body;
  char attrs[256];
};

// One rtnetlink request in the calling thread's namespace; returns the kernel's errno (0 = done). For RTM_GETLINK
// `reply` receives the answer's payload.
int NetlinkCall(NetlinkRequest& req, std::string* reply = nullptr) {
  int sock = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (sock < 0) ThrowErrno("open rtnetlink socket", errno);
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (sendto(sock, &req, req.header.nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof(kernel)) < 0) {
    int err = errno;
    close(sock);
    ThrowErrno("send rtnetlink request", err);
  }
  alignas(nlmsghdr) char buf[8192];
  ssize_t n = recv(sock, buf, sizeof(buf), 0);
  int err = errno;
  close(sock);
  if (n < 0) ThrowErrno("read rtnetlink answer", err);
  auto* answer = reinterpret_cast<nlmsghdr*>(buf);
  if (!NLMSG_OK(answer, static_cast<unsigned>(n))) ThrowMessage("short rtnetlink answer");
  if (answer->nlmsg_type == NLMSG_ERROR) return -reinterpret_cast<nlmsgerr*>(NLMSG_DATA(answer))->error;
  if (reply) reply->assign(static_cast<const char*>(NLMSG_DATA(answer)), answer->nlmsg_len - NLMSG_HDRLEN);
  return 0;
}

void AddAttr(NetlinkRequest& req, unsigned short type, const void* data, size_t len) {
  auto* rta = reinterpret_cast<rtattr*>(reinterpret_cast<char*>(&req) + NLMSG_ALIGN(req.header.nlmsg_len));
  rta->rta_type = type;
  rta->rta_len = static_cast<unsigned short>(RTA_LENGTH(len));
  std::memcpy(RTA_DATA(rta), data, len);
  req.header.nlmsg_len = NLMSG_ALIGN(req.header.nlmsg_len) + RTA_ALIGN(rta->rta_len);
}

// RTM_NEWQDISC of `kind` as root (replacing what is there; `options` = its TCA_OPTIONS payload, nested attributes) or
// RTM_DELQDISC of the root qdisc whatever its kind (kind null).
int RootQdisc(int type, int ifindex, const char* kind = nullptr, const std::string& options = "") {
  NetlinkRequest req{};
  req.header.nlmsg_len = NLMSG_LENGTH(sizeof(tcmsg));
  req.header.nlmsg_type = static_cast<unsigned short>(type);
  req.header.nlmsg_flags = static_cast<unsigned short>(NLM_F_REQUEST | NLM_F_ACK | (type == RTM_NEWQDISC ? NLM_F_CREATE | NLM_F_REPLACE : 0));
  req.header.nlmsg_seq = 1;
  req.body.tc.tcm_family = AF_UNSPEC;
  req.body.tc.tcm_ifindex = ifindex;
  req.body.tc.tcm_parent = TC_H_ROOT;
  req.body.tc.tcm_handle = 0;
  if (kind) AddAttr(req, TCA_KIND, kind, std::strlen(kind) + 1);
  if (!options.empty()) AddAttr(req, TCA_OPTIONS | NLA_F_NESTED, options.data(), options.size());
  return NetlinkCall(req);
}

void AppendAttr(std::string& out, unsigned short type, const void* data, size_t len) {
  rtattr rta{};
  rta.rta_type = type;
  rta.rta_len = static_cast<unsigned short>(RTA_LENGTH(len));
  out.append(reinterpret_cast<const char*>(&rta), sizeof(rta));
  out.append(static_cast<const char*>(data), len);
  out.append(RTA_ALIGN(rta.rta_len) - rta.rta_len, '\0');
}

// TBF options for `bytes_per_sec`: a burst of 20 ms at the rate (at least 32 KiB, so a TSO packet is rarely split)
// and a queue of 50 ms at the rate beyond it (at least 64 KiB).
std::string TbfOptions(uint64_t bytes_per_sec) {
  tc_tbf_qopt qopt{};
  const uint32_t rate32 = bytes_per_sec >= 0xffffffffULL ? 0xffffffffU : static_cast<uint32_t>(bytes_per_sec);
  qopt.rate.rate = rate32;
  qopt.rate.linklayer = TC_LINKLAYER_ETHERNET;
  const uint64_t burst = std::max<uint64_t>(bytes_per_sec / 50, 32 * 1024);
  const uint64_t queue = std::max<uint64_t>(bytes_per_sec / 20, 64 * 1024);
  qopt.limit = static_cast<uint32_t>(std::min<uint64_t>(burst + queue, 0x7fffffffULL));
  qopt.buffer = static_cast<uint32_t>(std::min<uint64_t>((burst * 1000000000ULL / bytes_per_sec) >> 6, 0xffffffffULL));
  std::string out;
  AppendAttr(out, TCA_TBF_PARMS, &qopt, sizeof(qopt));
  const uint32_t burst32 = static_cast<uint32_t>(std::min<uint64_t>(burst, 0xffffffffULL));
  AppendAttr(out, TCA_TBF_BURST, &burst32, sizeof(burst32));
  if (bytes_per_sec >= 0xffffffffULL) AppendAttr(out, TCA_TBF_RATE64, &bytes_per_sec, sizeof(bytes_per_sec));
  return out;
}

// The veth peer index of `ifindex` (IFLA_LINK), 0 when it has none.
int LinkPeer(int ifindex) {
  NetlinkRequest req{};
  req.header.nlmsg_len = NLMSG_LENGTH(sizeof(ifinfomsg));
  req.header.nlmsg_type = RTM_GETLINK;
  req.header.nlmsg_flags = NLM_F_REQUEST;
  req.header.nlmsg_seq = 1;
  req.body.link.ifi_family = AF_UNSPEC;
  req.body.link.ifi_index = ifindex;
  std::string reply;
  int err = NetlinkCall(req, &reply);
  if (err) ThrowErrno("read link " + std::to_string(ifindex), err);
  if (reply.size() < NLMSG_ALIGN(sizeof(ifinfomsg))) return 0;
  auto* rta = reinterpret_cast<const rtattr*>(reply.data() + NLMSG_ALIGN(sizeof(ifinfomsg)));
  int len = static_cast<int>(reply.size() - NLMSG_ALIGN(sizeof(ifinfomsg)));
  for (; RTA_OK(rta, len); rta = RTA_NEXT(rta, len)) {
    if (rta->rta_type == IFLA_LINK && RTA_PAYLOAD(rta) >= sizeof(int)) {
      int peer = 0;
      std::memcpy(&peer, RTA_DATA(rta), sizeof(peer));
      return peer;
    }
  }
  return 0;
}

}  // namespace

PodDevices FindPodDevices(const std::string& netns_path, const uint8_t addr[16], const std::string& peer_netns_path) {
  PodDevices out;
  const bool v4 = addr[0] == 0 && addr[1] == 0 && addr[2] == 0 && addr[3] == 0 && addr[4] == 0 && addr[5] == 0 && addr[6] == 0 && addr[7] == 0 &&
                  addr[8] == 0 && addr[9] == 0 && addr[10] == 0xff && addr[11] == 0xff;
  RunInNamespace(netns_path, [&] {
    ifaddrs* list = nullptr;
    if (getifaddrs(&list) != 0) ThrowErrno("list addresses in " + netns_path, errno);
    for (ifaddrs* a = list; a; a = a->ifa_next) {
      if (!a->ifa_addr) continue;
      bool match = false;
      if (v4 && a->ifa_addr->sa_family == AF_INET)
        match = std::memcmp(&reinterpret_cast<sockaddr_in*>(a->ifa_addr)->sin_addr, addr + 12, 4) == 0;
      else if (!v4 && a->ifa_addr->sa_family == AF_INET6)
        match = std::memcmp(&reinterpret_cast<sockaddr_in6*>(a->ifa_addr)->sin6_addr, addr, 16) == 0;
      if (match) {
        out.ifname = a->ifa_name;
        break;
      }
    }
    freeifaddrs(list);
    if (out.ifname.empty()) ThrowMessage("no interface in " + netns_path + " holds the pod address");
    out.ifindex = static_cast<int>(if_nametoindex(out.ifname.c_str()));
    if (out.ifindex == 0) ThrowErrno("find interface " + out.ifname + " in " + netns_path, errno);
    out.peer_ifindex = LinkPeer(out.ifindex);
  });
  // A pod's host side never shares the pod's namespace: the same namespace (indexes would point back at themselves)
  // has no peer.
  struct stat pod_ns {
  }, peer_ns{};
  const std::string peer_file = peer_netns_path.empty() ? "/proc/thread-self/ns/net" : peer_netns_path;
  if (stat(netns_path.c_str(), &pod_ns) == 0 && stat(peer_file.c_str(), &peer_ns) == 0 && pod_ns.st_ino == peer_ns.st_ino && pod_ns.st_dev == peer_ns.st_dev)
    out.peer_ifindex = 0;
  if (out.peer_ifindex > 0) {
    // The peer index names a device of the peer namespace only if that device points back at the pod's interface.
    RunInNamespace(peer_netns_path, [&] {
      char name[IF_NAMESIZE] = {};
      if (if_indextoname(static_cast<unsigned>(out.peer_ifindex), name) && LinkPeer(out.peer_ifindex) == out.ifindex)
        out.peer_ifname = name;
      else
        out.peer_ifindex = 0;
    });
  }
  return out;
}

std::string AttachBandwidthPacing(int prog_fd, const std::string& netns_path, int ifindex, uint64_t bytes_per_sec) {
  if (bytes_per_sec == 0) ThrowMessage("bandwidth pacing of " + Where(netns_path, ifindex) + " needs a rate above 0");
  std::string mode;
  RunInNamespace(netns_path, [&] {
    int err = RootQdisc(RTM_NEWQDISC, ifindex, "fq");
    if (err == ENOENT || err == EOPNOTSUPP) {
      // This kernel has no sch_fq (nothing would honour the departure times): a token bucket on the device instead.
      DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_EGRESS);
      DECLARE_LIBBPF_OPTS(bpf_tc_opts, opts, .handle = kPacingHandle, .priority = kPacingPriority);
      bpf_tc_detach(&hook, &opts);
      err = RootQdisc(RTM_NEWQDISC, ifindex, "tbf", TbfOptions(bytes_per_sec));
      if (err) ThrowErrno("set tbf as root qdisc of " + Where(netns_path, ifindex) + " (no sch_fq, and sch_tbf failed)", err);
      mode = "tbf";
      return;
    }
    if (err) ThrowErrno("set fq as root qdisc of " + Where(netns_path, ifindex), err);
    DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_EGRESS);
    err = bpf_tc_hook_create(&hook);
    if (err && err != -EEXIST) ThrowErrno("create clsact qdisc on " + Where(netns_path, ifindex), -err);
    DECLARE_LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = prog_fd, .flags = BPF_TC_F_REPLACE, .handle = kPacingHandle, .priority = kPacingPriority);
    err = bpf_tc_attach(&hook, &opts);
    if (err) ThrowErrno("attach the pacing program to " + Where(netns_path, ifindex), -err);
    mode = "edt";
  });
  return mode;
}

void DetachBandwidthPacing(const std::string& netns_path, int ifindex) {
  RunInNamespace(netns_path, [&] {
    DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_EGRESS);
    DECLARE_LIBBPF_OPTS(bpf_tc_opts, opts, .handle = kPacingHandle, .priority = kPacingPriority);
    int err = bpf_tc_detach(&hook, &opts);
    if (err && err != -ENOENT && err != -EINVAL && err != -ENODEV) ThrowErrno("detach the pacing program from " + Where(netns_path, ifindex), -err);
    // A device without a root qdisc of its own answers ENOENT/EINVAL; a gone device ENODEV.
    err = RootQdisc(RTM_DELQDISC, ifindex);
    if (err && err != ENOENT && err != EINVAL && err != ENODEV) ThrowErrno("remove the fq root qdisc of " + Where(netns_path, ifindex), err);
  });
}

}  // namespace smesh
