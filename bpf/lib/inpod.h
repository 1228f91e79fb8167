/* Inbound plaintext capture inside a pod's network namespace: an sk_lookup program (attached per pod
 * namespace with a netns link) hands a new TCP connection from outside the mesh, to a PERMISSIVE port
 * of a local meshed pod, to the listening socket the agent opened in that namespace, so that
 * AuthorizationPolicy applies to it (empty principal, source address as seen). The link is pinned, so the
 * capture outlives an agent restart: without a listener the SYN is held back (dropped silently at the pod's
 * socket, retransmitted later), never passed to the app unchecked. STRICT ports are left
 * to smesh_strict_check (kernel drop); trusted sources (the node proxy, loopback, the pod itself, the
 * node's probe addresses) go to the app as before. Established connections are never looked up here. */
#ifndef SMESH_LIB_INPOD_H
#define SMESH_LIB_INPOD_H

#include "common.h"
#include "strict.h"

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, SMESH_MAX_INPOD_LISTENERS);
	__type(key, struct smesh_addr_port);
	__type(value, __u32);
} smesh_inpod_listeners SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct smesh_inpod_counters);
} smesh_inpod_stats SEC(".maps");

static __always_inline int smesh_inpod_lookup(struct bpf_sk_lookup *ctx)
{
	struct smesh_addr_port key = {};
	struct smesh_inpod_counters *counters;
	struct bpf_sock *sk;
	__u32 src[4], zero = 0;
	long err;

	/* Context fields are read once, up front, as plain loads: the verifier refuses a ctx pointer with an offset. */
	__u32 family = ctx->family, protocol = ctx->protocol, local_port = ctx->local_port;
	__u32 local4 = ctx->local_ip4, remote4 = ctx->remote_ip4;

	asm volatile("" : "+r"(local4), "+r"(remote4));
	if (protocol != SMESH_IPPROTO_TCP)
		return SK_PASS;
	/* IPv4 only: the in-pod listener is an IPv4 socket (IPv6 plaintext reaches the app, as documented). */
	if (family != SMESH_AF_INET)
		return SK_PASS;
	smesh_addr_from_v4(key.addr, local4);
	smesh_addr_from_v4(src, remote4);
	/* Pod-addressed HBONE: <pod IP>:15008 belongs to the agent's server for that workload, before any pod listener. */
	if (local_port == SMESH_INPOD_HBONE_PORT && !smesh_addr_equal(src, key.addr)) {
		key.port = SMESH_INPOD_HBONE_PORT;
		sk = bpf_map_lookup_elem(&smesh_inpod_listeners, &key);
		if (sk) {
			bpf_sk_assign(ctx, sk, 0);
			bpf_sk_release(sk);
		}
		return SK_PASS;
	}
	if (smesh_inbound_mode(key.addr, (__u16)local_port) != SMESH_INBOUND_PERMISSIVE)
		return SK_PASS;
	if (smesh_trusted_source(src, key.addr))
		return SK_PASS;
	counters = bpf_map_lookup_elem(&smesh_inpod_stats, &zero);
	key.port = SMESH_INPOD_PLAINTEXT_PORT;
	sk = bpf_map_lookup_elem(&smesh_inpod_listeners, &key);
	/* No agent listens right now (it is restarting; the link is pinned). SK_DROP would answer with a RST; the SYN
	 * goes on to the pod's socket instead, where smesh_strict_check drops it silently (smesh_inpod_pods), so
	 * the client retransmits it and the next agent captures it. */
	if (!sk) {
		if (counters)
			counters->no_listener++;
		return SK_PASS;
	}
	err = bpf_sk_assign(ctx, sk, 0);
	bpf_sk_release(sk);
	if (err) {
		if (counters)
			counters->assign_failed++;
		return SK_PASS;
	}
	if (counters)
		counters->captured++;
	return SK_PASS;
}

#endif /* SMESH_LIB_INPOD_H */
