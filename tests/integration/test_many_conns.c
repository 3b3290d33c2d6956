/* SPDX-License-Identifier: MIT */
/*
 * Hundreds of connections at once: 400 clients (4 threads of 100) all
 * connect and authenticate, and only then each stores its own pattern pages
 * and reads them back, all 400 connections open at the same time. The
 * victim, connected before, keeps its pages; STATS counts the connections.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define PAGE SDRSA_PAGE_SIZE
#define THREADS 4
#define PER_THREAD 100
#define CONNS (THREADS * PER_THREAD)
#define PAGES_PER_CONN 4

static struct h_server srv;
static struct h_victim victim;
static pthread_barrier_t all_open, all_checked;

struct worker {
	int id;
	int failed;
	char why[200];
	struct h_conn c[PER_THREAD];
};

static void addrs_of(int conn, uint64_t *a)
{
	for (int i = 0; i < PAGES_PER_CONN; i++)
		a[i] = 0x100000000ull * (uint64_t)(i + 1) + (uint64_t)conn * PAGE;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	uint8_t buf[PAGES_PER_CONN * PAGE];
	int opened = 0;

	for (int i = 0; i < PER_THREAD; i++) {
		char name[32];
		int rc;

		snprintf(name, sizeof(name), "many-%d", w->id * PER_THREAD + i);
		rc = h_open(&srv, name, NULL, &w->c[i]);
		if (rc) {
			snprintf(w->why, sizeof(w->why), "connection %d: handshake %d", i, rc);
			w->failed = 1;
			break;
		}
		opened++;
	}
	pthread_barrier_wait(&all_open);
	for (int i = 0; i < opened && !w->failed; i++) {
		int conn = w->id * PER_THREAD + i;
		uint64_t a[PAGES_PER_CONN];
		uint16_t st[PAGES_PER_CONN];

		addrs_of(conn, a);
		if (h_put_pattern(&w->c[i], a, PAGES_PER_CONN, (uint64_t)conn, st) != 0 ||
		    st[0] || st[1] || st[2] || st[3]) {
			snprintf(w->why, sizeof(w->why), "connection %d: PUT failed", conn);
			w->failed = 1;
		}
	}
	for (int i = 0; i < opened && !w->failed; i++) {
		int conn = w->id * PER_THREAD + i;
		uint64_t a[PAGES_PER_CONN];
		uint16_t st[PAGES_PER_CONN];

		addrs_of(conn, a);
		memset(buf, 0, sizeof(buf));
		if (h_get(&w->c[i], a, PAGES_PER_CONN, buf, st) != 0) {
			snprintf(w->why, sizeof(w->why), "connection %d: GET failed", conn);
			w->failed = 1;
			break;
		}
		for (int k = 0; k < PAGES_PER_CONN; k++)
			if (st[k] ||
			    h_pattern_check(buf + (size_t)k * PAGE, (uint64_t)conn, a[k])) {
				snprintf(w->why, sizeof(w->why), "connection %d: page %d wrong",
					 conn, k);
				w->failed = 1;
				break;
			}
	}
	pthread_barrier_wait(&all_checked);
	for (int i = 0; i < opened; i++)
		h_close(&w->c[i]);
	return NULL;
}

static struct worker workers[THREADS];

static int t_many(void)
{
	pthread_t th[THREADS];
	struct sdrsa_stats s;
	int failed = 0;

	pthread_barrier_init(&all_open, NULL, THREADS + 1);
	pthread_barrier_init(&all_checked, NULL, THREADS + 1);
	for (int i = 0; i < THREADS; i++) {
		workers[i].id = i;
		CHECK(pthread_create(&th[i], NULL, worker_main, &workers[i]) == 0);
	}
	pthread_barrier_wait(&all_open);
	/* all connections are open now */
	CHECK(h_stats(&victim.c, &s) == 0);
	h_log("server reports %llu connections", (unsigned long long)s.connections);
	pthread_barrier_wait(&all_checked);
	for (int i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
		if (workers[i].failed) {
			h_log("thread %d: %s", i, workers[i].why);
			failed = 1;
		}
	}
	pthread_barrier_destroy(&all_open);
	pthread_barrier_destroy(&all_checked);
	CHECK(!failed);
	CHECKM(s.connections >= CONNS + 1, "STATS connections %llu with %d open",
	       (unsigned long long)s.connections, CONNS + 1);
	CHECK_OK(h_victim_check(&srv, &victim));
	return H_PASS;
}

/* After they all left: their pages are still there, the count is back. */
static int t_after(void)
{
	struct h_conn c;
	struct sdrsa_stats s;
	uint64_t a[PAGES_PER_CONN];
	uint16_t st[PAGES_PER_CONN];
	uint8_t buf[PAGES_PER_CONN * PAGE];

	for (int conn = 0; conn < CONNS; conn += 37) {
		char name[32];
		snprintf(name, sizeof(name), "many-%d", conn);
		CHECK(h_open(&srv, name, NULL, &c) == 0);
		addrs_of(conn, a);
		CHECK(h_get(&c, a, PAGES_PER_CONN, buf, st) == 0);
		for (int k = 0; k < PAGES_PER_CONN; k++) {
			CHECK(st[k] == SDRSA_S_OK);
			CHECK_OK(h_pattern_check(buf + (size_t)k * PAGE, (uint64_t)conn, a[k]));
		}
		h_close(&c);
	}
	for (int i = 0; i < 50; i++) {
		CHECK(h_stats(&victim.c, &s) == 0);
		if (s.connections <= 2)
			break;
		h_sleep_ms(50);
	}
	CHECKM(s.connections <= 2, "STATS connections %llu after the clients left",
	       (unsigned long long)s.connections);
	CHECK(s.namespaces >= CONNS + 1);
	return H_PASS;
}

int main(int argc, char **argv)
{
	static const char *const extra[] = { "--max-conns", "1000", NULL };
	int rc;

	h_init(argc, argv);
	rc = h_raise_nofile(4 * CONNS);
	if (rc) {
		rc = h_skip("cannot raise RLIMIT_NOFILE to %d: %s", 4 * CONNS, strerror(-rc));
		h_finish();
		return rc;
	}
	if (h_server_start_tcp(&srv, "64M", extra)) {
		h_log("cannot start the memory server");
		return 1;
	}
	if (h_victim_setup(&srv, &victim, "victim", NULL) != H_PASS)
		return 1;
	h_run("many", t_many);
	h_run("after", t_after);
	h_victim_close(&victim);
	return h_finish();
}
