// SPDX-License-Identifier: MIT
/*
 * Engine logic against the in-memory store (no network): zero fill without
 * traffic, eviction and refetch, dirty tracking (clean pages are not sent
 * again), the program's madvise(DONTNEED), mremap and munmap, fork, and the
 * loud failure when the store dies. One process per scenario where the
 * scenario may kill it.
 */
#include <setjmp.h>
#include <sys/mman.h>

#include <sdrsa/engine.h>

#include "etest_mem.h"

#define PG 4096u
#define BUDGET_PAGES 256u
#define NPAGES (4 * BUDGET_PAGES)

static struct sdrsa_engine *mk(struct store **sp, enum sdrsa_engine_policy pol)
{
	struct sdrsa_engine_config cfg = {
		.local_bytes = BUDGET_PAGES * PG,
		.policy = pol,
	};
	return t_engine_mem(&cfg, sp);
}

static void st(struct sdrsa_engine *e, struct sdrsa_engine_stats *s)
{
	CHECK(sdrsa_engine_stats(e, s) == 0);
}

static void test_zero_and_dirty(void)
{
	struct store *s;
	struct sdrsa_engine *e = mk(&s, SDRSA_POLICY_CLOCK);
	struct sdrsa_region *rg;
	CHECK(sdrsa_region_new(e, NPAGES * PG, &rg) == 0);
	unsigned char *m = sdrsa_region_addr(rg);
	struct sdrsa_engine_stats a, b;

	/* Reading fresh pages: zeros, no traffic, nothing stored. */
	for (unsigned i = 0; i < NPAGES; i++)
		CHECK(t_check(m + (size_t)i * PG, i, 0) == 0);
	st(e, &a);
	CHECK_EQ(a.faults_zero, NPAGES);
	CHECK_EQ(a.bytes_sent, 0);
	CHECK_EQ(store_mem_count(s), 0);
	CHECK(a.resident + a.staged <= BUDGET_PAGES);

	/* Write everything: pages go out. */
	for (unsigned i = 0; i < NPAGES; i++)
		t_fill(m + (size_t)i * PG, i, 1);
	for (unsigned i = 0; i < NPAGES; i++)
		CHECK(t_check(m + (size_t)i * PG, i, 1) == 0);
	st(e, &a);
	CHECK(a.pages_out >= NPAGES - BUDGET_PAGES);
	CHECK(a.faults_remote > 0);
	CHECK(a.resident + a.staged <= BUDGET_PAGES);

	/* One more read pass makes every page clean; after that, read passes
	 * send nothing. */
	for (unsigned i = 0; i < NPAGES; i++)
		CHECK(t_check(m + (size_t)i * PG, i, 1) == 0);
	st(e, &a);
	for (unsigned i = 0; i < NPAGES; i++)
		CHECK(t_check(m + (size_t)i * PG, i, 1) == 0);
	st(e, &b);
	CHECK_EQ(b.pages_out, a.pages_out);
	CHECK(b.pages_dropped > a.pages_dropped);
	CHECK_EQ(b.dirty, 0);

	/* A write to a clean resident page is seen (WP fault) and its new
	 * content survives eviction. */
	unsigned last = NPAGES - 1;
	t_fill(m + (size_t)last * PG, last, 2);
	st(e, &a);
	CHECK(a.faults_wp > b.faults_wp);
	CHECK(a.dirty >= 1);
	for (unsigned i = 0; i < NPAGES; i++)
		CHECK(t_check(m + (size_t)i * PG, i, i == last ? 2 : 1) == 0);
	for (unsigned i = 0; i < NPAGES; i++)
		CHECK(t_check(m + (size_t)i * PG, i, i == last ? 2 : 1) == 0);

	/* madvise(DONTNEED) by the program: zeros, remote copies freed. */
	size_t before = store_mem_count(s);
	CHECK(madvise(m, 64 * PG, MADV_DONTNEED) == 0);
	for (unsigned i = 0; i < 64; i++)
		CHECK(t_check(m + (size_t)i * PG, i, 0) == 0);
	for (unsigned i = 64; i < NPAGES; i++)
		CHECK(t_check(m + (size_t)i * PG, i, i == last ? 2 : 1) == 0);
	CHECK(store_mem_count(s) < before);
	st(e, &a);
	CHECK(a.events >= 1);

	char line[1024];
	sdrsa_engine_format_stats(&a, 0, line, sizeof(line));
	fprintf(stderr, "stats: %s\n", line);
	/* Freeing the region frees everything on the store. */
	sdrsa_region_free(rg);
	st(e, &a);
	CHECK_EQ(store_mem_count(s), 0);
	CHECK_EQ(a.resident + a.staged + a.remote, 0);
	sdrsa_engine_free(e);
}

static void test_mremap(void)
{
	struct store *s;
	struct sdrsa_engine *e = mk(&s, SDRSA_POLICY_CLOCK);
	size_t len = NPAGES * PG;
	unsigned char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
				0);
	CHECK(m != MAP_FAILED);
	CHECK(sdrsa_engine_manage(e, m, len) == 0);
	for (unsigned i = 0; i < NPAGES; i++)
		t_fill(m + (size_t)i * PG, i, 7);
	/* Move it elsewhere and grow it (as realloc of a big block does). */
	unsigned char *n = mremap(m, len, 2 * len, MREMAP_MAYMOVE);
	CHECK(n != MAP_FAILED);
	if (n == m) {
		/* Grew in place: force a move. */
		unsigned char *dst = mmap(NULL, 2 * len, PROT_NONE,
					  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		n = mremap(m, 2 * len, 2 * len, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
		CHECK(n == dst);
	}
	for (unsigned i = 0; i < NPAGES; i++)
		CHECK(t_check(n + (size_t)i * PG, i, 7) == 0);
	for (unsigned i = NPAGES; i < 2 * NPAGES; i++)
		CHECK(t_check(n + (size_t)i * PG, i, 0) == 0);
	for (unsigned i = 0; i < 2 * NPAGES; i++)
		t_fill(n + (size_t)i * PG, i, 8);
	for (unsigned i = 0; i < 2 * NPAGES; i++)
		CHECK(t_check(n + (size_t)i * PG, i, 8) == 0);
	CHECK(munmap(n, 2 * len) == 0);
	/* munmap is followed: nothing left on the store. The UNMAP event is
	 * handled asynchronously right after munmap returns. */
	for (int i = 0; i < 100 && store_mem_count(s); i++)
		usleep(10000);
	CHECK_EQ(store_mem_count(s), 0);
	sdrsa_engine_free(e);
}

/* fork(): the child reads every page right (its engine fetches what the
 * parent holds remotely, here from its copy of the in-memory store) and its
 * writes stay its own. tests/engine/test_fork.c covers a real server, where
 * the parent must keep the pages the child reads. */
static void test_fork(void)
{
	struct store *s;
	struct sdrsa_engine *e = mk(&s, SDRSA_POLICY_CLOCK);
	struct sdrsa_region *rg;
	CHECK(sdrsa_region_new(e, NPAGES * PG, &rg) == 0);
	unsigned char *m = sdrsa_region_addr(rg);
	for (unsigned i = 0; i < NPAGES; i++)
		t_fill(m + (size_t)i * PG, i, 3);

	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		for (unsigned i = 0; i < NPAGES; i++)
			if (t_check(m + (size_t)i * PG, i, 3) != 0)
				_exit(2);
		for (unsigned i = 0; i < NPAGES; i++)
			t_fill(m + (size_t)i * PG, i, 9);
		for (unsigned i = 0; i < NPAGES; i++)
			if (t_check(m + (size_t)i * PG, i, 9) != 0)
				_exit(3);
		_exit(0);
	}
	sdrsa_engine_forked(pid);
	int status;
	CHECK(waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status));
	CHECK_EQ(WEXITSTATUS(status), 0);
	/* The parent is unaffected. */
	for (unsigned i = 0; i < NPAGES; i++)
		CHECK(t_check(m + (size_t)i * PG, i, 3) == 0);
	for (unsigned i = 0; i < NPAGES; i++)
		t_fill(m + (size_t)i * PG, i, 4);
	for (unsigned i = 0; i < NPAGES; i++)
		CHECK(t_check(m + (size_t)i * PG, i, 4) == 0);
	sdrsa_region_free(rg);
	sdrsa_engine_free(e);
}

/* The store dies: the program is stopped with SIGBUS and a message, it never
 * reads zeros. Runs in a child process. */
static void test_store_failure(void)
{
	int errp[2];
	CHECK(pipe(errp) == 0);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		dup2(errp[1], 2);
		struct store *s;
		struct sdrsa_engine *e = mk(&s, SDRSA_POLICY_CLOCK);
		struct sdrsa_region *rg;
		CHECK(sdrsa_region_new(e, NPAGES * PG, &rg) == 0);
		unsigned char *m = sdrsa_region_addr(rg);
		for (unsigned i = 0; i < NPAGES; i++)
			t_fill(m + (size_t)i * PG, i, 5);
		store_mem_fail_after(s, 1);
		/* Page 0 is remote by now: this read must not return. */
		for (unsigned i = 0; i < NPAGES; i++)
			if (t_check(m + (size_t)i * PG, i, 5) != 0)
				_exit(9); /* wrong data: the worst outcome */
		_exit(0);
	}
	close(errp[1]);
	char buf[1024] = "";
	ssize_t n = read(errp[0], buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = 0;
	int status;
	CHECK(waitpid(pid, &status, 0) == pid);
	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGBUS)
		fprintf(stderr, "child status %#x, stderr: %s\n", status, buf);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS);
	CHECK(strstr(buf, "sdrsa: ") != NULL);
	close(errp[0]);
}

static struct t_log g_log;

/* The server's pool is full (or the quota reached) while evicting: the
 * pages stay local over the budget with a warning, no data is lost, and
 * eviction resumes once the server takes pages again. */
static void test_store_full(void)
{
	struct store *s;
	CHECK(store_mem_new(&s) == 0);
	struct sdrsa_engine_config cfg = {
		.local_bytes = BUDGET_PAGES * PG,
		.log = t_log_capture,
		.log_userdata = &g_log,
	};
	struct sdrsa_engine *e;
	CHECK(engine_new_with_store(&cfg, s, &e) == 0);
	store_mem_set_capacity(s, NPAGES / 4);
	g_log.text[0] = 0;
	struct sdrsa_region *rg;
	CHECK(sdrsa_region_new(e, NPAGES * PG, &rg) == 0);
	unsigned char *m = sdrsa_region_addr(rg);
	for (unsigned i = 0; i < NPAGES; i++)
		t_fill(m + (size_t)i * PG, i, 6);
	struct sdrsa_engine_stats a;
	st(e, &a);
	CHECK(a.store_refusals > 0);
	CHECK(a.resident + a.staged > BUDGET_PAGES); /* over budget, as announced */
	CHECK_EQ(store_mem_count(s), NPAGES / 4);
	CHECK(strstr(g_log.text, "refused pages (pool full)") != NULL);
	for (unsigned i = 0; i < NPAGES; i++)
		CHECK(t_check(m + (size_t)i * PG, i, 6) == 0);
	/* The server takes pages again: after the backoff the engine gets
	 * back under its budget, and nothing was lost. */
	store_mem_set_capacity(s, 0);
	for (int i = 0; i < 100; i++) {
		st(e, &a);
		if (a.resident + a.staged <= BUDGET_PAGES)
			break;
		usleep(50 * 1000);
	}
	CHECK(a.resident + a.staged <= BUDGET_PAGES);
	for (int pass = 0; pass < 2; pass++)
		for (unsigned i = 0; i < NPAGES; i++)
			CHECK(t_check(m + (size_t)i * PG, i, 6) == 0);
	st(e, &a);
	CHECK(a.resident + a.staged <= BUDGET_PAGES);
	CHECK(strstr(g_log.text, "takes pages again") != NULL);
	sdrsa_region_free(rg);
	CHECK_EQ(store_mem_count(s), 0);
	sdrsa_engine_free(e);
}

/* Refills: a page touched again while staged is copied back (writable if
 * dirty, write-protected if clean) and its staging slot is dropped later,
 * counted against the budget until then. Pages cycle through staging with
 * reads, writes and read-then-write; every page keeps its latest contents
 * (a write after a clean refill is seen and the page sent again) and local
 * pages, refilled slots included, stay within the budget. */
static void test_refill(void)
{
	struct store *s;
	CHECK(store_mem_new(&s) == 0);
	/* A large staging area and no prefetch: many refills (about 3000). */
	struct sdrsa_engine_config cfg = {
		.local_bytes = BUDGET_PAGES * PG,
		.policy = SDRSA_POLICY_CLOCK,
		.staging_pct = 40,
		.no_prefetch = 1,
	};
	struct sdrsa_engine *e;
	CHECK(engine_new_with_store(&cfg, s, &e) == 0);
	struct sdrsa_region *rg;
	enum { W = BUDGET_PAGES + BUDGET_PAGES / 4, N = 2 * BUDGET_PAGES };
	static uint64_t ver[N];
	CHECK(sdrsa_region_new(e, (size_t)N * PG, &rg) == 0);
	unsigned char *m = sdrsa_region_addr(rg);
	struct sdrsa_engine_stats a, b;
	for (unsigned i = 0; i < N; i++)
		t_fill(m + (size_t)i * PG, i, ver[i] = 1);
	st(e, &a);
	uint64_t x = 88172645463325252ull;
	for (unsigned r = 0; r < 40; r++) {
		for (unsigned k = 0; k < W; k++) {
			x ^= x << 13; /* xorshift64: random pages, not a cycle */
			x ^= x >> 7;
			x ^= x << 17;
			unsigned i = (unsigned)(x % W);
			unsigned char *p = m + (size_t)i * PG;
			switch ((r + i) % 3) {
			case 0: /* read: a clean or dirty refill */
				CHECK(t_check(p, i, ver[i]) == 0);
				break;
			case 1: /* write */
				t_fill(p, i, ver[i] = 2 + r);
				break;
			default: /* read, then write the page installed write-protected */
				CHECK(t_check(p, i, ver[i]) == 0);
				t_fill(p, i, ver[i] = 100 + r);
				break;
			}
		}
		CHECK(engine_local_pages(e) <= BUDGET_PAGES + 1);
	}
	st(e, &b);
	CHECK(b.faults_refill - a.faults_refill > 1000);
	CHECK(engine_local_pages(e) <= BUDGET_PAGES);
	/* Everything read back, twice, so that every page leaves and returns. */
	for (int pass = 0; pass < 2; pass++)
		for (unsigned i = 0; i < N; i++)
			CHECK(t_check(m + (size_t)i * PG, i, ver[i]) == 0);
	CHECK(engine_local_pages(e) <= BUDGET_PAGES);
	sdrsa_region_free(rg);
	CHECK_EQ(store_mem_count(s), 0);
	sdrsa_engine_free(e);
}

int main(void)
{
	t_require_uffd();
	test_zero_and_dirty();
	fprintf(stderr, "ok zero_and_dirty\n");
	test_refill();
	fprintf(stderr, "ok refill\n");
	test_mremap();
	fprintf(stderr, "ok mremap\n");
	test_fork();
	fprintf(stderr, "ok fork\n");
	test_store_failure();
	fprintf(stderr, "ok store_failure\n");
	test_store_full();
	fprintf(stderr, "ok store_full\n");
	return T_PASS;
}
