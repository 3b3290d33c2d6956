/* SPDX-License-Identifier: MIT */
/*
 * Integration test harness: start the real memory-server, talk to it over
 * raw sockets with the pure codec, and check that pages come back intact.
 *
 * A test program is a list of subtests run by h_run(); each returns H_PASS,
 * H_FAIL or H_SKIP and the program exits 0 (all passed), 1 (a failure) or 77
 * (all skipped). When the environment variable CI is set, a skip counts as a
 * failure: on CI every feature the tests need must be present.
 *
 * Server contract relied on (see docs/OPERATIONS.md and `memory-server
 * --help`): the server prints lines to stdout, "listening on ADDR" for every
 * socket, a line starting "pool ", then "ready" once it serves. After that
 * the harness drains its stdout into this program's stderr, prefixed with
 * "server: ", so that a chatty server never blocks on a full pipe.
 *
 * Raw connections (struct h_conn) do the handshake by hand (HELLO ->
 * CHALLENGE -> AUTH -> WELCOME) and expose the socket, so tests can send
 * arbitrary bytes. Every reply received through h_recv() is checked against
 * the protocol (reply flag, header checksum, entry layout); a violation is
 * recorded and fails the program at exit, without hiding the test's own
 * checks.
 */
#ifndef SDRSA_TEST_HARNESS_H
#define SDRSA_TEST_HARNESS_H

#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <sdrsa/protocol.h>

#define H_PASS 0
#define H_FAIL 1
#define H_SKIP 77

/* Default time to wait for a reply, in ms. */
#define H_TIMEOUT_MS 5000

/* ---- checks ---- */

void h_check_failed(const char *file, int line, const char *expr, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Fail the current subtest (return H_FAIL) when cond is false. */
#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			h_check_failed(__FILE__, __LINE__, #cond, NULL);                           \
			return H_FAIL;                                                             \
		}                                                                                  \
	} while (0)
#define CHECKM(cond, ...)                                                                          \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			h_check_failed(__FILE__, __LINE__, #cond, __VA_ARGS__);                    \
			return H_FAIL;                                                             \
		}                                                                                  \
	} while (0)
/* Run a subtest-like function and propagate its failure. */
#define CHECK_OK(call)                                                                             \
	do {                                                                                       \
		int rc_ = (call);                                                                  \
		if (rc_ != H_PASS) {                                                               \
			h_check_failed(__FILE__, __LINE__, #call, "returned %d", rc_);             \
			return rc_ == H_SKIP ? H_SKIP : H_FAIL;                                    \
		}                                                                                  \
	} while (0)

void h_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Skip the current subtest; on CI this is a failure. Returns H_SKIP or H_FAIL. */
int h_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Parse argv (argv[1] or $SDRSA_MEMORY_SERVER: the server binary), set up a
 * temporary directory, ignore SIGPIPE. */
void h_init(int argc, char **argv);
/* Run one subtest and record its outcome. */
void h_run(const char *name, int (*fn)(void));
/* Print a summary and return the exit status for main(). Stops servers. */
int h_finish(void);
/* The private temporary directory of this run (removed by h_finish). */
const char *h_tmpdir(void);
/* Path of the server binary. */
const char *h_server_bin(void);
/* Raise RLIMIT_NOFILE to at least n; 0 or -errno. */
int h_raise_nofile(unsigned long n);
/* Replace the file at path with text, mode mode (key files: 0600). 0 or
 * -errno. */
int h_write_file(const char *path, const char *text, mode_t mode);

/* ---- the server process ---- */

#define H_MAX_LISTEN 4
struct h_server {
	pid_t pid;                         /* 0 when not running */
	int out_fd;                        /* its stdout until "ready"; then -1 */
	int drain_started;                 /* drain_thread owns the stdout pipe */
	pthread_t drain_thread;
	int status;                        /* wait status once reaped */
	int reaped;
	int nlisten;
	char listen[H_MAX_LISTEN][128];    /* "listening on" addresses */
	struct sockaddr_storage addr;      /* preferred: first TCP, else Unix */
	socklen_t addr_len;
	char addr_str[128];
	char pool_line[256];               /* the "pool ..." line */
};

/* Start `memory-server ARGS...` (args NULL-terminated, without argv[0]) and
 * wait up to 15 s for "ready". 0, or -errno with a message logged. */
int h_server_start(struct h_server *s, const char *const *args);
/* Convenience: start with a pool SIZE, --listen 127.0.0.1:0 and extra args. */
int h_server_start_tcp(struct h_server *s, const char *size, const char *const *extra);
/* True while the process exists and has not exited. */
int h_server_alive(struct h_server *s);
/* Send sig and wait up to timeout_ms for exit. Returns the wait status, or
 * -ETIMEDOUT (the server is then killed with SIGKILL). */
int h_server_stop(struct h_server *s, int sig, int timeout_ms);
/* SIGSTOP the server and wait until every one of its threads is stopped
 * (kill() returns before a spinning thread on another CPU has stopped).
 * 0 or -errno. h_server_resume() sends SIGCONT. */
int h_server_pause(struct h_server *s);
int h_server_resume(struct h_server *s);
/* Use a specific listening address (e.g. a Unix one) for new connections. */
int h_server_use_addr(struct h_server *s, const char *addr);

/* Run the server binary with args to completion (timeout_ms; killed after)
 * capturing stdout and stderr. Returns the wait status or -ETIMEDOUT. */
int h_run_server_cmd(const char *const *args, int timeout_ms, char *out, size_t out_n,
		     char *err, size_t err_n);

/* ---- raw connections ---- */

struct h_conn {
	int fd;
	uint32_t ns;                 /* from WELCOME */
	uint32_t next_id;            /* next request id */
	struct sdrsa_welcome welcome;
	uint8_t server_nonce[SDRSA_NONCE_SIZE];
	int auth_required;
	char name[SDRSA_NAME_MAX + 1];
};

/* A socket connected to the server (no handshake); fd or -errno. */
int h_socket(const struct h_server *s);
/* Connect and do the handshake as NAME with KEY (NULL: none). Returns 0,
 * a positive sdrsa status if the server refused, or -errno; on failure the
 * socket is closed and c->fd is -1. */
int h_open(const struct h_server *s, const char *name, const uint8_t *key, struct h_conn *c);
/* The handshake on an existing socket. On a refusal (positive status) the
 * socket stays open, so that the caller can check the server closes it;
 * on -errno it is closed. *step (may be NULL) gets the opcode of the step
 * that failed (SDRSA_OP_HELLO or SDRSA_OP_AUTH). */
int h_handshake(int fd, const char *name, const uint8_t *key, struct h_conn *c, int *step);
void h_close(struct h_conn *c);
/* A HELLO payload for NAME with a fresh random nonce, into out
 * (SDRSA_HELLO_MAX bytes); the nonce is copied to nonce (SDRSA_NONCE_SIZE
 * bytes) when not NULL. Returns the payload's length. */
size_t h_hello(const char *name, uint8_t *out, uint8_t *nonce);
/* Send that HELLO on the raw connection c without reading the reply; the
 * request's header goes to req (its req_id for h_expect_status). 0 or -errno. */
int h_send_hello(struct h_conn *c, const char *name, struct sdrsa_hdr *req, uint8_t *nonce);

/* Write all of buf. 0 or -errno. */
int h_send(int fd, const void *buf, size_t n);
/* Checksum of a frame as a correct sender computes it. */
uint64_t h_frame_csum(const struct sdrsa_hdr *h, const uint8_t *payload);
/* Encode h (csum taken as given) and send it with payload (h->len bytes). */
int h_send_frame(int fd, const struct sdrsa_hdr *h, const void *payload);
/* Fill a request header: version, opcode, ns, req_id (from c), count, len,
 * csum computed over payload. */
void h_req(struct h_conn *c, struct sdrsa_hdr *h, uint8_t op, uint16_t count, uint32_t len,
	   const uint8_t *payload);

/* Receive one frame within timeout_ms. The payload (h->len bytes) goes to
 * buf, which must hold SDRSA_MAX_PAYLOAD bytes (or cap). Returns 0,
 * -ETIMEDOUT, -ECONNRESET (EOF or reset before a full frame), -EPROTO (a
 * header the codec refuses). Protocol violations of the reply are recorded. */
int h_recv(int fd, struct sdrsa_hdr *h, uint8_t *buf, size_t cap, int timeout_ms);
/* The same without the reply checks: for fake servers reading requests. */
int h_recv_request(int fd, struct sdrsa_hdr *h, uint8_t *buf, size_t cap, int timeout_ms);
/* Send a request and receive its reply, checking req_id is echoed. */
int h_call(struct h_conn *c, struct sdrsa_hdr *req, const uint8_t *payload,
	   struct sdrsa_hdr *rep, uint8_t *buf, size_t cap);
/* Wait for the server to close: 0 once EOF/reset is seen, -ETIMEDOUT, or 1
 * if data arrived instead (it is discarded). *elapsed_ms (may be NULL). */
int h_wait_closed(int fd, int timeout_ms, uint64_t *elapsed_ms);
/* Expect a reply frame with header status `status` echoing req_id (unless
 * req_id is negative), then (if must_close) the connection closed within
 * 3 s. Returns H_PASS/H_FAIL, logging why. */
int h_expect_status(int fd, uint16_t status, int64_t req_id, int must_close, const char *what);
/* Expect either a reply with any error status or the connection closed:
 * "a defined error or closes only that connection". */
int h_expect_error_or_close(int fd, const char *what);

/* ---- pages ---- */

/* Deterministic page contents from (seed, addr); never all zero. */
void h_pattern(uint8_t *page, uint64_t seed, uint64_t addr);
/* H_PASS if page matches h_pattern(seed, addr), else logs the first
 * difference and returns H_FAIL. */
int h_pattern_check(const uint8_t *page, uint64_t seed, uint64_t addr);

/* PUT n pages in one frame: pages[i] NULL sends an EF_ZERO entry. Entry
 * statuses go to st (n). Returns the reply's header status (>= 0) or -errno. */
int h_put(struct h_conn *c, const uint64_t *addrs, const uint8_t *const *pages, unsigned n,
	  uint16_t *st);
/* PUT pattern pages (seed) at addrs. */
int h_put_pattern(struct h_conn *c, const uint64_t *addrs, unsigned n, uint64_t seed,
		  uint16_t *st);
/* GET n pages in one frame into out (n * 4096; zero pages are written as
 * zeros). Each returned page's checksum is verified against its address; a
 * mismatch is returned as entry status SDRSA_S_CHECKSUM. */
int h_get(struct h_conn *c, const uint64_t *addrs, unsigned n, uint8_t *out, uint16_t *st);
/* FREE n pages. */
int h_free(struct h_conn *c, const uint64_t *addrs, unsigned n, uint16_t *st);
int h_ping(struct h_conn *c);
int h_stats(struct h_conn *c, struct sdrsa_stats *out);

/* ---- a bystander whose pages must survive every attack ---- */

#define H_VICTIM_PAGES 48
struct h_victim {
	struct h_conn c;
	uint64_t seed;
	unsigned n;
	uint64_t addrs[H_VICTIM_PAGES];
	int zero[H_VICTIM_PAGES]; /* stored as a zero page */
	int has_key;
	uint8_t key[SDRSA_KEY_SIZE];
};

/* Connect as NAME (KEY may be NULL) and store H_VICTIM_PAGES pages: pattern
 * pages and a few zero pages, at scattered addresses. */
int h_victim_setup(const struct h_server *s, struct h_victim *v, const char *name,
		   const uint8_t *key);
/* The same with n pages (n <= H_VICTIM_PAGES), e.g. under a quota. */
int h_victim_setup_n(const struct h_server *s, struct h_victim *v, const char *name,
		     const uint8_t *key, unsigned n);
/* The server is alive, the victim's connection (opened before the attack)
 * reads every page back exactly, and a new connection can still ping. */
int h_victim_check(struct h_server *s, struct h_victim *v);
/* Only the pages, over the victim's connection. */
int h_victim_check_pages(struct h_victim *v);
void h_victim_close(struct h_victim *v);

/* ---- time ---- */
uint64_t h_now_ms(void);
void h_sleep_ms(unsigned ms);

#endif
