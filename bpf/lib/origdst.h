/* Original-destination bookkeeping: socket cookie → original destination (set at connect time), and
 * the connection's 4-tuple (client address and port, capture address and port) → original destination (set
 * once established; the proxy looks its accepted socket's peer and local address up here to answer
 * SO_ORIGINAL_DST). The capture address is part of the key: with several capture tuples one client port can
 * be in use towards two of them at once. */
#ifndef SMESH_LIB_ORIGDST_H
#define SMESH_LIB_ORIGDST_H

#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SMESH_MAX_SOCKS);
	__type(key, __u64);
	__type(value, struct smesh_orig_dst);
} smesh_socks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SMESH_MAX_CONNS);
	__type(key, struct smesh_flow_key);
	__type(value, struct smesh_orig_dst);
} smesh_conns_v2 SEC(".maps");

static __always_inline void smesh_remember_socket(void *ctx, const __u32 addr[4], __u16 port, __u32 workload_id)
{
	__u64 cookie = bpf_get_socket_cookie(ctx);
	struct smesh_orig_dst orig = {};

	orig.addr[0] = addr[0];
	orig.addr[1] = addr[1];
	orig.addr[2] = addr[2];
	orig.addr[3] = addr[3];
	orig.port = port;
	orig.workload_id = workload_id;
	bpf_map_update_elem(&smesh_socks, &cookie, &orig, BPF_ANY);
}

static __always_inline struct smesh_orig_dst *smesh_socket_orig(void *ctx)
{
	__u64 cookie = bpf_get_socket_cookie(ctx);

	return bpf_map_lookup_elem(&smesh_socks, &cookie);
}

#endif /* SMESH_LIB_ORIGDST_H */
