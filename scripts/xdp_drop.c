// Minimal XDP program for the testbed benchmarks: drop every frame.
//
// Used as a sink so that the receiving namespace's stack is never the
// bottleneck. Delivered packets are read from the veth's own counters
// (ethtool -S: rx_queue_N_xdp_packets / rx_queue_N_xdp_drops), so no maps
// are needed and the object loads with plain iproute2:
//
//   clang -O2 -g -target bpf -I/usr/include/$(uname -m)-linux-gnu -c xdp_drop.c -o xdp_drop.o
//   ip link set dev DEV xdpdrv obj xdp_drop.o sec xdp
//   ip link set dev DEV xdpdrv off
#include <linux/bpf.h>

#define SEC(name) __attribute__((section(name), used))

SEC("xdp")
int xdp_drop(struct xdp_md *ctx)
{
	(void)ctx;
	return XDP_DROP;
}

char _license[] SEC("license") = "GPL";
