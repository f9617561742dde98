/*
 * token.h - resume tokens: an opaque string that lets a client log in
 * again without its password.  HMAC-SHA-256 (OpenSSL libcrypto) over
 * the user, a per-user token generation and an expiry.  Any node that
 * holds the key accepts it; bumping the user's generation in the store
 * revokes every token issued before.  Pure: no I/O but reading the key
 * file, no event loop, no storage.
 */
#ifndef CHATD_TOKEN_H
#define CHATD_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#define TOKEN_KEY_MIN	32	/* bytes a key file must hold at least */
#define TOKEN_KEY_MAX	1024
/* 1 version + 4 uid + 8 generation + 8 expiry + 32 MAC, in hex, + NUL */
#define TOKEN_RAW_LEN	53
#define TOKEN_TEXT_LEN	(2 * TOKEN_RAW_LEN)
#define TOKEN_BUF_LEN	(TOKEN_TEXT_LEN + 1)

struct token_key {
	unsigned char	 k[TOKEN_KEY_MAX];
	size_t		 len;		/* 0: no key */
};

/* What a good token says. */
struct token_claims {
	int32_t		 uid;
	uint64_t	 gen;		/* compare with the store's */
	int64_t		 expires;	/* Unix time */
};

enum token_result {
	TOKEN_OK,		/* claims filled */
	TOKEN_BAD,		/* not ours, altered, or garbage */
	TOKEN_EXPIRED		/* genuine but too old: claims filled */
};

/*
 * Read a key file: at least TOKEN_KEY_MIN bytes (trailing newlines
 * cut), refused when group or others may read or write it.  0, or -1
 * with why filled (the key never appears in it).
 */
int	token_key_load(struct token_key *key, const char *path, char *why,
	    size_t whylen);
void	token_key_clear(struct token_key *key);

/* Write a token for claims into out (TOKEN_BUF_LEN bytes, NUL-ended). 0/-1. */
int	token_make(const struct token_key *key, const struct token_claims *cl,
	    char *out, size_t outlen);
/*
 * Check tok[0..len) against key, then old (NULL or empty: none; the
 * key before a rotation), in constant time per key; TOKEN_EXPIRED when
 * expires <= now.  The generation is the caller's to compare.
 */
enum token_result token_check(const struct token_key *key,
	    const struct token_key *old, const char *tok, size_t len,
	    int64_t now, struct token_claims *cl);

#endif
