/* Original-destination recovery for the proxy: sockops records an established redirected
 * connection under its 4-tuple (client end, capture tuple), and cgroup/getsockopt answers SO_ORIGINAL_DST on
 * the proxy's accepted socket by looking its (peer, local) addresses up. */
#ifndef SMESH_LIB_CONNTRACK_H
#define SMESH_LIB_CONNTRACK_H

#include "common.h"
#include "config.h"
#include "origdst.h"

struct smesh_sockaddr_in {
	__u16 family;
	__be16 port;
	__u32 addr;
	__u8 zero[8];
};

struct smesh_sockaddr_in6 {
	__u16 family;
	__be16 port;
	__u32 flowinfo;
	__u32 addr[4];
	__u32 scope_id;
};

/* The established socket's 4-tuple as smesh_conns_v2 keys it: src = this (client) end, dst = the peer (a capture
 * tuple when redirected). Returns 0 for families other than IPv4/IPv6. */
static __always_inline int smesh_sockops_flow(struct bpf_sock_ops *skops, struct smesh_flow_key *key)
{
	/* Volatile loads: clang otherwise merges the ip4 / ip6[3] branches into one load through an offset ctx
	 * pointer, which the verifier rejects ("dereference of modified ctx ptr"). */
	__u32 family = skops->family;
	__u32 local4 = *(volatile __u32 *)&skops->local_ip4;
	__u32 remote4 = *(volatile __u32 *)&skops->remote_ip4;

	if (family == SMESH_AF_INET) {
		smesh_addr_from_v4(key->src, local4);
		smesh_addr_from_v4(key->dst, remote4);
	} else if (family == SMESH_AF_INET6) {
		key->src[0] = *(volatile __u32 *)&skops->local_ip6[0];
		key->src[1] = *(volatile __u32 *)&skops->local_ip6[1];
		key->src[2] = *(volatile __u32 *)&skops->local_ip6[2];
		key->src[3] = *(volatile __u32 *)&skops->local_ip6[3];
		key->dst[0] = *(volatile __u32 *)&skops->remote_ip6[0];
		key->dst[1] = *(volatile __u32 *)&skops->remote_ip6[1];
		key->dst[2] = *(volatile __u32 *)&skops->remote_ip6[2];
		key->dst[3] = *(volatile __u32 *)&skops->remote_ip6[3];
	} else {
		return 0;
	}
	key->sport = (__u16)skops->local_port;		   /* sock_ops local_port is already host order */
	key->dport = (__u16)bpf_ntohl(skops->remote_port); /* remote_port is network order, in the upper half */
	return 1;
}

static __always_inline int smesh_track_established(struct bpf_sock_ops *skops)
{
	struct smesh_flow_key key = {};
	struct smesh_orig_dst orig;
	struct smesh_orig_dst *found = smesh_socket_orig(skops);

	if (!smesh_sockops_flow(skops, &key))
		return 0;
	if (!found) {
		/* Dialing a capture tuple without a redirect: drop any stale record that an earlier, closed
		 * connection left under this 4-tuple, so the proxy cannot be told a wrong original destination
		 * (and refuses the connection as unknown instead). */
		if (smesh_addr_is_v4_mapped(key.dst) && smesh_is_capture_ip4(key.dst[3]))
			bpf_map_delete_elem(&smesh_conns_v2, &key);
		return 0;
	}
	orig = *found;
	bpf_map_update_elem(&smesh_conns_v2, &key, &orig, BPF_ANY);
	return 0;
}

static __always_inline int smesh_answer_original_dst(struct bpf_sockopt *ctx)
{
	struct smesh_flow_key key = {};
	struct smesh_orig_dst *orig;
	struct bpf_sock *sk = ctx->sk;
	int level = ctx->level;

	if (ctx->optname != SMESH_SO_ORIGINAL_DST || (level != SMESH_SOL_IP && level != SMESH_SOL_IPV6))
		return SMESH_ALLOW;
	if (!sk)
		return SMESH_ALLOW;
	/* The proxy's accepted socket: its peer is the client end (src of the key), its local end the capture tuple. */
	if (sk->family == SMESH_AF_INET) {
		smesh_addr_from_v4(key.src, sk->dst_ip4);
		smesh_addr_from_v4(key.dst, sk->src_ip4);
	} else if (sk->family == SMESH_AF_INET6) {
		key.src[0] = sk->dst_ip6[0];
		key.src[1] = sk->dst_ip6[1];
		key.src[2] = sk->dst_ip6[2];
		key.src[3] = sk->dst_ip6[3];
		key.dst[0] = sk->src_ip6[0];
		key.dst[1] = sk->src_ip6[1];
		key.dst[2] = sk->src_ip6[2];
		key.dst[3] = sk->src_ip6[3];
	} else {
		return SMESH_ALLOW;
	}
	key.sport = bpf_ntohs(sk->dst_port);
	key.dport = (__u16)sk->src_port; /* bpf_sock src_port is host order */
	orig = bpf_map_lookup_elem(&smesh_conns_v2, &key);
	if (!orig)
		return SMESH_ALLOW;

	if (level == SMESH_SOL_IP) {
		struct smesh_sockaddr_in *sin = ctx->optval;

		if (!smesh_addr_is_v4_mapped(orig->addr))
			return SMESH_ALLOW;
		if ((void *)(sin + 1) > ctx->optval_end)
			return SMESH_ALLOW;
		sin->family = SMESH_AF_INET;
		sin->port = bpf_htons(orig->port);
		sin->addr = orig->addr[3];
		__builtin_memset(sin->zero, 0, sizeof(sin->zero));
		ctx->optlen = sizeof(*sin);
	} else {
		struct smesh_sockaddr_in6 *sin6 = ctx->optval;

		if ((void *)(sin6 + 1) > ctx->optval_end)
			return SMESH_ALLOW;
		sin6->family = SMESH_AF_INET6;
		sin6->port = bpf_htons(orig->port);
		sin6->flowinfo = 0;
		sin6->addr[0] = orig->addr[0];
		sin6->addr[1] = orig->addr[1];
		sin6->addr[2] = orig->addr[2];
		sin6->addr[3] = orig->addr[3];
		sin6->scope_id = 0;
		ctx->optlen = sizeof(*sin6);
	}
	ctx->retval = 0;
	return SMESH_ALLOW;
}

#endif /* SMESH_LIB_CONNTRACK_H */
