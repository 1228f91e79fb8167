// BPF loader: open → configure rodata → set map pin paths → load → fill maps → attach (bpf_link_create,
// or bpf_link_update of pinned links on restart) → pin links. One cleanup path. No JavaScript here.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "abi.h"

struct smesh_bpf;  // libbpf skeleton (generated smesh.skel.h)

namespace smesh {

struct LoaderOptions {
  std::string bpffs_dir;
  std::string cgroup_path;
  uint8_t capture_ip4[4] = {0, 0, 0, 0};  // network order
  uint16_t capture_port = 0;              // host order
  bool has_capture_ip6 = false;
  uint8_t capture_ip6[16] = {};
  // Capture tuples: IPv4 redirects spread over capture_ip4 + [0, capture_spread) (1..SMESH_MAX_CAPTURE_SPREAD, within
  // the capture address's /24). Above 1 it needs capture_netns_path: the network namespace of the outbound listener,
  // where the sk_lookup steering program is attached (pinned link) and, above 1, the capture /24 is made local on lo.
  uint32_t capture_spread = 1;
  std::string capture_netns_path;
  // Initial map contents, written after load and before attach.
  std::vector<std::pair<uint64_t, uint32_t>> pods;  // netns cookie → workload id
  std::vector<smesh_addr_port> dests;
};

struct AttachResult {
  bool reused = false;             // at least one pinned link was found and its program swapped in place
  std::vector<std::string> links;  // pin paths, one per program
};

class Datapath {
 public:
  // Blocking: runs every loader phase. Throws NativeError; on failure nothing new stays attached.
  static std::unique_ptr<Datapath> Open(const LoaderOptions& options);
  ~Datapath();
  Datapath(const Datapath&) = delete;
  Datapath& operator=(const Datapath&) = delete;

  const AttachResult& attach_result() const { return attach_; }
  bool closed() const { return skel_ == nullptr; }
  int pods_fd() const;
  int dests_fd() const;
  int deny_fd() const;
  int strict_fd() const;
  int strict_stats_fd() const;
  int inpod_listeners_fd() const;
  int deny_stats_fd() const;
  int strict_drop_stats_fd() const;
  int inpod_stats_fd() const;
  int inpod_pods_fd() const;
  // A loaded program's fd by its function name (e.g. "smesh_inbound_lookup"), for BPF_PROG_TEST_RUN in tests.
  int program_fd(const std::string& name) const;
  // The sk_lookup program (inbound plaintext capture); attached per pod namespace by AttachNetnsLookup.
  int inpod_lookup_prog_fd() const;
  // smesh_capture_listener (SOCKMAP): slot 0 holds the outbound listener the capture-tuple steering hands connections to.
  int capture_listener_fd() const;
  std::string conns_pin_path() const;
  // smesh_bandwidth (pod address, direction → rate) and the tc program for a direction (SMESH_BW_EGRESS/INGRESS).
  int bandwidth_fd() const;
  int bandwidth_prog_fd(uint32_t direction) const;
  const std::string& bpffs_dir() const { return bpffs_dir_; }

  // Closes fds; pinned links and maps stay, so redirection survives the process.
  void Close();
  // Detaches every link, removes every pin under the bpffs dir, then closes.
  void Destroy();

 private:
  Datapath() = default;
  void Teardown(bool drop_created_links);

  struct smesh_bpf* skel_ = nullptr;
  int cgroup_fd_ = -1;
  std::string bpffs_dir_;
  std::vector<int> link_fds_;
  int capture_link_fd_ = -1;
  std::string capture_netns_path_;
  uint8_t capture_ip4_[4] = {0, 0, 0, 0};
  std::vector<bool> link_created_;
  AttachResult attach_;
};

// A pod's devices for bandwidth pacing: the interface that holds the pod address inside the pod's namespace, and its
// veth peer (IFLA_LINK) in `peer_netns_path` (empty: the caller's namespace; 0 when no veth peer of the pod is there).
struct PodDevices {
  int ifindex = 0;
  std::string ifname;
  int peer_ifindex = 0;
  std::string peer_ifname;
};
// Blocking (a thread enters the namespace at `netns_path`). `addr`: 16 bytes, network order, IPv4 v4-mapped.
PodDevices FindPodDevices(const std::string& netns_path, const uint8_t addr[16], const std::string& peer_netns_path);
// Blocking. Makes `ifindex` (in `netns_path`; empty = the caller's namespace) pace by departure time: the fq qdisc as its
// root qdisc and `prog_fd` as a direct-action tc egress filter (clsact; our filter, handle/priority fixed, is replaced
// in place, so a restarted agent re-applies without a gap; the rate is read from smesh_bandwidth). tc filters live with
// the device, not with this process. Returns "edt". A kernel without sch_fq gets a tbf root qdisc at `bytes_per_sec`
// instead (returns "tbf"; a rate change then needs another attach).
std::string AttachBandwidthPacing(int prog_fd, const std::string& netns_path, int ifindex, uint64_t bytes_per_sec);
// Blocking. Removes our tc filter and the root qdisc (fq or tbf) from the device (absent is fine): the device is as before.
void DetachBandwidthPacing(const std::string& netns_path, int ifindex);

// Pin layout under the bpffs dir.
std::string MapPinPath(const std::string& bpffs_dir, const char* map_name);
std::string LinkPinPath(const std::string& bpffs_dir, const char* link_name);

}  // namespace smesh
