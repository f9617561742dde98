/* check_token.c - resume tokens: round trip, expiry, tampering, keys. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <sys/stat.h>

#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "token.h"
#include "check_run.h"

static struct token_key	 k1, k2;

static void
key_fill(struct token_key *k, unsigned char seed)
{
	size_t	 i;

	memset(k, 0, sizeof(*k));
	for (i = 0; i < 32; i++)
		k->k[i] = (unsigned char)(seed + i * 7);
	k->len = 32;
}

static void
setup(void)
{
	key_fill(&k1, 1);
	key_fill(&k2, 2);
}

static void
make(const struct token_key *k, int32_t uid, uint64_t gen, int64_t exp,
    char *out)
{
	struct token_claims	 cl = { uid, gen, exp };

	ck_assert_int_eq(token_make(k, &cl, out, TOKEN_BUF_LEN), 0);
	ck_assert_uint_eq(strlen(out), TOKEN_TEXT_LEN);
}

START_TEST(round_trip)
{
	char			 t[TOKEN_BUF_LEN];
	struct token_claims	 cl;

	make(&k1, 42, 7, 2000, t);
	ck_assert_int_eq(token_check(&k1, NULL, t, strlen(t), 1000, &cl),
	    TOKEN_OK);
	ck_assert_int_eq(cl.uid, 42);
	ck_assert_uint_eq(cl.gen, 7);
	ck_assert_int_eq(cl.expires, 2000);
}
END_TEST

START_TEST(expiry)
{
	char			 t[TOKEN_BUF_LEN];
	struct token_claims	 cl;

	make(&k1, 42, 0, 2000, t);
	ck_assert_int_eq(token_check(&k1, NULL, t, strlen(t), 1999, &cl),
	    TOKEN_OK);
	ck_assert_int_eq(token_check(&k1, NULL, t, strlen(t), 2000, &cl),
	    TOKEN_EXPIRED);
	ck_assert_int_eq(token_check(&k1, NULL, t, strlen(t), 99999, &cl),
	    TOKEN_EXPIRED);
}
END_TEST

/* every single bit of the token text, flipped, is refused */
START_TEST(one_bit)
{
	char			 t[TOKEN_BUF_LEN], u[TOKEN_BUF_LEN];
	struct token_claims	 cl;
	size_t			 i;
	int			 b;

	make(&k1, 42, 3, 2000, t);
	for (i = 0; i < TOKEN_TEXT_LEN; i++)
		for (b = 0; b < 8; b++) {
			memcpy(u, t, sizeof(u));
			u[i] ^= (char)(1 << b);
			ck_assert_int_eq(token_check(&k1, NULL, u, strlen(t),
			    1000, &cl), TOKEN_BAD);
		}
	/* upper-case hex is another text: refused too */
	memcpy(u, t, sizeof(u));
	for (i = 0; i < TOKEN_TEXT_LEN; i++)
		if (u[i] >= 'a' && u[i] <= 'f') {
			u[i] = (char)(u[i] - 'a' + 'A');
			break;
		}
	ck_assert_int_eq(token_check(&k1, NULL, u, strlen(u), 1000, &cl),
	    TOKEN_BAD);
	/* truncated, extended, empty */
	ck_assert_int_eq(token_check(&k1, NULL, t, TOKEN_TEXT_LEN - 2, 1000,
	    &cl), TOKEN_BAD);
	ck_assert_int_eq(token_check(&k1, NULL, "", 0, 1000, &cl), TOKEN_BAD);
}
END_TEST

START_TEST(wrong_key)
{
	char			 t[TOKEN_BUF_LEN];
	struct token_claims	 cl;

	make(&k1, 42, 0, 2000, t);
	ck_assert_int_eq(token_check(&k2, NULL, t, strlen(t), 1000, &cl),
	    TOKEN_BAD);
	/* a key one bit off */
	k2 = k1;
	k2.k[31] ^= 1;
	ck_assert_int_eq(token_check(&k2, NULL, t, strlen(t), 1000, &cl),
	    TOKEN_BAD);
}
END_TEST

/* after a rotation: tokens of the old key pass while it is named old */
START_TEST(rotation)
{
	char			 t_old[TOKEN_BUF_LEN], t_new[TOKEN_BUF_LEN];
	struct token_claims	 cl;
	struct token_key	 none;

	memset(&none, 0, sizeof(none));
	make(&k1, 5, 1, 2000, t_old);
	make(&k2, 6, 1, 2000, t_new);
	ck_assert_int_eq(token_check(&k2, &k1, t_old, TOKEN_TEXT_LEN, 1000,
	    &cl), TOKEN_OK);
	ck_assert_int_eq(cl.uid, 5);
	ck_assert_int_eq(token_check(&k2, &k1, t_new, TOKEN_TEXT_LEN, 1000,
	    &cl), TOKEN_OK);
	ck_assert_int_eq(cl.uid, 6);
	/* once the old key is dropped its tokens are refused */
	ck_assert_int_eq(token_check(&k2, &none, t_old, TOKEN_TEXT_LEN, 1000,
	    &cl), TOKEN_BAD);
	ck_assert_int_eq(token_check(&k2, NULL, t_old, TOKEN_TEXT_LEN, 1000,
	    &cl), TOKEN_BAD);
	/* no key at all signs nothing */
	ck_assert_int_eq(token_make(&none, &cl, t_old, sizeof(t_old)), -1);
}
END_TEST

/* the generation is carried as signed: a bump tells old from new */
START_TEST(generation)
{
	char			 a[TOKEN_BUF_LEN], b[TOKEN_BUF_LEN];
	struct token_claims	 cl;

	make(&k1, 9, 1, 2000, a);
	make(&k1, 9, 2, 2000, b);
	ck_assert_str_ne(a, b);
	ck_assert_int_eq(token_check(&k1, NULL, a, TOKEN_TEXT_LEN, 1000, &cl),
	    TOKEN_OK);
	ck_assert_uint_eq(cl.gen, 1);
	ck_assert_int_eq(token_check(&k1, NULL, b, TOKEN_TEXT_LEN, 1000, &cl),
	    TOKEN_OK);
	ck_assert_uint_eq(cl.gen, 2);
	make(&k1, 9, UINT64_MAX, 2000, a);
	ck_assert_int_eq(token_check(&k1, NULL, a, TOKEN_TEXT_LEN, 1000, &cl),
	    TOKEN_OK);
	ck_assert(cl.gen == UINT64_MAX);
}
END_TEST

START_TEST(key_file)
{
	char			 path[] = "/tmp/check_token.XXXXXX", why[256];
	struct token_key	 k;
	int			 fd;

	ck_assert_int_ne(fd = mkstemp(path), -1);
	ck_assert_int_eq(write(fd, "0123456789abcdef0123456789abcdef\n", 33),
	    33);
	close(fd);
	ck_assert_int_eq(chmod(path, 0600), 0);
	ck_assert_int_eq(token_key_load(&k, path, why, sizeof(why)), 0);
	ck_assert_uint_eq(k.len, 32);
	ck_assert_int_eq(chmod(path, 0640), 0);
	ck_assert_int_eq(token_key_load(&k, path, why, sizeof(why)), -1);
	ck_assert_ptr_nonnull(strstr(why, "chmod 600"));
	ck_assert_uint_eq(k.len, 0);
	/* too short */
	ck_assert_int_ne(fd = open(path, O_WRONLY | O_TRUNC), -1);
	ck_assert_int_eq(write(fd, "short\n", 6), 6);
	close(fd);
	ck_assert_int_eq(chmod(path, 0400), 0);
	ck_assert_int_eq(token_key_load(&k, path, why, sizeof(why)), -1);
	ck_assert_ptr_nonnull(strstr(why, "shorter"));
	unlink(path);
	ck_assert_int_eq(token_key_load(&k, path, why, sizeof(why)), -1);
}
END_TEST

static Suite *
token_suite(void)
{
	Suite	*s = suite_create("token");
	TCase	*tc = tcase_create("token");

	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, round_trip);
	tcase_add_test(tc, expiry);
	tcase_add_test(tc, one_bit);
	tcase_add_test(tc, wrong_key);
	tcase_add_test(tc, rotation);
	tcase_add_test(tc, generation);
	tcase_add_test(tc, key_file);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return check_run(token_suite());
}
