/* SPDX-License-Identifier: MIT */
/*
 * Sharded open-addressing hash table; see index.h. The shard is chosen by the
 * top 6 bits of the hash and the bucket by the low bits, so the two are
 * independent. Buckets are 24 bytes; a lookup usually touches one cache line.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "server/index.h"

#define SHARD_BITS 6
#define INITIAL_BUCKETS 256u

_Static_assert((1u << SHARD_BITS) == SDRSA_INDEX_SHARDS, "shard bits");

struct sdrsa_index_shard {
	pthread_mutex_t lock;	     /* protects everything below and the slots */
	struct sdrsa_index_ent *tab; /* mask + 1 buckets */
	size_t mask;
	size_t count; /* occupied buckets */
} __attribute__((aligned(64)));

struct sdrsa_index {
	struct sdrsa_index_shard shards[SDRSA_INDEX_SHARDS];
};

uint64_t sdrsa_index_hash(uint32_t ns, uint64_t addr)
{
	/* MurmurHash3's 64-bit finaliser over the address with the namespace
	 * folded in: consecutive pages of one client spread over all shards. */
	uint64_t x = (addr >> 12) ^ ((uint64_t)ns * 0x9e3779b97f4a7c15ull);

	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

int sdrsa_index_new(struct sdrsa_index **ret)
{
	struct sdrsa_index *ix;

	if (!ret)
		return -EINVAL;
	if (posix_memalign((void **)&ix, 64, sizeof(*ix)))
		return -ENOMEM;
	for (unsigned i = 0; i < SDRSA_INDEX_SHARDS; i++) {
		struct sdrsa_index_shard *sh = &ix->shards[i];

		sh->tab = calloc(INITIAL_BUCKETS, sizeof(*sh->tab));
		if (!sh->tab) {
			while (i--) {
				pthread_mutex_destroy(&ix->shards[i].lock);
				free(ix->shards[i].tab);
			}
			free(ix);
			return -ENOMEM;
		}
		sh->mask = INITIAL_BUCKETS - 1;
		sh->count = 0;
		pthread_mutex_init(&sh->lock, NULL);
	}
	*ret = ix;
	return 0;
}

void sdrsa_index_free(struct sdrsa_index *ix)
{
	if (!ix)
		return;
	for (unsigned i = 0; i < SDRSA_INDEX_SHARDS; i++) {
		pthread_mutex_destroy(&ix->shards[i].lock);
		free(ix->shards[i].tab);
	}
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

static inline size_t home_of(const struct sdrsa_index_shard *sh, const struct sdrsa_index_ent *e)
{
	return sdrsa_index_hash(e->ns, e->addr) & sh->mask;
}

struct sdrsa_index_ent *sdrsa_index_find(struct sdrsa_index_shard *sh, uint64_t hash, uint32_t ns,
					 uint64_t addr)
{
	for (size_t i = hash & sh->mask;; i = (i + 1) & sh->mask) {
		struct sdrsa_index_ent *e = &sh->tab[i];

		if (e->ns == 0)
			return NULL;
		if (e->ns == ns && e->addr == addr)
			return e;
	}
}

static int grow(struct sdrsa_index_shard *sh)
{
	size_t nb = (sh->mask + 1) * 2;
	struct sdrsa_index_ent *old = sh->tab, *tab;
	size_t old_n = sh->mask + 1;

	tab = calloc(nb, sizeof(*tab));
	if (!tab)
		return -ENOMEM;
	sh->tab = tab;
	sh->mask = nb - 1;
	for (size_t j = 0; j < old_n; j++) {
		size_t i;

		if (old[j].ns == 0)
			continue;
		for (i = home_of(sh, &old[j]); tab[i].ns; i = (i + 1) & sh->mask)
			;
		tab[i] = old[j];
	}
	free(old);
	return 0;
}

int sdrsa_index_insert(struct sdrsa_index_shard *sh, uint64_t hash, uint32_t ns, uint64_t addr,
		       struct sdrsa_index_ent **ret)
{
	size_t i;

	if ((sh->count + 1) * 4 > (sh->mask + 1) * 3) {
		int rc = grow(sh);
		if (rc)
			return rc;
	}
	for (i = hash & sh->mask; sh->tab[i].ns; i = (i + 1) & sh->mask)
		;
	sh->tab[i].ns = ns;
	sh->tab[i].addr = addr;
	sh->tab[i].csum = 0;
	sh->tab[i].slot = SDRSA_SLOT_ZERO;
	sh->count++;
	*ret = &sh->tab[i];
	return 0;
}

void sdrsa_index_remove(struct sdrsa_index_shard *sh, struct sdrsa_index_ent *e)
{
	size_t i = (size_t)(e - sh->tab), j = i;

	/* Backward-shift deletion: pull later members of the probe run into the
	 * hole unless that would move them before their home bucket. */
	for (;;) {
		size_t k;

		sh->tab[i].ns = 0;
		for (;;) {
			j = (j + 1) & sh->mask;
			if (sh->tab[j].ns == 0) {
				sh->count--;
				return;
			}
			k = home_of(sh, &sh->tab[j]);
			/* Leave the entry if its home k lies cyclically in (i, j]. */
			if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
				continue;
			break;
		}
		sh->tab[i] = sh->tab[j];
		i = j;
	}
}

uint64_t sdrsa_index_remove_ns(struct sdrsa_index *ix, uint32_t ns,
			       void (*cb)(void *userdata, const struct sdrsa_index_ent *e),
			       void *userdata)
{
	uint64_t removed = 0;

	for (unsigned s = 0; s < SDRSA_INDEX_SHARDS; s++) {
		struct sdrsa_index_shard *sh = &ix->shards[s];

		pthread_mutex_lock(&sh->lock);
		/* Removal shifts later entries back into bucket i, so bucket i
		 * is looked at again; entries never move to a bucket already
		 * passed that could hold one of ns (those were all removed). */
		for (size_t i = 0; i <= sh->mask;) {
			struct sdrsa_index_ent *e = &sh->tab[i];

			if (e->ns != ns) {
				i++;
				continue;
			}
			if (cb)
				cb(userdata, e);
			sdrsa_index_remove(sh, e);
			removed++;
		}
		pthread_mutex_unlock(&sh->lock);
	}
	return removed;
}

uint64_t sdrsa_index_count(struct sdrsa_index *ix)
{
	uint64_t n = 0;

	for (unsigned s = 0; s < SDRSA_INDEX_SHARDS; s++) {
		pthread_mutex_lock(&ix->shards[s].lock);
		n += ix->shards[s].count;
		pthread_mutex_unlock(&ix->shards[s].lock);
	}
	return n;
}
