// LD_PRELOAD shim for the benchmark generator (trafgen).
//
// trafgen's fast path (PACKET_TX_RING, MSG_DONTWAIT) aborts with
// "Flushing TX_RING failed: Resource temporarily unavailable" when its socket
// send buffer is exhausted. That happens whenever the receiving side queues
// the skbs for another CPU (RPS, threaded NAPI), because queued skbs are still
// charged to the sender's socket. trafgen would normally raise
// net.core.wmem_default, but that sysctl cannot be written from inside a
// network namespace. This shim raises SO_SNDBUF on every AF_PACKET socket the
// process creates instead (SO_SNDBUFFORCE needs CAP_NET_ADMIN; we run as root).
//
//   cc -O2 -shared -fPIC -o sndbuf_shim.so sndbuf_shim.c -ldl
//   LD_PRELOAD=./sndbuf_shim.so SNDBUF_BYTES=33554432 trafgen ...
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/socket.h>

int socket(int domain, int type, int protocol)
{
	static int (*real_socket)(int, int, int);
	if (!real_socket)
		real_socket = (int (*)(int, int, int))dlsym(RTLD_NEXT, "socket");
	int fd = real_socket(domain, type, protocol);
	if (fd >= 0 && domain == AF_PACKET) {
		const char *env = getenv("SNDBUF_BYTES");
		int bytes = env ? atoi(env) : 32 << 20;
		if (bytes > 0 && setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bytes, sizeof(bytes)) != 0)
			setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof(bytes));
	}
	return fd;
}
