// SPDX-License-Identifier: MIT
/*
 * tracegen KIND OUT: write one of the synthetic access traces kept in
 * tests/traces/ (every access, TRACE_F_ACCESSES). Deterministic (a fixed
 * xorshift seed), so `tracegen KIND` always writes the same bytes;
 * tests/traces/README.md lists the kinds and how the files were made.
 *
 * Every trace first writes each page of its regions once, so that pages
 * evicted later are held remotely (a never-written page is a zero fill,
 * not a remote fault).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "engine/trace.h"
#include "zipf.h" /* bench/zipf.h: enginebench's zipf table */

static uint64_t rng = 0x9E3779B97F4A7C15ull;

static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void init(struct trace_writer *w, uint32_t region, uint64_t base, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		trace_write(w, region, base + i, TRACE_WRITE);
}

/* zipf(theta) ranks 0..n-1 by inverting the CDF. */
static double *zipf_cdf(uint64_t n, double theta)
{
	double *cdf = malloc(n * sizeof(*cdf)), sum = 0;
	for (uint64_t i = 0; i < n; i++)
		sum += 1.0 / pow((double)(i + 1), theta);
	double acc = 0;
	for (uint64_t i = 0; i < n; i++) {
		acc += 1.0 / pow((double)(i + 1), theta) / sum;
		cdf[i] = acc;
	}
	return cdf;
}

/*
 * enginebench's workload (bench/enginebench.c, part (c)) at page grain:
 * `pages` pages, phases fill (write every page), seq (read every page,
 * then write every page), random (`ops` uniform accesses, reads and writes
 * alternating) and zipf(0.99) over the pages through the bench's random
 * permutation (`ops` accesses, alternating); the record where each phase
 * starts goes to stdout (for `rsa-app sim --from`). The same
 * seeds as the bench and its zipf table (bench/zipf.c), so the pages are
 * the bench's. An update (`m[i] += x`) loads before it stores: a read, then
 * a write, as the engine sees it (a read fault, then a write-protect
 * fault); a plain store (the fill) is a write. Accesses to the same page in
 * a row are one record (the bench touches words, the engine sees pages).
 */
static void rmw(struct trace_writer *w, uint64_t page)
{
	trace_write(w, 1, page, TRACE_READ);
	trace_write(w, 1, page, TRACE_WRITE);
}

static void enginebench_workload(struct trace_writer *w, uint64_t pages, uint64_t ops)
{
	const uint64_t nw = pages * 512;
	printf("fill from record %llu\n", (unsigned long long)w->n);
	for (uint64_t p = 0; p < pages; p++)
		trace_write(w, 1, p, TRACE_WRITE);
	printf("seq from record %llu\n", (unsigned long long)w->n);
	for (uint64_t p = 0; p < pages; p++)
		trace_write(w, 1, p, TRACE_READ);
	for (uint64_t p = 0; p < pages; p++)
		rmw(w, p);
	printf("random from record %llu\n", (unsigned long long)w->n);
	uint64_t s = 7;
	for (uint64_t k = 0; k < ops; k++) {
		uint64_t x = sdrsa_splitmix64(&s);
		if (k & 1)
			rmw(w, (x % nw) / 512);
		else
			trace_write(w, 1, (x % nw) / 512, TRACE_READ);
	}
	printf("zipf from record %llu\n", (unsigned long long)w->n);
	struct zipf_table zt;
	if (zipf_table_init(&zt, pages, 0.99, 99) < 0) {
		fprintf(stderr, "tracegen: out of memory\n");
		exit(1);
	}
	s = 11;
	for (uint64_t k = 0; k < ops; k++) {
		uint64_t page = zipf_table_next(&zt, &s);
		(void)sdrsa_splitmix64(&s); /* the word in the page */
		if (k & 1)
			rmw(w, page);
		else
			trace_write(w, 1, page, TRACE_READ);
	}
	zipf_table_free(&zt);
}

static uint64_t zipf_rank(const double *cdf, uint64_t n)
{
	double u = (double)(next_rand() >> 11) / 9007199254740992.0;
	uint64_t lo = 0, hi = n - 1;
	while (lo < hi) {
		uint64_t mid = (lo + hi) / 2;
		if (cdf[mid] < u)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: tracegen zipf|hotscan|seq|stride|uniform|mixed|merge|"
				"enginebench OUT\n");
		return 2;
	}
	const char *k = argv[1];
	static struct trace_writer w;
	if (trace_writer_open(&w, argv[2], TRACE_F_ACCESSES) < 0) {
		perror(argv[2]);
		return 1;
	}
	if (!strcmp(k, "zipf")) {
		/* zipf(0.99) over 2048 pages, ranks scattered over the region,
		 * 30% writes. */
		enum { N = 2048 };
		init(&w, 0, 0, N);
		double *cdf = zipf_cdf(N, 0.99);
		for (int i = 0; i < 30000; i++) {
			uint64_t pg = (zipf_rank(cdf, N) * 1031) % N;
			trace_write(&w, 0, pg, next_rand() % 10 < 3 ? TRACE_WRITE : TRACE_READ);
		}
		free(cdf);
	} else if (!strcmp(k, "hotscan")) {
		/* A hot set of 256 pages (pages 0..255) read at random, then a
		 * one-pass read of 4096 cold pages with two hot reads per cold
		 * page. Local memory of 512 pages holds the hot set. */
		enum { HOT = 256, COLD = 4096 };
		init(&w, 0, 0, HOT + COLD);
		for (int i = 0; i < 4 * HOT; i++)
			trace_write(&w, 0, next_rand() % HOT, TRACE_READ);
		for (int i = 0; i < COLD; i++) {
			trace_write(&w, 0, next_rand() % HOT, TRACE_READ);
			trace_write(&w, 0, HOT + (uint64_t)i, TRACE_READ);
			trace_write(&w, 0, next_rand() % HOT, TRACE_READ);
		}
	} else if (!strcmp(k, "seq")) {
		/* Two sequential read passes over 8192 pages. */
		enum { N = 8192 };
		init(&w, 0, 0, N);
		for (int pass = 0; pass < 2; pass++)
			for (uint64_t i = 0; i < N; i++)
				trace_write(&w, 0, i, TRACE_READ);
	} else if (!strcmp(k, "stride")) {
		/* Strided reads over 8192 pages: strides 2, 3, 4, 8, 16, each
		 * one pass from a different first page. */
		enum { N = 8192 };
		static const int strides[] = {2, 3, 4, 8, 16};
		init(&w, 0, 0, N);
		for (int s = 0; s < 5; s++)
			for (uint64_t i = (uint64_t)s; i < N; i += (uint64_t)strides[s])
				trace_write(&w, 0, i, TRACE_READ);
	} else if (!strcmp(k, "uniform")) {
		/* Uniform random reads and writes over 4096 pages. */
		enum { N = 4096 };
		init(&w, 0, 0, N);
		for (int i = 0; i < 20000; i++)
			trace_write(&w, 0, next_rand() % N,
				    next_rand() % 2 ? TRACE_WRITE : TRACE_READ);
	} else if (!strcmp(k, "merge")) {
		/* Two sequential streams in one region, interleaved one to
		 * one (the two inputs of a merge): pages 0.. and 4096.. */
		enum { N = 8192 };
		init(&w, 0, 0, N);
		for (uint64_t i = 0; i < N / 2; i++) {
			trace_write(&w, 0, i, TRACE_READ);
			trace_write(&w, 0, N / 2 + i, TRACE_READ);
		}
	} else if (!strcmp(k, "mixed")) {
		/* Two regions, two programs' worth of pattern: region 1 read
		 * sequentially, region 2 at random, interleaved one to one. */
		enum { N = 4096 };
		const uint64_t a = 1ull << 20, b = 2ull << 20;
		init(&w, 1, a, N);
		init(&w, 2, b, N);
		for (uint64_t i = 0; i < N; i++) {
			trace_write(&w, 1, a + i, TRACE_READ);
			trace_write(&w, 2, b + next_rand() % N, TRACE_READ);
		}
	} else if (!strcmp(k, "enginebench")) {
		/* Not kept in the repository (7 MiB): enginebench's 512 MiB
		 * workload with 1000000 random and zipf accesses. */
		enginebench_workload(&w, 131072, 1000000);
	} else {
		fprintf(stderr, "tracegen: unknown kind %s\n", k);
		return 2;
	}
	if (trace_writer_close(&w) < 0) {
		perror(argv[2]);
		return 1;
	}
	return 0;
}
