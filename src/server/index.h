/* SPDX-License-Identifier: MIT */
/*
 * The page index: (namespace id, page address) -> (slot or zero marker, the
 * client's page checksum). It is split into SDRSA_INDEX_SHARDS shards, each
 * with its own mutex, so workers serving different pages rarely meet on a
 * lock; the shard of a key is chosen by the top bits of its hash. Inside a
 * shard every namespace has a table of its own (a "sub-table": open
 * addressing, linear probing, backward-shift deletion, no tombstones), found
 * by namespace id in an array. A lookup is one array load and one probe run,
 * as with one table per shard, but the entries of one namespace are never
 * mixed with another's: FREE_ALL visits only the namespace's own buckets
 * (sdrsa_index_remove_ns()), whatever the other namespaces hold.
 *
 * Memory follows what is stored: a sub-table is allocated at the first entry,
 * doubles when 3/4 full, halves when under 1/8 full and is released when its
 * last entry goes (a few empty small tables are kept per shard for reuse, so
 * a page put and dropped in turn does not call malloc each time). Resizing is
 * the only allocation on the request path, amortised over the inserts or
 * removes that led to it.
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

/* Most namespace ids an index takes (1 GiB of address space reserved). */
#define SDRSA_INDEX_MAX_NS (1u << 20)

/*
 * An index for namespace ids 1..max_ns. Costs nothing per namespace until it
 * stores a page: the per-id arrays are reserved, not touched (1 KiB of address
 * space per id). Returns 0, -EINVAL (max_ns 0 or over SDRSA_INDEX_MAX_NS) or
 * -ENOMEM.
 */
int sdrsa_index_new(uint32_t max_ns, struct sdrsa_index **ret);
void sdrsa_index_free(struct sdrsa_index *ix);

/* Hash of a key; pass it to the functions below. ns must be non-zero. */
uint64_t sdrsa_index_hash(uint32_t ns, uint64_t addr);

struct sdrsa_index_shard *sdrsa_index_lock(struct sdrsa_index *ix, uint64_t hash);
void sdrsa_index_unlock(struct sdrsa_index_shard *sh);

/* With the shard locked: the entry of (ns, addr) or NULL. */
struct sdrsa_index_ent *sdrsa_index_find(struct sdrsa_index_shard *sh, uint64_t hash, uint32_t ns,
					 uint64_t addr);
/*
 * A cache hint that takes no lock: prefetch the bucket where a lookup of the
 * key with this hash in namespace ns starts. The sub-table descriptor is read
 * with relaxed atomic loads (its writers store it atomically under the shard
 * lock); a stale descriptor costs a useless prefetch, never a read: nothing
 * is dereferenced. For a frame of many lookups, so that their cache misses
 * overlap instead of waiting one by one behind each lock's atomic operation.
 */
void sdrsa_index_prefetch(struct sdrsa_index *ix, uint64_t hash, uint32_t ns);
/*
 * With the shard locked, (ns, addr) absent: add it and return its entry with
 * ns and addr set, slot SDRSA_SLOT_ZERO and csum 0, in *ret. Returns 0 or
 * -ENOMEM (the table could not grow; nothing changed).
 */
int sdrsa_index_insert(struct sdrsa_index_shard *sh, uint64_t hash, uint32_t ns, uint64_t addr,
		       struct sdrsa_index_ent **ret);
/* With the shard locked: remove an entry returned by find or insert. Never
 * fails (a shrink that cannot allocate is skipped). */
void sdrsa_index_remove(struct sdrsa_index_shard *sh, struct sdrsa_index_ent *e);

/*
 * Remove every entry of namespace ns. Only the shards that hold entries of ns
 * are locked, one at a time, and only the buckets of its own sub-tables are
 * looked at: the cost is proportional to the pages of ns (at most about 8
 * buckets per entry, see above), not to the size of the index. For each
 * removed entry, `cb` is called with the shard still locked (it may release
 * the entry's slot). Returns the number removed.
 *
 * An entry inserted concurrently (another connection of the same namespace)
 * may survive, as if it had been inserted just after the call.
 */
uint64_t sdrsa_index_remove_ns(struct sdrsa_index *ix, uint32_t ns,
			       void (*cb)(void *userdata, const struct sdrsa_index_ent *e),
			       void *userdata);

struct sdrsa_index_usage {
	uint64_t entries;    /* entries in the whole index */
	uint64_t buckets;    /* buckets allocated to sub-tables (24 bytes each) */
	uint64_t ns_scanned; /* buckets looked at by sdrsa_index_remove_ns() so far:
			      * a cost meter, tests check it */
};
/* A snapshot taken shard by shard. */
void sdrsa_index_usage(struct sdrsa_index *ix, struct sdrsa_index_usage *out);

#endif
