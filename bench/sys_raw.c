/* SPDX-License-Identifier: MIT */
/*
 * pagebench: the raw TCP baseline, the physical limit of loopback here.
 *
 * The server is a forked child of the bench: one blocking thread that serves
 * one connection at a time. A request is 16 bytes, [op u32][0 u32][addr u64]
 * in host order; a GET is answered with the 4096 bytes of the page and
 * nothing else, a PUT carries 4096 bytes after its 16 and is answered with
 * 16 bytes [status u32][0 u32][addr u64]. Pages live in a flat array indexed
 * by page number, so the server does no more than any page store must: one
 * copy in on a put, a send straight from the store on a get.
 *
 * The server reads whatever the socket holds, serves every complete request
 * in it and sends all replies with one writev, as any pipelining server
 * would. The client sets TCP_NODELAY on its socket and the server on the
 * accepted one, like sdrsa's client and server. The client blocks in read()
 * (no spinning); pipelined gets readv straight into the page buffers.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "pagebench.h"

enum { RAW_GET = 1, RAW_PUT = 2 };
#define RAW_HDR 16u
#define RAW_IOV_MAX 1024
#define RAW_INBUF (256u * (RAW_HDR + PB_PAGE))

struct raw_req {
	uint32_t op;
	uint32_t pad;
	uint64_t addr;
};

struct raw_client {
	int fd;
};

/* ---- server (runs in the forked child) ---- */

static uint8_t *raw_store;
static uint64_t raw_pages;

static int raw_flush(int fd, struct iovec *iov, int *n)
{
	int r = *n ? pb_writev_full(fd, iov, *n) : 0;
	*n = 0;
	return r;
}

static void raw_serve(int fd)
{
	static uint8_t in[RAW_INBUF];
	static struct iovec iov[RAW_IOV_MAX];
	static struct raw_req replies[RAW_IOV_MAX];
	size_t have = 0;
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	for (;;) {
		ssize_t r = read(fd, in + have, sizeof(in) - have);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return;
		have += (size_t)r;
		size_t pos = 0;
		int niov = 0;
		while (have - pos >= RAW_HDR) {
			struct raw_req q;
			memcpy(&q, in + pos, sizeof(q));
			uint64_t idx = (q.addr - PB_ADDR_BASE) / PB_PAGE;
			if (q.addr < PB_ADDR_BASE || idx >= raw_pages ||
			    (q.op != RAW_GET && q.op != RAW_PUT))
				return; /* protocol error: drop the connection */
			if (q.op == RAW_PUT && have - pos < RAW_HDR + PB_PAGE)
				break;
			if (niov == RAW_IOV_MAX && raw_flush(fd, iov, &niov) < 0)
				return;
			if (q.op == RAW_GET) {
				iov[niov].iov_base = raw_store + idx * PB_PAGE;
				iov[niov].iov_len = PB_PAGE;
				pos += RAW_HDR;
			} else {
				memcpy(raw_store + idx * PB_PAGE, in + pos + RAW_HDR, PB_PAGE);
				replies[niov] = (struct raw_req){0, 0, q.addr};
				iov[niov].iov_base = &replies[niov];
				iov[niov].iov_len = RAW_HDR;
				pos += RAW_HDR + PB_PAGE;
			}
			niov++;
		}
		if (raw_flush(fd, iov, &niov) < 0)
			return;
		memmove(in, in + pos, have - pos);
		have -= pos;
	}
}

static void raw_server_main(int lfd)
{
	raw_pages = pb_opts.pages;
	raw_store = mmap(NULL, raw_pages * PB_PAGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw_store == MAP_FAILED)
		_exit(1);
	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		if (fd < 0) {
			if (errno == EINTR)
				continue;
			_exit(1);
		}
		raw_serve(fd);
		close(fd);
	}
}

static int raw_start(struct pb_system *s)
{
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = {
	    .sin_family = AF_INET, .sin_port = 0, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 16) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&sa, &len) < 0) {
		snprintf(s->err, sizeof(s->err), "raw server socket: %s", strerror(errno));
		if (lfd >= 0)
			close(lfd);
		return -1;
	}
	s->port = ntohs(sa.sin_port);
	pid_t parent = getpid();
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(s->err, sizeof(s->err), "fork: %s", strerror(errno));
		close(lfd);
		return -1;
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		/* Plain defaults: no bench handlers, no watchdog. */
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		signal(SIGALRM, SIG_DFL);
		signal(SIGPIPE, SIG_IGN);
		alarm(0);
		if (s->cpus)
			sched_setaffinity(0, sizeof(*s->cpus), s->cpus);
		raw_server_main(lfd);
		_exit(0);
	}
	close(lfd);
	pb_child_register(pid);
	s->pid = pid;
	return 0;
}

/* ---- client ---- */

static int raw_connect(struct pb_system *s)
{
	struct raw_client *c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(s->err, sizeof(s->err), "out of memory");
		return -1;
	}
	c->fd = pb_tcp_connect(s->port, pb_opts.timeout_ms);
	if (c->fd < 0) {
		snprintf(s->err, sizeof(s->err), "connect 127.0.0.1:%d: %s", s->port,
			 strerror(-c->fd));
		free(c);
		return -1;
	}
	s->priv = c;
	return 0;
}

static void raw_disconnect(struct pb_system *s)
{
	struct raw_client *c = s->priv;
	if (!c)
		return;
	close(c->fd);
	free(c);
	s->priv = NULL;
}

static int raw_io_error(struct pb_system *s, const char *what, int e)
{
	snprintf(s->err, sizeof(s->err), "raw %s: %s", what, strerror(-e));
	return -1;
}

static int raw_get(struct pb_system *s, uint64_t addr, void *page)
{
	struct raw_client *c = s->priv;
	struct raw_req q = {RAW_GET, 0, addr};
	struct iovec iov = {&q, sizeof(q)};
	int r = pb_writev_full(c->fd, &iov, 1);
	if (r < 0)
		return raw_io_error(s, "send", r);
	r = pb_read_full(c->fd, page, PB_PAGE);
	if (r < 0)
		return raw_io_error(s, "receive", r);
	return 0;
}

static int raw_put(struct pb_system *s, uint64_t addr, const void *page)
{
	struct raw_client *c = s->priv;
	struct raw_req q = {RAW_PUT, 0, addr}, a;
	struct iovec iov[2] = {{&q, sizeof(q)}, {(void *)page, PB_PAGE}};
	int r = pb_writev_full(c->fd, iov, 2);
	if (r < 0)
		return raw_io_error(s, "send", r);
	r = pb_read_full(c->fd, &a, sizeof(a));
	if (r < 0)
		return raw_io_error(s, "receive", r);
	if (a.op != 0 || a.addr != addr) {
		snprintf(s->err, sizeof(s->err), "raw put: bad reply");
		return -1;
	}
	return 0;
}

/*
 * Replies come back in request order, so the operations in flight form a
 * FIFO of slots: ring[head .. head+inflight). A completed slot is reissued
 * at the tail with the next address; new requests of one round go out in
 * one writev.
 */
struct raw_pipe {
	struct pb_job *job;
	size_t issued;
	unsigned head, inflight;
	unsigned ring[PB_MAX_DEPTH];
	uint64_t addr_of[PB_MAX_DEPTH];
	struct raw_req reqs[PB_MAX_DEPTH];
	struct iovec out[2 * PB_MAX_DEPTH];
	int nout, nreq;
};

static void raw_issue(struct raw_pipe *p, unsigned slot)
{
	struct pb_job *job = p->job;
	uint64_t a = job->addrs[p->issued++];
	p->addr_of[slot] = a;
	p->reqs[p->nreq] = (struct raw_req){job->is_put ? RAW_PUT : RAW_GET, 0, a};
	p->out[p->nout++] = (struct iovec){&p->reqs[p->nreq], RAW_HDR};
	p->nreq++;
	if (job->is_put) {
		pb_job_fill(job, job->slots[slot], a);
		p->out[p->nout++] = (struct iovec){job->slots[slot], PB_PAGE};
	}
	p->ring[(p->head + p->inflight) % job->depth] = slot;
	p->inflight++;
}

static int raw_recv_error(struct pb_system *s, ssize_t got)
{
	return raw_io_error(s, "receive",
			    got == 0 ? -ECONNRESET : (errno == EAGAIN ? -ETIMEDOUT : -errno));
}

static int raw_pipeline(struct pb_system *s, struct pb_job *job)
{
	struct raw_client *c = s->priv;
	static struct raw_pipe p;
	struct iovec in[PB_MAX_DEPTH];
	struct raw_req replies[PB_MAX_DEPTH];
	unsigned freed[PB_MAX_DEPTH];
	unsigned depth = job->depth;
	size_t off = 0; /* bytes already received of the head operation */
	int r;

	memset(&p, 0, sizeof(p));
	p.job = job;
	for (unsigned i = 0; i < depth && p.issued < job->n; i++)
		raw_issue(&p, i);
	if ((r = pb_writev_full(c->fd, p.out, p.nout)) < 0)
		return raw_io_error(s, "send", r);

	while (p.inflight > 0) {
		unsigned nfreed = 0;
		if (!job->is_put) {
			int nin = 0;
			for (unsigned k = 0; k < p.inflight; k++) {
				unsigned slot = p.ring[(p.head + k) % depth];
				size_t o = k == 0 ? off : 0;
				in[nin++] = (struct iovec){job->slots[slot] + o, PB_PAGE - o};
			}
			ssize_t got = readv(c->fd, in, nin);
			if (got < 0 && errno == EINTR)
				continue;
			if (got <= 0)
				return raw_recv_error(s, got);
			size_t g = (size_t)got;
			while (g > 0) {
				size_t need = PB_PAGE - off;
				if (g < need) {
					off += g;
					break;
				}
				g -= need;
				off = 0;
				unsigned slot = p.ring[p.head];
				pb_job_check(job, job->slots[slot], p.addr_of[slot]);
				job->done++;
				p.head = (p.head + 1) % depth;
				p.inflight--;
				freed[nfreed++] = slot;
			}
		} else {
			size_t want = (size_t)p.inflight * RAW_HDR - off;
			ssize_t got = read(c->fd, (uint8_t *)replies + off, want);
			if (got < 0 && errno == EINTR)
				continue;
			if (got <= 0)
				return raw_recv_error(s, got);
			size_t total = off + (size_t)got;
			size_t complete = total / RAW_HDR;
			for (size_t k = 0; k < complete; k++) {
				unsigned slot = p.ring[p.head];
				if (replies[k].op != 0 || replies[k].addr != p.addr_of[slot])
					pb_job_error(job, p.addr_of[slot], "raw put: bad reply");
				job->done++;
				p.head = (p.head + 1) % depth;
				p.inflight--;
				freed[nfreed++] = slot;
			}
			off = total - complete * RAW_HDR;
			if (off)
				memmove(replies, (uint8_t *)replies + complete * RAW_HDR, off);
		}
		p.nout = 0;
		p.nreq = 0;
		for (unsigned k = 0; k < nfreed && p.issued < job->n; k++)
			raw_issue(&p, freed[k]);
		if (p.nout && (r = pb_writev_full(c->fd, p.out, p.nout)) < 0)
			return raw_io_error(s, "send", r);
	}
	return 0;
}

const struct pb_sys_ops pb_sys_raw = {
    .name = "raw",
    .start = raw_start,
    .connect = raw_connect,
    .get = raw_get,
    .put = raw_put,
    .pipeline = raw_pipeline,
    .disconnect = raw_disconnect,
};
