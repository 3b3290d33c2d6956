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

#endif
