/* SPDX-License-Identifier: MIT */
/*
 * Page pool; see pool.h. The free-slot stack is an mmap'd u32 array as long as
 * the pool (0.1% of its size), reserved but untouched until slots are freed.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "server/pool.h"

struct sdrsa_pool {
	uint8_t *base;	      /* first slot; immutable */
	size_t bytes;	      /* length of the mapping at b.base */
	uint32_t npages;      /* slots in the pool */
	int locked;	      /* mlock'd */
	pthread_mutex_t lock; /* protects stack, nfree, next_fresh */
	uint32_t *stack;      /* freed slots, npages long */
	size_t stack_bytes;
	uint32_t nfree;	       /* entries in stack */
	uint32_t next_fresh;   /* slots >= this were never handed out */
	_Atomic uint64_t used; /* slots handed out and not released */
	/* Per slot: pins in the low bits, PIN_RETIRED once its page gave it
	 * up while pinned. mmap'd like the stack, touched only by pins. */
	_Atomic uint32_t *pins;
	size_t pins_bytes;
	_Atomic uint64_t retiring; /* slots retired and still pinned */
};

#define PIN_RETIRED 0x80000000u

int sdrsa_pool_new(uint64_t pages, int lock, struct sdrsa_pool **ret)
{
	struct sdrsa_pool *p;
	const int flags = MAP_PRIVATE | MAP_ANONYMOUS;
	int rc;

	if (!ret || pages == 0 || pages > SDRSA_POOL_MAX_PAGES)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->npages = (uint32_t)pages;
	p->bytes = (size_t)pages * SDRSA_PAGE_SIZE;
	p->base = mmap(NULL, p->bytes, PROT_READ | PROT_WRITE, flags, -1, 0);
	if (p->base == MAP_FAILED) {
		rc = -ENOMEM;
		goto out_free;
	}
	/* Other hosts' memory must not end up in a core file. */
	(void)madvise(p->base, p->bytes, MADV_DONTDUMP);
	if (lock) {
		/*
		 * mlock() populates the whole pool now. Ask for transparent huge
		 * pages first: fewer TLB misses on a pool that is resident anyway.
		 * (Population speed is set by zeroing memory, not by the fault
		 * count: 2 GiB took 6.5 s with 4 KiB pages and 7.1 s with huge
		 * pages on this project's VMs.) Without --lock the pool stays on
		 * small pages, so that a first put into a region does not pay for
		 * zeroing 2 MiB.
		 */
		(void)madvise(p->base, p->bytes, MADV_HUGEPAGE);
		if (mlock(p->base, p->bytes) < 0) {
			rc = -errno;
			goto out_unmap;
		}
		p->locked = 1;
	}
	p->stack_bytes = (size_t)pages * sizeof(uint32_t);
	p->stack = mmap(NULL, p->stack_bytes, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p->stack == MAP_FAILED) {
		rc = -ENOMEM;
		goto out_unlock;
	}
	p->pins_bytes = (size_t)pages * sizeof(*p->pins);
	p->pins = mmap(NULL, p->pins_bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p->pins == MAP_FAILED) {
		rc = -ENOMEM;
		goto out_stack;
	}
	pthread_mutex_init(&p->lock, NULL);
	*ret = p;
	return 0;

out_stack:
	munmap(p->stack, p->stack_bytes);
out_unlock:
	if (p->locked)
		munlock(p->base, p->bytes);
out_unmap:
	munmap(p->base, p->bytes);
out_free:
	free(p);
	return rc;
}

void sdrsa_pool_free(struct sdrsa_pool *p)
{
	if (!p)
		return;
	pthread_mutex_destroy(&p->lock);
	munmap(p->pins, p->pins_bytes);
	munmap(p->stack, p->stack_bytes);
	if (p->locked)
		munlock(p->base, p->bytes);
	munmap(p->base, p->bytes);
	free(p);
}

int sdrsa_pool_alloc(struct sdrsa_pool *p, uint32_t *slot)
{
	int rc = 0;

	pthread_mutex_lock(&p->lock);
	if (p->nfree)
		*slot = p->stack[--p->nfree];
	else if (p->next_fresh < p->npages)
		*slot = p->next_fresh++;
	else
		rc = -ENOSPC;
	pthread_mutex_unlock(&p->lock);
	if (!rc)
		atomic_fetch_add_explicit(&p->used, 1, memory_order_relaxed);
	return rc;
}

void sdrsa_pool_release(struct sdrsa_pool *p, uint32_t slot)
{
	pthread_mutex_lock(&p->lock);
	/* A double release would hand one slot to two pages: never continue. */
	if (slot >= p->next_fresh || p->nfree >= p->next_fresh)
		abort();
	p->stack[p->nfree++] = slot;
	pthread_mutex_unlock(&p->lock);
	atomic_fetch_sub_explicit(&p->used, 1, memory_order_relaxed);
}

void sdrsa_pool_pin(struct sdrsa_pool *p, uint32_t slot)
{
	/* Relaxed: the owner's shard lock, held here and by every writer of
	 * the slot's bytes, orders this pin before any later write. */
	atomic_fetch_add_explicit(&p->pins[slot], 1, memory_order_relaxed);
}

void sdrsa_pool_unpin(struct sdrsa_pool *p, uint32_t slot)
{
	/* Release: our reads of the slot end before anyone sees it unpinned. */
	uint32_t old = atomic_fetch_sub_explicit(&p->pins[slot], 1, memory_order_acq_rel);

	if (old == (PIN_RETIRED | 1u)) {
		/* The page let the slot go while we sent it: ours to release. */
		atomic_store_explicit(&p->pins[slot], 0, memory_order_relaxed);
		sdrsa_pool_release(p, slot);
		atomic_fetch_sub_explicit(&p->retiring, 1, memory_order_relaxed);
	}
}

void sdrsa_pool_retire(struct sdrsa_pool *p, uint32_t slot)
{
	uint32_t old;

	/* No new pin can come (the caller holds the owner's shard lock and the
	 * page is going): unpinned now means unpinned for good. */
	if (!atomic_load_explicit(&p->pins[slot], memory_order_acquire)) {
		sdrsa_pool_release(p, slot);
		return;
	}
	atomic_fetch_add_explicit(&p->retiring, 1, memory_order_relaxed);
	old = atomic_fetch_or_explicit(&p->pins[slot], PIN_RETIRED, memory_order_acq_rel);
	if (old == 0) {
		/* The last pin went in between. */
		atomic_store_explicit(&p->pins[slot], 0, memory_order_relaxed);
		sdrsa_pool_release(p, slot);
		atomic_fetch_sub_explicit(&p->retiring, 1, memory_order_relaxed);
	}
}

int sdrsa_pool_pinned(const struct sdrsa_pool *p, uint32_t slot)
{
	return atomic_load_explicit(&p->pins[slot], memory_order_acquire) != 0;
}

uint64_t sdrsa_pool_retiring(const struct sdrsa_pool *p)
{
	return atomic_load_explicit(&((struct sdrsa_pool *)p)->retiring, memory_order_relaxed);
}

void *sdrsa_pool_page(const struct sdrsa_pool *p, uint32_t slot)
{
	return p->base + (size_t)slot * SDRSA_PAGE_SIZE;
}

uint64_t sdrsa_pool_pages(const struct sdrsa_pool *p)
{
	return p->npages;
}

uint64_t sdrsa_pool_used(const struct sdrsa_pool *p)
{
	return atomic_load_explicit(&((struct sdrsa_pool *)p)->used, memory_order_relaxed);
}

int sdrsa_mem_available(uint64_t *bytes)
{
	char line[256];
	FILE *f = fopen("/proc/meminfo", "re");
	int rc = -ENOENT;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long kb;

		if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) {
			*bytes = (uint64_t)kb * 1024;
			rc = 0;
			break;
		}
	}
	fclose(f);
	return rc;
}
