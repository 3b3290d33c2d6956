/* SPDX-License-Identifier: MIT */
/*
 * Sharded index with one sub-table per (shard, namespace); see index.h. The
 * shard is chosen by the top 6 bits of the hash and the bucket by the low
 * bits, so the two are independent. Buckets are 24 bytes; a lookup loads the
 * sub-table descriptor (16 bytes in an array owned by the shard, indexed by
 * namespace id) and usually touches one cache line of buckets.
 *
 * Why per-namespace tables. With one table per shard, FREE_ALL had to scan
 * every bucket of every shard: 1.7 ms with a million pages stored by other
 * clients, 6.9 ms with four million, for a client that stored one page (and
 * 6 us with an almost empty index, from the 64 x 256 initial buckets). Any
 * client could buy that CPU time, under shard locks, in a loop. Alternatives
 * weighed: chaining each namespace's entries in a list kept beside the
 * buckets keeps one table but costs 8 more bytes per bucket and a fix-up of
 * the neighbours' links for every entry moved by deletion or growth; a hash
 * map from namespace to table would add a second probe to every GET. Ids are
 * small and dense (ns.c hands them out from 1), so a plain array indexed by
 * id finds the sub-table with one load, in memory that only this shard's
 * lock writes: shards never share a cache line on the hot path.
 *
 * Measured (one thread, store API, this project's 2-vCPU VM): put + FREE_ALL
 * of a 1-page namespace beside 1 M (4 M) pages of another, 1.7 ms (6.9 ms)
 * before, 0.23 us (0.25 us) after; GET of a random page among 1 M, 77-80 ns
 * before, 79-81 ns after (82-85 ns without the cache-colour offset of the
 * arrays, see sdrsa_index_new()); put of a new page then its FREE, +5 ns per
 * operation (the descriptor load); FREE_ALL of a namespace's own 256 Ki pages,
 * 26-31 ns per page before, 23-28 after.
 *
 * The arrays of all shards (64 x (max_ns + 1) descriptors) and the per-id
 * bitmaps are one MAP_NORESERVE mapping: pages of it are backed only once an
 * id in their range stores something (a 4 KiB page covers 256 ids).
 *
 * nonempty[id] has bit s set while shard s holds entries of namespace id. It
 * is changed only under shard s's lock, with atomic OR/AND because the 64
 * bits of one word belong to 64 different locks, and read without any lock by
 * sdrsa_index_remove_ns() to skip the shards where the namespace has nothing.
 */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "common/util.h"
#include "server/index.h"

#define SHARD_BITS 6
/* First size of a sub-table; it holds 3 entries before it doubles. */
#define MIN_BUCKETS 4u
/* Largest sub-table: mask and count are u32. */
#define MAX_BUCKETS (1u << 31)
/* Empty MIN_BUCKETS tables kept per shard for the next new sub-table. */
#define SPARE_TABLES 8u

_Static_assert((1u << SHARD_BITS) == SDRSA_INDEX_SHARDS, "shard bits");

/* One namespace's entries in one shard. */
struct sub {
	struct sdrsa_index_ent *tab; /* mask + 1 buckets; NULL exactly when count is 0 */
	uint32_t mask;
	uint32_t count; /* occupied buckets */
};

struct sdrsa_index_shard {
	pthread_mutex_t lock; /* protects everything below, the sub-tables and the slots */
	struct sub *subs;     /* namespace id -> its sub-table here; max_ns + 1 of them */
	uint64_t count;	      /* entries in all sub-tables */
	uint64_t buckets;     /* buckets of all sub-tables (spares not counted) */
	struct sdrsa_index_ent *spare[SPARE_TABLES]; /* empty MIN_BUCKETS tables */
	unsigned nspare;
	unsigned idx;		    /* this shard's bit in nonempty[] */
	_Atomic uint64_t *nonempty; /* the index's array; bit idx is ours */
} __attribute__((aligned(64)));

struct sdrsa_index {
	struct sdrsa_index_shard shards[SDRSA_INDEX_SHARDS];
	uint32_t max_ns;
	void *map; /* all shards' subs arrays, then nonempty[] */
	size_t map_bytes;
	_Atomic uint64_t *nonempty;  /* namespace id -> shards holding its entries */
	_Atomic uint64_t ns_scanned; /* buckets looked at by remove_ns */
};

uint64_t sdrsa_index_hash(uint32_t ns, uint64_t addr)
{
	/* MurmurHash3's 64-bit finaliser over the address with the namespace
	 * folded in: consecutive pages of one client spread over all shards. */
	uint64_t x = (addr >> 12) ^ ((uint64_t)ns * 0x9e3779b97f4a7c15ull);

	return sdrsa_mix64(x);
}

int sdrsa_index_new(uint32_t max_ns, struct sdrsa_index **ret)
{
	struct sdrsa_index *ix;
	size_t subs_bytes;
	uint8_t *map;

	if (!ret || max_ns == 0 || max_ns > SDRSA_INDEX_MAX_NS)
		return -EINVAL;
	if (posix_memalign((void **)&ix, 64, sizeof(*ix)))
		return -ENOMEM;
	memset(ix, 0, sizeof(*ix));
	ix->max_ns = max_ns;
	/* Shard s's array starts s cache lines after a page boundary: with a
	 * power-of-two stride, the 64 descriptors of one namespace would all
	 * fall in the same cache set and evict one another. */
	subs_bytes = ((((size_t)max_ns + 1) * sizeof(struct sub) + 4095) & ~(size_t)4095) + 64;
	ix->map_bytes = SDRSA_INDEX_SHARDS * subs_bytes + ((size_t)max_ns + 1) * sizeof(uint64_t);
	map = mmap(NULL, ix->map_bytes, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (map == MAP_FAILED) {
		free(ix);
		return -ENOMEM;
	}
	ix->map = map;
	ix->nonempty = (_Atomic uint64_t *)(map + SDRSA_INDEX_SHARDS * subs_bytes);
	for (unsigned s = 0; s < SDRSA_INDEX_SHARDS; s++) {
		struct sdrsa_index_shard *sh = &ix->shards[s];

		pthread_mutex_init(&sh->lock, NULL);
		sh->subs = (struct sub *)(map + s * subs_bytes);
		sh->idx = s;
		sh->nonempty = ix->nonempty;
	}
	*ret = ix;
	return 0;
}

void sdrsa_index_free(struct sdrsa_index *ix)
{
	if (!ix)
		return;
	/* Only the ids with entries have tables: no need to read every id's
	 * descriptor in every shard (and fault in the whole mapping). */
	for (uint32_t id = 1; id <= ix->max_ns; id++) {
		uint64_t m = atomic_load_explicit(&ix->nonempty[id], memory_order_relaxed);

		for (; m; m &= m - 1)
			free(ix->shards[__builtin_ctzll(m)].subs[id].tab);
	}
	for (unsigned s = 0; s < SDRSA_INDEX_SHARDS; s++) {
		struct sdrsa_index_shard *sh = &ix->shards[s];

		while (sh->nspare)
			free(sh->spare[--sh->nspare]);
		pthread_mutex_destroy(&sh->lock);
	}
	munmap(ix->map, ix->map_bytes);
	free(ix);
}

struct sdrsa_index_shard *sdrsa_index_lock(struct sdrsa_index *ix, uint64_t hash)
{
	struct sdrsa_index_shard *sh = &ix->shards[hash >> (64 - SHARD_BITS)];

	pthread_mutex_lock(&sh->lock);
	return sh;
}

void sdrsa_index_unlock(struct sdrsa_index_shard *sh)
{
	pthread_mutex_unlock(&sh->lock);
}

/* ---- sub-table memory (shard locked) ------------------------------------ */

/* A table of n empty buckets (ns 0; nothing else is read from an empty
 * bucket): a spare one when n is the minimum. */
static struct sdrsa_index_ent *table_alloc(struct sdrsa_index_shard *sh, size_t n)
{
	if (n == MIN_BUCKETS && sh->nspare)
		return sh->spare[--sh->nspare];
	return calloc(n, sizeof(struct sdrsa_index_ent));
}

/* Give back a table of n buckets; `dirty`: buckets may still be marked used. */
static void table_release(struct sdrsa_index_shard *sh, struct sdrsa_index_ent *tab, size_t n,
			  int dirty)
{
	if (n == MIN_BUCKETS && sh->nspare < SPARE_TABLES) {
		if (dirty)
			memset(tab, 0, n * sizeof(*tab));
		sh->spare[sh->nspare++] = tab;
		return;
	}
	free(tab);
}

/* Drop the sub-table of namespace ns after its last entry went. */
static void sub_clear(struct sdrsa_index_shard *sh, struct sub *sb, uint32_t ns, int dirty)
{
	size_t n = (size_t)sb->mask + 1;

	table_release(sh, sb->tab, n, dirty);
	sh->buckets -= n;
	sh->count -= sb->count;
	__atomic_store_n(&sb->tab, NULL, __ATOMIC_RELAXED);
	__atomic_store_n(&sb->mask, 0, __ATOMIC_RELAXED);
	sb->count = 0;
	atomic_fetch_and_explicit(&sh->nonempty[ns], ~(1ull << sh->idx), memory_order_relaxed);
}

/* Move the entries of sb into a new table of nb buckets. 0 or -ENOMEM
 * (nothing changed). */
static int sub_resize(struct sdrsa_index_shard *sh, struct sub *sb, size_t nb)
{
	struct sdrsa_index_ent *old = sb->tab, *tab;
	size_t old_n = (size_t)sb->mask + 1, mask = nb - 1;

	tab = table_alloc(sh, nb);
	if (!tab)
		return -ENOMEM;
	for (size_t j = 0; j < old_n; j++) {
		size_t i;

		if (old[j].ns == 0)
			continue;
		for (i = sdrsa_index_hash(old[j].ns, old[j].addr) & mask; tab[i].ns;
		     i = (i + 1) & mask)
			;
		tab[i] = old[j];
	}
	table_release(sh, old, old_n, 1);
	__atomic_store_n(&sb->tab, tab, __ATOMIC_RELAXED);
	__atomic_store_n(&sb->mask, (uint32_t)mask, __ATOMIC_RELAXED);
	sh->buckets += nb;
	sh->buckets -= old_n;
	return 0;
}

/* ---- entries -------------------------------------------------------------- */

void sdrsa_index_prefetch(struct sdrsa_index *ix, uint64_t hash, uint32_t ns)
{
	const struct sub *sb = &ix->shards[hash >> (64 - SHARD_BITS)].subs[ns];
	struct sdrsa_index_ent *tab = __atomic_load_n(&sb->tab, __ATOMIC_RELAXED);
	uint32_t mask = __atomic_load_n(&sb->mask, __ATOMIC_RELAXED);
	uintptr_t b;

	if (!tab)
		return;
	/* Integer arithmetic: tab and mask may be a torn pair from a resize
	 * in progress, and the table may be freed meanwhile. Either way the
	 * address is only prefetched, which never faults. */
	b = (uintptr_t)tab + (hash & mask) * sizeof(*tab);
	__builtin_prefetch((const void *)b, 0, 3);
	__builtin_prefetch((const void *)(b + sizeof(*tab) - 1), 0, 3);
}

struct sdrsa_index_ent *sdrsa_index_find(struct sdrsa_index_shard *sh, uint64_t hash, uint32_t ns,
					 uint64_t addr)
{
	const struct sub *sb = &sh->subs[ns];
	size_t mask = sb->mask;

	if (!sb->tab)
		return NULL;
	/* Every entry of the sub-table is of namespace ns: only addr to compare. */
	for (size_t i = hash & mask;; i = (i + 1) & mask) {
		struct sdrsa_index_ent *e = &sb->tab[i];

		if (e->ns == 0)
			return NULL;
		if (e->addr == addr)
			return e;
	}
}

int sdrsa_index_insert(struct sdrsa_index_shard *sh, uint64_t hash, uint32_t ns, uint64_t addr,
		       struct sdrsa_index_ent **ret)
{
	struct sub *sb = &sh->subs[ns];
	size_t i, mask;

	if (!sb->tab) {
		struct sdrsa_index_ent *tab = table_alloc(sh, MIN_BUCKETS);

		if (!tab)
			return -ENOMEM;
		/* Atomic stores: sdrsa_index_prefetch() reads these without the lock. */
		__atomic_store_n(&sb->tab, tab, __ATOMIC_RELAXED);
		__atomic_store_n(&sb->mask, MIN_BUCKETS - 1, __ATOMIC_RELAXED);
		sh->buckets += MIN_BUCKETS;
		atomic_fetch_or_explicit(&sh->nonempty[ns], 1ull << sh->idx, memory_order_relaxed);
	} else if (((size_t)sb->count + 1) * 4 > ((size_t)sb->mask + 1) * 3) {
		size_t nb = ((size_t)sb->mask + 1) * 2;
		int rc = nb > MAX_BUCKETS ? -ENOMEM : sub_resize(sh, sb, nb);

		if (rc)
			return rc;
	}
	mask = sb->mask;
	for (i = hash & mask; sb->tab[i].ns; i = (i + 1) & mask)
		;
	sb->tab[i].ns = ns;
	sb->tab[i].addr = addr;
	sb->tab[i].csum = 0;
	sb->tab[i].slot = SDRSA_SLOT_ZERO;
	sb->count++;
	sh->count++;
	*ret = &sb->tab[i];
	return 0;
}

void sdrsa_index_remove(struct sdrsa_index_shard *sh, struct sdrsa_index_ent *e)
{
	uint32_t ns = e->ns;
	struct sub *sb = &sh->subs[ns];
	struct sdrsa_index_ent *tab = sb->tab;
	size_t mask = sb->mask, n = mask + 1, i = (size_t)(e - tab), j = i;

	assert(ns && i < n);
	/* Backward-shift deletion: pull later members of the probe run into the
	 * hole unless that would move them before their home bucket. */
	for (;;) {
		size_t k;

		tab[i].ns = 0;
		for (;;) {
			j = (j + 1) & mask;
			if (tab[j].ns == 0)
				goto removed;
			k = sdrsa_index_hash(ns, tab[j].addr) & mask;
			/* Leave the entry if its home k lies cyclically in (i, j]. */
			if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
				continue;
			break;
		}
		tab[i] = tab[j];
		i = j;
	}
removed:
	sb->count--;
	sh->count--;
	if (sb->count == 0)
		sub_clear(sh, sb, ns, 0);
	else if (n > MIN_BUCKETS && (size_t)sb->count * 8 < n)
		(void)sub_resize(sh, sb, n / 2); /* best effort: the table still works */
}

uint64_t sdrsa_index_remove_ns(struct sdrsa_index *ix, uint32_t ns,
			       void (*cb)(void *userdata, const struct sdrsa_index_ent *e),
			       void *userdata)
{
	uint64_t removed = 0, scanned = 0, m;

	assert(ns && ns <= ix->max_ns);
	m = atomic_load_explicit(&ix->nonempty[ns], memory_order_relaxed);
	/* A bit set after this load belongs to an insert that came after the
	 * call started: it may stay (see index.h). */
	for (; m; m &= m - 1) {
		struct sdrsa_index_shard *sh = &ix->shards[__builtin_ctzll(m)];
		struct sub *sb = &sh->subs[ns];

		pthread_mutex_lock(&sh->lock);
		if (sb->tab) {
			size_t n = (size_t)sb->mask + 1;

			for (size_t i = 0; i < n; i++) {
				if (sb->tab[i].ns == 0)
					continue;
				if (cb)
					cb(userdata, &sb->tab[i]);
				removed++;
			}
			scanned += n;
			sub_clear(sh, sb, ns, 1);
		}
		pthread_mutex_unlock(&sh->lock);
	}
	atomic_fetch_add_explicit(&ix->ns_scanned, scanned, memory_order_relaxed);
	return removed;
}

void sdrsa_index_usage(struct sdrsa_index *ix, struct sdrsa_index_usage *out)
{
	struct sdrsa_index_usage u = {0};

	for (unsigned s = 0; s < SDRSA_INDEX_SHARDS; s++) {
		struct sdrsa_index_shard *sh = &ix->shards[s];

		pthread_mutex_lock(&sh->lock);
		u.entries += sh->count;
		u.buckets += sh->buckets;
		pthread_mutex_unlock(&sh->lock);
	}
	u.ns_scanned = atomic_load_explicit(&ix->ns_scanned, memory_order_relaxed);
	*out = u;
}
