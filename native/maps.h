// Typed operations on the smesh BPF maps (layouts from bpf/shared/abi.h); synchronous, one syscall each.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "abi.h"

namespace smesh {

void PodPut(int map_fd, uint64_t netns_cookie, uint32_t workload_id);
bool PodDelete(int map_fd, uint64_t netns_cookie);
std::vector<std::pair<uint64_t, smesh_pod_info>> PodList(int map_fd);

smesh_addr_port MakeAddrPort(const uint8_t addr[16], uint16_t port);
void DestPut(int map_fd, const smesh_addr_port& key);
bool DestDelete(int map_fd, const smesh_addr_port& key);
std::vector<smesh_addr_port> DestList(int map_fd);
// Many keys per syscall (BPF_MAP_UPDATE_BATCH / BPF_MAP_DELETE_BATCH). Keys must have pad == 0.
// DestPutBatch is all-or-error (an error names the first key the kernel refused); DestDeleteBatch skips
// absent keys and returns how many it deleted.
void DestPutBatch(int map_fd, const smesh_addr_port* keys, uint32_t n);
uint32_t DestDeleteBatch(int map_fd, const smesh_addr_port* keys, uint32_t n);

smesh_deny_key MakeDenyKey(uint32_t workload_id, const uint8_t addr[16], uint16_t port);
void DenyPut(int map_fd, const smesh_deny_key& key);
bool DenyDelete(int map_fd, const smesh_deny_key& key);
std::vector<smesh_deny_key> DenyList(int map_fd);

void StrictPut(int map_fd, const smesh_addr_port& key, uint32_t mode);
bool StrictDelete(int map_fd, const smesh_addr_port& key);
std::vector<std::pair<smesh_addr_port, smesh_strict_info>> StrictList(int map_fd);
// Sum of the per-CPU counters of smesh_strict_stats.
smesh_strict_counters StrictCounters(int map_fd);

// smesh_inpod_listeners: (pod address, capture port) → listening socket fd (the map keeps its own reference).
void InpodListenerPut(int map_fd, const smesh_addr_port& key, int socket_fd);
bool InpodListenerDelete(int map_fd, const smesh_addr_port& key);
std::vector<smesh_addr_port> InpodListenerKeys(int map_fd);
// smesh_inpod_pods: pod addresses whose plaintext is captured (held back while no listener is registered).
void InpodPodPut(int map_fd, const smesh_addr_port& key);
bool InpodPodDelete(int map_fd, const smesh_addr_port& key);
std::vector<smesh_addr_port> InpodPodList(int map_fd);
// Sum of the per-CPU counters of smesh_inpod_stats.
smesh_inpod_counters InpodCounters(int map_fd);

// smesh_deny_stats: refused connect() calls per deny entry, summed over CPUs.
std::vector<std::pair<smesh_deny_key, uint64_t>> DenyStats(int map_fd);
// smesh_strict_drop_stats: STRICT-dropped connections per (source, pod, port).
std::vector<std::pair<smesh_strict_drop_key, uint64_t>> StrictDropStats(int map_fd);

// smesh_bandwidth: (pod address, direction) → rate in bytes/s. Put rewrites the whole value (the pacing clock restarts).
smesh_bw_key MakeBandwidthKey(const uint8_t addr[16], uint32_t direction);
void BandwidthPut(int map_fd, const smesh_bw_key& key, uint64_t bytes_per_sec);
bool BandwidthDelete(int map_fd, const smesh_bw_key& key);
std::vector<std::pair<smesh_bw_key, smesh_bw_info>> BandwidthList(int map_fd);

// Looks a connection (client end, capture tuple) up in smesh_conns_v2. Returns false when absent.
bool ConnLookup(int map_fd, const smesh_flow_key& key, smesh_orig_dst* out);
// smesh_capture_listener[0] = the listening socket `socket_fd` (the map takes its own reference).
void CaptureListenerPut(int map_fd, int socket_fd);

}  // namespace smesh
