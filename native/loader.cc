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
#include <unistd.h>

#include <cstdarg>
#include <cstring>
#include <mutex>

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
  if (name_to_handle_at(AT_FDCWD, path.c_str(), handle, &mount_id, 0) != 0)
    ThrowErrno("read cgroup id of " + path, errno);
  uint64_t id = 0;
  std::memcpy(&id, handle->f_handle, sizeof(id));
  return id;
}

void CloseFd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

}  // namespace

std::string MapPinPath(const std::string& bpffs_dir, const char* map_name) {
  return bpffs_dir + "/maps/" + map_name;
}

std::string LinkPinPath(const std::string& bpffs_dir, const char* link_name) {
  return bpffs_dir + "/links/" + link_name;
}

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
    if (fs.f_type != CGROUP2_SUPER_MAGIC)
      ThrowMessage("cgroup " + options.cgroup_path + " is not on a cgroup2 filesystem");
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
      ThrowMessage("capture spread " + std::to_string(options.capture_spread) + " is outside 1.." +
                   std::to_string(SMESH_MAX_CAPTURE_SPREAD));
    if (options.capture_spread > 1 && options.capture_netns_path.empty())
      ThrowMessage("capture spread " + std::to_string(options.capture_spread) +
                   " needs the capture network namespace (where the outbound listener is)");
    if (options.capture_ip4[3] + options.capture_spread - 1 > 254)
      ThrowMessage("capture spread " + std::to_string(options.capture_spread) + " from capture address ." +
                   std::to_string(options.capture_ip4[3]) + " leaves its /24 (last address must be .254 or lower)");
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
        const bool same_target = info.type == BPF_LINK_TYPE_CGROUP && info.cgroup.cgroup_id == cgroup_id &&
                                 info.cgroup.attach_type == spec.attach_type;
        if (same_target) {
          if (bpf_link_update(link_fd, prog_fd, nullptr) != 0)
            ThrowErrno(std::string("replace program of pinned link ") + pin, errno);
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
      if (link_fd < 0)
        ThrowErrno(std::string("attach ") + spec.name + " to " + options.cgroup_path, errno);
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
      dp->capture_link_fd_ =
          AttachNetnsLookup(bpf_program__fd(dp->skel_->progs.smesh_capture_lookup), options.capture_netns_path, capture_pin);
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
    if (fd >= 0 && bpf_link_detach(fd) != 0 && errno != ENOLINK)
      failures += " detach " + pin + ": " + strerror(errno) + ";";
    if (opened_here) close(fd);
    if (unlink(pin.c_str()) != 0 && errno != ENOENT) failures += " unlink " + pin + ": " + strerror(errno) + ";";
  }
  {
    const std::string pin = LinkPinPath(bpffs_dir_, kCaptureLookupLink);
    int fd = capture_link_fd_ >= 0 ? capture_link_fd_ : bpf_obj_get(pin.c_str());
    if (fd >= 0 && bpf_link_detach(fd) != 0 && errno != ENOLINK)
      failures += " detach " + pin + ": " + strerror(errno) + ";";
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
  // smesh_conns: retired (kept here so that an older agent's pin is removed too).
  const char* maps[] = {"smesh_pods",   "smesh_dests",  "smesh_socks", "smesh_conns_v2", "smesh_capture_listener",
                        "smesh_conns",  "smesh_deny",   "smesh_strict", "smesh_strict_stats",
                        "smesh_inpod_listeners", "smesh_inpod_stats", "smesh_deny_stats",
                        "smesh_strict_flows", "smesh_strict_drop_stats", "smesh_inpod_pods"};
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

}  // namespace smesh
