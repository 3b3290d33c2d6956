/* SPDX-License-Identifier: MIT */
/*
 * Prefetch planning: given the remote faults of a program, which pages to
 * fetch ahead in the same request. Pure (no I/O, no knowledge of memory):
 * the engine, the simulator (src/engine/sim.c) and the unit tests drive the
 * same code.
 *
 * PREFETCH_STRIDE (the default): per region (a managed mapping; the caller
 * numbers them), the stride of the recent remote faults is found by a
 * majority vote over the last PREFETCH_WINDOW deltas (after Leap, ATC'20),
 * each delta taken from the nearest of the region's recent faults so that a
 * stream interleaved with other faults keeps its stride: a stride that holds
 * at least PREFETCH_VOTES votes and more than half of those cast starts a
 * stream (up to PREFETCH_STREAMS per region, e.g. the two inputs of a
 * merge), with a window of PREFETCH_START pages. Usage is learnt without
 * seeing reads (userfaultfd reports none): a fault of the region arriving
 * just past a stream's window means the stream consumed it (the window is
 * reported as used, and the stream's next window is twice as deep, up to
 * the caller's maximum); a window whose stream has not come back after
 * PREFETCH_WINDOW more faults in the region was not needed: the stream is
 * dropped and the vote starts over, so a pattern-less program soon gets no
 * prefetch at all.
 *
 * PREFETCH_STREAM: the engine's first prefetcher, kept for comparison: four
 * streams shared by all regions, a stride seen twice is followed, depth
 * 4 << (hits - 2) up to the maximum, no feedback.
 */
#ifndef SDRSA_ENGINE_PREFETCH_H
#define SDRSA_ENGINE_PREFETCH_H

#include <stddef.h>
#include <stdint.h>

enum prefetch_kind {
	PREFETCH_OFF = 0,
	PREFETCH_STREAM = 1, /* the first prefetcher (comparison) */
	PREFETCH_STRIDE = 2, /* majority stride, per region, adaptive depth */
};

#define PREFETCH_WINDOW 8     /* deltas in the majority vote */
#define PREFETCH_REGIONS 16   /* regions followed at once (least recent replaced) */
#define PREFETCH_STRIDE_MAX 64 /* pages; larger deltas never form a stride */
#define PREFETCH_START 4      /* depth of a new stride's first window */
#define PREFETCH_VOTES 3      /* a stride needs this many equal deltas */
#define PREFETCH_STREAMS 4    /* streams followed at once in one region */

struct prefetch;

/* What to fetch ahead of the fault at page pn: pages pn + stride * i for
 * i = 1..depth (the caller skips those that are not remote), and the window
 * of an earlier plan that this fault showed was used (used_n pages from
 * used_first, step used_stride; used_n = 0: none). */
struct prefetch_plan {
	int64_t stride;
	unsigned depth;
	uint64_t used_first;
	int64_t used_stride;
	unsigned used_n;
};

struct prefetch_stats {
	uint64_t windows;   /* plans with depth > 0 */
	uint64_t confirmed; /* windows later shown used */
	uint64_t broken;    /* windows followed by a fault elsewhere */
};

/* max_depth: at most this many pages per plan (>= 1). */
int prefetch_new(enum prefetch_kind kind, unsigned max_depth, struct prefetch **ret);
void prefetch_free(struct prefetch *pf);
enum prefetch_kind prefetch_kind(const struct prefetch *pf);

/* A remote fault at page pn of region `region`: fill *plan. */
void prefetch_fault(struct prefetch *pf, uint32_t region, uint64_t pn, struct prefetch_plan *plan);
/* After a plan with depth > 0: the last page actually requested (PREFETCH_STREAM
 * expects the page after it next; the other kinds ignore it). */
void prefetch_issued(struct prefetch *pf, uint64_t last_pn);
/* The name of a kind ("off", "stream", "stride") and back (-1: unknown;
 * "on" is an alias of the default, stride). */
const char *prefetch_kind_name(enum prefetch_kind kind);
int prefetch_kind_parse(const char *name);
void prefetch_get_stats(const struct prefetch *pf, struct prefetch_stats *out);

#endif
