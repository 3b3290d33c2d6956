// SPDX-License-Identifier: MIT
/*
 * Mappings come and go in several threads at once while the engine evicts:
 * each thread maps a small region, puts it under the engine (as the preload
 * library does), checks that every page reads as zeros, writes its own
 * pattern, checks it, and unmaps it. The kernel hands a freed range to the
 * next mmap at once, often before the handler has read the UNMAP event of
 * the old mapping, so a fault in the new mapping can arrive while the
 * table still describes the old one: resolving it then must wait for the
 * event (the kernel answers EAGAIN until it is read), never stop the
 * program (a stale "resident" entry probed) nor install the old mapping's
 * data (a stale "remote" entry served). Passes when every page reads zeros
 * first and its own pattern after, in every thread.
 *
 * Usage: test_event_race [SECONDS]
 */
#include <pthread.h>
#include <sys/mman.h>

#include <sdrsa/engine.h>

#include "common/util.h"
#include "engine/engine_internal.h"
#include "engine/store.h"
#include "etest.h"

#define PG 4096u
#define BUDGET_PAGES 128u
#define MAP_PAGES 48u
#define NTHREADS 3

static struct sdrsa_engine *g_e;
static volatile int g_stop, g_bad;
static unsigned long g_maps[NTHREADS];

static void *worker(void *arg)
{
	uintptr_t id = (uintptr_t)arg;
	for (uint64_t it = 1; !g_stop && !g_bad; it++) {
		size_t len = (size_t)MAP_PAGES * PG;
		unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
					MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED || sdrsa_engine_manage(g_e, p, len) < 0) {
			fprintf(stderr, "thread %u: cannot map or manage\n", (unsigned)id);
			g_bad = 1;
			break;
		}
		uint64_t tag = (id << 48) | it;
		for (unsigned i = 0; i < MAP_PAGES; i++)
			if (t_check(p + (size_t)i * PG, 0, 0)) {
				fprintf(stderr, "thread %u: fresh page %u is not zeros\n", (unsigned)id, i);
				g_bad = 1;
			}
		for (unsigned i = 0; i < MAP_PAGES; i++)
			t_fill(p + (size_t)i * PG, i, tag);
		for (unsigned i = 0; i < MAP_PAGES; i++)
			if (t_check(p + (size_t)i * PG, i, tag)) {
				fprintf(stderr, "thread %u: page %u lost its pattern\n", (unsigned)id, i);
				g_bad = 1;
			}
		munmap(p, len);
		g_maps[id]++;
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
		.name = "event-race",
	};
	struct store *st;
	CHECK(store_mem_new(&st) == 0);
	CHECK(engine_new_with_store(&cfg, st, &g_e) == 0);
	pthread_t t[NTHREADS];
	for (uintptr_t i = 0; i < NTHREADS; i++)
		CHECK(pthread_create(&t[i], NULL, worker, (void *)i) == 0);
	uint64_t t0 = sdrsa_now_ms();
	while (!g_bad && sdrsa_now_ms() - t0 < (uint64_t)(seconds * 1000))
		usleep(10000);
	g_stop = 1;
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(t[i], NULL);
	struct sdrsa_engine_stats s;
	CHECK(sdrsa_engine_stats(g_e, &s) == 0);
	fprintf(stderr, "%.1f s: %lu + %lu + %lu mappings, %llu events, %llu remote faults, "
		"%llu pages out\n", seconds, g_maps[0], g_maps[1], g_maps[2],
		(unsigned long long)s.events, (unsigned long long)s.faults_remote,
		(unsigned long long)s.pages_out);
	CHECK(!g_bad);
	CHECK(s.pages_out > 0); /* pages were evicted and fetched back */
	sdrsa_engine_free(g_e);
	return T_PASS;
}
