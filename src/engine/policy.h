/* SPDX-License-Identifier: MIT */
/*
 * Eviction policy: which local pages to take out of the mapping (stage) and
 * which staged pages to send to the memory server (evict).
 *
 * userfaultfd only reports the first touch of a missing page and the first
 * write to a write-protected one; reads of resident pages are invisible. So
 * recency is learnt through a second chance: a candidate is first *staged*
 * (moved out of the program's mapping into a local staging area, data kept),
 * and a touch while staged is a cheap local refill that marks the page hot.
 * A hot page survives the next sweep (its bit is cleared instead); a page
 * that sits in staging untouched until it is the oldest there is evicted.
 * With POLICY_CLOCK that is CLOCK (second-chance FIFO) over resident pages
 * followed by a FIFO inactive list; POLICY_FIFO ignores the hot bit and is
 * the baseline that Umap and FluidMem implement (eviction in fault order).
 *
 * POLICY_2Q (scan-resistant, recency and frequency; 2Q of Johnson and
 * Shasha, VLDB'94, on the engine's signals): a page seen once sits on a
 * probation list (2Q's A1in) and is staged in fault order; a page with
 * evidence of reuse, refilled from staging or fetched back within half a
 * budget of evictions after it left (policy_on_fault_hot with hot 3: the
 * engine's eviction clock is 2Q's A1out ghost list), moves to the
 * protected set (2Q's Am). Victims come from probation while it holds
 * more than 1/16 of the resident pages, else from the protected set,
 * least frequent first: every sign of use the policy is given (fault,
 * refill, first write) counts in a small frequency sketch keyed by cookie
 * (TinyLFU's count-min sketch, halved every 8 events per slot, so it
 * survives eviction and forgets slowly), the protected pages sit in
 * buckets by their estimate, and within a bucket oldest first, each
 * further refill or first write buying a lap as in CLOCK. A one-pass
 * scan of cold data stays on probation and leaves; the protected set
 * survives it.
 *
 * The module knows nothing about memory: pages are opaque 64-bit cookies (the
 * engine uses the page address) in slots numbered from 0. Not thread-safe;
 * the engine calls it under its lock. No allocation on the hot path except
 * when the slot table (and with it the sketch, 16 bytes per slot under
 * POLICY_2Q) doubles.
 */
#ifndef SDRSA_ENGINE_POLICY_H
#define SDRSA_ENGINE_POLICY_H

#include <stddef.h>
#include <stdint.h>

enum policy_kind {
	POLICY_FIFO = 0,  /* evict in fault order, no second chance */
	POLICY_CLOCK = 1, /* second chance for pages seen hot */
	POLICY_2Q = 2,    /* probation FIFO + protected LFU, scan-resistant */
};

/* "fifo", "clock", "2q" and back (-1: unknown). */
const char *policy_kind_name(enum policy_kind kind);
int policy_kind_parse(const char *name);

#define POLICY_NO_SLOT UINT32_MAX

struct policy;

int policy_new(enum policy_kind kind, struct policy **ret);
void policy_free(struct policy *p);

/* Most laps of the clock a page survives: each sign of use (refill, first
 * write, a quick return after eviction) buys one, up to this many. */
#define POLICY_HOT_MAX 3

/* A page became resident after a miss (zero fill or remote fetch). Returns
 * its slot or -ENOMEM. */
int64_t policy_on_fault(struct policy *p, uint64_t cookie);
/* The same, with `hot` laps of protection already (at most POLICY_HOT_MAX):
 * the engine gives them to a page fetched back soon after its eviction (it
 * would have stayed with a somewhat larger budget: ARC's ghost hit). */
int64_t policy_on_fault_hot(struct policy *p, uint64_t cookie, unsigned hot);
/* A page fetched ahead became resident: the same, but not counted as a use
 * in POLICY_2Q's frequency sketch (nothing has touched it yet; a stream
 * that then reads it once shows no reuse). A sequential scan prefetches
 * nearly every page, and counting them cost about 0.1 us a page there. */
int64_t policy_on_prefetch(struct policy *p, uint64_t cookie, unsigned hot);
/* A staged page was touched: resident again, and hot. */
void policy_on_refill(struct policy *p, uint32_t slot);
/* A resident page was seen in use (its first write after a clean fill). */
void policy_on_access(struct policy *p, uint32_t slot);
/* A staging attempt failed: the page is resident again (not hot). */
void policy_requeue(struct policy *p, uint32_t slot);
/* A page picked for eviction could not be evicted (the server refused it):
 * staged again, at the old end of the staged list. */
void policy_unevict(struct policy *p, uint32_t slot);
/* Forget a page (the program unmapped it, or it was evicted). */
void policy_remove(struct policy *p, uint32_t slot);
/* The page moved (mremap): new cookie for the same slot. */
void policy_set_cookie(struct policy *p, uint32_t slot, uint64_t cookie);

/* Choose up to n resident pages to stage; they are now counted as staged.
 * Returns the number chosen. */
size_t policy_pick_stage(struct policy *p, uint32_t *slots, uint64_t *cookies, size_t n);
/* Choose up to n pages to evict: staged pages oldest first, then (only if
 * none are staged) resident ones as policy_pick_stage would. The slots stay
 * allocated until policy_remove(). Returns the number chosen. */
size_t policy_pick_evict(struct policy *p, uint32_t *slots, uint64_t *cookies, size_t n);

size_t policy_resident(const struct policy *p);
size_t policy_staged(const struct policy *p);
/* Is this slot on the staged list? */
int policy_is_staged(const struct policy *p, uint32_t slot);

#endif
