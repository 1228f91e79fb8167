/* Per-pod bandwidth limits by earliest-departure-time pacing (as Cilium's bandwidth manager does): a tc program on
 * the device that transmits a pod's packets gives each one a departure time (skb->tstamp) no earlier than the pod's
 * previous packet plus that packet's length at the pod's rate; the fq qdisc on the same device holds the packet until
 * then. TCP senders feel it as back-pressure (TCP small queues), so they are slowed, not dropped. State is one map
 * entry per (pod address, direction); packets of addresses without an entry pass untouched. */
#ifndef SMESH_LIB_BANDWIDTH_H
#define SMESH_LIB_BANDWIDTH_H

#include "common.h"

#define SMESH_ETH_HLEN	     14
#define SMESH_ETH_P_IP	     0x0800
#define SMESH_ETH_P_IPV6     0x86DD
#define SMESH_TC_ACT_OK	     0
#define SMESH_TC_ACT_SHOT    2
#define SMESH_NSEC_PER_SEC   1000000000ULL
/* t_last is shared by every CPU sending for the pod: one plain load and store each, races cost a packet's slot at most.
 */
#define SMESH_BW_READ(x)     (*(volatile __u64 *)&(x))
#define SMESH_BW_WRITE(x, v) (*(volatile __u64 *)&(x) = (v))

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SMESH_MAX_BANDWIDTH);
	__type(key, struct smesh_bw_key);
	__type(value, struct smesh_bw_info);
} smesh_bandwidth SEC(".maps");

/* direction SMESH_BW_EGRESS keys on the source address (the pod sends), SMESH_BW_INGRESS on the destination. */
static __always_inline int smesh_bw_pace(struct __sk_buff *skb, __u32 direction)
{
	struct smesh_bw_key key = {};
	struct smesh_bw_info *bw;
	__u64 now, t, t_next, t_last, len, rate;
	__u32 v4;
	/* Context fields read once into opaque scalars: the compiler would otherwise form one ctx pointer with an
	 * offset for wire_len/len (the verifier refuses "dereference of modified ctx ptr"). */
	__u32 wire_len = skb->wire_len, skb_len = skb->len;
	__u64 tstamp = skb->tstamp;

	asm volatile("" : "+r"(wire_len), "+r"(skb_len));
	asm volatile("" : "+r"(tstamp));
	key.direction = direction;
	if (skb->protocol == bpf_htons(SMESH_ETH_P_IP)) {
		/* iphdr: saddr at 12, daddr at 16 */
		if (bpf_skb_load_bytes(skb, SMESH_ETH_HLEN + (direction == SMESH_BW_EGRESS ? 12 : 16), &v4, 4))
			return SMESH_TC_ACT_OK;
		smesh_addr_from_v4(key.addr, v4);
	} else if (skb->protocol == bpf_htons(SMESH_ETH_P_IPV6)) {
		/* ipv6hdr: saddr at 8, daddr at 24 */
		if (bpf_skb_load_bytes(skb, SMESH_ETH_HLEN + (direction == SMESH_BW_EGRESS ? 8 : 24), key.addr, 16))
			return SMESH_TC_ACT_OK;
	} else {
		return SMESH_TC_ACT_OK;
	}
	bw = bpf_map_lookup_elem(&smesh_bandwidth, &key);
	if (!bw)
		return SMESH_TC_ACT_OK;
	rate = bw->bytes_per_sec;
	if (!rate)
		return SMESH_TC_ACT_OK;
	now = bpf_ktime_get_ns();
	/* A departure time the stack set already (TCP's own pacing) is kept if later; anything outside [now, now +
	 * horizon] is not a monotonic departure time (e.g. a receive timestamp of a forwarded packet) and is ignored.
	 */
	t = tstamp;
	if (t < now || t > now + SMESH_BW_HORIZON_NS)
		t = now;
	/* wire_len: the bytes the packet occupies on the wire, every segment of a GSO packet with its headers. */
	len = wire_len ? wire_len : skb_len;
	t_last = SMESH_BW_READ(bw->t_last);
	t_next = t_last + len * SMESH_NSEC_PER_SEC / rate;
	if (t_next <= t) {
		SMESH_BW_WRITE(bw->t_last, t);
		return SMESH_TC_ACT_OK;
	}
	if (t_next - now >= SMESH_BW_HORIZON_NS) {
		__sync_fetch_and_add(&bw->dropped, 1);
		return SMESH_TC_ACT_SHOT;
	}
	SMESH_BW_WRITE(bw->t_last, t_next);
	skb->tstamp = t_next;
	return SMESH_TC_ACT_OK;
}

#endif /* SMESH_LIB_BANDWIDTH_H */
