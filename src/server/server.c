/* SPDX-License-Identifier: MIT */
/*
 * Memory server: set-up, worker threads, event loops and socket I/O. The
 * protocol spoken on a connection is in session.c; what is done with pages
 * in store.c. Threads and locks are described in docs/THREADS.md.
 *
 * Each worker owns an epoll instance holding every listener (added with
 * EPOLLEXCLUSIVE, so a new connection wakes one idle worker, not all), a
 * shared "stop" eventfd, its handoff eventfd and its connections. The kernel
 * wakes the same idle worker for every connection, so the worker that
 * accepts hands a connection to the worker with the fewest (through that
 * worker's handoff queue): long-lived clients that connected while the
 * server was idle would otherwise all share one thread. A connection lives
 * and dies on its worker: no locks on the I/O path. One event on a connection
 * reads what the socket has, processes every complete frame, and sends all
 * replies with one send() before the worker sleeps again.
 *
 * Level-triggered epoll: a connection that stops reading (output over
 * CONN_OUT_HIGH) is simply not polled for input until its output drains.
 *
 * Timeouts are checked by a periodic scan of the worker's connections (every
 * io_timeout / 4, at most 1 s, at least 10 ms): a handshake not finished
 * within io_timeout, a partial frame with no byte received for io_timeout, or
 * pending output with no byte sent for io_timeout closes the connection. An
 * authenticated, idle connection is never timed out.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "common/util.h"
#include "server/pool.h"
#include "server/server_int.h"

#ifndef SDRSA_VERSION
#define SDRSA_VERSION "unknown"
#endif

#define MAX_EVENTS 64
#define ACCEPT_BATCH 64
#define READS_PER_EVENT 16

const char *sdrsa_server_version(void)
{
	return SDRSA_VERSION;
}

void srv_log(struct sdrsa_server *s, int level, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (!s->log || level > s->log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	s->log(s->log_userdata, level, msg);
}

static void __attribute__((format(printf, 3, 4))) set_err(char *err, size_t n, const char *fmt, ...)
{
	va_list ap;

	if (!err || !n)
		return;
	va_start(ap, fmt);
	vsnprintf(err, n, fmt, ap);
	va_end(ap);
}

static void fmt_bytes(uint64_t b, char *buf, size_t n)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	unsigned u = 0;
	double v = (double)b;

	while (v >= 1024 && u + 1 < ARRAY_SIZE(units)) {
		v /= 1024;
		u++;
	}
	if (v == (double)(uint64_t)v)
		snprintf(buf, n, "%llu %s", (unsigned long long)v, units[u]);
	else
		snprintf(buf, n, "%.1f %s", v, units[u]);
}

/* ---- connections -------------------------------------------------------- */

static void conn_free(struct conn *c)
{
	struct worker *w = c->w;
	struct sdrsa_server *s = w->srv;
	double secs = (double)(sdrsa_now_ms() - c->accepted_ms) / 1000.0;

	srv_log(s, LOG_INFO,
		"disconnect %s client=%s ns=%u: %s (%llu frames, %llu bytes in, %llu bytes out, "
		"%.1f s)",
		c->peer, c->name[0] ? c->name : "-", c->ns_id, c->reason[0] ? c->reason : "closed",
		(unsigned long long)c->frames, (unsigned long long)c->bytes_in,
		(unsigned long long)c->bytes_out, secs);
	epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	w->nconns--;
	atomic_fetch_sub(&w->load, 1);
	atomic_fetch_sub(&s->conns, 1);
	sdrsa_store_close(s->store, c->ns);
	free(c->in);
	free(c->out);
	free(c);
}

/* Close now; keeps an earlier, more precise reason. */
static void conn_close(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void conn_close(struct conn *c, const char *fmt, ...)
{
	if (!c->reason[0] || !c->closing) {
		va_list ap;

		va_start(ap, fmt);
		vsnprintf(c->reason, sizeof(c->reason), fmt, ap);
		va_end(ap);
	}
	conn_free(c);
}

/* Register the interest this connection needs now. Returns 0 or -1 (closed). */
static int conn_arm(struct conn *c)
{
	uint32_t want = 0;

	if (!c->eof && out_pending(c) < CONN_OUT_HIGH)
		want |= EPOLLIN | EPOLLRDHUP;
	if (out_pending(c))
		want |= EPOLLOUT;
	if (want != c->ep_events) {
		struct epoll_event ev = {.events = want, .data.ptr = c};

		if (epoll_ctl(c->w->epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0) {
			conn_close(c, "epoll_ctl: %s", strerror(errno));
			return -1;
		}
		c->ep_events = want;
	}
	return 0;
}

size_t conn_send_iov(struct conn *c, const struct iovec *iov, size_t n)
{
	struct msghdr m = {.msg_iov = (struct iovec *)iov, .msg_iovlen = n};
	ssize_t r;

	do
		r = sendmsg(c->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (r < 0 && errno == EINTR);
	if (r <= 0)
		return 0; /* full, or failed: conn_flush() sees the error again */
	c->bytes_out += (uint64_t)r;
	STAT_ADD(c->w, bytes_out, (uint64_t)r);
	c->last_tx_ms = sdrsa_now_ms();
	return (size_t)r;
}

/* Send as much output as the socket takes. Returns 0 or -1 (closed). */
static int conn_flush(struct conn *c)
{
	struct worker *w = c->w;

	while (out_pending(c)) {
		ssize_t r =
		    send(c->fd, c->out + c->out_start, out_pending(c), MSG_NOSIGNAL | MSG_DONTWAIT);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			conn_close(c, "send: %s", strerror(errno));
			return -1;
		}
		c->out_start += (size_t)r;
		c->bytes_out += (uint64_t)r;
		STAT_ADD(w, bytes_out, (uint64_t)r);
		c->last_tx_ms = sdrsa_now_ms();
	}
	c->out_start = c->out_end = 0;
	/* A burst of large replies grew the buffer; give it back when idle. */
	if (c->out_cap > 2 * (SDRSA_HDR_SIZE + SDRSA_MAX_PAYLOAD)) {
		uint8_t *p = realloc(c->out, CONN_OUT_INITIAL);

		if (p) {
			c->out = p;
			c->out_cap = CONN_OUT_INITIAL;
		}
	}
	return 0;
}

/*
 * Process buffered frames and send replies until the input has no complete
 * frame or the socket stops taking output; then decide what comes next:
 * linger, close, or wait for epoll. Returns 0 or -1 (closed).
 */
static int conn_pump(struct conn *c)
{
	for (;;) {
		int stalled;

		if (!out_pending(c))
			c->last_tx_ms = sdrsa_now_ms();
		stalled = session_process(c);
		if (c->oom) {
			conn_close(c, "out of memory for connection buffers");
			return -1;
		}
		if (conn_flush(c))
			return -1;
		if (!stalled || out_pending(c) >= CONN_OUT_HIGH)
			break;
	}
	if (c->closing && !out_pending(c)) {
		if (c->eof) {
			conn_free(c);
			return -1;
		}
		if (!c->shut) {
			/* Our reply is out; say so with a FIN and drain what the
			 * peer still sends, so that no RST destroys the reply. */
			shutdown(c->fd, SHUT_WR);
			c->shut = 1;
			c->linger_until_ms =
			    sdrsa_now_ms() + MIN(CONN_LINGER_MS, c->w->srv->io_timeout_ms);
		}
	}
	if (c->eof && !c->closing && !out_pending(c) && !session_frame_ready(c)) {
		if (c->in_end > c->in_start)
			conn_close(c, "closed by client in the middle of a frame");
		else
			conn_close(c, "closed by client");
		return -1;
	}
	return conn_arm(c);
}

/* Make room for the next read: the whole current frame must fit. */
static int conn_in_room(struct conn *c)
{
	size_t need = session_frame_need(c), used = c->in_end - c->in_start;

	if (need < 16384)
		need = 16384; /* read ahead: many small frames per recv */
	if (c->in_cap - c->in_start >= need && c->in_cap - c->in_end >= 4096)
		return 0;
	if (c->in_start) {
		memmove(c->in, c->in + c->in_start, used);
		c->in_start = 0;
		c->in_end = used;
	}
	if (c->in_cap < need) {
		size_t cap = c->in_cap;
		uint8_t *p;

		while (cap < need)
			cap *= 2;
		p = realloc(c->in, cap);
		if (!p)
			return -1;
		c->in = p;
		c->in_cap = cap;
	}
	return 0;
}

/* Read what the socket has and process it. Returns 0 or -1 (closed). */
static int conn_read(struct conn *c)
{
	struct worker *w = c->w;

	for (int i = 0; i < READS_PER_EVENT && !c->eof; i++) {
		size_t room;
		ssize_t r;

		if (c->closing) {
			/* Lingering after a fatal reply: discard. */
			c->in_start = c->in_end = 0;
		} else if (out_pending(c) >= CONN_OUT_HIGH) {
			break;
		} else if (conn_in_room(c)) {
			conn_close(c, "out of memory for connection buffers");
			return -1;
		}
		room = c->in_cap - c->in_end;
		r = recv(c->fd, c->in + c->in_end, room, MSG_DONTWAIT);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			conn_close(c, "recv: %s", strerror(errno));
			return -1;
		}
		if (r == 0) {
			c->eof = 1;
			break;
		}
		c->in_end += (size_t)r;
		c->bytes_in += (uint64_t)r;
		STAT_ADD(w, bytes_in, (uint64_t)r);
		c->last_rx_ms = sdrsa_now_ms();
		if (c->closing)
			continue;
		/* Process now, so that the buffer never holds more than a frame
		 * beyond what has been handled. */
		if (session_frame_ready(c)) {
			session_process(c);
			if (c->oom) {
				conn_close(c, "out of memory for connection buffers");
				return -1;
			}
		}
		if ((size_t)r < room)
			break; /* socket drained */
	}
	return conn_pump(c);
}

static void conn_event(struct conn *c, uint32_t events)
{
	if (events & EPOLLERR) {
		int err = 0;
		socklen_t len = sizeof(err);

		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		conn_close(c, "socket error: %s", strerror(err ? err : EIO));
		return;
	}
	if (events & (EPOLLIN | EPOLLHUP | EPOLLRDHUP))
		conn_read(c);
	else if (events & EPOLLOUT)
		conn_pump(c);
}

static void describe_peer(int fd, const struct sockaddr_storage *ss, socklen_t len, char *buf,
			  size_t n)
{
	if (ss->ss_family == AF_UNIX) {
		struct ucred cr;
		socklen_t cl = sizeof(cr);

		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) == 0) {
			snprintf(buf, n, "unix:pid=%d,uid=%u", (int)cr.pid, (unsigned)cr.uid);
			return;
		}
	}
	sdrsa_format_sockaddr((const struct sockaddr *)ss, len, buf, n);
}

static void refuse_busy(struct worker *w, int fd, const char *peer)
{
	uint8_t hdr[SDRSA_HDR_SIZE];
	uint64_t now = sdrsa_now_ms();

	session_encode_status(hdr, SDRSA_OP_HELLO, SDRSA_S_BUSY);
	(void)!send(fd, hdr, sizeof(hdr), MSG_NOSIGNAL | MSG_DONTWAIT);
	close(fd);
	if (now - w->last_emfile_log_ms >= 1000) {
		w->last_emfile_log_ms = now;
		srv_log(w->srv, LOG_WARNING,
			"refused %s: %u connections open, the --max-conns limit; raise --max-conns "
			"(further refusals within 1 s not logged)",
			peer, w->srv->max_conns);
	}
}

/* Take a connection on worker w, which already counts it in w->load. */
static void accept_one(struct worker *w, int fd, const struct sockaddr_storage *ss, socklen_t len)
{
	struct sdrsa_server *s = w->srv;
	char peer[96];
	struct conn *c;
	struct epoll_event ev;
	unsigned n;

	describe_peer(fd, ss, len, peer, sizeof(peer));
	n = atomic_fetch_add(&s->conns, 1);
	if (n >= s->max_conns) {
		atomic_fetch_sub(&s->conns, 1);
		atomic_fetch_sub(&w->load, 1);
		refuse_busy(w, fd, peer);
		return;
	}
	if (ss->ss_family == AF_INET || ss->ss_family == AF_INET6) {
		/* Replies go out at once. Keepalive finds peers whose host died,
		 * so that their connections do not count against --max-conns
		 * forever: probe after 60 s of silence, give up after 6 x 10 s. */
		int one = 1, idle = 60, intvl = 10, cnt = 6;

		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
		setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
		setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
		setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
	}
	c = calloc(1, sizeof(*c));
	if (c) {
		c->in = malloc(CONN_IN_INITIAL);
		c->out = malloc(CONN_OUT_INITIAL);
	}
	if (!c || !c->in || !c->out) {
		srv_log(s, LOG_ERR, "refused %s: out of memory", peer);
		goto out_refuse;
	}
	c->kind = EP_CONN;
	c->fd = fd;
	c->w = w;
	c->in_cap = CONN_IN_INITIAL;
	c->out_cap = CONN_OUT_INITIAL;
	c->state = CS_HELLO;
	c->local = sdrsa_sockaddr_is_local((const struct sockaddr *)ss);
	c->accepted_ms = c->last_rx_ms = c->last_tx_ms = sdrsa_now_ms();
	memcpy(c->peer, peer, sizeof(c->peer));
	c->ep_events = EPOLLIN | EPOLLRDHUP;
	ev.events = c->ep_events;
	ev.data.ptr = c;
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		srv_log(s, LOG_ERR, "refused %s: epoll_ctl: %s", peer, strerror(errno));
		goto out_refuse;
	}
	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
	w->nconns++;
	atomic_fetch_add(&s->accepted, 1);
	srv_log(s, LOG_DEBUG, "accepted %s", peer);
	return;

out_refuse:
	if (c) {
		free(c->in);
		free(c->out);
		free(c);
	}
	close(fd);
	atomic_fetch_sub(&s->conns, 1);
	atomic_fetch_sub(&w->load, 1);
}

/* The worker that should take a new connection: the one with the fewest,
 * w itself on a tie (no handoff). Counted in its load at once, so that a
 * burst of connections spreads. */
static struct worker *pick_worker(struct worker *w)
{
	struct sdrsa_server *s = w->srv;
	struct worker *best = w;
	unsigned best_load = atomic_load(&w->load);

	for (unsigned i = 0; i < s->nworkers; i++) {
		unsigned l = atomic_load(&s->workers[i].load);

		if (l < best_load) {
			best = &s->workers[i];
			best_load = l;
		}
	}
	atomic_fetch_add(&best->load, 1);
	return best;
}

/* Queue a connection for worker t and wake it; 0, or -1 (out of memory:
 * the caller takes the connection itself). */
static int handoff(struct worker *t, int fd, const struct sockaddr_storage *ss, socklen_t len)
{
	uint64_t one = 1;

	pthread_mutex_lock(&t->hmu);
	if (t->hn == t->hcap) {
		unsigned cap = t->hcap ? 2 * t->hcap : 16;
		struct handoff *q = realloc(t->hq, cap * sizeof(*q));

		if (!q) {
			pthread_mutex_unlock(&t->hmu);
			return -1;
		}
		t->hq = q;
		t->hcap = cap;
	}
	t->hq[t->hn++] = (struct handoff){.fd = fd, .len = len, .ss = *ss};
	pthread_mutex_unlock(&t->hmu);
	(void)!write(t->handoff_fd, &one, sizeof(one));
	return 0;
}

/* Take the connections other workers handed to w. */
static void take_handoffs(struct worker *w)
{
	uint64_t v;

	(void)!read(w->handoff_fd, &v, sizeof(v));
	for (;;) {
		struct handoff h;

		pthread_mutex_lock(&w->hmu);
		if (!w->hn) {
			pthread_mutex_unlock(&w->hmu);
			return;
		}
		h = w->hq[--w->hn];
		pthread_mutex_unlock(&w->hmu);
		accept_one(w, h.fd, &h.ss, h.len);
	}
}

/* Close what is still queued for w (the server is stopping). */
static void drop_handoffs(struct worker *w)
{
	pthread_mutex_lock(&w->hmu);
	while (w->hn)
		close(w->hq[--w->hn].fd);
	pthread_mutex_unlock(&w->hmu);
}

static void do_accept(struct worker *w, struct listener *l)
{
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int fd = accept4(l->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd >= 0) {
			struct worker *t = pick_worker(w);

			if (t != w && handoff(t, fd, &ss, len) < 0) {
				atomic_fetch_sub(&t->load, 1);
				atomic_fetch_add(&w->load, 1);
				t = w;
			}
			if (t == w)
				accept_one(w, fd, &ss, len);
			continue;
		}
		switch (errno) {
		case EINTR:
		case ECONNABORTED:
		case EPROTO:
			continue;
		case EAGAIN:
#if EAGAIN != EWOULDBLOCK
		case EWOULDBLOCK:
#endif
			return;
		case EMFILE:
		case ENFILE: {
			/* Out of descriptors: the listener stays readable, so
			 * accept with the spare fd and refuse, or we would spin. */
			uint64_t now = sdrsa_now_ms();

			if (w->spare_fd >= 0) {
				close(w->spare_fd);
				fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
				if (fd >= 0) {
					uint8_t hdr[SDRSA_HDR_SIZE];

					session_encode_status(hdr, SDRSA_OP_HELLO, SDRSA_S_BUSY);
					(void)!send(fd, hdr, sizeof(hdr),
						    MSG_NOSIGNAL | MSG_DONTWAIT);
					close(fd);
				}
				w->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
			}
			if (now - w->last_emfile_log_ms >= 1000) {
				w->last_emfile_log_ms = now;
				srv_log(w->srv, LOG_ERR,
					"accept on %s: %s; refusing connections: raise the open "
					"files limit (LimitNOFILE=) or lower --max-conns",
					l->name, strerror(errno));
			}
			return;
		}
		default:
			srv_log(w->srv, LOG_ERR, "accept on %s: %s", l->name, strerror(errno));
			return;
		}
	}
}

/* Close connections past their deadlines (see the top of this file). */
static void scan_timeouts(struct worker *w, uint64_t now)
{
	uint64_t t = w->srv->io_timeout_ms;
	struct conn *c = w->conns, *next;

	for (; c; c = next) {
		next = c->next;
		if (c->shut) {
			if (now >= c->linger_until_ms)
				conn_free(c);
		} else if (out_pending(c)) {
			if (now - c->last_tx_ms > t)
				conn_close(c, "client did not read replies for %llu ms",
					   (unsigned long long)t);
		} else if (c->state != CS_READY) {
			if (now - c->accepted_ms > t)
				conn_close(c, "handshake not finished within %llu ms (io timeout)",
					   (unsigned long long)t);
		} else if (c->in_end > c->in_start) {
			if (now - c->last_rx_ms > t)
				conn_close(
				    c, "stalled for %llu ms in the middle of a frame (io timeout)",
				    (unsigned long long)t);
		}
	}
}

static uint64_t scan_interval(const struct sdrsa_server *s)
{
	uint64_t i = s->io_timeout_ms / 4;

	return i < 10 ? 10 : i > 1000 ? 1000 : i;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct sdrsa_server *s = w->srv;
	struct epoll_event evs[MAX_EVENTS];
	uint64_t spin_until_ns = 0, interval = scan_interval(s);
	int stop = 0;

	w->next_scan_ms = sdrsa_now_ms() + interval;
	while (!stop) {
		uint64_t now = sdrsa_now_ms();
		int timeout, n;

		if (now >= w->next_scan_ms) {
			scan_timeouts(w, now);
			w->next_scan_ms = now + interval;
		}
		if (spin_until_ns && sdrsa_now_ns() < spin_until_ns) {
			/* Busy-poll window after recent activity. Yield first: on a
			 * vCPU shared with the client, the client gets to run. */
			sched_yield();
			timeout = 0;
		} else {
			spin_until_ns = 0;
			timeout = w->nconns ? (int)(w->next_scan_ms - now) : -1;
		}
		n = epoll_wait(w->epfd, evs, MAX_EVENTS, timeout);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			srv_log(s, LOG_ERR, "worker %u: epoll_wait: %s", w->idx, strerror(errno));
			break;
		}
		for (int i = 0; i < n; i++) {
			int kind = *(int *)evs[i].data.ptr;

			if (kind == EP_CONN)
				conn_event(evs[i].data.ptr, evs[i].events);
			else if (kind == EP_LISTENER)
				do_accept(w, evs[i].data.ptr);
			else if (kind == EP_HANDOFF)
				take_handoffs(w);
			else
				stop = 1;
		}
		if (n > 0 && s->busy_poll_us)
			spin_until_ns = sdrsa_now_ns() + (uint64_t)s->busy_poll_us * 1000;
	}
	while (w->conns) {
		snprintf(w->conns->reason, sizeof(w->conns->reason), "server shutting down");
		conn_free(w->conns);
	}
	return NULL;
}

/* ---- set-up ------------------------------------------------------------- */

/* Refuse a Unix socket path that is in use; remove a stale socket file. */
static int unix_prepare(const char *path, char *err, size_t err_len)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct stat st;
	int fd, rc;

	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		rc = -errno;
		set_err(err, err_len, "%s: %s", path, strerror(errno));
		return rc;
	}
	if (!S_ISSOCK(st.st_mode)) {
		set_err(err, err_len,
			"%s exists and is not a socket: remove it or choose another --unix path",
			path);
		return -EEXIST;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	strcpy(sun.sun_path, path);
	rc = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
	close(fd);
	if (rc == 0) {
		set_err(err, err_len,
			"%s: another server is listening on this socket: stop it or choose another "
			"--unix path",
			path);
		return -EADDRINUSE;
	}
	unlink(path); /* stale: left by a server that did not exit cleanly */
	return 0;
}

int sdrsa_server_check_address(const char *spec, char *err, size_t err_len)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int rc = spec ? sdrsa_parse_sockaddr(spec, SDRSA_DEFAULT_PORT, &ss, &len) : -EINVAL;

	if (rc)
		set_err(err, err_len,
			"cannot listen on '%s': %s: use HOST:PORT (port 0-65535), [IPV6]:PORT or "
			"unix:PATH",
			spec ? spec : "",
			rc == -EHOSTUNREACH   ? "host name did not resolve"
			: rc == -ENAMETOOLONG ? "Unix socket path too long"
					      : "not an address");
	return rc;
}

static int open_listener(struct sdrsa_server *s, const char *spec, struct listener *l, char *err,
			 size_t err_len)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int rc, fd, one = 1;

	l->kind = EP_LISTENER;
	l->fd = -1;
	rc = sdrsa_server_check_address(spec, err, err_len);
	if (rc)
		return rc;
	rc = sdrsa_parse_sockaddr(spec, SDRSA_DEFAULT_PORT, &ss, &len);
	if (rc)
		return rc;
	if (ss.ss_family == AF_UNIX) {
		rc = unix_prepare(((struct sockaddr_un *)&ss)->sun_path, err, err_len);
		if (rc)
			return rc;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = -errno;
		set_err(err, err_len, "cannot listen on %s: socket: %s", spec, strerror(errno));
		return rc;
	}
	if (ss.ss_family != AF_UNIX)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, SOMAXCONN) < 0) {
		rc = -errno;
		set_err(err, err_len, "cannot listen on %s: %s%s", spec, strerror(errno),
			rc == -EADDRINUSE ? ": stop the program using that port or choose another"
			: rc == -EACCES	  ? ": ports below 1024 need privileges; choose another"
					  : "");
		close(fd);
		return rc;
	}
	l->fd = fd;
	if (ss.ss_family == AF_UNIX) {
		const char *path = ((struct sockaddr_un *)&ss)->sun_path;

		snprintf(l->unix_path, sizeof(l->unix_path), "%s", path);
		/* Owner and group may connect; put clients in the group (or use
		 * the directory's permissions) rather than opening it wider. */
		chmod(path, 0660);
		snprintf(l->name, sizeof(l->name), "unix:%s", path);
	} else {
		struct sockaddr_storage bound;
		socklen_t blen = sizeof(bound);

		if (getsockname(fd, (struct sockaddr *)&bound, &blen) == 0)
			sdrsa_format_sockaddr((struct sockaddr *)&bound, blen, l->name,
					      sizeof(l->name));
		else
			snprintf(l->name, sizeof(l->name), "%s", spec);
	}
	(void)s;
	return 0;
}

static void raise_nofile(struct sdrsa_server *s, unsigned max_conns)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)max_conns + 64)
		srv_log(s, LOG_WARNING,
			"open files limit %llu is below --max-conns %u plus overhead: connections "
			"beyond the limit will be refused; raise LimitNOFILE / ulimit -n",
			(unsigned long long)rl.rlim_cur, max_conns);
}

static const char *keys_error(int rc)
{
	switch (rc) {
	case -EPERM:
		return "readable by group or others: chmod 600 the file";
	case -ENODATA:
		return "holds no key: add lines 'NAME HEX64' (memory-server --gen-key NAME)";
	case -ENOENT:
		return "no such file: create it with memory-server --gen-key NAME";
	default:
		return strerror(-rc);
	}
}

int sdrsa_server_new(const struct sdrsa_server_config *cfg, char *err, size_t err_len,
		     struct sdrsa_server **ret)
{
	static const char *const default_listen[] = {"127.0.0.1:2223"};
	const char *const *listen = cfg ? cfg->listen : NULL;
	size_t nlisten = cfg ? cfg->nlisten : 0;
	struct sdrsa_store_config scfg = {0};
	struct sdrsa_server *s;
	uint64_t pages, avail;
	int rc;

	if (!cfg || !ret) {
		set_err(err, err_len, "invalid arguments");
		return -EINVAL;
	}
	pages = cfg->pool_bytes / SDRSA_PAGE_SIZE;
	if (pages == 0) {
		set_err(err, err_len,
			"pool size %llu bytes is less than one 4 KiB page: give a "
			"SIZE such as 512M or 4G",
			(unsigned long long)cfg->pool_bytes);
		return -EINVAL;
	}
	if (pages > SDRSA_POOL_MAX_PAGES) {
		set_err(err, err_len, "pool size is over the 16 TiB limit: give a smaller SIZE");
		return -EINVAL;
	}
	if (sdrsa_mem_available(&avail) == 0 && pages * SDRSA_PAGE_SIZE > avail) {
		char want[32], have[32];

		fmt_bytes(pages * SDRSA_PAGE_SIZE, want, sizeof(want));
		fmt_bytes(avail, have, sizeof(have));
		set_err(err, err_len,
			"a pool of %s does not fit in the %s of memory available "
			"(MemAvailable): give a smaller SIZE",
			want, have);
		return -ENOMEM;
	}
	if (sodium_init() < 0) {
		set_err(err, err_len, "libsodium failed to initialise");
		return -EIO;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		set_err(err, err_len, "out of memory");
		return -ENOMEM;
	}
	s->stop_fd = s->ctl_fd = -1;
	s->stop_kind = EP_STOP;
	s->log = cfg->log;
	s->log_userdata = cfg->log_userdata;
	s->log_level = cfg->log_level ? cfg->log_level : LOG_INFO;
	s->pool_pages = pages;
	s->quota_pages = cfg->quota_pages;
	s->insecure = cfg->insecure;
	s->locked = cfg->lock;
	s->max_conns = cfg->max_conns ? cfg->max_conns : SDRSA_SERVER_MAX_CONNS;
	s->io_timeout_ms = cfg->io_timeout_ms ? cfg->io_timeout_ms : SDRSA_SERVER_IO_TIMEOUT_MS;
	s->busy_poll_us = cfg->busy_poll_us;
	s->nworkers = cfg->threads;
	if (!s->nworkers) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);

		s->nworkers = n < 1 ? 1
			      : n > SDRSA_SERVER_MAX_THREADS_DEFAULT
				  ? SDRSA_SERVER_MAX_THREADS_DEFAULT
				  : (unsigned)n;
	}
	pthread_rwlock_init(&s->keys_lock, NULL);
	s->start_ms = sdrsa_now_ms();
	if (getenv("SDRSA_TEST_SEND_DELAY_US"))
		s->test_send_delay_us = (unsigned)strtoul(getenv("SDRSA_TEST_SEND_DELAY_US"), NULL, 10);
	raise_nofile(s, s->max_conns);

	if (cfg->key_file) {
		int bad_line = 0;

		s->key_file = strdup(cfg->key_file);
		rc = s->key_file ? sdrsa_keys_load(cfg->key_file, &bad_line, &s->keys) : -ENOMEM;
		if (rc == -EBADMSG) {
			set_err(err, err_len,
				"key file %s, line %d: not 'NAME HEX64': fix the line "
				"(memory-server --gen-key NAME prints one)",
				cfg->key_file, bad_line);
			goto out_free;
		}
		if (rc) {
			set_err(err, err_len, "key file %s: %s", cfg->key_file, keys_error(rc));
			goto out_free;
		}
	}

	scfg.pool_pages = pages;
	scfg.lock = cfg->lock;
	scfg.quota_pages = cfg->quota_pages;
	rc = sdrsa_store_new(&scfg, &s->store);
	if (rc) {
		char want[32];

		fmt_bytes(pages * SDRSA_PAGE_SIZE, want, sizeof(want));
		if (cfg->lock && (rc == -EPERM || rc == -ENOMEM || rc == -EAGAIN))
			set_err(err, err_len,
				"cannot lock a pool of %s in memory: %s: raise the "
				"locked-memory limit (ulimit -l, LimitMEMLOCK=) or drop --lock",
				want, strerror(-rc));
		else
			set_err(err, err_len,
				"cannot reserve a pool of %s: %s: give a smaller SIZE", want,
				strerror(-rc));
		goto out_free;
	}

	if (!nlisten) {
		listen = default_listen;
		nlisten = 1;
	}
	s->listeners = calloc(nlisten, sizeof(*s->listeners));
	if (!s->listeners) {
		rc = -ENOMEM;
		set_err(err, err_len, "out of memory");
		goto out_free;
	}
	for (size_t i = 0; i < nlisten; i++) {
		rc = open_listener(s, listen[i], &s->listeners[i], err, err_len);
		if (rc)
			goto out_free;
		s->nlisteners++;
	}
	s->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	s->ctl_fd = eventfd(0, EFD_CLOEXEC);
	if (s->stop_fd < 0 || s->ctl_fd < 0) {
		rc = -errno;
		set_err(err, err_len, "eventfd: %s", strerror(errno));
		goto out_free;
	}
	*ret = s;
	return 0;

out_free:
	sdrsa_server_free(s);
	return rc;
}

void sdrsa_server_free(struct sdrsa_server *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nlisteners; i++) {
		struct listener *l = &s->listeners[i];

		if (l->fd >= 0)
			close(l->fd);
		if (l->unix_path[0])
			unlink(l->unix_path);
	}
	free(s->listeners);
	if (s->stop_fd >= 0)
		close(s->stop_fd);
	if (s->ctl_fd >= 0)
		close(s->ctl_fd);
	sdrsa_store_free(s->store);
	sdrsa_keys_free(s->keys);
	pthread_rwlock_destroy(&s->keys_lock);
	free(s->key_file);
	free(s->workers);
	free(s);
}

size_t sdrsa_server_listeners(const struct sdrsa_server *s)
{
	return s->nlisteners;
}

void sdrsa_server_listener_name(const struct sdrsa_server *s, size_t i, char *buf, size_t n)
{
	snprintf(buf, n, "%s", i < s->nlisteners ? s->listeners[i].name : "");
}

void sdrsa_server_describe(const struct sdrsa_server *s, char *buf, size_t n)
{
	char size[32], quota[64], auth[160];

	fmt_bytes(s->pool_pages * SDRSA_PAGE_SIZE, size, sizeof(size));
	if (s->quota_pages)
		snprintf(quota, sizeof(quota), "quota %llu pages per client",
			 (unsigned long long)s->quota_pages);
	else
		snprintf(quota, sizeof(quota), "no quota");
	if (s->keys)
		snprintf(auth, sizeof(auth), "auth: key file %s (%zu clients)", s->key_file,
			 sdrsa_keys_names(s->keys));
	else if (s->insecure)
		snprintf(auth, sizeof(auth), "auth: none, any peer (--insecure)");
	else
		snprintf(auth, sizeof(auth), "auth: none, loopback and Unix-socket peers only");
	snprintf(buf, n, "pool %s (%llu pages%s), %u threads, %s, %s, max %u connections", size,
		 (unsigned long long)s->pool_pages, s->locked ? ", locked" : "", s->nworkers, quota,
		 auth, s->max_conns);
}

void sdrsa_server_stats(struct sdrsa_server *s, struct sdrsa_stats *out)
{
	struct sdrsa_store_counts sc;
	struct sdrsa_stats st;

	memset(&st, 0, sizeof(st));
	sdrsa_store_counts(s->store, &sc);
	st.pool_pages = sc.pool_pages;
	st.used_pages = sc.used_pages;
	st.zero_pages = sc.zero_pages;
	st.namespaces = sc.namespaces;
	st.connections = atomic_load(&s->conns);
	for (unsigned i = 0; s->workers && i < s->nworkers; i++) {
		struct worker_stats *ws = &s->workers[i].stats;

#define SUM(f) st.f += atomic_load_explicit(&ws->f, memory_order_relaxed)
		SUM(gets);
		SUM(puts);
		SUM(swaps);
		SUM(frees);
		SUM(misses);
		SUM(pool_full);
		SUM(quota_refused);
		SUM(bad_frames);
		SUM(auth_failures);
		SUM(bytes_in);
		SUM(bytes_out);
#undef SUM
	}
	st.uptime_ms = sdrsa_now_ms() - s->start_ms;
	st.draining = (uint64_t)atomic_load(&s->draining);
	*out = st;
}

uint64_t sdrsa_server_accepted(struct sdrsa_server *s)
{
	return atomic_load(&s->accepted);
}

/* ---- run, stop, signals --------------------------------------------------- */

static void ctl_kick(struct sdrsa_server *s)
{
	uint64_t one = 1;

	(void)!write(s->ctl_fd, &one, sizeof(one));
}

void sdrsa_server_stop(struct sdrsa_server *s)
{
	atomic_store(&s->stop_req, 1);
	ctl_kick(s);
}

void sdrsa_server_request_dump(struct sdrsa_server *s)
{
	atomic_store(&s->dump_req, 1);
	ctl_kick(s);
}

void sdrsa_server_request_drain(struct sdrsa_server *s)
{
	atomic_store(&s->draining, 1);
	ctl_kick(s);
}

void sdrsa_server_request_reload(struct sdrsa_server *s)
{
	atomic_store(&s->reload_req, 1);
	ctl_kick(s);
}

static void dump_ns(void *userdata, const struct sdrsa_ns *ns)
{
	struct sdrsa_server *s = userdata;
	uint64_t pages = atomic_load(&ns->pages), zero = atomic_load(&ns->zero_pages);

	srv_log(s, LOG_NOTICE,
		"namespace %u client=%s: %llu pages (%llu data, %llu zero), "
		"%u connections",
		ns->id, ns->name, (unsigned long long)pages, (unsigned long long)(pages - zero),
		(unsigned long long)zero, ns->sessions);
}

static void dump(struct sdrsa_server *s)
{
	struct sdrsa_stats st;

	sdrsa_server_stats(s, &st);
	srv_log(s, LOG_NOTICE,
		"pool: %llu of %llu pages used, %llu zero pages, %llu namespaces "
		"with pages, %llu connections",
		(unsigned long long)st.used_pages, (unsigned long long)st.pool_pages,
		(unsigned long long)st.zero_pages, (unsigned long long)st.namespaces,
		(unsigned long long)st.connections);
	sdrsa_store_foreach_ns(s->store, dump_ns, s);
}

static void reload_keys(struct sdrsa_server *s)
{
	struct sdrsa_keys *k = NULL, *old;
	int bad_line = 0, rc;

	if (!s->key_file) {
		srv_log(s, LOG_NOTICE, "reload requested, but no --key-file: nothing to do");
		return;
	}
	rc = sdrsa_keys_load(s->key_file, &bad_line, &k);
	if (rc) {
		if (rc == -EBADMSG)
			srv_log(s, LOG_ERR,
				"key file %s, line %d: not 'NAME HEX64'; keeping the "
				"keys loaded before",
				s->key_file, bad_line);
		else
			srv_log(s, LOG_ERR, "key file %s: %s; keeping the keys loaded before",
				s->key_file, keys_error(rc));
		return;
	}
	pthread_rwlock_wrlock(&s->keys_lock);
	old = s->keys;
	s->keys = k;
	pthread_rwlock_unlock(&s->keys_lock);
	sdrsa_keys_free(old);
	srv_log(s, LOG_NOTICE, "reloaded key file %s: %zu keys for %zu clients", s->key_file,
		sdrsa_keys_count(k), sdrsa_keys_names(k));
}

/* Close what worker_setup() opened and what is still queued for w. */
static void worker_teardown(struct worker *w)
{
	drop_handoffs(w);
	free(w->hq);
	pthread_mutex_destroy(&w->hmu);
	if (w->epfd >= 0)
		close(w->epfd);
	if (w->handoff_fd >= 0)
		close(w->handoff_fd);
	if (w->spare_fd >= 0)
		close(w->spare_fd);
}

/* Epoll set of a worker: the stop eventfd, its handoff eventfd and every
 * listener. */
static int worker_setup(struct sdrsa_server *s, struct worker *w, unsigned idx)
{
	struct epoll_event ev;
	int rc;

	w->srv = s;
	w->idx = idx;
	w->handoff_kind = EP_HANDOFF;
	pthread_mutex_init(&w->hmu, NULL);
	w->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	w->handoff_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	w->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (w->epfd < 0 || w->handoff_fd < 0)
		goto out_err;
	ev.events = EPOLLIN;
	ev.data.ptr = &s->stop_kind;
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, s->stop_fd, &ev) < 0)
		goto out_err;
	ev.events = EPOLLIN;
	ev.data.ptr = &w->handoff_kind;
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->handoff_fd, &ev) < 0)
		goto out_err;
	for (size_t i = 0; i < s->nlisteners; i++) {
		ev.events = EPOLLIN | EPOLLEXCLUSIVE;
		ev.data.ptr = &s->listeners[i];
		if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, s->listeners[i].fd, &ev) < 0)
			goto out_err;
	}
	return 0;

out_err:
	rc = -errno;
	worker_teardown(w);
	return rc;
}

int sdrsa_server_run(struct sdrsa_server *s)
{
	sigset_t all, old;
	unsigned started = 0;
	uint64_t one = 1;
	int rc = 0;

	s->workers = calloc(s->nworkers, sizeof(*s->workers));
	if (!s->workers)
		return -ENOMEM;
	/* Workers take no signals: the caller's thread handles them. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	/* Every worker is set up before any starts: a worker may hand a
	 * connection to any other (if a thread cannot start, the server
	 * stops: what was queued for it is closed below). */
	unsigned setup = 0;
	for (; setup < s->nworkers && !rc; setup++)
		rc = worker_setup(s, &s->workers[setup], setup);
	if (rc)
		setup--; /* the one that failed cleaned up after itself */
	for (; !rc && started < s->nworkers; started++) {
		rc = -pthread_create(&s->workers[started].thread, NULL, worker_main,
				     &s->workers[started]);
		if (rc)
			break;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		srv_log(s, LOG_ERR, "cannot start worker thread %u: %s", started, strerror(-rc));
		atomic_store(&s->stop_req, 1);
	}

	int drain_logged = 0;
	while (!atomic_load(&s->stop_req)) {
		uint64_t v;
		ssize_t r = 0;
		int draining = atomic_load(&s->draining);
		struct pollfd pf = { .fd = s->ctl_fd, .events = POLLIN };

		/* Draining: look at the page count every 200 ms. */
		if (!draining || poll(&pf, 1, 200) > 0)
			r = read(s->ctl_fd, &v, sizeof(v));
		if (draining) {
			struct sdrsa_store_counts sc;

			sdrsa_store_counts(s->store, &sc);
			if (!drain_logged) {
				drain_logged = 1;
				srv_log(s, LOG_NOTICE,
					"draining: refusing new pages; exiting once the %llu pages "
					"held are moved away",
					(unsigned long long)(sc.used_pages + sc.zero_pages));
			}
			if (sc.used_pages + sc.zero_pages == 0) {
				srv_log(s, LOG_NOTICE, "drained: no pages left, exiting");
				break;
			}
		}
		if (r < 0 && errno != EINTR) {
			srv_log(s, LOG_ERR, "control eventfd: %s", strerror(errno));
			break;
		}
		if (atomic_exchange(&s->dump_req, 0))
			dump(s);
		if (atomic_exchange(&s->reload_req, 0))
			reload_keys(s);
	}

	/* Every worker sees the stop eventfd readable, closes its connections
	 * and exits; listeners are closed by sdrsa_server_free(), after that. */
	(void)!write(s->stop_fd, &one, sizeof(one));
	for (unsigned i = 0; i < started; i++)
		pthread_join(s->workers[i].thread, NULL);
	for (unsigned i = 0; i < setup; i++)
		worker_teardown(&s->workers[i]);
	return rc;
}
