// SPDX-License-Identifier: MIT
/*
 * Asynchronous eviction puts (puts_submit in engine.c): the engine sends a
 * batch of dirty pages and goes on without waiting for the answers; the
 * pages stay in their staging slots until then. Three cases, every page
 * checked by content:
 *
 *   inflight_refill  pages whose put is in flight are touched again (refilled
 *                    from their slots), rewritten, evicted and fetched back
 *                    (in-memory store, which applies a put only when its
 *                    answer is collected);
 *   conn_lost        the put connection stops answering (the in-memory
 *                    store answers -ECONNRESET and drops the puts): the pages
 *                    are sent again, nothing is lost;
 *   server_killed    a real memory-server is killed while puts are in
 *                    flight: the program is stopped loudly (SIGBUS,
 *                    "cannot store"), never given wrong data.
 *
 * Usage: test_put_async SERVER_BIN
 */
#include <signal.h>
#include <sys/wait.h>

#include <sdrsa/engine.h>

#include "engine/engine_internal.h"
#include "engine/store.h"
#include "etest.h"

#define PG 4096u
#define BUDGET_PAGES 256u
#define NPAGES (4 * BUDGET_PAGES)

static struct sdrsa_engine *mk_mem(struct store **sp, int spin_us)
{
	struct store *s;
	CHECK(store_mem_new(&s) == 0);
	struct sdrsa_engine_config cfg = {
		.local_bytes = BUDGET_PAGES * PG,
		.policy = SDRSA_POLICY_FIFO,
		.spin_us = spin_us,
	};
	struct sdrsa_engine *e;
	int r = engine_new_with_store(&cfg, s, &e);
	if (r == -ENOSYS) {
		fprintf(stderr, "skip: userfaultfd lacks a needed feature\n");
		exit(T_SKIP);
	}
	CHECK(r == 0);
	*sp = s;
	return e;
}

static void check_all(unsigned char *m, uint64_t ver)
{
	for (unsigned i = 0; i < NPAGES; i++)
		if (t_check(m + (size_t)i * PG, i, ver) != 0) {
			fprintf(stderr, "page %u: wrong contents (want version %llu)\n", i,
				(unsigned long long)ver);
			exit(T_FAIL);
		}
}

/* Touch pages whose put is in flight. The handler spins for 2 s after
 * work, so it does not go idle (which collects every answer) while the
 * test runs; FIFO evicts in fault order, so after a sequential write pass
 * the pages in flight sit just below the ones still local, and a
 * downward pass reaches them before the budget needs their answers. */
static void test_inflight_refill(void)
{
	struct store *s;
	struct sdrsa_engine *e = mk_mem(&s, 2000000);
	struct sdrsa_region *rg;
	CHECK(sdrsa_region_new(e, NPAGES * PG, &rg) == 0);
	unsigned char *m = sdrsa_region_addr(rg);
	uint64_t inflight, refilled, resent;

	for (unsigned i = 0; i < NPAGES; i++)
		t_fill(m + (size_t)i * PG, i, 1);
	engine_put_counts(e, &inflight, &refilled, &resent);
	CHECK(inflight > 0);
	for (unsigned i = NPAGES; i-- > 0;)
		CHECK(t_check(m + (size_t)i * PG, i, 1) == 0);
	engine_put_counts(e, &inflight, &refilled, &resent);
	fprintf(stderr, "refills of pages in flight: %llu\n", (unsigned long long)refilled);
	CHECK(refilled > 0);
	/* New contents everywhere (the refilled pages are written while
	 * their old put may still be answered), then two passes that fetch
	 * every page back. */
	for (unsigned i = NPAGES; i-- > 0;)
		t_fill(m + (size_t)i * PG, i, 2);
	check_all(m, 2);
	check_all(m, 2);
	CHECK(engine_local_pages(e) <= BUDGET_PAGES);
	sdrsa_region_free(rg);
	CHECK_EQ(store_mem_count(s), 0);
	sdrsa_engine_free(e);
}

/* The put connection stops answering: every put in flight is answered
 * -ECONNRESET when the engine waits for it, and dropped. Those pages must
 * be sent again (here through the synchronous path, which works). */
static void test_conn_lost(void)
{
	struct store *s;
	struct sdrsa_engine *e = mk_mem(&s, 0);
	struct sdrsa_region *rg;
	CHECK(sdrsa_region_new(e, NPAGES * PG, &rg) == 0);
	unsigned char *m = sdrsa_region_addr(rg);
	uint64_t inflight, refilled, resent;

	store_mem_hold_puts(s, 1);
	for (unsigned i = 0; i < NPAGES; i++)
		t_fill(m + (size_t)i * PG, i, 3);
	check_all(m, 3);
	engine_put_counts(e, &inflight, &refilled, &resent);
	fprintf(stderr, "pages sent again: %llu\n", (unsigned long long)resent);
	CHECK(resent > 0);
	store_mem_hold_puts(s, 0);
	for (unsigned i = 0; i < NPAGES; i++)
		t_fill(m + (size_t)i * PG, i, 4);
	check_all(m, 4);
	check_all(m, 4);
	sdrsa_region_free(rg);
	CHECK_EQ(store_mem_count(s), 0);
	sdrsa_engine_free(e);
}

/* A real server killed while puts are in flight. In a child: fill the
 * region (puts in flight at the end), kill the server, then touch fresh
 * pages, whose zero fills need room: the answers to the puts in flight
 * never come, the pages are sent again and that fails. */
static void test_server_killed(const char *bin)
{
	struct t_server srv = {0};
	if (t_server_start(bin, "64M", &srv) < 0) {
		fprintf(stderr, "cannot start %s\n", bin);
		exit(T_FAIL);
	}
	int errp[2];
	CHECK(pipe(errp) == 0);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		dup2(errp[1], 2);
		struct sdrsa_engine_config cfg = {
			.server = srv.addr,
			.local_bytes = BUDGET_PAGES * PG,
			.timeout_ms = 500,
			.retry_ms = 500,
			.spin_us = 2000000,
		};
		struct sdrsa_engine *e;
		CHECK(sdrsa_engine_new(&cfg, &e) == 0);
		struct sdrsa_region *rg;
		CHECK(sdrsa_region_new(e, 2 * NPAGES * PG, &rg) == 0);
		unsigned char *m = sdrsa_region_addr(rg);
		uint64_t inflight, refilled, resent;
		for (unsigned i = 0; i < NPAGES; i++)
			t_fill(m + (size_t)i * PG, i, 5);
		engine_put_counts(e, &inflight, &refilled, &resent);
		if (inflight == 0)
			_exit(7); /* nothing in flight: the case is not tested */
		kill(srv.pid, SIGKILL);
		for (unsigned i = NPAGES; i < 2 * NPAGES; i++)
			if (t_check(m + (size_t)i * PG, i, 0) != 0)
				_exit(9); /* wrong data: the worst outcome */
		for (unsigned i = 0; i < NPAGES; i++)
			if (t_check(m + (size_t)i * PG, i, 5) != 0)
				_exit(9);
		_exit(0); /* every page read back from a dead server: impossible */
	}
	close(errp[1]);
	char buf[2048] = "";
	size_t len = 0;
	ssize_t n;
	while (len < sizeof(buf) - 1 && (n = read(errp[0], buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)n;
	buf[len] = 0;
	close(errp[0]);
	int status;
	CHECK(waitpid(pid, &status, 0) == pid);
	waitpid(srv.pid, NULL, 0);
	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGBUS || !strstr(buf, "cannot store"))
		fprintf(stderr, "child status %#x, stderr: %s\n", status, buf);
	CHECK(!WIFEXITED(status) || WEXITSTATUS(status) != 7);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS);
	CHECK(strstr(buf, "cannot store") != NULL);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: test_put_async SERVER_BIN\n");
		return T_FAIL;
	}
	t_require_uffd();
	test_inflight_refill();
	fprintf(stderr, "ok inflight_refill\n");
	test_conn_lost();
	fprintf(stderr, "ok conn_lost\n");
	test_server_killed(argv[1]);
	fprintf(stderr, "ok server_killed\n");
	return T_PASS;
}
