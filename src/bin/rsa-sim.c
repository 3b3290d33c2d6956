// SPDX-License-Identifier: MIT
/*
 * rsa-app sim TRACE... [options]: replay page access traces (recorded by
 * `rsa-app run --trace`, or made by tests/traces/tracegen) through the
 * engine's policies and prefetchers (src/engine/sim.h) and print, per
 * combination, remote faults, network bytes, hit ratios and prefetch
 * accuracy. Deterministic: the same input prints the same table.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bin/rsa_sim.h"
#include "common/util.h"
#include "engine/sim.h"

#define PROG "rsa-app sim"

void rsa_sim_usage(FILE *f)
{
	fprintf(f,
		"Usage: rsa-app sim TRACE... [--local SIZE|PCT%%] [--policy LIST|all]\n"
		"                   [--prefetch LIST|all] [--hot FIRST:COUNT] [--staging PCT]\n"
		"                   [--from N] [--bounds]\n"
		"\n"
		"Replay page access traces through the engine's eviction policies and\n"
		"prefetchers and print remote faults, network bytes, hit ratios and\n"
		"prefetch accuracy for each (the same input always prints the same).\n"
		"\n"
		"  -l, --local SIZE|PCT%%  local budget: 8M, or a share of the pages the\n"
		"                         trace touches such as 25%% (default 25%%)\n"
		"      --policy LIST      comma-separated: fifo, clock, 2q; or all (default)\n"
		"      --prefetch LIST    comma-separated: off, stream, stride; or all\n"
		"                         (default: stride)\n"
		"      --hot FIRST:COUNT  also report the hit ratio of pages FIRST..+COUNT\n"
		"                         (page numbers as in the trace)\n"
		"      --staging PCT      second-chance staging area, %% of the budget\n"
		"                         (default 12, as the engine)\n"
		"      --from N           count from record N on (0-based); the records\n"
		"                         before it only warm the model up (one phase)\n"
		"      --bounds           also print two caches of the same size that see\n"
		"                         every access, which the engine cannot: lru*\n"
		"                         (exact LRU) and opt* (Belady's MIN, the fewest\n"
		"                         misses possible); traces of every access only\n");
}

static int bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, PROG ": ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, " (see rsa-app sim --help)\n");
	va_end(ap);
	return 2;
}

/* "a,b,c" or "all" -> bitmask of kinds; -1 on an unknown name. */
static int parse_list(const char *s, int (*parse)(const char *), int nkinds)
{
	if (!strcmp(s, "all"))
		return (1 << nkinds) - 1;
	int mask = 0;
	char buf[128];
	snprintf(buf, sizeof(buf), "%s", s);
	for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		int k = parse(t);
		if (k < 0)
			return -1;
		mask |= 1 << k;
	}
	return mask ? mask : -1;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static uint64_t distinct_pages(const struct trace *t)
{
	/* Sort a copy of the page numbers: simple and exact. */
	uint64_t *v = malloc((t->n ? t->n : 1) * sizeof(*v));
	if (!v)
		return 0;
	for (size_t i = 0; i < t->n; i++)
		v[i] = t->rec[i].page;
	qsort(v, t->n, sizeof(*v), cmp_u64);
	uint64_t n = 0;
	for (size_t i = 0; i < t->n; i++)
		n += i == 0 || v[i] != v[i - 1];
	free(v);
	return n;
}

int rsa_sim_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"local", required_argument, NULL, 'l'},
		{"policy", required_argument, NULL, 'P'},
		{"prefetch", required_argument, NULL, 'F'},
		{"hot", required_argument, NULL, 'H'},
		{"staging", required_argument, NULL, 'S'},
		{"from", required_argument, NULL, 'f'},
		{"bounds", no_argument, NULL, 'B'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *local = "25%";
	int pols = 7, pfs = 1 << PREFETCH_STRIDE, c;
	uint64_t hot_first = 0, hot_count = 0;
	unsigned staging = 0;
	uint64_t from = 0;
	int bounds = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "l:h", opts, NULL)) != -1) {
		switch (c) {
		case 'l':
			local = optarg;
			break;
		case 'P':
			if ((pols = parse_list(optarg, policy_kind_parse, 3)) < 0)
				return bad("--policy %s: use fifo, clock, 2q (comma-separated) or all",
					   optarg);
			break;
		case 'F':
			if ((pfs = parse_list(optarg, prefetch_kind_parse, 3)) < 0)
				return bad("--prefetch %s: use off, stream, stride (comma-separated) "
					   "or all", optarg);
			break;
		case 'H': {
			char *end;
			errno = 0;
			hot_first = strtoull(optarg, &end, 0);
			if (errno || *end != ':' || !(hot_count = strtoull(end + 1, &end, 0)) || *end)
				return bad("--hot %s: use FIRST:COUNT (page numbers)", optarg);
			break;
		}
		case 'S': {
			char *end;
			unsigned long v = strtoul(optarg, &end, 10);
			if (*end || v < 1 || v > 50)
				return bad("--staging %s: a percentage of the budget, 1 to 50", optarg);
			staging = (unsigned)v;
			break;
		}
		case 'f': {
			char *end;
			errno = 0;
			from = strtoull(optarg, &end, 10);
			if (errno || end == optarg || *end || optarg[0] == '-')
				return bad("--from %s: a record number (0, 1, ...)", optarg);
			break;
		}
		case 'B':
			bounds = 1;
			break;
		case 'h':
			rsa_sim_usage(stdout);
			return 0;
		default:
			return 2;
		}
	}
	if (optind >= argc)
		return bad("missing %s", "TRACE");
	size_t ll = strlen(local);
	int pct = ll && local[ll - 1] == '%';
	uint64_t lval = 0;
	if (pct) {
		char *end;
		lval = strtoull(local, &end, 10);
		if (*end != '%' || lval == 0 || lval > 100)
			return bad("--local %s: a percentage is 1%% to 100%%", local);
	} else if (sdrsa_parse_size(local, &lval) < 0 || lval < 64 * 4096) {
		return bad("--local %s: not a size of at least 256K (or a percentage)", local);
	}
	int status = 0;
	for (int ti = optind; ti < argc; ti++) {
		struct trace t;
		char err[512];
		if (trace_load(argv[ti], &t, err, sizeof(err)) < 0) {
			fprintf(stderr, PROG ": %s\n", err);
			status = 1;
			continue;
		}
		if (from && from >= t.n) {
			fprintf(stderr, PROG ": %s: --from %llu: the trace has %zu records\n",
				argv[ti], (unsigned long long)from, t.n);
			trace_release(&t);
			status = 1;
			continue;
		}
		uint64_t touched = distinct_pages(&t);
		uint64_t budget = pct ? touched * lval / 100 : lval / 4096;
		if (budget < 64)
			budget = 64;
		printf("%s: %zu %s, %llu pages touched, local %llu pages (%.1f MiB)\n", argv[ti],
		       t.n, t.flags & TRACE_F_ACCESSES ? "accesses" : "faults (recorded)",
		       (unsigned long long)touched, (unsigned long long)budget,
		       (double)budget * 4096 / 1048576.0);
		if (from)
			printf("counted from record %llu on\n", (unsigned long long)from);
		printf("%-6s %-8s %10s %7s %9s %7s %7s %10s %8s %8s\n", "policy", "prefetch",
		       "remote", "vs fifo", "net MiB", "hit", "hot hit", "prefetched", "accuracy",
		       "avoided");
		uint64_t fifo_remote[3] = {0};
		for (int pf = 0; pf < 3; pf++) {
			if (!(pfs & (1 << pf)))
				continue;
			for (int pk = 0; pk < 3; pk++) {
				if (!(pols & (1 << pk)))
					continue;
				struct sim_config cfg = {
					.local_pages = budget,
					.staging_pct = staging,
					.policy = (enum policy_kind)pk,
					.prefetch = (enum prefetch_kind)pf,
					.watch_first = hot_first,
					.watch_count = hot_count,
					.count_from = from,
				};
				struct sim_result r;
				int rc = sim_run(&t, &cfg, &r);
				if (rc < 0) {
					fprintf(stderr, PROG ": %s: %s\n", argv[ti], strerror(-rc));
					status = 1;
					continue;
				}
				if (pk == POLICY_FIFO)
					fifo_remote[pf] = r.faults_remote;
				char vs[16] = "-", hot[16] = "-";
				if (pols & 1)
					snprintf(vs, sizeof(vs), "%.2fx",
						 fifo_remote[pf] ? (double)r.faults_remote /
									   (double)fifo_remote[pf]
								 : 1.0);
				if (hot_count)
					snprintf(hot, sizeof(hot), "%.3f", sim_watch_hit_ratio(&r));
				printf("%-6s %-8s %10llu %7s %9.1f %7.3f %7s %10llu %8.3f %8.3f\n",
				       policy_kind_name((enum policy_kind)pk),
				       prefetch_kind_name((enum prefetch_kind)pf),
				       (unsigned long long)r.faults_remote, vs,
				       (double)(r.pages_in + r.pages_out) * 4096 / 1048576.0,
				       sim_hit_ratio(&r), hot, (unsigned long long)r.prefetched,
				       sim_prefetch_accuracy(&r), sim_avoided(&r));
			}
		}
		if (bounds && !(t.flags & TRACE_F_ACCESSES)) {
			printf("(no lru*/opt*: this trace holds the faults of one run, not every "
			       "access)\n");
		} else if (bounds) {
			struct sim_config cfg = {.local_pages = budget, .count_from = from};
			static const char *const names[] = {"lru*", "opt*"};
			for (int ref = SIM_REF_LRU; ref <= SIM_REF_OPT; ref++) {
				uint64_t m;
				int rc = sim_reference(&t, &cfg, (enum sim_ref)ref, &m);
				if (rc < 0) {
					fprintf(stderr, PROG ": %s: %s\n", argv[ti], strerror(-rc));
					status = 1;
					continue;
				}
				printf("%-6s %-8s %10llu\n", names[ref], "-", (unsigned long long)m);
			}
		}
		trace_release(&t);
		if (ti + 1 < argc)
			printf("\n");
	}
	return status;
}
