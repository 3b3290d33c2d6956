/* SPDX-License-Identifier: MIT */
/*
 * zipf: see zipf.h. With theta = 0.99 over 131072 items (512 MiB of pages),
 * an exact zipf gives the most popular item 7.6% of the draws, the top 12.5%
 * of items 82% and the top 25% 88%; Gray's generator approximates it.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "common/util.h"
#include "zipf.h"

static uint64_t gcd(uint64_t a, uint64_t b)
{
	while (b) {
		uint64_t t = a % b;
		a = b;
		b = t;
	}
	return a;
}

uint64_t zipf_rand(struct zipf *z)
{
	return sdrsa_splitmix64(&z->state);
}

void zipf_init(struct zipf *z, uint64_t n, double theta, uint64_t seed)
{
	z->n = n;
	z->theta = theta;
	z->state = seed;
	double zetan = 0;
	for (uint64_t i = 1; i <= n; i++)
		zetan += 1.0 / pow((double)i, theta);
	double zeta2 = 1.0 + pow(0.5, theta);
	z->zetan = zetan;
	z->alpha = 1.0 / (1.0 - theta);
	z->eta = (1.0 - pow(2.0 / (double)n, 1.0 - theta)) / (1.0 - zeta2 / zetan);
	z->half_pow_theta = pow(0.5, theta);
	/* A large prime, moved to the next number coprime with n. */
	z->spread = 2654435761ull % (n > 1 ? n : 1);
	while (n > 1 && (z->spread == 0 || gcd(z->spread, n) != 1))
		z->spread++;
	if (n <= 1)
		z->spread = 1;
}

uint64_t zipf_next(struct zipf *z)
{
	double u = (double)(zipf_rand(z) >> 11) / 9007199254740992.0;
	double uz = u * z->zetan;
	uint64_t rank;
	if (uz < 1.0)
		rank = 0;
	else if (uz < 1.0 + z->half_pow_theta)
		rank = 1;
	else
		rank = (uint64_t)((double)z->n * pow(z->eta * u - z->eta + 1.0, z->alpha));
	if (rank >= z->n)
		rank = z->n - 1;
	/* rank * spread mod n: a bijection since gcd(spread, n) = 1; both are
	 * below 2^32 for any n a bench uses, so the product fits. */
	return (uint64_t)(((unsigned __int128)rank * z->spread) % z->n);
}

int zipf_table_init(struct zipf_table *t, uint64_t n, double theta, uint64_t perm_seed)
{
	double sum = 0;

	t->n = n;
	t->cdf = malloc(n * sizeof(*t->cdf));
	t->perm = malloc(n * sizeof(*t->perm));
	if (!t->cdf || !t->perm) {
		zipf_table_free(t);
		return -ENOMEM;
	}
	for (uint64_t r = 0; r < n; r++) {
		sum += 1.0 / pow((double)(r + 1), theta);
		t->cdf[r] = sum;
	}
	for (uint64_t r = 0; r < n; r++) {
		t->cdf[r] /= sum;
		t->perm[r] = (uint32_t)r;
	}
	for (uint64_t r = n - 1; r > 0; r--) {
		uint64_t j = sdrsa_splitmix64(&perm_seed) % (r + 1);
		uint32_t x = t->perm[r];

		t->perm[r] = t->perm[j];
		t->perm[j] = x;
	}
	return 0;
}

uint64_t zipf_table_next(const struct zipf_table *t, uint64_t *state)
{
	double u = (double)(sdrsa_splitmix64(state) >> 11) / 9007199254740992.0;
	uint64_t lo = 0, hi = t->n - 1;

	while (lo < hi) {
		uint64_t mid = (lo + hi) / 2;

		if (t->cdf[mid] < u)
			lo = mid + 1;
		else
			hi = mid;
	}
	return t->perm[lo];
}

void zipf_table_free(struct zipf_table *t)
{
	free(t->cdf);
	free(t->perm);
	t->cdf = NULL;
	t->perm = NULL;
}
