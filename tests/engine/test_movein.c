// SPDX-License-Identifier: MIT
/*
 * Move-in install and dirty tracking: pages fetched ahead are installed by
 * UFFDIO_MOVE, which leaves them writable (no uffd-wp bit) until the engine
 * write-protects them, so a write by another thread in that window raises
 * no WP fault. The engine keeps the checksum of each page as fetched and
 * checks it when the page leaves the mapping: a page that differs is dirty
 * and must be sent, not dropped.
 *
 * SDRSA_TEST_FAULT=movein-write@20 makes the engine itself write a marker
 * into the last 8 bytes of the first page of each of the first 20 runs it
 * moves in, between the move and the write protection: the racing write,
 * every time, in the first pass only. Three
 * sequential passes over a region 16 times the budget (so every page is
 * evicted between passes, in-memory store): every word must hold its
 * pattern, and a page once seen with the marker must show it in every later
 * pass (the marked page was sent at eviction and fetched back). Without the
 * check the marked page is dropped as clean and comes back without it.
 *
 * test_movein SERVER_BIN runs the same against a real memory-server, where
 * the checksum kept is the one libsdrsa verified on receipt (not hashed
 * again): the marked pages must still be found, and the unmarked ones must
 * verify as clean (a checksum kept wrong would make every page dirty).
 *
 * test_movein --spare-hole: SDRSA_TEST_FAULT=spare-hole@50 drops the page
 * of a spare in each of the first 50 fetches, behind the engine's
 * bookkeeping: the check before each fetch (mincore, then pagemap) must
 * find all 50 and receive those pages elsewhere. Without it the handler
 * receives into an empty staging slot, faults on its own userfaultfd and
 * hangs (the alarm below fails the test).
 */
#include <stdlib.h>

#include <sdrsa/engine.h>

#include "engine/engine_internal.h"
#include "engine/store.h"
#include "etest.h"

#define PG 4096u
#define BUDGET_PAGES 256u
#define NPAGES (16 * BUDGET_PAGES)
#define WORDS (PG / 8)
#define MARK 0x5344525341574e44ull /* MOVEIN_WRITE_MARK in engine.c */

static uint64_t pattern(unsigned page, unsigned word)
{
	return (uint64_t)page * 1000003u + word + 1;
}

#define HOLES 50
#define STR(x) STR_(x)
#define STR_(x) #x

int main(int argc, char **argv)
{
	t_require_uffd();
	int holes = argc > 1 && !strcmp(argv[1], "--spare-hole");
	const char *server_bin = argc > 1 && !holes ? argv[1] : NULL;
	setenv("SDRSA_TEST_FAULT", holes ? "spare-hole@" STR(HOLES) : "movein-write@20", 1);
	alarm(60); /* a hang (a receive into an empty staging slot) fails */
	struct sdrsa_engine_config cfg = {
		.local_bytes = BUDGET_PAGES * PG,
		.policy = SDRSA_POLICY_CLOCK,
		.name = "movein",
	};
	struct t_server srv = {0};
	struct sdrsa_engine *e;
	if (server_bin) {
		CHECK(t_server_start(server_bin, "64M", &srv) == 0);
		cfg.server = srv.addr;
		CHECK(sdrsa_engine_new(&cfg, &e) == 0);
	} else {
		struct store *s;
		CHECK(store_mem_new(&s) == 0);
		CHECK(engine_new_with_store(&cfg, s, &e) == 0);
	}
	struct sdrsa_region *rg;
	CHECK(sdrsa_region_new(e, (size_t)NPAGES * PG, &rg) == 0);
	uint64_t *mem = sdrsa_region_addr(rg);

	for (unsigned i = 0; i < NPAGES; i++)
		for (unsigned w = 0; w < WORDS; w++)
			mem[(size_t)i * WORDS + w] = pattern(i, w);

	static uint8_t marked[NPAGES];
	unsigned nmarked = 0, kept = 0;
	for (int pass = 0; pass < 3; pass++) {
		for (unsigned i = 0; i < NPAGES; i++) {
			const uint64_t *p = mem + (size_t)i * WORDS;
			for (unsigned w = 0; w + 1 < WORDS; w++)
				if (p[w] != pattern(i, w)) {
					fprintf(stderr, "pass %d page %u word %u: %#llx, want %#llx\n",
						pass, i, w, (unsigned long long)p[w],
						(unsigned long long)pattern(i, w));
					return T_FAIL;
				}
			uint64_t last = p[WORDS - 1];
			if (last == MARK) {
				kept += marked[i];
				nmarked += !marked[i];
				marked[i] = 1;
			} else if (marked[i] || last != pattern(i, WORDS - 1)) {
				fprintf(stderr,
					"pass %d page %u: last word %#llx, want %s: a write between "
					"move-in and write protection was lost\n",
					pass, i, (unsigned long long)last,
					marked[i] ? "the marker" : "the pattern or the marker");
				return T_FAIL;
			}
		}
	}
	uint64_t moved, raced;
	engine_movein_counts(e, &moved, &raced);
	struct sdrsa_engine_stats st;
	CHECK(sdrsa_engine_stats(e, &st) == 0);
	fprintf(stderr,
		"moved in %llu pages, %llu written in the window; %u pages marked, %u marks "
		"read back after eviction; %llu pages out, %llu prefetched\n",
		(unsigned long long)moved, (unsigned long long)raced, nmarked, kept,
		(unsigned long long)st.pages_out, (unsigned long long)st.pages_prefetched);
	CHECK(moved > NPAGES / 2); /* move-in was used */
	if (holes) {
		uint64_t found = engine_spare_holes(e);
		fprintf(stderr, "%llu spares found without a page\n", (unsigned long long)found);
		CHECK_EQ(found, HOLES);
		CHECK_EQ(nmarked, 0);
	} else {
		CHECK(nmarked > 10);	 /* the window write happened */
		CHECK(kept >= nmarked);	 /* and came back after eviction */
		CHECK(raced >= nmarked); /* each found dirty when it left */
		/* Every other page moved in verified as clean: the checksum kept
		 * is the data's (at most one racing write per marked page). */
		CHECK(raced <= nmarked + 20);
	}
	sdrsa_region_free(rg);
	sdrsa_engine_free(e);
	if (server_bin)
		t_server_stop(&srv);
	return T_PASS;
}
