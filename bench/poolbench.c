/* SPDX-License-Identifier: MIT */
/*
 * poolbench: the pool of memory servers (store_pool.c, docs/POOL.md), every
 * figure a ratio against a baseline measured in the same run.
 *
 *   (a) tput: page put and get throughput of the pool store with 1, 2 and 3
 *       servers and 1 or 2 replicas (batches of 256 pages), against one
 *       server through the same store (ratio 1.00 = no cost);
 *   (b) work: the engine under a memory-bound program (a region of SIZE,
 *       budget SIZE/4: fill, uniform random 8-byte reads and writes, a
 *       sequential scan) with one server (baseline), 3 servers x 1 replica
 *       and 3 servers x 2 replicas; the final checksums must agree;
 *   (c) restore: SIZE written through 3 servers x 2 replicas, one server
 *       SIGKILLed, time until every page has 2 copies again, per GiB.
 *
 * The servers are memory-server processes on 127.0.0.1 that the bench
 * starts and stops itself. Exit 0 when all was measured and verified, 1 on
 * a failure, 2 on a usage error. scripts/bench.sh --bench poolbench.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sdrsa/client.h>
#include <sdrsa/engine.h>

#include "common/util.h"
#include "engine/store.h"

#define PG 4096ull
#define MIB (1024ull * 1024ull)
#define NSRV 3

static const char *server_bin = "memory-server";
static const char *server_busy_poll = "50"; /* memory-server --busy-poll (its default) */
static pid_t srv_pid[NSRV];
static char srv_addr[NSRV][64];
static FILE *csv;
static int failed;

static void stop_servers(void)
{
	for (int i = 0; i < NSRV; i++)
		if (srv_pid[i] > 0) {
			kill(srv_pid[i], SIGKILL);
			waitpid(srv_pid[i], NULL, 0);
			srv_pid[i] = 0;
		}
}

static void on_signal(int sig)
{
	stop_servers();
	signal(sig, SIG_DFL);
	raise(sig);
}

static int start_server(int i, const char *size)
{
	int pfd[2];
	if (pipe(pfd) < 0)
		return -1;
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		dup2(pfd[1], 1);
		close(pfd[0]);
		close(pfd[1]);
		execl(server_bin, server_bin, size, "--listen", "127.0.0.1:0", "--quiet", "--threads",
		      "1", "--busy-poll", server_busy_poll, (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	FILE *f = fdopen(pfd[0], "r");
	char line[256];
	srv_addr[i][0] = 0;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "listening on ", 13)) {
			snprintf(srv_addr[i], sizeof(srv_addr[i]), "%.63s", line + 13);
			srv_addr[i][strcspn(srv_addr[i], "\r\n")] = 0;
		}
		if (!strncmp(line, "ready", 5))
			break;
	}
	fclose(f);
	srv_pid[i] = pid;
	return srv_addr[i][0] ? 0 : -1;
}

static int start_servers(const char *size)
{
	for (int i = 0; i < NSRV; i++)
		if (start_server(i, size) < 0) {
			fprintf(stderr, "poolbench: cannot start %s\n", server_bin);
			return -1;
		}
	return 0;
}

static void row(const char *part, const char *what, double value, const char *unit, double ratio)
{
	printf("  %-34s %10.1f %-8s ratio %5.2f\n", what, value, unit, ratio);
	if (csv)
		fprintf(csv, "%s,%s,%.3f,%s,%.3f\n", part, what, value, unit, ratio);
}

static void log_quiet(void *ud, int level, const char *msg)
{
	(void)ud;
	if (level <= SDRSA_LOG_WARN) /* a server down, full or draining is worth seeing */
		fprintf(stderr, "  engine: %s\n", msg);
}

/* ---- (a) store throughput ---- */

static int pool_store(unsigned nsrv, unsigned replicas, const char *name, struct store **st)
{
	struct sdrsa_pool_server srv[NSRV];
	for (unsigned i = 0; i < nsrv; i++)
		srv[i] = (struct sdrsa_pool_server){.address = srv_addr[i], .weight = 1};
	struct store_pool_config pc = {
		.servers = srv, .n = nsrv, .replicas = replicas, .name = name, .log = log_quiet};
	return store_pool_new(&pc, st);
}

/* Put then get `bytes` of pages through a pool of nsrv servers; MiB/s of
 * each into *put and *get. Returns 0, or -1 on a failure or a wrong page. */
static int tput_once(unsigned nsrv, unsigned replicas, uint64_t bytes, double *put, double *get)
{
	enum { B = 256 };
	static unsigned char buf[B * PG];
	uint64_t keys[B], n = bytes / PG;
	const void *cp[B];
	void *p[B];
	int bad = 0;
	for (int i = 0; i < B; i++) {
		cp[i] = p[i] = buf + i * PG;
		memset(buf + i * PG, i + 1, PG);
	}
	struct store *st;
	if (pool_store(nsrv, replicas, "tput", &st) < 0)
		return -1;
	double t0 = (double)sdrsa_now_ns();
	for (uint64_t k = 0; k < n; k += B) {
		for (int i = 0; i < B; i++)
			keys[i] = (k + (uint64_t)i) * PG;
		bad |= st->ops->put_many(st, keys, cp, B, NULL) < 0;
	}
	double put_s = ((double)sdrsa_now_ns() - t0) / 1e9;
	memset(buf, 0, sizeof(buf));
	t0 = (double)sdrsa_now_ns();
	for (uint64_t k = 0; k < n; k += B) {
		for (int i = 0; i < B; i++)
			keys[i] = (k + (uint64_t)i) * PG;
		bad |= st->ops->get_many(st, keys, p, B) < 0;
		for (int i = 0; i < B; i++)
			bad |= buf[i * PG] != (unsigned char)(i + 1) ||
			       buf[i * PG + PG - 1] != (unsigned char)(i + 1);
	}
	double get_s = ((double)sdrsa_now_ns() - t0) / 1e9;
	(void)st->ops->free_all(st, NULL);
	store_free(st);
	*put = (double)bytes / MIB / put_s;
	*get = (double)bytes / MIB / get_s;
	return bad ? -1 : 0;
}

static void tput_part(uint64_t bytes, int reps)
{
	printf("(a) store throughput, %llu MiB of pages in batches of 256, best of %d\n",
	       (unsigned long long)(bytes / MIB), reps);
	static const struct {
		unsigned n, r;
	} cfgs[] = {{1, 1}, {2, 1}, {3, 1}, {2, 2}, {3, 2}};
	double base_put = 0, base_get = 0;
	for (size_t c = 0; c < ARRAY_SIZE(cfgs); c++) {
		double put = 0, get = 0;
		for (int rep = 0; rep < reps; rep++) {
			double pu, ge;
			if (tput_once(cfgs[c].n, cfgs[c].r, bytes, &pu, &ge) < 0) {
				fprintf(stderr, "poolbench: throughput run failed\n");
				failed = 1;
				return;
			}
			put = MAX(put, pu);
			get = MAX(get, ge);
		}
		if (c == 0) {
			base_put = put;
			base_get = get;
		}
		char what[64];
		snprintf(what, sizeof(what), "put, %u server%s x %u replica%s", cfgs[c].n,
			 cfgs[c].n > 1 ? "s" : "", cfgs[c].r, cfgs[c].r > 1 ? "s" : "");
		row("tput", what, put, "MiB/s", put / base_put);
		snprintf(what, sizeof(what), "get, %u server%s x %u replica%s", cfgs[c].n,
			 cfgs[c].n > 1 ? "s" : "", cfgs[c].r, cfgs[c].r > 1 ? "s" : "");
		row("tput", what, get, "MiB/s", get / base_get);
	}
}

/* ---- (b) engine workload ---- */

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static struct sdrsa_engine *engine_for(unsigned nsrv, unsigned replicas, uint64_t budget,
				       const char *name)
{
	static struct sdrsa_pool_server srv[NSRV];
	for (unsigned i = 0; i < nsrv; i++)
		srv[i] = (struct sdrsa_pool_server){.address = srv_addr[i]};
	struct sdrsa_engine_config cfg = {.name = name, .local_bytes = budget, .log = log_quiet};
	if (replicas) {
		cfg.pool = srv;
		cfg.pool_size = nsrv;
		cfg.replicas = replicas;
	} else {
		cfg.server = srv_addr[0]; /* the plain one-server store */
	}
	struct sdrsa_engine *e;
	int r = sdrsa_engine_new(&cfg, &e);
	if (r < 0) {
		fprintf(stderr, "poolbench: engine: %s\n", strerror(-r));
		return NULL;
	}
	return e;
}

/* In a child: run the workload, write seconds and checksum to fd. */
static void work_child(unsigned nsrv, unsigned replicas, uint64_t size, uint64_t ops, int fd)
{
	struct sdrsa_engine *e = engine_for(nsrv, replicas, size / 4, "work");
	struct sdrsa_region *rg;
	if (!e || sdrsa_region_new(e, size, &rg) < 0)
		_exit(1);
	uint64_t *m = sdrsa_region_addr(rg), words = size / 8, sum = 0, s = 42;
	double t0 = (double)sdrsa_now_ns();
	for (uint64_t i = 0; i < words; i += 512)
		m[i] = i * 0x9E3779B97F4A7C15ull;
	for (uint64_t k = 0; k < ops; k++) {
		uint64_t r = splitmix(&s), w = r % words;
		if (r >> 63)
			m[w] += r;
		else
			sum += m[w];
	}
	for (uint64_t i = 0; i < words; i += 64)
		sum += m[i] * (i | 1);
	for (uint64_t i = 0; i < words; i++)
		sum = sum * 31 + m[i];
	double secs = ((double)sdrsa_now_ns() - t0) / 1e9;
	struct sdrsa_engine_stats st;
	sdrsa_engine_stats(e, &st);
	double out[3] = {secs, (double)(sum >> 11), (double)st.bytes_sent / MIB};
	if (write(fd, out, sizeof(out)) != sizeof(out))
		_exit(1);
	sdrsa_region_free(rg);
	sdrsa_engine_free(e);
	_exit(0);
}

/* out: wall seconds, checksum, MiB sent, then the child's CPU seconds (user
 * + system: the engine's work, less sensitive than wall time to other load). */
static int run_work(unsigned nsrv, unsigned replicas, uint64_t size, uint64_t ops, double out[4])
{
	int p[2];
	if (pipe(p) < 0)
		return -1;
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		close(p[0]);
		work_child(nsrv, replicas, size, ops, p[1]);
	}
	close(p[1]);
	ssize_t n = read(p[0], out, 3 * sizeof(double));
	close(p[0]);
	int st;
	struct rusage ru;
	if (wait4(pid, &st, 0, &ru) != pid)
		return -1;
	out[3] = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
		 (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
	return n == 3 * sizeof(double) && WIFEXITED(st) && !WEXITSTATUS(st) ? 0 : -1;
}

static void work_part(uint64_t size, uint64_t ops, int reps)
{
	printf("(b) engine workload: %llu MiB, budget %llu MiB, %llu random ops, best of %d\n",
	       (unsigned long long)(size / MIB), (unsigned long long)(size / 4 / MIB),
	       (unsigned long long)ops, reps);
	static const struct {
		unsigned n, r;
		const char *what;
	} cfgs[] = {{1, 0, "1 server (plain store)"},
		    {3, 1, "3 servers x 1 replica"},
		    {3, 2, "3 servers x 2 replicas"}};
	double best[3] = {0}, cpu[3] = {0}, sum0 = 0, sent[3] = {0};
	for (int rep = 0; rep < reps; rep++)
		for (size_t c = 0; c < ARRAY_SIZE(cfgs); c++) {
			double out[4];
			if (run_work(cfgs[c].n, cfgs[c].r, size, ops, out) < 0) {
				fprintf(stderr, "poolbench: workload run failed (%s)\n", cfgs[c].what);
				failed = 1;
				return;
			}
			if (!rep && !c)
				sum0 = out[1];
			else if (out[1] != sum0) {
				fprintf(stderr, "poolbench: checksum differs (%s)\n", cfgs[c].what);
				failed = 1;
			}
			if (!best[c] || out[0] < best[c])
				best[c] = out[0];
			if (!cpu[c] || out[3] < cpu[c])
				cpu[c] = out[3];
			sent[c] = out[2];
		}
	for (size_t c = 0; c < ARRAY_SIZE(cfgs); c++) {
		row("work", cfgs[c].what, best[c], "s", best[c] / best[0]);
		char what[80];
		snprintf(what, sizeof(what), "  cpu of %s", cfgs[c].what);
		row("work", what, cpu[c], "cpu s", cpu[c] / cpu[0]);
		snprintf(what, sizeof(what), "  sent by %s", cfgs[c].what);
		row("work", what, sent[c], "MiB", sent[c] / sent[0]);
	}
	printf("  2 replicas vs 1 replica (3 servers): %.2fx wall, %.2fx cpu (target <= 1.30)\n",
	       best[2] / best[1], cpu[2] / cpu[1]);
	if (csv)
		fprintf(csv, "work,2 replicas vs 1,%.3f,x,%.3f\n", best[2] / best[1], best[2] / best[1]);
}

/* ---- (c) restore ---- */

static void restore_part(uint64_t size)
{
	printf("(c) restoring 2 copies after a server died, %llu MiB written\n",
	       (unsigned long long)(size / MIB));
	struct sdrsa_engine *e = engine_for(3, 2, 16 * MIB, "restore");
	struct sdrsa_region *rg;
	if (!e || sdrsa_region_new(e, size, &rg) < 0) {
		failed = 1;
		return;
	}
	unsigned char *m = sdrsa_region_addr(rg);
	for (uint64_t i = 0; i < size; i += PG)
		memset(m + i, (int)(i / PG % 251) + 1, 64);
	struct sdrsa_engine_stats s;
	sdrsa_engine_stats(e, &s);
	uint64_t remote = s.remote;
	kill(srv_pid[1], SIGKILL);
	waitpid(srv_pid[1], NULL, 0);
	srv_pid[1] = 0;
	double t0 = (double)sdrsa_now_ns();
	/* The engine notices at its next probe (up to 1 s) or operation. */
	for (;;) {
		sdrsa_engine_stats(e, &s);
		if (s.servers_up == 2 && !s.pages_under_replicated && !s.pages_lost)
			break;
		if ((double)sdrsa_now_ns() - t0 > 600e9) {
			failed = 1;
			break;
		}
		usleep(5000);
	}
	double secs = ((double)sdrsa_now_ns() - t0) / 1e9;
	double gib = (double)s.pages_rereplicated * PG / (1024.0 * MIB);
	printf("  %llu of %llu remote pages copied again in %.2f s (detection included)\n",
	       (unsigned long long)s.pages_rereplicated, (unsigned long long)remote, secs);
	row("restore", "seconds per GiB copied", gib > 0 ? secs / gib : 0, "s/GiB", 1.0);
	for (uint64_t i = 0; i < size; i += PG)
		if (m[i] != (unsigned char)((int)(i / PG % 251) + 1)) {
			fprintf(stderr, "poolbench: page %llu wrong after restore\n",
				(unsigned long long)(i / PG));
			failed = 1;
			break;
		}
	sdrsa_region_free(rg);
	sdrsa_engine_free(e);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{"quick", no_argument, NULL, 'q'},	{"size", required_argument, NULL, 's'},
		{"ops", required_argument, NULL, 'n'},	{"only", required_argument, NULL, 'o'},
		{"server-bin", required_argument, NULL, 'S'},
		{"csv", required_argument, NULL, 'c'},	{"reps", required_argument, NULL, 'r'},
		{"busy-poll", required_argument, NULL, 'B'},
		{"help", no_argument, NULL, 'h'},	{NULL, 0, NULL, 0},
	};
	uint64_t size = 256 * MIB, ops = 300000;
	const char *only = "tput,work,restore";
	int c, reps = 3;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'q':
			size = 64 * MIB;
			ops = 100000;
			reps = 1;
			break;
		case 's':
			if (sdrsa_parse_size(optarg, &size) < 0 || size < 16 * MIB)
				return 2;
			break;
		case 'n':
			ops = strtoull(optarg, NULL, 10);
			break;
		case 'r':
			reps = atoi(optarg) > 0 ? atoi(optarg) : 1;
			break;
		case 'o':
			only = optarg;
			break;
		case 'S':
			server_bin = optarg;
			break;
		case 'B':
			server_busy_poll = optarg;
			break;
		case 'c':
			csv = fopen(optarg, "w");
			break;
		default:
			fprintf(c == 'h' ? stdout : stderr,
				"Usage: poolbench [--quick] [--size SIZE] [--ops N] [--reps N]\n"
				"                 [--only tput,work,restore] [--server-bin PATH] "
				"[--csv FILE]\n"
				"                 [--busy-poll US]  (the servers' --busy-poll, 50)\n");
			return c == 'h' ? 0 : 2;
		}
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	if (csv)
		fprintf(csv, "part,what,value,unit,ratio\n");
	char pool_size[32];
	snprintf(pool_size, sizeof(pool_size), "%lluM", (unsigned long long)(size * 3 / MIB));
	if (strstr(only, "tput")) {
		if (start_servers(pool_size) < 0)
			return 1;
		tput_part(size, reps);
		stop_servers();
	}
	if (strstr(only, "work")) {
		if (start_servers(pool_size) < 0)
			return 1;
		work_part(size, ops, reps);
		stop_servers();
	}
	if (strstr(only, "restore")) {
		if (start_servers(pool_size) < 0)
			return 1;
		restore_part(size);
		stop_servers();
	}
	if (csv)
		fclose(csv);
	return failed;
}
