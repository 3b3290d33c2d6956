/* SPDX-License-Identifier: MIT */
/*
 * GET replies sent straight from pool slots (src/server/session.c,
 * get_zero_copy()) against the real server with several worker threads:
 * while readers of namespace X GET X's pages in large pipelined frames,
 * another connection of X frees and replaces those pages, and namespace Y
 * stores and frees pages of its own in a small pool, so that a slot freed by
 * X is handed to Y at once. Every page a reader gets must be a whole page of
 * X, for its address, with the checksum the server stored (the library
 * checks it: a torn page or another namespace's bytes fail with -EBADMSG),
 * checked here by content too. One reader reads its replies late, so that the
 * server's sends are partial and the rest goes through the output buffer.
 * The server runs with SDRSA_TEST_SEND_DELAY_US, a pause between the pins
 * and the send, so that the frees and puts land inside that window however
 * the scheduler runs the threads: taking out the pins (store.c, pool.c)
 * makes this test fail at once.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "harness_lib.h"

#define PAGE SDRSA_PAGE_SIZE
#define XPAGES 256u   /* pages of namespace X, one GET frame of them */
#define YPAGES 200u   /* pages Y keeps storing and freeing */
#define RUN_MS 3000u
#define READERS 3

static struct h_server srv;
static _Atomic int stop, failed;
static _Atomic uint64_t pages_checked, misses;

/* Page of namespace tag `ns` for addr in generation gen: a header that names
 * all three, the rest derived from them. */
static void make_page(uint8_t *p, uint64_t ns, uint64_t addr, uint64_t gen)
{
	uint64_t x = (ns * 0x9e3779b97f4a7c15ull) ^ (addr * 0xc2b2ae3d27d4eb4full) ^ gen;
	uint64_t hdr[3] = {ns, addr, gen};

	memcpy(p, hdr, sizeof(hdr));
	for (size_t i = sizeof(hdr); i < PAGE; i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(p + i, &x, 8);
	}
}

/* 0 when p is some generation of (ns, addr), whole. */
static int check_page(const uint8_t *p, uint64_t ns, uint64_t addr)
{
	uint8_t want[PAGE];
	uint64_t hdr[3];

	memcpy(hdr, p, sizeof(hdr));
	if (hdr[0] != ns || hdr[1] != addr) {
		h_log("page 0x%llx: header says namespace tag %llu, address 0x%llx",
		      (unsigned long long)addr, (unsigned long long)hdr[0],
		      (unsigned long long)hdr[1]);
		return -1;
	}
	make_page(want, ns, addr, hdr[2]);
	if (memcmp(want, p, PAGE)) {
		h_log("page 0x%llx generation %llu: content differs from its pattern",
		      (unsigned long long)addr, (unsigned long long)hdr[2]);
		return -1;
	}
	return 0;
}

static void fail(const char *what, int rc)
{
	if (!atomic_exchange(&failed, 1))
		h_log("%s: %s", what, strerror(-rc));
	atomic_store(&stop, 1);
}

static struct sdrsa_client *connect_as(const char *name)
{
	struct sdrsa_client *c = NULL;
	int rc = h_lib_connect(srv.addr_str, name, NULL, 10000, &c);

	if (rc)
		fail("connect", rc);
	return c;
}

/* Namespace X, reader `arg`: GET every X page in one pipelined burst, check
 * each, again until stopped. Reader 0 asks for them LATE_REPS times per burst
 * (8 MiB of replies) and waits before reading, so that the server's socket
 * fills: its sends are partial, and the replies behind go through the output
 * buffer (the copying path), in order. */
#define LATE_REPS 8u
static void *reader_main(void *arg)
{
	long id = (long)arg;
	unsigned reps = id == 0 ? LATE_REPS : 1, total = reps * XPAGES;
	struct sdrsa_client *c = connect_as("zc-x");
	struct sdrsa_completion comp[LATE_REPS * XPAGES];
	uint8_t *buf = malloc((size_t)total * PAGE);

	while (c && buf && !atomic_load(&stop)) {
		size_t got = 0;

		for (unsigned i = 0; i < total; i++) {
			int rc = sdrsa_submit_get(c, (uint64_t)(i % XPAGES) * PAGE,
						  buf + (size_t)i * PAGE, i);

			if (rc) {
				fail("submit_get", rc);
				break;
			}
		}
		if (sdrsa_flush(c)) {
			fail("flush", -EIO);
			break;
		}
		if (id == 0)
			usleep(20000);
		while (got < total && !atomic_load(&failed)) {
			int n = sdrsa_reap(c, comp, total, 1, 10000);

			if (n <= 0) {
				fail("reap", n ? n : -ETIMEDOUT);
				break;
			}
			for (int k = 0; k < n; k++) {
				uint64_t i = comp[k].tag, a = (i % XPAGES) * PAGE;

				if (comp[k].result == -ENOENT) {
					atomic_fetch_add(&misses, 1);
				} else if (comp[k].result) {
					h_log("reader %ld: GET 0x%llx: %s", id,
					      (unsigned long long)comp[k].addr,
					      strerror(-comp[k].result));
					fail("GET", comp[k].result);
				} else if (comp[k].addr != a || check_page(buf + i * PAGE, 1, a)) {
					fail("GET content", -EBADMSG);
				} else {
					atomic_fetch_add(&pages_checked, 1);
				}
			}
			got += (size_t)n;
		}
	}
	free(buf);
	sdrsa_client_free(c);
	return NULL;
}

/* Namespace X, the writer: free a page and store it again, or replace it in
 * place, in a new generation each time; every other round replaces pages in
 * PUT frames of several pages instead (the server prefetches their slots
 * with a lookup of its own before the put's: a pinned slot must survive
 * both). */
#define XBATCH 8u
static void *x_writer_main(void *arg)
{
	struct sdrsa_client *c = connect_as("zc-x");
	uint8_t page[PAGE];
	uint8_t *batch = malloc((size_t)XBATCH * PAGE);
	uint64_t gen = 1, round = 0;

	(void)arg;
	while (c && batch && !atomic_load(&stop)) {
		if (round++ % 2) {
			for (unsigned i = 0; i < XPAGES && !atomic_load(&stop); i += 3 * XBATCH) {
				uint64_t addrs[XBATCH];
				const void *pages[XBATCH];
				int res[XBATCH], rc;
				unsigned n = 0;

				for (unsigned j = i; j < XPAGES && n < XBATCH; j += 3, n++) {
					addrs[n] = (uint64_t)j * PAGE;
					pages[n] = batch + (size_t)n * PAGE;
					make_page(batch + (size_t)n * PAGE, 1, addrs[n], ++gen);
				}
				rc = sdrsa_put_many(c, addrs, pages, n, res);
				if (rc) {
					fail("X put_many", rc);
					goto out;
				}
			}
			continue;
		}
		for (unsigned i = 0; i < XPAGES && !atomic_load(&stop); i += 3) {
			uint64_t a = (uint64_t)i * PAGE;
			int rc = 0;

			if (gen % 2)
				rc = sdrsa_free(c, &a, 1);
			make_page(page, 1, a, ++gen);
			if (!rc)
				rc = sdrsa_put(c, a, page);
			if (rc) {
				fail("X put/free", rc);
				goto out;
			}
		}
	}
out:
	free(batch);
	sdrsa_client_free(c);
	return NULL;
}

/* Namespace Y: store pages (taking the slots X just freed) and free them. */
static void *y_main(void *arg)
{
	struct sdrsa_client *c = connect_as("zc-y");
	uint8_t *buf = malloc((size_t)YPAGES * PAGE);
	uint64_t addrs[YPAGES], gen = 0;

	(void)arg;
	for (unsigned i = 0; i < YPAGES; i++)
		addrs[i] = (uint64_t)i * PAGE;
	while (c && buf && !atomic_load(&stop)) {
		int res[YPAGES];
		const void *pages[YPAGES];
		int rc;

		gen++;
		for (unsigned i = 0; i < YPAGES; i++) {
			make_page(buf + (size_t)i * PAGE, 2, addrs[i], gen);
			pages[i] = buf + (size_t)i * PAGE;
		}
		rc = sdrsa_put_many(c, addrs, pages, YPAGES, res);
		if (rc && rc != -ENOSPC) {
			fail("Y put", rc);
			break;
		}
		rc = sdrsa_free(c, addrs, YPAGES);
		if (rc) {
			fail("Y free", rc);
			break;
		}
	}
	free(buf);
	sdrsa_client_free(c);
	return NULL;
}

static int t_race(void)
{
	pthread_t th[READERS + 2];
	struct sdrsa_client *c;
	uint8_t page[PAGE];
	struct timespec ts = {RUN_MS / 1000, (RUN_MS % 1000) * 1000000L};

	/* X's pages exist before the readers start. */
	c = connect_as("zc-x");
	CHECK(c != NULL);
	for (unsigned i = 0; i < XPAGES; i++) {
		make_page(page, 1, (uint64_t)i * PAGE, 0);
		CHECK(sdrsa_put(c, (uint64_t)i * PAGE, page) == 0);
	}
	sdrsa_client_free(c);
	/* An idle server hands every new connection to the same worker (the
	 * first one waiting on the listener, docs/THREADS.md); a worker busy
	 * with a reader's GETs (and the send delay) is not waiting, so starting
	 * the connections one by one spreads them over the workers. */
	for (long i = 0; i < READERS; i++) {
		CHECK(pthread_create(&th[i], NULL, reader_main, (void *)i) == 0);
		usleep(30000);
	}
	CHECK(pthread_create(&th[READERS], NULL, x_writer_main, NULL) == 0);
	usleep(30000);
	CHECK(pthread_create(&th[READERS + 1], NULL, y_main, NULL) == 0);
	nanosleep(&ts, NULL);
	atomic_store(&stop, 1);
	for (int i = 0; i < READERS + 2; i++)
		pthread_join(th[i], NULL);
	h_log("checked %llu pages by content (%llu misses while freed)",
	      (unsigned long long)atomic_load(&pages_checked),
	      (unsigned long long)atomic_load(&misses));
	CHECK(!atomic_load(&failed));
	CHECK(atomic_load(&pages_checked) > 4u * XPAGES);
	CHECK(h_server_alive(&srv));
	return H_PASS;
}

int main(int argc, char **argv)
{
	/* 600 slots: X 256, Y 200 and little else, so freed slots are reused
	 * at once. Four workers, so the connections spread over threads. */
	static const char *const extra[] = {"--threads", "4", NULL};

	h_init(argc, argv);
	setenv("SDRSA_TEST_SEND_DELAY_US", "500", 1);
	if (h_server_start_tcp(&srv, "2400K", extra)) {
		h_log("cannot start the memory server");
		return 1;
	}
	h_run("race", t_race);
	h_server_stop(&srv, SIGTERM, 5000);
	return h_finish();
}
