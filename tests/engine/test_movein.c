// SPDX-License-Identifier: MIT
/*
 * Move-in install and dirty tracking: pages fetched ahead are installed by
 * UFFDIO_MOVE, which maps them writable (no uffd-wp bit), so a write to
 * one raises no WP fault. The engine keeps the checksum of each page as
 * fetched and checks it when the page leaves the mapping: a page that
 * differs is dirty and must be sent, not dropped.
 *
 * SDRSA_TEST_FAULT=movein-write@20 makes the engine itself write a marker
 * into the last 8 bytes of the first page of each of the first 20 runs it
 * moves in, right after the move: a write that raises no fault, every
 * time, in the first pass only. Three
 * sequential passes over a region 16 times the budget (so every page is
 * evicted between passes, in-memory store): every word must hold its
 * pattern, and a page once seen with the marker must show it in every later
 * pass (the marked page was sent at eviction and fetched back). Without the
 * check the marked page is dropped as clean and comes back without it.
 * In the second pass the test itself rewrites the first word of every
 * seventh page right after reading it, long after its move-in: a write with
 * no fault at all, which must be found in the same way and read back in
 * the third pass.
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

	static uint8_t marked[NPAGES], rewritten[NPAGES];
	unsigned nmarked = 0, kept = 0, nrewritten = 0;
	for (int pass = 0; pass < 3; pass++) {
		for (unsigned i = 0; i < NPAGES; i++) {
			uint64_t *p = mem + (size_t)i * WORDS;
			for (unsigned w = 0; w + 1 < WORDS; w++)
				if (p[w] != (w == 0 && rewritten[i] ? ~pattern(i, 0) : pattern(i, w))) {
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
					"move-in and the page's eviction was lost\n",
					pass, i, (unsigned long long)last,
					marked[i] ? "the marker" : "the pattern or the marker");
				return T_FAIL;
			}
			if (pass == 1 && i % 7 == 3 && !holes) {
				p[0] = ~pattern(i, 0);
				rewritten[i] = 1;
				nrewritten++;
			}
		}
	}
	uint64_t moved, raced;
	engine_movein_counts(e, &moved, &raced);
	struct sdrsa_engine_stats st;
	CHECK(sdrsa_engine_stats(e, &st) == 0);
	fprintf(stderr,
		"moved in %llu pages, %llu found written; %u pages marked, %u marks "
		"read back after eviction, %u rewritten; %llu pages out, %llu prefetched\n",
		(unsigned long long)moved, (unsigned long long)raced, nmarked, kept, nrewritten,
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
		/* Each found dirty when it left; so were the rewritten pages
		 * that had been moved in (about a quarter of them here: with
		 * this small budget most pages fetched ahead find no spare
		 * and are copied in write-protected, and their writes fault). */
		CHECK(raced >= nmarked + 10);
		/* Every other page moved in verified as clean: the checksum kept
		 * is the data's (at most one racing write per marked page). */
		CHECK(raced <= nmarked + nrewritten + 20);
	}
	sdrsa_region_free(rg);
	sdrsa_engine_free(e);
	if (server_bin)
		t_server_stop(&srv);
	return T_PASS;
}
