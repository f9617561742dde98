/* log.h - one line per event, prefixed with the process role. */
#ifndef CHATD_LOG_H
#define CHATD_LOG_H

#include <stddef.h>
#include <syslog.h>

/*
 * target: NULL or "stderr" logs to stderr, "syslog" to syslog(3) with
 * facility daemon, anything else is a file opened for appending.
 * level: a syslog priority (LOG_ERR .. LOG_DEBUG); lower priorities
 * are dropped.  Returns 0 or -1 with errno set (file could not open).
 */
int	log_init(const char *target, int level);
/* "master", "worker 3": shown on every line. */
void	log_set_role(const char *role);
void	log_set_level(int level);
/* Reopen the log file (SIGUSR1, logrotate); 0 or -1. */
int	log_reopen(void);
/* The same, its outcome logged (SIGUSR1 in the master and the workers). */
void	log_reopen_said(void);
/* "debug".."emerg" -> LOG_*; -1 if unknown. */
int	log_level_parse(const char *name);

/*
 * Format into a caller's error buffer (err, errlen), as library code
 * reports problems instead of logging them.  NULL err is allowed.
 */
void	err_set(char *err, size_t errlen, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));

void	log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_notice(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* log_warn appends ": strerror(errno)"; log_warnx does not. */
void	log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	fatal(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2), noreturn));
void	fatalx(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2), noreturn));

#endif
