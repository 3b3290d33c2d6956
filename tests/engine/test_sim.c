// SPDX-License-Identifier: MIT
/*
 * The prefetcher (src/engine/prefetch.c), the 2Q policy, the trace format
 * (trace.c) and the simulator (sim.c) on the traces kept in tests/traces
 * (argv[1]): the paging targets of issue 6, checked deterministically.
 */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/policy.h"
#include "engine/prefetch.h"
#include "engine/sim.h"
#include "engine/trace.h"
#include "etest.h"

static const char *dir;

static void load(const char *name, struct trace *t)
{
	char path[512], err[512];
	snprintf(path, sizeof(path), "%s/%s.trace", dir, name);
	if (trace_load(path, t, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		exit(T_FAIL);
	}
	CHECK(t->flags & TRACE_F_ACCESSES);
}

static struct sim_result run(const struct trace *t, uint64_t local, enum policy_kind pk,
			     enum prefetch_kind pf, uint64_t hot)
{
	struct sim_config cfg = {.local_pages = local, .policy = pk, .prefetch = pf,
				 .watch_count = hot};
	struct sim_result r;
	CHECK(sim_run(t, &cfg, &r) == 0);
	return r;
}

static void test_trace_format(void)
{
	char path[] = "/tmp/sdrsa-trace-XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	close(fd);
	static struct trace_writer w;
	CHECK(trace_writer_open(&w, path, 0) == 0);
	/* Regions, backwards jumps, a huge address, all three types. */
	const uint64_t pages[] = {5, 4, 1ull << 40, 7, 7, 0};
	const uint32_t regions[] = {0, 0, 3, 3, 1, 1};
	for (int i = 0; i < 6; i++)
		trace_write(&w, regions[i], pages[i], (enum trace_type)(i % 3));
	CHECK(trace_writer_close(&w) == 0);
	struct trace t;
	char err[256];
	CHECK(trace_load(path, &t, err, sizeof(err)) == 0);
	CHECK_EQ(t.n, 6);
	CHECK_EQ(t.flags, 0);
	for (int i = 0; i < 6; i++) {
		CHECK_EQ(t.rec[i].page, pages[i]);
		CHECK_EQ(t.rec[i].region, regions[i]);
		CHECK_EQ(t.rec[i].type, i % 3);
	}
	trace_release(&t);
	/* Cut in the middle of the last record: a clear error, nothing read. */
	struct stat st;
	CHECK(stat(path, &st) == 0);
	CHECK(truncate(path, st.st_size - 1) == 0);
	CHECK(trace_load(path, &t, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "truncated"));
	CHECK(t.rec == NULL && t.n == 0);
	/* Not a trace. */
	fd = open(path, O_WRONLY | O_TRUNC);
	CHECK(write(fd, "hello, this is not a trace file at all", 38) == 38);
	close(fd);
	CHECK(trace_load(path, &t, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "not an sdrsa trace"));
	unlink(path);
	CHECK(trace_load(path, &t, err, sizeof(err)) == -ENOENT);
}

static void test_prefetch(void)
{
	struct prefetch *pf;
	struct prefetch_plan pl;
	CHECK(prefetch_new(PREFETCH_STRIDE, 128, &pf) == 0);
	/* Stride 3 in region 1: the fourth fault has three equal votes. */
	for (uint64_t i = 0; i < 3; i++) {
		prefetch_fault(pf, 1, 100 + 3 * i, &pl);
		CHECK_EQ(pl.depth, 0);
	}
	prefetch_fault(pf, 1, 109, &pl);
	CHECK_EQ(pl.stride, 3);
	CHECK_EQ(pl.depth, PREFETCH_START);
	/* The stream comes back just past the window: used, depth doubles. */
	uint64_t next = 109 + 3 * (PREFETCH_START + 1);
	prefetch_fault(pf, 1, next, &pl);
	CHECK_EQ(pl.used_n, PREFETCH_START);
	CHECK_EQ(pl.used_first, 112);
	CHECK_EQ(pl.used_stride, 3);
	CHECK_EQ(pl.depth, 2 * PREFETCH_START);
	/* Another region's random faults do not disturb region 1. */
	uint64_t rng = 7;
	unsigned plans2 = 0;
	for (int i = 0; i < 1000; i++) {
		rng = rng * 6364136223846793005ull + 1442695040888963407ull;
		prefetch_fault(pf, 2, (rng >> 33) % 100000, &pl);
		plans2 += pl.depth > 0;
	}
	CHECK_EQ(plans2, 0);
	next += 3 * (2 * PREFETCH_START + 1);
	prefetch_fault(pf, 1, next, &pl);
	CHECK_EQ(pl.used_n, 2 * PREFETCH_START);
	CHECK_EQ(pl.depth, 4 * PREFETCH_START);
	/* The stream stops: after PREFETCH_WINDOW faults elsewhere the window
	 * counts as unused and the vote starts over. */
	for (int i = 0; i <= PREFETCH_WINDOW; i++)
		prefetch_fault(pf, 1, 50000 + 1000 * (uint64_t)i, &pl);
	struct prefetch_stats ps;
	prefetch_get_stats(pf, &ps);
	CHECK_EQ(ps.confirmed, 2);
	CHECK_EQ(ps.broken, 1);
	CHECK_EQ(pl.depth, 0);
	prefetch_free(pf);
	/* Names. */
	CHECK_EQ(prefetch_kind_parse("on"), PREFETCH_STRIDE);
	CHECK_EQ(prefetch_kind_parse("stream"), PREFETCH_STREAM);
	CHECK_EQ(prefetch_kind_parse("bogus"), -1);
	CHECK_EQ(policy_kind_parse("2q"), POLICY_2Q);
	CHECK_EQ(policy_kind_parse("lru"), -1);
}

static void test_2q_basics(void)
{
	struct policy *p;
	CHECK(policy_new(POLICY_2Q, &p) == 0);
	uint32_t sl[64];
	uint64_t ck[64];
	/* 32 pages; page 0 and 1 refilled from staging: protected. */
	for (uint64_t i = 0; i < 32; i++)
		CHECK(policy_on_fault(p, i) == (int64_t)i);
	CHECK_EQ(policy_pick_stage(p, sl, ck, 2), 2);
	CHECK_EQ(ck[0], 0);
	CHECK_EQ(ck[1], 1);
	policy_on_refill(p, sl[0]);
	policy_on_refill(p, sl[1]);
	/* A scan of 200 new pages: the victims are all probation pages, the
	 * protected two stay resident. */
	for (uint64_t i = 100; i < 300; i++) {
		CHECK(policy_on_fault(p, i) >= 0);
		CHECK_EQ(policy_pick_evict(p, sl, ck, 1), 1);
		CHECK(ck[0] >= 2);
		policy_remove(p, sl[0]);
	}
	CHECK(!policy_is_staged(p, 0) && !policy_is_staged(p, 1));
	/* A page back soon after eviction (hot 3) is protected at once. */
	int64_t g = policy_on_fault_hot(p, 999, 3);
	CHECK(g >= 0);
	for (int i = 0; i < 5; i++) {
		CHECK_EQ(policy_pick_evict(p, sl, ck, 1), 1);
		CHECK(ck[0] != 999 && ck[0] > 1);
		policy_remove(p, sl[0]);
	}
	policy_free(p);

	/* The protected set is ordered by frequency, which survives
	 * eviction: page 100, fetched three times before, outlives page 200
	 * (seen once) although both were refilled once and 100 first (CLOCK
	 * would take 100). */
	CHECK(policy_new(POLICY_2Q, &p) == 0);
	for (int i = 0; i < 3; i++) {
		CHECK(policy_on_fault(p, 100) >= 0);
		CHECK_EQ(policy_pick_evict(p, sl, ck, 1), 1);
		CHECK_EQ(ck[0], 100);
		policy_remove(p, sl[0]);
	}
	CHECK(policy_on_fault(p, 100) >= 0);
	CHECK(policy_on_fault(p, 200) >= 0);
	for (uint64_t i = 0; i < 6; i++)
		CHECK(policy_on_fault(p, i) >= 0);
	CHECK_EQ(policy_pick_stage(p, sl, ck, 2), 2);
	CHECK_EQ(ck[0], 100);
	CHECK_EQ(ck[1], 200);
	uint32_t s100 = sl[0];
	policy_on_refill(p, sl[0]);
	policy_on_refill(p, sl[1]);
	/* Moved (mremap): the count goes with it, a first write does not
	 * re-file it as a page seen once. */
	policy_set_cookie(p, s100, 500);
	policy_on_access(p, s100);
	for (uint64_t i = 0; i < 6; i++) {
		CHECK_EQ(policy_pick_evict(p, sl, ck, 1), 1);
		CHECK_EQ(ck[0], i); /* probation first */
		policy_remove(p, sl[0]);
	}
	CHECK_EQ(policy_pick_evict(p, sl, ck, 1), 1);
	CHECK_EQ(ck[0], 200);
	policy_free(p);
}

/* --from counts one phase: exactly the difference between the whole trace
 * and the trace cut where the phase starts. */
static void test_count_from(void)
{
	struct trace t;
	load("hotscan", &t);
	const size_t from = 4352 + 1024; /* the writes, then the hot reads: the scan */
	struct sim_config cfg = {.local_pages = 512, .policy = POLICY_2Q,
				 .prefetch = PREFETCH_STRIDE, .watch_count = 256};
	struct sim_result all, pre, ph;
	CHECK(sim_run(&t, &cfg, &all) == 0);
	struct trace cut = t;
	cut.n = from;
	CHECK(sim_run(&cut, &cfg, &pre) == 0);
	cfg.count_from = from;
	CHECK(sim_run(&t, &cfg, &ph) == 0);
	CHECK_EQ(ph.accesses, t.n - from);
	CHECK(ph.faults_remote > 0);
	CHECK_EQ(ph.faults_remote, all.faults_remote - pre.faults_remote);
	CHECK_EQ(ph.refills, all.refills - pre.refills);
	CHECK_EQ(ph.pages_in, all.pages_in - pre.pages_in);
	CHECK_EQ(ph.pages_out, all.pages_out - pre.pages_out);
	CHECK_EQ(ph.watch_remote, all.watch_remote - pre.watch_remote);
	cfg.count_from = t.n; /* nothing left to count */
	CHECK(sim_run(&t, &cfg, &ph) == -EINVAL);
	CHECK(sim_reference(&t, &cfg, SIM_REF_LRU, &ph.faults_remote) == -EINVAL);
	trace_release(&t);
}

/* The reference caches on traces whose answers are known by hand. */
static void test_reference(void)
{
	char path[] = "/tmp/sdrsa-ref-XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	close(fd);
	static struct trace_writer w;
	/* Three passes over 65 pages with room for 64: LRU misses every
	 * access after the first pass (130). MIN keeps 63 pages that come
	 * back and misses once in the second pass (page 63, thrown out
	 * for page 64 in the first) and once in the third (page 62). */
	CHECK(trace_writer_open(&w, path, TRACE_F_ACCESSES) == 0);
	for (int pass = 0; pass < 3; pass++)
		for (uint64_t pg = 0; pg < 65; pg++)
			trace_write(&w, 0, pg, TRACE_READ);
	CHECK(trace_writer_close(&w) == 0);
	struct trace t;
	char err[256];
	CHECK(trace_load(path, &t, err, sizeof(err)) == 0);
	struct sim_config cfg = {.local_pages = 64};
	uint64_t lru = 0, opt = 0;
	CHECK(sim_reference(&t, &cfg, SIM_REF_LRU, &lru) == 0);
	CHECK(sim_reference(&t, &cfg, SIM_REF_OPT, &opt) == 0);
	CHECK_EQ(lru, 130);
	CHECK_EQ(opt, 2);
	/* Counted from the third pass only. */
	cfg.count_from = 130;
	CHECK(sim_reference(&t, &cfg, SIM_REF_LRU, &lru) == 0);
	CHECK(sim_reference(&t, &cfg, SIM_REF_OPT, &opt) == 0);
	CHECK_EQ(lru, 65);
	CHECK_EQ(opt, 1);
	/* Too small a budget. */
	cfg.local_pages = 63;
	CHECK(sim_reference(&t, &cfg, SIM_REF_OPT, &opt) == -EINVAL);
	trace_release(&t);
	/* A recorded trace (faults only): no reference. */
	CHECK(trace_writer_open(&w, path, 0) == 0);
	trace_write(&w, 0, 1, TRACE_READ);
	CHECK(trace_writer_close(&w) == 0);
	CHECK(trace_load(path, &t, err, sizeof(err)) == 0);
	cfg.local_pages = 64;
	cfg.count_from = 0;
	CHECK(sim_reference(&t, &cfg, SIM_REF_LRU, &lru) == -EINVAL);
	trace_release(&t);
	unlink(path);

	/* On the repo's zipf trace: MIN <= every policy, and 2Q within the
	 * LRU that sees every access (the engine sees faults only). */
	load("zipf", &t);
	cfg = (struct sim_config){.local_pages = 512, .policy = POLICY_2Q,
				  .prefetch = PREFETCH_OFF};
	struct sim_result q;
	CHECK(sim_run(&t, &cfg, &q) == 0);
	CHECK(sim_reference(&t, &cfg, SIM_REF_LRU, &lru) == 0);
	CHECK(sim_reference(&t, &cfg, SIM_REF_OPT, &opt) == 0);
	fprintf(stderr, "zipf 25%%: 2q %llu, exact LRU %llu, MIN %llu\n",
		(unsigned long long)q.faults_remote, (unsigned long long)lru,
		(unsigned long long)opt);
	CHECK(opt < q.faults_remote && opt < lru);
	trace_release(&t);
}

/* Issue 6's targets on the repo traces. */
static void test_targets(void)
{
	struct trace t;
	struct sim_result f, c, q, cs;

	/* zipf(0.99) at 25 % local (512 of 2048 pages). */
	load("zipf", &t);
	f = run(&t, 512, POLICY_FIFO, PREFETCH_STRIDE, 0);
	c = run(&t, 512, POLICY_CLOCK, PREFETCH_STRIDE, 0);
	q = run(&t, 512, POLICY_2Q, PREFETCH_STRIDE, 0);
	cs = run(&t, 512, POLICY_CLOCK, PREFETCH_STREAM, 0);
	fprintf(stderr, "zipf 25%%: remote faults fifo %llu clock %llu 2q %llu (%.3fx fifo)\n",
		(unsigned long long)f.faults_remote, (unsigned long long)c.faults_remote,
		(unsigned long long)q.faults_remote, (double)q.faults_remote / (double)f.faults_remote);
	CHECK(q.faults_remote * 100 <= f.faults_remote * 80);
	CHECK(q.faults_remote < c.faults_remote);
	CHECK(q.faults_remote <= cs.faults_remote);
	/* Same input, same output. */
	struct sim_result q2 = run(&t, 512, POLICY_2Q, PREFETCH_STRIDE, 0);
	CHECK(memcmp(&q, &q2, sizeof(q)) == 0);
	trace_release(&t);

	/* Hot set (256 pages) + a one-pass scan, 512 pages local. */
	load("hotscan", &t);
	f = run(&t, 512, POLICY_FIFO, PREFETCH_OFF, 256);
	c = run(&t, 512, POLICY_CLOCK, PREFETCH_OFF, 256);
	q = run(&t, 512, POLICY_2Q, PREFETCH_OFF, 256);
	fprintf(stderr, "hot set + scan: hot-set hit ratio fifo %.3f clock %.3f 2q %.3f\n",
		sim_watch_hit_ratio(&f), sim_watch_hit_ratio(&c), sim_watch_hit_ratio(&q));
	CHECK(sim_watch_hit_ratio(&q) > 0.90);
	CHECK(sim_watch_hit_ratio(&f) < 0.90);
	CHECK(sim_watch_hit_ratio(&c) < 0.90);
	q = run(&t, 512, POLICY_2Q, PREFETCH_STRIDE, 256);
	CHECK(sim_watch_hit_ratio(&q) > 0.90); /* with the default prefetcher too */
	trace_release(&t);

	/* Sequential and strided (2..16) scans over remote memory. */
	const char *scans[] = {"seq", "stride"};
	for (int i = 0; i < 2; i++) {
		load(scans[i], &t);
		q = run(&t, 2048, POLICY_2Q, PREFETCH_STRIDE, 0);
		struct sim_result off = run(&t, 2048, POLICY_2Q, PREFETCH_OFF, 0);
		fprintf(stderr, "%s: faults avoided by prefetch %.3f (remote %llu, without "
			"prefetch %llu), accuracy %.3f\n", scans[i], sim_avoided(&q),
			(unsigned long long)q.faults_remote, (unsigned long long)off.faults_remote,
			sim_prefetch_accuracy(&q));
		CHECK(sim_avoided(&q) >= 0.90);
		CHECK(q.faults_remote * 10 <= off.faults_remote);
		trace_release(&t);
	}

	/* Uniform random: at most 10 % of prefetched pages unused. */
	load("uniform", &t);
	q = run(&t, 1024, POLICY_2Q, PREFETCH_STRIDE, 0);
	fprintf(stderr, "uniform: prefetched %llu, unused %llu\n",
		(unsigned long long)q.prefetched, (unsigned long long)q.prefetch_unused);
	CHECK(q.prefetch_unused * 10 <= q.prefetched);
	struct sim_result off = run(&t, 1024, POLICY_2Q, PREFETCH_OFF, 0);
	CHECK(q.faults_remote <= off.faults_remote);
	trace_release(&t);

	/* Two regions: a sequential one and a random one, interleaved. Per
	 * region state keeps the sequential one's stride. */
	load("mixed", &t);
	q = run(&t, 2048, POLICY_2Q, PREFETCH_STRIDE, 0);
	cs = run(&t, 2048, POLICY_2Q, PREFETCH_STREAM, 0);
	fprintf(stderr, "mixed: remote faults stride %llu, stream %llu\n",
		(unsigned long long)q.faults_remote, (unsigned long long)cs.faults_remote);
	CHECK(q.faults_remote * 10 < cs.faults_remote * 8);
	CHECK(sim_prefetch_accuracy(&q) > 0.9);
	trace_release(&t);

	/* Two streams in one region (a merge): each followed. */
	load("merge", &t);
	q = run(&t, 2048, POLICY_2Q, PREFETCH_STRIDE, 0);
	fprintf(stderr, "merge: faults avoided %.3f (remote %llu)\n", sim_avoided(&q),
		(unsigned long long)q.faults_remote);
	CHECK(sim_avoided(&q) >= 0.90);
	trace_release(&t);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: test_sim TRACE-DIR\n");
		return T_FAIL;
	}
	dir = argv[1];
	test_trace_format();
	fprintf(stderr, "ok trace format\n");
	test_prefetch();
	fprintf(stderr, "ok prefetch\n");
	test_2q_basics();
	fprintf(stderr, "ok 2q\n");
	test_count_from();
	fprintf(stderr, "ok --from\n");
	test_reference();
	fprintf(stderr, "ok reference caches\n");
	test_targets();
	fprintf(stderr, "ok targets\n");
	return T_PASS;
}
