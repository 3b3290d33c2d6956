// SPDX-License-Identifier: MIT
/*
 * sdrsa-workload: a memory-bound program for the demo (scripts/demo.sh),
 * run once all-local and once under `rsa-app run` with a budget a quarter
 * of its size. It knows nothing about sdrsa: it mallocs one block of
 * --size bytes and works on it in phases, each timed:
 *
 *   fill     write every 8-byte word (a function of its index)
 *   scan     read every word back and check it
 *   random   --ops updates of random words anywhere (read, modify, write)
 *   hot      --ops updates where 90% go to a hot tenth of the pages
 *   verify   check every word against what the updates made of it
 *
 * Updates are a deterministic function of the word's index and of the
 * operation number, and the program keeps a log-free way to verify them:
 * each update adds a value to the word and to a per-page running sum, so
 * the final check compares every page's sum of words with its expected sum
 * (kept outside the block, 8 bytes per page). Output: one line per phase on
 * stdout, then "checksum HEX" and "verified" (exit 0) or "WRONG DATA" (exit
 * 3). Exit 2 on bad usage, 1 when the memory cannot be allocated.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/util.h"

#define PG 4096u
#define WPP (PG / 8u) /* words per page */

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t initial(uint64_t i)
{
	return i * 0x9E3779B97F4A7C15ull;
}

static void phase(const char *name, double t0, double t1, uint64_t count, const char *unit)
{
	printf("%-7s %8.3f s  %10" PRIu64 " %s\n", name, t1 - t0, count, unit);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	uint64_t size = 256ull << 20, ops = 200000;
	static const struct option lo[] = {
		{"size", required_argument, NULL, 's'},
		{"ops", required_argument, NULL, 'n'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c;
	while ((c = getopt_long(argc, argv, "s:n:h", lo, NULL)) != -1) {
		switch (c) {
		case 's':
			if (sdrsa_parse_size(optarg, &size) < 0 || size < 16 * PG) {
				fprintf(stderr, "sdrsa-workload: --size %s: not a size of at least 64K\n",
					optarg);
				return 2;
			}
			break;
		case 'n':
			ops = strtoull(optarg, NULL, 10);
			break;
		case 'h':
			printf("Usage: sdrsa-workload [--size SIZE] [--ops N]\n"
			       "A memory-bound workload on one block of SIZE (256M): fill, scan,\n"
			       "N random updates, N updates on a hot tenth, verify.\n");
			return 0;
		default:
			return 2;
		}
	}
	uint64_t np = size / PG, nw = np * WPP;
	uint64_t *m = malloc(np * PG);
	uint64_t *sums = calloc(np, sizeof(*sums)); /* expected sum of each page */
	if (!m || !sums) {
		fprintf(stderr, "sdrsa-workload: cannot allocate %" PRIu64 " bytes: %s\n", size,
			strerror(errno));
		return 1;
	}
	int bad = 0;

	double t0 = now_s();
	for (uint64_t i = 0; i < nw; i++)
		m[i] = initial(i);
	for (uint64_t p = 0; p < np; p++)
		for (uint64_t k = 0; k < WPP; k++)
			sums[p] += initial(p * WPP + k);
	double t1 = now_s();
	phase("fill", t0, t1, np, "pages written");

	for (uint64_t i = 0; i < nw && !bad; i++)
		if (m[i] != initial(i))
			bad = 1;
	double t2 = now_s();
	phase("scan", t1, t2, np, "pages read and checked");

	for (uint64_t k = 0; k < ops; k++) {
		uint64_t x = sdrsa_mix64(k + 1);
		uint64_t i = x % nw;
		m[i] += x;
		sums[i / WPP] += x;
	}
	double t3 = now_s();
	phase("random", t2, t3, ops, "random updates");

	uint64_t hot = np / 10 ? np / 10 : 1;
	for (uint64_t k = 0; k < ops; k++) {
		uint64_t x = sdrsa_mix64(k + 0x5bd1e995ull);
		uint64_t p = (x >> 32) % 10 ? (x >> 8) % hot : (x >> 8) % np;
		uint64_t i = p * WPP + (x & (WPP - 1));
		m[i] += x;
		sums[p] += x;
	}
	double t4 = now_s();
	phase("hot", t3, t4, ops, "updates, 90% on a hot tenth");

	uint64_t csum = 0;
	for (uint64_t p = 0; p < np; p++) {
		uint64_t s = 0;
		for (uint64_t k = 0; k < WPP; k++)
			s += m[p * WPP + k];
		if (s != sums[p])
			bad = 1;
		csum = sdrsa_mix64(csum ^ s);
	}
	double t5 = now_s();
	phase("verify", t4, t5, np, "pages summed and checked");
	printf("total   %8.3f s\n", t5 - t0);
	printf("checksum %016" PRIx64 "\n", csum);
	if (bad) {
		printf("WRONG DATA\n");
		return 3;
	}
	printf("verified\n");
	return 0;
}
