// SPDX-License-Identifier: Apache-2.0
//
// XDP filter of the anycast EIP data plane.
//
// Diverts to the AF_XDP socket of the receiving queue only the frames the data
// plane owns, and passes everything else (ARP, ND, BGP, SSH, traffic to the host's
// own addresses) to the kernel untouched:
//
//   * IPv4 or IPv6, optionally behind one 802.1Q/802.1ad tag, whose destination is
//     an EIP (maps eip_v4 / eip_v6), on ports that accept EIP traffic;
//     Unless an EIP's access list denies the source outright: a deny rule
//     without protocol or ports that no earlier allow rule overlaps
//     (eip_dataplane::tables::acl), kept in the LPM tries acl_v4 / acl_v6
//     keyed by (EIP, source prefix); such frames are dropped here and counted
//     as DROP_ACL and per entry in acl_hits (the trie's value is the entry's
//     index there: user space adds them to the rule's hits), and no worker
//     sees them;
//     and unless the EIP is over its inbound rate cap (maps rate_caps and
//     rate_buckets, see "Rate caps" below): such frames are dropped and
//     counted as DROP_RATE;
//   * IPv4 UDP to a local VTEP address (map vtep_v4) on the VXLAN port, on ports
//     that accept VTEP traffic. Non-first fragments carry no UDP header and go to
//     the kernel.
//
// The XSKMAP key is port_slot * queues_per_port + rx_queue_index, so one program
// and one set of filter maps serve every interface of the POP. When no socket is
// bound at that key, bpf_redirect_map() falls back to XDP_PASS and the NO_SOCKET
// counter says so (a queue without a worker is a configuration error).
//
// Rate caps. An EIP's inbound caps (bits/s and packets/s, IP packets counted
// whole) are its own entry in rate_caps (EIPs with caps of their own) or else
// the POP default in filter_config. Each receive queue keeps its own token
// buckets per EIP (rate_buckets, an LRU keyed by EIP and queue): a queue is
// served by one CPU at a time, so no atomics, and each queue gets
// cap / queues_per_port as each worker does in user space. A bucket holds
// RATE_BURST_NS of its rate, twice the workers' burst: the program sheds what
// is clearly over the cap before it costs a copy into user space, and the
// workers, behind it, police exactly.
//
// Built by dataplane/build.rs with clang -target bpf; no libbpf headers needed.
// Map sizes here are placeholders: user space sets max_entries from its config.
// The license string matters only for GPL-only helpers, none of which are used.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name
#define ALWAYS_INLINE inline __attribute__((always_inline))

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define BE16(x) ((__u16)__builtin_bswap16(x))
#else
#define BE16(x) ((__u16)(x))
#endif

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)BPF_FUNC_map_lookup_elem;
static long (*bpf_redirect_map)(void *map, __u64 key, __u64 flags) = (void *)BPF_FUNC_redirect_map;
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value, __u64 flags) =
	(void *)BPF_FUNC_map_update_elem;
static __u64 (*bpf_ktime_get_ns)(void) = (void *)BPF_FUNC_ktime_get_ns;

// Keep in sync with crates/eip-afxdp/src/program.rs.
#define ACCEPT_EIP 1u
#define ACCEPT_VTEP 2u
// filter_config.acl: which ACL tries hold entries (lookups only then).
#define ACL_V4 1u
#define ACL_V6 2u
// filter_config.acl: some EIP may have a rate cap (lookups only then).
#define RATE_CAPS 4u
// A cap the EIP leaves to the POP default (rate_caps values).
#define CAP_INHERIT ((__u64)-1)
#define NS_PER_S 1000000000ull
// A bucket holds this much of its rate (ns): 20 ms.
#define RATE_BURST_NS 20000000ull
// ... but at least two 1514-byte frames, or two packets.
#define MIN_BURST_BITS (2ull * 1514 * 8)
#define MIN_BURST_PACKETS 2ull
// A new bucket: more than any bucket holds (take() clamps it to full). User
// space writes no rate above 1e11/s, so tokens + RATE_BURST_NS * rate stays
// far below 2^64.
#define FRESH ((__u64)-1 / 4)

struct port_info {
	__u32 slot;
	__u32 accept;
};

struct filter_config {
	__u32 queues_per_port;
	__u16 vxlan_port_be;
	__u16 acl;
	// The POP default inbound caps: 0 = none.
	__u64 default_bps;
	__u64 default_pps;
};

// An EIP's own inbound caps: 0 = none, CAP_INHERIT = the POP default's.
struct rate_caps {
	__u64 bps;
	__u64 pps;
};

struct bucket_key {
	__u8 eip[16]; // IPv6, or IPv4-mapped (::ffff:a.b.c.d)
	__u32 queue;
};

// Tokens in units: a bucket gains `cap` units per ns; a packet costs
// NS_PER_S * queues_per_port units per packet or per bit.
struct bucket {
	__u64 last;
	__u64 bits;
	__u64 packets;
};

enum stat {
	STAT_PASS_NOT_OURS = 0,
	STAT_PASS_UNKNOWN_PORT = 1,
	STAT_PASS_SHORT = 2,
	STAT_REDIRECT_EIP_V4 = 3,
	STAT_REDIRECT_EIP_V6 = 4,
	STAT_REDIRECT_VTEP = 5,
	STAT_NO_SOCKET = 6,
	STAT_DROP_ACL = 7,
	STAT_DROP_RATE = 8,
	STAT_MAX = 9,
};

struct v6_key {
	__u8 addr[16];
};

// LPM keys: prefixlen = the EIP's bits (all) + the source prefix's length;
// addresses in network byte order, as in the header.
struct acl_v4_key {
	__u32 prefixlen;
	__u32 eip;
	__u32 src;
};

struct acl_v6_key {
	__u32 prefixlen;
	__u8 eip[16];
	__u8 src[16];
};

struct vlan_hdr {
	__be16 tci;
	__be16 proto;
};

// ifindex -> slot + what the port accepts.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, struct port_info);
} ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct filter_config);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

// Keys in network byte order, exactly as in the header. Both are sized for
// max_eips. eip_v4 is preallocated: creating it costs about 40 ms at 1.25M
// entries and filling it with 1M keys half as long as without preallocation.
// eip_v6 is not: most POPs have few IPv6 EIPs, and preallocating it cost
// 0.2-0.4 s of every start at 1.25M entries.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} eip_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct v6_key);
	__type(value, __u32);
} eip_v6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} vtep_v4 SEC(".maps");

// Drops per access-list trie entry (index: the entry's value).
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} acl_hits SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct acl_v4_key);
	__type(value, __u32);
} acl_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct acl_v6_key);
	__type(value, __u32);
} acl_v6 SEC(".maps");

// EIP (as in bucket_key) -> its own caps.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct v6_key);
	__type(value, struct rate_caps);
} rate_caps SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1);
	__type(key, struct bucket_key);
	__type(value, struct bucket);
} rate_buckets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

static ALWAYS_INLINE void count(__u32 which)
{
	__u64 *c = bpf_map_lookup_elem(&stats, &which);
	if (c)
		*c += 1; // per-CPU slot: no atomic needed
}

// Counts an access-list drop, overall and for its trie entry.
static ALWAYS_INLINE int acl_drop(__u32 *entry)
{
	__u64 *hits = bpf_map_lookup_elem(&acl_hits, entry);
	if (hits)
		*hits += 1; // per-CPU slot
	count(STAT_DROP_ACL);
	return XDP_DROP;
}

static ALWAYS_INLINE int pass(__u32 why)
{
	count(why);
	return XDP_PASS;
}

// Adds what `elapsed` ns bring at `rate` (units/ns) to `tokens`, up to the
// bucket's size; then takes `cost` if there is that much. 0: not enough.
static ALWAYS_INLINE int take(__u64 *tokens, __u64 rate, __u64 elapsed, __u64 cost, __u64 least)
{
	if (rate == 0)
		return 1;
	__u64 size = rate * RATE_BURST_NS;
	if (size < least)
		size = least;
	__u64 t = *tokens + elapsed * rate;
	if (t > size)
		t = size;
	*tokens = t;
	return t >= cost;
}

// Whether a frame of `len` IP bytes to `eip` (IPv6 or IPv4-mapped) arriving on
// `queue` is over the EIP's inbound caps; consumes its tokens when it is not.
static ALWAYS_INLINE int over_cap(struct filter_config *cfg, struct v6_key *eip, __u32 queue, __u64 len)
{
	__u64 bps = cfg->default_bps, pps = cfg->default_pps;
	struct rate_caps *own = bpf_map_lookup_elem(&rate_caps, eip);
	if (own) {
		if (own->bps != CAP_INHERIT)
			bps = own->bps;
		if (own->pps != CAP_INHERIT)
			pps = own->pps;
	}
	if (bps == 0 && pps == 0)
		return 0;
	struct bucket_key key = {.queue = queue};
	__builtin_memcpy(key.eip, eip->addr, sizeof(key.eip));
	__u64 now = bpf_ktime_get_ns();
	__u64 unit = NS_PER_S * cfg->queues_per_port;
	struct bucket *b = bpf_map_lookup_elem(&rate_buckets, &key);
	if (!b) {
		// Starts full: what take() clamps to.
		struct bucket fresh = {.last = now, .bits = FRESH, .packets = FRESH};
		bpf_map_update_elem(&rate_buckets, &key, &fresh, BPF_NOEXIST);
		b = bpf_map_lookup_elem(&rate_buckets, &key);
		if (!b)
			return 0; // not tracked: the workers police it
	}
	__u64 elapsed = now > b->last ? now - b->last : 0;
	if (elapsed > RATE_BURST_NS)
		elapsed = RATE_BURST_NS;
	b->last = now;
	__u64 bits = b->bits, packets = b->packets;
	__u64 bit_cost = len * 8 * unit, packet_cost = unit;
	int ok = take(&bits, bps, elapsed, bit_cost, MIN_BURST_BITS * unit) &
		 take(&packets, pps, elapsed, packet_cost, MIN_BURST_PACKETS * unit);
	if (ok) {
		if (bps)
			bits -= bit_cost;
		if (pps)
			packets -= packet_cost;
	}
	b->bits = bits;
	b->packets = packets;
	return !ok;
}

SEC("xdp")
int eip_filter(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 ifindex = ctx->ingress_ifindex;
	__u32 zero = 0;
	__u32 hit;

	struct port_info *port = bpf_map_lookup_elem(&ports, &ifindex);
	struct filter_config *cfg = bpf_map_lookup_elem(&config, &zero);
	if (!port || !cfg)
		return pass(STAT_PASS_UNKNOWN_PORT);

	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return pass(STAT_PASS_SHORT);
	__u16 proto = eth->h_proto;
	void *l3 = eth + 1;
	if (proto == BE16(ETH_P_8021Q) || proto == BE16(ETH_P_8021AD)) {
		struct vlan_hdr *vh = l3;
		if ((void *)(vh + 1) > data_end)
			return pass(STAT_PASS_SHORT);
		proto = vh->proto;
		l3 = vh + 1;
	}

	if (proto == BE16(ETH_P_IP)) {
		struct iphdr *ip = l3;
		if ((void *)(ip + 1) > data_end)
			return pass(STAT_PASS_SHORT);
		__u32 daddr = ip->daddr;
		if ((port->accept & ACCEPT_EIP) && bpf_map_lookup_elem(&eip_v4, &daddr)) {
			if (cfg->acl & ACL_V4) {
				struct acl_v4_key k = {.prefixlen = 64, .eip = daddr, .src = ip->saddr};
				__u32 *entry = bpf_map_lookup_elem(&acl_v4, &k);
				if (entry)
					return acl_drop(entry);
			}
			if (cfg->acl & RATE_CAPS) {
				struct v6_key mapped = {.addr = {[10] = 0xff, [11] = 0xff}};
				__builtin_memcpy(&mapped.addr[12], &daddr, 4);
				if (over_cap(cfg, &mapped, ctx->rx_queue_index, data_end - l3)) {
					count(STAT_DROP_RATE);
					return XDP_DROP;
				}
			}
			hit = STAT_REDIRECT_EIP_V4;
			goto redirect;
		}
		if ((port->accept & ACCEPT_VTEP) && ip->protocol == IPPROTO_UDP &&
		    bpf_map_lookup_elem(&vtep_v4, &daddr)) {
			if (ip->frag_off & BE16(0x1fff))
				return pass(STAT_PASS_NOT_OURS);
			__u32 ihl = ip->ihl * 4;
			if (ihl < sizeof(*ip))
				return pass(STAT_PASS_SHORT);
			struct udphdr *udp = l3 + ihl;
			if ((void *)(udp + 1) > data_end)
				return pass(STAT_PASS_SHORT);
			if (udp->dest == cfg->vxlan_port_be) {
				hit = STAT_REDIRECT_VTEP;
				goto redirect;
			}
		}
	} else if (proto == BE16(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = l3;
		if ((void *)(ip6 + 1) > data_end)
			return pass(STAT_PASS_SHORT);
		struct v6_key key;
		__builtin_memcpy(key.addr, &ip6->daddr, sizeof(key.addr));
		if ((port->accept & ACCEPT_EIP) && bpf_map_lookup_elem(&eip_v6, &key)) {
			if (cfg->acl & ACL_V6) {
				struct acl_v6_key k = {.prefixlen = 256};
				__builtin_memcpy(k.eip, &ip6->daddr, sizeof(k.eip));
				__builtin_memcpy(k.src, &ip6->saddr, sizeof(k.src));
				__u32 *entry = bpf_map_lookup_elem(&acl_v6, &k);
				if (entry)
					return acl_drop(entry);
			}
			if ((cfg->acl & RATE_CAPS) &&
			    over_cap(cfg, &key, ctx->rx_queue_index, data_end - l3)) {
				count(STAT_DROP_RATE);
				return XDP_DROP;
			}
			hit = STAT_REDIRECT_EIP_V6;
			goto redirect;
		}
	}
	return pass(STAT_PASS_NOT_OURS);

redirect:;
	__u32 queue = ctx->rx_queue_index;
	if (queue >= cfg->queues_per_port)
		return pass(STAT_NO_SOCKET);
	long action = bpf_redirect_map(&xsks, port->slot * cfg->queues_per_port + queue, XDP_PASS);
	count(action == XDP_REDIRECT ? hit : STAT_NO_SOCKET);
	return (int)action;
}

char _license[] SEC("license") = "Apache-2.0";
