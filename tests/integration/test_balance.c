/* SPDX-License-Identifier: MIT */
/*
 * Connections spread over the worker threads: 8 clients connect one after
 * another to an idle server with --threads 2 (the kernel would wake the same
 * idle worker for each) and stay connected. Each worker's epoll instance,
 * read from /proc/PID/fdinfo, must then hold 4 of them (one more or less at
 * most), and every connection must store and read back its own pages. A
 * second round after half of them closed refills the emptier worker.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define CONNS 8
#define PAGES 4

static struct h_server srv;

/* Is descriptor fd of the server a socket? */
static int is_socket(int fd)
{
	char path[64], target[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)srv.pid, fd);
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return 0;
	target[n] = 0;
	return !strncmp(target, "socket:", 7);
}

/* The sockets registered in each epoll instance of the server (the "tfd:"
 * lines of its fdinfo), less the listener that every worker polls: the
 * connections of each worker. Returns how many instances were found (at
 * most max). */
static int conns_per_worker(int *counts, int max)
{
	char dir[64];
	struct dirent *d;
	DIR *dp;
	int n = 0;

	snprintf(dir, sizeof(dir), "/proc/%d/fdinfo", (int)srv.pid);
	dp = opendir(dir);
	if (!dp)
		return -errno;
	while ((d = readdir(dp)) && n < max) {
		char path[384], line[256];
		int socks = 0, is_epoll = 0, tfd;
		FILE *f;

		if (d->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, d->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "tfd: %d", &tfd) == 1) {
				is_epoll = 1;
				socks += is_socket(tfd);
			}
		fclose(f);
		if (is_epoll)
			counts[n++] = socks - 1;
	}
	closedir(dp);
	return n;
}

/* Wait until the two workers hold `want` connections between them, one
 * more or less on either. */
static int check_spread(int want, int *a, int *b)
{
	for (int tries = 0; tries < 100; tries++) {
		int c[4], n = conns_per_worker(c, 4);

		CHECKM(n == 2, "found %d epoll instances in the server, want 2 (one per worker)",
		       n);
		*a = c[0];
		*b = c[1];
		if (c[0] + c[1] == want && abs(c[0] - c[1]) <= 1)
			return H_PASS;
		usleep(20000);
	}
	h_log("connections per worker: %d and %d, want %d spread evenly", *a, *b, want);
	return H_FAIL;
}

static int use_conn(struct h_conn *c, uint64_t seed)
{
	uint64_t a[PAGES];
	uint16_t st[PAGES];
	uint8_t buf[PAGES * SDRSA_PAGE_SIZE];

	for (int i = 0; i < PAGES; i++)
		a[i] = (uint64_t)(i + 1) * SDRSA_PAGE_SIZE;
	CHECK(h_put_pattern(c, a, PAGES, seed, st) == 0);
	for (int i = 0; i < PAGES; i++)
		CHECKM(st[i] == 0, "put status %u", st[i]);
	CHECK(h_get(c, a, PAGES, buf, st) == 0);
	for (int i = 0; i < PAGES; i++) {
		CHECKM(st[i] == 0, "get status %u", st[i]);
		CHECKM(h_pattern_check(buf + (size_t)i * SDRSA_PAGE_SIZE, seed, a[i]) == 0,
		       "page %d of connection %llu differs", i, (unsigned long long)seed);
	}
	return H_PASS;
}

static int t_spread(void)
{
	struct h_conn c[CONNS];
	int a, b;

	for (int i = 0; i < CONNS; i++) {
		char name[32];

		snprintf(name, sizeof(name), "bal-%d", i);
		CHECKM(h_open(&srv, name, NULL, &c[i]) == 0, "connection %d", i);
	}
	CHECK_OK(check_spread(CONNS, &a, &b));
	h_log("8 connections: %d and %d per worker", a, b);
	for (int i = 0; i < CONNS; i++)
		CHECK_OK(use_conn(&c[i], (uint64_t)i + 1));
	/* Close the first half, whichever workers they were on, then open
	 * four more: the totals must be even again. */
	for (int i = 0; i < CONNS / 2; i++)
		h_close(&c[i]);
	for (int i = 0; i < CONNS / 2; i++) {
		char name[32];

		snprintf(name, sizeof(name), "bal-again-%d", i);
		CHECKM(h_open(&srv, name, NULL, &c[i]) == 0, "connection %d (again)", i);
	}
	CHECK_OK(check_spread(CONNS, &a, &b));
	for (int i = 0; i < CONNS; i++)
		CHECK_OK(use_conn(&c[i], (uint64_t)i + 100));
	for (int i = 0; i < CONNS; i++)
		h_close(&c[i]);
	CHECK_OK(check_spread(0, &a, &b));
	return H_PASS;
}

int main(int argc, char **argv)
{
	static const char *const extra[] = { "--threads", "2", NULL };

	h_init(argc, argv);
	if (h_server_start_tcp(&srv, "8M", extra)) {
		h_log("cannot start the memory server");
		return 1;
	}
	h_run("spread", t_spread);
	h_server_stop(&srv, SIGTERM, 5000);
	return h_finish();
}
