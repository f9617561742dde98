/*
 * chatc_impl.h - what the files of chatc share: its state, the
 * requests (chatc_req.c), the showing of what the server sent
 * (chatc_show.c), the commands (chatc_cmd.c) and the connection and
 * terminal (chatc.c).
 */
#ifndef CHATC_IMPL_H
#define CHATC_IMPL_H

#include <stdint.h>

#include "buf.h"
#include "proto.h"

struct json_object;

#define ANSWER_TIMEOUT_MS	10000	/* script: wait for LOGIN/REG answers */

enum state {
	ST_MENU,		/* 1. login 2. register 3. quit */
	ST_LOGIN_ID,
	ST_LOGIN_PW,
	ST_REG_NAME,
	ST_REG_PW,
	ST_WAIT,		/* for the answer to a login or registration */
	ST_CHAT,		/* logged in: chat commands */
	ST_SCRIPT,		/* -s: one command a line */
};

struct chatc {
	int			 fd;
	int			 script;
	int			 grace_ms;
	int			 tty;		/* stdin is a terminal */
	enum state		 state;
	struct buf		 in;		/* from the server */
	struct buf		 out;		/* to the server */
	struct frame_scanner	 fs;
	struct buf		 cmd;		/* stdin, not yet a full line */
	int			 stdin_eof;
	unsigned long		 lineno;
	int32_t			 uid;		/* 0: not logged in */
	char			*name;
	int32_t			 login_id;	/* asked for, until answered */
	char			*reg_name;
	int			 waiting;	/* msgid of the awaited answer */
	int64_t			 wait_until;
	int64_t			 sleep_until;	/* script "sleep:" */
	int			 quitting;
	int64_t			 quit_at;	/* end of the grace period */
	/* reconnecting (not with -R): the resume token and the schedule */
	const char		*host, *port;
	int			 no_resume;	/* -R: the seed's way, no token */
	char			*token;		/* from the last login answer */
	int			 resuming;	/* the login under way is a resume */
	int			 tries;		/* reconnects since the last success */
	int64_t			 reconnect_at;	/* fd -1: when to try again */
	int			 drop_ms;	/* > 0: drop, retry no sooner */
	unsigned int		 seed;
	/* gap-free resume (chatc_resume.c) */
	int64_t			 last_smid;	/* of the last chat shown */
	int64_t			*seen;		/* smids shown, a ring */
	size_t			 nseen, seen_next;
	int			 resume_wait;	/* a RESUME is answered */
	char			**held;		/* chats held meanwhile */
	size_t			 nheld, held_cap;
	int64_t			 page_last;	/* last smid of a RESUME_ACK page */
};


/* chatc.c */
void	warnmsg(const char *fmt, ...)
	    __attribute__((__format__(__printf__, 1, 2)));
void	echo_off(void);
void	echo_restore(void);
void	quit_now(struct chatc *cc, int code);
void	start_quit(struct chatc *cc);

/* chatc_req.c */
void	put_int(struct json_object *o, const char *key, int64_t v);
void	put_str(struct json_object *o, const char *key, const char *s);
void	send_obj(struct chatc *cc, struct json_object *o);
void	req_login(struct chatc *cc, int32_t id, const char *pw);
void	req_register(struct chatc *cc, const char *name, const char *pw);
void	req_chat(struct chatc *cc, int32_t to, const char *text);
void	req_groupchat(struct chatc *cc, int32_t gid, const char *text);
void	req_addfriend(struct chatc *cc, int32_t fid);
void	req_creategroup(struct chatc *cc, const char *name,
	    const char *desc);
void	req_addgroup(struct chatc *cc, int32_t gid);
void	req_loginout(struct chatc *cc);
void	req_resume(struct chatc *cc);

/* chatc_show.c */
void	show_chat(struct json_object *o);
/*
 * fn(arg, in, el) for each element el of the list key of o, in the
 * object it holds (each is a JSON text); unreadable ones are reported.
 */
void	each_encoded_arg(struct json_object *o, const char *key,
	    void (*fn)(void *, struct json_object *, struct json_object *),
	    void *arg);
void	show_help(void);
void	prompt(struct chatc *cc, enum state st);
void	server_input(struct chatc *cc);

/* chatc_resume.c */
/* A chat (o, its text p, len) from the server: shown once, or held. */
void	resume_chat(struct chatc *cc, struct json_object *o, const char *p,
	    size_t len);
/* Whether the resume login answered now is followed by a RESUME. */
int	resume_will_ask(const struct chatc *cc);
/* A resume login (o) succeeded: its offline chats, and the RESUME. */
void	resume_start(struct chatc *cc, struct json_object *o);
/* A first login's offline chats (o): remembered as shown. */
void	resume_login_chats(struct chatc *cc, struct json_object *o);
void	resume_answer(struct chatc *cc, struct json_object *o);
void	resume_refused(struct chatc *cc, struct json_object *o);
void	resume_lost(struct chatc *cc);

/* chatc_cmd.c */
int	want_line(const struct chatc *cc);
void	run_lines(struct chatc *cc);

#endif /* CHATC_IMPL_H */
