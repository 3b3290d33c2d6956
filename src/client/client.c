/* SPDX-License-Identifier: MIT */
/*
 * libsdrsa: connection handling, handshake and the public API of
 * include/sdrsa/client.h. The request queue (slots, batching, reply
 * matching) is in queue.c; this file owns the socket.
 *
 * I/O model: one blocking stream socket per handle, every send and receive
 * with MSG_DONTWAIT, poll() only when there is nothing to do, so a call never
 * blocks past its deadline. Before sleeping in poll() a waiting call spins on
 * recv() for spin_us: on the 2-vCPU machines this project is measured on, a
 * reply usually arrives within the spin, and sleeping would add a 20-25 us
 * cross-vCPU wake-up to every round trip. The spin yields the CPU between
 * attempts, so a server sharing our vCPU runs at once.
 *
 * Measured on loopback against memory-server (2 vCPUs; raw = a TCP server
 * answering 16 bytes with 4096, client spinning the same way): single get
 * median 13.3 us with client and server on one vCPU (raw 12.4 us), 8.8 us
 * with them on different vCPUs (raw 21 us; the server busy-polls too);
 * 5.8 us over a Unix socket.
 *
 * A flush writes all queued frames with sendmsg() (puts' pages referenced in
 * place); when the socket is full it reads replies while it waits, so a
 * client and a server can never both block on full buffers. Replies to GETs
 * of many pages are read header and entries first, then with readv() straight
 * into the callers' pages (queue.c, "direct receive").
 *
 * Timeout: the connection is declared dead when operations are outstanding
 * and no byte has moved in either direction for timeout_ms. Then the socket
 * is closed and every outstanding operation fails with -ETIMEDOUT; later
 * calls return -ENOTCONN until sdrsa_client_reconnect().
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sodium.h>

#include "client/client_internal.h"
#include "common/util.h"
#include "proto/keyfile.h"

#define NO_DEADLINE UINT64_MAX
#define DEFAULT_TIMEOUT_MS 5000
#define DEFAULT_SPIN_US 50
#define HS_HELLO_ID 1u
#define HS_AUTH_ID 2u

/* Process-wide setup, once: libsodium and the page checksum for this CPU. */
static pthread_once_t setup_once = PTHREAD_ONCE_INIT;
static int setup_ok;

static void setup(void)
{
	setup_ok = sodium_init() >= 0;
}

static int ensure_setup(void)
{
	pthread_once(&setup_once, setup);
	return setup_ok ? 0 : -EIO;
}

/* ---- keys ---------------------------------------------------------------- */

struct key_lookup {
	const char *name;
	uint8_t key[SDRSA_KEY_SIZE];
};

static int key_lookup_cb(void *userdata, const char *name, const uint8_t key[SDRSA_KEY_SIZE])
{
	struct key_lookup *kl = userdata;

	if (strcmp(name, kl->name))
		return 0;
	memcpy(kl->key, key, SDRSA_KEY_SIZE);
	return 1;
}

int sdrsa_key_load(const char *path, const char *name, uint8_t key[SDRSA_KEY_SIZE])
{
	struct key_lookup kl = { .name = name };
	int rc;

	if (!path || !name || !key)
		return -EINVAL;
	rc = sdrsa_keyfile_parse(path, key_lookup_cb, &kl, NULL);
	if (rc == 1) {
		memcpy(key, kl.key, SDRSA_KEY_SIZE);
		rc = 0;
	} else if (rc == 0) {
		rc = -ENOENT;
	}
	sodium_memzero(kl.key, sizeof(kl.key));
	return rc;
}

void sdrsa_key_generate(uint8_t key[SDRSA_KEY_SIZE])
{
	if (!key)
		return;
	ensure_setup(); /* randombytes_buf() reads getrandom() even without it */
	randombytes_buf(key, SDRSA_KEY_SIZE);
}

/* ---- time ---------------------------------------------------------------- */

static uint64_t deadline_after(int ms)
{
	return ms < 0 ? NO_DEADLINE : sdrsa_now_ns() + (uint64_t)ms * 1000000u;
}

/* poll() timeout in ms until deadline, rounded up; -1 without one. */
static int poll_timeout(uint64_t deadline, uint64_t now)
{
	uint64_t ms;

	if (deadline == NO_DEADLINE)
		return -1;
	if (deadline <= now)
		return 0;
	ms = (deadline - now + 999999u) / 1000000u;
	return ms > INT_MAX ? INT_MAX : (int)ms;
}

/* When the connection is declared dead if nothing moves. The hot path only
 * sets c->moved; the clock is read here, when a call is about to sleep, so
 * progress is dated at most one spin late (and a get costs fewer
 * clock_gettime() calls: they were 12% of the client's user time). */
static uint64_t conn_deadline(struct sdrsa_client *c, uint64_t now)
{
	if (c->moved) {
		c->progress_ns = now;
		c->moved = 0;
	}
	if (c->timeout_ms < 0 || !c->nsent)
		return NO_DEADLINE;
	return c->progress_ns + (uint64_t)c->timeout_ms * 1000000u;
}

/* ---- connection I/O ------------------------------------------------------ */

/*
 * Close a connection whose operations are being given up (failed, timed
 * out, or dropped to reconnect): abortively (SO_LINGER 0, a reset), so that
 * the kernel discards what it has not delivered yet. An orderly close would
 * keep retransmitting it after we are gone: a PUT that timed out while the
 * link was down would reach the server when the link came back, possibly
 * after the same page's newer PUT on the next connection, and put the old
 * data back (test_pool's late_put).
 */
static void close_abort(int fd)
{
	struct linger lg = {.l_onoff = 1, .l_linger = 0};

	(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

static void teardown(struct sdrsa_client *c, int err)
{
	if (c->fd >= 0) {
		client_log(c, err == -ECONNRESET ? SDRSA_LOG_DEBUG : SDRSA_LOG_WARN,
			   "connection to %s closed: %s", c->address, strerror(-err));
		close_abort(c->fd);
		c->fd = -1;
	}
	client_queue_fail_all(c, err);
}

/* One non-blocking read, then parse what came: into the receive buffer, or
 * while a GET reply's pages are being received directly (queue.c), into
 * their destinations and then the receive buffer.
 * Returns 1 if bytes arrived, 0 if none were there, -errno if the connection
 * failed (it is then closed and every operation completed). */
static int recv_once(struct sdrsa_client *c)
{
	ssize_t r;
	int rc;

	if (c->rx.head != CLIENT_NIL) {
		struct iovec iov[SDRSA_MAX_BATCH + 1];
		struct msghdr m = { .msg_iov = iov };

		m.msg_iovlen = client_rx_iov(c, iov);
		r = recvmsg(c->fd, &m, MSG_DONTWAIT);
		if (r > 0) {
			c->moved = 1;
			rc = client_rx_received(c, (size_t)r);
			goto parsed;
		}
	} else {
		r = recv(c->fd, c->rbuf + c->wpos, client_rx_want(c), MSG_DONTWAIT);
		if (r > 0) {
			c->wpos += (size_t)r;
			c->moved = 1;
			rc = client_process_rbuf(c);
			goto parsed;
		}
	}
	if (r == 0) {
		teardown(c, -ECONNRESET);
		return -ECONNRESET;
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return 0;
	rc = -errno;
	teardown(c, rc);
	return rc;

parsed:
	if (rc < 0) {
		teardown(c, rc);
		return rc;
	}
	/* A GET reply whose pages have not all come: read them into place. */
	client_rx_direct_start(c);
	return 1;
}

/* Receive until something arrives: spin for spin_us, then sleep in poll().
 * yield_first: the socket was found empty a moment ago (or a request just
 * left), so when spinning, let the server run before looking again instead of
 * paying for a recv() that finds nothing (on one vCPU the server cannot have
 * answered yet: one system call less per round trip).
 * Returns 1 on progress, 0 when `deadline` passed first, -errno when the
 * connection failed or timed out (closed, operations completed). */
static int recv_some(struct sdrsa_client *c, uint64_t deadline, int yield_first)
{
	uint64_t now = sdrsa_now_ns();
	uint64_t spin_end = now + (uint64_t)c->spin_us * 1000u;

	if (yield_first && c->spin_us)
		sched_yield();
	for (;;) {
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		uint64_t dead;
		int rc = recv_once(c);

		if (rc)
			return rc;
		now = sdrsa_now_ns();
		if (now >= deadline)
			return 0;
		if (now < spin_end) {
			/* Yield while spinning: when the server runs on our
			 * vCPU a bare spin keeps it off the CPU until the spin
			 * ends (measured: 66 us median get with a 50 us spin,
			 * 9.3 us with the yield, 16 us without spinning). */
			sched_yield();
			continue;
		}
		dead = conn_deadline(c, now);
		if (now >= dead) {
			teardown(c, -ETIMEDOUT);
			return -ETIMEDOUT;
		}
		if (poll(&pfd, 1, poll_timeout(MIN(deadline, dead), now)) < 0 && errno != EINTR) {
			rc = -errno;
			teardown(c, rc);
			return rc;
		}
	}
}

/* Write iov[0..n) completely, reading replies whenever the socket is full.
 * Returns 0 or -errno (connection closed, operations completed). */
static int send_iov(struct sdrsa_client *c, struct iovec *iov, size_t n)
{
	while (n) {
		struct msghdr m = { .msg_iov = iov, .msg_iovlen = MIN(n, (size_t)IOV_MAX) };
		ssize_t r = sendmsg(c->fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (r >= 0) {
			size_t left = (size_t)r;

			c->moved = 1;
			while (n && left >= iov->iov_len) {
				left -= iov->iov_len;
				iov++;
				n--;
			}
			if (n) {
				iov->iov_base = (uint8_t *)iov->iov_base + left;
				iov->iov_len -= left;
			}
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			struct pollfd pfd = { .fd = c->fd, .events = POLLIN | POLLOUT };
			uint64_t now = sdrsa_now_ns(), dead = conn_deadline(c, now);
			int rc;

			if (now >= dead) {
				teardown(c, -ETIMEDOUT);
				return -ETIMEDOUT;
			}
			if (poll(&pfd, 1, poll_timeout(dead, now)) < 0 && errno != EINTR) {
				rc = -errno;
				teardown(c, rc);
				return rc;
			}
			if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
				rc = recv_once(c);
				if (rc < 0)
					return rc;
			}
			continue;
		}
		{
			int rc = errno == EPIPE ? -ECONNRESET : -errno;
			teardown(c, rc);
			return rc;
		}
	}
	return 0;
}

/* Send every queued frame. Returns 0 or -errno (connection closed). */
static int flush_queue(struct sdrsa_client *c)
{
	size_t n, bytes;
	int rc;

	if (!c->nunsent)
		return 0;
	if (c->fd < 0)
		return -ENOTCONN;
	c->moved = 1; /* operations become outstanding now */
	n = client_queue_build(c, &bytes);
	rc = send_iov(c, c->iov, n);
	if (rc < 0)
		return rc;
	client_queue_sent(c);
	return 0;
}

/* Send what is queued and wait until `n` operations of batch b completed.
 * Always returns with b->done == n: a failed connection completes them all. */
static void sync_wait(struct sdrsa_client *c, struct client_batch *b, size_t n)
{
	int yield_first = 1;

	if (flush_queue(c) < 0)
		return;
	while (b->done < n) {
		if (recv_some(c, NO_DEADLINE, yield_first) < 0)
			break;
		yield_first = 0;
	}
}

/* ---- handshake ----------------------------------------------------------- */

static int hs_send(struct sdrsa_client *c, const void *buf, size_t n, uint64_t deadline)
{
	const uint8_t *p = buf;

	while (n) {
		ssize_t r = send(c->fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (r >= 0) {
			p += r;
			n -= (size_t)r;
		} else if (errno == EAGAIN || errno == EWOULDBLOCK) {
			struct pollfd pfd = { .fd = c->fd, .events = POLLOUT };
			uint64_t now = sdrsa_now_ns();

			if (now >= deadline)
				return -ETIMEDOUT;
			poll(&pfd, 1, poll_timeout(deadline, now));
		} else if (errno != EINTR) {
			return errno == EPIPE ? -ECONNRESET : -errno;
		}
	}
	return 0;
}

static int hs_send_frame(struct sdrsa_client *c, uint8_t opcode, uint32_t req_id,
			 const uint8_t *payload, size_t len, uint64_t deadline)
{
	uint8_t buf[SDRSA_HDR_SIZE + SDRSA_HELLO_MAX];
	struct sdrsa_hdr h = {
		.version = SDRSA_PROTO_VERSION,
		.opcode = opcode,
		.req_id = req_id,
		.len = (uint32_t)len,
		.csum = len ? sdrsa_meta_csum(payload, len) : 0,
	};

	sdrsa_hdr_encode(&h, buf);
	memcpy(buf + SDRSA_HDR_SIZE, payload, len);
	return hs_send(c, buf, SDRSA_HDR_SIZE + len, deadline);
}

/* Receive the reply to handshake request (opcode, req_id). On success *h and
 * *payload describe it (payload points into rbuf). */
static int hs_recv_frame(struct sdrsa_client *c, uint8_t opcode, uint32_t req_id,
			 uint64_t deadline, struct sdrsa_hdr *h, const uint8_t **payload)
{
	for (;;) {
		size_t avail = c->wpos - c->rpos;
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		uint64_t now;
		ssize_t r;

		if (avail >= SDRSA_HDR_SIZE) {
			if (sdrsa_hdr_decode(c->rbuf + c->rpos, avail, h) < 0 ||
			    !(h->flags & SDRSA_F_REPLY))
				return -EPROTO;
			if (avail >= SDRSA_HDR_SIZE + (size_t)h->len) {
				*payload = c->rbuf + c->rpos + SDRSA_HDR_SIZE;
				c->rpos += SDRSA_HDR_SIZE + (size_t)h->len;
				break;
			}
		}
		r = recv(c->fd, c->rbuf + c->wpos, CLIENT_RBUF_SIZE - c->wpos, MSG_DONTWAIT);
		if (r > 0) {
			c->wpos += (size_t)r;
			continue;
		}
		if (r == 0)
			return -ECONNRESET;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		now = sdrsa_now_ns();
		if (now >= deadline)
			return -ETIMEDOUT;
		poll(&pfd, 1, poll_timeout(deadline, now));
	}
	if (h->status != SDRSA_S_OK) {
		client_log(c, SDRSA_LOG_WARN, "server %s refused client %s: %s", c->address,
			   c->name, sdrsa_status_name(h->status));
		return sdrsa_status_errno(h->status);
	}
	if (h->opcode != opcode || h->req_id != req_id)
		return -EPROTO;
	if ((h->len ? sdrsa_meta_csum(*payload, h->len) : 0) != h->csum)
		return -EBADMSG;
	return 0;
}

static int handshake(struct sdrsa_client *c, uint64_t deadline)
{
	struct sdrsa_hello hello;
	struct sdrsa_challenge ch;
	struct sdrsa_welcome w;
	struct sdrsa_hdr h;
	uint8_t buf[SDRSA_HELLO_MAX], mac[SDRSA_MAC_SIZE];
	const uint8_t *payload;
	size_t n;
	int rc;

	randombytes_buf(hello.nonce, sizeof(hello.nonce));
	memcpy(hello.name, c->name, sizeof(hello.name));
	n = sdrsa_hello_encode(&hello, buf);
	rc = hs_send_frame(c, SDRSA_OP_HELLO, HS_HELLO_ID, buf, n, deadline);
	if (rc < 0)
		return rc;
	rc = hs_recv_frame(c, SDRSA_OP_HELLO, HS_HELLO_ID, deadline, &h, &payload);
	if (rc < 0)
		return rc;
	if (sdrsa_challenge_decode(payload, h.len, &ch) < 0)
		return -EPROTO;
	if (ch.auth_required && !c->has_key) {
		client_log(c, SDRSA_LOG_WARN,
			   "server %s requires a key for client %s and none was given", c->address,
			   c->name);
		return -EPERM;
	}
	if (c->has_key)
		sdrsa_auth_mac(c->key, 0, hello.nonce, ch.nonce, c->name, mac);
	else
		memset(mac, 0, sizeof(mac));
	rc = hs_send_frame(c, SDRSA_OP_AUTH, HS_AUTH_ID, mac, sizeof(mac), deadline);
	if (rc < 0)
		return rc;
	rc = hs_recv_frame(c, SDRSA_OP_AUTH, HS_AUTH_ID, deadline, &h, &payload);
	if (rc < 0)
		return rc;
	if (sdrsa_welcome_decode(payload, h.len, &w) < 0)
		return -EPROTO;
	if (c->has_key) {
		/* No silent downgrade: a server that cannot prove the key could
		 * be anyone, and would receive our pages. */
		sdrsa_auth_mac(c->key, 1, hello.nonce, ch.nonce, c->name, mac);
		if (crypto_verify_32(mac, w.mac) != 0) {
			client_log(c, SDRSA_LOG_WARN,
				   "server %s did not prove it knows client %s's key; refusing it",
				   c->address, c->name);
			return -EPERM;
		}
	}
	c->ns = h.ns;
	c->pool_pages = w.pool_pages;
	c->quota_pages = w.quota_pages;
	c->max_batch = w.max_batch;
	c->frame_limit = w.max_batch;
	if (c->rpos == c->wpos)
		c->rpos = c->wpos = 0;
	return 0;
}

static int open_connection(struct sdrsa_client *c)
{
	struct sockaddr_storage ss;
	socklen_t len;
	uint64_t deadline = deadline_after(c->timeout_ms);
	int fd, rc, one = 1;

	rc = sdrsa_parse_sockaddr(c->address, SDRSA_DEFAULT_PORT, &ss, &len);
	if (rc < 0) {
		client_log(c, SDRSA_LOG_WARN, "cannot use server address '%s': %s", c->address,
			   strerror(-rc));
		return rc;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (ss.ss_family != AF_UNIX)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&ss, len) < 0) {
		if (errno != EINPROGRESS) {
			rc = -errno;
			goto out_close;
		}
		for (;;) {
			struct pollfd pfd = { .fd = fd, .events = POLLOUT };
			uint64_t now = sdrsa_now_ns();
			int err = 0;
			socklen_t elen = sizeof(err);

			if (now >= deadline) {
				rc = -ETIMEDOUT;
				goto out_close;
			}
			rc = poll(&pfd, 1, poll_timeout(deadline, now));
			if (rc < 0 && errno != EINTR) {
				rc = -errno;
				goto out_close;
			}
			if (rc <= 0)
				continue;
			getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen);
			if (err) {
				rc = -err;
				goto out_close;
			}
			break;
		}
	}
	/* Back to blocking: every call passes MSG_DONTWAIT itself, and a
	 * caller that borrows the fd gets ordinary semantics. */
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	c->fd = fd;
	c->rpos = c->wpos = 0;
	rc = handshake(c, deadline);
	if (rc < 0) {
		c->fd = -1;
		c->rpos = c->wpos = 0;
		goto out_close;
	}
	client_log(c, SDRSA_LOG_DEBUG,
		   "connected to %s as %s: namespace %u, pool %llu pages, quota %llu, batch %u",
		   c->address, c->name, c->ns, (unsigned long long)c->pool_pages,
		   (unsigned long long)c->quota_pages, c->max_batch);
	return 0;

out_close:
	close(fd);
	if (rc == -ENETUNREACH)
		rc = -EHOSTUNREACH;
	client_log(c, SDRSA_LOG_DEBUG, "connecting to %s failed: %s", c->address, strerror(-rc));
	return rc;
}

/* ---- handles ------------------------------------------------------------- */

int sdrsa_client_connect(const struct sdrsa_client_config *cfg, struct sdrsa_client **ret)
{
	struct sdrsa_client *c;
	const char *name;
	int rc;

	if (!cfg || !cfg->address || !ret)
		return -EINVAL;
	name = cfg->name ? cfg->name : "default";
	if (!sdrsa_name_valid(name))
		return -EINVAL;
	rc = ensure_setup();
	if (rc < 0)
		return rc;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->fd = -1;
	c->address = strdup(cfg->address);
	if (!c->address) {
		rc = -ENOMEM;
		goto out_free;
	}
	snprintf(c->name, sizeof(c->name), "%s", name);
	if (cfg->key) {
		memcpy(c->key, cfg->key, SDRSA_KEY_SIZE);
		c->has_key = 1;
	}
	c->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : DEFAULT_TIMEOUT_MS;
	c->spin_us = cfg->spin_us ? (cfg->spin_us < 0 ? 0 : cfg->spin_us) : DEFAULT_SPIN_US;
	c->log = cfg->log;
	c->log_userdata = cfg->log_userdata;
	rc = client_queue_init(c);
	if (rc < 0)
		goto out_free;
	rc = open_connection(c);
	if (rc < 0)
		goto out_free;
	*ret = c;
	return 0;

out_free:
	sdrsa_client_free(c);
	return rc;
}

void sdrsa_client_free(struct sdrsa_client *c)
{
	if (!c)
		return;
	if (c->fd >= 0) {
		if (c->nsent || c->nunsent)
			close_abort(c->fd); /* operations abandoned: see close_abort() */
		else
			close(c->fd);
	}
	client_queue_destroy(c);
	free(c->address);
	sodium_memzero(c->key, sizeof(c->key));
	free(c);
}

int sdrsa_client_reconnect(struct sdrsa_client *c)
{
	if (!c)
		return -EINVAL;
	if (c->fd >= 0) {
		client_log(c, SDRSA_LOG_DEBUG, "dropping the connection to %s to reconnect",
			   c->address);
		close_abort(c->fd);
		c->fd = -1;
	}
	client_queue_fail_all(c, -ECONNRESET);
	return open_connection(c);
}

uint64_t sdrsa_client_pool_pages(const struct sdrsa_client *c)
{
	return c ? c->pool_pages : 0;
}

uint64_t sdrsa_client_quota_pages(const struct sdrsa_client *c)
{
	return c ? c->quota_pages : 0;
}

uint32_t sdrsa_client_namespace(const struct sdrsa_client *c)
{
	return c ? c->ns : 0;
}

int sdrsa_client_fd(const struct sdrsa_client *c)
{
	return c ? c->fd : -1;
}

/* ---- synchronous operations ---------------------------------------------- */

#define BATCH_INIT(res) { .results = (res), .first_idx = SIZE_MAX }

static int batch_result(const struct client_batch *b)
{
	return b->first_idx == SIZE_MAX ? 0 : b->first_err;
}

/* One operation of its own frame kind (or appended to a queued frame of the
 * same kind), waited for. */
static int run_one(struct sdrsa_client *c, uint8_t kind, uint64_t addr, void *page)
{
	struct client_batch b = BATCH_INIT(NULL);
	int rc;

	if (c->fd < 0)
		return -ENOTCONN;
	rc = client_queue_op(c, kind, addr, page, 0, &b);
	if (rc < 0)
		return -EBUSY; /* unreachable: slots are reserved for this */
	sync_wait(c, &b, 1);
	return batch_result(&b);
}

int sdrsa_get(struct sdrsa_client *c, uint64_t addr, void *page)
{
	if (!c || !page || addr % SDRSA_PAGE_SIZE)
		return -EINVAL;
	return run_one(c, SDRSA_OP_GET, addr, page);
}

int sdrsa_put(struct sdrsa_client *c, uint64_t addr, const void *page)
{
	if (!c || !page || addr % SDRSA_PAGE_SIZE)
		return -EINVAL;
	return run_one(c, SDRSA_OP_PUT, addr, (void *)page);
}

int sdrsa_swap(struct sdrsa_client *c, uint64_t put_addr, const void *put_page, uint64_t get_addr,
	       void *get_page)
{
	struct client_batch b = BATCH_INIT(NULL);

	if (!c || !put_page || !get_page || put_addr % SDRSA_PAGE_SIZE ||
	    get_addr % SDRSA_PAGE_SIZE)
		return -EINVAL;
	if (c->fd < 0)
		return -ENOTCONN;
	if (client_queue_swap(c, put_addr, put_page, get_addr, get_page, &b) < 0)
		return -EBUSY;
	sync_wait(c, &b, 2);
	return batch_result(&b);
}

/*
 * GET, PUT or FREE of n pages, keeping a few frames in flight: while the
 * server works on one frame the next ones are on the wire, and a new frame is
 * queued as soon as one is answered.
 *
 * Sizes measured on loopback (get_many/put_many of 40960 pages, MiB/s,
 * client and server unpinned / on one vCPU): gets in frames of 64 pages, 4 in
 * flight: 3300 / 2200; 256-page frames, 4 in flight (1024 pages, 4 MiB
 * outstanding): 1300 / 900, as the server then stalls on its output buffer.
 * Puts in frames of 128, 2 in flight: 3300-4300 / 2100; frames of 64, 4 in
 * flight: 2900 / 2000. Frees carry no data: full frames.
 */
#define MANY_GET_FRAME 64u
#define MANY_GET_FRAMES 4u
#define MANY_PUT_FRAME 128u
#define MANY_PUT_FRAMES 2u
_Static_assert(MANY_GET_FRAME * MANY_GET_FRAMES <= CLIENT_RESERVE &&
		       MANY_PUT_FRAME * MANY_PUT_FRAMES <= CLIENT_RESERVE,
	       "the window of *_many() must fit in the reserved slots");
static int run_many(struct sdrsa_client *c, uint8_t kind, const uint64_t *addrs,
		    void *const *pages, size_t n, int *results, uint64_t *csums)
{
	struct client_batch b = BATCH_INIT(results);
	b.csums = csums;
	size_t window, fl, i = 0;

	if (!c || (n && !addrs))
		return -EINVAL;
	for (size_t k = 0; k < n; k++)
		if (addrs[k] % SDRSA_PAGE_SIZE || (kind != SDRSA_OP_FREE && !pages[k]))
			return -EINVAL;
	if (!n)
		return 0;
	if (c->fd < 0) {
		for (size_t k = 0; k < n && results; k++)
			results[k] = -ENOTCONN;
		return -ENOTCONN;
	}
	if (kind == SDRSA_OP_GET) {
		fl = MIN(MANY_GET_FRAME, c->max_batch);
		window = MANY_GET_FRAMES * fl;
	} else if (kind == SDRSA_OP_PUT) {
		fl = MIN(MANY_PUT_FRAME, c->max_batch);
		window = MANY_PUT_FRAMES * fl;
	} else {
		fl = c->max_batch;
		window = CLIENT_SYNC_FRAMES * fl;
	}
	c->frame_limit = (uint32_t)fl;
	while (b.done < n) {
		size_t target;

		while (i < n && i - b.done < window && c->fd >= 0) {
			void *page = kind == SDRSA_OP_FREE ? NULL : pages[i];
			if (client_queue_op(c, kind, addrs[i], page, i, &b) < 0)
				break;
			i++;
		}
		if (c->fd < 0 || flush_queue(c) < 0) {
			/* The connection failed: what was sent has been failed
			 * with the reason; what was never sent fails too. */
			for (; i < n; i++)
				client_batch_record(&b, i, -ENOTCONN);
			break;
		}
		if (i == b.done) {
			/* Nothing in flight and no slot: cannot happen, as
			 * CLIENT_RESERVE slots are kept for this; never hang. */
			for (; i < n; i++)
				client_batch_record(&b, i, -EBUSY);
			break;
		}
		target = i < n ? i - MIN(i, window - fl) : n;
		if (target <= b.done && i < n)
			target = b.done + 1;
		while (b.done < target)
			if (recv_some(c, NO_DEADLINE, 0) < 0)
				break;
	}
	c->frame_limit = c->max_batch;
	return batch_result(&b);
}

int sdrsa_get_many(struct sdrsa_client *c, const uint64_t *addrs, void *const *pages, size_t n,
		   int *results)
{
	if (n && !pages)
		return -EINVAL;
	return run_many(c, SDRSA_OP_GET, addrs, pages, n, results, NULL);
}

int sdrsa_put_many(struct sdrsa_client *c, const uint64_t *addrs, const void *const *pages,
		   size_t n, int *results)
{
	if (n && !pages)
		return -EINVAL;
	return run_many(c, SDRSA_OP_PUT, addrs, (void *const *)pages, n, results, NULL);
}

int sdrsa_put_many_csum(struct sdrsa_client *c, const uint64_t *addrs, const void *const *pages,
			size_t n, int *results, uint64_t *csums)
{
	if ((n && !pages) || (n && !csums))
		return -EINVAL;
	return run_many(c, SDRSA_OP_PUT, addrs, (void *const *)pages, n, results, csums);
}

int sdrsa_free(struct sdrsa_client *c, const uint64_t *addrs, size_t n)
{
	return run_many(c, SDRSA_OP_FREE, addrs, NULL, n, NULL, NULL);
}

int sdrsa_free_all(struct sdrsa_client *c, uint64_t *freed)
{
	uint64_t count = 0;
	int rc;

	if (!c)
		return -EINVAL;
	rc = run_one(c, SDRSA_OP_FREE_ALL, 0, &count);
	if (rc == 0 && freed)
		*freed = count;
	return rc;
}

int sdrsa_ping(struct sdrsa_client *c)
{
	if (!c)
		return -EINVAL;
	return run_one(c, SDRSA_OP_PING, 0, NULL);
}

int sdrsa_stats(struct sdrsa_client *c, struct sdrsa_stats *out)
{
	struct sdrsa_stats s;
	int rc;

	if (!c || !out)
		return -EINVAL;
	rc = run_one(c, SDRSA_OP_STATS, 0, &s);
	if (rc == 0)
		*out = s;
	return rc;
}

/* ---- pipelined interface ------------------------------------------------- */

/* csum_out (GET only, may be NULL): where the verified checksum goes. */
static int submit(struct sdrsa_client *c, uint8_t kind, uint64_t addr, void *page, uint64_t tag,
		  uint64_t *csum_out)
{
	if (c->fd < 0)
		return -ENOTCONN;
	if (c->user_ops >= SDRSA_CLIENT_MAX_INFLIGHT)
		return -EBUSY;
	if (client_queue_op(c, kind, addr, page, tag, NULL) < 0)
		return -EBUSY;
	if (csum_out) /* the op just queued is the last of the last unsent frame */
		c->ops[c->ops[c->unsent[c->nunsent - 1]].last].csum_out = csum_out;
	return 0;
}

int sdrsa_submit_get(struct sdrsa_client *c, uint64_t addr, void *page, uint64_t tag)
{
	if (!c || !page || addr % SDRSA_PAGE_SIZE)
		return -EINVAL;
	return submit(c, SDRSA_OP_GET, addr, page, tag, NULL);
}

int sdrsa_submit_get_csum(struct sdrsa_client *c, uint64_t addr, void *page, uint64_t tag,
			  uint64_t *csum)
{
	if (!c || !page || !csum || addr % SDRSA_PAGE_SIZE)
		return -EINVAL;
	return submit(c, SDRSA_OP_GET, addr, page, tag, csum);
}

int sdrsa_submit_put(struct sdrsa_client *c, uint64_t addr, const void *page, uint64_t tag)
{
	if (!c || !page || addr % SDRSA_PAGE_SIZE)
		return -EINVAL;
	return submit(c, SDRSA_OP_PUT, addr, (void *)page, tag, NULL);
}

int sdrsa_submit_free(struct sdrsa_client *c, uint64_t addr, uint64_t tag)
{
	if (!c || addr % SDRSA_PAGE_SIZE)
		return -EINVAL;
	return submit(c, SDRSA_OP_FREE, addr, NULL, tag, NULL);
}

int sdrsa_flush(struct sdrsa_client *c)
{
	if (!c)
		return -EINVAL;
	if (c->fd < 0)
		return -ENOTCONN;
	return flush_queue(c);
}

int sdrsa_reap(struct sdrsa_client *c, struct sdrsa_completion *out, size_t max, size_t min,
	       int timeout_ms)
{
	uint64_t deadline;
	size_t n = 0;
	int sent = 0;

	if (!c || (max && !out))
		return -EINVAL;
	if (c->fd >= 0) {
		sent = c->nunsent > 0;
		flush_queue(c); /* a failure completes everything: reported below */
	}
	min = MIN(min, max);
	min = MIN(min, (size_t)c->user_ops);
	deadline = deadline_after(timeout_ms < 0 ? c->timeout_ms : timeout_ms);
	if (c->cq_len >= min) {
		/* Nothing to wait for, but one look at the socket, so that a
		 * caller driven by poll() on our fd always makes progress. */
		if (c->fd >= 0 && c->nsent && c->cq_len < max)
			recv_once(c);
	} else {
		/* recv_some() looks first itself; after a send, it lets the
		 * server run before that look (see recv_some()). */
		int yield_first = sent;

		while (c->cq_len < min && c->fd >= 0) {
			if (recv_some(c, deadline, yield_first) <= 0)
				break;
			yield_first = 0;
		}
	}
	while (n < max && client_pop_completion(c, &out[n]) == 0)
		n++;
	if (!n && c->fd < 0)
		return -ENOTCONN;
	return (int)MIN(n, (size_t)INT_MAX);
}

size_t sdrsa_inflight(const struct sdrsa_client *c)
{
	return c ? c->user_ops : 0;
}
