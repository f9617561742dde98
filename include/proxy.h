/*
 * proxy.h - the PROXY protocol header (versions 1 and 2) a load balancer
 * such as nginx ("proxy_protocol on;") or HAProxy ("send-proxy-v2")
 * puts before the client's bytes to tell the server who the client is.
 * Pure: bytes in, addresses out; no sockets, no allocation.
 *
 * Specification: https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt
 */
#ifndef CHATD_PROXY_H
#define CHATD_PROXY_H

#include <stddef.h>
#include <sys/socket.h>

/* Longest v1 line, "\r\n" included (the specification's bound). */
#define PROXY_V1_MAX	107
/* The v2 header before the addresses: signature, command, family, length. */
#define PROXY_V2_HEAD	16

enum proxy_status {
	PROXY_OK,		/* a whole header: see struct proxy_hdr */
	PROXY_NEED_MORE,	/* a valid beginning; read more */
	PROXY_BAD		/* not a PROXY header, or a malformed one */
};

struct proxy_hdr {
	size_t			 len;	/* bytes of the header, to skip */
	int			 version;	/* 1 or 2 */
	/*
	 * The balancer speaks for itself (v2 LOCAL, its health checks) or
	 * for a client it cannot name (v1 UNKNOWN, v2 UNSPEC or AF_UNIX):
	 * the connection's own address stands, src and dst are unset.
	 */
	int			 local;
	struct sockaddr_storage	 src;	/* the client, AF_INET or AF_INET6 */
	struct sockaddr_storage	 dst;	/* the address it connected to */
};

/*
 * Parse the header at the start of p[0..n).  PROXY_OK fills h;
 * PROXY_BAD fills why (a short reason for the log).  Never reads past
 * n; a header is never longer than PROXY_V1_MAX (v1) or
 * PROXY_V2_HEAD + 65535 (v2) bytes.
 */
enum proxy_status proxy_parse(const void *p, size_t n, struct proxy_hdr *h,
	    char *why, size_t whylen);

#endif
