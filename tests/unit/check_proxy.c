/* check_proxy.c - the PROXY protocol header parser (proxy.c). */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "proxy.h"
#include "check_run.h"

static const char v2sig[] = "\r\n\r\n\0\r\nQUIT\n";

static enum proxy_status
parse(const void *p, size_t n, struct proxy_hdr *h)
{
	char	 why[128];

	return proxy_parse(p, n, h, why, sizeof(why));
}

/* ss holds address ip (of family af) and port. */
static void
assert_addr(const struct sockaddr_storage *ss, int af, const char *ip,
    int port)
{
	const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
	char	 buf[INET6_ADDRSTRLEN];

	ck_assert_int_eq(ss->ss_family, af);
	ck_assert_ptr_nonnull(inet_ntop(af, af == AF_INET ?
	    (const void *)&s4->sin_addr : (const void *)&s6->sin6_addr, buf,
	    sizeof(buf)));
	ck_assert_str_eq(buf, ip);
	ck_assert_int_eq(ntohs(af == AF_INET ? s4->sin_port : s6->sin6_port),
	    port);
}

#define assert_v4(ss, ip, port)	assert_addr(ss, AF_INET, ip, port)
#define assert_v6(ss, ip, port)	assert_addr(ss, AF_INET6, ip, port)

START_TEST(test_v1_tcp4)
{
	const char	*s = "PROXY TCP4 192.0.2.7 10.0.0.1 51234 6000\r\n{\"msgid\":1}";
	struct proxy_hdr h;
	size_t		 hl = strchr(s, '{') - s, i;

	ck_assert_int_eq(parse(s, strlen(s), &h), PROXY_OK);
	ck_assert_uint_eq(h.len, hl);
	ck_assert_int_eq(h.version, 1);
	ck_assert_int_eq(h.local, 0);
	assert_v4(&h.src, "192.0.2.7", 51234);
	assert_v4(&h.dst, "10.0.0.1", 6000);
	/* every shorter prefix asks for more */
	for (i = 0; i < hl; i++)
		ck_assert_int_eq(parse(s, i, &h), PROXY_NEED_MORE);
}
END_TEST

START_TEST(test_v1_tcp6_unknown)
{
	const char	*s6 = "PROXY TCP6 2001:db8::1 ::1 65535 0\r\n";
	const char	*su = "PROXY UNKNOWN whatever 1 2\r\n";
	struct proxy_hdr h;

	ck_assert_int_eq(parse(s6, strlen(s6), &h), PROXY_OK);
	assert_v6(&h.src, "2001:db8::1", 65535);
	assert_v6(&h.dst, "::1", 0);
	ck_assert_int_eq(parse(su, strlen(su), &h), PROXY_OK);
	ck_assert_int_eq(h.local, 1);
	ck_assert_uint_eq(h.len, strlen(su));
	ck_assert_int_eq(parse("PROXY UNKNOWN\r\n", 15, &h), PROXY_OK);
	ck_assert_int_eq(h.local, 1);
}
END_TEST

START_TEST(test_v1_bad)
{
	static const char *const bad[] = {
		"PROXY TCP4 192.0.2.7 10.0.0.1 51234\r\n",	/* 5 fields */
		"PROXY TCP4 192.0.2.7 10.0.0.1 1 2 3\r\n",	/* 7 */
		"PROXY TCP4 192.0.2.7 10.0.0.1 1 2 \r\n",	/* trailing */
		"PROXY TCP4  192.0.2.7 10.0.0.1 1 2\r\n",	/* two blanks */
		"PROXY TCP4 192.0.2.700 10.0.0.1 1 2\r\n",
		"PROXY TCP4 ::1 10.0.0.1 1 2\r\n",		/* v6 in TCP4 */
		"PROXY TCP6 192.0.2.7 ::1 1 2\r\n",
		"PROXY TCP4 192.0.2.7 10.0.0.1 65536 2\r\n",
		"PROXY TCP4 192.0.2.7 10.0.0.1 01 2\r\n",
		"PROXY TCP4 192.0.2.7 10.0.0.1 -1 2\r\n",
		"PROXY UDP4 192.0.2.7 10.0.0.1 1 2\r\n",
		"PROXY \r\n",
		"PROXY TCP4 192.0.2.7 10.0.0.1 1 2\rX",	/* CR without LF */
		"PROXY TCP4 192.0.2.7\n10.0.0.1 1 2\r\n",	/* bare LF */
		"PROXY TCP4 192.0.2.7\t10.0.0.1 1 2\r\n",
		"PROXX TCP4",
		"{\"msgid\":1}",
		"GET / HTTP/1.0\r\n",
	};
	struct proxy_hdr h;
	char		 why[128], line[200];
	size_t		 i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why[0] = '\0';
		ck_assert_msg(proxy_parse(bad[i], strlen(bad[i]), &h, why,
		    sizeof(why)) == PROXY_BAD, "accepted: %s", bad[i]);
		ck_assert_msg(why[0] != '\0', "no reason for %s", bad[i]);
	}
	/*
	 * no CRLF within 107 bytes: bad, not "need more" forever; a CR
	 * must come within 106 bytes, to leave room for its LF
	 */
	memset(line, 'A', sizeof(line));
	memcpy(line, "PROXY TCP4 ", 11);
	ck_assert_int_eq(parse(line, PROXY_V1_MAX - 2, &h), PROXY_NEED_MORE);
	ck_assert_int_eq(parse(line, PROXY_V1_MAX - 1, &h), PROXY_BAD);
	ck_assert_int_eq(parse(line, PROXY_V1_MAX, &h), PROXY_BAD);
	ck_assert_int_eq(parse(line, sizeof(line), &h), PROXY_BAD);
}
END_TEST

/* A v2 header: cmd, fam, then the address block of len bytes. */
static size_t
v2(unsigned char *out, int cmd, int fam, const void *blk, size_t len)
{
	memcpy(out, v2sig, 12);
	out[12] = (unsigned char)(0x20 | cmd);
	out[13] = (unsigned char)fam;
	out[14] = (unsigned char)(len >> 8);
	out[15] = (unsigned char)len;
	memcpy(out + 16, blk, len);
	return 16 + len;
}

START_TEST(test_v2)
{
	unsigned char	 b[256], blk[64];
	struct proxy_hdr h;
	size_t		 n, i;

	/* IPv4 with a TLV after the addresses, then client data */
	memset(blk, 0, sizeof(blk));
	inet_pton(AF_INET, "198.51.100.9", blk);
	inet_pton(AF_INET, "10.0.0.2", blk + 4);
	blk[8] = 0xc3; blk[9] = 0x50;		/* 50000 */
	blk[10] = 0x17; blk[11] = 0x70;		/* 6000 */
	blk[12] = 0x04; blk[13] = 0; blk[14] = 2; blk[15] = 'x'; blk[16] = 'y';
	n = v2(b, 1, 0x11, blk, 17);
	memcpy(b + n, "{}", 2);
	ck_assert_int_eq(parse(b, n + 2, &h), PROXY_OK);
	ck_assert_uint_eq(h.len, n);
	ck_assert_int_eq(h.version, 2);
	ck_assert_int_eq(h.local, 0);
	assert_v4(&h.src, "198.51.100.9", 50000);
	assert_v4(&h.dst, "10.0.0.2", 6000);
	for (i = 0; i < n; i++)
		ck_assert_int_eq(parse(b, i, &h), PROXY_NEED_MORE);
	/* IPv6 */
	memset(blk, 0, sizeof(blk));
	inet_pton(AF_INET6, "2001:db8::7", blk);
	inet_pton(AF_INET6, "2001:db8::1", blk + 16);
	blk[32] = 0x01; blk[33] = 0x00;
	n = v2(b, 1, 0x21, blk, 36);
	ck_assert_int_eq(parse(b, n, &h), PROXY_OK);
	assert_v6(&h.src, "2001:db8::7", 256);
	/* LOCAL (a health check), UNSPEC and AF_UNIX: the balancer itself */
	ck_assert_int_eq(parse(b, v2(b, 0, 0x00, blk, 0), &h), PROXY_OK);
	ck_assert_int_eq(h.local, 1);
	ck_assert_int_eq(parse(b, v2(b, 0, 0x11, blk, 12), &h), PROXY_OK);
	ck_assert_int_eq(h.local, 1);
	ck_assert_int_eq(parse(b, v2(b, 1, 0x31, blk, 64), &h), PROXY_OK);
	ck_assert_int_eq(h.local, 1);
	ck_assert_uint_eq(h.len, 80);
}
END_TEST

START_TEST(test_v2_bad)
{
	unsigned char	 b[256], blk[64];
	struct proxy_hdr h;

	memset(blk, 0, sizeof(blk));
	/* address block too short for its family */
	ck_assert_int_eq(parse(b, v2(b, 1, 0x11, blk, 11), &h), PROXY_BAD);
	ck_assert_int_eq(parse(b, v2(b, 1, 0x21, blk, 35), &h), PROXY_BAD);
	/* unknown command, family, protocol; datagrams */
	ck_assert_int_eq(parse(b, v2(b, 2, 0x11, blk, 12), &h), PROXY_BAD);
	ck_assert_int_eq(parse(b, v2(b, 1, 0x41, blk, 12), &h), PROXY_BAD);
	ck_assert_int_eq(parse(b, v2(b, 1, 0x13, blk, 12), &h), PROXY_BAD);
	ck_assert_int_eq(parse(b, v2(b, 1, 0x12, blk, 12), &h), PROXY_BAD);
	/* version 1 in the binary form */
	v2(b, 1, 0x11, blk, 12);
	b[12] = 0x11;
	ck_assert_int_eq(parse(b, 28, &h), PROXY_BAD);
	/* a broken signature is seen as soon as it differs */
	memcpy(b, v2sig, 12);
	b[5] = 'X';
	ck_assert_int_eq(parse(b, 6, &h), PROXY_BAD);
	ck_assert_int_eq(parse(b, 5, &h), PROXY_NEED_MORE);
	/* a JSON client that starts with CRLF is no header */
	ck_assert_int_eq(parse("\r\n{}", 4, &h), PROXY_BAD);
	ck_assert_int_eq(parse("", 0, &h), PROXY_NEED_MORE);
}
END_TEST

static Suite *
proxy_suite(void)
{
	Suite	*s = suite_create("proxy");
	TCase	*tc = tcase_create("proxy");

	tcase_add_test(tc, test_v1_tcp4);
	tcase_add_test(tc, test_v1_tcp6_unknown);
	tcase_add_test(tc, test_v1_bad);
	tcase_add_test(tc, test_v2);
	tcase_add_test(tc, test_v2_bad);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return check_run(proxy_suite());
}
