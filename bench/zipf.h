/* SPDX-License-Identifier: MIT */
/*
 * zipf: draw integers in [0, n) with a zipf(theta) popularity, in O(1) per
 * draw and O(1) memory after an O(n) setup: the generator of Gray et al.,
 * "Quickly generating billion-record synthetic databases" (SIGMOD 1994), as
 * YCSB uses it. No table, so a program under rsa-app keeps nothing of its
 * own outside the memory it measures. Rank r (0 = most popular) is spread
 * over [0, n) by a fixed bijection, so that hot items are not neighbours
 * (a prefetcher or swap read-ahead would otherwise get them for free).
 * Deterministic for a seed: every system sees the same stream.
 */
#ifndef BENCH_ZIPF_H
#define BENCH_ZIPF_H

#include <stdint.h>

struct zipf {
	uint64_t n;
	double theta, alpha, zetan, eta, half_pow_theta;
	uint64_t spread; /* odd multiplier coprime with n: rank -> item */
	uint64_t state;	 /* splitmix64 */
};

/* Set up for n >= 1 items and 0 < theta < 1. */
void zipf_init(struct zipf *z, uint64_t n, double theta, uint64_t seed);
/* The next item, in [0, n). */
uint64_t zipf_next(struct zipf *z);
/* A uniformly random 64-bit number from the same stream (splitmix64). */
uint64_t zipf_rand(struct zipf *z);

/*
 * The exact zipf(theta) of enginebench's workload: a table of the CDF by
 * rank (O(n) memory, a binary search per draw) and a random rank -> item
 * permutation. Kept apart from the generator above because
 * tests/traces/tracegen.c replays enginebench's pages from the same table
 * (`tracegen enginebench`): one code for both keeps them equal.
 */
struct zipf_table {
	uint64_t n;
	double *cdf;
	uint32_t *perm;
};

/* n >= 1 items; the permutation is shuffled with perm_seed. 0 or -ENOMEM. */
int zipf_table_init(struct zipf_table *t, uint64_t n, double theta, uint64_t perm_seed);
/* The next item, in [0, n), from one draw of sdrsa_splitmix64(state). */
uint64_t zipf_table_next(const struct zipf_table *t, uint64_t *state);
void zipf_table_free(struct zipf_table *t);

#endif
