/* SPDX-License-Identifier: MIT */
/*
 * A frame cut off and then silence: the server must close that connection
 * after --io-timeout (1 s here), keep serving everyone else meanwhile (one
 * worker thread, so a stuck connection cannot hide behind another thread),
 * and leave idle connections that are between frames alone.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define PAGE SDRSA_PAGE_SIZE
#define ESZ SDRSA_ENTRY_SIZE
#define IO_TIMEOUT_MS 1000

static struct h_server srv;
static struct h_victim victim;

/* Open an attacker connection, send the first `cut` bytes of a valid
 * single-page PUT and return the socket. */
static int stuck_put(unsigned cut, const char *name)
{
	struct h_conn c;
	struct sdrsa_hdr h;
	uint8_t frame[SDRSA_HDR_SIZE + ESZ + PAGE];
	struct sdrsa_entry e = { .addr = 0xdead000, .len = PAGE };
	uint8_t *p = frame + SDRSA_HDR_SIZE;

	if (h_open(&srv, name, NULL, &c))
		return -1;
	h_pattern(p + ESZ, 1, e.addr);
	e.csum = sdrsa_page_csum(p + ESZ, e.addr);
	sdrsa_entry_encode(&e, p);
	h_req(&c, &h, SDRSA_OP_PUT, 1, ESZ + PAGE, p);
	sdrsa_hdr_encode(&h, frame);
	if (h_send(c.fd, frame, cut)) {
		h_close(&c);
		return -1;
	}
	return c.fd;
}

/* The server closes fd between 0.5x and 5x the io-timeout after the cut. */
static int expect_timed_out(int fd, const char *what)
{
	uint64_t elapsed = 0;
	int rc = h_wait_closed(fd, IO_TIMEOUT_MS * 6, &elapsed);

	CHECKM(rc == 0, "%s: connection not closed within %d ms (rc %d)", what, IO_TIMEOUT_MS * 6,
	       rc);
	h_log("%s: closed after %llu ms", what, (unsigned long long)elapsed);
	CHECKM(elapsed >= IO_TIMEOUT_MS / 2, "%s: closed after %llu ms, before the timeout", what,
	       (unsigned long long)elapsed);
	return H_PASS;
}

static int t_cut_header(void)
{
	int fd = stuck_put(10, "cut-header");
	uint64_t t0 = h_now_ms();

	CHECK(fd >= 0);
	/* meanwhile, the victim is served promptly */
	CHECK_OK(h_victim_check_pages(&victim));
	CHECKM(h_now_ms() - t0 < IO_TIMEOUT_MS / 2, "victim waited %llu ms behind a stuck peer",
	       (unsigned long long)(h_now_ms() - t0));
	CHECK_OK(expect_timed_out(fd, "10 of 32 header bytes"));
	close(fd);
	CHECK_OK(h_victim_check(&srv, &victim));
	return H_PASS;
}

static int t_cut_payload(void)
{
	int fd = stuck_put(SDRSA_HDR_SIZE + ESZ + 1000, "cut-payload");
	struct h_conn c;
	uint64_t addr = 0xdead000;
	uint16_t st;
	uint8_t buf[PAGE];

	CHECK(fd >= 0);
	CHECK_OK(expect_timed_out(fd, "PUT cut in its page"));
	close(fd);
	/* the half-sent page was not stored */
	CHECK(h_open(&srv, "cut-payload", NULL, &c) == 0);
	CHECK(h_get(&c, &addr, 1, buf, &st) == 0);
	CHECK(st == SDRSA_S_NOT_FOUND);
	h_close(&c);
	CHECK_OK(h_victim_check(&srv, &victim));
	return H_PASS;
}

static int t_cut_header_only(void)
{
	int fd = stuck_put(SDRSA_HDR_SIZE, "cut-after-header");

	CHECK(fd >= 0);
	CHECK_OK(expect_timed_out(fd, "header without its payload"));
	close(fd);
	CHECK_OK(h_victim_check(&srv, &victim));
	return H_PASS;
}

/* Many stuck connections at once are all timed out; nobody else waits. */
static int t_many_stuck(void)
{
	int fds[40];
	uint64_t t0;

	for (int i = 0; i < 40; i++) {
		char name[32];
		snprintf(name, sizeof(name), "stuck-%d", i);
		fds[i] =
		    stuck_put((unsigned)(1 + i * 97 % (SDRSA_HDR_SIZE + ESZ + PAGE - 1)), name);
		CHECK(fds[i] >= 0);
	}
	t0 = h_now_ms();
	CHECK_OK(h_victim_check_pages(&victim));
	CHECK(h_now_ms() - t0 < IO_TIMEOUT_MS / 2);
	for (int i = 0; i < 40; i++) {
		CHECK(h_wait_closed(fds[i], IO_TIMEOUT_MS * 6, NULL) == 0);
		close(fds[i]);
	}
	CHECK_OK(h_victim_check(&srv, &victim));
	return H_PASS;
}

/* A connection idle between frames for longer than the io-timeout is not
 * stuck: it stays open and works. (The victim has been idle during every
 * wait above as well.) */
static int t_idle_is_fine(void)
{
	struct h_conn c;

	CHECK(h_open(&srv, "idle", NULL, &c) == 0);
	h_sleep_ms(IO_TIMEOUT_MS * 2 + 500);
	CHECKM(h_ping(&c) == 0, "an idle, authenticated connection was closed");
	h_close(&c);
	return H_PASS;
}

int main(int argc, char **argv)
{
	static const char *const extra[] = { "--io-timeout", "1s", "--threads", "1", NULL };

	h_init(argc, argv);
	if (h_server_start_tcp(&srv, "8M", extra)) {
		h_log("cannot start the memory server");
		return 1;
	}
	if (h_victim_setup(&srv, &victim, "victim", NULL) != H_PASS)
		return 1;
	h_run("cut_header", t_cut_header);
	h_run("cut_payload", t_cut_payload);
	h_run("cut_after_header", t_cut_header_only);
	h_run("many_stuck", t_many_stuck);
	h_run("idle_is_fine", t_idle_is_fine);
	h_victim_close(&victim);
	return h_finish();
}
