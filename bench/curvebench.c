/* SPDX-License-Identifier: MIT */
/*
 * curvebench: the seed's experiment as a curve. Performance against the
 * size of local memory (a fraction of the working set: 12.5, 25, 50, 75 and
 * 100 %), for
 *
 *   workloads  zipf, uniform   curveload (bench/curveload.c): random 8-byte
 *                              reads and updates over SIZE, pages drawn from
 *                              zipf(0.99) or uniformly;
 *              redis-zipf, redis-uniform
 *                              redis-server loaded with KEYS 4 KiB values,
 *                              then GET (95 %) and SET (5 %) of keys drawn
 *                              from zipf(0.99) or uniformly by a hiredis
 *                              client with a few requests in flight;
 *   systems    all-local       the program alone (the flat reference line);
 *              sdrsa-POLICY    under `rsa-app run --local FRACTION`, one line
 *                              per name of --policies: "default" runs with no
 *                              --policy (whatever the engine's default is),
 *                              any other name is passed as --policy NAME, so
 *                              new policies need no change here;
 *              linux-swap      in a memory cgroup v1 limited to FRACTION
 *                              (+ 8 MiB for the process itself, which the
 *                              engine's budget does not count either) with a
 *                              swap file (bench/swapref.c, as enginebench),
 *                              enabled for the whole sweep.
 *
 * At each point the systems run one after the other (all-local first), so
 * that the ratios compare runs minutes apart.
 *
 * Every run is a fresh process (and a fresh redis-server) and checks its
 * data by content: curveload checks every word it reads and all of memory
 * at the end; the redis client checks every value it gets against the
 * version it last set, and reads every key back at the end. A run that
 * finds wrong data fails the bench. Results: a table per workload on stdout
 * and one CSV row per point (--csv), which bench/curve.gp draws
 * (scripts/bench.sh --bench curve does both).
 *
 * Exit status: 0 when every point was measured and verified (a swap run
 * killed by the OOM killer is a result, not a failure), 1 when anything
 * failed, 2 on a usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <hiredis/hiredis.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "pagebench.h"
#include "swapref.h"
#include "zipf.h"

#ifndef CURVEBENCH_SERVER_BIN
#define CURVEBENCH_SERVER_BIN "memory-server"
#endif
#ifndef CURVEBENCH_RSA_APP
#define CURVEBENCH_RSA_APP "rsa-app"
#endif
#ifndef CURVEBENCH_CURVELOAD
#define CURVEBENCH_CURVELOAD "curveload"
#endif

#define PG 4096ull
#define MIB (1024ull * 1024ull)
#define MAX_LIST 16
#define CG_EXTRA (8 * MIB) /* the cgroup's allowance for the process itself */

/* pagebench's systems (sys_sdrsa.c starts the memory-server) read these. */
struct pb_opts pb_opts = {
	.server_bin = CURVEBENCH_SERVER_BIN,
	.server_threads = 1,
	.timeout_ms = 10000,
	.pages = 16384,
};

/* sys_sdrsa.c refers to these; curvebench runs no pipelined page job. */
void pb_job_fill(struct pb_job *job, void *page, uint64_t addr)
{
	(void)job, (void)page, (void)addr;
}
void pb_job_check(struct pb_job *job, const void *page, uint64_t addr)
{
	(void)job, (void)page, (void)addr;
}
void pb_job_error(struct pb_job *job, uint64_t addr, const char *what)
{
	(void)addr, (void)what;
	job->errors++;
}
int64_t pb_page_index(uint64_t addr)
{
	(void)addr;
	return -1;
}
size_t pb_page_key(uint64_t addr, char *buf, size_t n)
{
	return (size_t)snprintf(buf, n, "pg:%llx", (unsigned long long)addr);
}

/* ---- options ---- */

enum { W_ZIPF, W_UNIFORM, W_REDIS_ZIPF, W_REDIS_UNIFORM, NWORK };
static const char *const work_names[NWORK] = {"zipf", "uniform", "redis-zipf", "redis-uniform"};

static struct {
	int quick;
	int work[NWORK];
	int sys_local, sys_sdrsa, sys_swap;
	char *policies[MAX_LIST];
	int npolicies;
	double pcts[MAX_LIST];
	int npcts;
	uint64_t size, ops;
	uint64_t redis_keys, redis_ops;
	int redis_depth;
	const char *rsa_app, *curveload, *swap_dir, *csv;
	int timeout_s;
	double min_seconds; /* timed phase repeated until this long */
} opt = {
	.work = {1, 1, 1, 1},
	.sys_local = 1,
	.sys_sdrsa = 1,
	.sys_swap = 1,
	.size = 512 * MIB,
	.ops = 500000,
	.redis_keys = 65536,
	.redis_ops = 100000,
	.redis_depth = 8,
	.rsa_app = CURVEBENCH_RSA_APP,
	.curveload = CURVEBENCH_CURVELOAD,
	.swap_dir = "/var/tmp",
	.timeout_s = 900,
	.min_seconds = 1.0,
};

/* ---- results ---- */

struct point {
	int work;
	char system[48];      /* all-local, sdrsa-POLICY, linux-swap */
	double pct;	      /* local memory, % of the working set (100 for all-local) */
	uint64_t local_bytes; /* the budget (cgroup: without CG_EXTRA) */
	uint64_t ws_bytes;    /* working set */
	uint64_t ops;	      /* timed operations */
	double seconds;	      /* of the timed operations */
	int64_t remote_faults, pages_in; /* from --stats-json; -1 when not sdrsa */
	char status[16];		 /* ok, killed, timeout, failed, wrong-data */
	char err[240];
};
static struct point points[1024];
static int npoints;
static int any_failure;

static char tmpdir[] = "/tmp/curvebench.XXXXXX";
static int have_tmpdir;
static struct pb_system sdrsa_srv = {.ops = &pb_sys_sdrsa};
static char sdrsa_addr[64];
static uint64_t redis_ws; /* used_memory of the all-local redis after loading */

static void cleanup_all(void)
{
	pb_child_kill_all();
	swapref_teardown_all();
}

static void on_fatal_signal(int sig)
{
	static const char msg[] = "curvebench: interrupted; cleaning up (servers, cgroup, swap)\n";
	(void)!write(2, msg, sizeof(msg) - 1);
	cleanup_all();
	signal(sig, SIG_DFL);
	raise(sig);
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Wait for a child spawned with pb_spawn for at most timeout_s: 0 with its
 * wait status, or -1 when it had to be stopped. */
static int wait_child(pid_t pid, int timeout_s, int *status)
{
	for (long waited = 0; waited < (long)timeout_s * 1000; waited += 20) {
		pid_t r = waitpid(pid, status, WNOHANG);
		if (r == pid) {
			pb_child_forget(pid);
			return 0;
		}
		if (r < 0 && errno != EINTR) {
			pb_child_forget(pid);
			*status = -1;
			return 0;
		}
		sleep_ms(20);
	}
	pb_child_stop(pid, 3000);
	return -1;
}

/* Classify a finished run from its wait status. */
static void set_status(struct point *p, int timed_out, int status, const char *log)
{
	char tail[200];
	if (timed_out) {
		snprintf(p->status, sizeof(p->status), "timeout");
		snprintf(p->err, sizeof(p->err), "longer than --timeout %d s", opt.timeout_s);
		return;
	}
	/* A program killed by SIGKILL (the OOM killer), directly or under
	 * rsa-app (which exits 128 + signal). */
	if ((WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) ||
	    (WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGKILL)) {
		snprintf(p->status, sizeof(p->status), "killed");
		snprintf(p->err, sizeof(p->err), "killed (SIGKILL: out of memory)");
		return;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return;
	pb_log_tail(log, tail, sizeof(tail));
	snprintf(p->status, sizeof(p->status),
		 WIFEXITED(status) && WEXITSTATUS(status) == 3 ? "wrong-data" : "failed");
	snprintf(p->err, sizeof(p->err), "%s %d: %s", WIFEXITED(status) ? "exit" : "signal",
		 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), tail);
}

/* Remote faults and pages in from rsa-app's --stats-json file. */
static void read_stats_json(const char *path, struct point *p)
{
	char buf[4096];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = 0;
	const char *f = strstr(buf, "\"faults\":{");
	const char *r = f ? strstr(f, "\"remote\":") : NULL;
	const char *in = strstr(buf, "\"pages_in\":");
	if (r)
		p->remote_faults = strtoll(r + strlen("\"remote\":"), NULL, 10);
	if (in)
		p->pages_in = strtoll(in + strlen("\"pages_in\":"), NULL, 10);
}

static struct point *new_point(int work, const char *system, double pct, uint64_t ws)
{
	if (npoints == (int)(sizeof(points) / sizeof(points[0]))) {
		fprintf(stderr, "curvebench: too many points\n");
		exit(1);
	}
	struct point *p = &points[npoints++];
	memset(p, 0, sizeof(*p));
	p->work = work;
	snprintf(p->system, sizeof(p->system), "%s", system);
	p->pct = pct;
	p->ws_bytes = ws;
	p->local_bytes = pct >= 100 || !strcmp(system, "all-local")
				 ? ws
				 : ((uint64_t)((double)ws * pct / 100.0) & ~(PG - 1));
	p->remote_faults = p->pages_in = -1;
	snprintf(p->status, sizeof(p->status), "ok");
	return p;
}

/* The command that runs a program under a system: argv[0..] to which the
 * program's own argv is appended. `policy` is NULL except for sdrsa.
 * `threshold` is rsa-app's --threshold (NULL: its default). */
enum { S_LOCAL, S_SDRSA, S_SWAP };

static int prefix_argv(int sys, const char *policy, const struct point *p, const char *threshold,
		       const char *json, char *bufs[4], const char **argv)
{
	int n = 0;
	if (sys == S_SDRSA) {
		snprintf(bufs[0], 32, "%llu", (unsigned long long)p->local_bytes);
		argv[n++] = opt.rsa_app;
		argv[n++] = "run";
		argv[n++] = "--server";
		argv[n++] = sdrsa_addr;
		argv[n++] = "--local";
		argv[n++] = bufs[0];
		if (strcmp(policy, "default")) {
			argv[n++] = "--policy";
			argv[n++] = policy;
		}
		if (threshold) {
			argv[n++] = "--threshold";
			argv[n++] = threshold;
		}
		argv[n++] = "--stats-json";
		argv[n++] = json;
		argv[n++] = "--";
	} else if (sys == S_SWAP) {
		/* The shell joins the cgroup, then becomes the program. */
		snprintf(bufs[1], 300, "%s/cgroup.procs", swapref_cgroup_path());
		argv[n++] = "/bin/sh";
		argv[n++] = "-c";
		argv[n++] = "echo $$ > \"$0\" && exec \"$@\"";
		argv[n++] = bufs[1];
	}
	return n;
}

static const char *system_name(int sys, const char *policy, char *buf, size_t n)
{
	if (sys == S_LOCAL)
		return "all-local";
	if (sys == S_SWAP)
		return "linux-swap";
	snprintf(buf, n, "sdrsa-%s", policy);
	return buf;
}

/* ---- synthetic workloads: curveload ---- */

static void run_synthetic(int work, int sys, const char *policy, double pct)
{
	char name[64], b0[32], b1[300], b2[32], b3[32], b4[32], json[300], log[300];
	char *bufs[4] = {b0, b1, b2, b3};
	const char *argv[40];
	static int run_no;
	struct point *p = new_point(work, system_name(sys, policy, name, sizeof(name)), pct,
				    opt.size);
	snprintf(json, sizeof(json), "%s/run%d.json", tmpdir, ++run_no);
	snprintf(log, sizeof(log), "%s/run%d.log", tmpdir, run_no);
	int n = prefix_argv(sys, policy, p, NULL, json, bufs, argv);
	snprintf(b2, sizeof(b2), "%llu", (unsigned long long)opt.size);
	snprintf(b3, sizeof(b3), "%llu", (unsigned long long)opt.ops);
	argv[n++] = opt.curveload;
	argv[n++] = "--size";
	argv[n++] = b2;
	argv[n++] = "--ops";
	argv[n++] = b3;
	argv[n++] = "--dist";
	argv[n++] = work == W_ZIPF ? "zipf" : "uniform";
	snprintf(b4, sizeof(b4), "%g", opt.min_seconds);
	argv[n++] = "--min-seconds";
	argv[n++] = b4;
	argv[n] = NULL;
	p->ops = opt.ops;

	fprintf(stderr, "curvebench: %s, %s, %g%% local...\n", work_names[work], p->system, pct);
	char err[300];
	pid_t pid = pb_spawn((char *const *)argv, log, NULL, err, sizeof(err));
	if (pid < 0) {
		snprintf(p->status, sizeof(p->status), "failed");
		snprintf(p->err, sizeof(p->err), "%.200s", err);
		return;
	}
	int status = 0;
	int timed_out = wait_child(pid, opt.timeout_s, &status) < 0;
	set_status(p, timed_out, status, log);
	if (!strcmp(p->status, "ok")) {
		/* curveload fill_s=F warmup_s=W ops=N seconds=S ops_per_s=R verified */
		char line[512] = "";
		FILE *f = fopen(log, "r");
		while (f && fgets(line, sizeof(line), f))
			if (!strncmp(line, "curveload ", 10))
				break;
		if (f)
			fclose(f);
		const char *s = strstr(line, " seconds="), *o = strstr(line, " ops=");
		if (!s || !o || !strstr(line, " verified")) {
			snprintf(p->status, sizeof(p->status), "failed");
			snprintf(p->err, sizeof(p->err), "no result line from curveload");
		} else {
			p->seconds = strtod(s + 9, NULL);
			p->ops = strtoull(o + 5, NULL, 10);
		}
	}
	if (sys == S_SDRSA)
		read_stats_json(json, p);
	unlink(json);
	if (!strcmp(p->status, "ok"))
		unlink(log);
}

/* ---- redis-server with a zipf or uniform client ---- */

/* Value of key k at version v: 512 words, each naming key, version and
 * position, so a value of another key, an older version or a misplaced
 * page is told apart by content. */
static void value_of(uint64_t k, uint32_t v, uint64_t *w)
{
	for (uint64_t j = 0; j < PG / 8; j++)
		w[j] = (k << 40) ^ ((uint64_t)v << 12) ^ j ^ 0x5851f42d4c957f2dull;
}

struct rclient {
	redisContext *c;
	uint32_t *ver; /* version last set, per key */
	uint64_t nkeys;
	uint64_t bad;  /* replies with wrong content */
	char err[200]; /* connection or protocol error */
};

enum { R_LOAD, R_CHECK, R_MIX };

struct inflight {
	uint64_t key;
	uint32_t ver;
	int is_set;
};

/* n operations with depth in flight: R_LOAD sets every key to version 0,
 * R_CHECK gets every key, R_MIX draws keys from z (zipf or uniform) and
 * sets 5 % of them. 0, or -1 with rc->err set. */
static int rclient_run(struct rclient *rc, int mode, struct zipf *z, int zipf, uint64_t n)
{
	struct inflight q[256];
	uint64_t issued = 0, done = 0, val[PG / 8], want[PG / 8];
	unsigned depth = (unsigned)opt.redis_depth;
	while (done < n) {
		while (issued < n && issued - done < depth) {
			struct inflight *f = &q[issued % depth];
			if (mode == R_MIX) {
				f->key = zipf ? zipf_next(z) : zipf_rand(z) % rc->nkeys;
				f->is_set = zipf_rand(z) % 100 < 5;
			} else {
				f->key = issued;
				f->is_set = mode == R_LOAD;
			}
			if (f->is_set && mode == R_MIX)
				rc->ver[f->key]++;
			f->ver = rc->ver[f->key];
			char key[32];
			int kl = snprintf(key, sizeof(key), "k:%llu", (unsigned long long)f->key);
			if (f->is_set) {
				value_of(f->key, f->ver, val);
				const char *a[] = {"SET", key, (const char *)val};
				size_t l[] = {3, (size_t)kl, PG};
				redisAppendCommandArgv(rc->c, 3, a, l);
			} else {
				const char *a[] = {"GET", key};
				size_t l[] = {3, (size_t)kl};
				redisAppendCommandArgv(rc->c, 2, a, l);
			}
			issued++;
		}
		redisReply *r = NULL;
		if (redisGetReply(rc->c, (void **)&r) != REDIS_OK || !r) {
			snprintf(rc->err, sizeof(rc->err), "redis: %s",
				 rc->c->err ? rc->c->errstr : "no reply");
			return -1;
		}
		struct inflight *f = &q[done % depth];
		if (f->is_set) {
			if (r->type != REDIS_REPLY_STATUS)
				rc->bad++;
		} else {
			value_of(f->key, f->ver, want);
			if (r->type != REDIS_REPLY_STRING || r->len != PG ||
			    memcmp(r->str, want, PG) != 0)
				rc->bad++;
		}
		freeReplyObject(r);
		done++;
	}
	return 0;
}

static uint64_t redis_used_memory(redisContext *c)
{
	redisReply *r = redisCommand(c, "INFO memory");
	uint64_t v = 0;
	if (r && r->type == REDIS_REPLY_STRING) {
		const char *s = strstr(r->str, "used_memory:");
		if (s)
			v = strtoull(s + strlen("used_memory:"), NULL, 10);
	}
	if (r)
		freeReplyObject(r);
	return v;
}

static void run_redis(int work, int sys, const char *policy, double pct)
{
	char name[64], b0[32], b1[300], b2[32], b3[32], json[300], logname[64];
	char *bufs[4] = {b0, b1, b2, b3};
	const char *argv[48];
	static int run_no;
	uint64_t ws = redis_ws ? redis_ws : opt.redis_keys * PG;
	struct point *p = new_point(work, system_name(sys, policy, name, sizeof(name)), pct, ws);
	p->ops = opt.redis_ops;
	snprintf(json, sizeof(json), "%s/redis%d.json", tmpdir, ++run_no);
	snprintf(logname, sizeof(logname), "redis%d.log", run_no);
	/* pb_start_peer runs a program of /usr/bin: the shell, which runs the
	 * command line; under rsa-app, jemalloc's extents need a 64K threshold
	 * (docs/ENGINE.md). */
	const char *pre[24];
	int npre = prefix_argv(sys, policy, p, "64K", json, bufs, pre), n = 0;
	if (sys == S_SWAP) {
		/* "/bin/sh -c SCRIPT PROCS": pb_start_peer supplies the shell. */
		for (int i = 1; i < npre; i++)
			argv[n++] = pre[i];
	} else {
		argv[n++] = "-c";
		argv[n++] = "exec \"$@\"";
		argv[n++] = "sh";
		for (int i = 0; i < npre; i++)
			argv[n++] = pre[i];
	}
	const char *redis_args[] = {"redis-server", "--port", PB_PORT_ARG, "--bind", "127.0.0.1",
				    "--save", "", "--appendonly", "no", "--daemonize", "no",
				    "--protected-mode", "no", "--dir", tmpdir, NULL};
	for (int i = 0; redis_args[i]; i++)
		argv[n++] = redis_args[i];
	argv[n] = NULL;

	fprintf(stderr, "curvebench: %s, %s, %g%% local...\n", work_names[work], p->system, pct);
	struct pb_system rs = {0};
	struct rclient rc = {.nkeys = opt.redis_keys};
	if (pb_start_peer(&rs, "sh", logname, argv) < 0) {
		snprintf(p->status, sizeof(p->status), "failed");
		snprintf(p->err, sizeof(p->err), "redis-server: %.200s", rs.err);
		return;
	}
	struct timeval tv = {opt.timeout_s, 0};
	rc.c = redisConnectWithTimeout("127.0.0.1", rs.port, tv);
	rc.ver = calloc(opt.redis_keys, sizeof(*rc.ver));
	if (!rc.c || rc.c->err || !rc.ver) {
		snprintf(rc.err, sizeof(rc.err), "redis connect: %s",
			 rc.c ? rc.c->errstr : "out of memory");
		goto out;
	}
	redisSetTimeout(rc.c, tv);
	struct zipf z;
	zipf_init(&z, opt.redis_keys, 0.99, 42);
	int zipf = work == W_REDIS_ZIPF;
	if (rclient_run(&rc, R_LOAD, NULL, 0, opt.redis_keys) < 0)
		goto out;
	if (sys == S_LOCAL && !redis_ws) {
		redis_ws = redis_used_memory(rc.c);
		if (!redis_ws) {
			snprintf(rc.err, sizeof(rc.err), "no used_memory in INFO memory");
			goto out;
		}
	}
	if (sys == S_LOCAL)
		p->ws_bytes = p->local_bytes = redis_ws;
	if (rclient_run(&rc, R_MIX, &z, zipf, opt.redis_ops / 5) < 0)
		goto out;
	/* Rounds of redis_ops until min_seconds have passed. */
	double t0 = (double)pb_now_ns() / 1e9;
	p->ops = 0;
	do {
		if (rclient_run(&rc, R_MIX, &z, zipf, opt.redis_ops) < 0)
			goto out;
		p->ops += opt.redis_ops;
		p->seconds = (double)pb_now_ns() / 1e9 - t0;
	} while (p->seconds < opt.min_seconds);
	if (rclient_run(&rc, R_CHECK, NULL, 0, opt.redis_keys) < 0)
		goto out;
	/* SHUTDOWN closes the connection: no reply expected. */
	redisReply *r = redisCommand(rc.c, "SHUTDOWN NOSAVE");
	if (r)
		freeReplyObject(r);
out:
	if (rc.c)
		redisFree(rc.c);
	free(rc.ver);
	int status = 0;
	int timed_out = wait_child(rs.pid, rc.err[0] ? 1 : 30, &status) < 0;
	int killed = !timed_out && ((WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) ||
				    (WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGKILL));
	if (killed) {
		/* The OOM killer ended redis-server: the client's error is a
		 * consequence. */
		set_status(p, 0, status, rs.log_path);
	} else if (rc.err[0]) {
		char tail[200];
		pb_log_tail(rs.log_path, tail, sizeof(tail));
		snprintf(p->status, sizeof(p->status), "failed");
		snprintf(p->err, sizeof(p->err), "%.100s; redis-server: %.120s", rc.err, tail);
	} else if (rc.bad) {
		snprintf(p->status, sizeof(p->status), "wrong-data");
		snprintf(p->err, sizeof(p->err), "%llu replies with wrong content",
			 (unsigned long long)rc.bad);
	} else {
		set_status(p, timed_out, status, rs.log_path);
	}
	if (sys == S_SDRSA)
		read_stats_json(json, p);
	unlink(json);
	if (!strcmp(p->status, "ok"))
		unlink(rs.log_path);
}

/* ---- the sweep ---- */

static int swap_retries; /* swap runs killed by the OOM killer and run again */

static void run_point(int work, int sys, const char *policy, double pct)
{
	struct point *p;
	for (int attempt = 0;; attempt++) {
		if (work == W_ZIPF || work == W_UNIFORM)
			run_synthetic(work, sys, policy, pct);
		else
			run_redis(work, sys, policy, pct);
		p = &points[npoints - 1];
		/* The memory cgroup's OOM killer strikes some runs and not
		 * others at the same limit (reclaim gives up when swap-out is
		 * slow): one more try before "killed" is the result. */
		if (sys != S_SWAP || strcmp(p->status, "killed") || attempt == 1)
			break;
		fprintf(stderr, "curvebench: %s, %s, %g%%: killed by the OOM killer; once more\n",
			work_names[work], p->system, pct);
		swap_retries++;
		npoints--;
	}
	if (strcmp(p->status, "ok"))
		fprintf(stderr, "curvebench: %s, %s, %g%%: %s: %s\n", work_names[work], p->system,
			pct, p->status, p->err);
	/* Wrong data or a broken run is a failure; the OOM killer ending a
	 * swap run is a result. */
	if (strcmp(p->status, "ok") && !(sys == S_SWAP && !strcmp(p->status, "killed")))
		any_failure = 1;
}

/* rsa-app accepts the policy and runs a program against the server. */
static int check_policy(const char *policy)
{
	char log[300], err[300];
	const char *argv[16];
	int n = 0;
	argv[n++] = opt.rsa_app;
	argv[n++] = "run";
	argv[n++] = "--server";
	argv[n++] = sdrsa_addr;
	argv[n++] = "--local";
	argv[n++] = "1M";
	if (strcmp(policy, "default")) {
		argv[n++] = "--policy";
		argv[n++] = policy;
	}
	argv[n++] = "--";
	argv[n++] = "/bin/true";
	argv[n] = NULL;
	snprintf(log, sizeof(log), "%s/check.log", tmpdir);
	unlink(log);
	pid_t pid = pb_spawn((char *const *)argv, log, NULL, err, sizeof(err));
	int status = 0;
	if (pid < 0 || wait_child(pid, 30, &status) < 0 || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0) {
		pb_log_tail(log, err, sizeof(err));
		fprintf(stderr, "curvebench: policy %s: %s %s\n", policy, opt.rsa_app, err);
		return -1;
	}
	unlink(log);
	return 0;
}

static double rate(const struct point *p)
{
	return strcmp(p->status, "ok") ? NAN : (double)p->ops / p->seconds;
}

/* The all-local rate a point is compared with: the all-local run at the
 * same point (measured just before it), else the mean of the workload's
 * all-local runs; NAN when there is none. */
static double local_rate(int w, double pct)
{
	double sum = 0;
	int n = 0;
	for (int i = 0; i < npoints; i++) {
		const struct point *p = &points[i];
		if (p->work != w || strcmp(p->system, "all-local") || strcmp(p->status, "ok"))
			continue;
		if (p->pct == pct)
			return rate(p);
		sum += rate(p);
		n++;
	}
	return n ? sum / n : NAN;
}

/* The systems of workload w in order of first run. Returns their number. */
static int systems_of(int w, const char **cols, int max)
{
	int ncols = 0;
	for (int i = 0; i < npoints; i++) {
		if (points[i].work != w)
			continue;
		int seen = 0;
		for (int c = 0; c < ncols; c++)
			seen |= !strcmp(cols[c], points[i].system);
		if (!seen && ncols < max)
			cols[ncols++] = points[i].system;
	}
	return ncols;
}

static const struct point *find_point(int w, const char *system, double pct)
{
	for (int i = 0; i < npoints; i++)
		if (points[i].work == w && points[i].pct == pct && !strcmp(points[i].system, system))
			return &points[i];
	return NULL;
}

static void print_results(void)
{
	for (int w = 0; w < NWORK; w++) {
		if (!opt.work[w])
			continue;
		const char *cols[MAX_LIST + 2];
		int ncols = systems_of(w, cols, MAX_LIST + 2);
		uint64_t ws = 0;
		for (int i = 0; i < npoints; i++)
			if (points[i].work == w)
				ws = points[i].ws_bytes;
		printf("\n%s: working set %.1f MiB; %s (in parentheses: / all-local at the same "
		       "point)\n\n",
		       work_names[w], (double)ws / MIB,
		       w < W_REDIS_ZIPF ? "accesses/s" : "requests/s");
		printf("| local |");
		for (int c = 0; c < ncols; c++)
			printf(" %s |", cols[c]);
		printf("\n| --- |");
		for (int c = 0; c < ncols; c++)
			printf(" --- |");
		printf("\n");
		for (int k = 0; k < opt.npcts; k++) {
			double local = local_rate(w, opt.pcts[k]);
			printf("| %g %% |", opt.pcts[k]);
			for (int c = 0; c < ncols; c++) {
				const struct point *p = find_point(w, cols[c], opt.pcts[k]);
				if (!p)
					printf(" |");
				else if (strcmp(p->status, "ok"))
					printf(" %s |", p->status);
				else if (!strcmp(p->system, "all-local") || isnan(local))
					printf(" %.0f |", rate(p));
				else
					printf(" %.0f (%.3fx) |", rate(p), rate(p) / local);
			}
			printf("\n");
		}
		/* Remote faults per policy, against FIFO's (issue 6: at most 0.8x on
		 * zipf at 25 %). Same accesses only when neither run did extra
		 * rounds (--min-seconds), which slow runs do not. */
		int nsd = 0, has_fifo = 0;
		for (int c = 0; c < ncols; c++) {
			nsd += !strncmp(cols[c], "sdrsa-", 6);
			has_fifo |= !strcmp(cols[c], "sdrsa-fifo");
		}
		if (nsd) {
			printf("\nremote faults of the whole run (fill, warm-up and final check "
			       "included)%s:\n\n| local |",
			       has_fifo ? "; in parentheses: / sdrsa-fifo's" : "");
			for (int c = 0; c < ncols; c++)
				if (!strncmp(cols[c], "sdrsa-", 6))
					printf(" %s |", cols[c]);
			printf("\n| --- |");
			for (int c = 0; c < nsd; c++)
				printf(" --- |");
			printf("\n");
			for (int k = 0; k < opt.npcts; k++) {
				const struct point *fifo = find_point(w, "sdrsa-fifo", opt.pcts[k]);
				printf("| %g %% |", opt.pcts[k]);
				for (int c = 0; c < ncols; c++) {
					if (strncmp(cols[c], "sdrsa-", 6))
						continue;
					const struct point *p = find_point(w, cols[c], opt.pcts[k]);
					if (!p || p->remote_faults < 0) {
						printf(" |");
						continue;
					}
					printf(" %lld", (long long)p->remote_faults);
					if (fifo && fifo != p && fifo->remote_faults > 0 &&
					    fifo->ops == p->ops)
						printf(" (%.2fx)", (double)p->remote_faults /
									   (double)fifo->remote_faults);
					printf(" |");
				}
				printf("\n");
			}
		}
	}
	if (swap_retries)
		printf("\nlinux-swap: %d runs were killed by the OOM killer and run once more\n",
		       swap_retries);
}

static void write_csv(FILE *f)
{
	fprintf(f, "workload,system,local_pct,local_bytes,working_set_bytes,ops,seconds,ops_per_s,"
		   "ratio_to_local,remote_faults,pages_in,status\n");
	/* Grouped by system, by increasing local memory: gnuplot joins
	 * consecutive rows into a line. */
	for (int w = 0; w < NWORK; w++) {
		const char *cols[MAX_LIST + 2];
		int ncols = systems_of(w, cols, MAX_LIST + 2);
		for (int c = 0; c < ncols; c++)
			for (int k = 0; k < opt.npcts; k++) {
				const struct point *p = find_point(w, cols[c], opt.pcts[k]);
				if (!p)
					continue;
				int ok = !strcmp(p->status, "ok");
				double local = local_rate(w, p->pct);
				fprintf(f, "%s,%s,%g,%llu,%llu,%llu,", work_names[w], p->system, p->pct,
					(unsigned long long)p->local_bytes,
					(unsigned long long)p->ws_bytes, (unsigned long long)p->ops);
				if (ok)
					fprintf(f, "%.6f,%.1f,", p->seconds, rate(p));
				else
					fprintf(f, "NaN,NaN,");
				if (ok && !isnan(local))
					fprintf(f, "%.5f,", rate(p) / local);
				else
					fprintf(f, "NaN,");
				if (p->remote_faults >= 0)
					fprintf(f, "%lld,%lld,", (long long)p->remote_faults,
						(long long)p->pages_in);
				else
					fprintf(f, "NaN,NaN,");
				fprintf(f, "%s\n", p->status);
			}
	}
}

static void swap_point(int w, double pct)
{
	char why[300];
	uint64_t ws = w < W_REDIS_ZIPF ? opt.size : redis_ws;
	uint64_t limit = (uint64_t)((double)ws * pct / 100.0) + CG_EXTRA;
	if (swapref_cgroup_setup("curvebench", limit, why, sizeof(why)) < 0) {
		fprintf(stderr, "curvebench: linux-swap not measured: %s\n", why);
		any_failure = 1;
	} else {
		run_point(w, S_SWAP, NULL, pct);
	}
	swapref_cgroup_teardown();
}

static void sweep(void)
{
	char why[300] = "";
	int can_swap = opt.sys_swap && swapref_available(why, sizeof(why));
	if (opt.sys_swap && !can_swap) {
		/* In CI a missing reference is a failure, never a skip. */
		fprintf(stderr, "curvebench: linux-swap not measured: %s\n", why);
		if (getenv("CI") && !strcmp(getenv("CI"), "true"))
			any_failure = 1;
	}
	/* The swap file is on for the whole sweep, so that every system is
	 * measured at each point within a minute or two: on a shared machine
	 * the load drifts, and a reference measured a quarter of an hour
	 * later compares different machines (a first version ran the swap
	 * runs last and found them 1.6x faster than all-local at 100 %). Room
	 * for the largest working set; redis's is at most twice its values. */
	if (can_swap) {
		uint64_t largest = opt.size > opt.redis_keys * 2 * PG ? opt.size
								      : opt.redis_keys * 2 * PG;
		if (swapref_swapfile_setup(opt.swap_dir, "curvebench", largest + 64 * MIB, why,
					   sizeof(why)) < 0) {
			fprintf(stderr, "curvebench: linux-swap not measured: %s\n", why);
			swapref_swapfile_teardown();
			any_failure = 1;
			can_swap = 0;
		}
	}
	for (int w = 0; w < NWORK; w++) {
		if (!opt.work[w])
			continue;
		for (int k = 0; k < opt.npcts; k++) {
			/* All-local at every point, just before the others: the
			 * reference of the ratios at that point (and redis's first
			 * all-local run measures its working set). */
			if (opt.sys_local || (w >= W_REDIS_ZIPF && !redis_ws))
				run_point(w, S_LOCAL, NULL, opt.pcts[k]);
			if (opt.sys_sdrsa)
				for (int q = 0; q < opt.npolicies; q++)
					run_point(w, S_SDRSA, opt.policies[q], opt.pcts[k]);
			if (can_swap)
				swap_point(w, opt.pcts[k]);
		}
	}
	swapref_swapfile_teardown();
}

/* ---- main ---- */

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: curvebench [options]\n"
		"Performance against local memory: all-local, sdrsa per policy, Linux swap.\n"
		"\n"
		"  --quick             short run: 64M, 200000 accesses, local 25,50,100 %%,\n"
		"                      redis 8192 keys and 40000 requests\n"
		"  --policies LIST     sdrsa lines: 'default' (no --policy) or names for\n"
		"                      rsa-app --policy (default,fifo)\n"
		"  --workloads LIST    among zipf,uniform,redis-zipf,redis-uniform (all)\n"
		"  --systems LIST      among local,sdrsa,swap (all)\n"
		"  --local-pcts LIST   local memory in %% of the working set (12.5,25,50,75,100)\n"
		"  --size SIZE         working set of the synthetic workloads (512M)\n"
		"  --ops N             timed accesses per synthetic run (500000; N/5 warm-up)\n"
		"  --redis-keys N      4 KiB values loaded into redis-server (65536)\n"
		"  --redis-ops N       timed requests per redis run (100000; N/5 warm-up)\n"
		"  --redis-depth N     requests in flight (8)\n"
		"  --rsa-app PATH, --curveload PATH, --server-bin PATH   programs to use\n"
		"  --swap-dir DIR      where the swap file is created (/var/tmp)\n"
		"  --csv FILE          write one row per point (bench/curve.gp plots it)\n"
		"  --min-seconds S     repeat the timed operations until S seconds have passed\n"
		"                      (1; --quick 0.5)\n"
		"  --timeout SEC       longest run before it is stopped (900)\n");
}

/* Comma-separated names into flags (names[i] -> flags[i]); -1 on an unknown one. */
static int parse_names(const char *s, const char *const names[], int n, int *flags)
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
		if (!found) {
			fprintf(stderr, "curvebench: unknown name '%s'\n", t);
			return -1;
		}
	}
	return 0;
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || end == s || v == 0)
		return -1;
	*out = v;
	return 0;
}

int main(int argc, char **argv)
{
	enum { O_QUICK = 256, O_POL, O_WORK, O_SYS, O_PCT, O_SIZE, O_OPS, O_RKEYS, O_ROPS,
	       O_RDEPTH, O_RSA, O_LOAD, O_SRV, O_SWAPDIR, O_CSV, O_TIMEOUT, O_MINSEC };
	static const struct option lo[] = {
		{"quick", no_argument, NULL, O_QUICK},
		{"policies", required_argument, NULL, O_POL},
		{"workloads", required_argument, NULL, O_WORK},
		{"systems", required_argument, NULL, O_SYS},
		{"local-pcts", required_argument, NULL, O_PCT},
		{"size", required_argument, NULL, O_SIZE},
		{"ops", required_argument, NULL, O_OPS},
		{"redis-keys", required_argument, NULL, O_RKEYS},
		{"redis-ops", required_argument, NULL, O_ROPS},
		{"redis-depth", required_argument, NULL, O_RDEPTH},
		{"rsa-app", required_argument, NULL, O_RSA},
		{"curveload", required_argument, NULL, O_LOAD},
		{"server-bin", required_argument, NULL, O_SRV},
		{"swap-dir", required_argument, NULL, O_SWAPDIR},
		{"csv", required_argument, NULL, O_CSV},
		{"timeout", required_argument, NULL, O_TIMEOUT},
		{"min-seconds", required_argument, NULL, O_MINSEC},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	static char polbuf[512];
	int c, size_set = 0, ops_set = 0, pcts_set = 0, rkeys_set = 0, rops_set = 0, minsec_set = 0;
	uint64_t v;
	snprintf(polbuf, sizeof(polbuf), "default,fifo");
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case O_QUICK:
			opt.quick = 1;
			break;
		case O_POL:
			snprintf(polbuf, sizeof(polbuf), "%s", optarg);
			break;
		case O_WORK:
			if (parse_names(optarg, work_names, NWORK, opt.work) < 0)
				goto bad;
			break;
		case O_SYS: {
			static const char *const n[] = {"local", "sdrsa", "swap"};
			int f[3];
			if (parse_names(optarg, n, 3, f) < 0)
				goto bad;
			opt.sys_local = f[0];
			opt.sys_sdrsa = f[1];
			opt.sys_swap = f[2];
			break;
		}
		case O_PCT: {
			char buf[256];
			snprintf(buf, sizeof(buf), "%s", optarg);
			opt.npcts = 0;
			for (char *t = strtok(buf, ","); t; t = strtok(NULL, ",")) {
				char *end;
				double p = strtod(t, &end);
				if (*end || !(p > 0 && p <= 100) || opt.npcts == MAX_LIST) {
					fprintf(stderr, "curvebench: --local-pcts: '%s' is not a "
							"percentage in (0, 100]\n", t);
					goto bad;
				}
				opt.pcts[opt.npcts++] = p;
			}
			pcts_set = 1;
			break;
		}
		case O_SIZE:
			if (sdrsa_parse_size(optarg, &opt.size) < 0 || opt.size < 4 * MIB)
				goto bad;
			size_set = 1;
			break;
		case O_OPS:
			if (parse_u64(optarg, &opt.ops) < 0)
				goto bad;
			ops_set = 1;
			break;
		case O_RKEYS:
			if (parse_u64(optarg, &opt.redis_keys) < 0 || opt.redis_keys >= (1ull << 24))
				goto bad;
			rkeys_set = 1;
			break;
		case O_ROPS:
			if (parse_u64(optarg, &opt.redis_ops) < 0)
				goto bad;
			rops_set = 1;
			break;
		case O_RDEPTH:
			if (parse_u64(optarg, &v) < 0 || v > 256)
				goto bad;
			opt.redis_depth = (int)v;
			break;
		case O_RSA:
			opt.rsa_app = optarg;
			break;
		case O_LOAD:
			opt.curveload = optarg;
			break;
		case O_SRV:
			pb_opts.server_bin = optarg;
			break;
		case O_SWAPDIR:
			opt.swap_dir = optarg;
			break;
		case O_CSV:
			opt.csv = optarg;
			break;
		case O_TIMEOUT:
			if (parse_u64(optarg, &v) < 0)
				goto bad;
			opt.timeout_s = (int)v;
			break;
		case O_MINSEC: {
			char *end;
			opt.min_seconds = strtod(optarg, &end);
			if (*end || end == optarg || !(opt.min_seconds >= 0 && opt.min_seconds <= 600))
				goto bad;
			minsec_set = 1;
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
	for (char *t = strtok(polbuf, ","); t; t = strtok(NULL, ",")) {
		if (opt.npolicies == MAX_LIST || !*t || strchr(t, ' '))
			goto bad;
		opt.policies[opt.npolicies++] = t;
	}
	if (!opt.npolicies)
		goto bad;
	if (opt.quick) {
		if (!size_set)
			opt.size = 64 * MIB;
		if (!ops_set)
			opt.ops = 200000;
		if (!rkeys_set)
			opt.redis_keys = 8192;
		if (!rops_set)
			opt.redis_ops = 40000;
		if (!minsec_set)
			opt.min_seconds = 0.5;
	}
	if (!pcts_set) {
		static const double full[] = {12.5, 25, 50, 75, 100}, quick[] = {25, 50, 100};
		const double *d = opt.quick ? quick : full;
		opt.npcts = opt.quick ? 3 : 5;
		memcpy(opt.pcts, d, (size_t)opt.npcts * sizeof(double));
	}
	/* curveload's counters allow 2^24 updates, half of all accesses. */
	if ((opt.ops + opt.ops / 5) / 2 >= (1ull << 24)) {
		fprintf(stderr, "curvebench: --ops %llu: at most about 27 million\n",
			(unsigned long long)opt.ops);
		goto bad;
	}

	if (!mkdtemp(tmpdir)) {
		perror("curvebench: mkdtemp");
		return 1;
	}
	have_tmpdir = 1;
	pb_opts.tmpdir = tmpdir;
	signal(SIGPIPE, SIG_IGN);
	struct sigaction sa = {.sa_handler = on_fatal_signal};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);

	struct utsname u;
	uname(&u);
	double la[3] = {0, 0, 0};
	getloadavg(la, 3);
	time_t now = time(NULL);
	char date[64];
	strftime(date, sizeof(date), "%Y-%m-%d %H:%M UTC", gmtime(&now));
	printf("curvebench %s: Linux %s, %ld CPUs, load average %.2f %.2f %.2f%s\n", date,
	       u.release, sysconf(_SC_NPROCESSORS_ONLN), la[0], la[1], la[2],
	       opt.quick ? ", --quick sizes" : "");
	printf("synthetic: %llu MiB, %llu timed accesses; redis: %llu keys of 4 KiB, %llu timed "
	       "requests, %d in flight; rounds of those for at least %g s\n",
	       (unsigned long long)(opt.size / MIB), (unsigned long long)opt.ops,
	       (unsigned long long)opt.redis_keys, (unsigned long long)opt.redis_ops,
	       opt.redis_depth, opt.min_seconds);
	fflush(stdout);
	double t_start = (double)pb_now_ns() / 1e9;

	if (opt.sys_sdrsa) {
		/* One server for the whole sweep: rsa-app frees each run's pages.
		 * Room for the largest working set, with redis's allocator overhead. */
		uint64_t need = opt.size > opt.redis_keys * 2 * PG ? opt.size : opt.redis_keys * 2 * PG;
		pb_opts.pages = need / PG + 1; /* sys_sdrsa sizes the pool at twice this */
		if (sdrsa_srv.ops->start(&sdrsa_srv) < 0) {
			fprintf(stderr, "curvebench: %s\n", sdrsa_srv.err);
			any_failure = 1;
			goto out;
		}
		snprintf(sdrsa_addr, sizeof(sdrsa_addr), "127.0.0.1:%d", sdrsa_srv.port);
		for (int i = 0; i < opt.npolicies; i++)
			if (check_policy(opt.policies[i]) < 0) {
				any_failure = 1;
				goto out;
			}
	}
	sweep();
	print_results();
	printf("\n%d points in %.0f s%s\n", npoints, (double)pb_now_ns() / 1e9 - t_start,
	       any_failure ? "; SOMETHING FAILED (see above)" : "");
	if (opt.csv) {
		FILE *f = fopen(opt.csv, "w");
		if (!f) {
			perror(opt.csv);
			any_failure = 1;
		} else {
			write_csv(f);
			if (fclose(f) != 0) {
				perror(opt.csv);
				any_failure = 1;
			}
		}
	}
out:
	if (sdrsa_srv.pid > 0)
		pb_child_stop(sdrsa_srv.pid, 2000);
	cleanup_all();
	if (have_tmpdir) {
		char p[300];
		snprintf(p, sizeof(p), "%s/memory-server.log", tmpdir);
		if (!any_failure)
			unlink(p);
		if (rmdir(tmpdir) != 0)
			fprintf(stderr, "curvebench: logs kept in %s\n", tmpdir);
	}
	return any_failure ? 1 : 0;
bad:
	usage(stderr);
	return 2;
}
