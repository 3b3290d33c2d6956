/* SPDX-License-Identifier: MIT */
/*
 * Namespaces: one per client name. A namespace gets a small non-zero id (the
 * `ns` field of every frame after WELCOME and the first half of every index
 * key) the first time its name authenticates, and keeps it, with its pages,
 * across connections until the server exits. It counts its pages (data and
 * zero) against the quota with atomics, so the request path takes no lock.
 *
 * The table (name -> namespace) has its own mutex, taken only when a
 * connection opens or closes a namespace and for dumps (SIGUSR1); it is
 * never held together with an index shard lock. A namespace holding no page
 * and no connection may be recycled (its id given to a new name) once the
 * table is full, so the table cannot grow without bound.
 */
#ifndef SDRSA_SERVER_NS_H
#define SDRSA_SERVER_NS_H

#include <stdatomic.h>
#include <stdint.h>

#include <sdrsa/protocol.h>

#define SDRSA_NS_MAX_DEFAULT 65535u

struct sdrsa_ns {
	uint32_t id;		       /* 1..max; immutable while opened */
	char name[SDRSA_NAME_MAX + 1]; /* client name; immutable while opened */
	uint64_t quota;		       /* pages; 0: none */
	_Atomic uint64_t pages;	       /* data + zero pages stored */
	_Atomic uint64_t zero_pages;   /* of which all-zero (no slot) */
	unsigned sessions;	       /* open connections; table lock */
	struct sdrsa_ns *hnext;	       /* hash chain; table lock */
};

struct sdrsa_ns_table;

/* max: most namespaces at once (0: SDRSA_NS_MAX_DEFAULT). quota applies to
 * every namespace. Returns 0 or -ENOMEM. */
int sdrsa_ns_table_new(unsigned max, uint64_t quota, struct sdrsa_ns_table **ret);
void sdrsa_ns_table_free(struct sdrsa_ns_table *t);

/*
 * Find or create the namespace of `name` and count one more session on it.
 * Returns 0 and *ret, -EINVAL (invalid name) or -ENOSPC (table full, nothing
 * to recycle).
 */
int sdrsa_ns_open(struct sdrsa_ns_table *t, const char *name, struct sdrsa_ns **ret);
/* One session fewer. The namespace and its pages stay. Accepts NULL. */
void sdrsa_ns_close(struct sdrsa_ns_table *t, struct sdrsa_ns *ns);

/* Count a new page against the quota: 0, or -EDQUOT (nothing counted). */
int sdrsa_ns_charge(struct sdrsa_ns_table *t, struct sdrsa_ns *ns);
/* n pages fewer. */
void sdrsa_ns_uncharge(struct sdrsa_ns_table *t, struct sdrsa_ns *ns, uint64_t n);

/* Namespaces holding at least one page (exact: kept on 0 <-> 1 transitions). */
uint64_t sdrsa_ns_nonempty(const struct sdrsa_ns_table *t);

/* Call cb for each namespace ever opened and not recycled, under the table
 * lock (cb must not call back into the table). */
void sdrsa_ns_foreach(struct sdrsa_ns_table *t,
		      void (*cb)(void *userdata, const struct sdrsa_ns *ns), void *userdata);

#endif
