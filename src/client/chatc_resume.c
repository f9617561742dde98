/*
 * chatc_resume.c - chatc's side of a gap-free resume (chatd-protocol(7)
 * RESUME).  Every chat shown is remembered by its smid; after a token
 * login on a new connection chatc asks for what came after the last
 * one shown, holds live chats (and the login's offline ones) until the
 * answer is in, and shows each chat once: the answer's first page
 * repeats a window of chats from before, which are dropped here.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "chatc_impl.h"
#include "proto.h"

/* smids remembered: more than the server's window holds at any sane rate */
#define SEEN_MAX	16384

static int64_t
smid_of(struct json_object *o)
{
	struct json_object	*v;

	if (!json_object_object_get_ex(o, "smid", &v) ||
	    !json_object_is_type(v, json_type_int))
		return 0;
	return json_object_get_int64(v);
}

static int
seen(const struct chatc *cc, int64_t smid)
{
	size_t	 i;

	for (i = 0; i < cc->nseen; i++)
		if (cc->seen[i] == smid)
			return 1;
	return 0;
}

static void
mark(struct chatc *cc, int64_t smid)
{
	if (cc->seen == NULL &&
	    (cc->seen = calloc(SEEN_MAX, sizeof(*cc->seen))) == NULL) {
		warnmsg("out of memory");
		exit(1);
	}
	cc->seen[cc->seen_next] = smid;
	cc->seen_next = (cc->seen_next + 1) % SEEN_MAX;
	if (cc->nseen < SEEN_MAX)
		cc->nseen++;
	cc->last_smid = smid;
}

/* Show the chat o (text p, len) unless it was shown before. */
static void
show_new(struct chatc *cc, struct json_object *o, const char *p, size_t len)
{
	int64_t	 smid = smid_of(o);

	if (smid > 0) {
		if (seen(cc, smid))
			return;
		mark(cc, smid);
	}
	if (cc->script) {
		fwrite(p, 1, len, stdout);
		fputc('\n', stdout);
	} else
		show_chat(o);
	fflush(stdout);
}

/* A chat given as text: shown, or held while a resume is answered. */
static void
chat_text(struct chatc *cc, const char *p, size_t len)
{
	struct json_object	*o;
	char			*copy, **nv;
	size_t			 ncap;

	if (cc->resume_wait) {
		if (cc->nheld == cc->held_cap) {
			ncap = cc->held_cap ? cc->held_cap * 2 : 64;
			if ((nv = realloc(cc->held, ncap * sizeof(*nv))) ==
			    NULL)
				goto nomem;
			cc->held = nv;
			cc->held_cap = ncap;
		}
		if ((copy = malloc(len + 1)) == NULL)
			goto nomem;
		memcpy(copy, p, len);
		copy[len] = '\0';
		cc->held[cc->nheld++] = copy;
		return;
	}
	if ((o = json_tokener_parse(p)) == NULL ||
	    !json_object_is_type(o, json_type_object)) {
		warnmsg("unreadable chat: %.*s", (int)(len > 200 ? 200 : len),
		    p);
		json_object_put(o);
		return;
	}
	show_new(cc, o, p, len);
	json_object_put(o);
	return;
 nomem:
	warnmsg("out of memory");
	exit(1);
}

/* The resume is over (answered, refused, or the connection went). */
static void
release_held(struct chatc *cc)
{
	size_t	 i;

	cc->resume_wait = 0;
	for (i = 0; i < cc->nheld; i++) {
		chat_text(cc, cc->held[i], strlen(cc->held[i]));
		free(cc->held[i]);
	}
	cc->nheld = 0;
}

void
resume_chat(struct chatc *cc, struct json_object *o, const char *p,
    size_t len)
{
	if (!cc->resume_wait && cc->nheld > 0)
		release_held(cc);
	if (cc->resume_wait)
		chat_text(cc, p, len);
	else
		show_new(cc, o, p, len);
}

/* A chat of a list in an answer: o parsed, el its JSON text. */
typedef void listed_fn(struct chatc *, struct json_object *o,
    const char *p, size_t len);

struct listed {
	struct chatc	*cc;
	listed_fn	*fn;
};

static void
listed_one(void *arg, struct json_object *o, struct json_object *el)
{
	struct listed	*l = arg;

	if (json_object_is_type(el, json_type_string))
		l->fn(l->cc, o, json_object_get_string(el),
		    (size_t)json_object_get_string_len(el));
}

/* fn on each chat of the list key of o (JSON texts). */
static void
each_text(struct chatc *cc, struct json_object *o, const char *key,
    listed_fn *fn)
{
	struct listed	 l = { cc, fn };

	each_encoded_arg(o, key, listed_one, &l);
}

/* A chat shown by the first login's answer itself: only remembered. */
static void
remember(struct chatc *cc, struct json_object *o, const char *p, size_t len)
{
	(void)p;
	(void)len;
	if (smid_of(o) > 0 && !seen(cc, smid_of(o)))
		mark(cc, smid_of(o));
}

/* A chat of the login's answer: shown, or held while a resume is answered. */
static void
offline_chat(struct chatc *cc, struct json_object *o, const char *p,
    size_t len)
{
	(void)o;
	chat_text(cc, p, len);
}

void
resume_login_chats(struct chatc *cc, struct json_object *o)
{
	each_text(cc, o, "offlinemsg", remember);
}

/* A RESUME_ACK page's chat: shown unless seen; cc->page_last follows. */
static void
page_chat(struct chatc *cc, struct json_object *o, const char *p, size_t len)
{
	cc->page_last = smid_of(o);
	show_new(cc, o, p, len);
}

static void
ask(struct chatc *cc, const char *key, int64_t smid)
{
	struct json_object	*r = json_object_new_object();

	put_int(r, key, smid);
	put_int(r, "msgid", MSG_RESUME);
	send_obj(cc, r);
}

int
resume_will_ask(const struct chatc *cc)
{
	return !cc->no_resume && cc->last_smid > 0;
}

void
resume_start(struct chatc *cc, struct json_object *o)
{
	struct json_object	*list;

	if (!resume_will_ask(cc)) {
		/* nothing to name: what the login brought, as it came */
		each_text(cc, o, "offlinemsg", cc->script ? remember :
		    offline_chat);
		return;
	}
	cc->resume_wait = 1;
	if (json_object_object_get_ex(o, "offlinemsg", &list)) {
		each_text(cc, o, "offlinemsg", offline_chat);
		json_object_object_del(o, "offlinemsg");
	}
	if (cc->script) {
		printf("%s\n", json_object_to_json_string_ext(o,
		    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
		fflush(stdout);
	}
	ask(cc, "since", cc->last_smid);
}

void
resume_answer(struct chatc *cc, struct json_object *o)
{
	struct json_object	*v;

	if (!cc->resume_wait)
		return;
	cc->page_last = 0;
	each_text(cc, o, "messages", page_chat);
	if (json_object_object_get_ex(o, "more", &v) &&
	    json_object_get_boolean(v) && cc->page_last > 0) {
		ask(cc, "after", cc->page_last);
		return;
	}
	release_held(cc);
}

void
resume_refused(struct chatc *cc, struct json_object *o)
{
	struct json_object	*v;

	if (!cc->resume_wait)
		return;
	warnmsg("resume: %s", json_object_object_get_ex(o, "errmsg", &v) ?
	    json_object_get_string(v) : "refused");
	release_held(cc);
}

void
resume_lost(struct chatc *cc)
{
	/* held chats stay held: the next resume names the last one shown */
	cc->resume_wait = 0;
}
