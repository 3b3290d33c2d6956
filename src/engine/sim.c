// SPDX-License-Identifier: MIT
/* The trace simulator; the model is described in sim.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine/sim.h"

enum { S_NONE, S_RES, S_STG, S_REMOTE };
#define F_DIRTY 0x01
#define F_STORED 0x02
#define F_AHEAD 0x04 /* fetched ahead, not touched yet */

#define BATCH_MAX 64u

struct page {
	uint64_t pn;
	uint32_t pslot;
	uint32_t evstamp;
	uint8_t state, flags;
};

struct sim {
	const struct sim_config *cfg;
	struct sim_result *r;
	struct policy *pol;
	struct prefetch *pf;
	struct page *pages; /* cookies are indexes in this array */
	size_t npages, cap;
	uint32_t *ht; /* open addressing: index + 1, 0 empty */
	size_t htcap;
	uint64_t budget, nres, nstg;
	uint32_t stage_target, batch, evict_clock;
};

static size_t hslot(const struct sim *s, uint64_t pn)
{
	return (size_t)((pn * 0x9E3779B97F4A7C15ull) >> 17) & (s->htcap - 1);
}

static int ht_grow(struct sim *s)
{
	size_t ncap = s->htcap ? s->htcap * 2 : 1 << 16;
	uint32_t *nt = calloc(ncap, sizeof(*nt));
	if (!nt)
		return -ENOMEM;
	free(s->ht);
	s->ht = nt;
	s->htcap = ncap;
	for (size_t i = 0; i < s->npages; i++) {
		size_t h = hslot(s, s->pages[i].pn);
		while (s->ht[h])
			h = (h + 1) & (s->htcap - 1);
		s->ht[h] = (uint32_t)i + 1;
	}
	return 0;
}

/* The page's entry; created (S_NONE) when make is set. NULL: absent, or
 * out of memory when make is set. */
static struct page *page_get(struct sim *s, uint64_t pn, int make)
{
	size_t h = hslot(s, pn);
	while (s->ht[h]) {
		struct page *p = &s->pages[s->ht[h] - 1];
		if (p->pn == pn)
			return p;
		h = (h + 1) & (s->htcap - 1);
	}
	if (!make)
		return NULL;
	if (s->npages == s->cap) {
		size_t ncap = s->cap ? s->cap * 2 : 1 << 14;
		struct page *np = realloc(s->pages, ncap * sizeof(*np));
		if (!np)
			return NULL;
		s->pages = np;
		s->cap = ncap;
	}
	if (2 * (s->npages + 1) > s->htcap) {
		if (ht_grow(s) < 0)
			return NULL;
		h = hslot(s, pn);
		while (s->ht[h])
			h = (h + 1) & (s->htcap - 1);
	}
	struct page *p = &s->pages[s->npages];
	memset(p, 0, sizeof(*p));
	p->pn = pn;
	s->ht[h] = (uint32_t)++s->npages;
	return p;
}

/* `ahead`: fetched ahead, not a use for the policy (as engine.c). */
static int become_resident(struct sim *s, struct page *p, int dirty, int ahead)
{
	unsigned hot = 0;
	if (p->state == S_REMOTE) {
		/* As engine.c: back soon after its eviction. */
		uint64_t dist = (uint32_t)(s->evict_clock - p->evstamp);
		if (dist < s->budget / 2)
			hot = 3;
		else if (dist < s->budget)
			hot = 2;
		else if (dist < 2 * s->budget)
			hot = 1;
	}
	uint64_t cookie = (uint64_t)(p - s->pages);
	int64_t slot = ahead ? policy_on_prefetch(s->pol, cookie, hot)
			     : policy_on_fault_hot(s->pol, cookie, hot);
	if (slot < 0)
		return -ENOMEM;
	p->pslot = (uint32_t)slot;
	p->state = S_RES;
	if (dirty)
		p->flags |= F_DIRTY;
	s->nres++;
	return 0;
}

static void evict_some(struct sim *s)
{
	uint32_t slots[BATCH_MAX];
	uint64_t ck[BATCH_MAX];
	size_t n = s->batch < s->nstg ? s->batch : s->nstg;
	size_t k = policy_pick_evict(s->pol, slots, ck, n);
	for (size_t i = 0; i < k; i++) {
		struct page *p = &s->pages[ck[i]];
		if (p->state == S_RES)
			s->nres--; /* taken straight from resident (nothing staged) */
		else
			s->nstg--;
		if (p->flags & F_AHEAD) {
			s->r->prefetch_unused++;
			p->flags &= (uint8_t)~F_AHEAD;
		}
		policy_remove(s->pol, slots[i]);
		if (p->flags & F_DIRTY) {
			s->r->pages_out++;
			p->flags = F_STORED;
		}
		if (p->flags & F_STORED) {
			p->state = S_REMOTE;
			p->evstamp = ++s->evict_clock;
		} else {
			p->state = S_NONE;
		}
	}
}

static void make_room(struct sim *s)
{
	uint32_t slots[BATCH_MAX];
	uint64_t ck[BATCH_MAX];
	while (s->nres + s->nstg > s->budget) {
		while (s->nstg < s->stage_target && s->nres > 0) {
			size_t want = s->stage_target - s->nstg;
			size_t k = policy_pick_stage(s->pol, slots, ck, want < BATCH_MAX ? want : BATCH_MAX);
			if (!k)
				break;
			for (size_t i = 0; i < k; i++)
				s->pages[ck[i]].state = S_STG;
			s->nres -= k;
			s->nstg += k;
		}
		if (s->nres + s->nstg <= s->budget || !s->nstg)
			break;
		evict_some(s);
	}
}

static int fault_remote(struct sim *s, struct page *p, uint32_t region, int write)
{
	struct prefetch_plan plan;
	uint64_t pn = p->pn;
	size_t idx = (size_t)(p - s->pages);
	prefetch_fault(s->pf, region, pn, &plan);
	s->r->faults_remote++;
	s->r->pages_in++;
	/* The faulting page first (the engine installs it first). */
	int r = become_resident(s, p, write, 0);
	uint64_t last = pn;
	for (unsigned i = 1; r == 0 && i <= plan.depth; i++) {
		uint64_t q = pn + (uint64_t)(plan.stride * (int64_t)i);
		struct page *qp = page_get(s, q, 0);
		if (!qp || qp->state != S_REMOTE)
			continue;
		r = become_resident(s, qp, write, 1);
		qp->flags |= F_AHEAD;
		s->r->pages_in++;
		s->r->prefetched++;
		last = q;
		p = &s->pages[idx];
	}
	if (last != pn)
		prefetch_issued(s->pf, last);
	return r;
}

static int access(struct sim *s, const struct trace_rec *rec)
{
	struct page *p = page_get(s, rec->page, 1);
	if (!p)
		return -ENOMEM;
	int write = rec->type != TRACE_READ;
	int watched = rec->page - s->cfg->watch_first < s->cfg->watch_count;
	int r = 0;
	s->r->accesses++;
	if (p->flags & F_AHEAD && (p->state == S_RES || p->state == S_STG)) {
		p->flags &= (uint8_t)~F_AHEAD;
		s->r->prefetch_used++;
	}
	if (watched && p->state != S_NONE)
		s->r->watch_accesses++;
	switch (p->state) {
	case S_RES:
		if (write && !(p->flags & F_DIRTY)) {
			p->flags |= F_DIRTY;
			policy_on_access(s->pol, p->pslot);
			s->r->faults_wp++;
		} else {
			return 0; /* invisible */
		}
		break;
	case S_STG:
		policy_on_refill(s->pol, p->pslot);
		p->state = S_RES;
		if (write)
			p->flags |= F_DIRTY;
		s->nstg--;
		s->nres++;
		s->r->refills++;
		break;
	case S_REMOTE:
		if (watched)
			s->r->watch_remote++;
		r = fault_remote(s, p, rec->region, write);
		break;
	default:
		s->r->faults_zero++;
		r = become_resident(s, p, write, 0);
		break;
	}
	if (r == 0)
		make_room(s);
	return r;
}

/* r -= b, counter by counter (what happened after b was taken). */
static void result_sub(struct sim_result *r, const struct sim_result *b)
{
	r->accesses -= b->accesses;
	r->faults_zero -= b->faults_zero;
	r->faults_remote -= b->faults_remote;
	r->refills -= b->refills;
	r->faults_wp -= b->faults_wp;
	r->pages_in -= b->pages_in;
	r->prefetched -= b->prefetched;
	r->prefetch_used -= b->prefetch_used;
	r->prefetch_unused -= b->prefetch_unused;
	r->pages_out -= b->pages_out;
	r->watch_accesses -= b->watch_accesses;
	r->watch_remote -= b->watch_remote;
}

int sim_run(const struct trace *t, const struct sim_config *cfg, struct sim_result *res)
{
	if (cfg->local_pages < 64 || cfg->staging_pct > 50 ||
	    (cfg->count_from && cfg->count_from >= t->n))
		return -EINVAL;
	struct sim s = {.cfg = cfg};
	struct sim_result r = {0};
	s.r = &r;
	s.budget = cfg->local_pages;
	s.batch = (uint32_t)(s.budget / 16 < BATCH_MAX ? (s.budget / 16 ? s.budget / 16 : 1) : BATCH_MAX);
	uint64_t target = s.budget * (cfg->staging_pct ? cfg->staging_pct : 12) / 100;
	if (cfg->policy == POLICY_FIFO)
		target = 0;
	s.stage_target = (uint32_t)(target > s.batch ? target : s.batch);
	int rc = policy_new(cfg->policy, &s.pol);
	if (rc == 0)
		rc = prefetch_new(cfg->prefetch, cfg->prefetch_max ? cfg->prefetch_max : 128, &s.pf);
	if (rc == 0)
		rc = ht_grow(&s);
	struct sim_result base = {0}; /* the counts before cfg->count_from */
	for (size_t i = 0; rc == 0 && i < t->n; i++) {
		if (i == cfg->count_from)
			base = r;
		rc = access(&s, &t->rec[i]);
	}
	if (rc == 0) {
		/* Prefetched pages never touched by the end were not used. */
		for (size_t i = 0; i < s.npages; i++)
			if (s.pages[i].flags & F_AHEAD)
				r.prefetch_unused++;
		result_sub(&r, &base);
		*res = r;
	}
	policy_free(s.pol);
	prefetch_free(s.pf);
	free(s.pages);
	free(s.ht);
	return rc;
}

/* ---- reference caches (every access visible) ---- */

/* The trace's pages as dense numbers 0..npages-1, in order of first touch.
 * Returns the id array (t->n entries) or NULL (out of memory). */
static uint32_t *dense_ids(const struct trace *t, uint32_t *npages)
{
	size_t cap = 1024;
	while (cap < 2 * t->n)
		cap *= 2;
	uint64_t *keys = malloc(cap * sizeof(*keys));
	uint32_t *vals = calloc(cap, sizeof(*vals)); /* id + 1; 0 empty */
	uint32_t *ids = malloc((t->n ? t->n : 1) * sizeof(*ids));
	uint32_t n = 0;
	if (!keys || !vals || !ids) {
		free(ids);
		ids = NULL;
		goto out;
	}
	for (size_t i = 0; i < t->n; i++) {
		uint64_t pn = t->rec[i].page;
		size_t h = (size_t)((pn * 0x9E3779B97F4A7C15ull) >> 17) & (cap - 1);
		while (vals[h] && keys[h] != pn)
			h = (h + 1) & (cap - 1);
		if (!vals[h]) {
			keys[h] = pn;
			vals[h] = ++n;
		}
		ids[i] = vals[h] - 1;
	}
	*npages = n;
out:
	free(keys);
	free(vals);
	return ids;
}

/* Exact LRU: a list of the held pages, most recent at the head. */
static uint64_t ref_lru(const uint32_t *ids, size_t n, uint32_t npages, uint64_t cap,
			uint64_t from, int *err)
{
	const uint32_t none = UINT32_MAX;
	uint32_t *prev = malloc(npages * sizeof(*prev)), *next = malloc(npages * sizeof(*next));
	uint8_t *st = calloc(npages, 1); /* 0 never touched, 1 held, 2 not held */
	uint64_t misses = 0, held = 0;
	uint32_t head = none, tail = none;
	if (!prev || !next || !st) {
		*err = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		uint32_t p = ids[i];
		if (st[p] == 1) {
			if (head == p)
				continue;
			/* Unlink, then back to the head below. */
			next[prev[p]] = next[p];
			if (next[p] != none)
				prev[next[p]] = prev[p];
			else
				tail = prev[p];
		} else {
			if (st[p] == 2 && i >= from)
				misses++;
			if (held == cap) {
				uint32_t v = tail;
				tail = prev[v];
				next[tail] = none;
				st[v] = 2;
				held--;
			}
			st[p] = 1;
			held++;
		}
		prev[p] = none;
		next[p] = head;
		if (head != none)
			prev[head] = p;
		else
			tail = p;
		head = p;
	}
out:
	free(prev);
	free(next);
	free(st);
	return misses;
}

/* Belady's MIN: evict the held page whose next use is furthest away. A
 * max-heap of (next use, page) with stale entries skipped: a page's entry
 * is current when its key equals the page's next use. */
struct heap_ent {
	uint64_t key;
	uint32_t page;
};

static void heap_push(struct heap_ent *h, size_t *n, uint64_t key, uint32_t page)
{
	size_t j = (*n)++;
	while (j && h[(j - 1) / 2].key < key) {
		h[j] = h[(j - 1) / 2];
		j = (j - 1) / 2;
	}
	h[j] = (struct heap_ent){key, page};
}

static struct heap_ent heap_pop(struct heap_ent *h, size_t *n)
{
	struct heap_ent top = h[0], last = h[--*n];
	size_t j = 0;
	for (;;) {
		size_t c = 2 * j + 1;
		if (c >= *n)
			break;
		if (c + 1 < *n && h[c + 1].key > h[c].key)
			c++;
		if (h[c].key <= last.key)
			break;
		h[j] = h[c];
		j = c;
	}
	if (*n)
		h[j] = last;
	return top;
}

static uint64_t ref_opt(const uint32_t *ids, size_t n, uint32_t npages, uint64_t cap,
			uint64_t from, int *err)
{
	uint64_t *nextuse = malloc((n ? n : 1) * sizeof(*nextuse));
	uint64_t *cur = malloc(npages * sizeof(*cur)); /* next use of each page */
	struct heap_ent *h = malloc((n + 1) * sizeof(*h));
	uint8_t *st = calloc(npages, 1); /* as in ref_lru */
	uint64_t misses = 0, held = 0;
	size_t hn = 0;
	if (!nextuse || !cur || !h || !st) {
		*err = -ENOMEM;
		goto out;
	}
	for (uint32_t p = 0; p < npages; p++)
		cur[p] = UINT64_MAX; /* never again */
	for (size_t i = n; i-- > 0;) {
		nextuse[i] = cur[ids[i]];
		cur[ids[i]] = i;
	}
	for (size_t i = 0; i < n; i++) {
		uint32_t p = ids[i];
		if (st[p] != 1) {
			if (st[p] == 2 && i >= from)
				misses++;
			while (held == cap) {
				struct heap_ent e = heap_pop(h, &hn);
				if (st[e.page] == 1 && cur[e.page] == e.key) {
					st[e.page] = 2;
					held--;
				}
			}
			st[p] = 1;
			held++;
		}
		cur[p] = nextuse[i];
		heap_push(h, &hn, cur[p], p);
	}
out:
	free(nextuse);
	free(cur);
	free(h);
	free(st);
	return misses;
}

int sim_reference(const struct trace *t, const struct sim_config *cfg, enum sim_ref ref,
		  uint64_t *misses)
{
	if (!(t->flags & TRACE_F_ACCESSES) || cfg->local_pages < 64 ||
	    (cfg->count_from && cfg->count_from >= t->n))
		return -EINVAL;
	uint32_t npages = 0;
	uint32_t *ids = dense_ids(t, &npages);
	if (!ids)
		return -ENOMEM;
	int err = 0;
	uint64_t m = ref == SIM_REF_OPT
			     ? ref_opt(ids, t->n, npages, cfg->local_pages, cfg->count_from, &err)
			     : ref_lru(ids, t->n, npages, cfg->local_pages, cfg->count_from, &err);
	free(ids);
	if (err)
		return err;
	*misses = m;
	return 0;
}

double sim_hit_ratio(const struct sim_result *r)
{
	uint64_t n = r->accesses - r->faults_zero;
	return n ? 1.0 - (double)r->faults_remote / (double)n : 1.0;
}

double sim_watch_hit_ratio(const struct sim_result *r)
{
	return r->watch_accesses ? 1.0 - (double)r->watch_remote / (double)r->watch_accesses : 1.0;
}

double sim_avoided(const struct sim_result *r)
{
	uint64_t n = r->faults_remote + r->prefetch_used;
	return n ? (double)r->prefetch_used / (double)n : 0.0;
}

double sim_prefetch_accuracy(const struct sim_result *r)
{
	return r->prefetched ? (double)r->prefetch_used / (double)r->prefetched : 0.0;
}
