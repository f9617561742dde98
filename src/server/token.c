/* token.c - resume tokens: HMAC-SHA-256 over user, generation, expiry. */
#include "config.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "token.h"

#define TOKEN_VERSION	1
#define TOKEN_BODY_LEN	21		/* version, uid, gen, expiry */
#define TOKEN_MAC_LEN	32
/* domain separation: this key signs nothing else the same way */
static const char token_label[] = "chatd resume token";

int
token_key_load(struct token_key *key, const char *path, char *why,
    size_t whylen)
{
	struct stat	 st;
	ssize_t		 r;
	size_t		 n = 0;
	int		 fd, saved;

	token_key_clear(key);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		snprintf(why, whylen, "\"%s\": %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1) {
		saved = errno;
		close(fd);
		snprintf(why, whylen, "\"%s\": %s", path, strerror(saved));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		snprintf(why, whylen, "\"%s\": not a regular file", path);
		return -1;
	}
	if ((st.st_mode & 077) != 0) {
		close(fd);
		snprintf(why, whylen, "\"%s\": mode %03o: others may read "
		    "it (chmod 600)", path, (unsigned)(st.st_mode & 0777));
		return -1;
	}
	while (n < sizeof(key->k)) {
		r = read(fd, key->k + n, sizeof(key->k) - n);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			saved = errno;
			close(fd);
			token_key_clear(key);
			snprintf(why, whylen, "\"%s\": %s", path,
			    strerror(saved));
			return -1;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	while (n > 0 && (key->k[n - 1] == '\n' || key->k[n - 1] == '\r'))
		n--;
	if (n < TOKEN_KEY_MIN) {
		token_key_clear(key);
		snprintf(why, whylen, "\"%s\": shorter than %d bytes (e.g. "
		    "head -c 32 /dev/urandom | base64 > FILE)", path,
		    TOKEN_KEY_MIN);
		return -1;
	}
	key->len = n;
	return 0;
}

void
token_key_clear(struct token_key *key)
{
	explicit_bzero(key, sizeof(*key));
}

static void
put_be(unsigned char *p, uint64_t v, int n)
{
	int	 i;

	for (i = n - 1; i >= 0; i--) {
		p[i] = (unsigned char)(v & 0xff);
		v >>= 8;
	}
}

static uint64_t
get_be(const unsigned char *p, int n)
{
	uint64_t	 v = 0;
	int		 i;

	for (i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

static int
mac(const struct token_key *key, const unsigned char *body,
    unsigned char *out)
{
	unsigned char	 msg[sizeof(token_label) + TOKEN_BODY_LEN];
	unsigned int	 outlen = 0;

	memcpy(msg, token_label, sizeof(token_label));
	memcpy(msg + sizeof(token_label), body, TOKEN_BODY_LEN);
	if (HMAC(EVP_sha256(), key->k, (int)key->len, msg, sizeof(msg), out,
	    &outlen) == NULL || outlen != TOKEN_MAC_LEN)
		return -1;
	return 0;
}

int
token_make(const struct token_key *key, const struct token_claims *cl,
    char *out, size_t outlen)
{
	static const char	 hex[] = "0123456789abcdef";
	unsigned char		 raw[TOKEN_RAW_LEN];
	size_t			 i;

	if (key->len == 0 || outlen < TOKEN_BUF_LEN || cl->uid <= 0)
		return -1;
	raw[0] = TOKEN_VERSION;
	put_be(raw + 1, (uint32_t)cl->uid, 4);
	put_be(raw + 5, cl->gen, 8);
	put_be(raw + 13, (uint64_t)cl->expires, 8);
	if (mac(key, raw, raw + TOKEN_BODY_LEN) == -1)
		return -1;
	for (i = 0; i < sizeof(raw); i++) {
		out[2 * i] = hex[raw[i] >> 4];
		out[2 * i + 1] = hex[raw[i] & 15];
	}
	out[TOKEN_TEXT_LEN] = '\0';
	return 0;
}

static int
unhex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* 0 when key signed raw's body. */
static int
mac_ok(const struct token_key *key, const unsigned char *raw)
{
	unsigned char	 want[TOKEN_MAC_LEN];
	int		 ok;

	if (key == NULL || key->len == 0 || mac(key, raw, want) == -1)
		return -1;
	ok = CRYPTO_memcmp(want, raw + TOKEN_BODY_LEN, TOKEN_MAC_LEN) == 0;
	explicit_bzero(want, sizeof(want));
	return ok ? 0 : -1;
}

enum token_result
token_check(const struct token_key *key, const struct token_key *old,
    const char *tok, size_t len, int64_t now, struct token_claims *cl)
{
	unsigned char	 raw[TOKEN_RAW_LEN];
	size_t		 i;
	int		 hi, lo;

	/* lower-case hex only: one text per token, so no twin spellings */
	if (len != TOKEN_TEXT_LEN)
		return TOKEN_BAD;
	for (i = 0; i < sizeof(raw); i++) {
		hi = unhex((unsigned char)tok[2 * i]);
		lo = unhex((unsigned char)tok[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return TOKEN_BAD;
		raw[i] = (unsigned char)(hi << 4 | lo);
	}
	if (raw[0] != TOKEN_VERSION)
		return TOKEN_BAD;
	if (mac_ok(key, raw) == -1 && mac_ok(old, raw) == -1)
		return TOKEN_BAD;
	cl->uid = (int32_t)get_be(raw + 1, 4);
	cl->gen = get_be(raw + 5, 8);
	cl->expires = (int64_t)get_be(raw + 13, 8);
	if (cl->uid <= 0)
		return TOKEN_BAD;
	return cl->expires <= now ? TOKEN_EXPIRED : TOKEN_OK;
}
