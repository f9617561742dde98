/*
 * log.c - one line per event, to stderr, a file or syslog(3).
 *
 * A line is built whole in a bounded buffer and written with a single
 * write(2): the file is opened O_APPEND, so lines from the master and
 * the workers never interleave, and a line is never longer than
 * PIPE_BUF, so the same holds when stderr is a pipe.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define LOG_LINE_MAX	4096	/* whole line, newline included */
#define LOG_MSG_MAX	3072	/* message part, errno text included */
#define LOG_ERRNO_MAX	128	/* room kept for ": strerror(errno)" */

enum log_dest {
	LOG_TO_STDERR,
	LOG_TO_FILE,
	LOG_TO_SYSLOG
};

static enum log_dest	 log_dest = LOG_TO_STDERR;
static int		 log_fd = -1;		/* LOG_TO_FILE only */
static char		*log_path;		/* LOG_TO_FILE only */
static int		 log_max = LOG_INFO;
static char		 log_role[64] = "main";

/* Indexed by priority; log_level_parse() accepts these and a few aliases. */
static const char *const log_names[] = {
	"emerg", "alert", "crit", "error", "warning", "notice", "info", "debug"
};

static void	log_vlog(int, int, int, const char *, va_list)
		    __attribute__((format(printf, 4, 0)));

int
log_init(const char *target, int level)
{
	enum log_dest	 dest;
	char		*path = NULL;
	int		 fd = -1, saved;

	if (target == NULL || strcmp(target, "stderr") == 0)
		dest = LOG_TO_STDERR;
	else if (strcmp(target, "syslog") == 0)
		dest = LOG_TO_SYSLOG;
	else {
		dest = LOG_TO_FILE;
		if ((path = strdup(target)) == NULL)
			return -1;
		fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
		    0640);
		if (fd == -1) {
			saved = errno;
			free(path);
			errno = saved;
			return -1;
		}
	}

	if (log_dest == LOG_TO_SYSLOG)
		closelog();
	if (log_fd != -1)
		close(log_fd);
	free(log_path);

	log_dest = dest;
	log_fd = fd;
	log_path = path;
	if (dest == LOG_TO_SYSLOG)
		openlog("chatd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
	log_set_level(level);
	return 0;
}

void
log_set_role(const char *role)
{
	snprintf(log_role, sizeof(log_role), "%s",
	    role != NULL ? role : "main");
}

void
log_set_level(int level)
{
	if (level < LOG_EMERG)
		level = LOG_EMERG;
	if (level > LOG_DEBUG)
		level = LOG_DEBUG;
	log_max = level;
}

int
log_reopen(void)
{
	int	 fd;

	if (log_dest != LOG_TO_FILE)
		return 0;
	fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0640);
	if (fd == -1)
		return -1;		/* keep writing to the old file */
	close(log_fd);
	log_fd = fd;
	return 0;
}

void
log_reopen_said(void)
{
	if (log_reopen() == -1)
		log_warn("reopening the log");
	else
		log_info("log file reopened");
}

int
log_level_parse(const char *name)
{
	size_t	 i;

	if (name == NULL)
		return -1;
	for (i = 0; i < sizeof(log_names) / sizeof(log_names[0]); i++)
		if (strcasecmp(name, log_names[i]) == 0)
			return (int)i;
	if (strcasecmp(name, "err") == 0)
		return LOG_ERR;
	if (strcasecmp(name, "warn") == 0)
		return LOG_WARNING;
	return -1;
}

/* Keep one event on one line: control characters become '?'. */
static void
log_sanitize(char *s)
{
	for (; *s != '\0'; s++)
		if (((unsigned char)*s < 0x20 && *s != '\t') || *s == 0x7f)
			*s = '?';
}

static void
log_write(int fd, const char *p, size_t len)
{
	ssize_t	 n;

	while (len > 0) {
		if ((n = write(fd, p, len)) == -1) {
			if (errno == EINTR)
				continue;
			return;		/* nowhere left to report it */
		}
		p += n;
		len -= (size_t)n;
	}
}

/*
 * Messages at LOG_CRIT and above (fatal) are never filtered out.
 * errnum is appended as ": strerror(errnum)" when has_errno is set.
 */
static void
log_vlog(int pri, int has_errno, int errnum, const char *fmt, va_list ap)
{
	char		 msg[LOG_MSG_MAX], etxt[LOG_ERRNO_MAX];
	char		 line[LOG_LINE_MAX];
	struct timespec	 ts;
	struct tm	 tm;
	size_t		 elen, len;
	int		 n, saved = errno;

	if (pri > log_max && pri > LOG_CRIT)
		return;

	etxt[0] = '\0';
	if (has_errno)
		snprintf(etxt, sizeof(etxt), ": %s", strerror(errnum));
	elen = strlen(etxt);

	n = vsnprintf(msg, sizeof(msg) - elen, fmt, ap);
	if (n < 0)
		snprintf(msg, sizeof(msg) - elen, "(unprintable message)");
	else if ((size_t)n >= sizeof(msg) - elen) {
		len = sizeof(msg) - elen - 1;
		memcpy(msg + len - 3, "...", 3);
	}
	len = strlen(msg);
	memcpy(msg + len, etxt, elen + 1);
	log_sanitize(msg);

	if (log_dest == LOG_TO_SYSLOG) {
		syslog(pri, "%s: %s", log_role, msg);
		errno = saved;
		return;
	}

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line),
	    "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ chatd[%ld] %s %s: %s\n",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000L, (long)getpid(),
	    log_role, log_names[pri & 7], msg);
	if (n < 0) {
		errno = saved;
		return;
	}
	if ((size_t)n >= sizeof(line)) {
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	log_write(log_dest == LOG_TO_FILE ? log_fd : STDERR_FILENO, line,
	    (size_t)n);
	errno = saved;
}

void
log_debug(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vlog(LOG_DEBUG, 0, 0, fmt, ap);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vlog(LOG_INFO, 0, 0, fmt, ap);
	va_end(ap);
}

void
log_notice(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vlog(LOG_NOTICE, 0, 0, fmt, ap);
	va_end(ap);
}

void
log_warn(const char *fmt, ...)
{
	va_list	 ap;
	int	 saved = errno;

	va_start(ap, fmt);
	log_vlog(LOG_WARNING, 1, saved, fmt, ap);
	va_end(ap);
	errno = saved;
}

void
log_warnx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vlog(LOG_WARNING, 0, 0, fmt, ap);
	va_end(ap);
}

/* Like log_warn when errno is set, like log_warnx otherwise; exits 1. */
void
fatal(const char *fmt, ...)
{
	va_list	 ap;
	int	 saved = errno;

	va_start(ap, fmt);
	log_vlog(LOG_CRIT, saved != 0, saved, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vlog(LOG_CRIT, 0, 0, fmt, ap);
	va_end(ap);
	exit(1);
}

void
err_set(char *err, size_t errlen, const char *fmt, ...)
{
	va_list	 ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}
