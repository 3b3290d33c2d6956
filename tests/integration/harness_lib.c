/* SPDX-License-Identifier: MIT */
/* Pattern-page helpers over libsdrsa; see harness_lib.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "harness_lib.h"

static void lib_log(void *userdata, int level, const char *msg)
{
	(void)userdata;
	if (level <= SDRSA_LOG_WARN)
		h_log("libsdrsa: %s", msg);
}

int h_lib_connect(const char *addr, const char *name, const uint8_t *key, int timeout_ms,
		  struct sdrsa_client **ret)
{
	struct sdrsa_client_config cfg = {
		.address = addr,
		.name = name,
		.key = key,
		.timeout_ms = timeout_ms,
		.log = lib_log,
	};

	return sdrsa_client_connect(&cfg, ret);
}

int h_lib_put_pattern(struct sdrsa_client *c, const uint64_t *addrs, size_t n, uint64_t seed)
{
	uint8_t *buf = malloc(n * SDRSA_PAGE_SIZE + 1);
	const void **pages = calloc(n + 1, sizeof(*pages));
	int *res = malloc(n * sizeof(*res) + 1);
	int rc = -ENOMEM;

	if (buf && pages && res) {
		for (size_t i = 0; i < n; i++) {
			h_pattern(buf + i * SDRSA_PAGE_SIZE, seed, addrs[i]);
			pages[i] = buf + i * SDRSA_PAGE_SIZE;
			res[i] = 1;
		}
		rc = sdrsa_put_many(c, addrs, pages, n, res);
		for (size_t i = 0; rc == 0 && i < n; i++)
			if (res[i] != 0) {
				h_log("put_many returned 0 but page %zu has result %d", i, res[i]);
				rc = -EPROTO;
			}
	}
	free(buf);
	free(pages);
	free(res);
	return rc;
}

int h_lib_check_pattern(struct sdrsa_client *c, const uint64_t *addrs, size_t n, uint64_t seed)
{
	uint8_t *buf = malloc(n * SDRSA_PAGE_SIZE + 1);
	void **pages = calloc(n + 1, sizeof(*pages));
	int *res = malloc(n * sizeof(*res) + 1);
	int ret = H_FAIL, rc;

	if (!buf || !pages || !res)
		goto out;
	memset(buf, 0xee, n * SDRSA_PAGE_SIZE);
	for (size_t i = 0; i < n; i++) {
		pages[i] = buf + i * SDRSA_PAGE_SIZE;
		res[i] = 1;
	}
	rc = sdrsa_get_many(c, addrs, pages, n, res);
	if (rc) {
		h_log("get_many of %zu pages: %s", n, strerror(-rc));
		goto out;
	}
	ret = H_PASS;
	for (size_t i = 0; i < n && ret == H_PASS; i++) {
		if (res[i] != 0) {
			h_log("get_many returned 0 but page %zu has result %d", i, res[i]);
			ret = H_FAIL;
		} else {
			ret = h_pattern_check(buf + i * SDRSA_PAGE_SIZE, seed, addrs[i]);
		}
	}
out:
	free(buf);
	free(pages);
	free(res);
	return ret;
}
