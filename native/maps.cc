// smesh map operations: update/delete/iterate with errors naming the map and the key.
#include "maps.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>

#include <cstring>

#include "errors.h"

namespace smesh {

namespace {

// get_next_key walks are bounded so a map being rewritten concurrently cannot loop forever.
template <typename Key, typename Fn>
void ForEachKey(int map_fd, uint32_t max_entries, const char* map_name, Fn fn) {
  Key key{};
  Key next{};
  const void* prev = nullptr;
  for (uint32_t i = 0; i <= max_entries; i++) {
    if (bpf_map_get_next_key(map_fd, prev, &next) != 0) {
      if (errno == ENOENT) return;
      ThrowErrno(std::string("iterate map ") + map_name, errno);
    }
    key = next;
    fn(key);
    prev = &key;
  }
}

// One per-CPU slot array of `key` (PERCPU map): false when the key is absent.
template <typename V>
bool LookupPerCpu(int map_fd, const void* key, std::vector<V>* per_cpu, const char* map_name) {
  const int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) ThrowErrno("count possible CPUs", -cpus);
  per_cpu->assign(static_cast<size_t>(cpus), V{});
  if (bpf_map_lookup_elem(map_fd, key, per_cpu->data()) == 0) return true;
  if (errno == ENOENT) return false;
  ThrowErrno(std::string("lookup ") + map_name, errno);
}

}  // namespace

void PodPut(int map_fd, uint64_t netns_cookie, uint32_t workload_id) {
  smesh_pod_info info{};
  info.workload_id = workload_id;
  if (bpf_map_update_elem(map_fd, &netns_cookie, &info, BPF_ANY) != 0)
    ThrowErrno("update smesh_pods[netns cookie " + std::to_string(netns_cookie) + "]", errno);
}

bool PodDelete(int map_fd, uint64_t netns_cookie) {
  if (bpf_map_delete_elem(map_fd, &netns_cookie) == 0) return true;
  if (errno == ENOENT) return false;
  ThrowErrno("delete smesh_pods[netns cookie " + std::to_string(netns_cookie) + "]", errno);
}

std::vector<std::pair<uint64_t, smesh_pod_info>> PodList(int map_fd) {
  std::vector<std::pair<uint64_t, smesh_pod_info>> out;
  ForEachKey<uint64_t>(map_fd, SMESH_MAX_PODS, "smesh_pods", [&](uint64_t cookie) {
    smesh_pod_info info{};
    if (bpf_map_lookup_elem(map_fd, &cookie, &info) == 0) out.emplace_back(cookie, info);
  });
  return out;
}

smesh_addr_port MakeAddrPort(const uint8_t addr[16], uint16_t port) {
  smesh_addr_port key{};
  std::memcpy(key.addr, addr, sizeof(key.addr));
  key.port = port;
  return key;
}

void DestPut(int map_fd, const smesh_addr_port& key) {
  smesh_dest_info info{};
  if (bpf_map_update_elem(map_fd, &key, &info, BPF_ANY) != 0) ThrowErrno("update smesh_dests (port " + std::to_string(key.port) + ")", errno);
}

bool DestDelete(int map_fd, const smesh_addr_port& key) {
  if (bpf_map_delete_elem(map_fd, &key) == 0) return true;
  if (errno == ENOENT) return false;
  ThrowErrno("delete smesh_dests (port " + std::to_string(key.port) + ")", errno);
}

void DestPutBatch(int map_fd, const smesh_addr_port* keys, uint32_t n) {
  const std::vector<smesh_dest_info> values(n);  // all zero
  uint32_t done = 0;
  while (done < n) {
    uint32_t count = n - done;
    LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = BPF_ANY);
    if (bpf_map_update_batch(map_fd, keys + done, values.data() + done, &count, &opts) != 0) {
      const int err = errno;
      const uint32_t at = done + count < n ? done + count : n - 1;
      ThrowErrno("update smesh_dests (batch: " + std::to_string(done + count) + " of " + std::to_string(n) + " written, refused port " +
                     std::to_string(keys[at].port) + ")",
                 err);
    }
    done += count;
  }
}

uint32_t DestDeleteBatch(int map_fd, const smesh_addr_port* keys, uint32_t n) {
  uint32_t done = 0;
  uint32_t deleted = 0;
  while (done < n) {
    uint32_t count = n - done;
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    const int rc = bpf_map_delete_batch(map_fd, keys + done, &count, &opts);
    deleted += count;
    done += count;
    if (rc == 0) continue;
    // The kernel stops at the first key it cannot delete: an absent one is skipped, anything else is an error.
    const int err = errno;
    if (err != ENOENT || done >= n) ThrowErrno("delete smesh_dests (batch, at entry " + std::to_string(done) + " of " + std::to_string(n) + ")", err);
    done++;
  }
  return deleted;
}

std::vector<smesh_addr_port> DestList(int map_fd) {
  std::vector<smesh_addr_port> out;
  ForEachKey<smesh_addr_port>(map_fd, SMESH_MAX_DESTS, "smesh_dests", [&](const smesh_addr_port& key) { out.push_back(key); });
  return out;
}

smesh_deny_key MakeDenyKey(uint32_t workload_id, const uint8_t addr[16], uint16_t port) {
  smesh_deny_key key{};
  key.workload_id = workload_id;
  std::memcpy(key.addr, addr, sizeof(key.addr));
  key.port = port;
  return key;
}

void DenyPut(int map_fd, const smesh_deny_key& key) {
  smesh_dest_info info{};
  if (bpf_map_update_elem(map_fd, &key, &info, BPF_ANY) != 0)
    ThrowErrno("update smesh_deny (workload " + std::to_string(key.workload_id) + ", port " + std::to_string(key.port) + ")", errno);
}

bool DenyDelete(int map_fd, const smesh_deny_key& key) {
  if (bpf_map_delete_elem(map_fd, &key) == 0) return true;
  if (errno == ENOENT) return false;
  ThrowErrno("delete smesh_deny (workload " + std::to_string(key.workload_id) + ", port " + std::to_string(key.port) + ")", errno);
}

std::vector<smesh_deny_key> DenyList(int map_fd) {
  std::vector<smesh_deny_key> out;
  ForEachKey<smesh_deny_key>(map_fd, SMESH_MAX_DENY, "smesh_deny", [&](const smesh_deny_key& key) { out.push_back(key); });
  return out;
}

void StrictPut(int map_fd, const smesh_addr_port& key, uint32_t mode) {
  smesh_strict_info info{};
  info.mode = mode;
  if (bpf_map_update_elem(map_fd, &key, &info, BPF_ANY) != 0) ThrowErrno("update smesh_strict (port " + std::to_string(key.port) + ")", errno);
}

bool StrictDelete(int map_fd, const smesh_addr_port& key) {
  if (bpf_map_delete_elem(map_fd, &key) == 0) return true;
  if (errno == ENOENT) return false;
  ThrowErrno("delete smesh_strict (port " + std::to_string(key.port) + ")", errno);
}

std::vector<std::pair<smesh_addr_port, smesh_strict_info>> StrictList(int map_fd) {
  std::vector<std::pair<smesh_addr_port, smesh_strict_info>> out;
  ForEachKey<smesh_addr_port>(map_fd, SMESH_MAX_STRICT, "smesh_strict", [&](const smesh_addr_port& key) {
    smesh_strict_info info{};
    if (bpf_map_lookup_elem(map_fd, &key, &info) == 0) out.emplace_back(key, info);
  });
  return out;
}

smesh_strict_counters StrictCounters(int map_fd) {
  std::vector<smesh_strict_counters> per_cpu;
  const uint32_t zero = 0;
  smesh_strict_counters total{};
  if (!LookupPerCpu(map_fd, &zero, &per_cpu, "smesh_strict_stats")) return total;
  for (const auto& c : per_cpu) {
    total.dropped += c.dropped;
    total.plaintext += c.plaintext;
  }
  return total;
}

void InpodListenerPut(int map_fd, const smesh_addr_port& key, int socket_fd) {
  uint32_t fd = static_cast<uint32_t>(socket_fd);
  if (bpf_map_update_elem(map_fd, &key, &fd, BPF_ANY) != 0)
    ThrowErrno("update smesh_inpod_listeners (port " + std::to_string(key.port) + ", fd " + std::to_string(socket_fd) + "; it must be a listening TCP socket)",
               errno);
}

bool InpodListenerDelete(int map_fd, const smesh_addr_port& key) {
  if (bpf_map_delete_elem(map_fd, &key) == 0) return true;
  if (errno == ENOENT) return false;
  ThrowErrno("delete smesh_inpod_listeners (port " + std::to_string(key.port) + ")", errno);
}

std::vector<smesh_addr_port> InpodListenerKeys(int map_fd) {
  std::vector<smesh_addr_port> out;
  ForEachKey<smesh_addr_port>(map_fd, SMESH_MAX_INPOD_LISTENERS, "smesh_inpod_listeners", [&](const smesh_addr_port& key) { out.push_back(key); });
  return out;
}

void InpodPodPut(int map_fd, const smesh_addr_port& key) {
  smesh_dest_info info{};
  if (bpf_map_update_elem(map_fd, &key, &info, BPF_ANY) != 0) ThrowErrno("update smesh_inpod_pods", errno);
}

bool InpodPodDelete(int map_fd, const smesh_addr_port& key) {
  if (bpf_map_delete_elem(map_fd, &key) == 0) return true;
  if (errno == ENOENT) return false;
  ThrowErrno("delete smesh_inpod_pods", errno);
}

std::vector<smesh_addr_port> InpodPodList(int map_fd) {
  std::vector<smesh_addr_port> out;
  ForEachKey<smesh_addr_port>(map_fd, SMESH_MAX_PODS, "smesh_inpod_pods", [&](const smesh_addr_port& key) { out.push_back(key); });
  return out;
}

smesh_bw_key MakeBandwidthKey(const uint8_t addr[16], uint32_t direction) {
  smesh_bw_key key{};
  std::memcpy(key.addr, addr, 16);
  key.direction = direction;
  return key;
}

void BandwidthPut(int map_fd, const smesh_bw_key& key, uint64_t bytes_per_sec) {
  if (key.direction != SMESH_BW_EGRESS && key.direction != SMESH_BW_INGRESS)
    ThrowMessage("smesh_bandwidth: direction " + std::to_string(key.direction) + " is neither egress (1) nor ingress (2)");
  smesh_bw_info info{};
  info.bytes_per_sec = bytes_per_sec;
  if (bpf_map_update_elem(map_fd, &key, &info, BPF_ANY) != 0) ThrowErrno("update smesh_bandwidth", errno);
}

bool BandwidthDelete(int map_fd, const smesh_bw_key& key) {
  if (bpf_map_delete_elem(map_fd, &key) == 0) return true;
  if (errno == ENOENT) return false;
  ThrowErrno("delete smesh_bandwidth", errno);
}

std::vector<std::pair<smesh_bw_key, smesh_bw_info>> BandwidthList(int map_fd) {
  std::vector<std::pair<smesh_bw_key, smesh_bw_info>> out;
  ForEachKey<smesh_bw_key>(map_fd, SMESH_MAX_BANDWIDTH, "smesh_bandwidth", [&](const smesh_bw_key& key) {
    smesh_bw_info info{};
    if (bpf_map_lookup_elem(map_fd, &key, &info) == 0) out.emplace_back(key, info);
  });
  return out;
}

smesh_inpod_counters InpodCounters(int map_fd) {
  std::vector<smesh_inpod_counters> per_cpu;
  const uint32_t zero = 0;
  smesh_inpod_counters total{};
  if (!LookupPerCpu(map_fd, &zero, &per_cpu, "smesh_inpod_stats")) return total;
  for (const auto& c : per_cpu) {
    total.captured += c.captured;
    total.no_listener += c.no_listener;
    total.assign_failed += c.assign_failed;
  }
  return total;
}

std::vector<std::pair<smesh_deny_key, uint64_t>> DenyStats(int map_fd) {
  std::vector<uint64_t> per_cpu;
  std::vector<std::pair<smesh_deny_key, uint64_t>> out;
  ForEachKey<smesh_deny_key>(map_fd, SMESH_MAX_DENY_STATS, "smesh_deny_stats", [&](const smesh_deny_key& key) {
    if (!LookupPerCpu(map_fd, &key, &per_cpu, "smesh_deny_stats")) return;  // removed meanwhile
    uint64_t total = 0;
    for (uint64_t v : per_cpu) total += v;
    out.emplace_back(key, total);
  });
  return out;
}

std::vector<std::pair<smesh_strict_drop_key, uint64_t>> StrictDropStats(int map_fd) {
  std::vector<std::pair<smesh_strict_drop_key, uint64_t>> out;
  ForEachKey<smesh_strict_drop_key>(map_fd, SMESH_MAX_STRICT_DROP_STATS, "smesh_strict_drop_stats", [&](const smesh_strict_drop_key& key) {
    uint64_t count = 0;
    if (bpf_map_lookup_elem(map_fd, &key, &count) == 0) out.emplace_back(key, count);
  });
  return out;
}

bool ConnLookup(int map_fd, const smesh_flow_key& key, smesh_orig_dst* out) {
  if (bpf_map_lookup_elem(map_fd, &key, out) == 0) return true;
  if (errno == ENOENT) return false;
  ThrowErrno("lookup smesh_conns_v2", errno);
}

void CaptureListenerPut(int map_fd, int socket_fd) {
  uint32_t key = 0;
  uint32_t fd = static_cast<uint32_t>(socket_fd);
  if (bpf_map_update_elem(map_fd, &key, &fd, BPF_ANY) != 0)
    ThrowErrno("update smesh_capture_listener (fd " + std::to_string(socket_fd) + "; it must be a listening TCP socket)", errno);
}

}  // namespace smesh
