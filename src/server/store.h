/* SPDX-License-Identifier: MIT */
/*
 * The page store: what a memory server does with pages, without sockets.
 * It joins the pool (slots), the index ((namespace, addr) -> slot) and the
 * namespace table (names, quotas), and is what tests/unit/test_store.c tests.
 *
 * Rules it keeps:
 *  - pages are keyed by (namespace, address): one namespace can never see,
 *    replace or free another's pages;
 *  - an all-zero page takes no slot;
 *  - a new page is refused with -EDQUOT when its namespace is at its quota and
 *    with -ENOSPC when the pool is full; nothing stored is ever dropped or
 *    replaced to make room; replacing a page reuses its slot (unless it is
 *    being sent: then the new data takes another slot, waiting for one if
 *    the pool is full);
 *  - the client's page checksum is checked on put, stored with the page and
 *    returned unchanged on get (end to end);
 *  - page bytes are copied in and out under the index shard lock, so a get
 *    never sees a slot that was freed and reused meanwhile; a get that sends
 *    straight from the slot pins it instead (sdrsa_store_get_pinned()): a
 *    pinned slot is never reused or written until unpinned; a put that
 *    replaces a pinned page writes into a new slot.
 *
 * Every function is thread-safe. Namespaces come from sdrsa_store_open() and
 * stay valid until sdrsa_store_free().
 */
#ifndef SDRSA_SERVER_STORE_H
#define SDRSA_SERVER_STORE_H

#include <stdint.h>

#include "server/index.h"
#include "server/ns.h"

struct sdrsa_store;

struct sdrsa_store_config {
	uint64_t pool_pages;  /* slots; > 0 */
	int lock;	      /* mlock the pool */
	uint64_t quota_pages; /* per namespace, data + zero pages; 0: none */
	/* All-zero pages take no slot but an index bucket each; this bounds
	 * them. 0: max(4 x pool_pages, 2^20). */
	uint64_t max_zero_pages;
	unsigned max_namespaces; /* 0: SDRSA_NS_MAX_DEFAULT; at most 2^20 */
};

/* Returns 0, -EINVAL, -ENOMEM, or an error of sdrsa_pool_new() (-EPERM). */
int sdrsa_store_new(const struct sdrsa_store_config *cfg, struct sdrsa_store **ret);
void sdrsa_store_free(struct sdrsa_store *st);

/* Bind a session to the namespace of `name` (created if new). Returns 0,
 * -EINVAL or -ENOSPC (namespace table full). Pair with sdrsa_store_close(). */
int sdrsa_store_open(struct sdrsa_store *st, const char *name, struct sdrsa_ns **ret);
void sdrsa_store_close(struct sdrsa_store *st, struct sdrsa_ns *ns);

/*
 * Store a page. `page` is SDRSA_PAGE_SIZE bytes with `csum` its
 * sdrsa_page_csum(), or NULL for a page the client marked all-zero (csum is
 * then ignored). Returns 0 (stored in a slot), 1 (stored as a zero page),
 * -EINVAL (address not page-aligned), -EBADMSG (csum does not match the
 * data; nothing changed), -EDQUOT, -ENOSPC, -ENOMEM (index could not grow), or
 * -EIO (a slot it waited for stayed pinned for a second: a bug).
 * May wait (unlocked) for a pinned slot when the pool has no other free slot.
 */
int sdrsa_store_put(struct sdrsa_store *st, struct sdrsa_ns *ns, uint64_t addr, const void *page,
		    uint64_t csum);
/*
 * Fetch a page. Returns 0 with the data copied into `page` and its stored
 * checksum in *csum; 1 for a zero page (`page` untouched, *csum = 0);
 * -ENOENT when nothing is stored there; -EINVAL (misaligned).
 */
int sdrsa_store_get(struct sdrsa_store *st, struct sdrsa_ns *ns, uint64_t addr, void *page,
		    uint64_t *csum);
/*
 * Fetch a page without copying it: returns 0 with *page pointing at its slot
 * (pinned: nobody reuses or writes that slot until sdrsa_store_unpin(st,
 * *slot)) and its stored checksum in *csum; 1 for a zero page (nothing
 * pinned, *csum = 0); -ENOENT; -EINVAL. Unpin soon and take no other store
 * call in between that may wait (put): for one send of the bytes.
 */
int sdrsa_store_get_pinned(struct sdrsa_store *st, struct sdrsa_ns *ns, uint64_t addr,
			   const void **page, uint32_t *slot, uint64_t *csum);
void sdrsa_store_unpin(struct sdrsa_store *st, uint32_t slot);
/* Hint that the page at addr is about to be fetched: looks up its slot and
 * prefetches its bytes into the cache. Reads nothing out; no result. */
void sdrsa_store_prefetch(struct sdrsa_store *st, struct sdrsa_ns *ns, uint64_t addr);
/* The same for a page about to be overwritten by a put (prefetch for write;
 * nothing happens for a page not stored yet). */
void sdrsa_store_prefetch_write(struct sdrsa_store *st, struct sdrsa_ns *ns, uint64_t addr);
/* An earlier, cheaper hint that takes no lock: bring in the index bucket of
 * addr, so that the lookups of the two calls above and of the get or put hit
 * the cache. Call it for every page of a frame first. */
void sdrsa_store_prefetch_index(struct sdrsa_store *st, struct sdrsa_ns *ns, uint64_t addr);
/* Drop a page: 0, -ENOENT, -EINVAL. */
int sdrsa_store_drop(struct sdrsa_store *st, struct sdrsa_ns *ns, uint64_t addr);
/* Drop every page of the namespace; returns how many. Costs in proportion to
 * the pages of this namespace, not to what the others hold. */
uint64_t sdrsa_store_drop_all(struct sdrsa_store *st, struct sdrsa_ns *ns);

struct sdrsa_store_counts {
	uint64_t pool_pages; /* slots */
	uint64_t used_pages; /* slots holding data */
	uint64_t zero_pages; /* zero pages (no slot) */
	uint64_t namespaces; /* namespaces holding at least one page */
};
/* Lock-free (atomics): fine for STATS. */
void sdrsa_store_counts(struct sdrsa_store *st, struct sdrsa_store_counts *out);
/* Index size and the FREE_ALL cost meter (see index.h). Takes every shard lock
 * in turn: for dumps and tests, not for a request path. */
void sdrsa_store_index_usage(struct sdrsa_store *st, struct sdrsa_index_usage *out);
uint64_t sdrsa_store_quota(const struct sdrsa_store *st);

/* Call cb for each namespace (see sdrsa_ns_foreach()). */
void sdrsa_store_foreach_ns(struct sdrsa_store *st,
			    void (*cb)(void *userdata, const struct sdrsa_ns *ns), void *userdata);

#endif
