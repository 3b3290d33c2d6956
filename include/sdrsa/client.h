/* SPDX-License-Identifier: MIT */
/*
 * libsdrsa client: talk to a memory server over TCP or a Unix socket.
 *
 * Every call returns >= 0 on success and a negative errno on failure:
 *   -ENOENT     no page stored at that address
 *   -ENOSPC     the server's pool is full (nothing of yours was dropped)
 *   -EDQUOT     your quota on that server is used up
 *   -EBADMSG    a page or frame failed its checksum (the page is not valid)
 *   -ETIMEDOUT  no answer within the timeout; the connection is then closed
 *   -ECONNRESET the server closed the connection
 *   -ENOTCONN   the connection was closed earlier; call sdrsa_client_reconnect()
 *   -EACCES     namespace refused; -EPERM authentication failed
 *   -EINVAL     bad argument (e.g. an address that is not page-aligned)
 * Output parameters are written only on success, with one exception: a get's
 * page buffer. Its data may be received straight into it before the checksum
 * is verified, so after a failed get (-EBADMSG, or the connection failing
 * meanwhile) the buffer's content is unspecified: never use it. After
 * -ENOENT it is untouched (no data was sent for it).
 *
 * A connection given up on (a timeout or other connection error, a
 * reconnect, or a free with operations unanswered) is closed with a reset,
 * so the kernel drops what it has not delivered yet: a failed operation never
 * reaches the server later (after the link comes back, say), where it could
 * undo a newer one. One the server had already received may have been
 * carried out: a PUT that timed out may or may not be stored.
 *
 * Threading: a struct sdrsa_client is not thread-safe. Use one handle per
 * thread (each is its own connection, bound to the same namespace when they
 * share a name), or serialise calls on a handle with your own lock. Separate
 * handles share nothing. The library never prints; see `log` in the config.
 *
 * Two interfaces over one connection:
 *  - synchronous: sdrsa_get(), sdrsa_put(), ... return when answered;
 *  - pipelined: sdrsa_submit_*() queue operations (consecutive operations of
 *    the same kind are batched into one frame of up to SDRSA_MAX_BATCH pages),
 *    sdrsa_flush() sends them, sdrsa_reap() collects completions, which may
 *    arrive in any order. A synchronous call first completes everything
 *    queued (their completions stay reapable).
 */
#ifndef SDRSA_CLIENT_H
#define SDRSA_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include <sdrsa/protocol.h>

#ifdef __cplusplus
extern "C" {
#endif

struct sdrsa_client;

enum sdrsa_log_level { SDRSA_LOG_ERR = 3, SDRSA_LOG_WARN = 4, SDRSA_LOG_INFO = 6, SDRSA_LOG_DEBUG = 7 };
typedef void (*sdrsa_log_fn)(void *userdata, int level, const char *msg);

struct sdrsa_client_config {
	/* "HOST:PORT", "HOST" (port 2223), "[V6ADDR]:PORT", or a Unix socket
	 * as "unix:PATH" or any string starting with '/'. */
	const char *address;
	/* Client name: the namespace on the server. NULL: "default". */
	const char *name;
	/* Pre-shared key (SDRSA_KEY_SIZE bytes) or NULL. With a key the client
	 * also requires the server to prove it knows the key. */
	const uint8_t *key;
	/* Per-operation timeout in ms; 0: 5000; negative: wait forever. */
	int timeout_ms;
	/* Busy-poll this long for a reply before sleeping, in us; 0: default
	 * (50); negative: never spin. Spinning saves a cross-CPU wake-up. */
	int spin_us;
	sdrsa_log_fn log; /* optional */
	void *log_userdata;
};

/* Connect and authenticate. Returns 0 and *ret, or -errno (-ECONNREFUSED,
 * -EPERM wrong key, -EHOSTUNREACH, -ETIMEDOUT, -EINVAL bad address). */
int sdrsa_client_connect(const struct sdrsa_client_config *cfg, struct sdrsa_client **ret);
/* Close and free; accepts NULL. Queued, unanswered operations are dropped. */
void sdrsa_client_free(struct sdrsa_client *c);
/* Drop the connection (if any) and connect again with the same config;
 * pages stored under the same name are still there. Queued operations fail
 * with -ECONNRESET. */
int sdrsa_client_reconnect(struct sdrsa_client *c);
/* Server facts learnt at connect. */
uint64_t sdrsa_client_pool_pages(const struct sdrsa_client *c);
uint64_t sdrsa_client_quota_pages(const struct sdrsa_client *c);
uint32_t sdrsa_client_namespace(const struct sdrsa_client *c);
/* Socket fd, for poll() in an event loop; -1 when not connected. */
int sdrsa_client_fd(const struct sdrsa_client *c);

/*
 * Read the key of client NAME from a key file: lines "NAME HEX64KEY",
 * '#' comments. The file must not be readable by group or others (-EPERM).
 * Returns 0, -ENOENT (no such name), -EBADMSG (malformed line), -errno.
 */
int sdrsa_key_load(const char *path, const char *name, uint8_t key[SDRSA_KEY_SIZE]);
/* Fill a new random key. */
void sdrsa_key_generate(uint8_t key[SDRSA_KEY_SIZE]);

/* Synchronous operations. `page` buffers are SDRSA_PAGE_SIZE bytes. */
int sdrsa_get(struct sdrsa_client *c, uint64_t addr, void *page);
int sdrsa_put(struct sdrsa_client *c, uint64_t addr, const void *page);
/* Store put_page at put_addr and fetch get_addr in one round trip. Returns the
 * put's error first, then the get's; get_page is written only when both
 * succeeded (0). */
int sdrsa_swap(struct sdrsa_client *c, uint64_t put_addr, const void *put_page,
	       uint64_t get_addr, void *get_page);
/* Batched forms: any n (split into frames as needed). results[i] (may be
 * NULL) gets each page's result; the return is 0 if all succeeded, else the
 * first failure. */
int sdrsa_get_many(struct sdrsa_client *c, const uint64_t *addrs, void *const *pages, size_t n,
		   int *results);
int sdrsa_put_many(struct sdrsa_client *c, const uint64_t *addrs, const void *const *pages,
		   size_t n, int *results);
/* As sdrsa_put_many; csums[i] gets sdrsa_page_csum(pages[i], addrs[i]), the
 * end-to-end checksum sent with page i (the one a later GET verifies), so
 * that a caller keeping it need not hash the page again. */
int sdrsa_put_many_csum(struct sdrsa_client *c, const uint64_t *addrs, const void *const *pages,
			size_t n, int *results, uint64_t *csums);
/* Free pages; freeing a page never stored is not an error. */
int sdrsa_free(struct sdrsa_client *c, const uint64_t *addrs, size_t n);
/* Free every page of this namespace; *freed (may be NULL) gets the count. */
int sdrsa_free_all(struct sdrsa_client *c, uint64_t *freed);
int sdrsa_ping(struct sdrsa_client *c);
int sdrsa_stats(struct sdrsa_client *c, struct sdrsa_stats *out);

/* Pipelined interface. A submitted page buffer must stay valid until its
 * completion is reaped: a put's page is sent from it (not copied), so it must
 * stay unchanged until then; a get's page may be written into it at any time
 * before its completion, and holds the page only if the result is 0 (so two
 * outstanding gets must not share a buffer). Returns
 * 0 or -errno; -EBUSY when SDRSA_CLIENT_MAX_INFLIGHT operations are already
 * outstanding. */
#define SDRSA_CLIENT_MAX_INFLIGHT 4096
int sdrsa_submit_get(struct sdrsa_client *c, uint64_t addr, void *page, uint64_t tag);
/* As sdrsa_submit_get; when the get completes with 0, *csum (which must
 * stay valid until then) holds the page's end-to-end checksum,
 * sdrsa_page_csum(page, addr), which the library has verified: a caller
 * that keeps a checksum of the page need not hash it again. */
int sdrsa_submit_get_csum(struct sdrsa_client *c, uint64_t addr, void *page, uint64_t tag,
			  uint64_t *csum);
int sdrsa_submit_put(struct sdrsa_client *c, uint64_t addr, const void *page, uint64_t tag);
int sdrsa_submit_free(struct sdrsa_client *c, uint64_t addr, uint64_t tag);
/* Send everything queued. */
int sdrsa_flush(struct sdrsa_client *c);

struct sdrsa_completion {
	uint64_t tag;   /* as submitted */
	uint64_t addr;  /* as submitted */
	uint8_t opcode; /* SDRSA_OP_GET, _PUT or _FREE */
	int result;     /* 0 or -errno as for the synchronous calls */
};
/* Flush, then wait until at least `min` completions are available (or the
 * timeout, in ms, passes; negative: the configured timeout) and return up
 * to `max` of them. Returns the number stored in out[], or -errno. */
int sdrsa_reap(struct sdrsa_client *c, struct sdrsa_completion *out, size_t max, size_t min,
	       int timeout_ms);
/* Operations submitted and not yet reaped. */
size_t sdrsa_inflight(const struct sdrsa_client *c);

#ifdef __cplusplus
}
#endif
#endif
