/* SPDX-License-Identifier: MIT */
/*
 * Pattern-page helpers over libsdrsa (include/sdrsa/client.h), the
 * counterpart of h_put_pattern()/h_get() in harness.h for tests that go
 * through the client library instead of raw frames.
 */
#ifndef SDRSA_TEST_HARNESS_LIB_H
#define SDRSA_TEST_HARNESS_LIB_H

#include <stddef.h>
#include <stdint.h>

#include <sdrsa/client.h>

/* Connect to addr as name (key may be NULL) with timeout_ms; 0 or -errno. */
int h_lib_connect(const char *addr, const char *name, const uint8_t *key, int timeout_ms,
		  struct sdrsa_client **ret);
/* sdrsa_put_many of pattern pages (seed) at addrs; every page must succeed.
 * Returns 0 or the first failure (-errno). */
int h_lib_put_pattern(struct sdrsa_client *c, const uint64_t *addrs, size_t n, uint64_t seed);
/* sdrsa_get_many of addrs, each compared with its pattern page. Returns
 * H_PASS or H_FAIL (logging the first difference or error). */
int h_lib_check_pattern(struct sdrsa_client *c, const uint64_t *addrs, size_t n, uint64_t seed);

#endif
