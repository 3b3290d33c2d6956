/* SPDX-License-Identifier: MIT */
/*
 * The page checksum, XXH3-64 of one 4096-byte page seeded with its address
 * (sdrsa_page_csum()), written out for AVX-512 and that one length. The
 * result is the library's bit for bit: codec.c compares the two once before
 * main() and keeps the library's if they ever differ, and
 * tests/unit/test_codec.c compares them on random pages and seeds.
 *
 * Why not the library's own AVX-512 build. Every page is hashed by the
 * client that puts it, the server that stores it and the client that gets
 * it, and xxHash 0.8.1 takes 67 ns a page here whether built for AVX2 or
 * AVX-512 (4 cycles per 64-byte stripe at 4.1 GHz): per stripe it loads a
 * slice of the secret as well as the data and swaps the data's lanes. This
 * version keeps the 16 secret slices a block uses in registers, derived once
 * per page with valignq, and adds the stripes' data into a second
 * accumulator whose lanes are swapped once per block instead of once per
 * stripe (addition commutes, so the sum is the same): 30 ns a page against
 * the library's 67 (release build, -O3; 39 ns at -O2), measured on 4 KiB in
 * the cache, 10^6 pages, CPU 1 at real-time priority. Measured on this
 * project's AMD EPYC (Zen 5) only: on Intel CPUs that lower their clock for
 * 512-bit multiplies (Skylake-SP) it may not pay; not measured there.
 *
 * XXH3-64 of len = 4096 with a seed, as the library computes it (secret of
 * 192 bytes, stripes of 64 bytes, 16 stripes a block):
 *  - secret: the default secret with the seed added to its even 64-bit
 *    words and subtracted from its odd ones;
 *  - three blocks of 1024 bytes: for stripe s at input p, with
 *    k = p ^ secret[8s .. 8s + 64) taken as 8 words,
 *    acc[i] += lo32(k[i]) * hi32(k[i]) and acc[i ^ 1] += p[i]; after each
 *    block, acc[i] = (acc[i] ^ acc[i] >> 47 ^ secret[128 + 8i]) * PRIME32_1;
 *  - 15 more stripes the same way, then the last 64 bytes of the page with
 *    the secret from byte 121;
 *  - len * PRIME64_1 plus, for each pair of words, the 128-bit product of
 *    (acc[2j] ^ secret word at 11 + 16j) and (acc[2j+1] ^ the word after)
 *    folded to 64 bits; then XXH3's avalanche.
 */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <sdrsa/protocol.h>

_Static_assert(SDRSA_PAGE_SIZE == 4096, "written for 4 KiB pages");
_Static_assert(sizeof(XXH3_kSecret) == 192, "XXH3's default secret is 192 bytes");

uint64_t proto_page_csum_avx512(const void *page, uint64_t addr);

static inline uint64_t load64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/* The 64-bit fold of a 128-bit product, as XXH3's merge step takes it. */
static inline uint64_t mul128_fold64(uint64_t a, uint64_t b)
{
	unsigned __int128 m = (unsigned __int128)a * b;

	return (uint64_t)m ^ (uint64_t)(m >> 64);
}

/* One stripe: product into *acc, the data itself (lanes swapped later)
 * into *acc_data. */
static inline void stripe(__m512i *acc, __m512i *acc_data, __m512i data, __m512i key)
{
	__m512i k = _mm512_xor_si512(data, key);

	*acc = _mm512_add_epi64(*acc, _mm512_mul_epu32(k, _mm512_srli_epi64(k, 32)));
	*acc_data = _mm512_add_epi64(*acc_data, data);
}

/* acc[i ^ 1] += data sum[i], the swap the library makes per stripe. */
static inline __m512i add_swapped(__m512i acc, __m512i acc_data)
{
	return _mm512_add_epi64(acc, _mm512_shuffle_epi32(acc_data, _MM_PERM_BADC));
}

uint64_t proto_page_csum_avx512(const void *page, uint64_t addr)
{
	const uint8_t *in = page;
	uint64_t secret[24] __attribute__((aligned(64)));
	uint64_t acc_words[8] __attribute__((aligned(64)));
	const __m512i seeds =
	    _mm512_set_epi64((long long)-addr, (long long)addr, (long long)-addr, (long long)addr,
			     (long long)-addr, (long long)addr, (long long)-addr, (long long)addr);
	const __m512i s0 = _mm512_add_epi64(_mm512_loadu_si512(XXH3_kSecret), seeds);
	const __m512i s1 = _mm512_add_epi64(_mm512_loadu_si512(XXH3_kSecret + 64), seeds);
	const __m512i s2 = _mm512_add_epi64(_mm512_loadu_si512(XXH3_kSecret + 128), seeds);
	const __m512i prime32_1 = _mm512_set1_epi64(XXH_PRIME32_1);
	__m512i key[16], acc, acc_data;
	const uint8_t *sec = (const uint8_t *)secret;
	uint64_t h;

	/* In memory too, for the two reads at odd offsets (last stripe, merge). */
	_mm512_store_si512(secret, s0);
	_mm512_store_si512(secret + 8, s1);
	_mm512_store_si512(secret + 16, s2);
	key[0] = s0;
	key[1] = _mm512_alignr_epi64(s1, s0, 1);
	key[2] = _mm512_alignr_epi64(s1, s0, 2);
	key[3] = _mm512_alignr_epi64(s1, s0, 3);
	key[4] = _mm512_alignr_epi64(s1, s0, 4);
	key[5] = _mm512_alignr_epi64(s1, s0, 5);
	key[6] = _mm512_alignr_epi64(s1, s0, 6);
	key[7] = _mm512_alignr_epi64(s1, s0, 7);
	key[8] = s1;
	key[9] = _mm512_alignr_epi64(s2, s1, 1);
	key[10] = _mm512_alignr_epi64(s2, s1, 2);
	key[11] = _mm512_alignr_epi64(s2, s1, 3);
	key[12] = _mm512_alignr_epi64(s2, s1, 4);
	key[13] = _mm512_alignr_epi64(s2, s1, 5);
	key[14] = _mm512_alignr_epi64(s2, s1, 6);
	key[15] = _mm512_alignr_epi64(s2, s1, 7);

	acc = _mm512_setr_epi64(XXH_PRIME32_3, XXH_PRIME64_1, XXH_PRIME64_2, XXH_PRIME64_3,
				XXH_PRIME64_4, XXH_PRIME32_2, XXH_PRIME64_5, XXH_PRIME32_1);
	for (unsigned b = 0; b < 3; b++) {
		__m512i x;

		acc_data = _mm512_setzero_si512();
		for (unsigned s = 0; s < 16; s++)
			stripe(&acc, &acc_data, _mm512_loadu_si512(in + b * 1024 + s * 64), key[s]);
		acc = add_swapped(acc, acc_data);
		/* Scramble: (acc ^ acc >> 47 ^ secret[128..192)) * PRIME32_1, a
		 * 64 x 32-bit product made of two 32 x 32 ones. */
		x = _mm512_ternarylogic_epi64(acc, _mm512_srli_epi64(acc, 47), s2, 0x96);
		acc = _mm512_add_epi64(
		    _mm512_mul_epu32(x, prime32_1),
		    _mm512_slli_epi64(_mm512_mul_epu32(_mm512_srli_epi64(x, 32), prime32_1), 32));
	}
	acc_data = _mm512_setzero_si512();
	for (unsigned s = 0; s < 15; s++)
		stripe(&acc, &acc_data, _mm512_loadu_si512(in + 3072 + s * 64), key[s]);
	stripe(&acc, &acc_data, _mm512_loadu_si512(in + 4096 - 64), _mm512_loadu_si512(sec + 121));
	acc = add_swapped(acc, acc_data);

	_mm512_store_si512(acc_words, acc);
	h = (uint64_t)SDRSA_PAGE_SIZE * XXH_PRIME64_1;
	for (unsigned j = 0; j < 4; j++)
		h += mul128_fold64(acc_words[2 * j] ^ load64(sec + 11 + 16 * j),
				   acc_words[2 * j + 1] ^ load64(sec + 19 + 16 * j));
	h ^= h >> 37;
	h *= 0x165667919E3779F9ull;
	h ^= h >> 32;
	return h;
}
