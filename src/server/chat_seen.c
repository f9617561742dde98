/*
 * chat_seen.c - what a plain client was written, by smid.
 *
 * A plain (seed-style) client cannot drop a repeat: whatever reaches
 * its socket twice it shows twice.  Repeats with the same smid come
 * after a fault: an item Redis offers again because its ack was lost
 * (reset link), a copy both queued and stored by a publisher whose push
 * went unanswered for 10 s, a stored copy fetched after the live one
 * was written.  So each plain session keeps the last SEEN_RING smids
 * written to it, and a chat whose smid is there is not written again.
 * Memory: SEEN_RING * 8 bytes (2 KB) per plain session, taken at the
 * first chat written to it, freed with the connection.  A client that
 * acknowledges ("acks") drops repeats itself and keeps no ring.
 */
#include "config.h"

#include <stdlib.h>

#include "chat_impl.h"
#include "proto.h"

struct seen_ring {
	int64_t		 v[SEEN_RING];
	unsigned	 next;		/* where the next smid goes */
	unsigned	 n;		/* used, up to SEEN_RING */
};

int64_t
seen_smid(const struct session *s, const char *line, size_t len)
{
	if (s == NULL || s->acks || s->uid == 0)
		return 0;
	return proto_line_smid_last(line, len);
}

enum seen_result
session_seen(const struct session *s, int64_t smid)
{
	const struct seen_ring	*r;
	unsigned		 i;

	if (smid <= 0 || (r = s->seen) == NULL)
		return SEEN_NEW;
	/* in storage order, not age: the plainest loop */
	for (i = 0; i < r->n; i++)
		if (r->v[i] == smid)
			return SEEN_REPEAT;
	return SEEN_NEW;
}

void
session_seen_add(struct session *s, int64_t smid)
{
	struct seen_ring	*r;

	if (smid <= 0)
		return;
	/* no memory: repeats are not caught, nothing else changes */
	if ((r = s->seen) == NULL &&
	    (r = s->seen = calloc(1, sizeof(*r))) == NULL)
		return;
	r->v[r->next] = smid;
	r->next = (r->next + 1) % SEEN_RING;
	if (r->n < SEEN_RING)
		r->n++;
}

void
session_seen_free(struct session *s)
{
	free(s->seen);
	s->seen = NULL;
}

size_t
seen_filter(struct session *s, const struct store_msg_list *msgs, size_t n,
    unsigned char *skip)
{
	size_t	 i, left = 0;
	int64_t	 smid;

	for (i = 0; i < n; i++) {
		smid = seen_smid(s, msgs->v[i].text, msgs->v[i].len);
		skip[i] = smid > 0 && session_seen(s, smid) == SEEN_REPEAT;
		if (!skip[i]) {
			session_seen_add(s, smid);
			left++;
		}
	}
	return left;
}

enum seen_write
session_write(struct conn *c, int64_t smid, const char *line, size_t len)
{
	struct session	*s = c->sess;

	if (s->acks)
		smid = 0;
	else if (smid < 0)
		smid = seen_smid(s, line, len);
	if (session_seen(s, smid) == SEEN_REPEAT)
		return SEEN_DROPPED;
	if (conn_send(c, line, len) == -1)
		return SEEN_FAILED;
	session_seen_add(s, smid);
	return SEEN_WRITTEN;
}
