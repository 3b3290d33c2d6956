// SPDX-License-Identifier: MIT
/*
 * The engine's end-to-end check: every page fetched must be the version the
 * engine stored, not merely a page whose wire checksum matches the bytes the
 * server holds (docs/ENGINE.md, "End-to-end check"). Each scenario makes a
 * store hand back a wrong copy with a valid checksum:
 *
 *   stale_demand     the in-memory store serves the previous version of the
 *                    page a thread waits for: the program is stopped
 *                    (SIGBUS, a message naming the page), never given it;
 *   stale_ahead      it serves the previous version of a page fetched ahead:
 *                    not installed, fetched again on its own fault (then
 *                    right), counted in pages_mismatched;
 *   foreign_server   a real memory-server: a second client with the engine's
 *                    name overwrites one of its keys through the protocol;
 *                    reading that page stops the program with the message;
 *   fork_borrowed    the same for a fork child reading its parent's pages
 *                    with the parent's keys and checksums;
 *   pool_bad_replica two real servers, two replicas: one copy of a page on
 *                    each server is overwritten; every page reads right (the
 *                    other copy), the bad copies are counted.
 *
 * Each one fails if the comparison is taken out (the wrong version is read,
 * the scenarios that expect a stop see the child read it instead).
 *
 * Usage: test_e2e [SERVER_BIN] [--only SCENARIO]  (without a server binary,
 * only the in-memory scenarios)
 */
#include <sys/mman.h>

#include <sdrsa/client.h>
#include <sdrsa/engine.h>

#include "etest_mem.h"

#define PG 4096u
#define BUDGET_PAGES 256u
#define NPAGES (4 * BUDGET_PAGES)

static struct sdrsa_engine *mk_mem(struct store **sp, int no_prefetch)
{
	struct sdrsa_engine_config cfg = {
		.local_bytes = BUDGET_PAGES * PG,
		.no_prefetch = no_prefetch,
	};
	struct sdrsa_engine *e = t_engine_mem(&cfg, sp);
	store_mem_keep_old(*sp, 1);
	return e;
}

/* Run fn in a child that must be stopped by SIGBUS with a message on stderr
 * containing `want`. The child exits 9 if it read wrong data. */
static void expect_stop(void (*fn)(void *), void *arg, const char *want)
{
	int errp[2];
	CHECK(pipe(errp) == 0);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		close(errp[0]);
		dup2(errp[1], 2);
		fn(arg);
		_exit(0);
	}
	close(errp[1]);
	char buf[2048] = "";
	size_t got = 0;
	ssize_t n;
	while (got < sizeof(buf) - 1 && (n = read(errp[0], buf + got, sizeof(buf) - 1 - got)) > 0)
		got += (size_t)n;
	buf[got] = 0;
	close(errp[0]);
	int status;
	CHECK(waitpid(pid, &status, 0) == pid);
	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGBUS || !strstr(buf, want))
		fprintf(stderr, "child status %#x (exit 9: it read the wrong version), stderr: %s\n",
			status, buf);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS);
	CHECK(strstr(buf, want) != NULL);
}

#define STOP_MSG "not as the engine stored it"

/* Every page written twice (so that the store keeps version 1 of each),
 * page 0 remote since. */
static void stale_demand_child(void *arg)
{
	(void)arg;
	struct store *s;
	struct sdrsa_engine *e = mk_mem(&s, 1);
	struct sdrsa_region *rg;
	CHECK(sdrsa_region_new(e, NPAGES * PG, &rg) == 0);
	unsigned char *m = sdrsa_region_addr(rg);
	for (uint64_t v = 1; v <= 2; v++)
		for (unsigned i = 0; i < NPAGES; i++)
			t_fill(m + (size_t)i * PG, i, v);
	uint64_t key;
	CHECK(engine_page_key(e, (uintptr_t)m, &key) == 0);
	store_mem_serve_old(s, 1, 0);
	if (t_check(m, 0, 2) != 0)
		_exit(9); /* the wrong version reached the program */
	_exit(0);
}

static void test_stale_demand(void)
{
	expect_stop(stale_demand_child, NULL, STOP_MSG);
}

static void test_stale_ahead(void)
{
	struct store *s;
	struct sdrsa_engine *e = mk_mem(&s, 0);
	struct sdrsa_region *rg;
	CHECK(sdrsa_region_new(e, NPAGES * PG, &rg) == 0);
	unsigned char *m = sdrsa_region_addr(rg);
	static uint64_t ver[NPAGES];
	enum { P0 = 200, RUN = 32 };
	for (unsigned i = 0; i < NPAGES; i++)
		t_fill(m + (size_t)i * PG, i, ver[i] = 1);
	/* A run of pages stored twice: the store keeps their version 1. */
	for (unsigned i = P0; i < P0 + RUN; i++)
		t_fill(m + (size_t)i * PG, i, ver[i] = 2);
	/* Push everything below the run's end out. */
	for (unsigned i = NPAGES - BUDGET_PAGES - 64; i < NPAGES; i++)
		CHECK(t_check(m + (size_t)i * PG, i, ver[i]) == 0);
	for (unsigned i = 0; i < P0 + RUN; i++) {
		uint64_t key;
		CHECK(engine_page_key(e, (uintptr_t)(m + (size_t)i * PG), &key) == 0);
	}
	struct sdrsa_engine_stats a, b;
	CHECK(sdrsa_engine_stats(e, &a) == 0);
	CHECK_EQ(a.pages_mismatched, 0);
	/* The first of the run fetched ahead of a fault comes back as
	 * version 1; a sequential scan fetches most of them ahead. */
	store_mem_serve_old(s, 1, 1);
	for (unsigned i = 0; i < NPAGES; i++)
		if (t_check(m + (size_t)i * PG, i, ver[i]) != 0) {
			const uint64_t *w = (const uint64_t *)(m + (size_t)i * PG);
			fprintf(stderr, "page %u: version %llu, want %llu\n", i,
				(unsigned long long)w[1], (unsigned long long)ver[i]);
			CHECK(0);
		}
	CHECK(sdrsa_engine_stats(e, &b) == 0);
	CHECK(b.pages_prefetched > a.pages_prefetched);
	CHECK_EQ(b.pages_mismatched, 1);
	char line[1024];
	CHECK(sdrsa_engine_format_stats(&b, 1, line, sizeof(line)) > 0);
	CHECK(strstr(line, "\"pages_mismatched\":1") != NULL);
	CHECK(sdrsa_engine_format_stats(&b, 0, line, sizeof(line)) > 0);
	CHECK(strstr(line, "mismatched pages 1, bad copies 0") != NULL);
	sdrsa_region_free(rg);
	CHECK_EQ(store_mem_count(s), 0);
	sdrsa_engine_free(e);
}

/* Overwrite `key` on the server at addr under client `name`. */
static void overwrite(const char *addr, const char *name, uint64_t key, uint64_t idx)
{
	struct sdrsa_client_config cc = {.address = addr, .name = name};
	struct sdrsa_client *c;
	CHECK(sdrsa_client_connect(&cc, &c) == 0);
	static unsigned char page[PG];
	t_fill(page, idx, 99);
	CHECK(sdrsa_put(c, key, page) == 0);
	sdrsa_client_free(c);
}

/* An engine of cfg (*ep) with a region (*rgp) of NPAGES pages, each filled
 * with version 1 of its pattern (most of them are then remote); returns the
 * region's address. */
static unsigned char *filled_region(const struct sdrsa_engine_config *cfg, struct sdrsa_engine **ep,
				    struct sdrsa_region **rgp)
{
	CHECK(sdrsa_engine_new(cfg, ep) == 0);
	CHECK(sdrsa_region_new(*ep, NPAGES * PG, rgp) == 0);
	unsigned char *m = sdrsa_region_addr(*rgp);
	for (unsigned i = 0; i < NPAGES; i++)
		t_fill(m + (size_t)i * PG, i, 1);
	return m;
}

static void foreign_server_child(void *arg)
{
	const char *addr = arg;
	struct sdrsa_engine_config cfg = {
		.server = addr,
		.name = "e2etest",
		.local_bytes = BUDGET_PAGES * PG,
	};
	struct sdrsa_engine *e;
	struct sdrsa_region *rg;
	unsigned char *m = filled_region(&cfg, &e, &rg);
	/* Page 5 is remote: another client under the same name overwrites
	 * it with a page of its own, which carries a valid checksum. */
	uint64_t key;
	CHECK(engine_page_key(e, (uintptr_t)(m + 5 * PG), &key) == 0);
	overwrite(addr, "e2etest", key, 5);
	for (unsigned i = 0; i < NPAGES; i++)
		if (t_check(m + (size_t)i * PG, i, 1) != 0)
			_exit(9);
	_exit(0);
}

static void test_foreign_server(struct t_server *srv)
{
	expect_stop(foreign_server_child, srv->addr, STOP_MSG);
}

/* A fork child reads its parent's pages with the parent's keys (borrowed)
 * and checks them against the checksums it inherited: page 5's key is
 * overwritten on the server before the child reads it. */
static void test_fork_borrowed(struct t_server *srv)
{
	struct sdrsa_engine_config cfg = {
		.server = srv->addr,
		.name = "e2efork",
		.local_bytes = BUDGET_PAGES * PG,
	};
	struct sdrsa_engine *e;
	struct sdrsa_region *rg;
	unsigned char *m = filled_region(&cfg, &e, &rg);
	uint64_t key;
	CHECK(engine_page_key(e, (uintptr_t)(m + 5 * PG), &key) == 0);
	int go[2], errp[2];
	CHECK(pipe(go) == 0 && pipe(errp) == 0);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		close(go[1]);
		close(errp[0]);
		dup2(errp[1], 2);
		char b;
		if (read(go[0], &b, 1) != 1)
			_exit(5);
		for (unsigned i = 0; i < NPAGES; i++)
			if (t_check(m + (size_t)i * PG, i, 1) != 0)
				_exit(9);
		_exit(0);
	}
	sdrsa_engine_forked(pid);
	close(go[0]);
	close(errp[1]);
	overwrite(srv->addr, "e2efork", key, 5);
	CHECK(write(go[1], "g", 1) == 1);
	close(go[1]);
	char buf[2048] = "";
	size_t got = 0;
	ssize_t n;
	while (got < sizeof(buf) - 1 && (n = read(errp[0], buf + got, sizeof(buf) - 1 - got)) > 0)
		got += (size_t)n;
	close(errp[0]);
	int status;
	CHECK(waitpid(pid, &status, 0) == pid);
	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGBUS || !strstr(buf, STOP_MSG))
		fprintf(stderr, "fork child status %#x (exit 9: it read the wrong version): %s\n",
			status, buf);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS);
	CHECK(strstr(buf, STOP_MSG) != NULL);
	sdrsa_region_free(rg);
	sdrsa_engine_free(e);
}

static struct t_server srv, srv2;
static pid_t parent_pid;

static void stop_servers(void)
{
	if (getpid() != parent_pid)
		return;
	t_server_stop(&srv);
	t_server_stop(&srv2);
}

static struct t_log g_log;

/* Two servers, two copies of every page. Page 5's copy on the first server
 * and page 6's on the second are overwritten: whichever server the pool
 * reads first, one of the two pages comes from a bad copy there, and must
 * be read from the other copy instead. */
static void test_pool_bad_replica(void)
{
	struct sdrsa_pool_server ps[2] = {{.address = srv.addr}, {.address = srv2.addr}};
	struct sdrsa_engine_config cfg = {
		.pool = ps,
		.pool_size = 2,
		.replicas = 2,
		.name = "e2epool",
		.local_bytes = BUDGET_PAGES * PG,
		.log = t_log_capture,
		.log_userdata = &g_log,
	};
	struct sdrsa_engine *e;
	struct sdrsa_region *rg;
	g_log.text[0] = 0;
	unsigned char *m = filled_region(&cfg, &e, &rg);
	uint64_t k5, k6;
	CHECK(engine_page_key(e, (uintptr_t)(m + 5 * PG), &k5) == 0);
	CHECK(engine_page_key(e, (uintptr_t)(m + 6 * PG), &k6) == 0);
	overwrite(srv.addr, "e2epool", k5, 5);
	overwrite(srv2.addr, "e2epool", k6, 6);
	for (int pass = 0; pass < 2; pass++)
		for (unsigned i = 0; i < NPAGES; i++)
			CHECK(t_check(m + (size_t)i * PG, i, 1) == 0);
	struct sdrsa_engine_stats st;
	CHECK(sdrsa_engine_stats(e, &st) == 0);
	fprintf(stderr, "pool: %llu bad copies, %llu pages mismatched\n",
		(unsigned long long)st.copies_bad, (unsigned long long)st.pages_mismatched);
	CHECK(st.copies_bad >= 1 && st.copies_bad <= 2);
	CHECK_EQ(st.pages_mismatched, 0);
	CHECK(strstr(g_log.text, "that is not the version stored") != NULL);
	char line[2048];
	CHECK(sdrsa_engine_format_stats(&st, 1, line, sizeof(line)) > 0);
	CHECK(strstr(line, "\"copies_bad\":") != NULL);
	/* A bad copy found is dropped: replication puts a good one back, and
	 * reading every page again (twice, evicted in between) finds each bad
	 * copy at most once (the other one may not have been read yet). */
	for (int i = 0; i < 100; i++) {
		CHECK(sdrsa_engine_stats(e, &st) == 0);
		if (st.pages_under_replicated == 0)
			break;
		usleep(50 * 1000);
	}
	CHECK_EQ(st.pages_under_replicated, 0);
	for (int pass = 0; pass < 2; pass++)
		for (unsigned i = 0; i < NPAGES; i++)
			CHECK(t_check(m + (size_t)i * PG, i, 1) == 0);
	CHECK(sdrsa_engine_stats(e, &st) == 0);
	CHECK(st.copies_bad >= 1 && st.copies_bad <= 2);
	CHECK_EQ(st.pages_mismatched, 0);
	sdrsa_region_free(rg);
	sdrsa_engine_free(e);
}

/* Run scenario `name`, unless --only names another. */
static const char *only;
static int want(const char *name)
{
	return !only || !strcmp(only, name);
}

int main(int argc, char **argv)
{
	const char *server_bin = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--only") && i + 1 < argc)
			only = argv[++i];
		else
			server_bin = argv[i];
	}
	parent_pid = getpid();
	t_require_uffd();
	if (want("stale_demand")) {
		test_stale_demand();
		fprintf(stderr, "ok stale_demand\n");
	}
	if (want("stale_ahead")) {
		test_stale_ahead();
		fprintf(stderr, "ok stale_ahead\n");
	}
	if (!server_bin)
		return T_PASS;
	CHECK(t_server_start(server_bin, "64M", &srv) == 0);
	atexit(stop_servers); /* also when a check fails */
	if (want("foreign_server")) {
		test_foreign_server(&srv);
		fprintf(stderr, "ok foreign_server\n");
	}
	if (want("fork_borrowed")) {
		test_fork_borrowed(&srv);
		fprintf(stderr, "ok fork_borrowed\n");
	}
	if (want("pool_bad_replica")) {
		CHECK(t_server_start(server_bin, "64M", &srv2) == 0);
		/* In a child: if the check broke, the engine's SIGBUS ends it
		 * and this process still stops the servers. */
		pid_t pid = fork();
		CHECK(pid >= 0);
		if (pid == 0) {
			test_pool_bad_replica();
			_exit(0);
		}
		int status;
		CHECK(waitpid(pid, &status, 0) == pid);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			fprintf(stderr, "pool_bad_replica: child status %#x\n", status);
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		fprintf(stderr, "ok pool_bad_replica\n");
	}
	return T_PASS;
}
