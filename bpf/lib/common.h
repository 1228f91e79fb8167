/* Common includes, constants and address helpers for every smesh BPF program. */
#ifndef SMESH_LIB_COMMON_H
#define SMESH_LIB_COMMON_H

#include "../vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "../shared/abi.h"

/* uapi constants that vmlinux.h (BTF) does not carry because they are #defines. */
#define SMESH_AF_INET	  2
#define SMESH_AF_INET6	  10
#define SMESH_SOCK_STREAM 1
#define SMESH_SOL_IP	  0
#define SMESH_SOL_IPV6	  41

/* cgroup sock_addr / sockopt programs: 1 = let the operation proceed. */
#define SMESH_ALLOW 1

static __always_inline void smesh_addr_from_v4(__u32 out[4], __u32 ip4_be)
{
	out[0] = 0;
	out[1] = 0;
	out[2] = bpf_htonl(0x0000ffff);
	out[3] = ip4_be;
}

static __always_inline int smesh_addr_is_v4_mapped(const __u32 a[4])
{
	return a[0] == 0 && a[1] == 0 && a[2] == bpf_htonl(0x0000ffff);
}

static __always_inline int smesh_addr_equal(const __u32 a[4], const __u32 b[4])
{
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3];
}

#endif /* SMESH_LIB_COMMON_H */
