/*
 * config_reload.c - what SIGHUP changes: the keys whose rows allow it,
 * compared and copied into the running configuration, and shipped from
 * the master to the workers as one message.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cfg.h"
#include "config_impl.h"
#include "log.h"
#include "util.h"

static int
cfg_equal(const struct cfg_key *k, const struct config *a,
    const struct config *b)
{
	const char	*sa, *sb;

	switch (k->type) {
	case CFG_STRING:
	case CFG_HOSTPORT:
		sa = *CFIELD(a, k, char *);
		sb = *CFIELD(b, k, char *);
		if (sa == NULL || sb == NULL)
			return sa == sb;
		return strcmp(sa, sb) == 0;
	case CFG_SIZE:
		return *CFIELD(a, k, size_t) == *CFIELD(b, k, size_t);
	case CFG_INT:
	case CFG_BOOL:
	case CFG_LOGLEVEL:
		break;
	}
	return *CFIELD(a, k, int) == *CFIELD(b, k, int);
}

static int
cfg_copy(const struct cfg_key *k, struct config *dst,
    const struct config *src)
{
	switch (k->type) {
	case CFG_STRING:
	case CFG_HOSTPORT:
		return cfg_set_string(FIELD(dst, k, char *), *CFIELD(src, k, char *));
	case CFG_SIZE:
		*FIELD(dst, k, size_t) = *CFIELD(src, k, size_t);
		return 0;
	case CFG_INT:
	case CFG_BOOL:
	case CFG_LOGLEVEL:
		break;
	}
	*FIELD(dst, k, int) = *CFIELD(src, k, int);
	return 0;
}

int
cfg_apply_reload(struct config *cur, const struct config *next)
{
	const struct cfg_key	*k;
	size_t			 i;
	int			 applied = 0;

	for (i = 0; i < cfg_nkeys; i++) {
		k = &cfg_keys[i];
		if (cfg_equal(k, cur, next))
			continue;
		if (!k->reload) {
			log_notice("%s changed: upgrade or restart needed", k->name);
			continue;
		}
		if (cfg_copy(k, cur, next) == -1) {
			log_warn("reload of %s", k->name);
			continue;
		}
		applied++;
	}
	return applied;
}

/*
 * The reloadable keys as one message, master to workers: each in table
 * order, an int as int32, a size as uint64, a string as its uint32
 * length (UINT32_MAX: unset) and bytes.  Both ends are the same binary.
 */
/* The next key SIGHUP may change, from *i on; NULL after the last. */
static const struct cfg_key *
reload_key(size_t *i)
{
	while (*i < cfg_nkeys)
		if (cfg_keys[(*i)++].reload)
			return &cfg_keys[*i - 1];
	return NULL;
}

int
cfg_pack_reload(const struct config *cfg, struct buf *out)
{
	const struct cfg_key	*k;
	const char		*sv;
	uint64_t		 z;
	uint32_t		 l;
	int32_t			 v;
	size_t			 i;
	int			 rc = 0;

	for (i = 0; rc == 0 && (k = reload_key(&i)) != NULL;) {
		switch (k->type) {
		case CFG_STRING:
		case CFG_HOSTPORT:
			sv = *CFIELD(cfg, k, char *);
			l = sv != NULL ? (uint32_t)strlen(sv) : UINT32_MAX;
			rc = buf_append(out, &l, sizeof(l));
			if (rc == 0 && sv != NULL)
				rc = buf_append(out, sv, l);
			break;
		case CFG_SIZE:
			z = *CFIELD(cfg, k, size_t);
			rc = buf_append(out, &z, sizeof(z));
			break;
		default:
			v = *CFIELD(cfg, k, int);
			rc = buf_append(out, &v, sizeof(v));
			break;
		}
	}
	return rc == 0 ? 0 : -1;
}

int
cfg_unpack_reload(struct config *cur, const void *msg, size_t len)
{
	const struct cfg_key	*k;
	const char		*p = msg;
	struct config		 next;
	uint64_t		 z;
	uint32_t		 l;
	int32_t			 v;
	size_t			 i, off = 0;
	int			 applied = 0;

	memset(&next, 0, sizeof(next));
	for (i = 0; (k = reload_key(&i)) != NULL;) {
		switch (k->type) {
		case CFG_STRING:
		case CFG_HOSTPORT:
			if (len - off < sizeof(l))
				goto bad;
			memcpy(&l, p + off, sizeof(l));
			off += sizeof(l);
			if (l == UINT32_MAX)
				break;
			/* the bytes are not NUL-terminated */
			if (len - off < l || (*FIELD(&next, k, char *) =
			    util_memdupz(p + off, l)) == NULL)
				goto bad;
			off += l;
			break;
		case CFG_SIZE:
			if (len - off < sizeof(z))
				goto bad;
			memcpy(&z, p + off, sizeof(z));
			off += sizeof(z);
			*FIELD(&next, k, size_t) = (size_t)z;
			break;
		default:
			if (len - off < sizeof(v))
				goto bad;
			memcpy(&v, p + off, sizeof(v));
			off += sizeof(v);
			*FIELD(&next, k, int) = v;
			break;
		}
	}
	if (off != len)
		goto bad;
	for (i = 0; i < cfg_nkeys; i++) {
		k = &cfg_keys[i];
		if (k->reload && !cfg_equal(k, cur, &next) &&
		    cfg_copy(k, cur, &next) == 0)
			applied++;
	}
	cfg_free(&next);
	return applied;
 bad:
	cfg_free(&next);
	return -1;
}
