// SPDX-License-Identifier: MIT
/*
 * The real engine (userfaultfd, in-memory store) with the new defaults:
 * the 2Q policy keeps a hot set through a one-pass scan of cold data where
 * FIFO loses it, and the stride prefetcher serves a strided scan of remote
 * memory. Counts come from the engine's statistics; every page read is
 * checked by content.
 */
#include <sys/mman.h>

#include <sdrsa/engine.h>

#include "etest_mem.h"

#define PG 4096u

static struct sdrsa_engine *mk(enum sdrsa_engine_policy pol, enum sdrsa_engine_prefetch pf,
			       unsigned budget_pages)
{
	struct sdrsa_engine_config cfg = {
		.local_bytes = (uint64_t)budget_pages * PG,
		.policy = pol,
		.prefetch = pf,
	};
	return t_engine_mem(&cfg, NULL);
}

static uint64_t rng = 12345;
static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void read_page(unsigned char *m, uint64_t i)
{
	CHECK(t_check(m + i * PG, i, 1) == 0);
}

/* Hot set of 256 pages, 4096 cold pages, 512 pages local: as
 * tests/traces/hotscan.trace. Returns the hot set's hit ratio during the
 * scan (its accesses that needed no remote fetch). */
static double hot_through_scan(enum sdrsa_engine_policy pol)
{
	enum { HOT = 256, COLD = 4096, BUDGET = 512 };
	struct sdrsa_engine *e = mk(pol, SDRSA_PREFETCH_OFF, BUDGET);
	struct sdrsa_region *rg;
	CHECK(sdrsa_region_new(e, (size_t)(HOT + COLD) * PG, &rg) == 0);
	unsigned char *m = sdrsa_region_addr(rg);
	for (uint64_t i = 0; i < HOT + COLD; i++)
		t_fill(m + i * PG, i, 1);
	for (int i = 0; i < 4 * HOT; i++)
		read_page(m, rnd() % HOT);
	struct sdrsa_engine_stats a, b;
	CHECK(sdrsa_engine_stats(e, &a) == 0);
	for (uint64_t i = 0; i < COLD; i++) {
		read_page(m, rnd() % HOT);
		read_page(m, HOT + i);
		read_page(m, rnd() % HOT);
	}
	CHECK(sdrsa_engine_stats(e, &b) == 0);
	/* Each cold page was remote and read once: COLD of the remote faults
	 * are the scan's own, the rest are the hot set's misses. */
	uint64_t remote = b.faults_remote - a.faults_remote;
	CHECK(remote >= COLD);
	double hit = 1.0 - (double)(remote - COLD) / (2.0 * COLD);
	fprintf(stderr, "policy %d: hot set hit ratio through the scan %.3f (%llu remote faults, "
		"%llu refills)\n", (int)pol, hit, (unsigned long long)remote,
		(unsigned long long)(b.faults_refill - a.faults_refill));
	for (uint64_t i = 0; i < HOT + COLD; i++)
		read_page(m, i);
	sdrsa_engine_free(e);
	return hit;
}

static void strided_scan(void)
{
	enum { N = 8192, BUDGET = 1024, STRIDE = 4 };
	struct sdrsa_engine *e = mk(SDRSA_POLICY_2Q, SDRSA_PREFETCH_DEFAULT, BUDGET);
	struct sdrsa_region *rg;
	CHECK(sdrsa_region_new(e, (size_t)N * PG, &rg) == 0);
	unsigned char *m = sdrsa_region_addr(rg);
	for (uint64_t i = 0; i < N; i++)
		t_fill(m + i * PG, i, 1);
	struct sdrsa_engine_stats a, b;
	CHECK(sdrsa_engine_stats(e, &a) == 0);
	/* The first pages are still local; the rest were sent away. */
	uint64_t first = BUDGET, n = 0;
	for (uint64_t i = first; i < N; i += STRIDE, n++)
		read_page(m, i);
	CHECK(sdrsa_engine_stats(e, &b) == 0);
	uint64_t remote = b.faults_remote - a.faults_remote;
	uint64_t ahead = b.pages_prefetched - a.pages_prefetched;
	fprintf(stderr, "strided scan: %llu pages read, %llu remote faults, %llu prefetched, "
		"%llu prefetched unused\n", (unsigned long long)n, (unsigned long long)remote,
		(unsigned long long)ahead, (unsigned long long)(b.prefetch_unused - a.prefetch_unused));
	CHECK(remote * 10 <= n);       /* >= 90 % of the faults avoided */
	CHECK(ahead + remote >= n);    /* every page read came in */
	CHECK(ahead <= n + n / 10);    /* not much more than was read */
	sdrsa_engine_free(e);
}

int main(void)
{
	t_require_uffd();
	double q = hot_through_scan(SDRSA_POLICY_2Q);
	double f = hot_through_scan(SDRSA_POLICY_FIFO);
	CHECK(q > 0.90);
	CHECK(f < q - 0.1);
	fprintf(stderr, "ok hot set through a scan\n");
	strided_scan();
	fprintf(stderr, "ok strided scan\n");
	return T_PASS;
}
