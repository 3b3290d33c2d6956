// SPDX-License-Identifier: MIT
/*
 * The engine over a pool of memory servers (store_pool.c, docs/POOL.md),
 * each server a host of its own: a network namespace made here, joined to
 * this test's namespace by a veth pair (addresses 198.18.8.0/21, reserved
 * for benchmark networks; namespaces sdrsa-pool-PID-*), so that a link can
 * be cut. Every server is the real memory-server; every page is checked by
 * content (index, version, hash pattern), never by counts only.
 *
 *   kill:    torture (4 threads, random reads and writes, versions checked)
 *            with 3 servers and 2 replicas, one server SIGKILLed mid-run;
 *            replication restored (pages_rereplicated > 0, none under-
 *            replicated), then a second server killed: every page still reads
 *            back from the last one.
 *   linkcut: the same with one server's link set down mid-run; the link comes
 *            back and the server is used again.
 *   stall:   the same with one server stopped (SIGSTOP); it resumes, is
 *            probed and used again.
 *   late_put: libsdrsa alone: a PUT that timed out while the link was down
 *            is not applied when the link comes back.
 *   quota:   one server with a small quota: pages go to the others, the
 *            engine never keeps a page for lack of room.
 *   toomany: two of three servers killed under 2 replicas: the program stops
 *            with SIGBUS and "no copy left", never reads a wrong page.
 *   drain:   SIGUSR2 to a server: the engine moves its pages off, the server
 *            exits, the data is intact and on two copies.
 *   rsa_app: `rsa-app run --servers FILE` runs python3 over the pool (output
 *            checked) while `rsa-app pool drain` (run in the server's
 *            namespace) takes a server out; `pool status`; a bad pool file
 *            line and too many replicas are refused with a clear message.
 *
 * Needs root and iproute2: without them it skips, except on CI (CI=true)
 * where that is a failure.
 * Usage: test_pool MEMORY_SERVER_BIN RSA_APP_BIN [TEST...]
 */

#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <poll.h>

#include <sdrsa/client.h>
#include <sdrsa/engine.h>

#include "common/util.h"
#include "etest.h"

#define PG 4096u
#define BUDGET_PAGES 512u
#define NPAGES (8 * BUDGET_PAGES)
#define NLOCKS 256
#define NSRV 3

static const char *g_bin, *g_rsa_app;
static char g_ns_cli[64];
static char g_ns_srv[NSRV][64];
static char g_if_cli[NSRV][16];
static int g_netns;
static pid_t g_srv_pid[NSRV];
static char g_addr[NSRV][32];

/* ---- namespaces and servers ---- */

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	int rc = system(cmd);
	if (rc != 0)
		fprintf(stderr, "command failed (%d): %s\n", rc, cmd);
	return rc == 0 ? 0 : -1;
}

static int enter_netns(const char *name)
{
	char path[128];
	snprintf(path, sizeof(path), "/var/run/netns/%s", name);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = setns(fd, CLONE_NEWNET) ? -errno : 0;
	close(fd);
	return rc;
}

static void stop_servers(void)
{
	for (int i = 0; i < NSRV; i++)
		if (g_srv_pid[i] > 0) {
			kill(g_srv_pid[i], SIGKILL);
			waitpid(g_srv_pid[i], NULL, 0);
			g_srv_pid[i] = 0;
		}
}

static void teardown(void)
{
	stop_servers();
	if (!g_netns)
		return;
	g_netns = 0;
	char cmd[256];
	for (int i = 0; i < NSRV; i++) {
		snprintf(cmd, sizeof(cmd), "ip netns del %s 2>/dev/null", g_ns_srv[i]);
		if (system(cmd)) {
			/* already gone */
		}
	}
	snprintf(cmd, sizeof(cmd), "ip netns del %s 2>/dev/null", g_ns_cli);
	if (system(cmd)) {
		/* already gone */
	}
}

/* A child that outlives us: when this process ends in any way (a crash,
 * SIGKILL, a timeout), our end of the pipe closes and it kills what runs in
 * the namespaces and deletes them. Signal handlers could not do that safely
 * in a process with the engine's threads. */
static void start_janitor(void)
{
	int pfd[2];
	/* Close-on-exec: the servers we start must not keep it open. */
	CHECK(pipe2(pfd, O_CLOEXEC) == 0);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid > 0) {
		close(pfd[0]);
		return;
	}
	g_netns = 0; /* never run the parent's atexit teardown here */
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	setsid();
	close(pfd[1]);
	char c;
	while (read(pfd[0], &c, 1) > 0)
		;
	char cmd[512];
	for (int i = -1; i < NSRV; i++) {
		const char *ns = i < 0 ? g_ns_cli : g_ns_srv[i];
		snprintf(cmd, sizeof(cmd),
			 "ip netns pids %s 2>/dev/null | xargs -r kill -9; ip netns del %s 2>/dev/null",
			 ns, ns);
		if (system(cmd)) {
			/* already gone */
		}
	}
	_exit(0);
}

/* Skip, or fail on CI, when the machine cannot make namespaces. */
static int skip_or_fail(const char *why)
{
	const char *ci = getenv("CI");
	if (ci && !strcmp(ci, "true")) {
		fprintf(stderr, "FAIL (CI): %s\n", why);
		return T_FAIL;
	}
	fprintf(stderr, "skip: %s\n", why);
	return T_SKIP;
}

/* Client namespace C (this process), server namespaces S0..S2, a veth pair
 * C <-> Si with 198.18.8.(4i+1)/30 (server) and .(4i+2) (client). */
static int setup_netns(void)
{
	int pid = (int)getpid();
	if (geteuid() != 0)
		return skip_or_fail("needs root to create network namespaces");
	if (system("ip -V >/dev/null 2>&1"))
		return skip_or_fail("iproute2 (ip) not installed");
	snprintf(g_ns_cli, sizeof(g_ns_cli), "sdrsa-pool-%d-c", pid);
	atexit(teardown);
	for (int i = 0; i < NSRV; i++)
		snprintf(g_ns_srv[i], sizeof(g_ns_srv[i]), "sdrsa-pool-%d-s%d", pid, i);
	/* Clean up on every way out: exit (atexit), or the janitor. */
	start_janitor();
	g_netns = 1;
	if (sh("ip netns add %s", g_ns_cli) || sh("ip -n %s link set lo up", g_ns_cli))
		return T_FAIL;
	for (int i = 0; i < NSRV; i++) {
		char if_srv[16];
		snprintf(g_if_cli[i], sizeof(g_if_cli[i]), "spc%d-%d", pid % 100000, i);
		snprintf(if_srv, sizeof(if_srv), "sps%d-%d", pid % 100000, i);
		snprintf(g_addr[i], sizeof(g_addr[i]), "198.18.8.%d:2223", 4 * i + 1);
		if (sh("ip netns add %s", g_ns_srv[i]) ||
		    sh("ip link add %s netns %s type veth peer name %s netns %s", g_if_cli[i],
		       g_ns_cli, if_srv, g_ns_srv[i]) ||
		    sh("ip -n %s addr add 198.18.8.%d/30 dev %s", g_ns_srv[i], 4 * i + 1, if_srv) ||
		    sh("ip -n %s addr add 198.18.8.%d/30 dev %s", g_ns_cli, 4 * i + 2, g_if_cli[i]) ||
		    sh("ip -n %s link set %s up", g_ns_srv[i], if_srv) ||
		    sh("ip -n %s link set lo up", g_ns_srv[i]) ||
		    sh("ip -n %s link set %s up", g_ns_cli, g_if_cli[i]))
			return T_FAIL;
	}
	if (enter_netns(g_ns_cli)) {
		fprintf(stderr, "setns(%s): %s\n", g_ns_cli, strerror(errno));
		return T_FAIL;
	}
	return T_PASS;
}

/* Start memory-server i in its namespace (extra: one more option and its
 * value, or NULL) and wait for "ready". */
static void start_server(int i, const char *opt, const char *val)
{
	int pfd[2];
	CHECK(pipe(pfd) == 0);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		g_netns = 0;
		dup2(pfd[1], 1);
		close(pfd[0]);
		close(pfd[1]);
		if (enter_netns(g_ns_srv[i]))
			_exit(126);
		execl(g_bin, g_bin, "64M", "--listen", g_addr[i], "--insecure", "--quiet",
		      "--threads", "1", opt, val, (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	FILE *f = fdopen(pfd[0], "r");
	char line[256];
	int ready = 0;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "ready", 5)) {
			ready = 1;
			break;
		}
	fclose(f);
	g_srv_pid[i] = pid;
	CHECK(ready);
}

static void kill_server(int i)
{
	kill(g_srv_pid[i], SIGKILL);
	waitpid(g_srv_pid[i], NULL, 0);
	g_srv_pid[i] = 0;
}

/* ---- the workload ---- */

static unsigned char *g_mem;
static uint64_t g_ver[NPAGES];
static pthread_mutex_t g_locks[NLOCKS];
static volatile int g_bad;
static long g_ops_done;
static int g_log_errors;

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void check_page(unsigned idx)
{
	if (t_check(g_mem + (size_t)idx * PG, idx, g_ver[idx])) {
		const uint64_t *w = (const uint64_t *)(g_mem + (size_t)idx * PG);
		fprintf(stderr, "page %u: want version %llu, found idx %llu ver %llu\n", idx,
			(unsigned long long)g_ver[idx], (unsigned long long)w[0],
			(unsigned long long)w[1]);
		g_bad = 1;
	}
}

#define OPS_PER_THREAD 15000L
#define NTHREADS 4

static void *work(void *arg)
{
	uint64_t rng = 0x9E3779B97F4A7C15ull * ((uintptr_t)arg + 1);
	for (long op = 0; op < OPS_PER_THREAD && !g_bad; op++) {
		uint64_t r = rnd(&rng);
		unsigned idx = r % 10 < 5 ? (unsigned)(rnd(&rng) % (NPAGES / 10))
					  : (unsigned)(rnd(&rng) % NPAGES);
		pthread_mutex_t *l = &g_locks[idx % NLOCKS];
		pthread_mutex_lock(l);
		check_page(idx);
		if ((r >> 8) % 10 < 4) {
			g_ver[idx]++;
			t_fill(g_mem + (size_t)idx * PG, idx, g_ver[idx]);
		}
		pthread_mutex_unlock(l);
		__atomic_add_fetch(&g_ops_done, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void scan_all(void)
{
	for (unsigned i = 0; i < NPAGES && !g_bad; i++)
		check_page(i);
}

static void log_stderr(void *ud, int level, const char *msg)
{
	(void)ud;
	if (level <= SDRSA_LOG_ERR)
		g_log_errors++;
	fprintf(stderr, "  engine: %s\n", msg);
}

/* An engine over the three servers; weight 0: by free capacity. */
static struct sdrsa_engine *pool_engine(const char *name, unsigned replicas, unsigned weight)
{
	static struct sdrsa_pool_server srv[NSRV];
	for (int i = 0; i < NSRV; i++)
		srv[i] = (struct sdrsa_pool_server){.address = g_addr[i], .weight = weight};
	struct sdrsa_engine_config cfg = {
		.name = name,
		.local_bytes = BUDGET_PAGES * PG,
		.pool = srv,
		.pool_size = NSRV,
		.replicas = replicas,
		.timeout_ms = 1000,
		.log = log_stderr,
	};
	struct sdrsa_engine *e;
	int r = sdrsa_engine_new(&cfg, &e);
	if (r < 0) {
		fprintf(stderr, "engine: %s\n", strerror(-r));
		exit(r == -ENOSYS ? t_skip_status() : T_FAIL);
	}
	return e;
}

static void print_stats(struct sdrsa_engine *e, const char *what, struct sdrsa_engine_stats *s)
{
	CHECK(sdrsa_engine_stats(e, s) == 0);
	char line[1024];
	sdrsa_engine_format_stats(s, 0, line, sizeof(line));
	fprintf(stderr, "  %s: %s\n", what, line);
}

/* Wait (up to 60 s) until every page has `replicas` copies again. */
static void wait_replicated(struct sdrsa_engine *e, struct sdrsa_engine_stats *s)
{
	uint64_t t0 = sdrsa_now_ms();
	for (;;) {
		CHECK(sdrsa_engine_stats(e, s) == 0);
		if (!s->pages_under_replicated && !s->pages_lost)
			break;
		CHECK(sdrsa_now_ms() - t0 < 60000);
		usleep(100000);
	}
	fprintf(stderr, "  replication restored in %llu ms\n",
		(unsigned long long)(sdrsa_now_ms() - t0));
}

static void reset_workload(struct sdrsa_region **rg, struct sdrsa_engine *e)
{
	CHECK(sdrsa_region_new(e, NPAGES * PG, rg) == 0);
	g_mem = sdrsa_region_addr(*rg);
	memset(g_ver, 0, sizeof(g_ver));
	g_bad = 0;
	g_ops_done = 0;
	g_log_errors = 0;
	/* Every page written once: most of them go to the pool. */
	for (unsigned i = 0; i < NPAGES; i++) {
		g_ver[i] = 1;
		t_fill(g_mem + (size_t)i * PG, i, 1);
	}
}

/* Run the torture; `fault` is called once half the operations are done. */
static void torture(void (*fault)(void))
{
	pthread_t t[NTHREADS];
	for (uintptr_t i = 0; i < NTHREADS; i++)
		CHECK(pthread_create(&t[i], NULL, work, (void *)i) == 0);
	while (__atomic_load_n(&g_ops_done, __ATOMIC_RELAXED) < NTHREADS * OPS_PER_THREAD / 2 &&
	       !g_bad)
		usleep(1000);
	fault();
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(t[i], NULL);
	scan_all();
	CHECK(!g_bad);
}

static void kill_s1(void)
{
	fprintf(stderr, "  SIGKILL server 1 after %ld ops\n", g_ops_done);
	kill_server(1);
}

static void cut_s2(void)
{
	fprintf(stderr, "  link to server 2 down after %ld ops\n", g_ops_done);
	CHECK(sh("ip -n %s link set %s down", g_ns_cli, g_if_cli[2]) == 0);
}

static void stop_s0(void)
{
	fprintf(stderr, "  SIGSTOP server 0 after %ld ops\n", g_ops_done);
	kill(g_srv_pid[0], SIGSTOP);
}

static void no_fault(void)
{
}

static void start_all(void)
{
	for (int i = 0; i < NSRV; i++)
		start_server(i, NULL, NULL);
}

/* The engine and workload each case runs on: an engine over the three
 * servers (name, weight as for pool_engine, 2 replicas) and its region with
 * every page written once. */
static struct sdrsa_engine *begin_run(const char *name, unsigned weight, struct sdrsa_region **rg)
{
	struct sdrsa_engine *e = pool_engine(name, 2, weight);
	reset_workload(rg, e);
	return e;
}

static int end_run(struct sdrsa_engine *e, struct sdrsa_region *rg)
{
	sdrsa_region_free(rg);
	sdrsa_engine_free(e);
	stop_servers();
	return T_PASS;
}

static int t_kill(void)
{
	start_all();
	struct sdrsa_region *rg;
	struct sdrsa_engine_stats s;
	struct sdrsa_engine *e = begin_run("pool-kill", 0, &rg);
	torture(kill_s1);
	print_stats(e, "after the run", &s);
	CHECK(s.faults_remote > 0);
	CHECK_EQ(s.servers_total, 3);
	CHECK_EQ(s.servers_up, 2);
	wait_replicated(e, &s);
	print_stats(e, "restored", &s);
	CHECK(s.pages_rereplicated > 0);
	/* Two copies of everything on the two left: one more may die. */
	kill_server(0);
	scan_all();
	CHECK(!g_bad);
	print_stats(e, "after a second kill, all read back", &s);
	CHECK_EQ(s.pages_lost, 0);
	return end_run(e, rg);
}

/* A server lost in mid-run by `fault` (its link cut, or stopped): taken as
 * down after the timeouts, its pages copied again. `back` brings it back:
 * it is probed (its stale copies freed) and takes pages again, so that all
 * pages, rewritten, read back with some of them on it. */
static int lost_and_back(const char *name, void (*fault)(void), void (*back)(void),
			 const char *done)
{
	start_all();
	struct sdrsa_region *rg;
	struct sdrsa_engine_stats s;
	struct sdrsa_engine *e = begin_run(name, 0, &rg);
	torture(fault);
	print_stats(e, "after the run", &s);
	CHECK_EQ(s.servers_up, 2);
	wait_replicated(e, &s);
	CHECK(s.pages_rereplicated > 0);
	back();
	uint64_t t0 = sdrsa_now_ms();
	do {
		usleep(100000);
		CHECK(sdrsa_engine_stats(e, &s) == 0);
		CHECK(sdrsa_now_ms() - t0 < 20000);
	} while (s.servers_up != 3);
	for (unsigned i = 0; i < NPAGES; i++) {
		g_ver[i]++;
		t_fill(g_mem + (size_t)i * PG, i, g_ver[i]);
	}
	scan_all();
	CHECK(!g_bad);
	print_stats(e, done, &s);
	CHECK_EQ(s.pages_lost, 0);
	return end_run(e, rg);
}

static void link_s2_up(void)
{
	CHECK(sh("ip -n %s link set %s up", g_ns_cli, g_if_cli[2]) == 0);
}

static void cont_s0(void)
{
	kill(g_srv_pid[0], SIGCONT);
}

static int t_linkcut(void)
{
	return lost_and_back("pool-cut", cut_s2, link_s2_up,
			     "link back, all rewritten and read back");
}

static int t_stall(void)
{
	return lost_and_back("pool-stall", stop_s0, cont_s0, "resumed, rewritten and read back");
}

/* libsdrsa gives up on a PUT (a timeout: the link is down) and closes the
 * connection. Once the link is back, the server must not apply that PUT: the
 * caller was told it failed and may have stored the page elsewhere or a
 * newer version since. With an orderly close the kernel kept the PUT queued
 * and delivered it as soon as the link came back. */
static int t_late_put(void)
{
	struct sdrsa_client_config cfg = {
	    .address = g_addr[2], .name = "late-put", .timeout_ms = 300};
	static uint8_t page[PG];
	const uint64_t addr = 7 * PG;
	struct sdrsa_client *c;
	int r;

	start_server(2, NULL, NULL);
	CHECK(sdrsa_client_connect(&cfg, &c) == 0);
	t_fill(page, 7, 1);
	CHECK(sdrsa_put(c, addr, page) == 0);
	CHECK(sh("ip -n %s link set %s down", g_ns_cli, g_if_cli[2]) == 0);
	t_fill(page, 7, 2);
	r = sdrsa_put(c, addr, page);
	fprintf(stderr, "  put with the link down: %s\n", strerror(-r));
	CHECK(r < 0);
	usleep(500 * 1000);
	CHECK(sh("ip -n %s link set %s up", g_ns_cli, g_if_cli[2]) == 0);
	usleep(1500 * 1000); /* what the kernel still held would arrive now */
	uint64_t t0 = sdrsa_now_ms();
	while ((r = sdrsa_client_reconnect(c)) < 0) {
		CHECK(sdrsa_now_ms() - t0 < 10000);
		usleep(50 * 1000);
	}
	memset(page, 0, sizeof(page));
	CHECK(sdrsa_get(c, addr, page) == 0);
	const uint64_t *w = (const uint64_t *)page;
	fprintf(stderr, "  read back: version %llu (want 1)\n", (unsigned long long)w[1]);
	CHECK(t_check(page, 7, 1) == 0);
	t_fill(page, 7, 3);
	CHECK(sdrsa_put(c, addr, page) == 0);
	memset(page, 0, sizeof(page));
	CHECK(sdrsa_get(c, addr, page) == 0);
	CHECK(t_check(page, 7, 3) == 0);
	sdrsa_client_free(c);
	stop_servers();
	return T_PASS;
}

static int t_quota(void)
{
	/* Equal weights: server 0 gets its third of the pages until its quota
	 * says no, and must be skipped from then on. */
	start_server(0, "--max-client-pages", "300");
	start_server(1, NULL, NULL);
	start_server(2, NULL, NULL);
	struct sdrsa_region *rg;
	struct sdrsa_engine_stats s;
	struct sdrsa_engine *e = begin_run("pool-quota", 1, &rg);
	torture(no_fault);
	print_stats(e, "quota on server 0", &s);
	CHECK_EQ(s.store_refusals, 0); /* never kept local for lack of room */
	CHECK(s.pages_out > 2 * 300);
	wait_replicated(e, &s);
	/* Server 0 holds at most its quota of our pages. */
	struct sdrsa_client_config cc = {.address = g_addr[0], .name = "pool-quota"};
	struct sdrsa_client *c;
	struct sdrsa_stats ss;
	CHECK(sdrsa_client_connect(&cc, &c) == 0);
	CHECK(sdrsa_stats(c, &ss) == 0);
	sdrsa_client_free(c);
	fprintf(stderr, "  server 0 holds %llu pages (quota 300), refused %llu\n",
		(unsigned long long)ss.ns_pages, (unsigned long long)ss.quota_refused);
	CHECK(ss.ns_pages <= 300);
	CHECK(ss.quota_refused > 0);
	return end_run(e, rg);
}

static int t_toomany(void)
{
	start_all();
	char errpath[] = "/tmp/sdrsa-pool-stderr-XXXXXX";
	int efd = mkstemp(errpath);
	CHECK(efd >= 0);
	int go[2], ready[2];
	CHECK(pipe(go) == 0 && pipe(ready) == 0);
	fflush(NULL);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		/* The parent owns the namespaces and servers: never clean up here. */
		g_netns = 0;
		memset(g_srv_pid, 0, sizeof(g_srv_pid));
		dup2(efd, 2);
		struct sdrsa_region *rg;
		begin_run("pool-toomany", 0, &rg);
		char b = 1;
		if (write(ready[1], &b, 1) != 1 || read(go[0], &b, 1) != 1)
			_exit(4);
		scan_all();
		_exit(g_bad ? 3 : 0); /* 3: a wrong page was read: the worst outcome */
	}
	char b;
	CHECK(read(ready[0], &b, 1) == 1);
	kill_server(0);
	kill_server(1);
	CHECK(write(go[1], &b, 1) == 1);
	int status;
	CHECK(waitpid(pid, &status, 0) == pid);
	char msg[8192] = "";
	ssize_t n = pread(efd, msg, sizeof(msg) - 1, 0);
	msg[n > 0 ? n : 0] = 0;
	close(efd);
	unlink(errpath);
	fprintf(stderr, "  child: %s %d; its stderr:\n%s", WIFSIGNALED(status) ? "signal" : "exit",
		WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status), msg);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS);
	CHECK(strstr(msg, "no copy left on any memory server") != NULL);
	CHECK(strstr(msg, "Host is down") != NULL);
	stop_servers();
	return T_PASS;
}

static int t_drain(void)
{
	start_all();
	struct sdrsa_region *rg;
	struct sdrsa_engine_stats s;
	struct sdrsa_engine *e = begin_run("pool-drain", 0, &rg);
	print_stats(e, "written", &s);
	CHECK(s.remote > NPAGES / 2);
	kill(g_srv_pid[0], SIGUSR2);
	/* The server exits by itself once the engine moved its pages away. */
	uint64_t t0 = sdrsa_now_ms();
	int status = 0;
	while (waitpid(g_srv_pid[0], &status, WNOHANG) == 0) {
		CHECK(sdrsa_now_ms() - t0 < 60000);
		usleep(50000);
	}
	g_srv_pid[0] = 0;
	fprintf(stderr, "  server 0 drained and exited (status %d) after %llu ms\n",
		WIFEXITED(status) ? WEXITSTATUS(status) : -1,
		(unsigned long long)(sdrsa_now_ms() - t0));
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	wait_replicated(e, &s);
	print_stats(e, "drained", &s);
	CHECK(s.pages_rereplicated > 0);
	/* Both copies on servers 1 and 2: one of them may die. */
	kill_server(1);
	scan_all();
	CHECK(!g_bad);
	return end_run(e, rg);
}

/* Run cmd through sh, stdout+stderr into out; returns the exit status. */
static int run_capture(char *out, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int run_capture(char *out, size_t n, const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	strncat(cmd, " 2>&1", sizeof(cmd) - strlen(cmd) - 1);
	FILE *f = popen(cmd, "r");
	CHECK(f != NULL);
	size_t got = fread(out, 1, n - 1, f);
	out[got] = 0;
	int st = pclose(f);
	fprintf(stderr, "  $ %s -> %d\n%s", cmd, WIFEXITED(st) ? WEXITSTATUS(st) : -1, out);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

#define PY_FILL                                                                              \
	"import time, hashlib\n"                                                             \
	"b = bytearray(48 << 20)\n"                                                          \
	"for i in range(0, len(b), 4096): b[i:i+8] = (i * 2654435761).to_bytes(8, 'little')\n" \
	"h = hashlib.md5(b).hexdigest()\n"                                                   \
	"time.sleep(4)\n"                                                                    \
	"print('same' if hashlib.md5(b).hexdigest() == h else 'DIFFERENT', h)\n"

static int t_rsa_app(void)
{
	/* The sanitizer runtime cannot go into python3 after the preload. */
	const char *san = getenv("SDRSA_TEST_SANITIZED");
	if (san && !strcmp(san, "1")) {
		fprintf(stderr, "  skipped: sanitizer build (the preload cannot go into python3)\n");
		return T_PASS;
	}
	start_all();
	char dir[] = "/tmp/sdrsa-pool-cli-XXXXXX", conf[128], bad[128], py[128];
	CHECK(mkdtemp(dir) != NULL);
	snprintf(conf, sizeof(conf), "%s/pool.conf", dir);
	snprintf(bad, sizeof(bad), "%s/bad.conf", dir);
	snprintf(py, sizeof(py), "%s/fill.py", dir);
	FILE *f = fopen(conf, "w");
	CHECK(f != NULL);
	fprintf(f, "# three hosts\n%s weight=1\n%s weight=1\n%s weight=1\n", g_addr[0], g_addr[1],
		g_addr[2]);
	fclose(f);
	f = fopen(bad, "w");
	CHECK(f != NULL);
	fprintf(f, "%s\n%s weight=-3\n", g_addr[0], g_addr[1]);
	fclose(f);
	f = fopen(py, "w");
	CHECK(f != NULL);
	fputs(PY_FILL, f);
	fclose(f);
	static char out[65536];

	CHECK_EQ(run_capture(out, sizeof(out), "%s pool status %s", g_rsa_app, conf), 0);
	CHECK(strstr(out, g_addr[2]) && strstr(out, " up "));
	CHECK_EQ(run_capture(out, sizeof(out), "%s run --servers %s --local 4M -- true", g_rsa_app,
			     bad),
		 2);
	CHECK(strstr(out, "bad.conf line 2: weight '-3'") != NULL);
	CHECK_EQ(run_capture(out, sizeof(out),
			     "%s run --servers %s --replicas 4 --local 4M -- true", g_rsa_app, conf),
		 2);
	CHECK(strstr(out, "--replicas 4: the pool has only 3 servers") != NULL);

	/* The reference: the same program without the engine. */
	CHECK_EQ(run_capture(out, sizeof(out), "python3 %s", py), 0);
	char want[64];
	CHECK(sscanf(out, "same %63s", want) == 1);
	/* Under rsa-app with a server drained in the middle. */
	char drain_out[8192];
	char cmd[1024];
	snprintf(cmd, sizeof(cmd),
		 "%s run --servers %s --local 4M --stats -- python3 %s > %s/run.out 2>&1 & "
		 "sleep 2; ip netns exec %s %s pool drain %s --timeout 60s; echo drain=$?; wait $!; "
		 "echo run=$?; cat %s/run.out",
		 g_rsa_app, conf, py, dir, g_ns_srv[1], g_rsa_app, g_addr[1], dir);
	run_capture(drain_out, sizeof(drain_out), "sh -c '%s'", cmd);
	CHECK(strstr(drain_out, "drain=0") != NULL);
	CHECK(strstr(drain_out, "run=0") != NULL);
	CHECK(strstr(drain_out, "has moved every page away and stopped") != NULL);
	char line[128];
	snprintf(line, sizeof(line), "same %s", want);
	CHECK(strstr(drain_out, line) != NULL);
	CHECK(strstr(drain_out, "servers up") != NULL);
	g_srv_pid[1] = 0; /* it exited by itself */
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK(system(cmd) == 0);
	stop_servers();
	return T_PASS;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(void);
	} tests[] = {
		{"kill", t_kill},	{"linkcut", t_linkcut}, {"stall", t_stall}, {"quota", t_quota},
		{"toomany", t_toomany}, {"drain", t_drain},	{"rsa_app", t_rsa_app},
		{"late_put", t_late_put},
	};
	if (argc < 3) {
		fprintf(stderr, "usage: test_pool MEMORY_SERVER_BIN RSA_APP_BIN [TEST...]\n");
		return T_FAIL;
	}
	g_bin = argv[1];
	g_rsa_app = argv[2];
	t_require_uffd();
	for (int i = 0; i < NLOCKS; i++)
		pthread_mutex_init(&g_locks[i], NULL);
	int rc = setup_netns();
	if (rc != T_PASS)
		return rc;
	for (size_t t = 0; t < ARRAY_SIZE(tests); t++) {
		int wanted = argc == 3;
		for (int a = 3; a < argc; a++)
			wanted |= !strcmp(argv[a], tests[t].name);
		if (!wanted)
			continue;
		fprintf(stderr, "== %s\n", tests[t].name);
		uint64_t t0 = sdrsa_now_ms();
		rc = tests[t].fn();
		fprintf(stderr, "== %s: %s (%llu ms)\n", tests[t].name, rc == T_PASS ? "ok" : "FAIL",
			(unsigned long long)(sdrsa_now_ms() - t0));
		if (rc != T_PASS)
			return rc;
	}
	return T_PASS;
}
