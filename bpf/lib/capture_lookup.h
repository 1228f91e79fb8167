/* Outbound capture tuples in the node's network namespace: an sk_lookup program (attached to the agent's
 * namespace with a pinned netns link) hands a new TCP connection to any capture tuple — smesh_capture_ip4 +
 * [0, smesh_capture_spread) on smesh_capture_port, where connect4/6 spread redirected connections — to the one
 * outbound listener in smesh_capture_listener. The addresses are local (a local route for the capture /24 on
 * lo), so without a registered listener (agent restarting) a SYN to them is refused as it is on the capture
 * address itself. Established connections are never looked up here. */
#ifndef SMESH_LIB_CAPTURE_LOOKUP_H
#define SMESH_LIB_CAPTURE_LOOKUP_H

#include "common.h"
#include "config.h"

#ifndef SMESH_IPPROTO_TCP
#define SMESH_IPPROTO_TCP 6
#endif

struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} smesh_capture_listener SEC(".maps");

static __always_inline int smesh_capture_steer(struct bpf_sk_lookup *ctx)
{
	struct bpf_sock *sk;
	__u32 zero = 0;

	/* Context fields are read once, up front, as plain loads: the verifier refuses a ctx pointer with an offset. */
	__u32 family = ctx->family, protocol = ctx->protocol, local_port = ctx->local_port;
	__u32 local4 = ctx->local_ip4;

	asm volatile("" : "+r"(local4));
	if (protocol != SMESH_IPPROTO_TCP || family != SMESH_AF_INET)
		return SK_PASS;
	if (local_port != smesh_capture_port || !smesh_is_capture_ip4(local4))
		return SK_PASS;
	sk = bpf_map_lookup_elem(&smesh_capture_listener, &zero);
	if (!sk)
		return SK_PASS;
	bpf_sk_assign(ctx, sk, 0);
	bpf_sk_release(sk);
	return SK_PASS;
}

#endif /* SMESH_LIB_CAPTURE_LOOKUP_H */
