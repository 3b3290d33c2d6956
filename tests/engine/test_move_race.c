// SPDX-License-Identifier: MIT
/*
 * The real kernel's UFFDIO_MOVE with page-table entries changing under it.
 * While the engine stages pages (UFFDIO_MOVE into its staging area), a
 * thread write-protects and unprotects the whole region over and over, so
 * that the entry of a page being moved changes under the move and the
 * kernel retries it (-EAGAIN inside move_pages_ptes). Linux 6.18 then
 * reports fewer pages than it moved, or none (engine.c, move_checked): an
 * engine that trusted that count held moved pages as resident and lost
 * them. Reader threads check every page they touch by content, then every
 * page is checked once more. Only reads after the fill: toggling write
 * protection behind the engine's back is harmless to pages that are not
 * written. Prints how many moves the kernel misreported (0 on a kernel
 * without the bug; the deterministic test of the engine's side is
 * torture_move_misreport).
 *
 * Usage: test_move_race [SECONDS]
 */
#include <pthread.h>
#include <sys/ioctl.h>

#include <sdrsa/engine.h>

#include "common/util.h"
#include "engine/engine_internal.h"
#include "engine/store.h"
#include "engine/uffd_compat.h"
#include "etest.h"

#define PG 4096u
#define BUDGET_PAGES 1024u
#define NPAGES (4 * BUDGET_PAGES)
#define NREADERS 2

static unsigned char *g_mem;
static volatile int g_stop, g_bad;

static void *toggler(void *arg)
{
	int fd = *(int *)arg;
	for (unsigned long i = 0; !g_stop; i++) {
		struct uffdio_writeprotect w = {
			.range = {.start = (uintptr_t)g_mem, .len = (uint64_t)NPAGES * PG},
			.mode = (i & 1) ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
		};
		/* EAGAIN while an event is pending; nothing to do then. */
		(void)ioctl(fd, UFFDIO_WRITEPROTECT, &w);
	}
	return NULL;
}

static void *reader(void *arg)
{
	uint64_t s = 0x9E3779B97F4A7C15ull * (uintptr_t)arg;
	while (!g_stop && !g_bad) {
		s ^= s << 13;
		s ^= s >> 7;
		s ^= s << 17;
		unsigned idx = (unsigned)(s % NPAGES);
		if (t_check(g_mem + (size_t)idx * PG, idx, 1)) {
			fprintf(stderr, "page %u: wrong contents\n", idx);
			g_bad = 1;
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 3;
	t_require_uffd();
	struct sdrsa_engine_config cfg = {
		.local_bytes = BUDGET_PAGES * PG,
		.policy = SDRSA_POLICY_FIFO,
		.no_prefetch = 1,
		.name = "move-race",
	};
	struct store *st;
	struct sdrsa_engine *e;
	CHECK(store_mem_new(&st) == 0);
	CHECK(engine_new_with_store(&cfg, st, &e) == 0);
	struct sdrsa_region *rg;
	CHECK(sdrsa_region_new(e, (size_t)NPAGES * PG, &rg) == 0);
	g_mem = sdrsa_region_addr(rg);
	for (unsigned i = 0; i < NPAGES; i++)
		t_fill(g_mem + (size_t)i * PG, i, 1);

	int fd = engine_uffd(e);
	pthread_t tt, rt[NREADERS];
	CHECK(pthread_create(&tt, NULL, toggler, &fd) == 0);
	for (uintptr_t i = 0; i < NREADERS; i++)
		CHECK(pthread_create(&rt[i], NULL, reader, (void *)(i + 1)) == 0);
	uint64_t t0 = sdrsa_now_ms();
	while (!g_bad && sdrsa_now_ms() - t0 < (uint64_t)(seconds * 1000))
		usleep(10000);
	g_stop = 1;
	for (int i = 0; i < NREADERS; i++)
		pthread_join(rt[i], NULL);
	pthread_join(tt, NULL);
	for (unsigned i = 0; i < NPAGES && !g_bad; i++)
		if (t_check(g_mem + (size_t)i * PG, i, 1)) {
			fprintf(stderr, "page %u: wrong contents in the last pass\n", i);
			g_bad = 1;
		}

	struct sdrsa_engine_stats s;
	CHECK(sdrsa_engine_stats(e, &s) == 0);
	fprintf(stderr, "%.1f s: %llu remote faults, %llu pages staged, %llu moves misreported by "
		"the kernel\n", seconds, (unsigned long long)s.faults_remote,
		(unsigned long long)s.pages_staged, (unsigned long long)engine_moves_misreported(e));
	CHECK(!g_bad);
	CHECK(s.pages_staged > 0);
	CHECK(s.resident + s.staged <= BUDGET_PAGES);
	sdrsa_region_free(rg);
	sdrsa_engine_free(e);
	return T_PASS;
}
