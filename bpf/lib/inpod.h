/* Inbound plaintext capture inside a pod's network namespace: an sk_lookup program (attached per pod
 * namespace with a netns link) hands a new TCP connection from outside the mesh, to a PERMISSIVE port
 * of a local meshed pod, to the listening socket the agent opened in that namespace, so that
 * AuthorizationPolicy applies to it (empty principal, source address as seen). The link is pinned, so the
 * capture outlives an agent restart: without a listener the SYN is held back (dropped silently at the pod's
 * socket, retransmitted later), never passed to the app unchecked. STRICT ports are left
 * to smesh_strict_check (kernel drop); trusted sources (the node proxy, loopback, the pod itself, the
 * node's probe addresses) go to the app as before. Established connections are never looked up here. IPv4 and
 * IPv6 alike: each pod address has a listener of its own family. */
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

	/* Context fields are read once, up front, as plain loads into scalars: the verifier refuses a ctx pointer with
	 * an offset ("dereference of modified ctx ptr"), which the compiler would otherwise form for local_ip6[i] and
	 * remote_ip6[i] (and reuse across the branches below). The empty asm makes each value opaque, so no load is
	 * re-derived from ctx later. The IPv6 words are zero for IPv4 lookups. */
	__u32 family = ctx->family, protocol = ctx->protocol, local_port = ctx->local_port;
	__u32 local4 = ctx->local_ip4, remote4 = ctx->remote_ip4;
	__u32 l6_0 = ctx->local_ip6[0], l6_1 = ctx->local_ip6[1], l6_2 = ctx->local_ip6[2], l6_3 = ctx->local_ip6[3];
	__u32 r6_0 = ctx->remote_ip6[0], r6_1 = ctx->remote_ip6[1], r6_2 = ctx->remote_ip6[2],
	      r6_3 = ctx->remote_ip6[3];

	asm volatile("" : "+r"(local4), "+r"(remote4));
	asm volatile("" : "+r"(l6_0), "+r"(l6_1), "+r"(l6_2), "+r"(l6_3));
	asm volatile("" : "+r"(r6_0), "+r"(r6_1), "+r"(r6_2), "+r"(r6_3));
	if (protocol != SMESH_IPPROTO_TCP)
		return SK_PASS;
	/* Keys are 16-byte addresses (IPv4 v4-mapped); a pod address maps to a listener of its own family (an IPv4
	 * socket cannot take an IPv6 lookup: bpf_sk_assign answers -EAFNOSUPPORT). */
	if (family == SMESH_AF_INET) {
		smesh_addr_from_v4(key.addr, local4);
		smesh_addr_from_v4(src, remote4);
	} else if (family == SMESH_AF_INET6) {
		key.addr[0] = l6_0;
		key.addr[1] = l6_1;
		key.addr[2] = l6_2;
		key.addr[3] = l6_3;
		src[0] = r6_0;
		src[1] = r6_1;
		src[2] = r6_2;
		src[3] = r6_3;
	} else {
		return SK_PASS;
	}
	/* Pod-addressed HBONE: <pod IP>:15008 belongs to the agent's server for that workload, before any pod listener.
	 */
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
