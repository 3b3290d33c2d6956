/* SPDX-License-Identifier: MIT */
/*
 * Page store: where the engine keeps the pages it sends away. A small vtable
 * so that the engine core can be tested without a network:
 *
 *   - store_sdrsa.c: the real one, a libsdrsa client connection to a memory
 *     server, with bounded reconnect-and-retry on connection errors;
 *   - store_memcached.c: pages as items on a memcached fleet (libmemcached),
 *     for sites that already run one (docs/MEMCACHED.md);
 *   - store_mem.c: an in-memory map used ONLY by the engine's unit tests
 *     (tests/engine), never by rsa-app or the preload library. It can be told
 *     to fail, to test the engine's failure path.
 *
 * Keys are page-aligned 64-bit numbers chosen by the engine (not virtual
 * addresses: see engine.c on remapping). All functions return 0 or -errno;
 * -ENOENT from get means "never stored" and is a bug in the caller, since the
 * engine only fetches keys it stored. A store is used by one thread at a time
 * (the engine serialises calls with its lock).
 */
#ifndef SDRSA_ENGINE_STORE_H
#define SDRSA_ENGINE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include <sdrsa/client.h>

struct store;

struct store_ops {
	/* Fetch n pages. pages[i] receives 4096 bytes. */
	int (*get_many)(struct store *s, const uint64_t *keys, void *const *pages, size_t n);
	/* As get_many, but pages are handed over as they arrive: arrived(ctx,
	 * idx, k) is called with the indices of pages that came in (each
	 * exactly once, in any order) while the rest are still on their way.
	 * csums (may be NULL): a store with gives_csums set writes csums[i] =
	 * sdrsa_page_csum(pages[i], keys[i]), the checksum it verified on
	 * receipt, before page i is handed over; other stores leave it alone.
	 * Returns 0 when all arrived, else the error (some may have arrived). */
	int (*get_stream)(struct store *s, const uint64_t *keys, void *const *pages, size_t n,
			  void (*arrived)(void *ctx, const size_t *idx, size_t k), void *ctx,
			  uint64_t *csums);
	/* Store n pages (replacing earlier contents at the same keys).
	 * results[i] (may be NULL) gets each page's outcome: 0, -ENOSPC (the
	 * server's pool is full) or -EDQUOT (our quota is used up) are
	 * per-page answers; the return is 0 when all were stored, else the
	 * first failure. Connection errors are retried inside the store. */
	int (*put_many)(struct store *s, const uint64_t *keys, const void *const *pages, size_t n,
			int *results);
	/* Forget n keys; unknown keys are not an error. */
	int (*free_keys)(struct store *s, const uint64_t *keys, size_t n);
	/* Forget every key of this store; *freed (may be NULL) gets the count. */
	int (*free_all)(struct store *s, uint64_t *freed);
	/* Release the store; accepts NULL via store_free(). */
	void (*destroy)(struct store *s);
	/* In a fork child: drop the parent's connection without any I/O on it
	 * (it is the parent's) and make the store usable by the child, which
	 * only reads pages its parent stored. The sdrsa store connects again
	 * on its first use; the in-memory store is the child's copy. */
	void (*fork_child)(struct store *s);
	/* Optional (NULL: none). Background work done by the engine's thread
	 * between faults (the pool: health probes, re-replication), bounded
	 * per call. Returns the ms until it wants to be called again, or -1. */
	int (*tick)(struct store *s);
	/* Optional (NULL: the caller hashes the pages). As put_many, and
	 * csums[i] gets sdrsa_page_csum(pages[i], keys[i]) for each page
	 * stored (results[i] == 0), taken from where the store computed it
	 * anyway (libsdrsa's PUT frame): the engine keeps it to check the
	 * page when it comes back (docs/ENGINE.md, "End-to-end check"). */
	int (*put_many_csum)(struct store *s, const uint64_t *keys, const void *const *pages,
			     size_t n, int *results, uint64_t *csums);
	/* Optional (NULL: none). As get_stream, for a store that holds
	 * several copies of a page (the pool): want[i] is the low half of
	 * sdrsa_page_csum() of the version the caller stored; a copy that
	 * differs counts as a failed copy (another is read; copies_bad) and
	 * csums[i] gets every page's checksum, as with gives_csums. A page
	 * with no matching copy is handed over all the same (the caller's own
	 * check fails it). */
	int (*get_stream_want)(struct store *s, const uint64_t *keys, const uint32_t *want,
			       void *const *pages, size_t n,
			       void (*arrived)(void *ctx, const size_t *idx, size_t k), void *ctx,
			       uint64_t *csums);
};

struct store {
	const struct store_ops *ops;
	uint64_t bytes_sent; /* page bytes sent by put_many */
	uint64_t bytes_recv; /* page bytes received by get_many */
	uint64_t retries;    /* operations retried after a reconnect */
	const char *why;     /* NULL or the detail of the last failure, for messages */
	/* get_stream fills csums[] (a memory server's end-to-end checksums,
	 * verified by libsdrsa): whoever keeps a page's checksum need not
	 * hash it again. 0: the caller hashes (memory, memcached, pool). */
	int gives_csums;
	/* Pool facts (store_pool.c; a single server store says 1 and 1). */
	uint32_t servers_total, servers_up;
	uint64_t pages_under_replicated; /* keys with fewer copies than asked */
	uint64_t pages_rereplicated;     /* copies made again after a loss or drain */
	uint64_t pages_lost;             /* keys with no copy left (fatal if read) */
	uint64_t copies_bad; /* copies read that were not the version stored (get_stream_want) */
};

static inline void store_free(struct store *s)
{
	if (s)
		s->ops->destroy(s);
}

/* ---- the end-to-end check's side of a store (docs/ENGINE.md), shared by
 * the engine and the VM pager ---- */

/* put_many, with csums[i] = sdrsa_page_csum(pages[i], keys[i]) for each page
 * stored: the store's own when it computed it anyway (put_many_csum), else
 * hashed here (before the put: a store that fails early leaves results[]
 * unwritten). */
static inline int store_put_csum(struct store *s, const uint64_t *keys, const void *const *pages,
				 size_t n, int *results, uint64_t *csums)
{
	if (s->ops->put_many_csum)
		return s->ops->put_many_csum(s, keys, pages, n, results, csums);
	for (size_t i = 0; i < n; i++)
		csums[i] = sdrsa_page_csum(pages[i], keys[i]);
	return s->ops->put_many(s, keys, pages, n, results);
}

/* get_stream, telling a store that holds several copies of a page which
 * version is wanted (get_stream_want: it reads another copy when one is not
 * it). want[i]: the low half of the checksum kept when page i was stored. */
static inline int store_get_want(struct store *s, const uint64_t *keys, const uint32_t *want,
				 void *const *pages, size_t n,
				 void (*arrived)(void *ctx, const size_t *idx, size_t k), void *ctx,
				 uint64_t *csums)
{
	if (s->ops->get_stream_want)
		return s->ops->get_stream_want(s, keys, want, pages, n, arrived, ctx, csums);
	return s->ops->get_stream(s, keys, pages, n, arrived, ctx, csums);
}

/* Does store_get_want() fill csums[] with each page's checksum (so that the
 * caller need not hash the page to check it)? */
static inline int store_fills_csums(const struct store *s)
{
	return s->gives_csums || s->ops->get_stream_want;
}

/* An arrived callback for callers that only want the pages at the end. */
static inline void store_arrived_ignore(void *ctx, const size_t *idx, size_t k)
{
	(void)ctx;
	(void)idx;
	(void)k;
}

/* In-memory store for tests. fail_after: after this many successful
 * operations every operation fails with -ECONNRESET (0: never fail). */
int store_mem_new(struct store **ret);
void store_mem_fail_after(struct store *s, uint64_t ops);
/* Pages currently held (for tests checking that frees happen). */
size_t store_mem_count(const struct store *s);
/* Hold at most `pages` pages (0: no limit): puts of new keys beyond it are
 * refused with -ENOSPC, as a full memory server does. */
void store_mem_set_capacity(struct store *s, size_t pages);
/* Stale copies, for the engine's end-to-end check: with keep_old on, a put
 * that replaces a page keeps the version it replaces; then the next n gets
 * of pages that have one serve that older version instead, once each (with
 * a valid checksum, as a memory server holding a late put would). ahead:
 * only pages after the first of a get_stream (the engine's pages fetched
 * ahead of the faulting one). */
void store_mem_keep_old(struct store *s, int on);
void store_mem_serve_old(struct store *s, uint64_t n, int ahead);

struct sdrsa_client_config;
/* Connect to a memory server. retry_ms bounds the time spent reconnecting
 * after a connection error before an operation fails for good (0: 10000). */
int store_sdrsa_new(const struct sdrsa_client_config *cfg, int retry_ms, struct store **ret);
/* PING and STATS on a store_sdrsa's connection (retried as other ops). */
struct sdrsa_stats;
int store_sdrsa_ping(struct store *s);
/* Its connection (connecting if needed; NULL on failure), for the pool's
 * pipelined operations across servers. Errors there are retried through the
 * store's own operations. */
struct sdrsa_client *store_sdrsa_client(struct store *s);
int store_sdrsa_stats(struct store *s, struct sdrsa_stats *out);

/*
 * A pool of memory servers with R copies of every page (store_pool.c,
 * docs/POOL.md). Every server is a store_sdrsa with the same name and its
 * own key. Fails with -EINVAL when replicas > n, or with the first
 * connection error when fewer than `replicas` servers answer.
 */
#define STORE_POOL_MAX 32
struct sdrsa_pool_server;
struct store_pool_config {
	const struct sdrsa_pool_server *servers;
	size_t n;
	unsigned replicas; /* 0: 2 with at least two servers, else 1 */
	const char *name;
	int timeout_ms; /* per operation on one server; 0: 1000 */
	int retry_ms;   /* reconnect budget when replicas == 1 (else one attempt) */
	sdrsa_log_fn log;
	void *log_userdata;
};
int store_pool_new(const struct store_pool_config *cfg, struct store **ret);
/* Rendezvous order of n servers with these weights for key (order[0] first).
 * Exposed for the placement unit test. */
void store_pool_rank(const double *weights, unsigned n, uint64_t key, uint8_t *order);

/* Pages on a memcached fleet (store_memcached.c). servers: "HOST:PORT,..."
 * (libmemcached's list syntax); ns: the key prefix, unique per engine. */
int store_memcached_new(const char *servers, const char *ns, int timeout_ms, int retry_ms,
			struct store **ret);
/* Ask every server of the list for its version (and with check_size, store
 * and delete an item of a page's size): 0, or -errno with a one-line reason
 * in why (-EMSGSIZE: a server's item size limit is below a page). For
 * rsa-app's checks before it starts the program and before it frees. */
int store_memcached_check(const char *servers, int timeout_ms, int check_size, char *why,
			  size_t whylen);
/* After the programs of a namespace are gone (rsa-app, also after a crash):
 * delete every page whose key is in a range the stores of that namespace
 * recorded (with SDRSA_FREE_AT_EXIT=0), and the records. *deleted gets the
 * number of deletes sent. 0 or -errno. */
int store_memcached_free_namespace(const char *servers, const char *ns, int timeout_ms,
				   uint64_t *deleted);

#endif
