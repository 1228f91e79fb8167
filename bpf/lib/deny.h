/* Connect-time deny: (workload, destination) pairs that L4 authorization policy always refuses, so an
 * enrolled pod's connect() fails at once with ECONNREFUSED and no SYN leaves the pod. */
#ifndef SMESH_LIB_DENY_H
#define SMESH_LIB_DENY_H

#include "common.h"

#define SMESH_ECONNREFUSED 111

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SMESH_MAX_DENY);
	__type(key, struct smesh_deny_key);
	__type(value, struct smesh_dest_info);
} smesh_deny SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, SMESH_MAX_DENY_STATS);
	__type(key, struct smesh_deny_key);
	__type(value, __u64);
} smesh_deny_stats SEC(".maps");

/* One refused connect() of the entry `key`: per connection attempt, by source workload and destination. */
static __always_inline void smesh_count_connect_deny(const struct smesh_deny_key *key)
{
	__u64 one = 1, *count;

	count = bpf_map_lookup_elem(&smesh_deny_stats, key);
	if (count) {
		(*count)++;
		return;
	}
	bpf_map_update_elem(&smesh_deny_stats, key, &one, BPF_NOEXIST);
}

static __always_inline int smesh_connect_denied(__u32 workload_id, const __u32 addr[4], __u16 port)
{
	struct smesh_deny_key key = {};

	key.workload_id = workload_id;
	key.addr[0] = addr[0];
	key.addr[1] = addr[1];
	key.addr[2] = addr[2];
	key.addr[3] = addr[3];
	key.port = port;
	if (!bpf_map_lookup_elem(&smesh_deny, &key)) {
		key.port = 0;
		if (!bpf_map_lookup_elem(&smesh_deny, &key))
			return 0;
	}
	smesh_count_connect_deny(&key);
	return 1;
}

/* cgroup sock_addr: returning 0 fails the syscall; the retval set here makes it ECONNREFUSED, not EPERM. */
static __always_inline int smesh_refuse_connect(void)
{
	bpf_set_retval(-SMESH_ECONNREFUSED);
	return 0;
}

#endif /* SMESH_LIB_DENY_H */
