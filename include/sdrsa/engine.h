/* SPDX-License-Identifier: MIT */
/*
 * sdrsa paging engine: memory that lives partly in this process and partly on
 * a memory server, with a local budget.
 *
 * A program creates one engine (one connection, one budget, one handler
 * thread) and any number of regions. A region is ordinary anonymous memory:
 * read and write it with plain loads and stores. The engine catches faults
 * with userfaultfd: the first touch of a page gives zeros, a page that was
 * sent away is fetched back (its checksum checked), and when the pages held
 * locally exceed the budget the coldest are sent to the server. rsa-app's
 * preload library uses the same engine for a program's large mappings.
 *
 * Every function returns >= 0 on success and a negative errno on failure;
 * output parameters are written only on success. Functions are thread-safe.
 *
 * Failure: if a page cannot be fetched or stored (server gone or silent
 * longer than retry_ms), the program must not go on with wrong memory: the
 * engine calls cfg->fatal if set, otherwise prints one line on stderr and
 * kills the process with SIGBUS. It never hands out zeros or stale data
 * instead. A server whose pool is full (or a spent quota) refuses pages:
 * they stay local, over the budget, with a warning in cfg->log, and
 * eviction resumes when the server takes pages again.
 *
 * Do not touch a region from a signal handler that may interrupt the
 * engine's own thread. fork() is supported: the child reads every page as
 * it was at the fork (its own small engine fetches what the parent holds
 * remotely, and the parent keeps those pages on the server while the child
 * lives); call sdrsa_engine_forked() in the parent after fork() so that the
 * engine learns when the child is gone. The child manages no new memory.
 * See docs/ENGINE.md.
 */
#ifndef SDRSA_ENGINE_H
#define SDRSA_ENGINE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <sdrsa/client.h>

#ifdef __cplusplus
extern "C" {
#endif

struct sdrsa_engine;
struct sdrsa_region;

enum sdrsa_engine_policy {
	/* Second chance via a local staging area: the default of a zeroed
	 * config (kept for compatibility) and of rsa-app vm. */
	SDRSA_POLICY_CLOCK = 0,
	SDRSA_POLICY_FIFO = 1,  /* evict in fault order (baseline, for comparison) */
	/* Scan-resistant: pages seen once on probation, pages seen reused
	 * (refilled, or back soon after eviction) protected; rsa-app's default.
	 * See docs/ENGINE.md. */
	SDRSA_POLICY_2Q = 2,
};

/* Prefetcher (sdrsa_engine_config.prefetch). */
enum sdrsa_engine_prefetch {
	SDRSA_PREFETCH_DEFAULT = 0, /* SDRSA_PREFETCH_STRIDE */
	SDRSA_PREFETCH_OFF = 1,
	SDRSA_PREFETCH_STREAM = 2,  /* the first stream detector (comparison) */
	SDRSA_PREFETCH_STRIDE = 3,  /* majority stride per region, adaptive depth */
};

enum sdrsa_engine_backend {
	SDRSA_BACKEND_SDRSA = 0,     /* memory servers (default) */
	SDRSA_BACKEND_MEMCACHED = 1, /* a memcached fleet: docs/MEMCACHED.md */
};

/* One memory server of a pool (see `pool` below and docs/POOL.md). */
struct sdrsa_pool_server {
	const char *address; /* as sdrsa_client_config.address */
	unsigned weight;     /* relative share of pages; 0: the server's free capacity */
	const uint8_t *key;  /* this server's key for `name`; NULL: the config's key */
};

struct sdrsa_engine_config {
	/* Memory server: as sdrsa_client_config.address. Required unless
	 * `pool` is given. With SDRSA_BACKEND_MEMCACHED: the memcached
	 * servers, "HOST:PORT,...". */
	const char *server;
	/* Namespace on the server. NULL: "sdrsa-<hostname>-<pid>". Pages of a
	 * namespace belong to one engine: two live engines must not share one. */
	const char *name;
	const uint8_t *key;   /* pre-shared key (SDRSA_KEY_SIZE) or NULL */
	int timeout_ms;       /* per network operation; 0: 5000 */
	int retry_ms;         /* reconnect for this long before failing; 0: 10000 */
	/* Local budget in bytes: pages resident or staged locally. At least
	 * 64 pages (256 KiB). */
	uint64_t local_bytes;
	/* Part of the budget used as the second-chance staging area, in
	 * percent (1..50); 0: 12. */
	unsigned staging_pct;
	enum sdrsa_engine_policy policy;
	int no_prefetch; /* 1: fetch only the page that faulted */
	sdrsa_log_fn log; /* optional; the engine logs warnings and errors here */
	void *log_userdata;
	/* Called (from the engine's thread) when memory can no longer be served.
	 * If it returns, the faulting threads stay blocked for ever. NULL:
	 * print `msg` on stderr and raise SIGBUS. */
	void (*fatal)(void *userdata, const char *msg);
	void *fatal_userdata;
	/* The engine's thread busy-polls (with sched_yield) this long after
	 * activity before sleeping, in us: saves a wake-up per fault for a
	 * program that faults often. 0: 50; negative: never spin. */
	int spin_us;
	/* Where pages go. With memcached, `name` is the key prefix and `key`
	 * is not used (memcached has no client authentication here). */
	enum sdrsa_engine_backend backend;
	/* A pool of memory servers instead of `server` (pool_size > 0): every
	 * page on `replicas` of them (0: 2 with at least two servers, else 1),
	 * placed by weighted rendezvous hashing; a dead server's pages are read
	 * from their other copies and copied again in the background. At most
	 * 32 servers. timeout_ms is then per server (0: 1000). */
	const struct sdrsa_pool_server *pool;
	size_t pool_size;
	unsigned replicas;
	/* Which prefetcher; no_prefetch = 1 overrides it with OFF. */
	enum sdrsa_engine_prefetch prefetch;
	/* Record every fault into this file (docs/ENGINE.md "Traces"; replay
	 * with `rsa-app sim`). NULL: none. */
	const char *trace_path;
};

/* Connect to the server (or the pool) and start the engine. Returns 0,
 * -EINVAL (also: more replicas than servers), -EHOSTDOWN (fewer servers
 * answer than replicas asked for), -ENOSYS (no
 * userfaultfd or a feature it needs, e.g. UFFDIO_MOVE), -EPERM (userfaultfd
 * not allowed: see vm.unprivileged_userfaultfd), or a client error such as
 * -ECONNREFUSED. */
int sdrsa_engine_new(const struct sdrsa_engine_config *cfg, struct sdrsa_engine **ret);
/* Stop the engine, unmap its regions, free its pages on the server. Accepts
 * NULL. Memory registered with sdrsa_engine_manage() must not be touched
 * afterwards. */
void sdrsa_engine_free(struct sdrsa_engine *e);

/* A new region of `size` bytes (rounded up to pages), zero-filled. */
int sdrsa_region_new(struct sdrsa_engine *e, size_t size, struct sdrsa_region **ret);
void *sdrsa_region_addr(const struct sdrsa_region *r);
size_t sdrsa_region_size(const struct sdrsa_region *r);
/* Unmap the region and free its pages locally and on the server. Accepts
 * NULL. */
void sdrsa_region_free(struct sdrsa_region *r);

/* Put existing private anonymous memory (page-aligned, not yet touched, or
 * its resident pages stay unmanaged) under the engine. The caller keeps
 * ownership: its munmap, mremap and madvise are followed. Returns 0,
 * -EINVAL (not page-aligned, not anonymous private) or -EBUSY (already). */
int sdrsa_engine_manage(struct sdrsa_engine *e, void *addr, size_t len);

struct sdrsa_engine_stats {
	uint64_t budget_pages;   /* local budget */
	uint64_t managed_bytes;  /* bytes registered (regions + managed) */
	uint64_t faults_zero;    /* first touch: zero page, no network */
	uint64_t faults_remote;  /* fetched from the server */
	uint64_t faults_refill;  /* refilled from the local staging area */
	uint64_t faults_wp;      /* first write to a clean page (dirty tracking) */
	uint64_t faults_dup;     /* faults already resolved (two threads, one page) */
	uint64_t pages_in;       /* pages fetched, prefetch included */
	uint64_t pages_prefetched;
	uint64_t pages_out;      /* pages sent (dirty at eviction) */
	uint64_t pages_dropped;  /* clean pages evicted without sending */
	uint64_t pages_staged;   /* pages moved to the staging area */
	uint64_t bytes_sent;     /* page bytes sent */
	uint64_t bytes_recv;     /* page bytes received */
	uint64_t resident;       /* pages mapped now */
	uint64_t staged;         /* pages in the staging area now */
	uint64_t remote;         /* pages held only by the server now */
	uint64_t dirty;          /* local pages not matching their stored copy */
	uint64_t pages_freed;    /* remote copies freed (munmap, madvise, ...) */
	uint64_t events;         /* unmap/remap/remove events handled */
	uint64_t retries;        /* network operations retried after reconnect */
	uint64_t writes_predicted; /* read faults installed writable (write expected) */
	uint64_t store_refusals; /* pages the server refused (pool full, quota): kept local */
	/* Fault service time in the engine's thread, all kinds, ns. */
	uint64_t lat_p50_ns, lat_p90_ns, lat_p99_ns, lat_max_ns;
	/* Same, remote faults only. */
	uint64_t remote_p50_ns, remote_p99_ns;
	/* Pool (1 and 1 with a single server). */
	uint64_t servers_total, servers_up;
	uint64_t pages_under_replicated; /* stored with fewer copies than `replicas` now */
	uint64_t pages_rereplicated;     /* copies made again after a server died or drained */
	uint64_t pages_lost;             /* no copy left now (reading one stops the program) */
	/* Pages fetched ahead and evicted without a sign of use (no refill,
	 * write, or stream passing them): prefetch misses, an upper bound. */
	uint64_t prefetch_unused;
	/* Pages fetched that were not the version the engine stored (their
	 * checksum differs from the one kept when it stored them): never
	 * installed; a page the program waits for then stops it. */
	uint64_t pages_mismatched;
	/* Pool: copies read that were not the version stored, replaced by
	 * another copy (counted also when none was left to read). */
	uint64_t copies_bad;
};

int sdrsa_engine_stats(struct sdrsa_engine *e, struct sdrsa_engine_stats *out);

/* Call in the parent once fork() returned, with its result: the engines
 * then know which child to watch, and free the pages kept for it once it
 * has exited or exec'd. Without the call those pages stay on the server
 * until the engine is freed (nothing is ever wrong, only kept). */
void sdrsa_engine_forked(pid_t child);
/* Format stats: one human line (json = 0) or a JSON object (json = 1).
 * Returns the length, as snprintf. */
int sdrsa_engine_format_stats(const struct sdrsa_engine_stats *s, int json, char *buf, size_t n);

#ifdef __cplusplus
}
#endif
#endif
