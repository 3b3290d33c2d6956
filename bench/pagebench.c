/* SPDX-License-Identifier: MIT */
/*
 * pagebench: 4 KiB pages on loopback, sdrsa against a raw TCP baseline,
 * memcached and Redis, all measured in the same run.
 *
 * For each placement (pinned: the bench and the server process on one CPU;
 * unpinned: both free to use every CPU the bench may use; split, on request:
 * the bench on one CPU and the server on another) and each system, the
 * driver starts a fresh server, connects one client and runs:
 *   1. preload: every page of the working set is put (pipelined, untimed);
 *   2. get latency: warm-up, then `ops` synchronous gets of random pages;
 *   3. put latency: the same with puts;
 *   4. get throughput: `depth` gets in flight over random pages;
 *   5. put throughput: `depth` puts in flight over consecutive pages (so no
 *      page is ever twice in flight);
 *   6. read-back: every page got again and compared byte for byte.
 * Addresses come from fixed seeds, so every system sees the same sequence.
 *
 * Every page's content is a function of its address and generation (how
 * many times it was put): a random filler shared by all pages, with one
 * 64-bit word in each 512-byte block replaced by a hash of (address,
 * generation, block). Gets in the latency phases are checked byte for byte
 * outside the timed region; gets in the throughput phases check the eight
 * hashed words (cheap, equal for all systems; --verify full checks all
 * bytes there too); the read-back checks every byte of every page. Any
 * mismatch or failed operation is reported and makes the exit status 1.
 *
 * Output: a table with absolute figures and ratios to the raw baseline of
 * the same placement, then the project's targets with PASS or MISS. The
 * bench exits 0 whatever the targets say; 1 if anything failed; 2 on a usage
 * error.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "pagebench.h"

#ifndef PAGEBENCH_SERVER_BIN
#define PAGEBENCH_SERVER_BIN "memory-server"
#endif

#define WORDS_PER_PAGE (PB_PAGE / 8u)
#define SAMPLE_STRIDE 64u /* words: one hashed word per 512 bytes */
#define MAX_REPORTED 5	  /* mismatches and errors printed per system */

enum { SYS_RAW, SYS_SDRSA, SYS_MEMCACHED, SYS_REDIS, NSYS };
enum { PL_PINNED, PL_UNPINNED, PL_SPLIT, NPL };

static const struct pb_sys_ops *const systems[NSYS] = {
    [SYS_RAW] = &pb_sys_raw,
    [SYS_SDRSA] = &pb_sys_sdrsa,
    [SYS_MEMCACHED] = &pb_sys_memcached,
    [SYS_REDIS] = &pb_sys_redis,
};
static const char *const sys_names[NSYS] = {"raw", "sdrsa", "memcached", "redis"};
static const char *const pl_names[NPL] = {"pinned", "unpinned", "split"};
static const char *const pl_desc[NPL] = {
    "bench and server process on the same CPU",
    "bench and server free to use every CPU",
    "bench on one CPU, server on another",
};

struct pb_opts pb_opts = {
    .server_bin = PAGEBENCH_SERVER_BIN,
    .server_threads = 1,
    .spin_us = 0,
    .timeout_ms = 10000,
    .pages = 16384,
};

static struct {
	uint64_t ops;	     /* timed synchronous operations per latency phase */
	uint64_t warmup;     /* untimed operations before each latency phase */
	uint64_t tp_ops;     /* operations per throughput phase */
	unsigned tp_reps;    /* timed repetitions per throughput phase (median) */
	unsigned depth;	     /* operations in flight */
	int placements[NPL]; /* which to run */
	int only[NSYS];	     /* which systems to run */
	int named[NSYS];     /* named explicitly in --only */
	int cpu;	     /* CPU of the pinned placement */
	int timeout_s;	     /* watchdog per phase */
	int full_verify;     /* check every byte in throughput phases too */
	int keep_logs;
	const char *csv;
	int quick;
} opt = {
    .ops = 20000,
    .warmup = 2000,
    .tp_ops = 200000,
    .tp_reps = 5,
    .depth = 32,
    .placements = {1, 1, 0},
    .only = {1, 1, 1, 1},
    .cpu = 0,
    .timeout_s = 120,
};

/* Results of one system in one placement. Latencies in us, rates in GB/s
 * (10^9 bytes of page data per second). */
struct result {
	int ran; /* all phases completed */
	int tried;
	double get_p50, get_p99, put_p50, put_p99;
	double get_gbs, put_gbs;
	uint64_t mismatches, errors;
	uint64_t checked_full, checked_sampled;
	/* Latency phases: samples where the server thread that last ran had
	 * run on the CPU the client was on (get, put). */
	uint64_t colo_same[2], colo_samples[2];
	char failure[640];
};
static struct result results[NPL][NSYS];

/* ---- state of the system being measured, read by the job callbacks ---- */

static uint8_t filler[PB_PAGE] __attribute__((aligned(64)));
static uint32_t *gens;	      /* generation of each page of the working set */
static struct result *cur;    /* result being filled */
static const char *cur_name;  /* system being measured */
static const char *cur_phase; /* for messages */

static char tmpdir[] = "/tmp/pagebench.XXXXXX";
static int have_tmpdir;
static int any_failure;


static uint64_t page_word(uint64_t addr, uint32_t gen, unsigned block)
{
	uint64_t st = addr * 0x2545f4914f6cdd1dull + ((uint64_t)gen << 20) + block;
	return sdrsa_splitmix64(&st);
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
	static const char hex[] = "0123456789abcdef";
	char tmp[16];
	size_t len = 0, k = 0;
	do {
		tmp[len++] = hex[addr & 15];
		addr >>= 4;
	} while (addr);
	if (n < len + 4)
		return 0;
	buf[k++] = 'p';
	buf[k++] = 'g';
	buf[k++] = ':';
	while (len)
		buf[k++] = tmp[--len];
	buf[k] = '\0';
	return k;
}

/* Write the content of the next generation of addr into page. */
static void fill_next(void *page, uint64_t addr)
{
	int64_t i = pb_page_index(addr);
	uint64_t *w = page;
	uint32_t g = ++gens[i];
	for (unsigned b = 0; b < WORDS_PER_PAGE / SAMPLE_STRIDE; b++)
		w[b * SAMPLE_STRIDE] = page_word(addr, g, b);
}

static void report_mismatch(uint64_t addr, const char *what)
{
	cur->mismatches++;
	if (cur->mismatches <= MAX_REPORTED)
		fprintf(stderr, "pagebench: %s %s: page %#llx: %s\n", cur_name, cur_phase,
			(unsigned long long)addr, what);
}

/* Compare page with what was last put at addr. */
static void check_page(const void *page, uint64_t addr, int full)
{
	int64_t i = pb_page_index(addr);
	if (i < 0) {
		report_mismatch(addr, "address outside the working set");
		return;
	}
	const uint64_t *w = page;
	uint32_t g = gens[i];
	for (unsigned b = 0; b < WORDS_PER_PAGE / SAMPLE_STRIDE; b++) {
		if (w[b * SAMPLE_STRIDE] != page_word(addr, g, b)) {
			report_mismatch(addr, "content is not the last version put");
			return;
		}
		if (full && memcmp(&w[b * SAMPLE_STRIDE + 1], &filler[(b * SAMPLE_STRIDE + 1) * 8],
				   (SAMPLE_STRIDE - 1) * 8)) {
			report_mismatch(addr, "content corrupted");
			return;
		}
	}
	if (full)
		cur->checked_full++;
	else
		cur->checked_sampled++;
}

void pb_job_fill(struct pb_job *job, void *page, uint64_t addr)
{
	(void)job;
	fill_next(page, addr);
}

void pb_job_check(struct pb_job *job, const void *page, uint64_t addr)
{
	check_page(page, addr, job->full_verify);
}

void pb_job_error(struct pb_job *job, uint64_t addr, const char *what)
{
	job->errors++;
	cur->errors++;
	if (cur->errors <= MAX_REPORTED)
		fprintf(stderr, "pagebench: %s %s: page %#llx: %s\n", cur_name, cur_phase,
			(unsigned long long)addr, what);
}

/* ---- signals, watchdog, cleanup ---- */

/* Files the servers may leave in tmpdir; paths built at start so that a
 * signal handler can remove them (unlink and rmdir are async-signal-safe). */
static const char *const tmp_files[] = {"memcached.log", "redis.log", "memory-server.log",
					"dump.rdb"};
static char tmp_paths[sizeof(tmp_files) / sizeof(tmp_files[0])][PATH_MAX];

static void remove_tmpdir(void)
{
	if (!have_tmpdir)
		return;
	for (size_t i = 0; i < sizeof(tmp_files) / sizeof(tmp_files[0]); i++)
		unlink(tmp_paths[i]);
	if (rmdir(tmpdir) == 0)
		have_tmpdir = 0;
}

static void at_exit(void)
{
	pb_child_kill_all();
	if (opt.keep_logs || any_failure) {
		if (have_tmpdir)
			fprintf(stderr, "pagebench: server logs kept in %s\n", tmpdir);
	} else {
		remove_tmpdir();
	}
}

static void write_str(const char *s)
{
	(void)!write(2, s, strlen(s));
}

static void on_fatal_signal(int sig)
{
	pb_child_kill_all();
	remove_tmpdir();
	write_str("pagebench: interrupted; servers killed\n");
	signal(sig, SIG_DFL);
	raise(sig);
}

static void on_alarm(int sig)
{
	(void)sig;
	pb_child_kill_all();
	write_str("pagebench: a phase took longer than the watchdog (--timeout); servers killed\n");
	_exit(1);
}

static void watchdog(void)
{
	alarm((unsigned)opt.timeout_s);
}

/* ---- placement ---- */

static cpu_set_t all_cpus, pinned_cpus, other_cpus;

/* CPUs of the bench (client) and of the server in each placement. */
static const cpu_set_t *client_mask(int pl)
{
	return pl == PL_UNPINNED ? &all_cpus : &pinned_cpus;
}

static const cpu_set_t *server_mask(int pl)
{
	return pl == PL_UNPINNED ? &all_cpus : pl == PL_SPLIT ? &other_cpus : &pinned_cpus;
}

/* ---- phases ---- */

struct rng {
	uint64_t s;
};

static uint64_t rng_page(struct rng *r)
{
	return PB_ADDR_BASE + (sdrsa_splitmix64(&r->s) % pb_opts.pages) * PB_PAGE;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted v[n], in microseconds. */
static double pct_us(const uint64_t *v, size_t n, double p)
{
	size_t k = (size_t)ceil(p / 100.0 * (double)n);
	if (k == 0)
		k = 1;
	return (double)v[k - 1] / 1000.0;
}

static void *page_alloc(void)
{
	void *p = NULL;
	if (posix_memalign(&p, 4096, PB_PAGE))
		return NULL;
	memcpy(p, filler, PB_PAGE);
	return p;
}

static uint8_t *slots[PB_MAX_DEPTH];
static uint64_t *lat;
static uint64_t *addrs;

static int phase_fail(struct pb_system *s, const char *what)
{
	snprintf(cur->failure, sizeof(cur->failure), "%s: %s", what, s->err);
	return -1;
}

/*
 * Where did the server run? Every COLO_EVERY operations of a latency phase
 * (outside the timed region), find the server thread that ran most since
 * the last sample (by /proc/PID/task/TID/schedstat run time) and compare the
 * CPU it last ran on with the client's. Unpinned figures depend on where the
 * scheduler put the two, so this is printed next to them.
 */
#define COLO_EVERY 32
#define COLO_TASKS 64

struct colo {
	pid_t pid;
	pid_t tid[COLO_TASKS];
	uint64_t run_ns[COLO_TASKS];
	int ntid;
};

static int read_small(const char *path, char *buf, size_t n)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	size_t r = fread(buf, 1, n - 1, f);
	fclose(f);
	buf[r] = '\0';
	return 0;
}

static uint64_t *colo_slot(struct colo *c, pid_t tid)
{
	for (int i = 0; i < c->ntid; i++)
		if (c->tid[i] == tid)
			return &c->run_ns[i];
	if (c->ntid == COLO_TASKS)
		return NULL;
	c->tid[c->ntid] = tid;
	c->run_ns[c->ntid] = 0;
	return &c->run_ns[c->ntid++];
}

/* 1 same CPU, 0 another, -1 unknown (no server thread ran). */
static int colo_sample(struct colo *c)
{
	char path[96], buf[1024];
	int client_cpu = sched_getcpu();
	pid_t best = 0;
	uint64_t best_delta = 0;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)c->pid);
	DIR *d = opendir(path);
	if (!d)
		return -1;
	struct dirent *e;
	while ((e = readdir(d))) {
		pid_t tid = (pid_t)atoi(e->d_name);
		if (tid <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%d/schedstat", (int)c->pid, (int)tid);
		if (read_small(path, buf, sizeof(buf)) < 0)
			continue;
		uint64_t ns = strtoull(buf, NULL, 10), *prev = colo_slot(c, tid);
		if (!prev)
			continue;
		if (ns - *prev > best_delta && *prev) {
			best_delta = ns - *prev;
			best = tid;
		}
		*prev = ns;
	}
	closedir(d);
	if (!best)
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)c->pid, (int)best);
	if (read_small(path, buf, sizeof(buf)) < 0)
		return -1;
	/* Field 39 (processor). p starts at the space before field 3, the one
	 * after the ")" ending comm, and moves one field per step. */
	char *p = strrchr(buf, ')');
	if (!p)
		return -1;
	p++;
	for (int field = 3; field < 39 && p; field++)
		p = strchr(p + 1, ' ');
	if (!p)
		return -1;
	return atoi(p + 1) == client_cpu;
}

/* Synchronous operations; fills *p50 and *p99 (us). */
static int latency_phase(struct pb_system *s, int is_put, uint64_t seed, double *p50, double *p99)
{
	struct rng r = {seed};
	uint8_t *page = slots[0];
	unsigned consecutive_errors = 0;
	uint64_t n = opt.warmup + opt.ops;
	struct colo colo = {.pid = s->pid};

	cur_phase = is_put ? "put latency" : "get latency";
	watchdog();
	memcpy(page, filler, PB_PAGE);
	for (uint64_t i = 0; i < n; i++) {
		uint64_t addr = rng_page(&r), t0, t1;
		int rc;
		if (is_put) {
			fill_next(page, addr);
			t0 = pb_now_ns();
			rc = s->ops->put(s, addr, page);
			t1 = pb_now_ns();
		} else {
			t0 = pb_now_ns();
			rc = s->ops->get(s, addr, page);
			t1 = pb_now_ns();
		}
		if (rc < 0) {
			struct pb_job dummy = {0};
			pb_job_error(&dummy, addr, s->err);
			if (++consecutive_errors >= 3)
				return phase_fail(s, cur_phase);
			if (!is_put)
				memcpy(page, filler, PB_PAGE);
			continue;
		}
		consecutive_errors = 0;
		if (!is_put)
			check_page(page, addr, 1);
		if (i >= opt.warmup) {
			lat[i - opt.warmup] = t1 - t0;
			if (s->pid > 0 && (i - opt.warmup) % COLO_EVERY == 0) {
				int same = colo_sample(&colo);
				if (same >= 0 && i >= opt.warmup + COLO_EVERY) {
					cur->colo_samples[is_put]++;
					cur->colo_same[is_put] += (uint64_t)same;
				}
			}
		}
	}
	if (!is_put)
		memcpy(page, filler, PB_PAGE);
	qsort(lat, opt.ops, sizeof(lat[0]), cmp_u64);
	*p50 = pct_us(lat, opt.ops, 50);
	*p99 = pct_us(lat, opt.ops, 99);
	return 0;
}

/* A pipelined job over addrs[0..n); returns the elapsed ns or 0 on failure. */
static uint64_t run_job(struct pb_system *s, int is_put, size_t n, int full)
{
	struct pb_job job = {
	    .is_put = is_put,
	    .n = n,
	    .addrs = addrs,
	    .depth = opt.depth,
	    .slots = slots,
	    .full_verify = full || opt.full_verify,
	};
	/* Gets leave other pages' data in the slots: puts start from the filler. */
	if (is_put)
		for (unsigned i = 0; i < opt.depth; i++)
			memcpy(slots[i], filler, PB_PAGE);
	watchdog();
	uint64_t t0 = pb_now_ns();
	int rc = s->ops->pipeline(s, &job);
	uint64_t t1 = pb_now_ns();
	if (rc < 0) {
		phase_fail(s, cur_phase);
		return 0;
	}
	if (job.done != n) {
		snprintf(cur->failure, sizeof(cur->failure), "%s: %llu of %zu operations completed",
			 cur_phase, (unsigned long long)job.done, n);
		return 0;
	}
	return t1 - t0 ? t1 - t0 : 1;
}

static void fill_random(size_t n, uint64_t seed)
{
	struct rng r = {seed};
	for (size_t i = 0; i < n; i++)
		addrs[i] = rng_page(&r);
}

static void fill_sequential(size_t n, uint64_t first)
{
	for (size_t i = 0; i < n; i++)
		addrs[i] = PB_ADDR_BASE + ((first + i) % pb_opts.pages) * PB_PAGE;
}

static double gbs(size_t n, uint64_t ns)
{
	return (double)n * PB_PAGE / (double)ns;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/*
 * The median bandwidth of opt.tp_reps timed runs of opt.tp_ops each. A
 * phase of 200000 pages lasts a quarter of a second here; one stall of the
 * shared machine (another guest, the real-time throttle) inside a single
 * run moved a ratio by 0.15, and the median of several runs does not.
 */
static int throughput_phase(struct pb_system *s, int is_put, double *out)
{
	size_t warm = opt.tp_ops / 10 < 5000 ? opt.tp_ops / 10 : 5000;
	double runs[PB_TP_REPS_MAX];

	cur_phase = is_put ? "put throughput" : "get throughput";
	if (is_put) {
		/* Consecutive pages, continuing where the warm-up stopped. */
		fill_sequential(warm, 0);
		if (warm && !run_job(s, 1, warm, 0))
			return -1;
	} else {
		fill_random(warm, 3);
		if (warm && !run_job(s, 0, warm, 0))
			return -1;
	}
	for (unsigned r = 0; r < opt.tp_reps; r++) {
		uint64_t ns;
		if (is_put)
			fill_sequential(opt.tp_ops, warm + r * opt.tp_ops);
		else
			fill_random(opt.tp_ops, 4 + r);
		if (!(ns = run_job(s, is_put, opt.tp_ops, 0)))
			return -1;
		runs[r] = gbs(opt.tp_ops, ns);
	}
	qsort(runs, opt.tp_reps, sizeof(runs[0]), cmp_double);
	*out = opt.tp_reps % 2 ? runs[opt.tp_reps / 2]
			       : (runs[opt.tp_reps / 2 - 1] + runs[opt.tp_reps / 2]) / 2;
	return 0;
}

static void progress(int pl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void progress(int pl, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "pagebench: [%s %s] ", pl_names[pl], cur_name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static int measure(struct pb_system *s, int pl, struct result *res)
{
	progress(pl, "preloading %llu pages", (unsigned long long)pb_opts.pages);
	cur_phase = "preload";
	memset(gens, 0, pb_opts.pages * sizeof(gens[0]));
	fill_sequential(pb_opts.pages, 0);
	if (!run_job(s, 1, pb_opts.pages, 0))
		return -1;

	if (latency_phase(s, 0, 1, &res->get_p50, &res->get_p99) < 0)
		return -1;
	progress(pl, "get latency p50 %.1f us p99 %.1f us", res->get_p50, res->get_p99);
	if (latency_phase(s, 1, 2, &res->put_p50, &res->put_p99) < 0)
		return -1;
	progress(pl, "put latency p50 %.1f us p99 %.1f us", res->put_p50, res->put_p99);
	if (throughput_phase(s, 0, &res->get_gbs) < 0)
		return -1;
	progress(pl, "get throughput %.3f GB/s", res->get_gbs);
	if (throughput_phase(s, 1, &res->put_gbs) < 0)
		return -1;
	progress(pl, "put throughput %.3f GB/s", res->put_gbs);

	cur_phase = "read-back";
	fill_sequential(pb_opts.pages, 0);
	if (!run_job(s, 0, pb_opts.pages, 1))
		return -1;
	return 0;
}

static void run_system(int pl, int sys)
{
	struct result *res = &results[pl][sys];
	struct pb_system s = {.ops = systems[sys], .cpus = server_mask(pl)};

	cur = res;
	cur_name = sys_names[sys];
	res->tried = 1;
	if (!s.ops) {
		snprintf(res->failure, sizeof(res->failure), "not built into this pagebench");
		goto out;
	}
	cur_phase = "start";
	watchdog();
	if (s.ops->start(&s) < 0) {
		snprintf(res->failure, sizeof(res->failure), "start: %s", s.err);
		goto out;
	}
	if (s.ops->connect(&s) < 0) {
		snprintf(res->failure, sizeof(res->failure), "connect: %s", s.err);
		goto out;
	}
	if (measure(&s, pl, res) == 0)
		res->ran = 1;
	s.ops->disconnect(&s);
out:
	alarm(0);
	if (s.pid > 0) {
		int st = pb_child_stop(s.pid, 5000);
		/* memcached and redis leave on SIGTERM with 0; memory-server must too. */
		if (st != -1 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0) &&
		    !(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM))
			fprintf(stderr,
				"pagebench: warning: %s server ended with %s %d on SIGTERM\n",
				cur_name, WIFEXITED(st) ? "status" : "signal",
				WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
	}
	if (!res->ran) {
		fprintf(stderr, "pagebench: [%s %s] FAILED: %s\n", pl_names[pl], cur_name,
			res->failure);
		if (s.log_path[0])
			fprintf(stderr, "pagebench: [%s %s] server log: %s\n", pl_names[pl],
				cur_name, s.log_path);
	}
	if (res->mismatches || res->errors)
		fprintf(stderr,
			"pagebench: [%s %s] %llu MISMATCHED PAGES, %llu FAILED OPERATIONS\n",
			pl_names[pl], cur_name, (unsigned long long)res->mismatches,
			(unsigned long long)res->errors);
	if (!res->ran || res->mismatches || res->errors) {
		if (sys != SYS_MEMCACHED && sys != SYS_REDIS)
			any_failure = 1;
		else if (opt.named[sys] || res->mismatches || res->errors ||
			 !strstr(res->failure, "not installed"))
			any_failure = 1;
	}
}

/* ---- report ---- */

static FILE *csv;

static const struct result *raw_of(int pl)
{
	const struct result *r = &results[pl][SYS_RAW];
	return r->ran ? r : NULL;
}

static void cell(double v, double base, int have_base, int decimals)
{
	char num[32], rat[16] = "";
	snprintf(num, sizeof(num), "%.*f", decimals, v);
	if (have_base && base > 0)
		snprintf(rat, sizeof(rat), "(%.2fx)", v / base);
	printf(" %8s %-8s", num, rat);
}

static void csv_row(const char *pl, const char *sys, const char *metric, double v, const char *unit,
		    double base)
{
	if (!csv)
		return;
	fprintf(csv, "result,%s,%s,%s,%.4f,%s,", pl, sys, metric, v, unit);
	if (base > 0)
		fprintf(csv, "%.4f", v / base);
	fprintf(csv, ",,\n");
}

static void print_table(int pl)
{
	const struct result *raw = raw_of(pl);
	printf("\n%s: %s\n", pl_names[pl], pl_desc[pl]);
	printf("%-10s %17s %17s %17s %17s %17s %17s\n", "system", "get p50 us", "get p99 us",
	       "put p50 us", "put p99 us", "get GB/s", "put GB/s");
	for (int sys = 0; sys < NSYS; sys++) {
		const struct result *r = &results[pl][sys];
		if (!r->tried)
			continue;
		printf("%-10s", sys_names[sys]);
		if (!r->ran) {
			printf(" FAILED: %s\n", r->failure);
			continue;
		}
		int hb = raw != NULL;
		cell(r->get_p50, hb ? raw->get_p50 : 0, hb, 1);
		cell(r->get_p99, hb ? raw->get_p99 : 0, hb, 1);
		cell(r->put_p50, hb ? raw->put_p50 : 0, hb, 1);
		cell(r->put_p99, hb ? raw->put_p99 : 0, hb, 1);
		cell(r->get_gbs, hb ? raw->get_gbs : 0, hb, 3);
		cell(r->put_gbs, hb ? raw->put_gbs : 0, hb, 3);
		printf("\n");
		const char *p = pl_names[pl], *n = sys_names[sys];
		csv_row(p, n, "get_p50", r->get_p50, "us", hb ? raw->get_p50 : 0);
		csv_row(p, n, "get_p99", r->get_p99, "us", hb ? raw->get_p99 : 0);
		csv_row(p, n, "put_p50", r->put_p50, "us", hb ? raw->put_p50 : 0);
		csv_row(p, n, "put_p99", r->put_p99, "us", hb ? raw->put_p99 : 0);
		csv_row(p, n, "get_tput", r->get_gbs, "GB/s", hb ? raw->get_gbs : 0);
		csv_row(p, n, "put_tput", r->put_gbs, "GB/s", hb ? raw->put_gbs : 0);
	}
	for (int sys = 0; sys < NSYS; sys++) {
		const struct result *r = &results[pl][sys];
		if (r->ran && r->colo_samples[0] && r->colo_samples[1])
			printf("  %-10s server thread on the client's CPU in %.0f%% of get-latency "
			       "samples, %.0f%% of put\n",
			       sys_names[sys],
			       100.0 * (double)r->colo_same[0] / (double)r->colo_samples[0],
			       100.0 * (double)r->colo_same[1] / (double)r->colo_samples[1]);
	}
	for (int sys = 0; sys < NSYS; sys++) {
		const struct result *r = &results[pl][sys];
		if (r->tried && (r->ran || r->checked_full))
			printf("  %-10s verified %llu pages byte for byte, %llu by sample; "
			       "%llu mismatches, %llu failed operations\n",
			       sys_names[sys], (unsigned long long)r->checked_full,
			       (unsigned long long)r->checked_sampled,
			       (unsigned long long)r->mismatches, (unsigned long long)r->errors);
	}
}

static int n_pass, n_miss, n_na;

/* One target: sdrsa's value against factor * other's value. lower: a
 * latency, the target is v <= factor * other; else v >= factor * other. */
static void target(int pl, const char *what, int other, double (*get)(const struct result *),
		   double factor, int lower)
{
	const struct result *a = &results[pl][SYS_SDRSA], *b = &results[pl][other];
	char desc[96];
	snprintf(desc, sizeof(desc), "sdrsa %s %s %.1fx %s", what, lower ? "<=" : ">=", factor,
		 sys_names[other]);
	if (!a->ran || !b->ran) {
		n_na++;
		printf("  n/a   %-36s (%s not measured)\n", desc,
		       !a->ran ? "sdrsa" : sys_names[other]);
		if (csv)
			fprintf(csv, "target,%s,sdrsa,\"%s\",,x,,%.2f,N/A\n", pl_names[pl], desc,
				factor);
		return;
	}
	double va = get(a), vb = get(b), ratio = vb > 0 ? va / vb : 0;
	int ok = lower ? va <= factor * vb : va >= factor * vb;
	ok ? n_pass++ : n_miss++;
	printf("  %-5s %-36s %9.3f vs %9.3f = %.2fx\n", ok ? "PASS" : "MISS", desc, va, vb, ratio);
	if (csv)
		fprintf(csv, "target,%s,sdrsa,\"%s\",%.4f,x,,%.2f,%s\n", pl_names[pl], desc, ratio,
			factor, ok ? "PASS" : "MISS");
}

static double f_get_p50(const struct result *r)
{
	return r->get_p50;
}
static double f_put_p50(const struct result *r)
{
	return r->put_p50;
}
static double f_get_gbs(const struct result *r)
{
	return r->get_gbs;
}
static double f_put_gbs(const struct result *r)
{
	return r->put_gbs;
}

static void print_targets(int pl)
{
	printf("\ntargets, %s (latency in us, throughput in GB/s):\n", pl_names[pl]);
	target(pl, "get p50", SYS_RAW, f_get_p50, 1.1, 1);
	target(pl, "get GB/s", SYS_RAW, f_get_gbs, 0.8, 0);
	target(pl, "get GB/s", SYS_MEMCACHED, f_get_gbs, 2.0, 0);
	target(pl, "get GB/s", SYS_REDIS, f_get_gbs, 1.2, 0);
	target(pl, "put p50", SYS_RAW, f_put_p50, 1.1, 1);
	target(pl, "put GB/s", SYS_RAW, f_put_gbs, 0.8, 0);
	target(pl, "put GB/s", SYS_MEMCACHED, f_put_gbs, 2.0, 0);
	target(pl, "put GB/s", SYS_REDIS, f_put_gbs, 1.2, 0);
}

static void read_first_line(const char *cmd, char *buf, size_t n)
{
	FILE *f = popen(cmd, "r");
	buf[0] = '\0';
	if (!f)
		return;
	if (!fgets(buf, (int)n, f))
		buf[0] = '\0';
	pclose(f);
	buf[strcspn(buf, "\n")] = '\0';
}

static void print_header(void)
{
	struct utsname u;
	char cpu[128] = "?", load[64] = "?", date[64], mc[96], rd[160];
	time_t now = time(NULL);
	strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S UTC", gmtime(&now));
	uname(&u);
	FILE *f = fopen("/proc/cpuinfo", "r");
	if (f) {
		char line[256];
		while (fgets(line, sizeof(line), f)) {
			if (!strncmp(line, "model name", 10)) {
				char *p = strchr(line, ':');
				if (p) {
					snprintf(cpu, sizeof(cpu), "%s", p + 2);
					cpu[strcspn(cpu, "\n")] = '\0';
				}
				break;
			}
		}
		fclose(f);
	}
	read_first_line("cat /proc/loadavg 2>/dev/null", load, sizeof(load));
	read_first_line("memcached -V 2>/dev/null", mc, sizeof(mc));
	read_first_line("redis-server --version 2>/dev/null", rd, sizeof(rd));
	char *sha = strstr(rd, " sha=");
	if (sha)
		*sha = '\0';

	printf("pagebench: 4 KiB pages over TCP on 127.0.0.1, one client connection\n");
	printf("date %s; %s %s; %d CPUs usable (%s); load %s\n", date, u.sysname, u.release,
	       CPU_COUNT(&all_cpus), cpu, load);
	printf("working set %llu pages; latency: %llu ops after %llu warm-up; "
	       "throughput: median of %u runs of %llu ops, %u in flight\n",
	       (unsigned long long)pb_opts.pages, (unsigned long long)opt.ops,
	       (unsigned long long)opt.warmup, opt.tp_reps, (unsigned long long)opt.tp_ops,
	       opt.depth);
	printf("servers: raw (forked, blocking, 1 thread); sdrsa %s --threads %d; %s -t 1; %s\n",
	       pb_opts.server_bin, pb_opts.server_threads, mc[0] ? mc : "memcached",
	       rd[0] ? rd : "redis-server");
	printf("ratios: each figure over the raw baseline of the same placement in this run\n");
}

/* ---- options ---- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: pagebench [options]\n"
		"Measure 4 KiB page get/put latency and pipelined throughput on loopback for\n"
		"sdrsa, a raw TCP baseline, memcached and Redis, in one run.\n"
		"  --quick              short run (2048 pages, 2000 ops, 20000 pipelined ops)\n"
		"  --ops N              timed synchronous ops per latency phase (20000)\n"
		"  --warmup N           untimed ops before each latency phase (ops/10)\n"
		"  --tp-ops N           ops per timed throughput run (10 x ops)\n"
		"  --tp-reps N          timed runs per throughput phase, the median\n"
		"                       reported (5, max %u)\n"
		"  --pages N            working set in pages (16384)\n"
		"  --depth N            operations in flight when pipelined (32, max %u)\n"
		"  --placement P        pinned, unpinned, split (bench on --cpu, server on\n"
		"                       another CPU), both (= pinned,unpinned), all, or a\n"
		"                       comma-separated list (both)\n"
		"  --cpu N              CPU of the pinned placement (0)\n"
		"  --only LIST          systems among raw,sdrsa,memcached,redis (all)\n"
		"  --server-bin PATH    memory-server binary (%s)\n"
		"  --server-threads N   memory-server --threads (1)\n"
		"  --spin-us N          sdrsa client spin before sleeping (library default)\n"
		"  --verify MODE        sample or full: byte-for-byte check of pipelined gets\n"
		"                       too (sample; latency gets and the final read-back are\n"
		"                       always checked in full)\n"
		"  --timeout SEC        watchdog per phase (120); client op timeout is 10 s\n"
		"  --csv FILE           also write results and targets as CSV\n"
		"  --keep-logs          keep the servers' logs\n"
		"Exit status: 0 measured (whatever the targets), 1 something failed, 2 usage.\n",
		PB_TP_REPS_MAX, PB_MAX_DEPTH, PAGEBENCH_SERVER_BIN);
}

static int parse_u64(const char *s, uint64_t *out, uint64_t min, uint64_t max)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

static int parse_only(char *list)
{
	memset(opt.only, 0, sizeof(opt.only));
	for (char *save = NULL, *t = strtok_r(list, ",", &save); t;
	     t = strtok_r(NULL, ",", &save)) {
		int found = 0;
		for (int i = 0; i < NSYS; i++) {
			if (!strcmp(t, sys_names[i])) {
				opt.only[i] = opt.named[i] = found = 1;
			}
		}
		if (!found) {
			fprintf(stderr,
				"pagebench: unknown system '%s' in --only "
				"(raw,sdrsa,memcached,redis)\n",
				t);
			return -1;
		}
	}
	return 0;
}

/* "pinned", "unpinned", "split", "both" (pinned and unpinned), "all", or a
 * comma-separated list of them. */
static int parse_placement(const char *arg)
{
	char buf[64];
	snprintf(buf, sizeof(buf), "%s", arg);
	memset(opt.placements, 0, sizeof(opt.placements));
	for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (!strcmp(t, "both") || !strcmp(t, "all")) {
			opt.placements[PL_PINNED] = opt.placements[PL_UNPINNED] = 1;
			if (!strcmp(t, "all"))
				opt.placements[PL_SPLIT] = 1;
			continue;
		}
		int found = 0;
		for (int i = 0; i < NPL; i++)
			if (!strcmp(t, pl_names[i]))
				opt.placements[i] = found = 1;
		if (!found)
			return -1;
	}
	return 0;
}

static int parse_args(int argc, char **argv)
{
	enum {
		O_QUICK = 256,
		O_OPS,
		O_WARMUP,
		O_TPOPS,
		O_TPREPS,
		O_PAGES,
		O_DEPTH,
		O_PLACEMENT,
		O_CPU,
		O_ONLY,
		O_SERVER_BIN,
		O_SERVER_THREADS,
		O_SPIN,
		O_VERIFY,
		O_TIMEOUT,
		O_CSV,
		O_KEEP
	};
	static const struct option lo[] = {
	    {"quick", no_argument, 0, O_QUICK},
	    {"ops", required_argument, 0, O_OPS},
	    {"warmup", required_argument, 0, O_WARMUP},
	    {"tp-ops", required_argument, 0, O_TPOPS},
	    {"tp-reps", required_argument, 0, O_TPREPS},
	    {"pages", required_argument, 0, O_PAGES},
	    {"depth", required_argument, 0, O_DEPTH},
	    {"placement", required_argument, 0, O_PLACEMENT},
	    {"cpu", required_argument, 0, O_CPU},
	    {"only", required_argument, 0, O_ONLY},
	    {"server-bin", required_argument, 0, O_SERVER_BIN},
	    {"server-threads", required_argument, 0, O_SERVER_THREADS},
	    {"spin-us", required_argument, 0, O_SPIN},
	    {"verify", required_argument, 0, O_VERIFY},
	    {"timeout", required_argument, 0, O_TIMEOUT},
	    {"csv", required_argument, 0, O_CSV},
	    {"keep-logs", no_argument, 0, O_KEEP},
	    {"help", no_argument, 0, 'h'},
	    {0, 0, 0, 0},
	};
	int have_ops = 0, have_warmup = 0, have_tp = 0, have_pages = 0;
	uint64_t v;
	int c;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case O_QUICK:
			opt.quick = 1;
			break;
		case O_OPS:
			if (parse_u64(optarg, &opt.ops, 1, 100000000))
				goto bad;
			have_ops = 1;
			break;
		case O_WARMUP:
			if (parse_u64(optarg, &opt.warmup, 0, 100000000))
				goto bad;
			have_warmup = 1;
			break;
		case O_TPOPS:
			if (parse_u64(optarg, &opt.tp_ops, 1, 1000000000))
				goto bad;
			have_tp = 1;
			break;
		case O_TPREPS:
			if (parse_u64(optarg, &v, 1, PB_TP_REPS_MAX))
				goto bad;
			opt.tp_reps = (unsigned)v;
			break;
		case O_PAGES:
			if (parse_u64(optarg, &pb_opts.pages, 1, 1u << 26))
				goto bad;
			have_pages = 1;
			break;
		case O_DEPTH:
			if (parse_u64(optarg, &v, 1, PB_MAX_DEPTH))
				goto bad;
			opt.depth = (unsigned)v;
			break;
		case O_PLACEMENT:
			if (parse_placement(optarg))
				goto bad;
			break;
		case O_CPU:
			if (parse_u64(optarg, &v, 0, CPU_SETSIZE - 1))
				goto bad;
			opt.cpu = (int)v;
			break;
		case O_ONLY:
			if (parse_only(optarg))
				return -1;
			break;
		case O_SERVER_BIN:
			pb_opts.server_bin = optarg;
			break;
		case O_SERVER_THREADS:
			if (parse_u64(optarg, &v, 1, 256))
				goto bad;
			pb_opts.server_threads = (int)v;
			break;
		case O_SPIN: {
			char *end;
			long sv = strtol(optarg, &end, 10);
			if (end == optarg || *end || sv < -1 || sv > 1000000)
				goto bad;
			pb_opts.spin_us = (int)sv;
			break;
		}
		case O_VERIFY:
			if (!strcmp(optarg, "full"))
				opt.full_verify = 1;
			else if (!strcmp(optarg, "sample"))
				opt.full_verify = 0;
			else
				goto bad;
			break;
		case O_TIMEOUT:
			if (parse_u64(optarg, &v, 1, 86400))
				goto bad;
			opt.timeout_s = (int)v;
			break;
		case O_CSV:
			opt.csv = optarg;
			break;
		case O_KEEP:
			opt.keep_logs = 1;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "pagebench: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	if (opt.quick) {
		if (!have_pages)
			pb_opts.pages = 2048;
		if (!have_ops)
			opt.ops = 2000;
	}
	if (!have_warmup)
		opt.warmup = opt.ops / 10;
	if (!have_tp)
		opt.tp_ops = opt.ops * 10;
	if (pb_opts.pages < opt.depth) {
		fprintf(stderr, "pagebench: --pages must be at least --depth (%u)\n", opt.depth);
		return -1;
	}
	return 0;
bad:
	fprintf(stderr, "pagebench: bad value '%s' for --%s\n", optarg, lo[c - O_QUICK].name);
	return -1;
}

int main(int argc, char **argv)
{
	if (parse_args(argc, argv) < 0)
		return 2;
	/* Progress goes to stderr; keep the two in order when both are piped. */
	setvbuf(stdout, NULL, _IOLBF, 0);

	if (sched_getaffinity(0, sizeof(all_cpus), &all_cpus) < 0) {
		perror("pagebench: sched_getaffinity");
		return 1;
	}
	if (!CPU_ISSET(opt.cpu, &all_cpus)) {
		fprintf(stderr, "pagebench: CPU %d is not available to this process\n", opt.cpu);
		return 2;
	}
	CPU_ZERO(&pinned_cpus);
	CPU_SET(opt.cpu, &pinned_cpus);
	CPU_ZERO(&other_cpus);
	for (int i = 0; i < CPU_SETSIZE; i++) {
		if (i != opt.cpu && CPU_ISSET(i, &all_cpus)) {
			CPU_SET(i, &other_cpus);
			break;
		}
	}
	if (opt.placements[PL_SPLIT] && CPU_COUNT(&other_cpus) == 0) {
		fprintf(stderr, "pagebench: 'split' needs a second usable CPU\n");
		return 2;
	}

	if (!mkdtemp(tmpdir)) {
		perror("pagebench: mkdtemp");
		return 1;
	}
	have_tmpdir = 1;
	for (size_t i = 0; i < sizeof(tmp_files) / sizeof(tmp_files[0]); i++)
		snprintf(tmp_paths[i], sizeof(tmp_paths[i]), "%s/%s", tmpdir, tmp_files[i]);
	pb_opts.tmpdir = tmpdir;
	atexit(at_exit);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, on_fatal_signal);
	signal(SIGTERM, on_fatal_signal);
	signal(SIGHUP, on_fatal_signal);
	signal(SIGALRM, on_alarm);

	if (opt.csv) {
		csv = fopen(opt.csv, "w");
		if (!csv) {
			fprintf(stderr, "pagebench: cannot write %s: %s\n", opt.csv,
				strerror(errno));
			return 1;
		}
		/* result rows: value and its ratio to raw; target rows: the
		 * measured ratio (value) and the required one. */
		fprintf(csv, "kind,placement,system,metric,value,unit,ratio_vs_raw,required,"
			     "verdict\n");
	}

	/* Random filler: pages are neither zero nor compressible. */
	uint64_t st = 0x5eed;
	for (unsigned i = 0; i < PB_PAGE / 8; i++) {
		uint64_t w = sdrsa_splitmix64(&st);
		memcpy(&filler[i * 8], &w, 8);
	}
	gens = calloc(pb_opts.pages, sizeof(gens[0]));
	lat = calloc(opt.ops, sizeof(lat[0]));
	size_t naddrs = opt.tp_ops > pb_opts.pages ? opt.tp_ops : pb_opts.pages;
	addrs = calloc(naddrs, sizeof(addrs[0]));
	if (!gens || !lat || !addrs) {
		fprintf(stderr, "pagebench: out of memory\n");
		return 1;
	}
	for (unsigned i = 0; i < opt.depth; i++) {
		if (!(slots[i] = page_alloc())) {
			fprintf(stderr, "pagebench: out of memory\n");
			return 1;
		}
	}

	print_header();
	fflush(stdout);
	if (CPU_COUNT(&all_cpus) < 2 && opt.placements[PL_UNPINNED])
		fprintf(stderr,
			"pagebench: note: only one CPU usable; 'unpinned' is the same as pinned\n");

	for (int pl = 0; pl < NPL; pl++) {
		if (!opt.placements[pl])
			continue;
		if (sched_setaffinity(0, sizeof(cpu_set_t), client_mask(pl)) < 0) {
			perror("pagebench: sched_setaffinity");
			return 1;
		}
		for (int sys = 0; sys < NSYS; sys++)
			if (opt.only[sys])
				run_system(pl, sys);
	}
	sched_setaffinity(0, sizeof(cpu_set_t), &all_cpus);

	for (int pl = 0; pl < NPL; pl++)
		if (opt.placements[pl])
			print_table(pl);
	for (int pl = 0; pl < NPL; pl++)
		if (opt.placements[pl])
			print_targets(pl);
	printf("\ntargets: %d PASS, %d MISS, %d n/a\n", n_pass, n_miss, n_na);
	if (any_failure)
		printf("pagebench: SOMETHING FAILED (see above); these figures are not valid\n");
	if (csv && fclose(csv) != 0) {
		fprintf(stderr, "pagebench: writing %s failed\n", opt.csv);
		any_failure = 1;
	}
	return any_failure ? 1 : 0;
}
