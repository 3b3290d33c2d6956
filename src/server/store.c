/* SPDX-License-Identifier: MIT */
/*
 * Page store; see store.h. Every operation on a page runs under its index
 * shard lock, start to end: lookup, quota and slot accounting, and the copy of
 * the bytes. The pool lock nests inside (shard -> pool); namespace counters
 * are atomics and take no lock.
 *
 * Checksums and zero detection (XXH3 and an OR scan over 4 KiB) run before
 * the lock is taken, so the critical section is a lookup and one memcpy.
 */
#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <sdrsa/protocol.h>

#include "common/util.h"
#include "server/index.h"
#include "server/pool.h"
#include "server/store.h"

struct sdrsa_store {
	struct sdrsa_pool *pool;
	struct sdrsa_index *index;
	struct sdrsa_ns_table *nst;
	uint64_t quota;
	uint64_t max_zero;
	_Atomic uint64_t zero_pages; /* zero pages in all namespaces */
};

int sdrsa_store_new(const struct sdrsa_store_config *cfg, struct sdrsa_store **ret)
{
	struct sdrsa_store *st;
	int rc;

	if (!cfg || !ret || cfg->pool_pages == 0 || cfg->pool_pages > SDRSA_POOL_MAX_PAGES)
		return -EINVAL;
	st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->quota = cfg->quota_pages;
	st->max_zero = cfg->max_zero_pages;
	if (!st->max_zero) {
		st->max_zero = 4 * cfg->pool_pages;
		if (st->max_zero < (1u << 20))
			st->max_zero = 1u << 20;
	}
	rc = sdrsa_pool_new(cfg->pool_pages, cfg->lock, &st->pool);
	if (rc)
		goto out_free;
	rc = sdrsa_index_new(cfg->max_namespaces ? cfg->max_namespaces : SDRSA_NS_MAX_DEFAULT,
			     &st->index);
	if (rc)
		goto out_pool;
	rc = sdrsa_ns_table_new(cfg->max_namespaces, cfg->quota_pages, &st->nst);
	if (rc)
		goto out_index;
	*ret = st;
	return 0;

out_index:
	sdrsa_index_free(st->index);
out_pool:
	sdrsa_pool_free(st->pool);
out_free:
	free(st);
	return rc;
}

void sdrsa_store_free(struct sdrsa_store *st)
{
	if (!st)
		return;
	sdrsa_ns_table_free(st->nst);
	sdrsa_index_free(st->index);
	sdrsa_pool_free(st->pool);
	free(st);
}

int sdrsa_store_open(struct sdrsa_store *st, const char *name, struct sdrsa_ns **ret)
{
	if (!st)
		return -EINVAL;
	return sdrsa_ns_open(st->nst, name, ret);
}

void sdrsa_store_close(struct sdrsa_store *st, struct sdrsa_ns *ns)
{
	if (st)
		sdrsa_ns_close(st->nst, ns);
}

static int zero_charge(struct sdrsa_store *st)
{
	uint64_t old = atomic_fetch_add_explicit(&st->zero_pages, 1, memory_order_relaxed);

	if (old >= st->max_zero) {
		atomic_fetch_sub_explicit(&st->zero_pages, 1, memory_order_relaxed);
		return -ENOSPC;
	}
	return 0;
}

static void zero_uncharge(struct sdrsa_store *st, struct sdrsa_ns *ns)
{
	atomic_fetch_sub_explicit(&st->zero_pages, 1, memory_order_relaxed);
	atomic_fetch_sub_explicit(&ns->zero_pages, 1, memory_order_relaxed);
}

/* Replace the contents of an existing entry. Shard locked. Returns as
 * sdrsa_store_put(), or -EAGAIN: the slot is being sent and no other slot is
 * free right now; unlock, let the send end, and try again. */
static int overwrite(struct sdrsa_store *st, struct sdrsa_ns *ns, struct sdrsa_index_ent *e,
		     const void *page, uint64_t csum, int zero)
{
	uint32_t slot;
	int rc;

	if (zero) {
		if (e->slot == SDRSA_SLOT_ZERO)
			return 1;
		/* Data -> zero: the bucket stays, the slot goes. Counted as a
		 * zero page even over max_zero: it only shrinks memory use. */
		atomic_fetch_add_explicit(&st->zero_pages, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&ns->zero_pages, 1, memory_order_relaxed);
		sdrsa_pool_retire(st->pool, e->slot);
		e->slot = SDRSA_SLOT_ZERO;
		e->csum = 0;
		return 1;
	}
	if (e->slot == SDRSA_SLOT_ZERO) {
		/* Zero -> data needs a slot; without one the zero page stays. */
		rc = sdrsa_pool_alloc(st->pool, &slot);
		if (rc)
			return rc == -ENOSPC && sdrsa_pool_retiring(st->pool) ? -EAGAIN : rc;
		zero_uncharge(st, ns);
		e->slot = slot;
	} else if (sdrsa_pool_pinned(st->pool, e->slot)) {
		/* Another worker is sending the old bytes: the new ones go into
		 * another slot, so that send stays whole (old page, old csum),
		 * and the old slot is released when it ends. */
		rc = sdrsa_pool_alloc(st->pool, &slot);
		if (rc)
			return rc == -ENOSPC ? -EAGAIN : rc;
		sdrsa_pool_retire(st->pool, e->slot);
		e->slot = slot;
	}
	memcpy(sdrsa_pool_page(st->pool, e->slot), page, SDRSA_PAGE_SIZE);
	e->csum = csum;
	return 0;
}

/* How long a put waits for a pinned slot before it gives up (see below). */
#define PIN_WAIT_MAX_MS 1000u

int sdrsa_store_put(struct sdrsa_store *st, struct sdrsa_ns *ns, uint64_t addr, const void *page,
		    uint64_t csum)
{
	struct sdrsa_index_shard *sh;
	struct sdrsa_index_ent *e;
	uint32_t slot = SDRSA_SLOT_ZERO;
	uint64_t h, wait_start_ms = 0;
	unsigned waits = 0;
	int zero, rc;

	if (addr % SDRSA_PAGE_SIZE)
		return -EINVAL;
	if (page && sdrsa_page_csum(page, addr) != csum)
		return -EBADMSG;
	zero = !page || sdrsa_page_is_zero(page);
	h = sdrsa_index_hash(ns->id, addr);
again:
	sh = sdrsa_index_lock(st->index, h);
	e = sdrsa_index_find(sh, h, ns->id, addr);
	if (e) {
		rc = overwrite(st, ns, e, page, csum, zero);
		goto out;
	}
	rc = sdrsa_ns_charge(st->nst, ns);
	if (rc)
		goto out;
	rc = zero ? zero_charge(st) : sdrsa_pool_alloc(st->pool, &slot);
	if (rc == -ENOSPC && !zero && sdrsa_pool_retiring(st->pool))
		rc = -EAGAIN; /* slots being sent come back in a moment */
	if (rc)
		goto out_uncharge;
	rc = sdrsa_index_insert(sh, h, ns->id, addr, &e);
	if (rc)
		goto out_release;
	e->slot = slot;
	if (zero) {
		atomic_fetch_add_explicit(&ns->zero_pages, 1, memory_order_relaxed);
		rc = 1;
	} else {
		memcpy(sdrsa_pool_page(st->pool, slot), page, SDRSA_PAGE_SIZE);
		e->csum = csum;
	}
	goto out;

out_release:
	if (zero)
		atomic_fetch_sub_explicit(&st->zero_pages, 1, memory_order_relaxed);
	else
		sdrsa_pool_release(st->pool, slot);
out_uncharge:
	sdrsa_ns_uncharge(st->nst, ns, 1);
out:
	sdrsa_index_unlock(sh);
	if (rc == -EAGAIN) {
		/* Never wait with the shard lock held: the sender that pins the
		 * slot we wait for may be waiting for this lock (its next page).
		 * A pin lasts one non-blocking send; one that lasts a second is
		 * a bug, reported as a failed put rather than a hung worker. */
		if (!waits++)
			wait_start_ms = sdrsa_now_ms();
		if (waits % 256 || sdrsa_now_ms() - wait_start_ms < PIN_WAIT_MAX_MS) {
			sched_yield();
			goto again;
		}
		rc = -EIO;
	}
	return rc;
}

/*
 * Look a page up under its shard lock and, while the slot is this page's,
 * either copy it out into `copy` or, when `copy` is NULL, pin it (from
 * then until the unpin nobody writes or reuses the slot) and say where it
 * is in *pinned and *slot. Returns as sdrsa_store_get(). (Branching on
 * `copy`, which each caller passes as a constant or not, lets the compiler
 * drop the other branch from each inlined copy.)
 */
static int get_locked(struct sdrsa_store *st, struct sdrsa_ns *ns, uint64_t addr, void *copy,
		      const void **pinned, uint32_t *slot, uint64_t *csum)
{
	struct sdrsa_index_shard *sh;
	struct sdrsa_index_ent *e;
	uint64_t h;
	int rc;

	if (addr % SDRSA_PAGE_SIZE)
		return -EINVAL;
	h = sdrsa_index_hash(ns->id, addr);
	sh = sdrsa_index_lock(st->index, h);
	e = sdrsa_index_find(sh, h, ns->id, addr);
	if (!e) {
		rc = -ENOENT;
	} else if (e->slot == SDRSA_SLOT_ZERO) {
		*csum = 0;
		rc = 1;
	} else {
		if (copy) {
			memcpy(copy, sdrsa_pool_page(st->pool, e->slot), SDRSA_PAGE_SIZE);
		} else {
			sdrsa_pool_pin(st->pool, e->slot);
			*slot = e->slot;
			*pinned = sdrsa_pool_page(st->pool, e->slot);
		}
		*csum = e->csum;
		rc = 0;
	}
	sdrsa_index_unlock(sh);
	return rc;
}

int sdrsa_store_get(struct sdrsa_store *st, struct sdrsa_ns *ns, uint64_t addr, void *page,
		    uint64_t *csum)
{
	return get_locked(st, ns, addr, page, NULL, NULL, csum);
}

int sdrsa_store_get_pinned(struct sdrsa_store *st, struct sdrsa_ns *ns, uint64_t addr,
			   const void **page, uint32_t *slot, uint64_t *csum)
{
	return get_locked(st, ns, addr, NULL, page, slot, csum);
}

void sdrsa_store_unpin(struct sdrsa_store *st, uint32_t slot)
{
	sdrsa_pool_unpin(st->pool, slot);
}

/* Look the page up and prefetch its slot; for_write: with intent to write
 * (a put about to overwrite it), so the line comes in exclusive. */
static void prefetch_slot(struct sdrsa_store *st, struct sdrsa_ns *ns, uint64_t addr, int for_write)
{
	struct sdrsa_index_shard *sh;
	struct sdrsa_index_ent *e;
	uint32_t slot = SDRSA_SLOT_ZERO;
	const uint8_t *p;
	uint64_t h;

	if (addr % SDRSA_PAGE_SIZE)
		return;
	h = sdrsa_index_hash(ns->id, addr);
	sh = sdrsa_index_lock(st->index, h);
	e = sdrsa_index_find(sh, h, ns->id, addr);
	if (e)
		slot = e->slot;
	sdrsa_index_unlock(sh);
	if (slot == SDRSA_SLOT_ZERO)
		return;
	/* Only a cache hint, outside the lock: the get that follows looks the
	 * page up again under the lock and copies from whatever slot it then
	 * has. A slot that changed owner meanwhile costs a wasted prefetch,
	 * never a byte of the new owner's page (nothing is read out here). */
	p = sdrsa_pool_page(st->pool, slot);
	if (for_write)
		for (size_t off = 0; off < SDRSA_PAGE_SIZE; off += 64)
			__builtin_prefetch(p + off, 1, 3);
	else
		for (size_t off = 0; off < SDRSA_PAGE_SIZE; off += 64)
			__builtin_prefetch(p + off, 0, 3);
}

void sdrsa_store_prefetch(struct sdrsa_store *st, struct sdrsa_ns *ns, uint64_t addr)
{
	prefetch_slot(st, ns, addr, 0);
}

void sdrsa_store_prefetch_write(struct sdrsa_store *st, struct sdrsa_ns *ns, uint64_t addr)
{
	prefetch_slot(st, ns, addr, 1);
}

void sdrsa_store_prefetch_index(struct sdrsa_store *st, struct sdrsa_ns *ns, uint64_t addr)
{
	sdrsa_index_prefetch(st->index, sdrsa_index_hash(ns->id, addr), ns->id);
}

/* Release what an entry holds; its bucket is removed by the caller. */
static void release_ent(struct sdrsa_store *st, struct sdrsa_ns *ns,
			const struct sdrsa_index_ent *e)
{
	if (e->slot == SDRSA_SLOT_ZERO)
		zero_uncharge(st, ns);
	else
		sdrsa_pool_retire(st->pool, e->slot);
}

int sdrsa_store_drop(struct sdrsa_store *st, struct sdrsa_ns *ns, uint64_t addr)
{
	struct sdrsa_index_shard *sh;
	struct sdrsa_index_ent *e;
	uint64_t h;
	int rc = 0;

	if (addr % SDRSA_PAGE_SIZE)
		return -EINVAL;
	h = sdrsa_index_hash(ns->id, addr);
	sh = sdrsa_index_lock(st->index, h);
	e = sdrsa_index_find(sh, h, ns->id, addr);
	if (e) {
		release_ent(st, ns, e);
		sdrsa_index_remove(sh, e);
		sdrsa_ns_uncharge(st->nst, ns, 1);
	} else {
		rc = -ENOENT;
	}
	sdrsa_index_unlock(sh);
	return rc;
}

struct drop_all_ctx {
	struct sdrsa_store *st;
	struct sdrsa_ns *ns;
};

static void drop_all_cb(void *userdata, const struct sdrsa_index_ent *e)
{
	struct drop_all_ctx *c = userdata;

	release_ent(c->st, c->ns, e);
	sdrsa_ns_uncharge(c->st->nst, c->ns, 1);
}

uint64_t sdrsa_store_drop_all(struct sdrsa_store *st, struct sdrsa_ns *ns)
{
	struct drop_all_ctx c = {st, ns};

	/* A fast exit for the common "start clean" call of a new client. */
	if (!atomic_load_explicit(&ns->pages, memory_order_relaxed))
		return 0;
	/* Visits the sub-tables of this namespace only (index.h): the cost is
	 * that of its own pages, whatever the other namespaces hold. */
	return sdrsa_index_remove_ns(st->index, ns->id, drop_all_cb, &c);
}

void sdrsa_store_counts(struct sdrsa_store *st, struct sdrsa_store_counts *out)
{
	out->pool_pages = sdrsa_pool_pages(st->pool);
	out->used_pages = sdrsa_pool_used(st->pool);
	out->zero_pages = atomic_load_explicit(&st->zero_pages, memory_order_relaxed);
	out->namespaces = sdrsa_ns_nonempty(st->nst);
}

void sdrsa_store_index_usage(struct sdrsa_store *st, struct sdrsa_index_usage *out)
{
	sdrsa_index_usage(st->index, out);
}

uint64_t sdrsa_store_quota(const struct sdrsa_store *st)
{
	return st->quota;
}

void sdrsa_store_foreach_ns(struct sdrsa_store *st,
			    void (*cb)(void *userdata, const struct sdrsa_ns *ns), void *userdata)
{
	sdrsa_ns_foreach(st->nst, cb, userdata);
}
