/* SPDX-License-Identifier: MIT */
/*
 * Private structures shared by server.c (threads, event loops, socket I/O)
 * and session.c (the protocol spoken on one connection). Not installed.
 *
 * Ownership: a connection belongs to the worker that accepted it and is
 * touched by that worker's thread only, so nothing in struct conn is locked.
 * Worker counters are written by their worker only and read by others (STATS)
 * with relaxed atomic loads.
 */
#ifndef SDRSA_SERVER_SERVER_INT_H
#define SDRSA_SERVER_SERVER_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <sdrsa/protocol.h>

#include "server/keys.h"
#include "server/server.h"
#include "server/store.h"

/* Buffers: initial sizes; input grows to one whole frame, output to the
 * backpressure mark plus one reply. */
#define CONN_IN_INITIAL (64u * 1024)
#define CONN_OUT_INITIAL (64u * 1024)
/* Stop reading and processing a connection with this much unsent output
 * (a client that pipelines GETs without reading the replies). */
#define CONN_OUT_HIGH (4u * 1024 * 1024)
/* How long a connection refused with a fatal status may keep sending before
 * it is closed (we drain its input so our reply is not lost to an RST). */
#define CONN_LINGER_MS 1000u

/* What an epoll event's data.ptr points to: these structs start with a kind. */
enum ep_kind { EP_LISTENER = 1, EP_STOP, EP_CONN, EP_HANDOFF };

enum conn_state {
	CS_HELLO, /* waiting for HELLO */
	CS_AUTH,  /* CHALLENGE sent, waiting for AUTH */
	CS_READY, /* WELCOME sent: bound to a namespace */
};

struct worker_stats {
	_Atomic uint64_t gets, puts, swaps, frees, misses, pool_full, quota_refused, bad_frames,
	    auth_failures, bytes_in, bytes_out;
};

/* Owner-only increment: a plain load and store, but race-free for readers. */
#define STAT_ADD(w, field, n)                                                                      \
	atomic_store_explicit(&(w)->stats.field,                                                   \
			      atomic_load_explicit(&(w)->stats.field, memory_order_relaxed) + (n), \
			      memory_order_relaxed)

struct listener {
	int kind; /* EP_LISTENER */
	int fd;
	char name[160];	     /* as printed in "listening on" */
	char unix_path[128]; /* Unix socket file we created, "" for TCP */
};

struct conn;

/* A connection accepted by one worker for another (see do_accept()). */
struct handoff {
	int fd;
	socklen_t len;
	struct sockaddr_storage ss;
};

struct worker {
	struct sdrsa_server *srv;
	unsigned idx;
	pthread_t thread;
	int epfd;
	int spare_fd;	    /* kept open to accept-and-refuse when out of fds */
	struct conn *conns; /* doubly linked list of this worker's connections */
	unsigned nconns;
	/* Connections this worker has or is about to get (handed over, not yet
	 * taken): what the least-loaded choice of do_accept() compares. */
	_Atomic unsigned load;
	/* Connections handed over by other workers: queue under hmu, and an
	 * eventfd in this worker's epoll that says the queue is not empty. */
	int handoff_kind; /* EP_HANDOFF: data.ptr of handoff_fd's event */
	int handoff_fd;
	pthread_mutex_t hmu;
	struct handoff *hq;
	unsigned hn, hcap;
	uint64_t next_scan_ms; /* next timeout scan */
	uint64_t last_emfile_log_ms;
	struct worker_stats stats;
} __attribute__((aligned(64)));

struct conn {
	int kind; /* EP_CONN */
	int fd;
	struct worker *w;
	struct conn *prev, *next;
	enum conn_state state;
	uint32_t ep_events; /* interest currently registered */
	/* Input: bytes [in_start, in_end) received and not yet consumed. */
	uint8_t *in;
	size_t in_cap, in_start, in_end;
	/* Output: bytes [out_start, out_end) waiting to be sent. */
	uint8_t *out;
	size_t out_cap, out_start, out_end;
	unsigned closing : 1; /* a fatal status was queued: flush, then close */
	unsigned eof : 1;     /* the peer shut down its sending side */
	unsigned shut : 1;    /* we shut down our sending side (lingering) */
	unsigned oom : 1;     /* a buffer could not grow: close at once */
	unsigned local : 1;   /* loopback or Unix-socket peer */
	unsigned logged_bad : 1;
	uint64_t accepted_ms, last_rx_ms, last_tx_ms, linger_until_ms;
	uint64_t frames, bytes_in, bytes_out;
	struct sdrsa_ns *ns; /* once READY */
	uint32_t ns_id;
	char peer[96];
	char name[SDRSA_NAME_MAX + 1]; /* from HELLO */
	uint8_t cnonce[SDRSA_NONCE_SIZE], snonce[SDRSA_NONCE_SIZE];
	char reason[160]; /* why it is closing, for the disconnect log line */
};

struct sdrsa_server {
	struct sdrsa_store *store;
	uint64_t pool_pages;
	uint64_t quota_pages;
	unsigned nworkers;
	unsigned max_conns;
	uint64_t io_timeout_ms;
	unsigned busy_poll_us;
	int insecure;
	int locked;
	char *key_file;
	pthread_rwlock_t keys_lock; /* protects the pointer `keys` (tables are immutable) */
	struct sdrsa_keys *keys;    /* NULL: no authentication */
	struct listener *listeners;
	size_t nlisteners;
	struct worker *workers;
	int stop_fd;   /* eventfd in every worker's epoll: readable = exit */
	int stop_kind; /* EP_STOP: data.ptr of stop_fd's event */
	int ctl_fd;    /* eventfd that wakes sdrsa_server_run() */
	_Atomic int stop_req, dump_req, reload_req;
	_Atomic int draining; /* SIGUSR2: refuse PUTs, exit once empty (pool drain) */
	_Atomic unsigned conns;	   /* open connections, all workers */
	_Atomic uint64_t accepted; /* connections accepted since start */
	uint64_t start_ms;
	sdrsa_server_log_fn log;
	void *log_userdata;
	int log_level;
	/* Tests only (SDRSA_TEST_SEND_DELAY_US in the environment): sleep this
	 * long between pinning a GET's slots and sending them, so that a test
	 * can make frees and puts of other workers land inside that window. */
	unsigned test_send_delay_us;
};

/* Bytes queued in c->out and not sent yet. */
static inline size_t out_pending(const struct conn *c)
{
	return c->out_end - c->out_start;
}

/* server.c: one non-blocking sendmsg() of iov[0..n) on the connection (its
 * output buffer must be empty, or replies would be reordered). Returns the
 * bytes sent: 0 when the socket is full or failed (the failure is seen again,
 * and the connection closed, by the next flush of the output buffer). */
size_t conn_send_iov(struct conn *c, const struct iovec *iov, size_t n);

/* Log one line at a syslog level (server.c). */
void srv_log(struct sdrsa_server *s, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * session.c: consume the complete frames in c->in and queue the replies in
 * c->out, until the input holds no complete frame, the connection is
 * closing, or the output passed CONN_OUT_HIGH. Returns 1 when it stopped for
 * the output with a complete frame left, else 0.
 */
int session_process(struct conn *c);
/* Bytes the frame at the head of the input needs in total (header + payload),
 * or SDRSA_HDR_SIZE while the header is incomplete or invalid. */
size_t session_frame_need(const struct conn *c);
/* Whether a complete frame waits in the input. */
int session_frame_ready(const struct conn *c);
/* Queue a header-only reply outside a session (BUSY on accept). */
void session_encode_status(uint8_t out[SDRSA_HDR_SIZE], uint8_t opcode, unsigned status);

#endif
