/* SPDX-License-Identifier: MIT */
/*
 * The page index: (namespace id, page address) -> (slot or zero marker, the
 * client's page checksum). A hash table split into SDRSA_INDEX_SHARDS shards,
 * each an open-addressing table (linear probing, backward-shift deletion, no
 * tombstones) with its own mutex, so workers serving different pages rarely
 * meet on a lock. A shard doubles when it is 3/4 full; that is the only
 * allocation on the request path, amortised over the inserts that filled it.
 *
 * Locking: the caller takes a shard with sdrsa_index_lock() and performs
 * find/insert/remove under it; entry pointers are valid until the next insert
 * or remove on that shard or until it is unlocked. The shard lock also
 * protects the bytes of every slot that an entry of the shard points to (see
 * docs/THREADS.md). Lock order: shard lock, then the pool lock.
 */
#ifndef SDRSA_SERVER_INDEX_H
#define SDRSA_SERVER_INDEX_H

#include <stddef.h>
#include <stdint.h>

#define SDRSA_INDEX_SHARDS 64u
/* Slot value of an all-zero page: it has no slot. */
#define SDRSA_SLOT_ZERO 0xffffffffu

struct sdrsa_index_ent {
	uint64_t addr; /* page address */
	uint64_t csum; /* client's sdrsa_page_csum() of the page; 0 for zero pages */
	uint32_t ns;   /* namespace id; 0 marks an empty bucket */
	uint32_t slot; /* pool slot, or SDRSA_SLOT_ZERO */
};

struct sdrsa_index;
struct sdrsa_index_shard;

/* Returns 0 or -ENOMEM. Each shard starts with a small table. */
int sdrsa_index_new(struct sdrsa_index **ret);
void sdrsa_index_free(struct sdrsa_index *ix);

/* Hash of a key; pass it to the functions below. ns must be non-zero. */
uint64_t sdrsa_index_hash(uint32_t ns, uint64_t addr);

struct sdrsa_index_shard *sdrsa_index_lock(struct sdrsa_index *ix, uint64_t hash);
void sdrsa_index_unlock(struct sdrsa_index_shard *sh);

/* With the shard locked: the entry of (ns, addr) or NULL. */
struct sdrsa_index_ent *sdrsa_index_find(struct sdrsa_index_shard *sh, uint64_t hash, uint32_t ns,
					 uint64_t addr);
/*
 * With the shard locked, (ns, addr) absent: add it and return its entry with
 * ns and addr set, slot SDRSA_SLOT_ZERO and csum 0, in *ret. Returns 0 or
 * -ENOMEM (the table could not grow; nothing changed).
 */
int sdrsa_index_insert(struct sdrsa_index_shard *sh, uint64_t hash, uint32_t ns, uint64_t addr,
		       struct sdrsa_index_ent **ret);
/* With the shard locked: remove an entry returned by find or insert. */
void sdrsa_index_remove(struct sdrsa_index_shard *sh, struct sdrsa_index_ent *e);

/*
 * Remove every entry of namespace ns, one shard at a time (each shard locked
 * while it is scanned). For each removed entry, `cb` is called with the shard
 * still locked (it may release the entry's slot). Returns the number removed.
 * Cost: a pass over the whole index, which is fine for FREE_ALL (rare) and
 * saves a per-namespace list on every entry.
 */
uint64_t sdrsa_index_remove_ns(struct sdrsa_index *ix, uint32_t ns,
			       void (*cb)(void *userdata, const struct sdrsa_index_ent *e),
			       void *userdata);

/* Entries in the whole index (a snapshot taken shard by shard). */
uint64_t sdrsa_index_count(struct sdrsa_index *ix);

#endif
