// SPDX-License-Identifier: MIT
/*
 * Integrity torture: several threads do random reads and writes over a
 * region four times the local budget, each page checked against the version
 * last written to it; then all threads scan the same pages at once (two
 * threads on one page); then every byte is verified. Against a real
 * memory-server started here (127.0.0.1, port 0), the in-memory store, or
 * a memcached fleet given as HOST:PORT,... (--store memcached).
 *
 * Usage: test_torture SERVER_BIN|FLEET [--prefetch on|off] [--store server|mem|memcached]
 *                     [--threads N] [--ops N] [--policy clock|fifo] [--seqwrite]
 *
 * --seqwrite: the sequential runs are frequent and half of them write each
 * page, so that threads write pages that the prefetcher installed by
 * UFFDIO_MOVE, which maps them writable with no write fault to tell (the
 * check when they leave the mapping must find them dirty); the moved-in
 * pages are counted and must be many.
 *
 * With SDRSA_TEST_FAULT=misreport@N the engine's UFFDIO_MOVEs report
 * complete moves as failed or short after N faults (the kernel bug that
 * lost a page in the curve bench); the data must still all be right, and
 * the engine must have counted the moves from the page table.
 */
#include <pthread.h>
#include <sys/mman.h>

#include <sdrsa/client.h>
#include <sdrsa/engine.h>

#include "common/util.h"
#include "engine/engine_internal.h"
#include "engine/store.h"
#include "etest.h"

#define PG 4096u
#define BUDGET_PAGES 1024u
#define NPAGES (4 * BUDGET_PAGES)
#define NLOCKS 256

static unsigned char *g_mem;
static uint64_t g_ver[NPAGES];
static pthread_mutex_t g_locks[NLOCKS];
static long g_ops = 20000;
static volatile int g_bad;
static int g_seqwrite;

struct worker {
	pthread_t t;
	unsigned id;
	uint64_t rng;
};

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void report_bad(unsigned idx, uint64_t ver)
{
	const uint64_t *w = (const uint64_t *)(g_mem + (size_t)idx * PG);
	fprintf(stderr, "page %u: want version %llu, found idx %llu ver %llu\n", idx,
		(unsigned long long)ver, (unsigned long long)w[0], (unsigned long long)w[1]);
	g_bad = 1;
}

static void *work(void *arg)
{
	struct worker *w = arg;
	for (long op = 0; op < g_ops && !g_bad; op++) {
		uint64_t r = rnd(&w->rng);
		unsigned idx;
		if (r % 10 < 6)
			idx = (unsigned)(rnd(&w->rng) % (NPAGES / 10)); /* hot tenth */
		else
			idx = (unsigned)(rnd(&w->rng) % NPAGES);
		if (r % (g_seqwrite ? 8 : 50) == 0) {
			/* A short sequential run: food for the prefetcher. */
			unsigned start = idx % (NPAGES - 64);
			int wr = g_seqwrite && (r >> 20) % 2;
			for (unsigned i = start; i < start + 64; i++) {
				pthread_mutex_t *l = &g_locks[i % NLOCKS];
				pthread_mutex_lock(l);
				if (t_check(g_mem + (size_t)i * PG, i, g_ver[i]))
					report_bad(i, g_ver[i]);
				if (wr) {
					g_ver[i]++;
					t_fill(g_mem + (size_t)i * PG, i, g_ver[i]);
				}
				pthread_mutex_unlock(l);
			}
			continue;
		}
		pthread_mutex_t *l = &g_locks[idx % NLOCKS];
		pthread_mutex_lock(l);
		unsigned char *p = g_mem + (size_t)idx * PG;
		if (t_check(p, idx, g_ver[idx]))
			report_bad(idx, g_ver[idx]);
		if ((r >> 8) % 10 < 3) {
			g_ver[idx]++;
			t_fill(p, idx, g_ver[idx]);
		}
		pthread_mutex_unlock(l);
	}
	return NULL;
}

static void *scan(void *arg)
{
	(void)arg;
	for (unsigned i = 0; i < NPAGES && !g_bad; i++)
		if (t_check(g_mem + (size_t)i * PG, i, g_ver[i]))
			report_bad(i, g_ver[i]);
	return NULL;
}

int main(int argc, char **argv)
{
	const char *bin = NULL, *store_kind = "server";
	int prefetch = 1, nthreads = 4;
	enum sdrsa_engine_policy pol = SDRSA_POLICY_CLOCK;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--prefetch") && i + 1 < argc)
			prefetch = !strcmp(argv[++i], "on");
		else if (!strcmp(argv[i], "--store") && i + 1 < argc)
			store_kind = argv[++i];
		else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
			nthreads = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--ops") && i + 1 < argc)
			g_ops = atol(argv[++i]);
		else if (!strcmp(argv[i], "--seqwrite"))
			g_seqwrite = 1;
		else if (!strcmp(argv[i], "--policy") && i + 1 < argc)
			pol = !strcmp(argv[++i], "fifo") ? SDRSA_POLICY_FIFO : SDRSA_POLICY_CLOCK;
		else
			bin = argv[i];
	}
	t_require_uffd();
	for (int i = 0; i < NLOCKS; i++)
		pthread_mutex_init(&g_locks[i], NULL);

	struct t_server srv = {0};
	struct sdrsa_engine_config cfg = {
		.local_bytes = BUDGET_PAGES * PG,
		.no_prefetch = !prefetch,
		.policy = pol,
		.name = "torture",
	};
	struct sdrsa_engine *e;
	if (!strcmp(store_kind, "mem")) {
		struct store *s;
		CHECK(store_mem_new(&s) == 0);
		CHECK(engine_new_with_store(&cfg, s, &e) == 0);
	} else if (!strcmp(store_kind, "memcached")) {
		/* bin: the fleet, "HOST:PORT,..." (test_memcached.sh starts it
		 * and checks afterwards that no item of ours is left). */
		CHECK(bin != NULL);
		cfg.server = bin;
		cfg.backend = SDRSA_BACKEND_MEMCACHED;
		int r = sdrsa_engine_new(&cfg, &e);
		if (r < 0) {
			fprintf(stderr, "engine on memcached %s: %s\n", bin, strerror(-r));
			return r == -ENOSYS ? t_skip_status() : T_FAIL;
		}
	} else {
		CHECK(bin != NULL);
		if (t_server_start(bin, "64M", &srv) < 0) {
			fprintf(stderr, "cannot start %s\n", bin);
			return T_FAIL;
		}
		cfg.server = srv.addr;
		int r = sdrsa_engine_new(&cfg, &e);
		if (r < 0) {
			fprintf(stderr, "engine: %s\n", strerror(-r));
			t_server_stop(&srv);
			return r == -ENOSYS ? t_skip_status() : T_FAIL;
		}
	}
	struct sdrsa_region *rg;
	CHECK(sdrsa_region_new(e, NPAGES * PG, &rg) == 0);
	g_mem = sdrsa_region_addr(rg);

	struct worker ws[16];
	nthreads = nthreads < 1 ? 1 : nthreads > 16 ? 16 : nthreads;
	uint64_t t0 = sdrsa_now_ms();
	for (int i = 0; i < nthreads; i++) {
		ws[i].id = (unsigned)i;
		ws[i].rng = 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1);
		CHECK(pthread_create(&ws[i].t, NULL, work, &ws[i]) == 0);
	}
	for (int i = 0; i < nthreads; i++)
		pthread_join(ws[i].t, NULL);
	uint64_t t1 = sdrsa_now_ms();
	/* Everyone scans the same pages at the same time. */
	for (int i = 0; i < nthreads; i++)
		CHECK(pthread_create(&ws[i].t, NULL, scan, NULL) == 0);
	for (int i = 0; i < nthreads; i++)
		pthread_join(ws[i].t, NULL);
	/* Every byte, once more, single-threaded. */
	scan(NULL);

	struct sdrsa_engine_stats s;
	CHECK(sdrsa_engine_stats(e, &s) == 0);
	char line[1024];
	sdrsa_engine_format_stats(&s, 0, line, sizeof(line));
	uint64_t moved_in, raced;
	engine_movein_counts(e, &moved_in, &raced);
	fprintf(stderr,
		"%s, %d threads, %ld ops each, %llu ms: %s | moves misreported %llu | moved in "
		"%llu, found written when they left %llu\n",
		prefetch ? "prefetch" : "no prefetch", nthreads, g_ops,
		(unsigned long long)(t1 - t0), line,
		(unsigned long long)engine_moves_misreported(e), (unsigned long long)moved_in,
		(unsigned long long)raced);
	CHECK(!g_bad);
	/* SDRSA_TEST_FAULT=misreport@N: moves were reported short or failed
	 * although they moved (the kernel bug move_checked counts around). */
	const char *tf = getenv("SDRSA_TEST_FAULT");
	if (tf && !strncmp(tf, "misreport@", 10))
		CHECK(engine_moves_misreported(e) > 0);
	CHECK(s.resident + s.staged <= BUDGET_PAGES);
	CHECK(s.faults_remote > 0);
	CHECK(s.pages_out > 0);
	if (!prefetch)
		CHECK_EQ(s.pages_prefetched, 0);
	if (g_seqwrite)
		CHECK(moved_in > 1000);

	sdrsa_region_free(rg);
	sdrsa_engine_free(e);

	if (srv.pid) {
		/* Nothing of ours is left on the server. */
		struct sdrsa_client_config cc = {.address = srv.addr, .name = "torture"};
		struct sdrsa_client *c;
		CHECK(sdrsa_client_connect(&cc, &c) == 0);
		struct sdrsa_stats ss;
		CHECK(sdrsa_stats(c, &ss) == 0);
		CHECK_EQ(ss.ns_pages, 0);
		sdrsa_client_free(c);
		t_server_stop(&srv);
	}
	return T_PASS;
}
