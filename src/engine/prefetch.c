// SPDX-License-Identifier: MIT
/* Prefetch planning; see prefetch.h for the two algorithms. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine/prefetch.h"

#define NSTREAMS 4

/* PREFETCH_STREAM: the next page expected and its stride. */
struct stream {
	uint64_t next;
	int64_t stride; /* pages; 0: not established */
	uint32_t hits;  /* consecutive matches */
	uint64_t stamp; /* last use, for replacement */
};

/* PREFETCH_STRIDE: a window fetched ahead, not yet confirmed or broken. */
struct window {
	uint64_t first;  /* its first page */
	int64_t stride;
	unsigned n;      /* pages; 0: slot free */
	unsigned depth;  /* the stream's depth: the next window's size */
	unsigned age;    /* faults elsewhere in the region since */
};

/* PREFETCH_STRIDE: one region's recent faults and its streams. */
struct region {
	uint32_t id;
	int used;        /* slot in use */
	uint64_t stamp;  /* last fault, for replacement */
	uint64_t recent[PREFETCH_WINDOW]; /* pages of the last faults */
	unsigned nrecent, rpos;
	int64_t delta[PREFETCH_WINDOW]; /* NO_DELTA: no recent fault near */
	unsigned ndelta, pos;
	struct window win[PREFETCH_STREAMS];
};

#define NO_DELTA INT64_MIN

struct prefetch {
	enum prefetch_kind kind;
	unsigned max_depth;
	uint64_t clock;
	struct stream streams[NSTREAMS];
	struct region regions[PREFETCH_REGIONS];
	struct prefetch_stats st;
};

int prefetch_new(enum prefetch_kind kind, unsigned max_depth, struct prefetch **ret)
{
	if (max_depth < 1 || kind > PREFETCH_STRIDE)
		return -EINVAL;
	struct prefetch *pf = calloc(1, sizeof(*pf));
	if (!pf)
		return -ENOMEM;
	pf->kind = kind;
	pf->max_depth = max_depth;
	*ret = pf;
	return 0;
}

void prefetch_free(struct prefetch *pf)
{
	free(pf);
}

enum prefetch_kind prefetch_kind(const struct prefetch *pf)
{
	return pf->kind;
}

static unsigned umin(unsigned a, unsigned b)
{
	return a < b ? a : b;
}

/* The first prefetcher, unchanged: see prefetch.h. */
static void stream_fault(struct prefetch *pf, uint64_t pn, struct prefetch_plan *plan)
{
	struct stream *best = NULL, *lru = &pf->streams[0];
	for (int i = 0; i < NSTREAMS; i++) {
		struct stream *s = &pf->streams[i];
		if (s->stride && s->next == pn) {
			best = s;
			break;
		}
		if (s->stamp < lru->stamp)
			lru = s;
	}
	if (best) {
		best->hits++;
	} else {
		/* A new stride from the closest recent stream. */
		for (int i = 0; i < NSTREAMS && !best; i++) {
			struct stream *s = &pf->streams[i];
			int64_t d = (int64_t)(pn - (s->next - (uint64_t)s->stride));
			if (s->stamp && d != 0 && d >= -16 && d <= 16) {
				best = s;
				best->stride = d;
				best->hits = 1;
			}
		}
		if (!best) {
			best = lru;
			best->stride = 0;
			best->hits = 0;
		}
	}
	best->stamp = pf->clock;
	best->next = pn + (uint64_t)best->stride;
	plan->stride = best->stride;
	if (best->hits < 2 || !best->stride)
		return;
	unsigned depth = 4u << umin(best->hits - 2, 5u);
	plan->depth = umin(depth, pf->max_depth);
}

void prefetch_issued(struct prefetch *pf, uint64_t last_pn)
{
	if (pf->kind != PREFETCH_STREAM)
		return;
	for (int i = 0; i < NSTREAMS; i++) {
		struct stream *s = &pf->streams[i];
		if (s->stamp == pf->clock) {
			s->next = last_pn + (uint64_t)s->stride;
			return;
		}
	}
}

static struct region *region_get(struct prefetch *pf, uint32_t id)
{
	struct region *lru = &pf->regions[0];
	for (int i = 0; i < PREFETCH_REGIONS; i++) {
		struct region *r = &pf->regions[i];
		if (r->used && r->id == id)
			return r;
		if (!r->used || (lru->used && r->stamp < lru->stamp))
			lru = r;
	}
	memset(lru, 0, sizeof(*lru));
	lru->used = 1;
	lru->id = id;
	return lru;
}

static void push_delta(struct region *r, int64_t d)
{
	r->delta[r->pos] = d;
	r->pos = (r->pos + 1) % PREFETCH_WINDOW;
	if (r->ndelta < PREFETCH_WINDOW)
		r->ndelta++;
}

/* The delta from the nearest of the region's recent faults (not the last
 * one only: a stream interleaved with other faults keeps its stride), or
 * NO_DELTA when none is within PREFETCH_STRIDE_MAX. */
static int64_t nearest_delta(const struct region *r, uint64_t pn)
{
	int64_t best = NO_DELTA;
	for (unsigned i = 0; i < r->nrecent; i++) {
		int64_t d = (int64_t)(pn - r->recent[i]);
		if (d != 0 && d <= PREFETCH_STRIDE_MAX && d >= -PREFETCH_STRIDE_MAX &&
		    (best == NO_DELTA || (d < 0 ? -d : d) < (best < 0 ? -best : best)))
			best = d;
	}
	return best;
}

/* The stride with a majority of the recent deltas that had a near fault
 * (Boyer-Moore vote, then a count), at least PREFETCH_VOTES of them and a
 * quarter of the window; or 0. */
static int64_t majority(const struct region *r)
{
	int64_t cand = 0;
	unsigned c = 0, votes = 0;
	for (unsigned i = 0; i < r->ndelta; i++) {
		if (r->delta[i] == NO_DELTA)
			continue;
		votes++;
		if (c == 0) {
			cand = r->delta[i];
			c = 1;
		} else if (r->delta[i] == cand) {
			c++;
		} else {
			c--;
		}
	}
	unsigned n = 0;
	for (unsigned i = 0; i < r->ndelta; i++)
		n += r->delta[i] == cand;
	if (votes == 0 || n < PREFETCH_VOTES || 2 * n <= votes || 4 * n < r->ndelta)
		return 0;
	return cand;
}

/* Is pn on the window's path, at most one window past its end? (Pages of
 * the window that were already local do not fault, so the stream may come
 * back a little further on.) */
static int continues(const struct window *w, uint64_t pn)
{
	int64_t off = (int64_t)(pn - w->first);
	if (off % w->stride)
		return 0;
	int64_t step = off / w->stride; /* 0 = the window's first page */
	return step >= (int64_t)w->n && step <= 2 * (int64_t)w->n;
}

static void plan_window(struct prefetch *pf, struct window *w, uint64_t pn, int64_t stride,
			unsigned depth, struct prefetch_plan *plan)
{
	plan->stride = stride;
	plan->depth = umin(depth, pf->max_depth);
	w->first = pn + (uint64_t)stride;
	w->stride = stride;
	w->n = plan->depth;
	w->depth = plan->depth;
	w->age = 0;
	pf->st.windows++;
}

static void stride_fault(struct prefetch *pf, uint32_t region, uint64_t pn,
			 struct prefetch_plan *plan)
{
	struct region *r = region_get(pf, region);
	r->stamp = pf->clock;
	struct window *w = NULL;
	for (int i = 0; i < PREFETCH_STREAMS && !w; i++)
		if (r->win[i].n && continues(&r->win[i], pn))
			w = &r->win[i];
	if (w) {
		/* The stream came back past its window: used. Follow it,
		 * twice as deep. */
		plan->used_first = w->first;
		plan->used_stride = w->stride;
		plan->used_n = w->n;
		pf->st.confirmed++;
		plan_window(pf, w, pn, w->stride, umin(w->depth * 2, pf->max_depth), plan);
	} else {
		struct window *oldest = &r->win[0];
		for (int i = 0; i < PREFETCH_STREAMS; i++) {
			struct window *x = &r->win[i];
			if (x->n && ++x->age > PREFETCH_WINDOW) {
				/* The stream did not come back: the window was
				 * not needed. The vote starts over. */
				pf->st.broken++;
				x->n = 0;
				r->ndelta = r->pos = 0;
			}
			if (!x->n || (oldest->n && x->age > oldest->age))
				oldest = x;
		}
		if (r->nrecent)
			push_delta(r, nearest_delta(r, pn));
		int64_t stride = majority(r);
		if (stride) {
			/* A new stream: its votes are spent, so that the
			 * faults around it cannot start another on them. */
			r->ndelta = r->pos = 0;
			plan_window(pf, oldest, pn, stride, PREFETCH_START, plan);
		}
	}
	r->recent[r->rpos] = pn;
	r->rpos = (r->rpos + 1) % PREFETCH_WINDOW;
	if (r->nrecent < PREFETCH_WINDOW)
		r->nrecent++;
}

void prefetch_fault(struct prefetch *pf, uint32_t region, uint64_t pn, struct prefetch_plan *plan)
{
	memset(plan, 0, sizeof(*plan));
	pf->clock++;
	switch (pf->kind) {
	case PREFETCH_STREAM:
		stream_fault(pf, pn, plan);
		if (plan->depth)
			pf->st.windows++;
		break;
	case PREFETCH_STRIDE:
		stride_fault(pf, region, pn, plan);
		break;
	default:
		break;
	}
}

static const char *const kind_names[] = {"off", "stream", "stride"};

const char *prefetch_kind_name(enum prefetch_kind kind)
{
	return (unsigned)kind < 3 ? kind_names[kind] : "?";
}

int prefetch_kind_parse(const char *name)
{
	for (int i = 0; i < 3; i++)
		if (!strcmp(name, kind_names[i]))
			return i;
	if (!strcmp(name, "on"))
		return PREFETCH_STRIDE;
	return -1;
}

void prefetch_get_stats(const struct prefetch *pf, struct prefetch_stats *out)
{
	*out = pf->st;
}
