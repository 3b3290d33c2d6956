/* SPDX-License-Identifier: MIT */
/*
 * enginebench: the paging engine against its physical limits and against
 * Linux swap, every ratio from one run of one program.
 *
 *   (a) latency: a remote fault (one thread touches a page the engine holds
 *       on the memory server, prefetch off) against the raw TCP 4 KiB round
 *       trip of pagebench's raw baseline, and libsdrsa's synchronous get for
 *       orientation; pinned (bench, engine thread and server on one CPU) and
 *       unpinned;
 *   (b) scan: a sequential read of a region held remotely (prefetch on)
 *       against the raw pipelined TCP bandwidth (32 gets in flight);
 *   (c) workload: a memory-bound program over SIZE (512 MiB) with each
 *       budget (256 MiB, 128 MiB) local, phases: sequential scans, uniform
 *       random 8-byte reads and writes, zipf(0.99) over pages; run all-local,
 *       under the engine, and under Linux swap at the same budget (a memory
 *       cgroup v1 limit with a swap file the bench creates, and with zram),
 *       each in its own child process. Every run's final memory checksum must
 *       equal the all-local one.
 *
 * The bench starts its own memory-server (pagebench's sys_sdrsa) and raw
 * server (sys_raw), and sets up and tears down the cgroup, the swap file and
 * the zram device itself, also on SIGINT/SIGTERM and on its watchdog.
 * Exit status: 0 when everything was measured and verified (whatever the
 * targets say), 1 on a failure, 2 on a usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sdrsa/client.h>
#include <sdrsa/engine.h>

#include "common/util.h"
#include "pagebench.h"
#include "swapref.h"
#include "zipf.h"

#ifndef ENGINEBENCH_SERVER_BIN
#define ENGINEBENCH_SERVER_BIN "memory-server"
#endif

#define PG 4096ull
#define MIB (1024ull * 1024ull)

/* pagebench's systems read these. */
struct pb_opts pb_opts = {
	.server_bin = ENGINEBENCH_SERVER_BIN,
	.server_threads = 1,
	.timeout_ms = 10000,
	.pages = 16384,
};

/* ---- options ---- */

static struct {
	int quick;
	int lat, scan, work;
	int pinned, unpinned;
	uint64_t size;
	uint64_t budgets[4];
	int nbudgets;
	uint64_t ops;
	int refs_local, refs_engine, refs_swap, refs_zram;
	const char *swap_dir;
	const char *csv;
	int timeout_s;
	int spin_us; /* engine handler spin; 0: engine default */
	unsigned staging_pct; /* 0: engine default */
	/* rsa-app run's defaults; --policy clock --prefetch stream is the
	 * engine before issue 6, for old-vs-new runs. */
	enum sdrsa_engine_policy policy;
	enum sdrsa_engine_prefetch prefetch;
	int verbose;
} opt = {
	.lat = 1,
	.scan = 1,
	.work = 1,
	.pinned = 1,
	.unpinned = 1,
	.size = 512 * MIB,
	.budgets = {256 * MIB, 128 * MIB},
	.nbudgets = 2,
	.ops = 1000000,
	.refs_local = 1,
	.refs_engine = 1,
	.refs_swap = 1,
	.refs_zram = 1,
	.swap_dir = "/var/tmp",
	.timeout_s = 900,
	.policy = SDRSA_POLICY_2Q,
	.prefetch = SDRSA_PREFETCH_STRIDE,
};

static FILE *csv;
static int any_failure;
static char tmpdir[] = "/tmp/enginebench.XXXXXX";
static int have_tmpdir;

static void csv_row(const char *section, const char *placement, const char *what,
		    const char *metric, double value, const char *unit, double ratio,
		    const char *ratio_of)
{
	if (!csv)
		return;
	fprintf(csv, "%s,%s,%s,%s,%.6g,%s,", section, placement, what, metric, value, unit);
	if (ratio > 0)
		fprintf(csv, "%.4f,%s\n", ratio, ratio_of);
	else
		fprintf(csv, ",\n");
}

/* ---- targets ---- */

struct target {
	char what[160];
	double measured, required;
	int higher_is_better;
	int valid;
};
static struct target targets[64];
static int ntargets;

static void target(const char *what, double measured, double required, int higher_is_better,
		   int valid)
{
	if (ntargets == (int)(sizeof(targets) / sizeof(targets[0])))
		return;
	struct target *t = &targets[ntargets++];
	snprintf(t->what, sizeof(t->what), "%s", what);
	t->measured = measured;
	t->required = required;
	t->higher_is_better = higher_is_better;
	t->valid = valid;
}

/* ---- cleanup: servers, cgroup, swap ---- */

static volatile pid_t work_pid; /* the workload child, killed on the way out */

static void write_str(const char *s)
{
	(void)!write(2, s, strlen(s));
}

static void cleanup_all(void)
{
	pid_t w = work_pid;
	if (w > 0) {
		kill(w, SIGKILL);
		waitpid(w, NULL, 0);
		work_pid = 0;
	}
	pb_child_kill_all();
	swapref_teardown_all();
	if (have_tmpdir) {
		char p[300];
		snprintf(p, sizeof(p), "%s/memory-server.log", tmpdir);
		if (!any_failure)
			unlink(p);
		if (rmdir(tmpdir) == 0)
			have_tmpdir = 0;
		else
			fprintf(stderr, "enginebench: logs kept in %s\n", tmpdir);
	}
}

static void on_fatal_signal(int sig)
{
	write_str("enginebench: interrupted; cleaning up (servers, cgroup, swap)\n");
	cleanup_all();
	signal(sig, SIG_DFL);
	raise(sig);
}

static void on_alarm(int sig)
{
	(void)sig;
	write_str("enginebench: a part took longer than the watchdog (--timeout); stopping\n");
	cleanup_all();
	_exit(1);
}

/* ---- helpers ---- */


static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static double pct_us(uint64_t *v, size_t n, double p)
{
	qsort(v, n, sizeof(*v), cmp_u64);
	size_t k = (size_t)ceil(p / 100.0 * (double)n);
	if (k == 0)
		k = 1;
	return (double)v[k - 1] / 1000.0;
}

static double now_s(void)
{
	return (double)pb_now_ns() / 1e9;
}

static cpu_set_t all_cpus, cpu_pinned; /* pinned placement: --cpu N */

static void set_cpus(const cpu_set_t *m)
{
	sched_setaffinity(0, sizeof(*m), m);
}

/* pagebench's pipelined jobs call these: pages carry their address. */
void pb_job_fill(struct pb_job *job, void *page, uint64_t addr)
{
	(void)job;
	((uint64_t *)page)[0] = addr;
}

void pb_job_check(struct pb_job *job, const void *page, uint64_t addr)
{
	if (((const uint64_t *)page)[0] != addr)
		pb_job_error(job, addr, "content is not the page put there");
}

void pb_job_error(struct pb_job *job, uint64_t addr, const char *what)
{
	job->errors++;
	if (job->errors <= 3)
		fprintf(stderr, "enginebench: raw page %#llx: %s\n", (unsigned long long)addr,
			what);
}

int64_t pb_page_index(uint64_t addr)
{
	if (addr < PB_ADDR_BASE || (addr & (PB_PAGE - 1)))
		return -1;
	uint64_t i = (addr - PB_ADDR_BASE) / PB_PAGE;
	return i < pb_opts.pages ? (int64_t)i : -1;
}

size_t pb_page_key(uint64_t addr, char *buf, size_t n)
{
	return (size_t)snprintf(buf, n, "pg:%llx", (unsigned long long)addr);
}

/* ---- servers ---- */

static struct pb_system sdrsa_srv = {.ops = &pb_sys_sdrsa};
static char sdrsa_addr[64];

static int start_sdrsa(const cpu_set_t *cpus, uint64_t pool_pages)
{
	pb_opts.pages = pool_pages / 2 + 1; /* sys_sdrsa sizes the pool at twice this */
	sdrsa_srv.cpus = cpus;
	if (sdrsa_srv.ops->start(&sdrsa_srv) < 0) {
		fprintf(stderr, "enginebench: %s\n", sdrsa_srv.err);
		return -1;
	}
	snprintf(sdrsa_addr, sizeof(sdrsa_addr), "127.0.0.1:%d", sdrsa_srv.port);
	return 0;
}

static void stop_sdrsa(void)
{
	if (sdrsa_srv.pid > 0)
		pb_child_stop(sdrsa_srv.pid, 2000);
	sdrsa_srv.pid = 0;
}

static void engine_log(void *ud, int level, const char *msg)
{
	(void)ud;
	if (level <= SDRSA_LOG_WARN)
		fprintf(stderr, "enginebench: engine: %s\n", msg);
}

static int engine_open(uint64_t budget, int prefetch, struct sdrsa_engine **e)
{
	struct sdrsa_engine_config cfg = {
		.server = sdrsa_addr,
		.name = "enginebench",
		.local_bytes = budget,
		.no_prefetch = !prefetch,
		.log = engine_log,
		.spin_us = opt.spin_us,
		.staging_pct = opt.staging_pct,
		.policy = opt.policy,
		.prefetch = opt.prefetch,
	};
	int r = sdrsa_engine_new(&cfg, e);
	if (r < 0)
		fprintf(stderr, "enginebench: cannot start the engine against %s: %s\n", sdrsa_addr,
			strerror(-r));
	return r;
}

/* ---- (a) latency ---- */

struct lat_result {
	int valid;
	double raw_p50, raw_p99, get_p50, get_p99, fault_p50, fault_p99, handler_p50;
	double zero_p50; /* first touch: a fault served locally with zeros */
	double remote_share;
};

static void fill_pages(unsigned char *m, uint64_t npages, uint64_t salt)
{
	for (uint64_t i = 0; i < npages; i++) {
		uint64_t *w = (uint64_t *)(m + i * PG);
		w[0] = i ^ salt;
		w[511] = ~i;
	}
}

static int lat_part(const char *pl_name, const cpu_set_t *cpus, struct lat_result *res)
{
	uint64_t npages = opt.quick ? 2048 : 8192, nops = opt.quick ? 2000 : 20000;
	uint64_t *lat = calloc(nops, sizeof(*lat));
	void *page = aligned_alloc(PG, PG);
	struct pb_system raw = {.ops = &pb_sys_raw, .cpus = cpus};
	int rc = -1;
	memset(res, 0, sizeof(*res));
	if (!lat || !page)
		goto out;
	set_cpus(cpus);

	/* Raw TCP: put every page, then timed random gets. */
	pb_opts.pages = npages;
	if (raw.ops->start(&raw) < 0 || raw.ops->connect(&raw) < 0) {
		fprintf(stderr, "enginebench: raw: %s\n", raw.err);
		goto out;
	}
	for (uint64_t i = 0; i < npages; i++) {
		((uint64_t *)page)[0] = PB_ADDR_BASE + i * PG;
		if (raw.ops->put(&raw, PB_ADDR_BASE + i * PG, page) < 0)
			goto raw_fail;
	}
	uint64_t rs = 1;
	for (uint64_t k = 0; k < nops / 10 + nops; k++) {
		uint64_t a = PB_ADDR_BASE + (sdrsa_splitmix64(&rs) % npages) * PG;
		uint64_t t0 = pb_now_ns();
		if (raw.ops->get(&raw, a, page) < 0)
			goto raw_fail;
		uint64_t t1 = pb_now_ns();
		if (((uint64_t *)page)[0] != a) {
			snprintf(raw.err, sizeof(raw.err), "raw get: wrong page");
			goto raw_fail;
		}
		if (k >= nops / 10)
			lat[k - nops / 10] = t1 - t0;
	}
	res->raw_p50 = pct_us(lat, nops, 50);
	res->raw_p99 = pct_us(lat, nops, 99);
	raw.ops->disconnect(&raw);
	pb_child_stop(raw.pid, 2000);
	raw.pid = 0;

	/* The memory server, placed like the raw one. */
	if (start_sdrsa(cpus, npages * 4) < 0)
		goto out;
	/* libsdrsa's synchronous get, for orientation. */
	struct sdrsa_client_config cc = {.address = sdrsa_addr, .name = "enginebench-get"};
	struct sdrsa_client *cl;
	if (sdrsa_client_connect(&cc, &cl) == 0) {
		for (uint64_t i = 0; i < npages; i++) {
			((uint64_t *)page)[0] = i;
			sdrsa_put(cl, i * PG, page);
		}
		rs = 2;
		int ok = 1;
		for (uint64_t k = 0; k < nops / 10 + nops && ok; k++) {
			uint64_t i = sdrsa_splitmix64(&rs) % npages;
			uint64_t t0 = pb_now_ns();
			ok = sdrsa_get(cl, i * PG, page) == 0 && ((uint64_t *)page)[0] == i;
			uint64_t t1 = pb_now_ns();
			if (k >= nops / 10)
				lat[k - nops / 10] = t1 - t0;
		}
		if (ok) {
			res->get_p50 = pct_us(lat, nops, 50);
			res->get_p99 = pct_us(lat, nops, 99);
		}
		sdrsa_free_all(cl, NULL);
		sdrsa_client_free(cl);
	}

	/* Remote faults: a region 32 times the budget, written once (so
	 * almost all of it is on the server), then random single reads. */
	struct sdrsa_engine *e;
	if (engine_open(npages * PG / 32, 0, &e) < 0)
		goto out_srv;
	struct sdrsa_region *rg;
	if (sdrsa_region_new(e, npages * PG, &rg) < 0)
		goto out_eng;
	unsigned char *m = sdrsa_region_addr(rg);
	/* The floor: first touches, served locally with zeros (the budget is
	 * not reached yet, nothing is evicted). */
	uint64_t nz = MIN(nops, npages / 40);
	for (uint64_t i = 0; i < nz; i++) {
		uint64_t t0 = pb_now_ns();
		(void)*(volatile uint64_t *)(m + i * PG);
		lat[i] = pb_now_ns() - t0;
	}
	res->zero_p50 = pct_us(lat, nz, 50);
	fill_pages(m, npages, 0x5a5a);
	/* One read pass makes every page clean: the timed reads then measure
	 * the fault (fetch and install), not the write-back of dirty pages. */
	uint64_t sum = 0;
	for (uint64_t i = 0; i < npages; i++)
		sum += *(volatile uint64_t *)(m + i * PG);
	struct sdrsa_engine_stats s0, s1;
	sdrsa_engine_stats(e, &s0);
	rs = 3;
	int bad = 0;
	for (uint64_t k = 0; k < nops / 10 + nops; k++) {
		uint64_t i = sdrsa_splitmix64(&rs) % npages;
		volatile uint64_t *w = (volatile uint64_t *)(m + i * PG);
		uint64_t t0 = pb_now_ns();
		uint64_t v = *w;
		uint64_t t1 = pb_now_ns();
		if (v != (i ^ 0x5a5a))
			bad++;
		if (k >= nops / 10)
			lat[k - nops / 10] = t1 - t0;
		if (k + 1 == nops / 10)
			sdrsa_engine_stats(e, &s0);
	}
	sdrsa_engine_stats(e, &s1);
	if (bad) {
		fprintf(stderr, "enginebench: %s: %d remote reads returned wrong data\n", pl_name,
			bad);
		any_failure = 1;
	}
	res->fault_p50 = pct_us(lat, nops, 50);
	res->fault_p99 = pct_us(lat, nops, 99);
	res->handler_p50 = (double)s1.remote_p50_ns / 1000.0;
	res->remote_share = (double)(s1.faults_remote - s0.faults_remote) / (double)nops;
	res->valid = !bad;
	(void)sum;
	sdrsa_region_free(rg);
	rc = bad ? -1 : 0;
out_eng:
	sdrsa_engine_free(e);
out_srv:
	stop_sdrsa();
	goto out;
raw_fail:
	fprintf(stderr, "enginebench: raw: %s\n", raw.err);
	if (raw.pid)
		pb_child_stop(raw.pid, 2000);
out:
	set_cpus(&all_cpus);
	free(lat);
	free(page);
	if (rc < 0)
		any_failure = 1;
	return rc;
}

/* ---- (b) sequential scan ---- */

struct scan_result {
	int valid;
	double raw_gbs, scan_gbs;
	uint64_t remote, prefetched;
};

static int scan_part(const char *pl_name, const cpu_set_t *cpus, struct scan_result *res)
{
	uint64_t npages = opt.quick ? 8192 : 32768; /* 32 MiB / 128 MiB */
	int passes = opt.quick ? 2 : 3;
	struct pb_system raw = {.ops = &pb_sys_raw, .cpus = cpus};
	uint8_t *slots[32];
	uint64_t *addrs = calloc(npages, sizeof(*addrs));
	int rc = -1;
	memset(res, 0, sizeof(*res));
	memset(slots, 0, sizeof(slots));
	set_cpus(cpus);
	if (!addrs)
		goto out;
	for (int i = 0; i < 32; i++)
		if (!(slots[i] = aligned_alloc(PG, PG)))
			goto out;

	/* Raw TCP, 32 gets in flight over consecutive pages. */
	pb_opts.pages = npages;
	if (raw.ops->start(&raw) < 0 || raw.ops->connect(&raw) < 0) {
		fprintf(stderr, "enginebench: raw: %s\n", raw.err);
		goto out_raw;
	}
	for (uint64_t i = 0; i < npages; i++)
		addrs[i] = PB_ADDR_BASE + i * PG;
	struct pb_job put = {.is_put = 1, .n = npages, .addrs = addrs, .depth = 32,
			     .slots = slots};
	if (raw.ops->pipeline(&raw, &put) < 0 || put.errors)
		goto out_raw;
	double best = 0;
	for (int p = 0; p < passes; p++) {
		struct pb_job get = {.n = npages, .addrs = addrs, .depth = 32, .slots = slots};
		double t0 = now_s();
		if (raw.ops->pipeline(&raw, &get) < 0 || get.errors)
			goto out_raw;
		double gbs = (double)npages * PG / (now_s() - t0) / 1e9;
		if (gbs > best)
			best = gbs;
	}
	res->raw_gbs = best;
	raw.ops->disconnect(&raw);
	pb_child_stop(raw.pid, 2000);
	raw.pid = 0;

	/* The engine: a region 8 times the budget, written once, then read
	 * sequentially (one word per cache line) pass after pass. */
	if (start_sdrsa(cpus, npages * 2) < 0)
		goto out;
	struct sdrsa_engine *e;
	if (engine_open(npages * PG / 8, 1, &e) < 0)
		goto out_srv;
	struct sdrsa_region *rg;
	if (sdrsa_region_new(e, npages * PG, &rg) < 0)
		goto out_eng;
	unsigned char *m = sdrsa_region_addr(rg);
	fill_pages(m, npages, 0xa5a5);
	struct sdrsa_engine_stats s0, s1;
	sdrsa_engine_stats(e, &s0);
	best = 0;
	int bad = 0;
	for (int p = 0; p < passes; p++) {
		uint64_t sum = 0;
		double t0 = now_s();
		for (uint64_t i = 0; i < npages; i++) {
			const volatile uint64_t *w = (const volatile uint64_t *)(m + i * PG);
			if (w[0] != (i ^ 0xa5a5))
				bad++;
			for (unsigned k = 8; k < 512; k += 8)
				sum += w[k];
		}
		double gbs = (double)npages * PG / (now_s() - t0) / 1e9;
		if (gbs > best)
			best = gbs;
		(void)sum;
	}
	sdrsa_engine_stats(e, &s1);
	res->scan_gbs = best;
	res->remote = s1.faults_remote - s0.faults_remote;
	res->prefetched = s1.pages_prefetched - s0.pages_prefetched;
	if (bad) {
		fprintf(stderr, "enginebench: %s scan: %d pages with wrong data\n", pl_name, bad);
		any_failure = 1;
	}
	res->valid = !bad;
	rc = bad ? -1 : 0;
	sdrsa_region_free(rg);
out_eng:
	sdrsa_engine_free(e);
out_srv:
	stop_sdrsa();
	goto out;
out_raw:
	fprintf(stderr, "enginebench: raw: %s\n", raw.err);
	if (raw.pid)
		pb_child_stop(raw.pid, 2000);
out:
	set_cpus(&all_cpus);
	for (int i = 0; i < 32; i++)
		free(slots[i]);
	free(addrs);
	if (rc < 0)
		any_failure = 1;
	return rc;
}

/* ---- (c) the memory-bound workload ---- */

enum { PH_FILL, PH_SEQ, PH_RAND, PH_ZIPF, NPH };
static const char *const ph_names[NPH] = {"fill", "seq", "random", "zipf"};
enum { M_LOCAL, M_ENGINE, M_SWAP, M_ZRAM, NMODES };
static const char *const mode_names[NMODES] = {"all-local", "engine", "swap file", "zram"};

struct work_result {
	int status;   /* 0 ran; 1 failed; 2 killed (OOM); 3 timeout; 4 not run */
	double t[NPH];
	uint64_t csum;
	uint64_t faults_remote, pages_out, pages_in;
	char err[160];
};

/* Zipf(0.99) over the workload's pages (bench/zipf.h), set up once in the
 * parent, before the workload children fork. */
static struct zipf_table zipf;

/* Engine of the current workload child (NULL in the other modes): its
 * statistics are printed after each phase with --verbose. */
static struct sdrsa_engine *work_engine;

static void phase_stats(const char *phase)
{
	static struct sdrsa_engine_stats prev;
	struct sdrsa_engine_stats s;
	if (!opt.verbose)
		return;
	if (!work_engine) {
		/* All-local and swap: the kernel's faults of this child. A
		 * major fault read the page from the swap file or zram: the
		 * counterpart of the engine's remote faults. */
		static struct rusage prev_ru;
		struct rusage ru;
		getrusage(RUSAGE_SELF, &ru);
		fprintf(stderr, "enginebench:   %-6s major faults %ld minor %ld\n", phase,
			ru.ru_majflt - prev_ru.ru_majflt, ru.ru_minflt - prev_ru.ru_minflt);
		prev_ru = ru;
		return;
	}
	sdrsa_engine_stats(work_engine, &s);
	fprintf(stderr,
		"enginebench:   %-6s remote %llu refill %llu wp %llu zero %llu in %llu out %llu "
		"dropped %llu\n",
		phase, (unsigned long long)(s.faults_remote - prev.faults_remote),
		(unsigned long long)(s.faults_refill - prev.faults_refill),
		(unsigned long long)(s.faults_wp - prev.faults_wp),
		(unsigned long long)(s.faults_zero - prev.faults_zero),
		(unsigned long long)(s.pages_in - prev.pages_in),
		(unsigned long long)(s.pages_out - prev.pages_out),
		(unsigned long long)(s.pages_dropped - prev.pages_dropped));
	prev = s;
}

/* The workload itself, on memory m of `size` bytes. */
static void workload(uint64_t *m, uint64_t size, struct work_result *r)
{
	uint64_t nw = size / 8;
	uint64_t sum = 0;
	double t0 = now_s();
	for (uint64_t i = 0; i < nw; i++)
		m[i] = i * 0x9E3779B97F4A7C15ull;
	double t1 = now_s();
	phase_stats("fill");
	t1 = now_s();
	/* Two sequential passes: read every word, then update one word in
	 * each 64-byte line. */
	for (uint64_t i = 0; i < nw; i++)
		sum += m[i];
	for (uint64_t i = 0; i < nw; i += 8)
		m[i] += sum;
	double t2 = now_s();
	phase_stats("seq");
	t2 = now_s();
	/* Uniform random 8-byte reads and writes, alternating. */
	uint64_t s = 7;
	for (uint64_t k = 0; k < opt.ops; k++) {
		uint64_t x = sdrsa_splitmix64(&s);
		uint64_t i = x % nw;
		if (k & 1)
			m[i] ^= x;
		else
			sum += m[i];
	}
	double t3 = now_s();
	phase_stats("random");
	t3 = now_s();
	/* Zipf(0.99) over pages, a random word in the page, alternating. */
	s = 11;
	for (uint64_t k = 0; k < opt.ops; k++) {
		uint64_t p = zipf_table_next(&zipf, &s);
		uint64_t x = sdrsa_splitmix64(&s);
		uint64_t i = p * (PG / 8) + (x & 511);
		if (k & 1)
			m[i] += x;
		else
			sum ^= m[i];
	}
	double t4 = now_s();
	phase_stats("zipf");
	uint64_t c = sum;
	for (uint64_t i = 0; i < nw; i++)
		c = c * 31 + m[i];
	r->t[PH_FILL] = t1 - t0;
	r->t[PH_SEQ] = t2 - t1;
	r->t[PH_RAND] = t3 - t2;
	r->t[PH_ZIPF] = t4 - t3;
	r->csum = c;
}

/* Child process: join the cgroup (swap modes), get the memory, run. */
static void work_child(int mode, uint64_t budget, int wfd)
{
	struct work_result r = {0};
	uint64_t *m = NULL;
	struct sdrsa_engine *e = NULL;
	struct sdrsa_region *rg = NULL;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	alarm(0);
	if (mode == M_SWAP || mode == M_ZRAM) {
		int e2 = swapref_cgroup_join(getpid());
		if (e2 < 0) {
			snprintf(r.err, sizeof(r.err), "cannot join %.100s: %s", swapref_cgroup_path(),
				 strerror(-e2));
			r.status = 1;
			goto out;
		}
	}
	if (mode == M_ENGINE) {
		if (engine_open(budget, 1, &e) < 0 || sdrsa_region_new(e, opt.size, &rg) < 0) {
			snprintf(r.err, sizeof(r.err), "engine did not start");
			r.status = 1;
			goto out;
		}
		m = sdrsa_region_addr(rg);
		work_engine = e;
	} else {
		m = mmap(NULL, opt.size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (m == MAP_FAILED) {
			snprintf(r.err, sizeof(r.err), "mmap: %s", strerror(errno));
			r.status = 1;
			goto out;
		}
	}
	workload(m, opt.size, &r);
	if (e) {
		struct sdrsa_engine_stats st;
		sdrsa_engine_stats(e, &st);
		r.faults_remote = st.faults_remote;
		r.pages_out = st.pages_out;
		r.pages_in = st.pages_in;
		if (st.resident + st.staged > budget / PG) {
			snprintf(r.err, sizeof(r.err), "over budget: %llu pages local",
				 (unsigned long long)(st.resident + st.staged));
		}
		if (opt.verbose) {
			char line[1024];
			sdrsa_engine_format_stats(&st, 0, line, sizeof(line));
			fprintf(stderr, "enginebench: engine %lluM: %s\n",
				(unsigned long long)(budget / MIB), line);
		}
		/* Free the pages on the server before the next run. */
		sdrsa_region_free(rg);
		sdrsa_engine_free(e);
	}
out:
	(void)!write(wfd, &r, sizeof(r));
	_exit(0);
}

static void run_work(int mode, uint64_t budget, struct work_result *r)
{
	int pfd[2];
	memset(r, 0, sizeof(*r));
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		r->status = 1;
		return;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		r->status = 1;
		close(pfd[0]);
		close(pfd[1]);
		return;
	}
	if (pid == 0) {
		close(pfd[0]);
		work_child(mode, budget, pfd[1]);
	}
	work_pid = pid;
	close(pfd[1]);
	alarm((unsigned)opt.timeout_s);
	ssize_t n = read(pfd[0], r, sizeof(*r));
	close(pfd[0]);
	int status = 0;
	waitpid(pid, &status, 0);
	alarm(0);
	work_pid = 0;
	if (n != (ssize_t)sizeof(*r)) {
		memset(r, 0, sizeof(*r));
		if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) {
			r->status = 2;
			snprintf(r->err, sizeof(r->err), "killed (SIGKILL: out of memory)");
		} else {
			r->status = 1;
			snprintf(r->err, sizeof(r->err), "died (%s %d)",
				 WIFSIGNALED(status) ? "signal" : "status",
				 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
		}
	}
}

static void print_work(uint64_t budget, struct work_result res[NMODES], const int ran[NMODES])
{
	char bname[32];
	snprintf(bname, sizeof(bname), "%lluM", (unsigned long long)(budget / MIB));
	printf("\n(c) workload %llu MiB, %s local; %llu random and %llu zipf ops; seconds "
	       "(ratio to the engine: >1 means the engine is faster)\n\n",
	       (unsigned long long)(opt.size / MIB), bname, (unsigned long long)opt.ops,
	       (unsigned long long)opt.ops);
	printf("| phase |");
	for (int m = 0; m < NMODES; m++)
		if (ran[m])
			printf(" %s |", mode_names[m]);
	printf("\n| --- |");
	for (int m = 0; m < NMODES; m++)
		if (ran[m])
			printf(" --- |");
	printf("\n");
	for (int ph = 0; ph < NPH; ph++) {
		printf("| %s |", ph_names[ph]);
		for (int m = 0; m < NMODES; m++) {
			if (!ran[m])
				continue;
			if (res[m].status) {
				printf(" %s |", res[m].status == 2 ? "KILLED" : "failed");
				continue;
			}
			printf(" %.2f", res[m].t[ph]);
			if (m != M_ENGINE && res[M_ENGINE].status == 0 && res[M_ENGINE].t[ph] > 0)
				printf(" (%.2fx)", res[m].t[ph] / res[M_ENGINE].t[ph]);
			printf(" |");
			csv_row("workload", bname, mode_names[m], ph_names[ph], res[m].t[ph], "s",
				res[M_ENGINE].status == 0 && res[M_ENGINE].t[ph] > 0
					? res[m].t[ph] / res[M_ENGINE].t[ph]
					: 0,
				"engine");
		}
		printf("\n");
	}
	for (int m = 0; m < NMODES; m++) {
		if (!ran[m])
			continue;
		if (res[m].status)
			printf("%s: %s\n", mode_names[m], res[m].err);
		else if (m != M_LOCAL && ran[M_LOCAL] && res[M_LOCAL].status == 0)
			printf("%s: checksum %s all-local%s%s\n", mode_names[m],
			       res[m].csum == res[M_LOCAL].csum ? "equals" : "DIFFERS FROM",
			       res[m].err[0] ? "; " : "", res[m].err);
	}
	if (ran[M_ENGINE] && res[M_ENGINE].status == 0)
		printf("engine: %llu remote faults, %llu pages in, %llu pages out\n",
		       (unsigned long long)res[M_ENGINE].faults_remote,
		       (unsigned long long)res[M_ENGINE].pages_in,
		       (unsigned long long)res[M_ENGINE].pages_out);

	int eng_ok = ran[M_ENGINE] && res[M_ENGINE].status == 0;
	char what[160];
	if (ran[M_SWAP])
		for (int ph = PH_SEQ; ph < NPH; ph++) {
			snprintf(what, sizeof(what), "%s local, %s: engine faster than the swap file",
				 bname, ph_names[ph]);
			int v = eng_ok && res[M_SWAP].status != 1;
			double ratio = res[M_SWAP].status == 2
					       ? 1e9
					       : (v ? res[M_SWAP].t[ph] / res[M_ENGINE].t[ph] : 0);
			target(what, ratio, 1.0, 1, v);
		}
	if (ran[M_ZRAM]) {
		snprintf(what, sizeof(what), "%s local, zipf: engine within 1.5x of zram", bname);
		int v = eng_ok && res[M_ZRAM].status == 0;
		target(what, v ? res[M_ENGINE].t[PH_ZIPF] / res[M_ZRAM].t[PH_ZIPF] : 0, 1.5, 0, v);
	}
	if (ran[M_ENGINE]) {
		snprintf(what, sizeof(what), "%s local: engine never killed, data verified", bname);
		int ok = eng_ok && (!ran[M_LOCAL] || res[M_ENGINE].csum == res[M_LOCAL].csum) &&
			 !res[M_ENGINE].err[0];
		target(what, ok, 1, 1, 1);
	}
}

static void work_part(void)
{
	char why[300] = "";
	int can_swap = swapref_available(why, sizeof(why));
	uint64_t np = opt.size / PG;
	if (zipf_table_init(&zipf, np, 0.99, 99) < 0) {
		fprintf(stderr, "enginebench: out of memory\n");
		exit(1);
	}
	if (opt.refs_engine && start_sdrsa(&all_cpus, np + np / 4) < 0) {
		any_failure = 1;
		return;
	}
	struct work_result res[8][NMODES];
	int ran[8][NMODES];
	memset(ran, 0, sizeof(ran));
	struct work_result local = {.status = 4};
	if (opt.refs_local) {
		fprintf(stderr, "enginebench: workload all-local...\n");
		run_work(M_LOCAL, 0, &local);
	}
	for (int b = 0; b < opt.nbudgets; b++) {
		res[b][M_LOCAL] = local;
		ran[b][M_LOCAL] = opt.refs_local;
		if (opt.refs_engine) {
			fprintf(stderr, "enginebench: workload engine, %llu MiB local...\n",
				(unsigned long long)(opt.budgets[b] / MIB));
			run_work(M_ENGINE, opt.budgets[b], &res[b][M_ENGINE]);
			ran[b][M_ENGINE] = 1;
		}
	}
	stop_sdrsa();
	/* Linux swap at the same budget: the cgroup limit is the budget plus
	 * 8 MiB for the process itself (binary, libc, the zipf tables), which
	 * the engine does not count either. */
	for (int kind = M_SWAP; kind <= M_ZRAM; kind++) {
		if (!(kind == M_SWAP ? opt.refs_swap : opt.refs_zram))
			continue;
		if (!can_swap) {
			printf("%s: not measured (%s)\n", mode_names[kind], why);
			continue;
		}
		int r = kind == M_SWAP ? swapref_swapfile_setup(opt.swap_dir, "enginebench",
								opt.size + 64 * MIB, why, sizeof(why))
				       : swapref_zram_setup(opt.size + 64 * MIB, why, sizeof(why));
		if (r < 0) {
			printf("%s: not measured (%s)\n", mode_names[kind], why);
			if (kind == M_SWAP)
				swapref_swapfile_teardown();
			else
				swapref_zram_teardown();
			continue;
		}
		for (int b = 0; b < opt.nbudgets; b++) {
			if (swapref_cgroup_setup("enginebench", opt.budgets[b] + 8 * MIB, why,
						 sizeof(why)) < 0) {
				printf("%s: not measured (%s)\n", mode_names[kind], why);
				swapref_cgroup_teardown();
				break;
			}
			fprintf(stderr, "enginebench: workload %s, %llu MiB local...\n",
				mode_names[kind], (unsigned long long)(opt.budgets[b] / MIB));
			run_work(kind, opt.budgets[b], &res[b][kind]);
			ran[b][kind] = 1;
			swapref_cgroup_teardown();
		}
		if (kind == M_SWAP)
			swapref_swapfile_teardown();
		else
			swapref_zram_teardown();
	}
	for (int b = 0; b < opt.nbudgets; b++) {
		for (int m = 0; m < NMODES; m++)
			if (ran[b][m] && res[b][m].status == 1)
				any_failure = 1;
		if (ran[b][M_ENGINE] && res[b][M_ENGINE].status)
			any_failure = 1;
		if (ran[b][M_ENGINE] && ran[b][M_LOCAL] && res[b][M_LOCAL].status == 0 &&
		    res[b][M_ENGINE].status == 0 && res[b][M_ENGINE].csum != local.csum)
			any_failure = 1;
		print_work(opt.budgets[b], res[b], ran[b]);
	}
	if (ran[0][M_ZRAM])
		printf("\nzram keeps its compressed pages in local RAM outside the cgroup's "
		       "budget; the engine's pages are on the memory server.\n");
}

/* ---- main ---- */

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: enginebench [options]\n"
		"\n"
		"  --quick             short run: smaller sizes (workload 64M, budgets 32M,16M)\n"
		"  --only LIST         parts among lat,scan,work (default all)\n"
		"  --placement P       pinned, unpinned or both (default) for lat and scan\n"
		"  --cpu N             the CPU of the pinned placement (default: the first\n"
		"                      allowed, CPU 0 on an unrestricted machine)\n"
		"  --size SIZE         workload size (512M)\n"
		"  --budgets LIST      local budgets of the workload (256M,128M)\n"
		"  --ops N             random and zipf operations each (1000000)\n"
		"  --refs LIST         workload runs among local,engine,swap,zram (all)\n"
		"  --swap-dir DIR      where the swap file is created (/var/tmp)\n"
		"  --server-bin PATH   memory-server to use\n"
		"  --csv FILE          also write the figures as CSV\n"
		"  --timeout SEC       watchdog per workload run (900)\n"
		"  --spin-us N         engine thread busy-poll (engine default; -1: never)\n"
		"  --staging-pct N     engine staging area, percent of the budget (default)\n"
		"  --policy NAME       engine eviction policy: 2q (default), clock, fifo\n"
		"  --prefetch NAME     engine prefetcher where on: stride (default), stream\n"
		"  --verbose           print the engine's statistics of each workload run\n"
		"                      (and the kernel's major faults in the other runs)\n");
}

static int parse_size(const char *s, uint64_t *out)
{
	return sdrsa_parse_size(s, out);
}

static int parse_list(const char *s, const char *const names[], int n, int *flags)
{
	char buf[256];
	snprintf(buf, sizeof(buf), "%s", s);
	for (int i = 0; i < n; i++)
		flags[i] = 0;
	for (char *t = strtok(buf, ","); t; t = strtok(NULL, ",")) {
		int found = 0;
		for (int i = 0; i < n; i++)
			if (!strcmp(t, names[i]))
				flags[i] = found = 1;
		if (!found)
			return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{"quick", no_argument, NULL, 'q'},     {"only", required_argument, NULL, 'o'},
		{"placement", required_argument, NULL, 'p'},
		{"size", required_argument, NULL, 's'}, {"budgets", required_argument, NULL, 'b'},
		{"ops", required_argument, NULL, 'n'},  {"refs", required_argument, NULL, 'r'},
		{"swap-dir", required_argument, NULL, 'd'},
		{"server-bin", required_argument, NULL, 'S'},
		{"csv", required_argument, NULL, 'c'},  {"timeout", required_argument, NULL, 't'},
		{"verbose", no_argument, NULL, 'v'},    {"spin-us", required_argument, NULL, 'y'},
		{"staging-pct", required_argument, NULL, 'g'},
		{"policy", required_argument, NULL, 'P'},
		{"prefetch", required_argument, NULL, 'F'},
		{"cpu", required_argument, NULL, 'C'},
		{"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0},
	};
	int c, size_set = 0, budgets_set = 0, ops_set = 0;
	long pin_cpu = -1; /* -1: the first CPU the bench may run on */
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'q':
			opt.quick = 1;
			break;
		case 'o': {
			static const char *const n[] = {"lat", "scan", "work"};
			int f[3];
			if (parse_list(optarg, n, 3, f) < 0)
				goto bad;
			opt.lat = f[0];
			opt.scan = f[1];
			opt.work = f[2];
			break;
		}
		case 'p':
			opt.pinned = !strcmp(optarg, "pinned") || !strcmp(optarg, "both");
			opt.unpinned = !strcmp(optarg, "unpinned") || !strcmp(optarg, "both");
			if (!opt.pinned && !opt.unpinned)
				goto bad;
			break;
		case 's':
			if (parse_size(optarg, &opt.size) < 0 || opt.size < 4 * MIB)
				goto bad;
			size_set = 1;
			break;
		case 'b': {
			char buf[256];
			snprintf(buf, sizeof(buf), "%s", optarg);
			opt.nbudgets = 0;
			for (char *t = strtok(buf, ","); t && opt.nbudgets < 4; t = strtok(NULL, ","))
				if (parse_size(t, &opt.budgets[opt.nbudgets++]) < 0)
					goto bad;
			budgets_set = 1;
			break;
		}
		case 'n':
			opt.ops = strtoull(optarg, NULL, 10);
			ops_set = 1;
			break;
		case 'r': {
			static const char *const n[] = {"local", "engine", "swap", "zram"};
			int f[4];
			if (parse_list(optarg, n, 4, f) < 0)
				goto bad;
			opt.refs_local = f[0];
			opt.refs_engine = f[1];
			opt.refs_swap = f[2];
			opt.refs_zram = f[3];
			break;
		}
		case 'd':
			opt.swap_dir = optarg;
			break;
		case 'S':
			pb_opts.server_bin = optarg;
			break;
		case 'c':
			opt.csv = optarg;
			break;
		case 't':
			opt.timeout_s = atoi(optarg);
			break;
		case 'v':
			opt.verbose = 1;
			break;
		case 'y':
			opt.spin_us = atoi(optarg);
			break;
		case 'g':
			opt.staging_pct = (unsigned)atoi(optarg);
			break;
		case 'P':
			if (!strcmp(optarg, "2q"))
				opt.policy = SDRSA_POLICY_2Q;
			else if (!strcmp(optarg, "clock"))
				opt.policy = SDRSA_POLICY_CLOCK;
			else if (!strcmp(optarg, "fifo"))
				opt.policy = SDRSA_POLICY_FIFO;
			else
				goto bad;
			break;
		case 'F':
			if (!strcmp(optarg, "stride"))
				opt.prefetch = SDRSA_PREFETCH_STRIDE;
			else if (!strcmp(optarg, "stream"))
				opt.prefetch = SDRSA_PREFETCH_STREAM;
			else
				goto bad;
			break;
		case 'C': {
			char *end;
			errno = 0;
			pin_cpu = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end || pin_cpu < 0 || pin_cpu >= CPU_SETSIZE)
				goto bad;
			break;
		}
		case 'h':
			usage(stdout);
			return 0;
		default:
			goto bad;
		}
	}
	if (optind < argc)
		goto bad;
	if (opt.quick) {
		if (!size_set)
			opt.size = 64 * MIB;
		if (!budgets_set) {
			opt.budgets[0] = 32 * MIB;
			opt.budgets[1] = 16 * MIB;
			opt.nbudgets = 2;
		}
		if (!ops_set)
			opt.ops = 200000;
	}
	for (int b = 0; b < opt.nbudgets; b++)
		if (opt.budgets[b] >= opt.size || opt.budgets[b] < MIB)
			goto bad;

	if (!mkdtemp(tmpdir)) {
		perror("enginebench: mkdtemp");
		return 1;
	}
	have_tmpdir = 1;
	pb_opts.tmpdir = tmpdir;
	signal(SIGPIPE, SIG_IGN);
	struct sigaction sa = {.sa_handler = on_fatal_signal};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGALRM, on_alarm);
	sched_getaffinity(0, sizeof(all_cpus), &all_cpus);
	CPU_ZERO(&cpu_pinned);
	if (pin_cpu >= 0) {
		if (!CPU_ISSET((int)pin_cpu, &all_cpus)) {
			fprintf(stderr, "enginebench: --cpu %ld: this process may not run there\n",
				pin_cpu);
			return 2;
		}
		CPU_SET((int)pin_cpu, &cpu_pinned);
	} else {
		for (int i = 0; i < CPU_SETSIZE; i++)
			if (CPU_ISSET(i, &all_cpus)) {
				CPU_SET(i, &cpu_pinned);
				break;
			}
	}
	if (opt.csv) {
		csv = fopen(opt.csv, "w");
		if (!csv) {
			perror(opt.csv);
			return 1;
		}
		fprintf(csv, "section,placement,what,metric,value,unit,ratio,ratio_to\n");
	}

	struct utsname u;
	uname(&u);
	double la[3] = {0, 0, 0};
	getloadavg(la, 3);
	time_t now = time(NULL);
	char date[64];
	strftime(date, sizeof(date), "%Y-%m-%d %H:%M UTC", gmtime(&now));
	printf("engine: policy %s, prefetch %s\n",
	       opt.policy == SDRSA_POLICY_2Q ? "2q" : opt.policy == SDRSA_POLICY_FIFO ? "fifo" : "clock",
	       opt.prefetch == SDRSA_PREFETCH_STREAM ? "stream" : "stride");
	printf("enginebench %s: Linux %s, %ld CPUs, load average %.2f%s\n", date, u.release,
	       sysconf(_SC_NPROCESSORS_ONLN), la[0], opt.quick ? ", --quick sizes" : "");

	const char *pl_names[2] = {"pinned", "unpinned"};
	const cpu_set_t *pl_cpus[2] = {&cpu_pinned, &all_cpus};
	int pl_on[2] = {opt.pinned, opt.unpinned};
	if (opt.lat) {
		struct lat_result lr[2];
		printf("\n(a) remote fault latency, one thread, 4 KiB, prefetch off (us)\n\n");
		printf("| placement | raw TCP p50 | raw p99 | libsdrsa get p50 | zero fault p50 | "
		       "remote fault p50 | fault p99 | fault / raw | handler p50 | share remote |\n");
		printf("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
		for (int p = 0; p < 2; p++) {
			if (!pl_on[p])
				continue;
			alarm((unsigned)opt.timeout_s);
			if (lat_part(pl_names[p], pl_cpus[p], &lr[p]) < 0 && !lr[p].valid) {
				printf("| %s | failed |\n", pl_names[p]);
				continue;
			}
			double ratio = lr[p].fault_p50 / lr[p].raw_p50;
			printf("| %s | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.2fx | %.1f | %.0f%% "
			       "|\n",
			       pl_names[p], lr[p].raw_p50, lr[p].raw_p99, lr[p].get_p50,
			       lr[p].zero_p50, lr[p].fault_p50, lr[p].fault_p99, ratio, lr[p].handler_p50,
			       100 * lr[p].remote_share);
			csv_row("latency", pl_names[p], "raw", "get_p50", lr[p].raw_p50, "us", 0, "");
			csv_row("latency", pl_names[p], "libsdrsa", "get_p50", lr[p].get_p50, "us",
				lr[p].get_p50 / lr[p].raw_p50, "raw");
			csv_row("latency", pl_names[p], "engine", "fault_p50", lr[p].fault_p50, "us",
				ratio, "raw");
			char what[128];
			snprintf(what, sizeof(what), "%s: remote fault p50 <= 1.3x raw TCP round trip",
				 pl_names[p]);
			target(what, ratio, 1.3, 0, lr[p].valid);
		}
		alarm(0);
	}
	if (opt.scan) {
		struct scan_result sr[2];
		printf("\n(b) sequential scan of a remote region, prefetch on (GB/s)\n\n");
		printf("| placement | raw TCP pipelined | engine scan | scan / raw | remote faults | "
		       "prefetched |\n");
		printf("| --- | --- | --- | --- | --- | --- |\n");
		for (int p = 0; p < 2; p++) {
			if (!pl_on[p])
				continue;
			alarm((unsigned)opt.timeout_s);
			if (scan_part(pl_names[p], pl_cpus[p], &sr[p]) < 0 && !sr[p].valid) {
				printf("| %s | failed |\n", pl_names[p]);
				continue;
			}
			double ratio = sr[p].scan_gbs / sr[p].raw_gbs;
			printf("| %s | %.3f | %.3f | %.2fx | %llu | %llu |\n", pl_names[p],
			       sr[p].raw_gbs, sr[p].scan_gbs, ratio, (unsigned long long)sr[p].remote,
			       (unsigned long long)sr[p].prefetched);
			csv_row("scan", pl_names[p], "raw", "GB/s", sr[p].raw_gbs, "GB/s", 0, "");
			csv_row("scan", pl_names[p], "engine", "GB/s", sr[p].scan_gbs, "GB/s", ratio,
				"raw");
			char what[128];
			snprintf(what, sizeof(what), "%s: sequential scan >= 0.5x raw pipelined TCP",
				 pl_names[p]);
			target(what, ratio, 0.5, 1, sr[p].valid);
		}
		alarm(0);
	}
	if (opt.work)
		work_part();

	printf("\nTargets (issue 3)\n\n");
	int pass = 0, miss = 0;
	for (int i = 0; i < ntargets; i++) {
		struct target *t = &targets[i];
		const char *v = !t->valid ? "n/a"
				: (t->higher_is_better ? t->measured >= t->required
						       : t->measured <= t->required)
					? "PASS"
					: "MISS";
		if (!strcmp(v, "PASS"))
			pass++;
		else if (!strcmp(v, "MISS"))
			miss++;
		if (t->measured >= 1e9)
			printf("- %s: %s (the reference was killed)\n", t->what, v);
		else
			printf("- %s: %.2f (%s %.2f) %s\n", t->what, t->measured,
			       t->higher_is_better ? ">=" : "<=", t->required, v);
		if (csv)
			fprintf(csv, "target,,,\"%s\",%.4f,x,,%s\n", t->what, t->measured, v);
	}
	printf("\n%d PASS, %d MISS%s\n", pass, miss,
	       any_failure ? "; SOMETHING FAILED (see above): the figures are not valid" : "");
	if (csv)
		fclose(csv);
	cleanup_all();
	return any_failure ? 1 : 0;
bad:
	usage(stderr);
	return 2;
}
