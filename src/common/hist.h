/* SPDX-License-Identifier: MIT */
/*
 * A log-linear latency histogram: 8 buckets per power of two (values below 8
 * exact), so any percentile is within 12.5 % of the true value, in a fixed
 * 4 KiB with no allocation: cheap enough to record every page fault. The
 * paging engine (rsa-app run --stats) and the VM agent (rsa-app stat) both use
 * it, so their percentiles mean the same thing. Not thread-safe: each user
 * records under its own lock.
 */
#ifndef SDRSA_COMMON_HIST_H
#define SDRSA_COMMON_HIST_H

#include <stdint.h>

#define SDRSA_HIST_BUCKETS 512 /* (63 - 2) * 8 + 8 = 496 needed for any u64 */

struct sdrsa_hist {
	uint64_t n;   /* values recorded */
	uint64_t max; /* largest value recorded */
	uint64_t b[SDRSA_HIST_BUCKETS];
};

static inline unsigned sdrsa_hist_idx(uint64_t v)
{
	unsigned msb;

	if (v < 8)
		return (unsigned)v;
	msb = 63u - (unsigned)__builtin_clzll(v);
	return (msb - 2) * 8 + (unsigned)((v >> (msb - 3)) & 7);
}

/* The lowest value of bucket idx. */
static inline uint64_t sdrsa_hist_val(unsigned idx)
{
	unsigned msb = idx / 8 + 2, sub = idx % 8;

	return idx < 8 ? idx : (uint64_t)(8 + sub) << (msb - 3);
}

static inline void sdrsa_hist_add(struct sdrsa_hist *h, uint64_t v)
{
	h->n++;
	h->b[sdrsa_hist_idx(v)]++;
	if (v > h->max)
		h->max = v;
}

/* The pct-th percentile (0-100), or 0 when nothing was recorded. */
static inline uint64_t sdrsa_hist_pct(const struct sdrsa_hist *h, double pct)
{
	uint64_t want, seen = 0;

	if (!h->n)
		return 0;
	want = (uint64_t)(pct / 100.0 * (double)h->n);
	if (want >= h->n)
		want = h->n - 1;
	for (unsigned i = 0; i < SDRSA_HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen > want) {
			uint64_t v = sdrsa_hist_val(i);
			return v < h->max ? v : h->max;
		}
	}
	return h->max;
}

#endif
