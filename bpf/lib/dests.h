/* Meshed destinations: (address, port) pairs, or (address, 0) for every port of an address. */
#ifndef SMESH_LIB_DESTS_H
#define SMESH_LIB_DESTS_H

#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SMESH_MAX_DESTS);
	__type(key, struct smesh_addr_port);
	__type(value, struct smesh_dest_info);
} smesh_dests SEC(".maps");

static __always_inline int smesh_dest_is_meshed(const __u32 addr[4], __u16 port)
{
	struct smesh_addr_port key = {};

	key.addr[0] = addr[0];
	key.addr[1] = addr[1];
	key.addr[2] = addr[2];
	key.addr[3] = addr[3];
	key.port = port;
	if (bpf_map_lookup_elem(&smesh_dests, &key))
		return 1;
	key.port = 0;
	return bpf_map_lookup_elem(&smesh_dests, &key) != NULL;
}

#endif /* SMESH_LIB_DESTS_H */
