/* smesh entry programs: outbound capture (connect4/6), original-destination recovery (sockops,
 * getsockopt), redirect transparency (getpeername4/6), connect-time deny (in connect4/6) and the
 * inbound STRICT/PERMISSIVE check (cgroup_skb/ingress) attach to the node's pod cgroup root; the inbound
 * plaintext capture (sk_lookup) attaches to each local meshed pod's network namespace, and the capture-tuple
 * steering (sk_lookup) to the node's (the agent's) network namespace; bandwidth pacing (tc, per pod device) to a
 * limited pod's own interface (egress) and its host-side veth (ingress). */
#include "lib/common.h"
#include "lib/config.h"
#include "lib/redirect.h"
#include "lib/conntrack.h"
#include "lib/strict.h"
#include "lib/inpod.h"
#include "lib/capture_lookup.h"
#include "lib/bandwidth.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("cgroup/connect4")
int smesh_connect4(struct bpf_sock_addr *ctx)
{
	return smesh_redirect4(ctx);
}

SEC("cgroup/connect6")
int smesh_connect6(struct bpf_sock_addr *ctx)
{
	return smesh_redirect6(ctx);
}

SEC("sockops")
int smesh_sockops(struct bpf_sock_ops *skops)
{
	if (skops->op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB)
		smesh_track_established(skops);
	return 1;
}

SEC("cgroup/getsockopt")
int smesh_getsockopt(struct bpf_sockopt *ctx)
{
	return smesh_answer_original_dst(ctx);
}

SEC("cgroup/getpeername4")
int smesh_getpeername4(struct bpf_sock_addr *ctx)
{
	return smesh_unredirect_peer4(ctx);
}

SEC("cgroup/getpeername6")
int smesh_getpeername6(struct bpf_sock_addr *ctx)
{
	return smesh_unredirect_peer6(ctx);
}

SEC("cgroup_skb/ingress")
int smesh_strict_ingress(struct __sk_buff *skb)
{
	return smesh_strict_check(skb);
}

SEC("sk_lookup")
int smesh_inbound_lookup(struct bpf_sk_lookup *ctx)
{
	return smesh_inpod_lookup(ctx);
}

SEC("sk_lookup")
int smesh_capture_lookup(struct bpf_sk_lookup *ctx)
{
	return smesh_capture_steer(ctx);
}

SEC("tc")
int smesh_bandwidth_egress(struct __sk_buff *skb)
{
	return smesh_bw_pace(skb, SMESH_BW_EGRESS);
}

SEC("tc")
int smesh_bandwidth_ingress(struct __sk_buff *skb)
{
	return smesh_bw_pace(skb, SMESH_BW_INGRESS);
}
