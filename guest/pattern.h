/* SPDX-License-Identifier: MIT */
/*
 * pattern.h: the deterministic data the guest programs write and the host
 * tests check. Word i (8 bytes, little-endian) of the stream for SEED is
 * sdrsa_pattern_word(SEED, i), a splitmix64 finaliser of (SEED, i): every
 * 8-byte word of every page differs, so a page that comes back at the wrong
 * address, or a page of zeros, is caught, not just a changed byte. Stateless,
 * so any offset can be generated or checked on its own (the host preads one
 * guest page and checks it without generating what comes before).
 *
 * Header-only; used by test_chrdev.c, sdrsa_fill.c (static, in the guest) and
 * by tests/vm (on the host).
 */
#ifndef SDRSA_GUEST_PATTERN_H
#define SDRSA_GUEST_PATTERN_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint64_t sdrsa_pattern_word(uint64_t seed, uint64_t idx)
{
	uint64_t z = seed + (idx + 1) * 0x9e3779b97f4a7c15ULL;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Fill buf with bytes [off, off + len) of the stream for seed. off and len
 * must be multiples of 8. */
static inline void sdrsa_pattern_fill(void *buf, size_t len, uint64_t seed, uint64_t off)
{
	unsigned char *p = buf;
	size_t i;

	for (i = 0; i < len / 8; i++) {
		uint64_t w = sdrsa_pattern_word(seed, off / 8 + i);

		memcpy(p + 8 * i, &w, 8); /* x86 only: little-endian on both sides */
	}
}

/* Return the offset within buf of the first byte that differs from bytes
 * [off, off + len) of the stream for seed, or -1 when all match. */
static inline long sdrsa_pattern_check(const void *buf, size_t len, uint64_t seed, uint64_t off)
{
	const unsigned char *p = buf;
	size_t i, j;

	for (i = 0; i < len / 8; i++) {
		uint64_t w = sdrsa_pattern_word(seed, off / 8 + i);

		if (memcmp(p + 8 * i, &w, 8) != 0) {
			for (j = 0; j < 8 && p[8 * i + j] == ((unsigned char *)&w)[j]; j++)
				;
			return (long)(8 * i + j);
		}
	}
	return -1;
}

#endif
