/* Outbound capture: decide whether a connect() from an enrolled pod to a meshed destination is
 * redirected to one of the node's capture tuples, and remember where it was going. IPv4 (and v4-mapped)
 * connections are spread over smesh_capture_spread capture addresses by a hash of the socket cookie, so a
 * pod's connections to one destination no longer share a single 4-tuple space (issue 12 item 2); the
 * node-netns sk_lookup program (capture_lookup.h) steers them all into the one outbound listener. The
 * native IPv6 capture address stays one tuple. */
#ifndef SMESH_LIB_REDIRECT_H
#define SMESH_LIB_REDIRECT_H

#include "common.h"
#include "config.h"
#include "pods.h"
#include "dests.h"
#include "origdst.h"
#include "deny.h"

#define SMESH_PASS     0
#define SMESH_REDIRECT 1
#define SMESH_REFUSE   2

/* SMESH_REDIRECT when the connection should go to `capture` instead (and records the original),
 * SMESH_REFUSE when policy always denies it (checked first: a denied destination is never proxied),
 * else SMESH_PASS. */
static __always_inline int smesh_should_redirect(struct bpf_sock_addr *ctx, const __u32 dst[4], __u16 port,
						 const __u32 capture[4])
{
	struct smesh_pod_info *pod;

	if (ctx->type != SMESH_SOCK_STREAM)
		return SMESH_PASS;
	/* Loop guard: the proxy's listener (or anything on a capture address) is never captured. */
	if (smesh_addr_equal(dst, capture))
		return SMESH_PASS;
	if (smesh_addr_is_v4_mapped(dst) && smesh_is_capture_ip4(dst[3]))
		return SMESH_PASS;
	pod = smesh_pod_of(ctx);
	if (!pod)
		return SMESH_PASS;
	if (smesh_connect_denied(pod->workload_id, dst, port))
		return SMESH_REFUSE;
	if (!smesh_dest_is_meshed(dst, port))
		return SMESH_PASS;
	smesh_remember_socket(ctx, dst, port, pod->workload_id);
	return SMESH_REDIRECT;
}

/* The IPv4 capture address (network order) for this connection: smesh_capture_ip4 + a hash of the socket cookie
 * modulo the spread. Per connection rather than per destination, so that even one hot destination (a client
 * opening and closing connections to one service) gets every tuple's port range. */
static __always_inline __u32 smesh_capture_addr4(struct bpf_sock_addr *ctx)
{
	__u32 spread = smesh_capture_spread;
	__u64 h;

	if (spread <= 1)
		return smesh_capture_ip4;
	h = bpf_get_socket_cookie(ctx);
	/* 64-bit finalizer (murmur3 fmix64): sequential cookies land on well-spread indexes. */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return bpf_htonl(bpf_ntohl(smesh_capture_ip4) + (__u32)(h % spread));
}

static __always_inline int smesh_redirect4(struct bpf_sock_addr *ctx)
{
	__u32 dst[4], capture[4];
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	__u32 capture_ip4 = smesh_capture_ip4;
	int verdict;

	if (!capture_ip4)
		return SMESH_ALLOW;
	smesh_addr_from_v4(dst, ctx->user_ip4);
	smesh_addr_from_v4(capture, capture_ip4);
	verdict = smesh_should_redirect(ctx, dst, port, capture);
	if (verdict == SMESH_REFUSE)
		return smesh_refuse_connect();
	if (verdict == SMESH_REDIRECT) {
		ctx->user_ip4 = smesh_capture_addr4(ctx);
		ctx->user_port = bpf_htons(smesh_capture_port);
	}
	return SMESH_ALLOW;
}

static __always_inline int smesh_redirect6(struct bpf_sock_addr *ctx)
{
	__u32 dst[4], capture[4];
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	int verdict;

	dst[0] = ctx->user_ip6[0];
	dst[1] = ctx->user_ip6[1];
	dst[2] = ctx->user_ip6[2];
	dst[3] = ctx->user_ip6[3];
	if (smesh_addr_is_v4_mapped(dst)) {
		/* An AF_INET6 socket connecting to ::ffff:a.b.c.d: capture on the v4-mapped capture address. */
		if (!smesh_capture_ip4)
			return SMESH_ALLOW;
		smesh_addr_from_v4(capture, smesh_capture_ip4);
	} else {
		if (!smesh_capture_ip6_enabled)
			return SMESH_ALLOW;
		smesh_capture_addr6(capture);
	}
	verdict = smesh_should_redirect(ctx, dst, port, capture);
	if (verdict == SMESH_REFUSE)
		return smesh_refuse_connect();
	if (verdict == SMESH_REDIRECT) {
		if (smesh_addr_is_v4_mapped(capture))
			capture[3] = smesh_capture_addr4(ctx);
		ctx->user_ip6[0] = capture[0];
		ctx->user_ip6[1] = capture[1];
		ctx->user_ip6[2] = capture[2];
		ctx->user_ip6[3] = capture[3];
		ctx->user_port = bpf_htons(smesh_capture_port);
	}
	return SMESH_ALLOW;
}

/* getpeername on a redirected socket reports the original destination, so the app never sees the
 * capture address. */
static __always_inline int smesh_unredirect_peer4(struct bpf_sock_addr *ctx)
{
	struct smesh_orig_dst *orig = smesh_socket_orig(ctx);

	if (orig && smesh_addr_is_v4_mapped(orig->addr)) {
		ctx->user_ip4 = orig->addr[3];
		ctx->user_port = bpf_htons(orig->port);
	}
	return SMESH_ALLOW;
}

static __always_inline int smesh_unredirect_peer6(struct bpf_sock_addr *ctx)
{
	struct smesh_orig_dst *orig = smesh_socket_orig(ctx);

	if (orig) {
		ctx->user_ip6[0] = orig->addr[0];
		ctx->user_ip6[1] = orig->addr[1];
		ctx->user_ip6[2] = orig->addr[2];
		ctx->user_ip6[3] = orig->addr[3];
		ctx->user_port = bpf_htons(orig->port);
	}
	return SMESH_ALLOW;
}

#endif /* SMESH_LIB_REDIRECT_H */
