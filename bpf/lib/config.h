/* Load-time configuration: read-only data the loader sets between open and load (no rebuilds). */
#ifndef SMESH_LIB_CONFIG_H
#define SMESH_LIB_CONFIG_H

#include "common.h"

/* Capture (outbound proxy) address. IPv4 in network order, port in host order. */
const volatile __u32 smesh_capture_ip4 = 0;
const volatile __u16 smesh_capture_port = 0;
/* Capture tuples: redirected IPv4 connections go to smesh_capture_ip4 + i (i < smesh_capture_spread, same /24),
 * all on smesh_capture_port, steered into the one outbound listener by smesh_capture_lookup (node netns). One
 * tuple (1) is the whole 4-tuple space a pod had before: client-closed TIME_WAITs capped it (issue 12 item 2). */
const volatile __u32 smesh_capture_spread = 1;
/* Optional IPv6 capture address (network order words); used only when smesh_capture_ip6_enabled. */
const volatile __u32 smesh_capture_ip6[4] = {0, 0, 0, 0};
const volatile __u8 smesh_capture_ip6_enabled = 0;

static __always_inline void smesh_capture_addr6(__u32 out[4])
{
	out[0] = smesh_capture_ip6[0];
	out[1] = smesh_capture_ip6[1];
	out[2] = smesh_capture_ip6[2];
	out[3] = smesh_capture_ip6[3];
}

/* Whether the IPv4 address `ip4_be` (network order) is one of the capture tuples' addresses. */
static __always_inline int smesh_is_capture_ip4(__u32 ip4_be)
{
	__u32 base = smesh_capture_ip4;
	__u32 spread = smesh_capture_spread;

	if (!base)
		return 0;
	if (spread < 1)
		spread = 1;
	return bpf_ntohl(ip4_be) - bpf_ntohl(base) < spread;
}

#endif /* SMESH_LIB_CONFIG_H */
