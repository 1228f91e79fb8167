/* Original-destination recovery for the proxy: sockops records an established redirected
 * connection under the client's local address, and cgroup/getsockopt answers SO_ORIGINAL_DST on the
 * proxy's accepted socket by looking its peer address up. */
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

/* True when an established socket's peer is the IPv4 capture address (AF_INET, or v4-mapped on AF_INET6). */
static __always_inline int smesh_dials_capture4(struct bpf_sock_ops *skops)
{
	/* Volatile loads: clang otherwise merges the remote_ip4 / remote_ip6[3] branches into one load
	 * through an offset ctx pointer, which the verifier rejects ("dereference of modified ctx ptr"). */
	__u32 family = skops->family;
	__u32 remote4 = *(volatile __u32 *)&skops->remote_ip4;
	__u32 remote[4];

	if (family == SMESH_AF_INET)
		return remote4 == smesh_capture_ip4;
	if (family != SMESH_AF_INET6)
		return 0;
	remote[0] = *(volatile __u32 *)&skops->remote_ip6[0];
	remote[1] = *(volatile __u32 *)&skops->remote_ip6[1];
	remote[2] = *(volatile __u32 *)&skops->remote_ip6[2];
	remote[3] = *(volatile __u32 *)&skops->remote_ip6[3];
	return smesh_addr_is_v4_mapped(remote) && remote[3] == smesh_capture_ip4;
}

static __always_inline int smesh_track_established(struct bpf_sock_ops *skops)
{
	struct smesh_addr_port key = {};
	struct smesh_orig_dst orig;
	struct smesh_orig_dst *found = smesh_socket_orig(skops);

	if (skops->family == SMESH_AF_INET) {
		smesh_addr_from_v4(key.addr, skops->local_ip4);
	} else if (skops->family == SMESH_AF_INET6) {
		key.addr[0] = skops->local_ip6[0];
		key.addr[1] = skops->local_ip6[1];
		key.addr[2] = skops->local_ip6[2];
		key.addr[3] = skops->local_ip6[3];
	} else {
		return 0;
	}
	key.port = (__u16)skops->local_port; /* sock_ops local_port is already host order */
	if (!found) {
		/* Dialing the capture address without a redirect: drop any stale record that an earlier,
		 * closed connection left under this local address, so the proxy cannot be told a wrong
		 * original destination (and refuses the connection as unknown instead). */
		if (smesh_dials_capture4(skops))
			bpf_map_delete_elem(&smesh_conns, &key);
		return 0;
	}
	orig = *found;
	bpf_map_update_elem(&smesh_conns, &key, &orig, BPF_ANY);
	return 0;
}

static __always_inline int smesh_answer_original_dst(struct bpf_sockopt *ctx)
{
	struct smesh_addr_port key = {};
	struct smesh_orig_dst *orig;
	struct bpf_sock *sk = ctx->sk;
	int level = ctx->level;

	if (ctx->optname != SMESH_SO_ORIGINAL_DST || (level != SMESH_SOL_IP && level != SMESH_SOL_IPV6))
		return SMESH_ALLOW;
	if (!sk)
		return SMESH_ALLOW;
	if (sk->family == SMESH_AF_INET) {
		smesh_addr_from_v4(key.addr, sk->dst_ip4);
	} else if (sk->family == SMESH_AF_INET6) {
		key.addr[0] = sk->dst_ip6[0];
		key.addr[1] = sk->dst_ip6[1];
		key.addr[2] = sk->dst_ip6[2];
		key.addr[3] = sk->dst_ip6[3];
	} else {
		return SMESH_ALLOW;
	}
	key.port = bpf_ntohs(sk->dst_port);
	orig = bpf_map_lookup_elem(&smesh_conns, &key);
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
