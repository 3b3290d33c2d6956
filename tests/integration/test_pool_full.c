/* SPDX-License-Identifier: MIT */
/*
 * PUT into a full pool: once every slot holds data, new pages get the entry
 * status POOL_FULL and are not stored, while every page stored before (the
 * victim's and the filler's own) stays intact: nothing is ever dropped or
 * overwritten to make room. Zero pages need no slot and are still accepted;
 * freeing makes room again.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define PAGE SDRSA_PAGE_SIZE
#define POOL_PAGES 64u

static struct h_server srv;
static struct h_victim victim;
static struct h_conn filler;
static uint64_t stored[POOL_PAGES];
static unsigned nstored;

#define FILL_SEED 0xf111

static int check_filler(void)
{
	uint8_t *buf = malloc((size_t)POOL_PAGES * PAGE);
	uint16_t st[POOL_PAGES];

	CHECK(buf);
	if (nstored) {
		CHECK(h_get(&filler, stored, nstored, buf, st) == 0);
		for (unsigned i = 0; i < nstored; i++) {
			CHECKM(st[i] == SDRSA_S_OK, "filler page 0x%llx: %s",
			       (unsigned long long)stored[i], sdrsa_status_name(st[i]));
			CHECK_OK(h_pattern_check(buf + (size_t)i * PAGE, FILL_SEED, stored[i]));
		}
	}
	free(buf);
	return H_PASS;
}

static int t_fill(void)
{
	struct sdrsa_stats s;
	unsigned victim_data = 0, refused = 0;
	uint64_t next = 0x100000;

	CHECKM(filler.welcome.pool_pages == POOL_PAGES, "pool_pages %llu, want %u",
	       (unsigned long long)filler.welcome.pool_pages, POOL_PAGES);
	for (unsigned i = 0; i < victim.n; i++)
		victim_data += !victim.zero[i];
	/* batches of 8 until a batch is refused entirely */
	for (int round = 0; round < 20; round++) {
		uint64_t a[8];
		uint16_t st[8];
		unsigned ok = 0;

		for (int i = 0; i < 8; i++)
			a[i] = next + (uint64_t)i * PAGE;
		next += 8 * PAGE;
		CHECK(h_put_pattern(&filler, a, 8, FILL_SEED, st) == 0);
		for (int i = 0; i < 8; i++) {
			CHECKM(st[i] == SDRSA_S_OK || st[i] == SDRSA_S_POOL_FULL, "entry %d: %s", i,
			       sdrsa_status_name(st[i]));
			if (st[i] == SDRSA_S_OK) {
				CHECKM(ok == (unsigned)i, "entry %d stored after a POOL_FULL", i);
				CHECK(nstored < POOL_PAGES);
				stored[nstored++] = a[i];
				ok++;
			} else {
				refused++;
			}
		}
		if (!ok)
			break;
	}
	CHECKM(victim_data + nstored == POOL_PAGES, "%u + %u pages stored in a pool of %u",
	       victim_data, nstored, POOL_PAGES);
	CHECK(refused >= 8);
	CHECK(h_stats(&filler, &s) == 0);
	CHECK(s.used_pages == POOL_PAGES);
	CHECK(s.pool_full >= refused);
	CHECK_OK(check_filler());
	CHECK_OK(h_victim_check(&srv, &victim));
	return H_PASS;
}

static int t_full_refuses(void)
{
	uint64_t a[4] = { 0x900000, 0x901000, 0x902000, 0x903000 };
	uint16_t st[4];
	uint8_t buf[4 * PAGE];

	CHECK(h_put_pattern(&filler, a, 4, 7, st) == 0);
	for (int i = 0; i < 4; i++)
		CHECKM(st[i] == SDRSA_S_POOL_FULL, "entry %d: %s", i, sdrsa_status_name(st[i]));
	CHECK(h_get(&filler, a, 4, buf, st) == 0);
	for (int i = 0; i < 4; i++)
		CHECK(st[i] == SDRSA_S_NOT_FOUND);
	/* another client is refused just the same */
	{
		struct h_conn other;
		CHECK(h_open(&srv, "other", NULL, &other) == 0);
		CHECK(h_put_pattern(&other, a, 1, 8, st) == 0);
		CHECK(st[0] == SDRSA_S_POOL_FULL);
		h_close(&other);
	}
	CHECK_OK(check_filler());
	CHECK_OK(h_victim_check(&srv, &victim));
	return H_PASS;
}

/* Overwriting a stored page needs no new slot; whatever the answer, the
 * page holds either the old or the new contents, never anything else. */
static int t_overwrite_when_full(void)
{
	uint64_t a = stored[0];
	uint16_t st;
	uint8_t buf[PAGE];

	CHECK(nstored > 0);
	CHECK(h_put_pattern(&filler, &a, 1, FILL_SEED + 1, &st) == 0);
	CHECK(st == SDRSA_S_OK || st == SDRSA_S_POOL_FULL);
	CHECK(h_get(&filler, &a, 1, buf, &st) == 0 && st == SDRSA_S_OK);
	if (h_pattern_check(buf, FILL_SEED + 1, a) == H_PASS) {
		/* put it back for check_filler() */
		CHECK(h_put_pattern(&filler, &a, 1, FILL_SEED, &st) == 0 && st == SDRSA_S_OK);
	} else {
		CHECK_OK(h_pattern_check(buf, FILL_SEED, a));
	}
	CHECK_OK(check_filler());
	CHECK_OK(h_victim_check(&srv, &victim));
	return H_PASS;
}

static int t_zero_page_when_full(void)
{
	uint64_t a = 0xa00000;
	const uint8_t *none[1] = { NULL };
	static const uint8_t zero[PAGE];
	const uint8_t *zp[1] = { zero };
	uint16_t st;
	uint8_t buf[PAGE];

	CHECK(h_put(&filler, &a, none, 1, &st) == 0);
	CHECKM(st == SDRSA_S_OK, "flagged zero page into a full pool: %s", sdrsa_status_name(st));
	a += PAGE;
	CHECK(h_put(&filler, &a, zp, 1, &st) == 0);
	CHECKM(st == SDRSA_S_OK, "zero page with data into a full pool: %s", sdrsa_status_name(st));
	memset(buf, 1, sizeof(buf));
	CHECK(h_get(&filler, &a, 1, buf, &st) == 0 && st == SDRSA_S_OK);
	CHECK(sdrsa_page_is_zero(buf));
	CHECK_OK(check_filler());
	CHECK_OK(h_victim_check(&srv, &victim));
	return H_PASS;
}

static int t_swap_when_full(void)
{
	struct sdrsa_hdr req, rep;
	uint8_t p[2 * SDRSA_ENTRY_SIZE + PAGE], *in = malloc(SDRSA_MAX_PAYLOAD);
	struct sdrsa_entry e0 = { .addr = 0xb00000, .len = PAGE }, e1 = { .addr = stored[1] }, r;
	uint16_t st;
	uint8_t buf[PAGE];

	CHECK(in && nstored > 1);
	h_pattern(p + 2 * SDRSA_ENTRY_SIZE, 3, e0.addr);
	e0.csum = sdrsa_page_csum(p + 2 * SDRSA_ENTRY_SIZE, e0.addr);
	sdrsa_entry_encode(&e0, p);
	sdrsa_entry_encode(&e1, p + SDRSA_ENTRY_SIZE);
	h_req(&filler, &req, SDRSA_OP_SWAP, 2, sizeof(p), p);
	CHECK(h_call(&filler, &req, p, &rep, in, SDRSA_MAX_PAYLOAD) == 0);
	CHECK(rep.status == SDRSA_S_OK && rep.count == 2);
	sdrsa_entry_decode(in, &r);
	CHECKM(r.status == SDRSA_S_POOL_FULL, "SWAP's put into a full pool: %s",
	       sdrsa_status_name(r.status));
	sdrsa_entry_decode(in + SDRSA_ENTRY_SIZE, &r);
	if (r.status == SDRSA_S_OK)
		CHECK_OK(h_pattern_check(in + 2 * SDRSA_ENTRY_SIZE, FILL_SEED, stored[1]));
	CHECK(h_get(&filler, &e0.addr, 1, buf, &st) == 0 && st == SDRSA_S_NOT_FOUND);
	free(in);
	CHECK_OK(check_filler());
	CHECK_OK(h_victim_check(&srv, &victim));
	return H_PASS;
}

static int t_free_makes_room(void)
{
	uint64_t a[5] = { 0xc00000, 0xc01000, 0xc02000, 0xc03000, 0xc04000 };
	uint16_t st[5];
	uint8_t buf[5 * PAGE];

	CHECK(nstored >= 4);
	CHECK(h_free(&filler, &stored[nstored - 4], 4, st) == 0);
	nstored -= 4;
	CHECK(h_put_pattern(&filler, a, 5, 9, st) == 0);
	for (int i = 0; i < 4; i++)
		CHECKM(st[i] == SDRSA_S_OK, "after FREE, entry %d: %s", i,
		       sdrsa_status_name(st[i]));
	CHECK(st[4] == SDRSA_S_POOL_FULL);
	CHECK(h_get(&filler, a, 5, buf, st) == 0);
	for (int i = 0; i < 4; i++) {
		CHECK(st[i] == SDRSA_S_OK);
		CHECK_OK(h_pattern_check(buf + (size_t)i * PAGE, 9, a[i]));
	}
	CHECK(st[4] == SDRSA_S_NOT_FOUND);
	CHECK_OK(check_filler());
	CHECK_OK(h_victim_check(&srv, &victim));
	return H_PASS;
}

int main(int argc, char **argv)
{
	h_init(argc, argv);
	if (h_server_start_tcp(&srv, "256K", NULL)) {
		h_log("cannot start the memory server");
		return 1;
	}
	if (h_victim_setup(&srv, &victim, "victim", NULL) != H_PASS)
		return 1;
	if (h_open(&srv, "filler", NULL, &filler)) {
		h_log("filler cannot connect");
		return 1;
	}
	h_run("fill", t_fill);
	h_run("full_refuses", t_full_refuses);
	h_run("overwrite_when_full", t_overwrite_when_full);
	h_run("zero_page_when_full", t_zero_page_when_full);
	h_run("swap_when_full", t_swap_when_full);
	h_run("free_makes_room", t_free_makes_room);
	h_close(&filler);
	h_victim_close(&victim);
	return h_finish();
}
