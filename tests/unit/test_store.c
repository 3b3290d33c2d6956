/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the page store (src/server/store.h) without sockets: round
 * trips with content checks, overwrite in place, zero pages, a full pool, the
 * quota, namespace isolation and persistence, checksum refusal, index growth
 * and deletion, namespace recycling, the cost of FREE_ALL (its own pages only)
 * and index shrinking, the GET prefetch hint (no effect but on the cache), and
 * concurrent use (run it under TSan).
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <stdatomic.h>

#include <cmocka.h>

#include <sdrsa/protocol.h>

#include "server/store.h"

#define PAGE SDRSA_PAGE_SIZE

/* Deterministic page contents for (seed, addr). */
static void fill(uint8_t *p, uint64_t seed, uint64_t addr)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull ^ addr ^ 0x5bd1e995u;

	for (size_t i = 0; i < PAGE; i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(p + i, &x, 8);
	}
}

static int put_pattern(struct sdrsa_store *st, struct sdrsa_ns *ns, uint64_t addr, uint64_t seed)
{
	uint8_t p[PAGE];

	fill(p, seed, addr);
	return sdrsa_store_put(st, ns, addr, p, sdrsa_page_csum(p, addr));
}

static void assert_pattern(struct sdrsa_store *st, struct sdrsa_ns *ns, uint64_t addr,
			   uint64_t seed)
{
	uint8_t want[PAGE], got[PAGE];
	uint64_t csum = 0;

	fill(want, seed, addr);
	assert_int_equal(sdrsa_store_get(st, ns, addr, got, &csum), 0);
	assert_memory_equal(got, want, PAGE);
	assert_true(csum == sdrsa_page_csum(want, addr));
}

static struct sdrsa_store *new_store(uint64_t pages, uint64_t quota, unsigned max_ns)
{
	struct sdrsa_store_config cfg = {
	    .pool_pages = pages,
	    .quota_pages = quota,
	    .max_namespaces = max_ns,
	};
	struct sdrsa_store *st = NULL;

	assert_int_equal(sdrsa_store_new(&cfg, &st), 0);
	assert_non_null(st);
	return st;
}

static struct sdrsa_store_counts counts(struct sdrsa_store *st)
{
	struct sdrsa_store_counts c;

	sdrsa_store_counts(st, &c);
	return c;
}

static void test_bad_config(void **state)
{
	struct sdrsa_store_config cfg = {.pool_pages = 0};
	struct sdrsa_store *st = NULL;

	(void)state;
	assert_int_equal(sdrsa_store_new(&cfg, &st), -EINVAL);
	assert_null(st);
	assert_int_equal(sdrsa_store_new(NULL, &st), -EINVAL);
	/* More namespace ids than the index reserves room for. */
	cfg.pool_pages = 1;
	cfg.max_namespaces = SDRSA_INDEX_MAX_NS + 1;
	assert_int_equal(sdrsa_store_new(&cfg, &st), -EINVAL);
	assert_null(st);
	cfg.max_namespaces = SDRSA_INDEX_MAX_NS;
	assert_int_equal(sdrsa_store_new(&cfg, &st), 0);
	sdrsa_store_free(st);
	sdrsa_store_free(NULL);
}

static void test_roundtrip(void **state)
{
	struct sdrsa_store *st = new_store(16, 0, 0);
	struct sdrsa_ns *ns;
	uint8_t page[PAGE];
	uint64_t csum = 1;

	(void)state;
	assert_int_equal(sdrsa_store_open(st, "vm1", &ns), 0);
	assert_true(ns->id != 0);
	assert_int_equal(sdrsa_store_get(st, ns, 0x1000, page, &csum), -ENOENT);
	assert_int_equal(csum, 1); /* untouched on failure */
	for (uint64_t a = 0; a < 16; a++)
		assert_int_equal(put_pattern(st, ns, a * PAGE, 1), 0);
	for (uint64_t a = 0; a < 16; a++)
		assert_pattern(st, ns, a * PAGE, 1);
	assert_int_equal(counts(st).used_pages, 16);
	assert_int_equal(atomic_load(&ns->pages), 16);
	assert_int_equal(counts(st).namespaces, 1);
	/* Addresses far apart and at the top of the range work too. */
	assert_int_equal(sdrsa_store_drop(st, ns, 0), 0);
	assert_int_equal(put_pattern(st, ns, UINT64_MAX - PAGE + 1, 2), 0);
	assert_pattern(st, ns, UINT64_MAX - PAGE + 1, 2);
	sdrsa_store_close(st, ns);
	sdrsa_store_free(st);
}

static void test_misaligned(void **state)
{
	struct sdrsa_store *st = new_store(4, 0, 0);
	struct sdrsa_ns *ns;
	uint8_t page[PAGE] = {1};
	uint64_t csum;

	(void)state;
	assert_int_equal(sdrsa_store_open(st, "vm1", &ns), 0);
	assert_int_equal(sdrsa_store_put(st, ns, 0x1001, page, sdrsa_page_csum(page, 0x1001)),
			 -EINVAL);
	assert_int_equal(sdrsa_store_get(st, ns, 0x10, page, &csum), -EINVAL);
	assert_int_equal(sdrsa_store_drop(st, ns, 0x800), -EINVAL);
	assert_int_equal(counts(st).used_pages, 0);
	sdrsa_store_free(st);
}

static void test_overwrite_in_place(void **state)
{
	struct sdrsa_store *st = new_store(2, 0, 0);
	struct sdrsa_ns *ns;

	(void)state;
	assert_int_equal(sdrsa_store_open(st, "vm1", &ns), 0);
	assert_int_equal(put_pattern(st, ns, 0x2000, 1), 0);
	assert_int_equal(put_pattern(st, ns, 0x3000, 1), 0);
	/* The pool is full, yet replacing a page needs no new slot. */
	for (uint64_t seed = 2; seed < 10; seed++) {
		assert_int_equal(put_pattern(st, ns, 0x2000, seed), 0);
		assert_pattern(st, ns, 0x2000, seed);
	}
	assert_pattern(st, ns, 0x3000, 1);
	assert_int_equal(counts(st).used_pages, 2);
	assert_int_equal(atomic_load(&ns->pages), 2);
	sdrsa_store_free(st);
}

static void test_zero_pages(void **state)
{
	struct sdrsa_store *st = new_store(1, 0, 0);
	struct sdrsa_ns *ns;
	uint8_t zero[PAGE], page[PAGE];
	uint64_t csum = 7;

	(void)state;
	memset(zero, 0, sizeof(zero));
	assert_int_equal(sdrsa_store_open(st, "vm1", &ns), 0);
	/* Sent with data that happens to be zero: checked, then stored slot-less. */
	assert_int_equal(sdrsa_store_put(st, ns, 0x1000, zero, sdrsa_page_csum(zero, 0x1000)), 1);
	/* Flagged zero by the client: no data at all. */
	assert_int_equal(sdrsa_store_put(st, ns, 0x2000, NULL, 0), 1);
	assert_int_equal(counts(st).used_pages, 0);
	assert_int_equal(counts(st).zero_pages, 2);
	assert_int_equal(atomic_load(&ns->pages), 2);
	assert_int_equal(atomic_load(&ns->zero_pages), 2);
	memset(page, 0xaa, sizeof(page));
	assert_int_equal(sdrsa_store_get(st, ns, 0x1000, page, &csum), 1);
	assert_int_equal(csum, 0);
	assert_int_equal(page[0], 0xaa); /* the caller's buffer is left alone */

	/* Zero -> data takes the only slot; data -> zero gives it back. */
	assert_int_equal(put_pattern(st, ns, 0x1000, 3), 0);
	assert_pattern(st, ns, 0x1000, 3);
	assert_int_equal(counts(st).used_pages, 1);
	assert_int_equal(counts(st).zero_pages, 1);
	/* The pool is full now: zero -> data is refused and the zero page stays. */
	assert_int_equal(put_pattern(st, ns, 0x2000, 4), -ENOSPC);
	assert_int_equal(sdrsa_store_get(st, ns, 0x2000, page, &csum), 1);
	/* A new zero page needs no slot, so a full pool still takes it. */
	assert_int_equal(sdrsa_store_put(st, ns, 0x9000, NULL, 0), 1);
	assert_int_equal(sdrsa_store_put(st, ns, 0x1000, NULL, 0), 1);
	assert_int_equal(counts(st).used_pages, 0);
	assert_int_equal(counts(st).zero_pages, 3);
	assert_int_equal(atomic_load(&ns->pages), 3);
	assert_int_equal(put_pattern(st, ns, 0x2000, 4), 0);
	assert_pattern(st, ns, 0x2000, 4);
	assert_int_equal(sdrsa_store_drop(st, ns, 0x1000), 0);
	assert_int_equal(sdrsa_store_get(st, ns, 0x1000, page, &csum), -ENOENT);
	assert_int_equal(counts(st).zero_pages, 1);
	assert_int_equal(sdrsa_store_drop_all(st, ns), 2);
	assert_int_equal(counts(st).zero_pages, 0);
	assert_int_equal(counts(st).used_pages, 0);
	sdrsa_store_free(st);
}

static void test_zero_limit(void **state)
{
	struct sdrsa_store_config cfg = {.pool_pages = 1, .max_zero_pages = 3};
	struct sdrsa_store *st;
	struct sdrsa_ns *ns;

	(void)state;
	assert_int_equal(sdrsa_store_new(&cfg, &st), 0);
	assert_int_equal(sdrsa_store_open(st, "vm1", &ns), 0);
	for (uint64_t a = 0; a < 3; a++)
		assert_int_equal(sdrsa_store_put(st, ns, a * PAGE, NULL, 0), 1);
	assert_int_equal(sdrsa_store_put(st, ns, 3 * PAGE, NULL, 0), -ENOSPC);
	assert_int_equal(atomic_load(&ns->pages), 3);
	sdrsa_store_free(st);
}

static void test_pool_full(void **state)
{
	struct sdrsa_store *st = new_store(8, 0, 0);
	struct sdrsa_ns *a, *b;

	(void)state;
	assert_int_equal(sdrsa_store_open(st, "a", &a), 0);
	assert_int_equal(sdrsa_store_open(st, "b", &b), 0);
	for (uint64_t i = 0; i < 5; i++)
		assert_int_equal(put_pattern(st, a, i * PAGE, 10), 0);
	for (uint64_t i = 0; i < 3; i++)
		assert_int_equal(put_pattern(st, b, i * PAGE, 20), 0);
	/* Full: refused, and nothing stored was dropped to make room. */
	assert_int_equal(put_pattern(st, a, 100 * PAGE, 11), -ENOSPC);
	assert_int_equal(put_pattern(st, b, 100 * PAGE, 21), -ENOSPC);
	assert_int_equal(counts(st).used_pages, 8);
	assert_int_equal(atomic_load(&a->pages), 5);
	for (uint64_t i = 0; i < 5; i++)
		assert_pattern(st, a, i * PAGE, 10);
	for (uint64_t i = 0; i < 3; i++)
		assert_pattern(st, b, i * PAGE, 20);
	/* Space freed by one namespace serves another. */
	assert_int_equal(sdrsa_store_drop(st, a, 0), 0);
	assert_int_equal(put_pattern(st, b, 100 * PAGE, 21), 0);
	assert_pattern(st, b, 100 * PAGE, 21);
	assert_int_equal(put_pattern(st, a, 0, 10), -ENOSPC);
	sdrsa_store_free(st);
}

static void test_quota(void **state)
{
	struct sdrsa_store *st = new_store(64, 4, 0);
	struct sdrsa_ns *a, *b;

	(void)state;
	assert_int_equal(sdrsa_store_quota(st), 4);
	assert_int_equal(sdrsa_store_open(st, "a", &a), 0);
	assert_int_equal(sdrsa_store_open(st, "b", &b), 0);
	assert_int_equal(a->quota, 4);
	for (uint64_t i = 0; i < 3; i++)
		assert_int_equal(put_pattern(st, a, i * PAGE, 1), 0);
	assert_int_equal(sdrsa_store_put(st, a, 3 * PAGE, NULL, 0), 1); /* zero pages count */
	assert_int_equal(put_pattern(st, a, 4 * PAGE, 1), -EDQUOT);
	assert_int_equal(sdrsa_store_put(st, a, 5 * PAGE, NULL, 0), -EDQUOT);
	/* At quota, replacing an existing page is fine. */
	assert_int_equal(put_pattern(st, a, 0, 2), 0);
	assert_pattern(st, a, 0, 2);
	assert_int_equal(atomic_load(&a->pages), 4);
	/* One namespace's quota does not limit another. */
	for (uint64_t i = 0; i < 4; i++)
		assert_int_equal(put_pattern(st, b, i * PAGE, 3), 0);
	/* After a drop there is room again. */
	assert_int_equal(sdrsa_store_drop(st, a, PAGE), 0);
	assert_int_equal(put_pattern(st, a, 4 * PAGE, 1), 0);
	assert_int_equal(counts(st).used_pages, 3 + 4); /* a: 3 data + 1 zero; b: 4 */
	assert_int_equal(counts(st).zero_pages, 1);
	sdrsa_store_free(st);
}

static void test_isolation(void **state)
{
	struct sdrsa_store *st = new_store(64, 0, 0);
	struct sdrsa_ns *a, *b;
	uint8_t page[PAGE];
	uint64_t csum;

	(void)state;
	assert_int_equal(sdrsa_store_open(st, "alice", &a), 0);
	assert_int_equal(sdrsa_store_open(st, "bob", &b), 0);
	assert_true(a->id != b->id);
	for (uint64_t i = 0; i < 10; i++)
		assert_int_equal(put_pattern(st, a, i * PAGE, 100), 0);
	/* Same addresses, other namespace: nothing there. */
	for (uint64_t i = 0; i < 10; i++) {
		assert_int_equal(sdrsa_store_get(st, b, i * PAGE, page, &csum), -ENOENT);
		assert_int_equal(sdrsa_store_drop(st, b, i * PAGE), -ENOENT);
	}
	for (uint64_t i = 0; i < 10; i++)
		assert_int_equal(put_pattern(st, b, i * PAGE, 200), 0);
	for (uint64_t i = 0; i < 10; i++) {
		assert_pattern(st, a, i * PAGE, 100);
		assert_pattern(st, b, i * PAGE, 200);
	}
	assert_int_equal(counts(st).namespaces, 2);
	/* Bob dropping everything leaves Alice's pages alone. */
	assert_int_equal(sdrsa_store_drop_all(st, b), 10);
	assert_int_equal(sdrsa_store_drop_all(st, b), 0);
	assert_int_equal(atomic_load(&b->pages), 0);
	assert_int_equal(counts(st).namespaces, 1);
	for (uint64_t i = 0; i < 10; i++)
		assert_pattern(st, a, i * PAGE, 100);
	assert_int_equal(counts(st).used_pages, 10);
	sdrsa_store_free(st);
}

/* sdrsa_store_prefetch(), _prefetch_write() and _prefetch_index() are cache
 * hints: whatever the address (stored, zero, absent, misaligned, another
 * namespace's), nothing stored or counted changes, and a slot freed and
 * reused by another namespace after a prefetch is read by its new owner
 * only. */
static void test_prefetch(void **state)
{
	struct sdrsa_store *st = new_store(4, 0, 0);
	struct sdrsa_store_counts before, after;
	struct sdrsa_ns *a, *b;
	uint8_t page[PAGE];
	uint64_t csum;

	(void)state;
	assert_int_equal(sdrsa_store_open(st, "alice", &a), 0);
	assert_int_equal(sdrsa_store_open(st, "bob", &b), 0);
	for (uint64_t i = 0; i < 4; i++)
		assert_int_equal(put_pattern(st, a, i * PAGE, 7), 0);
	assert_int_equal(sdrsa_store_put(st, a, 9 * PAGE, NULL, 0), 1);
	sdrsa_store_counts(st, &before);
	for (uint64_t i = 0; i < 12; i++) {
		sdrsa_store_prefetch_index(st, a, i * PAGE);
		sdrsa_store_prefetch_index(st, b, i * PAGE);
		sdrsa_store_prefetch(st, a, i * PAGE);
		sdrsa_store_prefetch(st, b, i * PAGE);
		sdrsa_store_prefetch_write(st, a, i * PAGE);
		sdrsa_store_prefetch_write(st, b, i * PAGE);
	}
	sdrsa_store_prefetch(st, a, PAGE + 1);
	sdrsa_store_prefetch_write(st, a, PAGE + 1);
	sdrsa_store_prefetch_index(st, a, PAGE + 1);
	sdrsa_store_counts(st, &after);
	assert_memory_equal(&before, &after, sizeof(before));
	assert_int_equal(atomic_load(&a->pages), 5);
	assert_int_equal(atomic_load(&b->pages), 0);
	for (uint64_t i = 0; i < 4; i++)
		assert_pattern(st, a, i * PAGE, 7);
	assert_int_equal(sdrsa_store_get(st, a, 9 * PAGE, page, &csum), 1);
	assert_int_equal(sdrsa_store_get(st, b, 0, page, &csum), -ENOENT);
	/* Prefetch, then the slot changes owner before the get: alice's get
	 * finds nothing, bob reads his own bytes. */
	sdrsa_store_prefetch_index(st, a, 0);
	sdrsa_store_prefetch(st, a, 0);
	sdrsa_store_prefetch_write(st, a, 0);
	assert_int_equal(sdrsa_store_drop(st, a, 0), 0);
	assert_int_equal(put_pattern(st, b, 0, 8), 0);
	assert_int_equal(counts(st).used_pages, 4);
	assert_int_equal(sdrsa_store_get(st, a, 0, page, &csum), -ENOENT);
	assert_pattern(st, b, 0, 8);
	for (uint64_t i = 1; i < 4; i++)
		assert_pattern(st, a, i * PAGE, 7);
	sdrsa_store_free(st);
}

static void test_checksum_mismatch(void **state)
{
	struct sdrsa_store *st = new_store(8, 0, 0);
	struct sdrsa_ns *ns;
	uint8_t page[PAGE], zero[PAGE];
	uint64_t csum;

	(void)state;
	assert_int_equal(sdrsa_store_open(st, "vm1", &ns), 0);
	fill(page, 5, 0x4000);
	csum = sdrsa_page_csum(page, 0x4000);
	assert_int_equal(sdrsa_store_put(st, ns, 0x4000, page, csum ^ 1), -EBADMSG);
	/* The checksum is seeded with the address: right data, wrong place. */
	assert_int_equal(sdrsa_store_put(st, ns, 0x5000, page, csum), -EBADMSG);
	assert_int_equal(sdrsa_store_get(st, ns, 0x4000, page, &csum), -ENOENT);
	assert_int_equal(counts(st).used_pages, 0);
	assert_int_equal(atomic_load(&ns->pages), 0);
	/* A stored page is not replaced by a corrupted one. */
	assert_int_equal(put_pattern(st, ns, 0x4000, 5), 0);
	fill(page, 6, 0x4000);
	assert_int_equal(sdrsa_store_put(st, ns, 0x4000, page, 12345), -EBADMSG);
	assert_pattern(st, ns, 0x4000, 5);
	/* A zero page sent with data is checked too. */
	memset(zero, 0, sizeof(zero));
	assert_int_equal(sdrsa_store_put(st, ns, 0x4000, zero, 1), -EBADMSG);
	assert_pattern(st, ns, 0x4000, 5);
	sdrsa_store_free(st);
}

static void test_persistence(void **state)
{
	struct sdrsa_store *st = new_store(8, 0, 0);
	struct sdrsa_ns *ns, *again;

	(void)state;
	assert_int_equal(sdrsa_store_open(st, "vm1", &ns), 0);
	assert_int_equal(put_pattern(st, ns, 0x1000, 9), 0);
	sdrsa_store_close(st, ns);
	/* Reconnecting under the same name finds the same namespace. */
	assert_int_equal(sdrsa_store_open(st, "vm1", &again), 0);
	assert_ptr_equal(again, ns);
	assert_pattern(st, again, 0x1000, 9);
	assert_int_equal(sdrsa_store_open(st, "not valid!", &again), -EINVAL);
	assert_int_equal(sdrsa_store_open(st, "", &again), -EINVAL);
	sdrsa_store_free(st);
}

static void test_ns_recycle(void **state)
{
	struct sdrsa_store *st = new_store(8, 0, 2);
	struct sdrsa_ns *a, *b, *c;
	uint32_t id_b;

	(void)state;
	assert_int_equal(sdrsa_store_open(st, "a", &a), 0);
	assert_int_equal(sdrsa_store_open(st, "b", &b), 0);
	id_b = b->id;
	assert_int_equal(put_pattern(st, a, 0, 1), 0);
	/* b held pages once; FREE_ALL emptied it. */
	assert_int_equal(put_pattern(st, b, 0x5000, 2), 0);
	assert_int_equal(sdrsa_store_put(st, b, 0x6000, NULL, 0), 1);
	assert_int_equal(sdrsa_store_drop_all(st, b), 2);
	/* Both in use (a session each): no room for a third name. */
	assert_int_equal(sdrsa_store_open(st, "c", &c), -ENOSPC);
	/* b has no session and no page: its id is recycled for c. */
	sdrsa_store_close(st, b);
	assert_int_equal(sdrsa_store_open(st, "c", &c), 0);
	assert_int_equal(c->id, id_b);
	assert_string_equal(c->name, "c");
	/* The recycled id starts empty: nothing of b's is visible to c. */
	{
		uint8_t page[PAGE];
		uint64_t csum;

		assert_int_equal(sdrsa_store_get(st, c, 0x5000, page, &csum), -ENOENT);
		assert_int_equal(sdrsa_store_get(st, c, 0x6000, page, &csum), -ENOENT);
		assert_int_equal(atomic_load(&c->pages), 0);
		assert_int_equal(sdrsa_store_drop_all(st, c), 0);
	}
	/* a has pages: never recycled even without a session. */
	sdrsa_store_close(st, a);
	assert_int_equal(sdrsa_store_open(st, "d", &b), -ENOSPC);
	assert_int_equal(sdrsa_store_open(st, "a", &a), 0);
	assert_pattern(st, a, 0, 1);
	sdrsa_store_free(st);
}

/* Enough pages to grow every index shard several times, then deletions in a
 * pattern that exercises backward-shift deletion. */
static void test_many_pages(void **state)
{
	const uint64_t n = 20000;
	struct sdrsa_store *st = new_store(n, 0, 0);
	struct sdrsa_ns *a, *b;
	uint8_t page[PAGE];
	uint64_t csum;

	(void)state;
	assert_int_equal(sdrsa_store_open(st, "a", &a), 0);
	assert_int_equal(sdrsa_store_open(st, "b", &b), 0);
	for (uint64_t i = 0; i < n / 2; i++) {
		assert_int_equal(put_pattern(st, a, i * 7 * PAGE, 1), 0);
		assert_int_equal(put_pattern(st, b, i * PAGE, 2), 0);
	}
	assert_int_equal(put_pattern(st, a, 1ull << 40, 1), -ENOSPC);
	for (uint64_t i = 0; i < n / 2; i += 3)
		assert_int_equal(sdrsa_store_drop(st, a, i * 7 * PAGE), 0);
	for (uint64_t i = 0; i < n / 2; i++) {
		if (i % 3 == 0)
			assert_int_equal(sdrsa_store_get(st, a, i * 7 * PAGE, page, &csum),
					 -ENOENT);
		else
			assert_pattern(st, a, i * 7 * PAGE, 1);
	}
	assert_int_equal(sdrsa_store_drop_all(st, a), n / 2 - (n / 2 + 2) / 3);
	for (uint64_t i = 0; i < n / 2; i++)
		assert_pattern(st, b, i * PAGE, 2);
	assert_int_equal(counts(st).used_pages, n / 2);
	sdrsa_store_free(st);
}

static struct sdrsa_index_usage usage(struct sdrsa_store *st)
{
	struct sdrsa_index_usage u;

	sdrsa_store_index_usage(st, &u);
	return u;
}

/* Whether address i of the big namespace below holds a zero page. */
static int big_zero(uint64_t i)
{
	return i % 5 != 0;
}

static void assert_big_intact(struct sdrsa_store *st, struct sdrsa_ns *ns, uint64_t n)
{
	uint8_t page[PAGE];
	uint64_t csum;

	for (uint64_t i = 0; i < n; i++) {
		if (big_zero(i))
			assert_int_equal(sdrsa_store_get(st, ns, i * PAGE, page, &csum), 1);
		else
			assert_pattern(st, ns, i * PAGE, 7);
	}
}

/*
 * FREE_ALL looks only at the namespace's own index buckets. With the index
 * scanned whole, the 1-page namespace's FREE_ALL looked at every bucket of
 * every namespace (here over 20000, in production millions: a CPU DoS any
 * client could run in a loop). Checked through the index's cost meter, not
 * a clock, so it holds on a loaded machine.
 */
static void test_free_all_cost(void **state)
{
	const uint64_t nbig = 20000, nmid = 100;
	struct sdrsa_store *st = new_store(8192, 0, 0);
	struct sdrsa_ns *big, *mid, *small;
	struct sdrsa_index_usage u0, u1;
	struct sdrsa_store_counts c0, c1;
	uint8_t page[PAGE];
	uint64_t csum;

	(void)state;
	assert_int_equal(sdrsa_store_open(st, "big", &big), 0);
	assert_int_equal(sdrsa_store_open(st, "mid", &mid), 0);
	assert_int_equal(sdrsa_store_open(st, "small", &small), 0);
	/* big: 4000 data pages and 16000 zero pages (index entries without slots) */
	for (uint64_t i = 0; i < nbig; i++) {
		if (big_zero(i))
			assert_int_equal(sdrsa_store_put(st, big, i * PAGE, NULL, 0), 1);
		else
			assert_int_equal(put_pattern(st, big, i * PAGE, 7), 0);
	}
	/* mid: the same addresses as big, 100 data pages and 3 zero pages */
	for (uint64_t i = 0; i < nmid; i++)
		assert_int_equal(put_pattern(st, mid, i * PAGE, 8), 0);
	for (uint64_t i = nmid; i < nmid + 3; i++)
		assert_int_equal(sdrsa_store_put(st, mid, i * PAGE, NULL, 0), 1);
	u0 = usage(st);
	assert_true(u0.entries == nbig + nmid + 3);
	assert_true(u0.buckets >= u0.entries);

	/* One page, freed 1000 times: a handful of buckets each time. */
	for (int r = 0; r < 1000; r++) {
		assert_int_equal(put_pattern(st, small, 0x1000, 9), 0);
		c0 = counts(st);
		assert_int_equal(c0.namespaces, 3);
		u0 = usage(st);
		assert_int_equal(sdrsa_store_drop_all(st, small), 1);
		u1 = usage(st);
		assert_true(u1.ns_scanned - u0.ns_scanned <= 8);
		assert_true(u1.entries == u0.entries - 1);
		c1 = counts(st);
		assert_int_equal(c1.used_pages, c0.used_pages - 1);
		assert_int_equal(c1.zero_pages, c0.zero_pages);
		assert_int_equal(c1.namespaces, 2);
		assert_int_equal(atomic_load(&small->pages), 0);
	}
	/* A zero page alone is freed the same way. */
	assert_int_equal(sdrsa_store_put(st, small, 0x2000, NULL, 0), 1);
	u0 = usage(st);
	assert_int_equal(sdrsa_store_drop_all(st, small), 1);
	assert_true(usage(st).ns_scanned - u0.ns_scanned <= 8);
	assert_int_equal(counts(st).zero_pages, nbig - nbig / 5 + 3);
	assert_int_equal(sdrsa_store_get(st, small, 0x1000, page, &csum), -ENOENT);
	assert_int_equal(sdrsa_store_get(st, small, 0x2000, page, &csum), -ENOENT);
	/* An empty namespace: nothing looked at. */
	u0 = usage(st);
	assert_int_equal(sdrsa_store_drop_all(st, small), 0);
	assert_true(usage(st).ns_scanned == u0.ns_scanned);

	/* The others kept every page, byte for byte. */
	assert_big_intact(st, big, nbig);
	for (uint64_t i = 0; i < nmid; i++)
		assert_pattern(st, mid, i * PAGE, 8);
	assert_int_equal(atomic_load(&big->pages), nbig);
	assert_int_equal(atomic_load(&big->zero_pages), nbig - nbig / 5);
	assert_int_equal(atomic_load(&mid->pages), nmid + 3);

	/* 103 pages: in proportion to them (at most ~8 buckets a page). */
	c0 = counts(st);
	u0 = usage(st);
	assert_int_equal(sdrsa_store_drop_all(st, mid), nmid + 3);
	u1 = usage(st);
	assert_true(u1.ns_scanned - u0.ns_scanned <= 8 * (nmid + 3) + 8 * SDRSA_INDEX_SHARDS);
	assert_true(u1.ns_scanned - u0.ns_scanned < nbig);
	c1 = counts(st);
	assert_int_equal(c1.used_pages, c0.used_pages - nmid);
	assert_int_equal(c1.zero_pages, c0.zero_pages - 3);
	assert_int_equal(c1.namespaces, 1);
	for (uint64_t i = 0; i < nmid + 3; i++)
		assert_int_equal(sdrsa_store_get(st, mid, i * PAGE, page, &csum), -ENOENT);
	assert_big_intact(st, big, nbig);

	/* The big one, and the index is empty: no bucket left allocated. */
	assert_int_equal(sdrsa_store_drop_all(st, big), nbig);
	u1 = usage(st);
	assert_true(u1.entries == 0);
	assert_true(u1.buckets == 0);
	c1 = counts(st);
	assert_int_equal(c1.used_pages, 0);
	assert_int_equal(c1.zero_pages, 0);
	assert_int_equal(c1.namespaces, 0);
	/* Everything still works afterwards. */
	assert_int_equal(put_pattern(st, big, 0x3000, 10), 0);
	assert_pattern(st, big, 0x3000, 10);
	assert_int_equal(sdrsa_store_get(st, mid, 0x3000, page, &csum), -ENOENT);
	sdrsa_store_free(st);
}

/*
 * Index memory follows what is stored: pages dropped one by one give their
 * buckets back, so neither FREE_ALL nor the index stays as large as a past
 * peak of one namespace.
 */
static void test_index_shrinks(void **state)
{
	const uint64_t n = 20000, keep = 10;
	struct sdrsa_store *st = new_store(64, 0, 0);
	struct sdrsa_ns *a;
	struct sdrsa_index_usage u0, peak;

	(void)state;
	assert_int_equal(sdrsa_store_open(st, "a", &a), 0);
	for (uint64_t i = 0; i < n; i++)
		assert_int_equal(sdrsa_store_put(st, a, i * PAGE, NULL, 0), 1);
	for (uint64_t i = 0; i < keep; i++)
		assert_int_equal(put_pattern(st, a, (n + i) * PAGE, 3), 0);
	peak = usage(st);
	assert_true(peak.entries == n + keep);
	assert_true(peak.buckets >= n + keep);
	for (uint64_t i = 0; i < n; i++)
		assert_int_equal(sdrsa_store_drop(st, a, i * PAGE), 0);
	u0 = usage(st);
	assert_true(u0.entries == keep);
	/* At most 8 buckets per entry, plus rounding per sub-table. */
	assert_true(u0.buckets <= 16 * keep);
	for (uint64_t i = 0; i < keep; i++)
		assert_pattern(st, a, (n + i) * PAGE, 3);
	assert_int_equal(counts(st).zero_pages, 0);
	assert_int_equal(sdrsa_store_drop_all(st, a), keep);
	assert_true(usage(st).ns_scanned - u0.ns_scanned <= 16 * keep);
	assert_true(usage(st).buckets == 0);
	/* The same again after the shrink: the tables grow back. */
	for (uint64_t i = 0; i < n; i += 7)
		assert_int_equal(sdrsa_store_put(st, a, i * PAGE, NULL, 0), 1);
	for (uint64_t i = 0; i < n; i += 7)
		assert_int_equal(sdrsa_store_drop(st, a, i * PAGE), 0);
	assert_true(usage(st).buckets == 0);
	assert_int_equal(atomic_load(&a->pages), 0);
	assert_int_equal(counts(st).namespaces, 0);
	sdrsa_store_free(st);
}

struct worker_arg {
	struct sdrsa_store *st;
	int id;
	int free_all_every; /* 0: never; else FREE_ALL every that many operations */
	int zero_pages;	    /* also store zero pages */
	int failures;
};

#define ZERO_VERSION UINT64_MAX

/* Each thread works in its own namespace on the same addresses as the
 * others, with overwrites, drops and zero pages, and checks every read. */
static void *hammer(void *p)
{
	struct worker_arg *w = p;
	struct sdrsa_ns *ns;
	uint64_t version[64] = {0};
	uint8_t page[PAGE];
	uint64_t x = (uint64_t)w->id + 1, csum;
	char name[16];

	snprintf(name, sizeof(name), "t%d", w->id);
	if (sdrsa_store_open(w->st, name, &ns))
		return (void *)1;
	for (int i = 0; i < 20000; i++) {
		uint64_t slot, addr;
		int rc;

		if (w->free_all_every && i % w->free_all_every == w->free_all_every - 1) {
			uint64_t live = 0;

			for (int k = 0; k < 64; k++)
				live += version[k] != 0;
			if (sdrsa_store_drop_all(w->st, ns) != live ||
			    atomic_load(&ns->pages) != 0 || atomic_load(&ns->zero_pages) != 0)
				w->failures++;
			memset(version, 0, sizeof(version));
			continue;
		}
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		slot = x % 64;
		addr = slot * PAGE;
		switch ((x >> 8) % 4) {
		case 0:
		case 1:
			if (w->zero_pages && (x >> 16) % 4 == 0) {
				if (sdrsa_store_put(w->st, ns, addr, NULL, 0) == 1)
					version[slot] = ZERO_VERSION;
				else
					w->failures++;
			} else if (put_pattern(w->st, ns, addr,
					       (uint64_t)w->id * 1000000 + i + 1) == 0) {
				version[slot] = (uint64_t)w->id * 1000000 + i + 1;
			} else {
				w->failures++;
			}
			break;
		case 2:
			/* The lock-free index hint races with other
			 * threads' inserts, removes and resizes. */
			sdrsa_store_prefetch_index(w->st, ns, ((x >> 26) % 64) * PAGE);
			sdrsa_store_prefetch(w->st, ns, ((x >> 20) % 64) * PAGE);
			rc = sdrsa_store_get(w->st, ns, addr, page, &csum);
			if (version[slot] == 0 && rc != -ENOENT)
				w->failures++;
			if (version[slot] == ZERO_VERSION) {
				if (rc != 1)
					w->failures++;
			} else if (version[slot]) {
				uint8_t want[PAGE];

				fill(want, version[slot], addr);
				if (rc != 0 || memcmp(want, page, PAGE) ||
				    csum != sdrsa_page_csum(want, addr))
					w->failures++;
			}
			break;
		default:
			rc = sdrsa_store_drop(w->st, ns, addr);
			if (rc != (version[slot] ? 0 : -ENOENT))
				w->failures++;
			version[slot] = 0;
			break;
		}
	}
	sdrsa_store_drop_all(w->st, ns);
	sdrsa_store_close(w->st, ns);
	return NULL;
}

static void run_threads(int free_all_every, int zero_pages)
{
	struct sdrsa_store *st = new_store(4 * 64, 0, 0);
	struct worker_arg args[4];
	pthread_t t[4];

	for (int i = 0; i < 4; i++) {
		args[i] = (struct worker_arg){
		    .st = st, .id = i, .free_all_every = free_all_every, .zero_pages = zero_pages};
		assert_int_equal(pthread_create(&t[i], NULL, hammer, &args[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		void *ret;

		assert_int_equal(pthread_join(t[i], &ret), 0);
		assert_null(ret);
		assert_int_equal(args[i].failures, 0);
	}
	assert_int_equal(counts(st).used_pages, 0);
	assert_int_equal(counts(st).zero_pages, 0);
	assert_int_equal(counts(st).namespaces, 0);
	assert_true(usage(st).entries == 0);
	assert_true(usage(st).buckets == 0);
	sdrsa_store_free(st);
}

static void test_threads(void **state)
{
	(void)state;
	run_threads(0, 0);
}

/* The same with zero pages and a FREE_ALL now and then in every namespace,
 * while the other threads keep working in theirs (run it under TSan). */
static void test_threads_free_all(void **state)
{
	(void)state;
	run_threads(97, 1);
}

/* ---- pinned slots (GET replies sent straight from the pool) ---- */

static uint64_t used_pages(struct sdrsa_store *st)
{
	struct sdrsa_store_counts sc;

	sdrsa_store_counts(st, &sc);
	return sc.used_pages;
}

/* A pinned page that is replaced or dropped keeps its bytes until unpinned:
 * the replacement goes into another slot, the slot comes back at the unpin. */
static void test_pinned_replace_and_drop(void **state)
{
	struct sdrsa_store *st = new_store(8, 0, 0);
	struct sdrsa_ns *ns;
	uint8_t old[PAGE];
	const void *page = NULL;
	uint32_t slot = 0;
	uint64_t csum = 0;

	(void)state;
	assert_int_equal(sdrsa_store_open(st, "pin", &ns), 0);
	assert_int_equal(put_pattern(st, ns, 0x1000, 1), 0);
	fill(old, 1, 0x1000);
	assert_int_equal(sdrsa_store_get_pinned(st, ns, 0x1000, &page, &slot, &csum), 0);
	assert_true(csum == sdrsa_page_csum(old, 0x1000));
	assert_memory_equal(page, old, PAGE);
	/* replaced while pinned: the pinned bytes stay the old page */
	assert_int_equal(put_pattern(st, ns, 0x1000, 2), 0);
	assert_memory_equal(page, old, PAGE);
	assert_pattern(st, ns, 0x1000, 2);
	assert_int_equal(used_pages(st), 2);
	sdrsa_store_unpin(st, slot);
	assert_int_equal(used_pages(st), 1);
	/* dropped while pinned: the slot is not reused until the unpin */
	assert_int_equal(sdrsa_store_get_pinned(st, ns, 0x1000, &page, &slot, &csum), 0);
	assert_int_equal(sdrsa_store_drop(st, ns, 0x1000), 0);
	for (uint64_t a = 1; a <= 7; a++)
		assert_int_equal(put_pattern(st, ns, a * 0x10000, 3), 0);
	fill(old, 2, 0x1000);
	assert_memory_equal(page, old, PAGE);
	assert_int_equal(used_pages(st), 8);
	sdrsa_store_unpin(st, slot);
	assert_int_equal(used_pages(st), 7);
	assert_int_equal(put_pattern(st, ns, 0x80000, 3), 0);
	/* unpinned: replacing in place again, no extra slot */
	assert_int_equal(used_pages(st), 8);
	assert_int_equal(put_pattern(st, ns, 0x10000, 4), 0);
	assert_int_equal(used_pages(st), 8);
	assert_pattern(st, ns, 0x10000, 4);
	sdrsa_store_close(st, ns);
	sdrsa_store_free(st);
}

struct pin_waiter {
	struct sdrsa_store *st;
	struct sdrsa_ns *ns;
	uint64_t addr;
	int rc;
	_Atomic int done;
};

static void *pin_waiter_main(void *arg)
{
	struct pin_waiter *w = arg;

	w->rc = put_pattern(w->st, w->ns, w->addr, 9);
	atomic_store(&w->done, 1);
	return NULL;
}

/* In a full pool, a put that replaces a pinned page (or needs a slot that a
 * drop is still releasing) waits for the unpin: never POOL_FULL, never the
 * pinned bytes overwritten. */
static void test_pinned_full_pool(void **state)
{
	struct sdrsa_store *st = new_store(2, 0, 0);
	struct pin_waiter w = {0};
	struct sdrsa_ns *ns;
	uint8_t old[PAGE];
	const void *page = NULL;
	uint32_t slot = 0;
	uint64_t csum = 0;
	pthread_t th;

	(void)state;
	assert_int_equal(sdrsa_store_open(st, "pinfull", &ns), 0);
	assert_int_equal(put_pattern(st, ns, 0x1000, 1), 0);
	assert_int_equal(put_pattern(st, ns, 0x2000, 1), 0);
	assert_int_equal(put_pattern(st, ns, 0x3000, 1), -ENOSPC);
	fill(old, 1, 0x1000);
	for (int pass = 0; pass < 2; pass++) {
		assert_int_equal(sdrsa_store_get_pinned(st, ns, 0x1000, &page, &slot, &csum), 0);
		w = (struct pin_waiter){.st = st, .ns = ns, .addr = 0x1000};
		if (pass == 1) {
			/* the slot of a dropped, pinned page is what a new page waits for */
			assert_int_equal(sdrsa_store_drop(st, ns, 0x1000), 0);
			w.addr = 0x3000;
		}
		assert_int_equal(pthread_create(&th, NULL, pin_waiter_main, &w), 0);
		usleep(50 * 1000);
		assert_int_equal(atomic_load(&w.done), 0);
		assert_memory_equal(page, old, PAGE);
		sdrsa_store_unpin(st, slot);
		pthread_join(th, NULL);
		assert_int_equal(w.rc, 0);
		assert_pattern(st, ns, w.addr, 9);
		fill(old, 9, 0x1000);
	}
	assert_int_equal(sdrsa_store_get(st, ns, 0x1000, old, &csum), -ENOENT);
	assert_int_equal(used_pages(st), 2);
	sdrsa_store_close(st, ns);
	sdrsa_store_free(st);
}

/* A pin that never ends (a bug) makes a put that needs its slot fail with
 * -EIO after a bounded wait: the worker is not hung, nothing is overwritten. */
static void test_pinned_forever(void **state)
{
	struct sdrsa_store *st = new_store(1, 0, 0);
	struct sdrsa_ns *ns;
	uint8_t old[PAGE];
	const void *page = NULL;
	uint32_t slot = 0;
	uint64_t csum = 0;

	(void)state;
	assert_int_equal(sdrsa_store_open(st, "pinbug", &ns), 0);
	assert_int_equal(put_pattern(st, ns, 0x1000, 1), 0);
	assert_int_equal(sdrsa_store_get_pinned(st, ns, 0x1000, &page, &slot, &csum), 0);
	assert_int_equal(put_pattern(st, ns, 0x1000, 2), -EIO);
	fill(old, 1, 0x1000);
	assert_memory_equal(page, old, PAGE);
	sdrsa_store_unpin(st, slot);
	assert_pattern(st, ns, 0x1000, 1);
	sdrsa_store_close(st, ns);
	sdrsa_store_free(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bad_config),	     cmocka_unit_test(test_roundtrip),
	    cmocka_unit_test(test_misaligned),	     cmocka_unit_test(test_overwrite_in_place),
	    cmocka_unit_test(test_zero_pages),	     cmocka_unit_test(test_zero_limit),
	    cmocka_unit_test(test_pool_full),	     cmocka_unit_test(test_quota),
	    cmocka_unit_test(test_isolation),	     cmocka_unit_test(test_checksum_mismatch),
	    cmocka_unit_test(test_persistence),	     cmocka_unit_test(test_ns_recycle),
	    cmocka_unit_test(test_many_pages),	     cmocka_unit_test(test_free_all_cost),
	    cmocka_unit_test(test_index_shrinks),    cmocka_unit_test(test_threads),
	    cmocka_unit_test(test_threads_free_all), cmocka_unit_test(test_prefetch),
	    cmocka_unit_test(test_pinned_replace_and_drop),
	    cmocka_unit_test(test_pinned_full_pool),
	    cmocka_unit_test(test_pinned_forever),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
