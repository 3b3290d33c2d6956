/* SPDX-License-Identifier: MIT */
/*
 * Namespace table; see ns.h. Namespaces live in an array indexed by id - 1
 * and in a chained hash on the name. Both change only under the table lock;
 * a namespace struct is never freed before the table, so a session may use
 * its pointer without the lock.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "server/ns.h"

#define NBUCKETS 4096u

struct sdrsa_ns_table {
	pthread_mutex_t lock;	/* protects all but the atomics below */
	unsigned max;		/* capacity of byid */
	unsigned count;		/* ids handed out: byid[0..count) */
	uint64_t quota;		/* for new namespaces */
	struct sdrsa_ns **byid; /* id - 1 -> namespace */
	struct sdrsa_ns *buckets[NBUCKETS];
	_Atomic uint64_t nonempty; /* namespaces with pages > 0 */
};

static unsigned name_hash(const char *s)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h % NBUCKETS;
}

int sdrsa_ns_table_new(unsigned max, uint64_t quota, struct sdrsa_ns_table **ret)
{
	struct sdrsa_ns_table *t;

	if (!ret)
		return -EINVAL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->max = max ? max : SDRSA_NS_MAX_DEFAULT;
	t->quota = quota;
	t->byid = calloc(t->max, sizeof(*t->byid));
	if (!t->byid) {
		free(t);
		return -ENOMEM;
	}
	pthread_mutex_init(&t->lock, NULL);
	*ret = t;
	return 0;
}

void sdrsa_ns_table_free(struct sdrsa_ns_table *t)
{
	if (!t)
		return;
	for (unsigned i = 0; i < t->count; i++)
		free(t->byid[i]);
	free(t->byid);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

static void unhash(struct sdrsa_ns_table *t, struct sdrsa_ns *ns)
{
	struct sdrsa_ns **pp = &t->buckets[name_hash(ns->name)];

	while (*pp != ns)
		pp = &(*pp)->hnext;
	*pp = ns->hnext;
}

int sdrsa_ns_open(struct sdrsa_ns_table *t, const char *name, struct sdrsa_ns **ret)
{
	struct sdrsa_ns *ns;
	unsigned b;
	int rc = 0;

	if (!t || !name || !ret || !sdrsa_name_valid(name))
		return -EINVAL;
	b = name_hash(name);
	pthread_mutex_lock(&t->lock);
	for (ns = t->buckets[b]; ns; ns = ns->hnext)
		if (!strcmp(ns->name, name))
			goto found;
	if (t->count < t->max) {
		ns = calloc(1, sizeof(*ns));
		if (!ns) {
			rc = -ENOMEM;
			goto out;
		}
		ns->id = ++t->count;
		t->byid[ns->id - 1] = ns;
	} else {
		/* Full: recycle a namespace nobody uses and that holds nothing.
		 * With no session, nothing can add pages to it concurrently. */
		ns = NULL;
		for (unsigned i = 0; i < t->count && !ns; i++) {
			struct sdrsa_ns *c = t->byid[i];

			if (!c->sessions && !atomic_load(&c->pages))
				ns = c;
		}
		if (!ns) {
			rc = -ENOSPC;
			goto out;
		}
		unhash(t, ns);
	}
	strcpy(ns->name, name);
	ns->quota = t->quota;
	ns->hnext = t->buckets[b];
	t->buckets[b] = ns;
found:
	ns->sessions++;
	*ret = ns;
out:
	pthread_mutex_unlock(&t->lock);
	return rc;
}

void sdrsa_ns_close(struct sdrsa_ns_table *t, struct sdrsa_ns *ns)
{
	if (!t || !ns)
		return;
	pthread_mutex_lock(&t->lock);
	ns->sessions--;
	pthread_mutex_unlock(&t->lock);
}

int sdrsa_ns_charge(struct sdrsa_ns_table *t, struct sdrsa_ns *ns)
{
	uint64_t old = atomic_fetch_add_explicit(&ns->pages, 1, memory_order_relaxed);

	if (ns->quota && old >= ns->quota) {
		atomic_fetch_sub_explicit(&ns->pages, 1, memory_order_relaxed);
		return -EDQUOT;
	}
	if (old == 0)
		atomic_fetch_add_explicit(&t->nonempty, 1, memory_order_relaxed);
	return 0;
}

void sdrsa_ns_uncharge(struct sdrsa_ns_table *t, struct sdrsa_ns *ns, uint64_t n)
{
	uint64_t old;

	if (!n)
		return;
	old = atomic_fetch_sub_explicit(&ns->pages, n, memory_order_relaxed);
	if (old == n)
		atomic_fetch_sub_explicit(&t->nonempty, 1, memory_order_relaxed);
}

uint64_t sdrsa_ns_nonempty(const struct sdrsa_ns_table *t)
{
	uint64_t v =
	    atomic_load_explicit(&((struct sdrsa_ns_table *)t)->nonempty, memory_order_relaxed);

	/* An uncharge's decrement can land just before the increment of the
	 * charge it follows: the counter may dip below zero for a moment. */
	return (int64_t)v < 0 ? 0 : v;
}

void sdrsa_ns_foreach(struct sdrsa_ns_table *t,
		      void (*cb)(void *userdata, const struct sdrsa_ns *ns), void *userdata)
{
	pthread_mutex_lock(&t->lock);
	for (unsigned i = 0; i < t->count; i++)
		cb(userdata, t->byid[i]);
	pthread_mutex_unlock(&t->lock);
}
