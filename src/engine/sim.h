/* SPDX-License-Identifier: MIT */
/*
 * Trace simulator: replays a trace (trace.h) through a model of the engine
 * driving the real policy and prefetch modules, and counts what the engine
 * would do. Deterministic: the same trace and config give the same result.
 *
 * The model follows engine.c: a local budget of resident + staged pages; a
 * staging area of staging_pct of it (FIFO: none beyond one batch) topped up
 * by the policy and evicted from its old end in batches of budget/16 (at
 * most 64); a fault on a staged page is a local refill (the policy's only
 * recency signal); a remote fault asks the prefetcher and fetches ahead;
 * a page fetched back soon after its eviction is a ghost hit. Reads of
 * resident pages are invisible to the policy, as in the engine; the model
 * uses them only to count which prefetched pages were used.
 */
#ifndef SDRSA_ENGINE_SIM_H
#define SDRSA_ENGINE_SIM_H

#include <stdint.h>

#include "engine/policy.h"
#include "engine/prefetch.h"
#include "engine/trace.h"

struct sim_config {
	uint64_t local_pages;  /* budget, >= 64 */
	unsigned staging_pct;  /* 0: 12 as the engine */
	enum policy_kind policy;
	enum prefetch_kind prefetch;
	unsigned prefetch_max; /* 0: 128 as the engine */
	/* Pages [watch_first, watch_first + watch_count) (of any region) are
	 * "the hot set": their hit ratio is counted apart. */
	uint64_t watch_first, watch_count;
	/* Count only records from this index on: the earlier ones warm the
	 * model up (one phase of a longer trace). */
	uint64_t count_from;
};

struct sim_result {
	uint64_t accesses;      /* records replayed */
	uint64_t faults_zero;   /* first touches */
	uint64_t faults_remote; /* fetches the program waited for */
	uint64_t refills;       /* local refills from staging */
	uint64_t faults_wp;
	uint64_t pages_in;      /* pages fetched, prefetch included */
	uint64_t prefetched;    /* pages fetched ahead */
	uint64_t prefetch_used; /* ... and touched before eviction */
	uint64_t prefetch_unused; /* ... evicted untouched (or never touched) */
	uint64_t pages_out;     /* pages sent */
	uint64_t watch_accesses, watch_remote; /* hot set: accesses after its first touch, remote faults */
};

/* Returns 0, -EINVAL (bad config) or -ENOMEM. */
int sim_run(const struct trace *t, const struct sim_config *cfg, struct sim_result *res);

/*
 * Reference caches that see every access, which the engine cannot (reads of
 * mapped pages are invisible to it): how far a policy is from what any
 * policy could do. SIM_REF_LRU is an exact LRU; SIM_REF_OPT is Belady's MIN
 * (evict the page used again furthest in the future: the fewest misses
 * possible, knowing the future). Both hold cfg->local_pages pages and fetch
 * on demand (no prefetch); *misses counts accesses, from cfg->count_from
 * on, to a page touched before and not held (as remote faults count, first
 * touches excluded). Only for traces of every access (TRACE_F_ACCESSES).
 * Returns 0, -EINVAL (a trace of faults, or a budget under 64 pages) or
 * -ENOMEM.
 */
enum sim_ref { SIM_REF_LRU, SIM_REF_OPT };
int sim_reference(const struct trace *t, const struct sim_config *cfg, enum sim_ref ref,
		  uint64_t *misses);

/* Derived figures, 0..1. */
double sim_hit_ratio(const struct sim_result *r);        /* non-first accesses served locally */
double sim_watch_hit_ratio(const struct sim_result *r);
double sim_avoided(const struct sim_result *r);          /* misses served by prefetch / all misses */
double sim_prefetch_accuracy(const struct sim_result *r); /* used / prefetched */

#endif
