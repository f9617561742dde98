/* chat_retry.c - plain chats whose offline store failed, stored later. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "chat_impl.h"
#include "log.h"
#include "store.h"
#include "storeq.h"

/*
 * A plain chat this worker owns (handed over by another worker whose
 * recipient left meanwhile, or refused by the channel) has no other
 * copy: when the store fails (database down, disk full) it waits here,
 * oldest first, and is stored once the store works again.  Bounded:
 * past RETRY_MAX_BYTES the chat is lost, and the log says so.  An item
 * from Redis needs none of this: it stays in Redis until stored.
 */
#define RETRY_MAX_BYTES	(32u << 20)

struct retry_item {
	struct retry_item	*next;
	int32_t			 uid;
	size_t			 len;
	char			 line[];	/* without its "\n" */
};

static struct retry_item	*retry_head, **retry_tail = &retry_head;
static size_t			 retry_bytes, retry_count;
static int			 retry_busy;	/* a pass in the store thread */

int
chat_keep_offline_later(int32_t uid, const char *line, size_t len)
{
	struct retry_item	*r;

	/* without a store thread (at exit) stored here, behind the older */
	if (chat.storeq == NULL && retry_head == NULL &&
	    chat_keep_offline(&uid, 1, line, len) == 0)
		return 0;
	if (retry_bytes + len > RETRY_MAX_BYTES ||
	    (r = malloc(sizeof(*r) + len)) == NULL) {
		log_warnx("a chat for %d is lost: the store fails and %zu "
		    "byte(s) already wait for it", (int)uid, retry_bytes);
		return -1;
	}
	r->next = NULL;
	r->uid = uid;
	r->len = len;
	memcpy(r->line, line, len);
	*retry_tail = r;
	retry_tail = &r->next;
	retry_bytes += len;
	retry_count++;
	if (chat.storeq != NULL)
		chat_retry_stores();
	else if (retry_count == 1)
		log_warnx("storing a chat for %d failed: kept here, stored "
		    "again every second", (int)uid);
	return 0;
}

/* Take stored items off the head of the list (they are done). */
static void
retry_dropped(size_t done)
{
	struct retry_item	*r;

	while (done-- > 0 && (r = retry_head) != NULL) {
		retry_head = r->next;
		retry_bytes -= r->len;
		retry_count--;
		free(r);
	}
	if (retry_head == NULL)
		retry_tail = &retry_head;
}

static void
retry_log(size_t done)
{
	if (done > 0)
		log_notice("stored %zu chat(s) that waited for the store; "
		    "%zu still wait", done, retry_count);
}

void
chat_retry_stores_sync(void)
{
	struct retry_item	*r;
	size_t			 done = 0;

	if (retry_busy)
		return;		/* the pass under way goes on */
	for (r = retry_head; r != NULL; r = r->next) {
		if (chat_keep_offline(&r->uid, 1, r->line, r->len) == -1)
			break;
		done++;
	}
	retry_dropped(done);
	retry_log(done);
}

/*
 * A pass in the store thread over the first n items (the list's head,
 * which stays in place: items added meanwhile go behind): stored in
 * order until one fails.  The run touches only the items, which
 * nothing else frees or moves while the pass is under way.
 */
struct retry_job {
	struct workq_job	 sj;
	struct retry_item	*first;
	size_t			 n;
	size_t			 done;
	size_t			 stored;	/* copies, after block filters */
	char			*err;
};

static void
retry_run(struct workq_job *sj, void *ctx)
{
	struct retry_job	*j = (struct retry_job *)sj;
	struct store		*st = ctx;
	struct retry_item	*r = j->first;
	int32_t			 to, sender;
	size_t			 n;
	int			 msgid;

	for (; j->done < j->n; j->done++, r = r->next) {
		to = r->uid;
		n = 1;
		sender = proto_line_sender(r->line, r->len, &msgid);
		if (block_filter_in(st, sender, &to, &n) == -1 ||
		    (n > 0 && store_offline_add(st, &to, 1, r->line,
		    r->len) != STORE_OK)) {
			j->err = strdup(store_error(st));
			return;
		}
		j->stored += n;
	}
}

/* Whose chat the pass stopped at. */
static int32_t
retry_head_uid(const struct retry_job *j)
{
	const struct retry_item	*r = j->first;
	size_t			 i;

	for (i = 0; i < j->done && r->next != NULL; i++)
		r = r->next;
	return r->uid;
}

static void
retry_done(struct workq_job *sj)
{
	struct retry_job	*j = (struct retry_job *)sj;
	struct retry_item	*r;
	size_t			 i;

	if (j->err != NULL)
		log_warnx("storing a chat for %d failed: %s; %zu chat(s) kept "
		    "here, stored again every second", (int)retry_head_uid(j),
		    j->err, retry_count - j->done);
	chat_stat(&chat.stats->offline_stored, j->stored);
	/* a recipient who logged in meanwhile (its login may have looked
	 * before this store) fetches it: here, or on its node */
	for (i = 0, r = retry_head; i < j->done; i++, r = r->next)
		stored_nudge(&r->uid, 1);
	retry_busy = 0;
	retry_dropped(j->done);
	retry_log(j->done);
	free(j->err);
	free(j);
}

void
chat_retry_stores(void)
{
	struct retry_job	*j;

	if (chat.storeq == NULL) {
		chat_retry_stores_sync();
		return;
	}
	if (retry_head == NULL || retry_busy ||
	    (j = calloc(1, sizeof(*j))) == NULL)
		return;
	j->first = retry_head;
	j->n = retry_count;
	j->sj.run = retry_run;
	j->sj.done = retry_done;
	retry_busy = 1;
	storeq_submit(chat.storeq, &j->sj);
}

size_t
chat_retry_pending(void)
{
	return retry_count;
}

size_t
chat_retry_abandon(void)
{
	struct retry_item	*r;
	size_t			 n = retry_count;

	/* a pass still holds them: never (the store queue is gone first) */
	if (retry_busy) {
		log_warnx("%zu chat(s) still being stored", n);
		return 0;
	}
	while ((r = retry_head) != NULL) {
		retry_head = r->next;
		free(r);
	}
	retry_tail = &retry_head;
	retry_bytes = retry_count = 0;
	return n;
}
