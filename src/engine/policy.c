// SPDX-License-Identifier: MIT
/*
 * CLOCK with a staged (inactive) list; see policy.h for the idea.
 *
 * Slots live in one array; each is on exactly one of four lists: FREE
 * (singly linked through `next`), RES (resident, doubly linked, head =
 * oldest: the clock hand; under POLICY_2Q the probation list), PRO
 * (POLICY_2Q's protected set: one doubly linked list per frequency
 * estimate 0..FREQ_MAX, the slot's `fb`, head = oldest) or STG (staged,
 * doubly linked, head = oldest).
 * A fourth state, GONE, marks a slot picked for eviction and not yet removed.
 * Operations are O(1) except the sweeps, which are O(pages skipped); each
 * skipped page loses its hot bit, so a sweep ends within one lap (in PRO a
 * skipped page may instead move up to the bucket of its current estimate,
 * at most FREQ_MAX times), and the sketch's halving, O(slots) once every
 * FREQ_AGE events per slot.
 *
 * POLICY_2Q's frequency (measured on tests/traces, docs/PERFORMANCE.md):
 * zipf 0.78x FIFO's remote faults against 0.82x for the same 2Q with a
 * protected CLOCK; halving every 2 or 4 events per slot instead of 8 keeps
 * less of the zipf gain (0.81x, 0.80x) but adapts faster when the hot set
 * moves. A bucket is the page's estimate when it entered; another page's
 * counts can raise the estimate since (a count-min sketch errs upwards
 * only), which the victim search finds and corrects; the halving maps
 * bucket b to b / 2 exactly.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "engine/policy.h"

enum { L_FREE, L_RES, L_STG, L_GONE, L_PRO };

/* POLICY_2Q: the probation list's share of the resident pages, in 1/256
 * (1/16: measured best on tests/traces zipf and hot set + scan, against
 * 1/8, 1/2 and ARC-style adaptation, see docs/PERFORMANCE.md), and the
 * ghost-hit class that promotes (3: back within half a budget of
 * evictions, as 2Q's A1out). */
#define PROBATION_SHARE 16u
#define PROMOTE_HOT 3u

/* POLICY_2Q's frequency sketch (TinyLFU's count-min sketch): FREQ_ROWS
 * rows of FREQ_WIDTH counters per slot of the table, each saturating at
 * FREQ_MAX, all halved after FREQ_AGE events per slot. */
#define FREQ_ROWS 4
#define FREQ_WIDTH 4u
#define FREQ_MAX 15u
#define FREQ_AGE 8u

struct pslot {
	uint64_t cookie;
	uint32_t prev, next;
	uint8_t list;
	uint8_t hot;
	uint8_t prot; /* on PRO, or staged from it */
	uint8_t fb;   /* on PRO: the frequency bucket (pro[fb]) */
};

struct plist {
	uint32_t head, tail;
	size_t n;
};

struct policy {
	enum policy_kind kind;
	struct pslot *s;
	uint32_t cap;
	uint32_t free_head;
	struct plist res, stg;
	struct plist pro[FREQ_MAX + 1]; /* protected, by frequency */
	size_t npro;			/* pages on all pro[] */
	uint8_t *freq;			/* FREQ_ROWS rows of fmask + 1 */
	uint32_t fmask;
	uint64_t fevents, fage; /* events since the last halving, period */
};

static void list_push_tail(struct policy *p, struct plist *l, uint32_t i)
{
	p->s[i].next = POLICY_NO_SLOT;
	p->s[i].prev = l->tail;
	if (l->tail != POLICY_NO_SLOT)
		p->s[l->tail].next = i;
	else
		l->head = i;
	l->tail = i;
	l->n++;
}

static void list_unlink(struct policy *p, struct plist *l, uint32_t i)
{
	struct pslot *e = &p->s[i];
	if (e->prev != POLICY_NO_SLOT)
		p->s[e->prev].next = e->next;
	else
		l->head = e->next;
	if (e->next != POLICY_NO_SLOT)
		p->s[e->next].prev = e->prev;
	else
		l->tail = e->prev;
	l->n--;
}

static struct plist *list_of(struct policy *p, uint32_t i)
{
	switch (p->s[i].list) {
	case L_RES:
		return &p->res;
	case L_STG:
		return &p->stg;
	case L_PRO:
		return &p->pro[p->s[i].fb];
	default:
		return NULL;
	}
}

static uint32_t freq_idx(const struct policy *p, uint64_t cookie, unsigned row)
{
	uint64_t h = sdrsa_mix64(cookie + 0x9E3779B97F4A7C15ull * (row + 1));
	return row * (p->fmask + 1) + ((uint32_t)h & p->fmask);
}

/* The page's estimated frequency: the least of its counters. */
static unsigned freq_est(const struct policy *p, uint64_t cookie)
{
	if (!p->freq)
		return 0;
	unsigned m = FREQ_MAX;
	for (unsigned r = 0; r < FREQ_ROWS; r++) {
		unsigned c = p->freq[freq_idx(p, cookie, r)];
		if (c < m)
			m = c;
	}
	return m;
}

/* Raise each of the page's counters to at least v. */
static void freq_raise(struct policy *p, uint64_t cookie, unsigned v)
{
	for (unsigned r = 0; r < FREQ_ROWS; r++) {
		uint8_t *c = &p->freq[freq_idx(p, cookie, r)];
		if (*c < v)
			*c = (uint8_t)v;
	}
}

static void unlink_any(struct policy *p, uint32_t i)
{
	struct plist *l = list_of(p, i);
	if (l) {
		list_unlink(p, l, i);
		if (p->s[i].list == L_PRO)
			p->npro--;
	}
}

/* Onto the tail of its frequency bucket of the protected set. */
static void pro_push(struct policy *p, uint32_t i)
{
	p->s[i].list = L_PRO;
	p->s[i].fb = (uint8_t)freq_est(p, p->s[i].cookie);
	list_push_tail(p, &p->pro[p->s[i].fb], i);
	p->npro++;
}

/* Halve every counter, and so every bucket: pro[b] moves to pro[b / 2],
 * after the pages already there (the lower frequency goes first). */
static void freq_age(struct policy *p)
{
	size_t n = (size_t)FREQ_ROWS * (p->fmask + 1);
	for (size_t i = 0; i < n; i++)
		p->freq[i] >>= 1;
	p->fevents = 0;
	for (unsigned b = 1; b <= FREQ_MAX; b++) {
		struct plist *from = &p->pro[b], *to = &p->pro[b / 2];
		if (from->head == POLICY_NO_SLOT)
			continue;
		for (uint32_t i = from->head; i != POLICY_NO_SLOT; i = p->s[i].next)
			p->s[i].fb = (uint8_t)(b / 2);
		p->s[from->head].prev = to->tail;
		if (to->tail != POLICY_NO_SLOT)
			p->s[to->tail].next = from->head;
		else
			to->head = from->head;
		to->tail = from->tail;
		to->n += from->n;
		from->head = from->tail = POLICY_NO_SLOT;
		from->n = 0;
	}
}

/* A sign of use of the page: one more in its counters (conservative
 * update: only those at the least value). Each counter is hashed once. */
static void freq_add(struct policy *p, uint64_t cookie)
{
	if (!p->freq)
		return;
	uint8_t *c[FREQ_ROWS];
	unsigned m = FREQ_MAX;
	for (unsigned r = 0; r < FREQ_ROWS; r++) {
		c[r] = &p->freq[freq_idx(p, cookie, r)];
		if (*c[r] < m)
			m = *c[r];
	}
	if (m < FREQ_MAX)
		for (unsigned r = 0; r < FREQ_ROWS; r++)
			if (*c[r] == m)
				(*c[r])++;
	if (++p->fevents >= p->fage)
		freq_age(p);
}

/* Size the sketch for cap slots. The resident pages keep their
 * estimates; the evicted ones' counts are lost. */
static int freq_resize(struct policy *p, uint32_t cap)
{
	uint32_t w = cap * FREQ_WIDTH;
	uint8_t *nf = calloc((size_t)FREQ_ROWS * w, 1);
	if (!nf)
		return -ENOMEM;
	uint8_t *of = p->freq;
	uint32_t omask = p->fmask;
	for (uint32_t i = 0; of && i < p->cap; i++) {
		if (p->s[i].list == L_FREE || p->s[i].list == L_GONE)
			continue;
		unsigned v = freq_est(p, p->s[i].cookie);
		p->freq = nf;
		p->fmask = w - 1;
		freq_raise(p, p->s[i].cookie, p->s[i].list == L_PRO ? p->s[i].fb : v);
		p->freq = of;
		p->fmask = omask;
	}
	free(of);
	p->freq = nf;
	p->fmask = w - 1;
	p->fage = (uint64_t)cap * FREQ_AGE;
	return 0;
}

static void push_resident(struct policy *p, uint32_t slot);

static int grow(struct policy *p)
{
	uint32_t ncap = p->cap ? p->cap * 2 : 1024;
	struct pslot *ns = realloc(p->s, (size_t)ncap * sizeof(*ns));
	if (!ns)
		return -ENOMEM;
	p->s = ns;
	if (p->kind == POLICY_2Q && freq_resize(p, ncap) < 0)
		return -ENOMEM;
	/* Chain the new slots onto the free list, lowest first. */
	for (uint32_t i = ncap; i-- > p->cap;) {
		ns[i].list = L_FREE;
		ns[i].next = p->free_head;
		p->free_head = i;
	}
	p->cap = ncap;
	return 0;
}

int policy_new(enum policy_kind kind, struct policy **ret)
{
	struct policy *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->kind = kind;
	p->free_head = POLICY_NO_SLOT;
	p->res.head = p->res.tail = POLICY_NO_SLOT;
	p->stg.head = p->stg.tail = POLICY_NO_SLOT;
	for (unsigned b = 0; b <= FREQ_MAX; b++)
		p->pro[b].head = p->pro[b].tail = POLICY_NO_SLOT;
	if (grow(p) < 0) {
		free(p);
		return -ENOMEM;
	}
	*ret = p;
	return 0;
}

void policy_free(struct policy *p)
{
	if (!p)
		return;
	free(p->s);
	free(p->freq);
	free(p);
}

int64_t policy_on_fault(struct policy *p, uint64_t cookie)
{
	return policy_on_fault_hot(p, cookie, 0);
}

/* A new resident page; `used`: count it in the frequency sketch. */
static int64_t on_resident(struct policy *p, uint64_t cookie, unsigned hot, int used)
{
	if (p->free_head == POLICY_NO_SLOT && grow(p) < 0)
		return -ENOMEM;
	uint32_t i = p->free_head;
	p->free_head = p->s[i].next;
	p->s[i].cookie = cookie;
	p->s[i].hot = (uint8_t)(hot > POLICY_HOT_MAX ? POLICY_HOT_MAX : hot);
	p->s[i].prot = 0;
	if (used)
		freq_add(p, cookie);
	if (p->kind == POLICY_2Q && hot >= PROMOTE_HOT)
		p->s[i].prot = 1; /* back soon after its eviction: reused */
	push_resident(p, i);
	return i;
}

int64_t policy_on_fault_hot(struct policy *p, uint64_t cookie, unsigned hot)
{
	return on_resident(p, cookie, hot, 1);
}

int64_t policy_on_prefetch(struct policy *p, uint64_t cookie, unsigned hot)
{
	return on_resident(p, cookie, hot, 0);
}

/* Where a resident page goes back to: its list under POLICY_2Q. */
static void push_resident(struct policy *p, uint32_t slot)
{
	if (p->s[slot].prot) {
		pro_push(p, slot);
		return;
	}
	p->s[slot].list = L_RES;
	list_push_tail(p, &p->res, slot);
}

void policy_on_refill(struct policy *p, uint32_t slot)
{
	unlink_any(p, slot);
	if (p->s[slot].hot < POLICY_HOT_MAX)
		p->s[slot].hot++;
	freq_add(p, p->s[slot].cookie);
	if (p->kind == POLICY_2Q)
		p->s[slot].prot = 1; /* touched again while staged: reused */
	push_resident(p, slot);
}

void policy_on_access(struct policy *p, uint32_t slot)
{
	/* On probation a first write is no sign of reuse (a scan that
	 * initialises memory writes every page once). */
	if (p->kind == POLICY_2Q) {
		freq_add(p, p->s[slot].cookie);
		if (!p->s[slot].prot)
			return;
		/* Counted: up to its new bucket (if it moved). */
		if (p->s[slot].list == L_PRO && freq_est(p, p->s[slot].cookie) != p->s[slot].fb) {
			unlink_any(p, slot);
			pro_push(p, slot);
		}
	}
	if (p->s[slot].hot < POLICY_HOT_MAX)
		p->s[slot].hot++;
}

void policy_requeue(struct policy *p, uint32_t slot)
{
	unlink_any(p, slot);
	p->s[slot].hot = 0;
	push_resident(p, slot);
}

void policy_unevict(struct policy *p, uint32_t slot)
{
	unlink_any(p, slot);
	p->s[slot].list = L_STG;
	/* Back at the old end: the first to go when eviction resumes. */
	struct pslot *e = &p->s[slot];
	e->prev = POLICY_NO_SLOT;
	e->next = p->stg.head;
	if (p->stg.head != POLICY_NO_SLOT)
		p->s[p->stg.head].prev = slot;
	else
		p->stg.tail = slot;
	p->stg.head = slot;
	p->stg.n++;
}

void policy_remove(struct policy *p, uint32_t slot)
{
	unlink_any(p, slot);
	p->s[slot].list = L_FREE;
	p->s[slot].next = p->free_head;
	p->free_head = slot;
}

void policy_set_cookie(struct policy *p, uint32_t slot, uint64_t cookie)
{
	/* The count moves with the page: its bucket stays right. */
	if (p->freq)
		freq_raise(p, cookie, freq_est(p, p->s[slot].cookie));
	p->s[slot].cookie = cookie;
}

/* Take the next victim off a resident list (the clock hand), giving hot
 * pages a second chance unless FIFO. Returns NO_SLOT when empty. */
static uint32_t sweep_list(struct policy *p, struct plist *l)
{
	while (l->head != POLICY_NO_SLOT) {
		uint32_t i = l->head;
		list_unlink(p, l, i);
		if (p->kind != POLICY_FIFO && p->s[i].hot) {
			p->s[i].hot--;
			list_push_tail(p, l, i);
			continue;
		}
		return i;
	}
	return POLICY_NO_SLOT;
}

/* The protected set's victim: from the least frequent bucket, oldest
 * first; a page whose estimate has risen since (another page's counts
 * share its counters) moves up, a hot one gets a lap in its bucket. */
static uint32_t pro_victim(struct policy *p)
{
	for (unsigned b = 0; b <= FREQ_MAX; b++) {
		struct plist *l = &p->pro[b];
		while (l->head != POLICY_NO_SLOT) {
			uint32_t i = l->head;
			unlink_any(p, i);
			if (freq_est(p, p->s[i].cookie) > b) {
				pro_push(p, i);
				continue;
			}
			if (p->s[i].hot) {
				p->s[i].hot--;
				pro_push(p, i);
				continue;
			}
			return i;
		}
	}
	return POLICY_NO_SLOT;
}

static uint32_t sweep_one(struct policy *p)
{
	if (p->kind != POLICY_2Q)
		return sweep_list(p, &p->res);
	/* Probation first while above its share (a scan stays there and
	 * leaves in fault order), else the least frequent protected page. */
	size_t target = (p->res.n + p->npro) * PROBATION_SHARE / 256;
	if (p->res.n && (p->res.n > target || !p->npro)) {
		uint32_t i = p->res.head;
		list_unlink(p, &p->res, i);
		return i;
	}
	return pro_victim(p);
}

size_t policy_pick_stage(struct policy *p, uint32_t *slots, uint64_t *cookies, size_t n)
{
	size_t k = 0;
	while (k < n) {
		uint32_t i = sweep_one(p);
		if (i == POLICY_NO_SLOT)
			break;
		p->s[i].list = L_STG;
		list_push_tail(p, &p->stg, i);
		slots[k] = i;
		cookies[k] = p->s[i].cookie;
		k++;
	}
	return k;
}

size_t policy_pick_evict(struct policy *p, uint32_t *slots, uint64_t *cookies, size_t n)
{
	size_t k = 0;
	while (k < n) {
		uint32_t i = p->stg.head;
		if (i != POLICY_NO_SLOT)
			list_unlink(p, &p->stg, i);
		else if ((i = sweep_one(p)) == POLICY_NO_SLOT)
			break;
		p->s[i].list = L_GONE;
		slots[k] = i;
		cookies[k] = p->s[i].cookie;
		k++;
	}
	return k;
}

size_t policy_resident(const struct policy *p)
{
	return p->res.n + p->npro;
}

size_t policy_staged(const struct policy *p)
{
	return p->stg.n;
}

int policy_is_staged(const struct policy *p, uint32_t slot)
{
	return p->s[slot].list == L_STG;
}

static const char *const kind_names[] = {"fifo", "clock", "2q"};

const char *policy_kind_name(enum policy_kind kind)
{
	return (unsigned)kind < 3 ? kind_names[kind] : "?";
}

int policy_kind_parse(const char *name)
{
	for (int i = 0; i < 3; i++)
		if (!strcmp(name, kind_names[i]))
			return i;
	return -1;
}
