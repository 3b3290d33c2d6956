/* SPDX-License-Identifier: MIT */
/*
 * More connections than --max-conns: each extra connection gets one BUSY
 * reply and is closed; the connections already open keep working, and once
 * one of them closes a newcomer is admitted again.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define MAX_CONNS 4

static struct h_server srv;
static struct h_victim victim;

/* A connection over the limit: BUSY (unprompted, or in answer to HELLO),
 * then closed. */
static int expect_busy(const char *what)
{
	struct pollfd p;
	int fd = h_socket(&srv);

	CHECKM(fd >= 0, "%s: connect failed: %s", what, strerror(-fd));
	p.fd = fd;
	p.events = POLLIN;
	if (poll(&p, 1, 500) == 0) {
		/* the server waits for a first frame: say hello */
		struct h_conn c = { .fd = fd };
		struct sdrsa_hdr req;

		CHECK(h_send_hello(&c, "extra", &req, NULL) == 0);
	}
	CHECK_OK(h_expect_status(fd, SDRSA_S_BUSY, -1, 1, what));
	close(fd);
	return H_PASS;
}

/* Open a connection, retrying while the server may still be catching up
 * with a close. */
static int open_retry(const char *name, struct h_conn *c)
{
	for (int i = 0; i < 40; i++) {
		int rc = h_open(&srv, name, NULL, c);
		if (rc == 0)
			return H_PASS;
		CHECKM(rc == SDRSA_S_BUSY || rc == -ECONNRESET, "%s: %d", name, rc);
		h_sleep_ms(50);
	}
	h_log("%s: still BUSY after 2 s", name);
	return H_FAIL;
}

/* Wait until the server counts n open connections (it learns of a close
 * a moment after the client closes). */
static int wait_conns(unsigned n)
{
	struct sdrsa_stats st;

	for (int i = 0; i < 100; i++) {
		CHECK(h_stats(&victim.c, &st) == 0);
		if (st.connections == n)
			return H_PASS;
		h_sleep_ms(20);
	}
	h_log("server counts %llu connections, want %u", (unsigned long long)st.connections, n);
	return H_FAIL;
}

static int t_limit(void)
{
	struct h_conn c[MAX_CONNS - 1];
	char name[16];

	CHECK_OK(wait_conns(1));

	/* the victim holds one connection; fill the rest */
	for (int i = 0; i < MAX_CONNS - 1; i++) {
		snprintf(name, sizeof(name), "c%d", i);
		CHECKM(h_open(&srv, name, NULL, &c[i]) == 0, "connection %d of %d refused", i + 2,
		       MAX_CONNS);
	}
	for (int i = 0; i < 5; i++)
		CHECK_OK(expect_busy("connection over the limit"));
	/* the admitted ones still work */
	CHECK_OK(h_victim_check_pages(&victim));
	for (int i = 0; i < MAX_CONNS - 1; i++)
		CHECK(h_ping(&c[i]) == 0);
	/* one leaves, one more gets in */
	h_close(&c[0]);
	CHECK_OK(open_retry("c0-again", &c[0]));
	CHECK(h_ping(&c[0]) == 0);
	CHECK_OK(expect_busy("over the limit again"));
	for (int i = 0; i < MAX_CONNS - 1; i++)
		h_close(&c[i]);
	CHECK_OK(wait_conns(1));
	CHECK_OK(h_victim_check(&srv, &victim));
	return H_PASS;
}

/* Connections that never say hello count too, and do not lock the server
 * up for the others once they go. */
static int t_silent_connections(void)
{
	int fds[MAX_CONNS - 1];
	struct h_conn c;

	CHECK_OK(wait_conns(1)); /* the victim check's probe has gone */
	for (int i = 0; i < MAX_CONNS - 1; i++) {
		fds[i] = h_socket(&srv);
		CHECK(fds[i] >= 0);
	}
	CHECK_OK(wait_conns(MAX_CONNS));
	CHECK_OK(expect_busy("over the limit with silent peers"));
	for (int i = 0; i < MAX_CONNS - 1; i++)
		close(fds[i]);
	CHECK_OK(open_retry("after-silent", &c));
	h_close(&c);
	CHECK_OK(wait_conns(1));
	CHECK_OK(h_victim_check(&srv, &victim));
	return H_PASS;
}

int main(int argc, char **argv)
{
	static const char *const extra[] = { "--max-conns", "4", NULL };

	h_init(argc, argv);
	if (h_server_start_tcp(&srv, "8M", extra)) {
		h_log("cannot start the memory server");
		return 1;
	}
	if (h_victim_setup(&srv, &victim, "victim", NULL) != H_PASS)
		return 1;
	h_run("limit", t_limit);
	h_run("silent_connections", t_silent_connections);
	h_victim_close(&victim);
	return h_finish();
}
