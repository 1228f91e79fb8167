/* smesh BPF ABI: map key/value layouts shared by bpf/ programs and the native loader.
 *
 * Rules: every struct has explicit padding and a fixed size (checked below); a layout change gets a
 * new map name with a _v2 suffix; retired fields are kept, never reused.
 * Addresses are 16 bytes in network byte order (IPv4 as v4-mapped ::ffff:a.b.c.d), stored as four
 * __u32 words so BPF can copy them with 4-byte loads. Ports are in HOST byte order.
 */
#ifndef SMESH_SHARED_ABI_H
#define SMESH_SHARED_ABI_H

#ifdef __BPF__
/* vmlinux.h provides the __u8/__u16/__u32/__u64 types. */
#else
#include <linux/types.h>
#endif

#define SMESH_MAX_PODS		    16384
#define SMESH_MAX_DESTS		    65536
#define SMESH_MAX_SOCKS		    65536
#define SMESH_MAX_CONNS		    65536
#define SMESH_MAX_DENY		    65536
#define SMESH_MAX_STRICT	    65536
#define SMESH_MAX_INPOD_LISTENERS   16384
#define SMESH_MAX_DENY_STATS	    65536
#define SMESH_MAX_STRICT_FLOWS	    65536
#define SMESH_MAX_STRICT_DROP_STATS 16384
/* Most capture tuples (addresses smesh_capture_ip4 + [0, spread), one /24 at most, .255 excluded). */
#define SMESH_MAX_CAPTURE_SPREAD    254

/* smesh_pods: key = netns cookie (__u64, from bpf_get_netns_cookie / SO_NETNS_COOKIE). */
struct smesh_pod_info {
	__u32 workload_id;
	__u32 flags; /* reserved, 0 */
};

/* smesh_dests key. (Also the key of the retired smesh_conns, keyed by the client address alone: with several
 * capture tuples one client port can be in use towards two of them at once; see smesh_conns_v2.) */
struct smesh_addr_port {
	__u32 addr[4]; /* network order, v4-mapped for IPv4 */
	__u16 port;    /* host order; 0 in smesh_dests = every port */
	__u16 pad;     /* must be 0 */
};

/* smesh_dests value. */
struct smesh_dest_info {
	__u32 flags; /* reserved, 0 */
};

/* smesh_socks (socket cookie → original destination) and smesh_conns_v2 values. */
struct smesh_orig_dst {
	__u32 addr[4];	   /* network order, v4-mapped for IPv4 */
	__u16 port;	   /* host order */
	__u16 pad;	   /* 0 */
	__u32 workload_id; /* enrolled workload that made the connection */
	__u32 pad2;	   /* reserved, 0 */
};

/* smesh_deny key: connect()s of an enrolled workload to (addr, port) fail at once with ECONNREFUSED.
 * port 0 = every port of addr. Value: struct smesh_dest_info (flags reserved, 0). */
struct smesh_deny_key {
	__u32 workload_id; /* as in smesh_pod_info.workload_id */
	__u32 addr[4];	   /* network order, v4-mapped for IPv4 */
	__u16 port;	   /* host order; 0 = every port */
	__u16 pad;	   /* must be 0 */
};

/* smesh_strict: key struct smesh_addr_port (a local pod address; port 0 = every port of it, an exact
 * port entry overrides the port-0 entry). Inbound plaintext TCP SYNs (source neither the node proxy's
 * capture address nor loopback) to a STRICT entry are dropped; to a PERMISSIVE entry they pass and are
 * counted. Addresses without an entry are not local meshed pods: untouched, uncounted.
 * A port-0 entry with mode TRUSTED_SOURCE names a SOURCE address instead: one of the node's own host
 * addresses, from which kubelet probes arrive; plaintext from it is neither dropped nor counted (the
 * role of the 169.254.7.127 probe SNAT in Istio ambient). Host and pod addresses never coincide. */
#define SMESH_INBOUND_STRICT	     1
#define SMESH_INBOUND_PERMISSIVE     2
#define SMESH_INBOUND_TRUSTED_SOURCE 3
struct smesh_strict_info {
	__u32 mode; /* SMESH_INBOUND_* */
};

/* smesh_strict_stats: per-CPU array with one element. */
struct smesh_strict_counters {
	__u64 dropped;	 /* plaintext SYNs dropped (STRICT) */
	__u64 plaintext; /* plaintext SYNs let through (PERMISSIVE) */
};

/* smesh_inpod_listeners (SOCKHASH): key struct smesh_addr_port = (a local pod address, capture port)
 * → a listening socket the agent opened inside that pod's network namespace (bound to loopback, port 0).
 * The sk_lookup program attached to the pod's namespace hands it new inbound TCP connections:
 * port SMESH_INPOD_PLAINTEXT_PORT = plaintext to a PERMISSIVE pod port from outside the mesh (the
 * accepted socket keeps the original destination as its local address and the client as its peer). */
#define SMESH_INPOD_PLAINTEXT_PORT 15006
/* port SMESH_INPOD_HBONE_PORT = HBONE to `<pod IP>:15008` (ztunnel's pod-addressed tunnel), from any source but
 * the pod itself, whatever the pod's mTLS mode: the agent's per-workload HBONE server takes it. */
#define SMESH_INPOD_HBONE_PORT	   15008

/* smesh_inpod_pods (HASH): key struct smesh_addr_port (a local pod address, port 0) → struct smesh_dest_info:
 * pods whose plaintext the agent captures. Kept across agent restarts (the map is pinned): a plaintext SYN to
 * such a pod that was not handed to a capture listener (none registered while the agent restarts) reaches the
 * pod's socket, where smesh_strict_check drops it silently, so the client retransmits and the next agent
 * captures it. */

/* smesh_inpod_stats: per-CPU array with one element. */
struct smesh_inpod_counters {
	__u64 captured;	     /* plaintext SYNs handed to the agent's in-pod listener */
	__u64 no_listener;   /* plaintext SYNs to a PERMISSIVE pod with no listener registered (agent restarting) */
	__u64 assign_failed; /* bpf_sk_assign refused the listener */
	__u64 reserved;	     /* 0 */
};

/* smesh_deny_stats (PERCPU_HASH): key struct smesh_deny_key (the smesh_deny entry that matched, port 0 when
 * the every-port entry did) → __u64 connect() calls refused: one per connection attempt. */

/* smesh_strict_flows (LRU_HASH): a dropped STRICT SYN's flow → struct smesh_strict_flow_seen, so that its
 * retransmissions are not counted as new connections (a connection is counted once per SMESH_STRICT_FLOW_WINDOW_NS). */
struct smesh_flow_key {
	__u32 src[4]; /* network order, v4-mapped */
	__u32 dst[4]; /* network order, v4-mapped */
	__u16 sport;  /* host order */
	__u16 dport;  /* host order */
};
struct smesh_strict_flow_seen {
	__u64 first_ns; /* bpf_ktime_get_ns of the first SYN counted */
};
#define SMESH_STRICT_FLOW_WINDOW_NS (180ULL * 1000000000ULL)

/* smesh_strict_drop_stats (LRU_HASH): key struct smesh_strict_drop_key → __u64 connections dropped. */
struct smesh_strict_drop_key {
	__u32 src[4]; /* network order, v4-mapped */
	__u32 dst[4]; /* network order, v4-mapped (the local pod) */
	__u16 dport;  /* host order */
	__u16 pad;    /* 0 */
};

/* smesh_conns_v2 (LRU_HASH): key struct smesh_flow_key = (client address, capture address, client port, capture
 * port) of an established redirected connection → struct smesh_orig_dst. The proxy's accepted socket sees the same
 * four values as (peer, local). */

/* smesh_capture_listener (SOCKMAP, one entry, key 0): the outbound proxy's listening socket; the sk_lookup program
 * attached to the node's network namespace hands it new TCP connections to any capture tuple. */

/* smesh_bandwidth (HASH): key struct smesh_bw_key (a local pod address, a direction) → struct smesh_bw_info: the pod's
 * aggregate rate in that direction (Kubernetes kubernetes.io/egress-bandwidth / ingress-bandwidth). The tc programs
 * smesh_bandwidth_egress (pod's own device, tc egress: packets FROM the address) and smesh_bandwidth_ingress (the
 * pod's host-side veth, tc egress: packets TO the address) stamp each packet's earliest departure time; the fq qdisc
 * on that device holds it until then. No entry (or rate 0): not paced. */
#define SMESH_MAX_BANDWIDTH (2 * SMESH_MAX_PODS)
#define SMESH_BW_EGRESS	    1
#define SMESH_BW_INGRESS    2
/* A packet that would depart further than this in the future is dropped (the sender is far over its rate). */
#define SMESH_BW_HORIZON_NS (2ULL * 1000000000ULL)
struct smesh_bw_key {
	__u32 addr[4];	 /* network order, v4-mapped for IPv4 */
	__u32 direction; /* SMESH_BW_EGRESS | SMESH_BW_INGRESS */
};
struct smesh_bw_info {
	__u64 bytes_per_sec; /* written by the agent; 0 = not paced */
	__u64 t_last;	     /* BPF: departure time (CLOCK_MONOTONIC ns) given to the last packet */
	__u64 dropped;	     /* BPF: packets dropped past SMESH_BW_HORIZON_NS */
	__u64 reserved;	     /* 0 */
};

#define SMESH_SO_ORIGINAL_DST 80 /* SOL_IP SO_ORIGINAL_DST and SOL_IPV6 IP6T_SO_ORIGINAL_DST */
#define SMESH_SO_NETNS_COOKIE 71 /* SOL_SOCKET */

#ifdef __cplusplus
static_assert(sizeof(struct smesh_pod_info) == 8, "smesh_pod_info size");
static_assert(sizeof(struct smesh_addr_port) == 20, "smesh_addr_port size");
static_assert(sizeof(struct smesh_dest_info) == 4, "smesh_dest_info size");
static_assert(sizeof(struct smesh_orig_dst) == 28, "smesh_orig_dst size");
static_assert(sizeof(struct smesh_deny_key) == 24, "smesh_deny_key size");
static_assert(sizeof(struct smesh_strict_info) == 4, "smesh_strict_info size");
static_assert(sizeof(struct smesh_strict_counters) == 16, "smesh_strict_counters size");
static_assert(sizeof(struct smesh_inpod_counters) == 32, "smesh_inpod_counters size");
static_assert(sizeof(struct smesh_flow_key) == 36, "smesh_flow_key size");
static_assert(sizeof(struct smesh_strict_flow_seen) == 8, "smesh_strict_flow_seen size");
static_assert(sizeof(struct smesh_strict_drop_key) == 36, "smesh_strict_drop_key size");
static_assert(sizeof(struct smesh_bw_key) == 20, "smesh_bw_key size");
static_assert(sizeof(struct smesh_bw_info) == 32, "smesh_bw_info size");
#else
_Static_assert(sizeof(struct smesh_pod_info) == 8, "smesh_pod_info size");
_Static_assert(sizeof(struct smesh_addr_port) == 20, "smesh_addr_port size");
_Static_assert(sizeof(struct smesh_dest_info) == 4, "smesh_dest_info size");
_Static_assert(sizeof(struct smesh_orig_dst) == 28, "smesh_orig_dst size");
_Static_assert(sizeof(struct smesh_deny_key) == 24, "smesh_deny_key size");
_Static_assert(sizeof(struct smesh_strict_info) == 4, "smesh_strict_info size");
_Static_assert(sizeof(struct smesh_strict_counters) == 16, "smesh_strict_counters size");
_Static_assert(sizeof(struct smesh_inpod_counters) == 32, "smesh_inpod_counters size");
_Static_assert(sizeof(struct smesh_flow_key) == 36, "smesh_flow_key size");
_Static_assert(sizeof(struct smesh_strict_flow_seen) == 8, "smesh_strict_flow_seen size");
_Static_assert(sizeof(struct smesh_strict_drop_key) == 36, "smesh_strict_drop_key size");
_Static_assert(sizeof(struct smesh_bw_key) == 20, "smesh_bw_key size");
_Static_assert(sizeof(struct smesh_bw_info) == 32, "smesh_bw_info size");
#endif

#endif /* SMESH_SHARED_ABI_H */
