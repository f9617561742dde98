/*
 * proxy.c - the PROXY protocol header, versions 1 (a text line) and 2
 * (binary), as sent by nginx and HAProxy.  Pure: no I/O, no allocation.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "proxy.h"

static const unsigned char v1_sig[6] = "PROXY ";
static const unsigned char v2_sig[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a
};

static enum proxy_status
bad(char *why, size_t whylen, const char *fmt, ...)
{
	va_list	 ap;

	if (whylen > 0) {
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return PROXY_BAD;
}

/* ---- version 1 --------------------------------------------------------- */

/* The next space-separated field of [*p, end): its start and length. */
static int
v1_field(const char **p, const char *end, const char **f, size_t *flen)
{
	const char	*s = *p, *e;

	if (s >= end)
		return -1;
	if ((e = memchr(s, ' ', (size_t)(end - s))) == NULL)
		e = end;
	if (e == s)
		return -1;	/* empty: two blanks in a row */
	*f = s;
	*flen = (size_t)(e - s);
	*p = e < end ? e + 1 : end;
	return 0;
}

static int
v1_addr(const char *f, size_t flen, int family, struct sockaddr_storage *ss,
    unsigned port)
{
	char			 tmp[INET6_ADDRSTRLEN];
	struct sockaddr_in	*s4 = (struct sockaddr_in *)(void *)ss;
	struct sockaddr_in6	*s6 = (struct sockaddr_in6 *)(void *)ss;

	/* bounded by the check: addresses are never longer */
	if (flen >= sizeof(tmp))
		return -1;
	memcpy(tmp, f, flen);
	tmp[flen] = '\0';
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		return inet_pton(AF_INET, tmp, &s4->sin_addr) == 1 ? 0 : -1;
	}
	s6->sin6_family = AF_INET6;
	s6->sin6_port = htons((uint16_t)port);
	return inet_pton(AF_INET6, tmp, &s6->sin6_addr) == 1 ? 0 : -1;
}

/* A port: 1 to 5 digits, no leading zero (but "0"), at most 65535. */
static int
v1_port(const char *f, size_t flen, unsigned *port)
{
	unsigned	 v = 0;
	size_t		 i;

	if (flen == 0 || flen > 5 || (flen > 1 && f[0] == '0'))
		return -1;
	for (i = 0; i < flen; i++) {
		if (f[i] < '0' || f[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(f[i] - '0');
	}
	if (v > 65535)
		return -1;
	*port = v;
	return 0;
}

static enum proxy_status
parse_v1(const unsigned char *u, size_t n, struct proxy_hdr *h, char *why,
    size_t whylen)
{
	const char	*s = (const char *)u, *p, *end, *f[5];
	size_t		 flen[5], lim, i;
	unsigned	 sport, dport;
	int		 family;

	/* the CR must leave room for its LF within PROXY_V1_MAX bytes */
	lim = n < PROXY_V1_MAX - 1 ? n : PROXY_V1_MAX - 1;
	for (i = sizeof(v1_sig); i < lim; i++) {
		if (u[i] == '\r')
			break;
		/* the line is printable US-ASCII */
		if (u[i] < 0x20 || u[i] > 0x7e)
			return bad(why, whylen, "v1: byte 0x%02x in the line",
			    u[i]);
	}
	if (i >= lim) {
		if (n >= PROXY_V1_MAX - 1)
			return bad(why, whylen, "v1: no CRLF in %d bytes",
			    PROXY_V1_MAX);
		return PROXY_NEED_MORE;
	}
	if (i + 1 >= n)
		return PROXY_NEED_MORE;
	if (u[i + 1] != '\n')
		return bad(why, whylen, "v1: CR without LF");
	memset(h, 0, sizeof(*h));
	h->version = 1;
	h->len = i + 2;
	p = s + sizeof(v1_sig);
	end = s + i;
	if (v1_field(&p, end, &f[0], &flen[0]) == -1)
		return bad(why, whylen, "v1: no protocol");
	if (flen[0] == 7 && memcmp(f[0], "UNKNOWN", 7) == 0) {
		/* the rest of the line is to be ignored */
		h->local = 1;
		return PROXY_OK;
	}
	if (flen[0] == 4 && memcmp(f[0], "TCP4", 4) == 0)
		family = AF_INET;
	else if (flen[0] == 4 && memcmp(f[0], "TCP6", 4) == 0)
		family = AF_INET6;
	else
		return bad(why, whylen, "v1: protocol \"%.*s\" (want TCP4, "
		    "TCP6 or UNKNOWN)", (int)(flen[0] > 16 ? 16 : flen[0]),
		    f[0]);
	for (i = 1; i < 5; i++)
		if (v1_field(&p, end, &f[i], &flen[i]) == -1)
			return bad(why, whylen, "v1: %zu fields, want 6", i + 1);
	if (p != end || end[-1] == ' ')
		return bad(why, whylen, "v1: more than 6 fields");
	if (v1_port(f[3], flen[3], &sport) == -1 ||
	    v1_port(f[4], flen[4], &dport) == -1)
		return bad(why, whylen, "v1: bad port");
	if (v1_addr(f[1], flen[1], family, &h->src, sport) == -1 ||
	    v1_addr(f[2], flen[2], family, &h->dst, dport) == -1)
		return bad(why, whylen, "v1: bad %s address",
		    family == AF_INET ? "IPv4" : "IPv6");
	return PROXY_OK;
}

/* ---- version 2 --------------------------------------------------------- */

static enum proxy_status
parse_v2(const unsigned char *u, size_t n, struct proxy_hdr *h, char *why,
    size_t whylen)
{
	struct sockaddr_in	*s4, *d4;
	struct sockaddr_in6	*s6, *d6;
	size_t			 len;
	int			 cmd, fam, proto;

	if (n < PROXY_V2_HEAD)
		return PROXY_NEED_MORE;
	if ((u[12] >> 4) != 2)
		return bad(why, whylen, "v2: version %d", u[12] >> 4);
	cmd = u[12] & 0x0f;
	fam = u[13] >> 4;
	proto = u[13] & 0x0f;
	len = (size_t)u[14] << 8 | u[15];
	if (cmd > 1)
		return bad(why, whylen, "v2: command %d", cmd);
	if (fam > 3 || proto > 2)
		return bad(why, whylen, "v2: address family/protocol 0x%02x",
		    u[13]);
	if (n < PROXY_V2_HEAD + len)
		return PROXY_NEED_MORE;
	memset(h, 0, sizeof(*h));
	h->version = 2;
	h->len = PROXY_V2_HEAD + len;
	/* LOCAL: the balancer itself (a health check); UNSPEC, UNIX: no
	 * IP address to give; TLVs after the addresses are skipped */
	if (cmd == 0 || fam == 0 || fam == 3) {
		h->local = 1;
		return PROXY_OK;
	}
	if (proto == 2)
		return bad(why, whylen, "v2: datagram on a stream");
	u += PROXY_V2_HEAD;
	if (fam == 1) {
		if (len < 12)
			return bad(why, whylen, "v2: IPv4 block of %zu bytes",
			    len);
		s4 = (struct sockaddr_in *)(void *)&h->src;
		d4 = (struct sockaddr_in *)(void *)&h->dst;
		s4->sin_family = d4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, u, 4);
		memcpy(&d4->sin_addr, u + 4, 4);
		memcpy(&s4->sin_port, u + 8, 2);
		memcpy(&d4->sin_port, u + 10, 2);
	} else {
		if (len < 36)
			return bad(why, whylen, "v2: IPv6 block of %zu bytes",
			    len);
		s6 = (struct sockaddr_in6 *)(void *)&h->src;
		d6 = (struct sockaddr_in6 *)(void *)&h->dst;
		s6->sin6_family = d6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_addr, u, 16);
		memcpy(&d6->sin6_addr, u + 16, 16);
		memcpy(&s6->sin6_port, u + 32, 2);
		memcpy(&d6->sin6_port, u + 34, 2);
	}
	return PROXY_OK;
}

enum proxy_status
proxy_parse(const void *p, size_t n, struct proxy_hdr *h, char *why,
    size_t whylen)
{
	const unsigned char	*u = p;

	if (n == 0)
		return PROXY_NEED_MORE;
	if (u[0] == v1_sig[0]) {
		if (memcmp(u, v1_sig, n < sizeof(v1_sig) ? n :
		    sizeof(v1_sig)) != 0)
			return bad(why, whylen, "no PROXY signature");
		if (n < sizeof(v1_sig))
			return PROXY_NEED_MORE;
		return parse_v1(u, n, h, why, whylen);
	}
	if (u[0] == v2_sig[0]) {
		if (memcmp(u, v2_sig, n < sizeof(v2_sig) ? n :
		    sizeof(v2_sig)) != 0)
			return bad(why, whylen, "no PROXY signature");
		return parse_v2(u, n, h, why, whylen);
	}
	return bad(why, whylen, "no PROXY signature");
}
