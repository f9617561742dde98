/* epoll_mod.h - the epoll re-arm that chatbench and echorelay share. */
#ifndef CHATD_EPOLL_MOD_H
#define CHATD_EPOLL_MOD_H

#include <sys/epoll.h>

#include <string.h>

/* Watch fd (its data ptr) for input, and for output when out: 0 or -1. */
static inline int
epoll_mod(int ep, int fd, void *ptr, int out)
{
	struct epoll_event	 ev;

	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN | (out ? EPOLLOUT : 0);
	ev.data.ptr = ptr;
	return epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
}

#endif
