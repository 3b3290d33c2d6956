/* SPDX-License-Identifier: MIT */
/*
 * backendbench: the paging engine on its two page stores in one run, the
 * memory server (the baseline) and memcached (one server, and a fleet of
 * three), same engine, same workload, same machine.
 *
 * Each run starts a fresh engine (budget --local, default 32 MiB) with a
 * region of --size (default 256 MiB) and times three phases, every page's
 * content checked:
 *   write   write every page once in order: the engine evicts (puts) all
 *           but the budget, so this is put throughput bound;
 *   scan    read every page in order: remote faults with prefetch (the
 *           engine's streamed multi-page gets);
 *   random  --faults single-page reads at random places (each one a remote
 *           fault: latency bound), prefetch stays on as for programs.
 * Every system runs --runs times (default 3), interleaved; the median is
 * reported with the ratio to the memory server's median of the same run.
 *
 * Servers, all single-threaded and on 127.0.0.1: memory-server --threads 1
 * (pagebench's sys_sdrsa starter), memcached -t 1 -m 1024 (pagebench's
 * peer starter). Exit 0 when everything ran and every page was right, 1 on
 * a failure, 2 on a usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sdrsa/engine.h>

#include "common/util.h"
#include "pagebench.h"

#ifndef BACKENDBENCH_SERVER_BIN
#define BACKENDBENCH_SERVER_BIN "memory-server"
#endif

#define PG 4096ull
#define MIB (1024ull * 1024ull)
#define NSYS 3
#define MAX_RUNS 15

/* pagebench's starters read these. */
struct pb_opts pb_opts = {
	.server_bin = BACKENDBENCH_SERVER_BIN,
	.server_threads = 1,
	.timeout_ms = 5000,
};

/* sys_sdrsa.c's pipelined path is not used here; the starters need these. */
void pb_job_fill(struct pb_job *job, void *page, uint64_t addr)
{
	(void)job;
	((uint64_t *)page)[0] = addr;
}

void pb_job_check(struct pb_job *job, const void *page, uint64_t addr)
{
	(void)job;
	(void)page;
	(void)addr;
}

void pb_job_error(struct pb_job *job, uint64_t addr, const char *what)
{
	(void)addr;
	(void)what;
	job->errors++;
}

int64_t pb_page_index(uint64_t addr)
{
	return (int64_t)(addr / PG);
}


struct result {
	double write_mbs, scan_mbs, random_us;
	uint64_t pages_out, pages_in;
};

static int run_once(const char *servers, enum sdrsa_engine_backend backend, uint64_t size,
		    uint64_t local, uint64_t nfaults, int run, struct result *res)
{
	char name[64];
	snprintf(name, sizeof(name), "backendbench-%d-%d", (int)getpid(), run);
	struct sdrsa_engine_config cfg = {
		.server = servers,
		.name = name,
		.local_bytes = local,
		.backend = backend,
	};
	struct sdrsa_engine *e;
	int r = sdrsa_engine_new(&cfg, &e);
	if (r < 0) {
		fprintf(stderr, "backendbench: engine on %s: %s\n", servers, strerror(-r));
		return -1;
	}
	struct sdrsa_region *rg;
	if (sdrsa_region_new(e, size, &rg) < 0) {
		sdrsa_engine_free(e);
		return -1;
	}
	unsigned char *m = sdrsa_region_addr(rg);
	uint64_t n = size / PG, bad = 0;
	uint64_t t0 = pb_now_ns();
	for (uint64_t i = 0; i < n; i++) {
		uint64_t *p = (uint64_t *)(m + i * PG);
		p[0] = i ^ 0x5A5A5A5A5A5A5A5Aull;
		p[511] = i;
	}
	uint64_t t1 = pb_now_ns();
	for (uint64_t i = 0; i < n; i++) {
		const uint64_t *p = (const uint64_t *)(m + i * PG);
		bad += p[0] != (i ^ 0x5A5A5A5A5A5A5A5Aull) || p[511] != i;
	}
	uint64_t t2 = pb_now_ns();
	uint64_t rs = 42 + (uint64_t)run;
	for (uint64_t k = 0; k < nfaults; k++) {
		uint64_t i = sdrsa_splitmix64(&rs) % n;
		const uint64_t *p = (const uint64_t *)(m + i * PG);
		bad += p[511] != i;
	}
	uint64_t t3 = pb_now_ns();
	struct sdrsa_engine_stats st;
	sdrsa_engine_stats(e, &st);
	sdrsa_region_free(rg);
	sdrsa_engine_free(e);
	if (bad) {
		fprintf(stderr, "backendbench: %llu pages with wrong content on %s\n",
			(unsigned long long)bad, servers);
		return -1;
	}
	res->write_mbs = (double)size / MIB / ((double)(t1 - t0) / 1e9);
	res->scan_mbs = (double)size / MIB / ((double)(t2 - t1) / 1e9);
	res->random_us = (double)(t3 - t2) / 1e3 / (double)nfaults;
	res->pages_out = st.pages_out;
	res->pages_in = st.pages_in;
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: backendbench [--server-bin PATH] [--size SIZE] [--local SIZE]\n"
		   "                    [--faults N] [--runs N] [--quick] [--csv FILE]\n"
		   "The paging engine on the memory server and on memcached (1 and 3\n"
		   "servers), in one run; ratios against the memory server.\n");
}

int main(int argc, char **argv)
{
	uint64_t size = 256 * MIB, local = 32 * MIB, nfaults = 20000;
	int runs = 3;
	const char *csv_path = NULL;
	static const struct option lo[] = {
		{"csv", required_argument, NULL, 'c'},
		{"server-bin", required_argument, NULL, 'S'}, {"size", required_argument, NULL, 's'},
		{"local", required_argument, NULL, 'l'},      {"faults", required_argument, NULL, 'f'},
		{"runs", required_argument, NULL, 'r'},       {"quick", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},	      {NULL, 0, NULL, 0},
	};
	int c;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'S':
			pb_opts.server_bin = optarg;
			break;
		case 'c':
			csv_path = optarg;
			break;
		case 's':
			if (sdrsa_parse_size(optarg, &size) < 0 || size < 4 * MIB)
				return usage(stderr), 2;
			break;
		case 'l':
			if (sdrsa_parse_size(optarg, &local) < 0 || local < MIB)
				return usage(stderr), 2;
			break;
		case 'f':
			nfaults = strtoull(optarg, NULL, 10);
			break;
		case 'r':
			runs = atoi(optarg);
			if (runs < 1 || runs > MAX_RUNS)
				return usage(stderr), 2;
			break;
		case 'q':
			size = 64 * MIB;
			local = 8 * MIB;
			nfaults = 5000;
			runs = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			return 2;
		}
	}
	if (local >= size)
		return usage(stderr), 2;
	char tmpl[] = "/tmp/backendbench.XXXXXX";
	pb_opts.tmpdir = mkdtemp(tmpl);
	if (!pb_opts.tmpdir)
		return 1;
	pb_opts.pages = size / PG; /* the memory server's pool: twice this */

	int rc = 1;
	FILE *csv = NULL;
	if (csv_path && !(csv = fopen(csv_path, "w"))) {
		fprintf(stderr, "backendbench: %s: %s\n", csv_path, strerror(errno));
		return 1;
	}
	if (csv)
		fprintf(csv, "system,run,write_mib_s,scan_mib_s,random_us_per_fault\n");
	struct pb_system sd = {.ops = &pb_sys_sdrsa};
	struct pb_system mc[3] = {{0}};
	char sd_addr[64], mc1[64], mc3[256];
	if (sd.ops->start(&sd) < 0) {
		fprintf(stderr, "backendbench: memory-server: %s\n", sd.err);
		goto out;
	}
	snprintf(sd_addr, sizeof(sd_addr), "127.0.0.1:%d", sd.port);
	for (int i = 0; i < 3; i++) {
		char log[32];
		snprintf(log, sizeof(log), "memcached%d.log", i);
		/* memcached refuses to run as root without -u */
		const char *const args[] = {"-p", PB_PORT_ARG, "-l", "127.0.0.1", "-m", "1024", "-U",
					    "0", "-t", "1", geteuid() == 0 ? "-u" : NULL, "root",
					    NULL};
		if (pb_start_peer(&mc[i], "memcached", log, args) < 0) {
			fprintf(stderr, "backendbench: memcached: %s\n", mc[i].err);
			goto out;
		}
	}
	snprintf(mc1, sizeof(mc1), "127.0.0.1:%d", mc[0].port);
	snprintf(mc3, sizeof(mc3), "127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d", mc[0].port,
		 mc[1].port, mc[2].port);

	const char *names[NSYS] = {"memory-server", "memcached x1", "memcached x3"};
	const char *addrs[NSYS] = {sd_addr, mc1, mc3};
	enum sdrsa_engine_backend be[NSYS] = {SDRSA_BACKEND_SDRSA, SDRSA_BACKEND_MEMCACHED,
					      SDRSA_BACKEND_MEMCACHED};
	double w[NSYS][MAX_RUNS], s[NSYS][MAX_RUNS], rnd[NSYS][MAX_RUNS];
	printf("backendbench: region %llu MiB, local %llu MiB, %llu random faults, %d runs\n",
	       (unsigned long long)(size / MIB), (unsigned long long)(local / MIB),
	       (unsigned long long)nfaults, runs);
	for (int run = 0; run < runs; run++)
		for (int k = 0; k < NSYS; k++) {
			struct result res;
			if (run_once(addrs[k], be[k], size, local, nfaults, run * NSYS + k, &res) < 0)
				goto out;
			w[k][run] = res.write_mbs;
			s[k][run] = res.scan_mbs;
			rnd[k][run] = res.random_us;
			printf("  run %d %-14s write %7.1f MiB/s  scan %7.1f MiB/s  random %6.1f "
			       "us/fault  (out %llu, in %llu pages)\n",
			       run + 1, names[k], res.write_mbs, res.scan_mbs, res.random_us,
			       (unsigned long long)res.pages_out, (unsigned long long)res.pages_in);
			fflush(stdout);
			if (csv)
				fprintf(csv, "%s,%d,%.1f,%.1f,%.2f\n", names[k], run + 1,
					res.write_mbs, res.scan_mbs, res.random_us);
		}
	double mw[NSYS], ms[NSYS], mr[NSYS];
	for (int k = 0; k < NSYS; k++) {
		mw[k] = median(w[k], runs);
		ms[k] = median(s[k], runs);
		mr[k] = median(rnd[k], runs);
	}
	printf("\n%-14s %16s %16s %18s\n", "medians", "write MiB/s", "scan MiB/s",
	       "random us/fault");
	for (int k = 0; k < NSYS; k++)
		printf("%-14s %8.1f (%4.2fx) %8.1f (%4.2fx) %9.1f (%4.2fx)\n", names[k], mw[k],
		       mw[k] / mw[0], ms[k], ms[k] / ms[0], mr[k], mr[k] / mr[0]);
	printf("(ratios: against the memory server in this run; for write and scan higher "
	       "is better, for random lower is better)\n");
	rc = 0;
out:
	if (csv)
		fclose(csv);
	if (sd.pid > 0)
		pb_child_stop(sd.pid, 2000);
	for (int i = 0; i < 3; i++)
		if (mc[i].pid > 0)
			pb_child_stop(mc[i].pid, 2000);
	return rc;
}
