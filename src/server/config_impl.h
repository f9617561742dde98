/*
 * config_impl.h - private to the configuration code: the key table's
 * row type and the value parsers shared by config_keys.c (the table and
 * its checks), config_value.c (parsing one value), config.c (the file
 * loader) and config_reload.c (what SIGHUP changes).
 */
#ifndef CONFIG_IMPL_H
#define CONFIG_IMPL_H

#include <stddef.h>

#include "cfg.h"

#define CFG_SHOW	64	/* bytes of a bad value quoted in errors */
#define CFG_WORKERS_MAX	64
#define CFG_KEYS_MAX	256	/* bound on cfg_nkeys: per-key arrays */

#define KiB		1024LL
#define MiB		(1024LL * 1024)
#define GiB		(1024LL * 1024 * 1024)

enum cfg_type {
	CFG_STRING,		/* char *, NULL when unset */
	CFG_INT,		/* int */
	CFG_SIZE,		/* size_t, suffixes k m g (1024-based) */
	CFG_BOOL,		/* int 0/1: yes no on off true false 1 0 */
	CFG_LOGLEVEL,		/* int LOG_* */
	CFG_HOSTPORT		/* char *, "host:port"; min/max bound the port */
};

/* Extra validation of a STRING value; fills why on failure. */
typedef int (*cfg_check_fn)(const char *, char *, size_t);

struct cfg_key {
	const char	*name;
	enum cfg_type	 type;
	size_t		 off;		/* into struct config */
	const char	*def;		/* NULL: unset */
	long long	 min;
	long long	 max;
	int		 reload;	/* SIGHUP may change it */
	cfg_check_fn	 check;
	const char	*help;
};

#define FIELD(cfg, k, type)	((type *)(void *)((char *)(cfg) + (k)->off))
#define CFIELD(cfg, k, type)	\
	((const type *)(const void *)((const char *)(cfg) + (k)->off))

/* config_keys.c */
extern const struct cfg_key	cfg_keys[];
extern const size_t		cfg_nkeys;
const struct cfg_key	*cfg_find(const char *name);

/* config_value.c */
int	cfg_parse_int(const char *s, long long *out);
int	cfg_hostport_parse(const char *s, long long pmin, long long pmax,
	    char **hostp, int *portp, const char **why);
void	cfg_redis_clear(struct config *cfg);
int	cfg_redis_parse(const char *v, struct config *cfg, char *why,
	    size_t len);
int	cfg_set_string(char **dst, const char *v);
int	cfg_set(struct config *cfg, const struct cfg_key *k, const char *v,
	    char *why, size_t len);

#endif /* CONFIG_IMPL_H */
