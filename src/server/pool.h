/* SPDX-License-Identifier: MIT */
/*
 * The page pool: one anonymous mapping of SIZE bytes, reserved when the
 * server starts, cut into 4 KiB slots named by u32 indices. The pool knows
 * nothing of clients or addresses; the index (index.h) says which slot holds
 * which page, and the store (store.h) ties the two together.
 *
 * Allocation takes a slot from a stack of freed slots or, while it lasts, the
 * next never-used slot ("fresh" slots), so the stack array is touched only by
 * frees and a new pool costs no initialisation. One mutex protects the stack
 * and the fresh counter; it is a leaf lock (nothing is taken while holding it).
 * Slot contents are not protected by the pool: the index shard lock of the
 * page that owns a slot protects its bytes (see docs/THREADS.md).
 */
#ifndef SDRSA_SERVER_POOL_H
#define SDRSA_SERVER_POOL_H

#include <stdint.h>

#include <sdrsa/protocol.h>

/* Slots are u32; this value is never a slot (index.h uses it for zero pages). */
#define SDRSA_POOL_MAX_PAGES 0xfffffff0u

struct sdrsa_pool;

/*
 * Reserve a pool of `pages` slots. With `lock`, the pool is populated and
 * locked in RAM (mlock), so it can never be swapped or fail to fault in later.
 * The mapping is excluded from core dumps: it holds other hosts' memory.
 * Returns 0, -EINVAL (0 pages or over SDRSA_POOL_MAX_PAGES), -ENOMEM (mmap
 * failed) or -errno of mlock (-EPERM, -ENOMEM: RLIMIT_MEMLOCK too low).
 */
int sdrsa_pool_new(uint64_t pages, int lock, struct sdrsa_pool **ret);
void sdrsa_pool_free(struct sdrsa_pool *p);

/* Take a slot: 0 and *slot, or -ENOSPC when every slot is in use. */
int sdrsa_pool_alloc(struct sdrsa_pool *p, uint32_t *slot);
/* Give a slot back. Its bytes are left as they are (the next owner overwrites
 * the whole page before anyone can read it). */
void sdrsa_pool_release(struct sdrsa_pool *p, uint32_t slot);

/*
 * Pins: a slot whose bytes are being sent straight to a socket (a GET reply
 * sent from the pool, see docs/THREADS.md) is pinned for the length of that
 * send, so that it is neither handed to another page nor overwritten while
 * the kernel copies it.
 *  - sdrsa_pool_pin() is called under the index shard lock of the page that
 *    owns the slot (so a pin is never taken on a slot that has no owner);
 *  - sdrsa_pool_unpin() needs no lock;
 *  - a page that gives its slot up (freed, replaced, turned into a zero page)
 *    calls sdrsa_pool_retire() under its shard lock instead of
 *    sdrsa_pool_release(): the slot is released at once if nobody pins it,
 *    else by the last sdrsa_pool_unpin();
 *  - sdrsa_pool_pinned() says, under the owner's shard lock, whether the slot
 *    may be written in place (0: nobody reads it, nobody can start to).
 * No pin is ever held across a lock acquisition that can wait for a pin.
 */
void sdrsa_pool_pin(struct sdrsa_pool *p, uint32_t slot);
void sdrsa_pool_unpin(struct sdrsa_pool *p, uint32_t slot);
void sdrsa_pool_retire(struct sdrsa_pool *p, uint32_t slot);
int sdrsa_pool_pinned(const struct sdrsa_pool *p, uint32_t slot);
/* Retired slots still pinned (they come back when their sends end): while
 * this is not 0, an -ENOSPC of sdrsa_pool_alloc() is only temporary. */
uint64_t sdrsa_pool_retiring(const struct sdrsa_pool *p);

/* The 4096 bytes of a slot. */
void *sdrsa_pool_page(const struct sdrsa_pool *p, uint32_t slot);

uint64_t sdrsa_pool_pages(const struct sdrsa_pool *p);
/* Slots in use (a relaxed snapshot). */
uint64_t sdrsa_pool_used(const struct sdrsa_pool *p);

/*
 * MemAvailable from /proc/meminfo, in bytes. Returns 0 or -errno (-ENOENT
 * when the kernel does not report it).
 */
int sdrsa_mem_available(uint64_t *bytes);

#endif
