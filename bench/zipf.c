/* SPDX-License-Identifier: MIT */
/*
 * zipf: see zipf.h. With theta = 0.99 over 131072 items (512 MiB of pages),
 * an exact zipf gives the most popular item 7.6% of the draws, the top 12.5%
 * of items 82% and the top 25% 88%; Gray's generator approximates it.
 */
#include <math.h>

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
	uint64_t x = (z->state += 0x9e3779b97f4a7c15ull);
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
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
