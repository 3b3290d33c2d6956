/* SPDX-License-Identifier: MIT */
/*
 * curveload: the synthetic workload of curvebench, a program that knows
 * nothing about sdrsa (curvebench runs it all-local, under `rsa-app run`
 * and inside a memory cgroup with swap).
 *
 * It mallocs one block of --size bytes, fills it, then makes --warmup
 * untimed and --ops timed accesses, each to a random 8-byte word of a page
 * drawn from --dist: zipf (zipf(--theta) over the pages, see zipf.h) or
 * uniform. Even accesses read the word, odd ones add 1 to it. The timed
 * accesses are repeated in rounds of --ops until --min-seconds have passed,
 * so that a fast run is not timed over a few milliseconds.
 *
 * Every word carries its own index in its high 40 bits and the number of
 * updates it got in its low 24, so every read checks that the page holds
 * its own data (a zero page, another page or a lost write-back is caught),
 * and a last pass checks every word and that the counters sum to the
 * number of updates (a lost update is caught). 24 bits cannot wrap: at most
 * 2^24 updates are allowed in all.
 *
 * Output, one line on stdout:
 *   curveload fill_s=F warmup_s=W ops=N seconds=S ops_per_s=R verified
 * Exit 0; 3 on wrong data (the line then says WRONG DATA); 2 on bad usage;
 * 1 when the memory cannot be allocated.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/util.h"
#include "zipf.h"

#define PG 4096u
#define WPP (PG / 8u) /* words per page */
#define COUNT_BITS 24

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: curveload [--size SIZE] [--ops N] [--warmup N] [--dist zipf|uniform]\n"
		   "                 [--theta T] [--seed S] [--min-seconds S]\n"
		   "A memory-bound workload on one block of SIZE (256M): fill, then N timed\n"
		   "accesses (1000000; after --warmup N/5 untimed) to random words of pages drawn\n"
		   "from zipf(T = 0.99) or uniformly; every access checks the data. The N\n"
		   "timed accesses are repeated until S seconds (0) have passed.\n");
}

/* Accesses k = 0.. of the run: read on even k, update on odd k. Returns the
 * number of words found wrong. */
static uint64_t run_ops(uint64_t *m, uint64_t np, int zipf, struct zipf *z, uint64_t first,
			uint64_t n)
{
	uint64_t bad = 0;
	for (uint64_t k = first; k < first + n; k++) {
		uint64_t p = zipf ? zipf_next(z) : zipf_rand(z) % np;
		uint64_t i = p * WPP + (zipf_rand(z) & (WPP - 1));
		uint64_t v = m[i];
		if (v >> COUNT_BITS != i)
			bad++;
		if (k & 1)
			m[i] = v + 1;
	}
	return bad;
}

int main(int argc, char **argv)
{
	uint64_t size = 256ull << 20, ops = 1000000, warmup = UINT64_MAX, seed = 42;
	double theta = 0.99, min_seconds = 0;
	int zipf = 1;
	static const struct option lo[] = {
		{"size", required_argument, NULL, 's'},	 {"ops", required_argument, NULL, 'n'},
		{"warmup", required_argument, NULL, 'w'}, {"dist", required_argument, NULL, 'd'},
		{"theta", required_argument, NULL, 't'}, {"seed", required_argument, NULL, 'S'},
		{"min-seconds", required_argument, NULL, 'm'},
		{"help", no_argument, NULL, 'h'},	 {NULL, 0, NULL, 0},
	};
	int c;
	char *end;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 's':
			if (sdrsa_parse_size(optarg, &size) < 0 || size < 16 * PG) {
				fprintf(stderr, "curveload: --size %s: not a size of at least 64K\n",
					optarg);
				return 2;
			}
			break;
		case 'n':
		case 'w':
		case 'S': {
			errno = 0;
			uint64_t v = strtoull(optarg, &end, 10);
			if (errno || *end || end == optarg) {
				fprintf(stderr, "curveload: %s: not a number\n", optarg);
				return 2;
			}
			*(c == 'n' ? &ops : c == 'w' ? &warmup : &seed) = v;
			break;
		}
		case 'd':
			if (strcmp(optarg, "zipf") && strcmp(optarg, "uniform")) {
				fprintf(stderr, "curveload: --dist %s: use zipf or uniform\n", optarg);
				return 2;
			}
			zipf = !strcmp(optarg, "zipf");
			break;
		case 't':
			theta = strtod(optarg, &end);
			if (*end || !(theta > 0 && theta < 1)) {
				fprintf(stderr, "curveload: --theta %s: must be in (0, 1)\n", optarg);
				return 2;
			}
			break;
		case 'm':
			min_seconds = strtod(optarg, &end);
			if (*end || end == optarg || !(min_seconds >= 0 && min_seconds <= 3600)) {
				fprintf(stderr, "curveload: --min-seconds %s: 0 to 3600\n", optarg);
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 2;
	}
	if (warmup == UINT64_MAX)
		warmup = ops / 5;
	if ((warmup + ops) / 2 >= (1ull << COUNT_BITS)) {
		fprintf(stderr, "curveload: at most %llu accesses in all\n",
			(unsigned long long)(2ull << COUNT_BITS) - 2);
		return 2;
	}
	uint64_t np = size / PG, nw = np * WPP;
	uint64_t *m = malloc(np * PG);
	if (!m) {
		fprintf(stderr, "curveload: cannot allocate %" PRIu64 " bytes: %s\n", size,
			strerror(errno));
		return 1;
	}
	struct zipf z;
	zipf_init(&z, np, theta, seed);

	double t0 = now_s();
	for (uint64_t i = 0; i < nw; i++)
		m[i] = i << COUNT_BITS;
	double t1 = now_s();
	uint64_t bad = run_ops(m, np, zipf, &z, 0, warmup);
	double t2 = now_s(), t3;
	uint64_t done = 0;
	do {
		bad += run_ops(m, np, zipf, &z, warmup + done, ops);
		done += ops;
		t3 = now_s();
		/* Rounds stop before the 24-bit update counters could wrap. */
	} while (t3 - t2 < min_seconds && (warmup + done + ops) / 2 < (1ull << COUNT_BITS));

	uint64_t updates = 0;
	for (uint64_t i = 0; i < nw; i++) {
		if (m[i] >> COUNT_BITS != i)
			bad++;
		updates += m[i] & ((1ull << COUNT_BITS) - 1);
	}
	uint64_t expected = (warmup + done) / 2;
	printf("curveload fill_s=%.3f warmup_s=%.3f ops=%" PRIu64 " seconds=%.6f ops_per_s=%.1f %s\n",
	       t1 - t0, t2 - t1, done, t3 - t2, (double)done / (t3 - t2),
	       bad || updates != expected ? "WRONG DATA" : "verified");
	if (bad || updates != expected) {
		fprintf(stderr,
			"curveload: WRONG DATA: %" PRIu64 " words not their own, %" PRIu64
			" updates found of %" PRIu64 "\n",
			bad, updates, expected);
		return 3;
	}
	free(m);
	return 0;
}
