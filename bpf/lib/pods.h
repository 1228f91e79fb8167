/* Pod enrollment: which network namespaces (by netns cookie) belong to meshed workloads. */
#ifndef SMESH_LIB_PODS_H
#define SMESH_LIB_PODS_H

#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SMESH_MAX_PODS);
	__type(key, __u64);
	__type(value, struct smesh_pod_info);
} smesh_pods SEC(".maps");

/* The enrolled pod that owns the socket behind ctx, or NULL. */
static __always_inline struct smesh_pod_info *smesh_pod_of(void *ctx)
{
	__u64 netns_cookie = bpf_get_netns_cookie(ctx);

	return bpf_map_lookup_elem(&smesh_pods, &netns_cookie);
}

#endif /* SMESH_LIB_PODS_H */
