/* Inbound mTLS mode in the kernel: a plaintext TCP SYN (one that does not come from the node proxy's
 * capture address or from loopback) to a local meshed pod is dropped when the pod/port is STRICT and
 * counted when it is PERMISSIVE. Drops are counted per connection (the first SYN of a flow, not its
 * retransmissions) and per (source, pod, port) for the agent's Istio TCP metrics. Runs as cgroup_skb/ingress on the
 * listener's socket, so it sees exactly the SYNs that would reach a pod's listener; established connections are never
 * touched. */
#ifndef SMESH_LIB_STRICT_H
#define SMESH_LIB_STRICT_H

#include "common.h"
#include "config.h"

#define SMESH_ETH_P_IP	       0x0800
#define SMESH_ETH_P_IPV6       0x86DD
#define SMESH_IPPROTO_TCP      6
#define SMESH_TCP_FLAG_SYN     0x02
#define SMESH_TCP_FLAG_ACK     0x10
#define SMESH_TCP_FLAGS_OFFSET 13 /* byte of the TCP header holding CWR..FIN */

/* cgroup_skb: 1 = let the packet in, 0 = drop it. */
#define SMESH_SKB_PASS 1
#define SMESH_SKB_DROP 0

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SMESH_MAX_STRICT);
	__type(key, struct smesh_addr_port);
	__type(value, struct smesh_strict_info);
} smesh_strict SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct smesh_strict_counters);
} smesh_strict_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SMESH_MAX_STRICT_FLOWS);
	__type(key, struct smesh_flow_key);
	__type(value, struct smesh_strict_flow_seen);
} smesh_strict_flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SMESH_MAX_STRICT_DROP_STATS);
	__type(key, struct smesh_strict_drop_key);
	__type(value, __u64);
} smesh_strict_drop_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SMESH_MAX_PODS);
	__type(key, struct smesh_addr_port);
	__type(value, struct smesh_dest_info);
} smesh_inpod_pods SEC(".maps");

/*
 * Whether this dropped SYN starts a connection not counted yet: the first SYN of a 4-tuple counts, its
 * retransmissions (within SMESH_STRICT_FLOW_WINDOW_NS) do not. Counts the (source, pod, port) triple too.
 */
static __always_inline int smesh_strict_new_flow(const __u32 src[4], const __u32 dst[4], __u16 sport, __u16 dport)
{
	struct smesh_flow_key flow = {};
	struct smesh_strict_flow_seen seen = {}, *prev;
	struct smesh_strict_drop_key key = {};
	__u64 now = bpf_ktime_get_ns(), one = 1, *count;

	__builtin_memcpy(flow.src, src, 16);
	__builtin_memcpy(flow.dst, dst, 16);
	flow.sport = sport;
	flow.dport = dport;
	prev = bpf_map_lookup_elem(&smesh_strict_flows, &flow);
	if (prev && now - prev->first_ns < SMESH_STRICT_FLOW_WINDOW_NS)
		return 0;
	seen.first_ns = now;
	bpf_map_update_elem(&smesh_strict_flows, &flow, &seen, BPF_ANY);
	__builtin_memcpy(key.src, src, 16);
	__builtin_memcpy(key.dst, dst, 16);
	key.dport = dport;
	count = bpf_map_lookup_elem(&smesh_strict_drop_stats, &key);
	if (count)
		__sync_fetch_and_add(count, 1);
	else
		bpf_map_update_elem(&smesh_strict_drop_stats, &key, &one, BPF_NOEXIST);
	return 1;
}

/* The inbound mode of (addr, port): the exact port's entry, else the address's port-0 entry, else 0. */
static __always_inline __u32 smesh_inbound_mode(const __u32 addr[4], __u16 port)
{
	struct smesh_addr_port key = {};
	struct smesh_strict_info *info;

	key.addr[0] = addr[0];
	key.addr[1] = addr[1];
	key.addr[2] = addr[2];
	key.addr[3] = addr[3];
	key.port = port;
	info = bpf_map_lookup_elem(&smesh_strict, &key);
	if (!info) {
		key.port = 0;
		info = bpf_map_lookup_elem(&smesh_strict, &key);
	}
	return info ? info->mode : 0;
}

/* Sources that are not "plaintext from outside the mesh": the node proxy (its upstream sockets bind the
 * capture address), loopback, the destination itself (a pod dialing its own address), and the node's
 * own host addresses the agent marked TRUSTED_SOURCE (kubelet probes). */
static __always_inline int smesh_trusted_source(const __u32 src[4], const __u32 dst[4])
{
	__u32 capture[4];

	if (smesh_addr_equal(src, dst))
		return 1;
	if (smesh_inbound_mode(src, 0) == SMESH_INBOUND_TRUSTED_SOURCE)
		return 1;
	if (smesh_addr_is_v4_mapped(src)) {
		if (smesh_capture_ip4 && src[3] == smesh_capture_ip4)
			return 1;
		return (bpf_ntohl(src[3]) >> 24) == 127;
	}
	if (src[0] == 0 && src[1] == 0 && src[2] == 0 && src[3] == bpf_htonl(1))
		return 1; /* ::1 */
	if (!smesh_capture_ip6_enabled)
		return 0;
	smesh_capture_addr6(capture);
	return smesh_addr_equal(src, capture);
}

static __always_inline int smesh_strict_check(struct __sk_buff *skb)
{
	__u32 src[4], dst[4];
	__u32 l4_offset, zero = 0, mode;
	__u8 flags;
	__be16 dport_be, sport_be;
	struct smesh_strict_counters *counters;

	if (skb->protocol == bpf_htons(SMESH_ETH_P_IP)) {
		struct iphdr ip;

		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)))
			return SMESH_SKB_PASS;
		if (ip.protocol != SMESH_IPPROTO_TCP)
			return SMESH_SKB_PASS;
		/* A non-first fragment carries no TCP header. */
		if (ip.frag_off & bpf_htons(0x1fff))
			return SMESH_SKB_PASS;
		smesh_addr_from_v4(src, ip.saddr);
		smesh_addr_from_v4(dst, ip.daddr);
		l4_offset = (__u32)ip.ihl * 4;
	} else if (skb->protocol == bpf_htons(SMESH_ETH_P_IPV6)) {
		struct ipv6hdr ip6;

		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)))
			return SMESH_SKB_PASS;
		/* Extension headers are not walked: only TCP directly after the fixed header is checked. */
		if (ip6.nexthdr != SMESH_IPPROTO_TCP)
			return SMESH_SKB_PASS;
		__builtin_memcpy(src, &ip6.saddr, 16);
		__builtin_memcpy(dst, &ip6.daddr, 16);
		l4_offset = sizeof(ip6);
	} else {
		return SMESH_SKB_PASS;
	}
	if (bpf_skb_load_bytes(skb, l4_offset + SMESH_TCP_FLAGS_OFFSET, &flags, 1))
		return SMESH_SKB_PASS;
	if (!(flags & SMESH_TCP_FLAG_SYN) || (flags & SMESH_TCP_FLAG_ACK))
		return SMESH_SKB_PASS;
	if (bpf_skb_load_bytes(skb, l4_offset + 2, &dport_be, sizeof(dport_be)))
		return SMESH_SKB_PASS;
	if (bpf_skb_load_bytes(skb, l4_offset, &sport_be, sizeof(sport_be)))
		return SMESH_SKB_PASS;
	mode = smesh_inbound_mode(dst, bpf_ntohs(dport_be));
	if (mode != SMESH_INBOUND_STRICT && mode != SMESH_INBOUND_PERMISSIVE)
		return SMESH_SKB_PASS;
	if (smesh_trusted_source(src, dst))
		return SMESH_SKB_PASS;
	/* A SYN the in-pod capture (sk_lookup) handed to the agent's listener: that socket is bound to another port
	 * (loopback, ephemeral) than the one dialled. It is the proxy's to decide, not this check's. */
	{
		struct bpf_sock *sk = skb->sk;

		if (sk)
			sk = bpf_sk_fullsock(sk);
		if (sk && sk->src_port != bpf_ntohs(dport_be))
			return SMESH_SKB_PASS;
	}
	counters = bpf_map_lookup_elem(&smesh_strict_stats, &zero);
	if (mode == SMESH_INBOUND_STRICT) {
		/* Counted per connection (first SYN of each flow), not per retransmitted SYN. */
		if (smesh_strict_new_flow(src, dst, bpf_ntohs(sport_be), bpf_ntohs(dport_be)) && counters)
			counters->dropped++;
		return SMESH_SKB_DROP;
	}
	/* A captured pod's plaintext that no capture listener took (the agent is restarting): held back, not let in. */
	{
		struct smesh_addr_port pod = {};

		__builtin_memcpy(pod.addr, dst, 16);
		if (bpf_map_lookup_elem(&smesh_inpod_pods, &pod))
			return SMESH_SKB_DROP;
	}
	if (counters)
		counters->plaintext++;
	return SMESH_SKB_PASS;
}

#endif /* SMESH_LIB_STRICT_H */
