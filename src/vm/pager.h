/* SPDX-License-Identifier: MIT */
/*
 * The VM pager: which guest page is where, what to do on a fault, what to
 * evict under the local budget, and the seed's watch mode. It knows nothing
 * of QEMU or Xen: a backend (struct pager_ops) installs, protects, reads and
 * drops guest pages, and the caller feeds it faults. The QEMU backend
 * (agent.c: userfaultfd on QEMU's RAM file) and the Xen backend (xen.c:
 * mem_access events, foreign mappings, reservation changes) share all of
 * this; only the tested QEMU path runs on the project's machines.
 *
 * Pages are numbered 0..npages-1 (the RAM file offset / 4096 for QEMU, the
 * guest frame number for Xen). Each page is in one state:
 *
 *   ZERO     not local and never stored: the next access gets zeros, no I/O
 *   RES      local and mapped in the guest (a policy slot)
 *   STAGED   taken out of the guest, data kept in the pager's staging area:
 *            a second chance, a touch is a local refill that marks it hot
 *   REMOTE   held only by the memory server (key = page * 4096)
 *
 * Flags: DIRTY (local data differs from the stored copy, or from zeros when
 * never stored), STORED (the server holds a copy, stale when DIRTY), WATCH
 * (rsa-app watch follows it: outside the policy, sent away after each
 * access). Pages are installed write-protected unless the fault was a
 * write, so the first write arrives as a WP fault and sets DIRTY; clean
 * pages are dropped at eviction without being sent, and clean never-stored
 * pages go back to ZERO.
 *
 * Eviction of a dirty local page: protect (so a write during the copy waits
 * in a fault instead of being lost), read, put to the server (batched), drop,
 * and only then look at the faults that waited: the page is REMOTE by then
 * and is fetched back. The budget counts RES + STAGED pages. A remote fault
 * that continues a run of consecutive remote faults fetches the next pages
 * of the run with it (installed clean, so unused ones cost no send).
 *
 * A full server (-ENOSPC, -EDQUOT on a put) is not fatal: the refused pages
 * stay local, over the budget, and eviction pauses for a second.
 *
 * Every page fetched back is checked against the checksum of the copy the
 * pager stored: a server that returns an older copy or someone else's data
 * under the page's key stops the guest (-EBADMSG, pager_why()).
 *
 * Not thread-safe: one thread (the agent's event loop) calls everything.
 * Functions return 0 or -errno; an error from the store or the backend is
 * fatal for the VM (the caller stops it): the pager never hands out zeros
 * or stale data instead of a page it cannot get.
 */
#ifndef SDRSA_VM_PAGER_H
#define SDRSA_VM_PAGER_H

#include <stddef.h>
#include <stdint.h>

#include <sdrsa/engine.h>

struct store;

struct pager_ops {
	/* Put 4096 bytes at page pg and let threads waiting there go on; wp:
	 * keep it write-protected so that the next write faults. Returns 0,
	 * -EEXIST when the page is already present (nothing written), -errno. */
	int (*install)(void *be, uint64_t pg, const void *data, int wp);
	/* Write-protect n pages from pg: their content is stable until they
	 * are unprotected or dropped. */
	int (*protect)(void *be, uint64_t pg, uint64_t n);
	/* Remove the write protection of pg and let a waiting writer go on. */
	int (*unprotect)(void *be, uint64_t pg);
	/* Copy out the content of local page pg. */
	int (*read)(void *be, uint64_t pg, void *buf);
	/* Release n pages from pg: the next access faults as missing. */
	int (*drop)(void *be, uint64_t pg, uint64_t n);
	/* Let threads waiting on pg retry (nothing changed). */
	int (*wake)(void *be, uint64_t pg);
};

enum pager_access {
	PAGER_READ = 0,	 /* a missing page was read */
	PAGER_WRITE = 1, /* a missing page was written */
	PAGER_WP = 2,	 /* a write-protected page was written (or, for a
			  * backend that cannot tell, any page was written) */
};

struct pager_config {
	uint64_t npages;       /* guest RAM pages */
	uint64_t budget_pages; /* local budget (RES + STAGED); at least 16 */
	unsigned staging_pct;  /* part of the budget used for staging, 0..50 */
	int fifo;	       /* 1: POLICY_FIFO instead of CLOCK */
	int prefetch;	       /* 1: fetch ahead on sequential remote faults */
	int twoq;	       /* 1: POLICY_2Q (scan-resistant) instead of CLOCK */
	struct store *store;   /* where pages go (not owned) */
	const struct pager_ops *ops;
	void *be; /* backend context for ops */
};

struct pager;

int pager_new(const struct pager_config *cfg, struct pager **ret);
void pager_free(struct pager *p);

/* A page was found present before the pager started (for example a RAM
 * file that already had data): count it as local and dirty. */
int pager_adopt(struct pager *p, uint64_t pg);

/* Serve one fault. Returns 0 or a fatal -errno. */
int pager_fault(struct pager *p, uint64_t pg, enum pager_access kind);

/* Work to do while no fault waits: evict down to the low watermark, keep the
 * staging area filled under pressure, send watched pages back after their
 * settle time. Returns 1 when more work is left, 0 when done, or -errno. */
int pager_background(struct pager *p, uint64_t now_ns);
/* When pager_background() next has timed work (a watched page to send
 * back), in CLOCK_MONOTONIC ns; UINT64_MAX: none. */
uint64_t pager_next_deadline(const struct pager *p);

/* Statistics in the paging engine's format (rsa-app run --stats). */
void pager_stats(const struct pager *p, struct sdrsa_engine_stats *out);
/* Pages in each state now. */
void pager_counts(const struct pager *p, uint64_t *res, uint64_t *staged, uint64_t *remote,
		  uint64_t *dirty);

/* Watch mode (the seed's rsa-app DOMU_NAME MEMORY_ADDRESS). A watch
 * follows one page: every access is reported, the page is fetched back
 * (download_more_ram) and, settle_ns after the access, sent to the server
 * again (upload_some_ram), so that the next access faults too. emit gets
 * each event as one line without newline. gpa is only for the messages.
 * Returns a watch id >= 0, -EBUSY (PAGER_MAX_WATCH already) or -errno. */
#define PAGER_MAX_WATCH 16
typedef void (*pager_emit_fn)(void *ctx, const char *line);
int pager_watch_add(struct pager *p, uint64_t pg, uint64_t gpa, uint64_t settle_ns,
		    pager_emit_fn emit, void *ctx);
/* Stop a watch; the page goes back under the policy (guest unaffected). */
void pager_watch_remove(struct pager *p, int id);

/* Bring every page back into the guest, whatever the budget (a backend
 * that detaches from a guest which runs on, such as Xen's). Returns 0 or
 * -errno. */
int pager_restore_all(struct pager *p);

/* After a fatal -EBADMSG: which page came back from the server different
 * from the copy the pager stored (every fetched page is compared with 32
 * bits of the checksum of that copy); NULL when there is nothing to add. */
const char *pager_why(const struct pager *p);

/* Pages the server refused to take (pool full, quota): they stayed local,
 * over the budget. */
uint64_t pager_refused(const struct pager *p);

/* Free every page the server holds for this pager (at exit). */
int pager_free_remote(struct pager *p, uint64_t *freed);

#endif
