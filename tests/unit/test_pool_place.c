// SPDX-License-Identifier: MIT
/*
 * The pool's placement (store_pool_rank: weighted rendezvous hashing) and
 * its server list parser (engine/poolconf.c): shares follow the weights,
 * the order is deterministic, a server taken out moves only its own keys,
 * and every bad pool file line is refused with its line number.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine/poolconf.h"
#include "engine/store.h"

#define NKEYS 200000

static void rank_follows_weights(void **state)
{
	(void)state;
	const double w[4] = {1, 2, 3, 4};
	unsigned first[4] = {0};
	uint8_t order[4];
	for (uint64_t k = 0; k < NKEYS; k++) {
		store_pool_rank(w, 4, k << 12, order);
		first[order[0]]++;
		/* A permutation: every server once. */
		unsigned seen = 0;
		for (int i = 0; i < 4; i++)
			seen |= 1u << order[i];
		assert_int_equal(seen, 0xf);
	}
	for (int i = 0; i < 4; i++) {
		double share = (double)first[i] / NKEYS, want = w[i] / 10.0;
		assert_true(share > want * 0.95 && share < want * 1.05);
	}
}

static void rank_is_deterministic(void **state)
{
	(void)state;
	const double w[3] = {1, 1, 1};
	uint8_t a[3], b[3];
	for (uint64_t k = 0; k < 1000; k++) {
		store_pool_rank(w, 3, k << 12, a);
		store_pool_rank(w, 3, k << 12, b);
		assert_memory_equal(a, b, 3);
	}
}

/* A server with weight 0 (out) comes last, and the other keys keep their
 * first choice: only the leaving server's keys move. */
static void removal_moves_only_its_keys(void **state)
{
	(void)state;
	const double all[4] = {1, 1, 1, 1}, without3[4] = {1, 1, 1, 0};
	uint8_t a[4], b[4];
	unsigned moved = 0;
	for (uint64_t k = 0; k < 20000; k++) {
		store_pool_rank(all, 4, k << 12, a);
		store_pool_rank(without3, 4, k << 12, b);
		assert_int_equal(b[3], 3);
		if (a[0] != 3)
			assert_int_equal(a[0], b[0]);
		else
			moved++;
	}
	assert_true(moved > 20000 / 4 * 0.9 && moved < 20000 / 4 * 1.1);
}

static char g_dir[] = "/tmp/sdrsa-poolconf-XXXXXX";

static const char *write_file(const char *name, const char *text)
{
	static char path[256];
	snprintf(path, sizeof(path), "%s/%s", g_dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

static void conf_good_file(void **state)
{
	(void)state;
	struct poolconf c = {0};
	char err[512] = "";
	const char *p = write_file("good.conf", "# the pool\n\n"
						"10.0.0.1:2223 weight=3\n"
						"  10.0.0.2   # default weight\n"
						"unix:/run/sdrsa/m.sock weight=1\n");
	assert_int_equal(poolconf_load(&c, p, "vm1", err, sizeof(err)), 0);
	assert_int_equal(c.n, 3);
	assert_string_equal(c.addr[0], "10.0.0.1:2223");
	assert_int_equal(c.weight[0], 3);
	assert_string_equal(c.addr[1], "10.0.0.2");
	assert_int_equal(c.weight[1], 0);
	assert_int_equal(c.has_key[2], 0);
	/* Through SDRSA_POOL and back. */
	c.has_key[1] = 1;
	memset(c.key[1], 0xab, sizeof(c.key[1]));
	char *enc = poolconf_encode(&c);
	assert_non_null(enc);
	struct poolconf d;
	assert_int_equal(poolconf_decode(&d, enc), 0);
	free(enc);
	assert_int_equal(d.n, 3);
	assert_string_equal(d.addr[2], "unix:/run/sdrsa/m.sock");
	assert_int_equal(d.weight[0], 3);
	assert_int_equal(d.has_key[1], 1);
	assert_memory_equal(d.key[1], c.key[1], SDRSA_KEY_SIZE);
	assert_int_equal(d.has_key[0], 0);
}

static void expect_error(const char *text, const char *want)
{
	struct poolconf c = {0};
	char err[512] = "";
	const char *p = write_file("bad.conf", text);
	assert_true(poolconf_load(&c, p, "vm1", err, sizeof(err)) < 0);
	if (!strstr(err, want)) {
		fprintf(stderr, "error '%s' does not contain '%s'\n", err, want);
		fail();
	}
}

static void conf_bad_lines(void **state)
{
	(void)state;
	expect_error("10.0.0.1\n10.0.0.2 weight=abc\n", "bad.conf line 2: weight 'abc'");
	expect_error("10.0.0.1 weight=0\n", "line 1: weight '0' is not a whole number");
	expect_error("# x\n\n10.0.0.1 color=red\n", "line 3: unknown field 'color=red'");
	expect_error("10.0.0.1\n10.0.0.1\n", "line 2: server 10.0.0.1 is listed twice");
	expect_error("[::1\n", "line 1: '[::1' is not a server address");
	expect_error("10.0.0.1 key-file=/nonexistent/keys\n",
		     "line 1: cannot load the key of 'vm1' from /nonexistent/keys");
	expect_error("# only comments\n\n", "no server listed");
	struct poolconf c = {0};
	char err[256];
	assert_true(poolconf_load(&c, "/nonexistent/pool.conf", "x", err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "/nonexistent/pool.conf"));
}

static void conf_too_many(void **state)
{
	(void)state;
	char text[4096] = "";
	for (int i = 0; i < POOLCONF_MAX + 1; i++)
		snprintf(text + strlen(text), sizeof(text) - strlen(text), "10.0.1.%d\n", i + 1);
	expect_error(text, "line 33: more than 32 servers");
}

int main(void)
{
	if (!mkdtemp(g_dir))
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(rank_follows_weights),
		cmocka_unit_test(rank_is_deterministic),
		cmocka_unit_test(removal_moves_only_its_keys),
		cmocka_unit_test(conf_good_file),
		cmocka_unit_test(conf_bad_lines),
		cmocka_unit_test(conf_too_many),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", g_dir);
	if (system(cmd)) {
		/* left behind in /tmp */
	}
	return rc;
}
