/* Load-time configuration: read-only data the loader sets between open and load (no rebuilds). */
#ifndef SMESH_LIB_CONFIG_H
#define SMESH_LIB_CONFIG_H

#include "common.h"

/* Capture (outbound proxy) address. IPv4 in network order, port in host order. */
const volatile __u32 smesh_capture_ip4 = 0;
const volatile __u16 smesh_capture_port = 0;
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

#endif /* SMESH_LIB_CONFIG_H */
