// SPDX-License-Identifier: MIT
/*
 * fork() against a real memory-server: the child reads the pages its parent
 * holds remotely and sees them as they were at fork, even though the parent
 * rewrites (and so evicts again) and drops them before the child reads; the
 * child's writes stay its own; the parent's keys the child may read are
 * freed once the child is gone; at the end nothing is left on the server.
 * The test drives the engine's fork hooks as libsdrsa-preload.so does.
 *
 * Usage: test_fork SERVER_BIN
 */
#include <sys/mman.h>

#include <sdrsa/client.h>
#include <sdrsa/engine.h>

#include "common/util.h"
#include "engine/engine_internal.h"
#include "etest.h"

#define PG 4096u
#define BUDGET_PAGES 256u
#define NPAGES (8 * BUDGET_PAGES)

static uint64_t ns_pages(const char *addr)
{
	struct sdrsa_client_config cc = {.address = addr, .name = "forktest"};
	struct sdrsa_client *c;
	CHECK(sdrsa_client_connect(&cc, &c) == 0);
	struct sdrsa_stats s;
	CHECK(sdrsa_stats(c, &s) == 0);
	sdrsa_client_free(c);
	return s.ns_pages;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return T_FAIL;
	t_require_uffd();
	struct t_server srv;
	if (t_server_start(argv[1], "64M", &srv) < 0)
		return T_FAIL;
	struct sdrsa_engine_config cfg = {
		.server = srv.addr,
		.name = "forktest",
		.local_bytes = BUDGET_PAGES * PG,
	};
	struct sdrsa_engine *e;
	int r = sdrsa_engine_new(&cfg, &e);
	if (r < 0) {
		t_server_stop(&srv);
		return r == -ENOSYS ? t_skip_status() : T_FAIL;
	}
	struct sdrsa_region *rg;
	CHECK(sdrsa_region_new(e, NPAGES * PG, &rg) == 0);
	unsigned char *m = sdrsa_region_addr(rg);
	for (unsigned i = 0; i < NPAGES; i++)
		t_fill(m + (size_t)i * PG, i, 1);

	int go[2];
	CHECK(pipe(go) == 0);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		close(go[1]);
		char b;
		if (read(go[0], &b, 1) != 1)
			_exit(5);
		/* The parent has rewritten and dropped pages by now. */
		for (unsigned i = 0; i < NPAGES; i++)
			if (t_check(m + (size_t)i * PG, i, 1) != 0) {
				const uint64_t *w = (const uint64_t *)(m + (size_t)i * PG);
				fprintf(stderr, "child: page %u: version %llu, want 1\n", i,
					(unsigned long long)w[1]);
				_exit(2);
			}
		for (unsigned i = 0; i < NPAGES; i++)
			t_fill(m + (size_t)i * PG, i, 7);
		for (unsigned i = 0; i < NPAGES; i++)
			if (t_check(m + (size_t)i * PG, i, 7) != 0)
				_exit(3);
		_exit(0);
	}
	sdrsa_engine_forked(pid);
	close(go[0]);
	/* Rewrite everything (evicted again under new keys: the old ones are
	 * the child's), then drop the last quarter (its frees wait). */
	for (unsigned i = 0; i < NPAGES; i++)
		t_fill(m + (size_t)i * PG, i, 2);
	for (unsigned i = 0; i < NPAGES; i++)
		CHECK(t_check(m + (size_t)i * PG, i, 2) == 0);
	CHECK(madvise(m + 3 * NPAGES / 4 * PG, NPAGES / 4 * PG, MADV_DONTNEED) == 0);
	uint64_t during = ns_pages(srv.addr);
	CHECK(write(go[1], "g", 1) == 1);
	int status;
	CHECK(waitpid(pid, &status, 0) == pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fprintf(stderr, "child status %#x\n", status);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	for (unsigned i = 0; i < 3 * NPAGES / 4; i++)
		CHECK(t_check(m + (size_t)i * PG, i, 2) == 0);
	for (unsigned i = 3 * NPAGES / 4; i < NPAGES; i++)
		CHECK(t_check(m + (size_t)i * PG, i, 0) == 0);
	/* The child is gone: the keys kept for it are freed (the handler
	 * notices the child's exit). */
	uint64_t after = during;
	for (int i = 0; i < 100; i++) {
		after = ns_pages(srv.addr);
		if (after < during - NPAGES / 2)
			break;
		usleep(20000);
	}
	fprintf(stderr, "server pages: %llu while the child lived, %llu after\n",
		(unsigned long long)during, (unsigned long long)after);
	CHECK(during > NPAGES);  /* old and new versions */
	CHECK(after < NPAGES);   /* only the parent's */
	sdrsa_region_free(rg);
	sdrsa_engine_free(e);
	CHECK_EQ(ns_pages(srv.addr), 0);
	t_server_stop(&srv);
	return T_PASS;
}
