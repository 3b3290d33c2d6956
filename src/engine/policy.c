// SPDX-License-Identifier: MIT
/*
 * CLOCK with a staged (inactive) list; see policy.h for the idea.
 *
 * Slots live in one array; each is on exactly one of four lists: FREE
 * (singly linked through `next`), RES (resident, doubly linked, head =
 * oldest: the clock hand; under POLICY_2Q the probation list), PRO
 * (POLICY_2Q's protected CLOCK) or STG (staged, doubly linked, head =
 * oldest).
 * A fourth state, GONE, marks a slot picked for eviction and not yet removed.
 * Operations are O(1) except the sweeps, which are O(pages skipped); each
 * skipped page loses its hot bit, so a sweep ends within one lap.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine/policy.h"

enum { L_FREE, L_RES, L_STG, L_GONE, L_PRO };

/* POLICY_2Q: the probation list's share of the resident pages, in 1/256
 * (1/16: measured best on tests/traces zipf and hot set + scan, against
 * 1/8, 1/2 and ARC-style adaptation, see docs/PERFORMANCE.md), and the
 * ghost-hit class that promotes (3: back within half a budget of
 * evictions, as 2Q's A1out). */
#define PROBATION_SHARE 16u
#define PROMOTE_HOT 3u

struct pslot {
	uint64_t cookie;
	uint32_t prev, next;
	uint8_t list;
	uint8_t hot;
	uint8_t prot; /* on PRO, or staged from it */
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
	struct plist res, stg, pro;
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
		return &p->pro;
	default:
		return NULL;
	}
}

static int grow(struct policy *p)
{
	uint32_t ncap = p->cap ? p->cap * 2 : 1024;
	struct pslot *ns = realloc(p->s, (size_t)ncap * sizeof(*ns));
	if (!ns)
		return -ENOMEM;
	p->s = ns;
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
	p->pro.head = p->pro.tail = POLICY_NO_SLOT;
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
	free(p);
}

int64_t policy_on_fault(struct policy *p, uint64_t cookie)
{
	return policy_on_fault_hot(p, cookie, 0);
}

int64_t policy_on_fault_hot(struct policy *p, uint64_t cookie, unsigned hot)
{
	if (p->free_head == POLICY_NO_SLOT && grow(p) < 0)
		return -ENOMEM;
	uint32_t i = p->free_head;
	p->free_head = p->s[i].next;
	p->s[i].cookie = cookie;
	p->s[i].hot = (uint8_t)(hot > POLICY_HOT_MAX ? POLICY_HOT_MAX : hot);
	p->s[i].prot = 0;
	p->s[i].list = L_RES;
	if (p->kind == POLICY_2Q && hot >= PROMOTE_HOT) {
		/* Back soon after its eviction: reused, protected. */
		p->s[i].prot = 1;
		p->s[i].list = L_PRO;
	}
	list_push_tail(p, list_of(p, i), i);
	return i;
}

/* Where a resident page goes back to: its list under POLICY_2Q. */
static void push_resident(struct policy *p, uint32_t slot)
{
	p->s[slot].list = p->s[slot].prot ? L_PRO : L_RES;
	list_push_tail(p, list_of(p, slot), slot);
}

void policy_on_refill(struct policy *p, uint32_t slot)
{
	struct plist *l = list_of(p, slot);
	if (l)
		list_unlink(p, l, slot);
	if (p->s[slot].hot < POLICY_HOT_MAX)
		p->s[slot].hot++;
	if (p->kind == POLICY_2Q)
		p->s[slot].prot = 1; /* touched again while staged: reused */
	push_resident(p, slot);
}

void policy_on_access(struct policy *p, uint32_t slot)
{
	/* On probation a first write is no sign of reuse (a scan that
	 * initialises memory writes every page once). */
	if (p->kind == POLICY_2Q && !p->s[slot].prot)
		return;
	if (p->s[slot].hot < POLICY_HOT_MAX)
		p->s[slot].hot++;
}

void policy_requeue(struct policy *p, uint32_t slot)
{
	struct plist *l = list_of(p, slot);
	if (l)
		list_unlink(p, l, slot);
	p->s[slot].hot = 0;
	push_resident(p, slot);
}

void policy_unevict(struct policy *p, uint32_t slot)
{
	struct plist *l = list_of(p, slot);
	if (l)
		list_unlink(p, l, slot);
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
	struct plist *l = list_of(p, slot);
	if (l)
		list_unlink(p, l, slot);
	p->s[slot].list = L_FREE;
	p->s[slot].next = p->free_head;
	p->free_head = slot;
}

void policy_set_cookie(struct policy *p, uint32_t slot, uint64_t cookie)
{
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

static uint32_t sweep_one(struct policy *p)
{
	if (p->kind != POLICY_2Q)
		return sweep_list(p, &p->res);
	/* Probation first while above its share (a scan stays there and
	 * leaves in fault order), else the protected CLOCK. */
	size_t target = (p->res.n + p->pro.n) * PROBATION_SHARE / 256;
	if (p->res.n && (p->res.n > target || !p->pro.n)) {
		uint32_t i = p->res.head;
		list_unlink(p, &p->res, i);
		return i;
	}
	return sweep_list(p, &p->pro);
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
	return p->res.n + p->pro.n;
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
