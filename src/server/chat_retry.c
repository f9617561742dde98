/* chat_retry.c - plain chats whose offline store failed, stored later. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "chat_impl.h"
#include "log.h"

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

int
chat_keep_offline_later(int32_t uid, const char *line, size_t len)
{
	struct retry_item	*r;

	if (chat_keep_offline(&uid, 1, line, len) == 0)
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
	if (retry_count++ == 0)
		log_warnx("storing a chat for %d failed: kept here, stored "
		    "again every second", (int)uid);
	return 0;
}

void
chat_retry_stores(void)
{
	struct retry_item	*r;
	size_t			 done = 0;

	while ((r = retry_head) != NULL) {
		if (chat_keep_offline(&r->uid, 1, r->line, r->len) == -1)
			break;
		retry_head = r->next;
		retry_bytes -= r->len;
		retry_count--;
		done++;
		free(r);
	}
	if (retry_head == NULL)
		retry_tail = &retry_head;
	if (done > 0)
		log_notice("stored %zu chat(s) that waited for the store; "
		    "%zu still wait", done, retry_count);
}

size_t
chat_retry_abandon(void)
{
	struct retry_item	*r;
	size_t			 n = retry_count;

	while ((r = retry_head) != NULL) {
		retry_head = r->next;
		free(r);
	}
	retry_tail = &retry_head;
	retry_bytes = retry_count = 0;
	return n;
}
