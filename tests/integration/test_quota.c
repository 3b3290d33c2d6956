/* SPDX-License-Identifier: MIT */
/*
 * Per-client quotas (-q / --max-client-pages): a client stores at most N
 * pages; the next new page gets QUOTA and is not stored; other clients are
 * unaffected; freeing gives room back; every connection under the same name
 * shares the one quota. Pages stored before stay intact throughout.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define PAGE SDRSA_PAGE_SIZE
#define QUOTA 16u

static struct h_server srv;
static struct h_victim victim;
static struct h_conn greedy;
static uint64_t stored[QUOTA + 8];
static unsigned nstored;

#define SEED 0x9107

static int check_stored(struct h_conn *c)
{
	uint8_t buf[(QUOTA + 8) * PAGE];
	uint16_t st[QUOTA + 8];

	CHECK(h_get(c, stored, nstored, buf, st) == 0);
	for (unsigned i = 0; i < nstored; i++) {
		CHECK(st[i] == SDRSA_S_OK);
		CHECK_OK(h_pattern_check(buf + (size_t)i * PAGE, SEED, stored[i]));
	}
	return H_PASS;
}

static int t_welcome_quota(void)
{
	struct sdrsa_stats s;

	CHECK(greedy.welcome.quota_pages == QUOTA);
	CHECK(h_stats(&greedy, &s) == 0);
	CHECK(s.ns_quota == QUOTA);
	CHECK(s.ns_pages == 0);
	return H_PASS;
}

static int t_reach_quota(void)
{
	uint64_t a[12];
	uint16_t st[12];
	struct sdrsa_stats s;

	/* 12 in one frame fit */
	for (int i = 0; i < 12; i++)
		a[i] = 0x10000 + (uint64_t)i * PAGE;
	CHECK(h_put_pattern(&greedy, a, 12, SEED, st) == 0);
	for (int i = 0; i < 12; i++) {
		CHECK(st[i] == SDRSA_S_OK);
		stored[nstored++] = a[i];
	}
	/* a frame of 8 crosses the quota: each entry is stored or refused */
	for (int i = 0; i < 8; i++)
		a[i] = 0x20000 + (uint64_t)i * PAGE;
	CHECK(h_put_pattern(&greedy, a, 8, SEED, st) == 0);
	for (int i = 0; i < 8; i++) {
		uint16_t g;
		uint8_t buf[PAGE];
		CHECKM(st[i] == SDRSA_S_OK || st[i] == SDRSA_S_QUOTA, "entry %d: %s", i,
		       sdrsa_status_name(st[i]));
		CHECK(h_get(&greedy, &a[i], 1, buf, &g) == 0);
		if (st[i] == SDRSA_S_OK) {
			CHECK(g == SDRSA_S_OK);
			stored[nstored++] = a[i];
		} else {
			CHECKM(g == SDRSA_S_NOT_FOUND, "refused page 0x%llx was stored",
			       (unsigned long long)a[i]);
		}
	}
	CHECK(nstored <= QUOTA);
	/* then one at a time until refused: exactly QUOTA pages in all */
	for (uint64_t addr = 0x30000; nstored < QUOTA + 4; addr += PAGE) {
		CHECK(h_put_pattern(&greedy, &addr, 1, SEED, st) == 0);
		if (st[0] == SDRSA_S_QUOTA)
			break;
		CHECKM(st[0] == SDRSA_S_OK, "%s", sdrsa_status_name(st[0]));
		stored[nstored++] = addr;
	}
	CHECKM(nstored == QUOTA, "%u pages stored under a quota of %u", nstored, QUOTA);
	CHECK(h_stats(&greedy, &s) == 0);
	CHECK(s.ns_pages == QUOTA);
	CHECK(s.quota_refused >= 1);
	CHECK_OK(check_stored(&greedy));
	CHECK_OK(h_victim_check(&srv, &victim));
	return H_PASS;
}

static int t_at_quota(void)
{
	struct h_conn second;
	uint64_t a = 0x40000;
	uint16_t st;
	uint8_t buf[PAGE];

	/* a new page is refused */
	CHECK(h_put_pattern(&greedy, &a, 1, SEED, &st) == 0);
	CHECK(st == SDRSA_S_QUOTA);
	/* from a second connection under the same name too */
	CHECK(h_open(&srv, "greedy", NULL, &second) == 0);
	CHECK(second.welcome.quota_pages == QUOTA);
	CHECK(h_put_pattern(&second, &a, 1, SEED, &st) == 0);
	CHECKM(st == SDRSA_S_QUOTA, "second connection of the same client: %s",
	       sdrsa_status_name(st));
	h_close(&second);
	/* overwriting a page already counted takes nothing more; whatever the
	 * answer, the page holds the old or the new contents */
	a = stored[0];
	CHECK(h_put_pattern(&greedy, &a, 1, SEED + 1, &st) == 0);
	CHECK(st == SDRSA_S_OK || st == SDRSA_S_QUOTA);
	CHECK(h_get(&greedy, &a, 1, buf, &st) == 0 && st == SDRSA_S_OK);
	if (h_pattern_check(buf, SEED + 1, a) == H_PASS)
		CHECK(h_put_pattern(&greedy, &a, 1, SEED, &st) == 0 && st == SDRSA_S_OK);
	else
		CHECK_OK(h_pattern_check(buf, SEED, a));
	CHECK_OK(check_stored(&greedy));
	CHECK_OK(h_victim_check(&srv, &victim));
	return H_PASS;
}

static int t_others_unaffected(void)
{
	struct h_conn other;
	uint64_t a[QUOTA];
	uint16_t st[QUOTA];
	uint8_t buf[QUOTA * PAGE];

	CHECK(h_open(&srv, "modest", NULL, &other) == 0);
	for (unsigned i = 0; i < QUOTA; i++)
		a[i] = 0x10000 + (uint64_t)i * PAGE;
	CHECK(h_put_pattern(&other, a, QUOTA, 77, st) == 0);
	for (unsigned i = 0; i < QUOTA; i++)
		CHECKM(st[i] == SDRSA_S_OK, "another client, entry %u: %s", i,
		       sdrsa_status_name(st[i]));
	CHECK(h_get(&other, a, QUOTA, buf, st) == 0);
	for (unsigned i = 0; i < QUOTA; i++) {
		CHECK(st[i] == SDRSA_S_OK);
		CHECK_OK(h_pattern_check(buf + (size_t)i * PAGE, 77, a[i]));
	}
	h_close(&other);
	CHECK_OK(check_stored(&greedy));
	return H_PASS;
}

static int t_free_gives_room(void)
{
	uint64_t a[3] = { 0x50000, 0x51000, 0x52000 };
	uint16_t st[3];

	CHECK(h_free(&greedy, &stored[nstored - 2], 2, st) == 0);
	nstored -= 2;
	CHECK(h_put_pattern(&greedy, a, 3, SEED, st) == 0);
	CHECK(st[0] == SDRSA_S_OK && st[1] == SDRSA_S_OK);
	CHECKM(st[2] == SDRSA_S_QUOTA, "third page after freeing two: %s",
	       sdrsa_status_name(st[2]));
	stored[nstored++] = a[0];
	stored[nstored++] = a[1];
	CHECK_OK(check_stored(&greedy));
	CHECK_OK(h_victim_check(&srv, &victim));
	return H_PASS;
}

int main(int argc, char **argv)
{
	static const char *const extra[] = { "-q", "16", NULL };

	h_init(argc, argv);
	if (h_server_start_tcp(&srv, "4M", extra)) {
		h_log("cannot start the memory server");
		return 1;
	}
	if (h_victim_setup_n(&srv, &victim, "victim", NULL, 12) != H_PASS)
		return 1;
	if (h_open(&srv, "greedy", NULL, &greedy)) {
		h_log("cannot connect");
		return 1;
	}
	h_run("welcome_quota", t_welcome_quota);
	h_run("reach_quota", t_reach_quota);
	h_run("at_quota", t_at_quota);
	h_run("others_unaffected", t_others_unaffected);
	h_run("free_gives_room", t_free_gives_room);
	h_close(&greedy);
	h_victim_close(&victim);
	return h_finish();
}
