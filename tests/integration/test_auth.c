/* SPDX-License-Identifier: MIT */
/*
 * Authentication with --key-file: the right key is welcomed and the server
 * proves it knows the key; a wrong key, an unknown client, a missing MAC, a
 * MAC replayed from another connection, any operation before the handshake
 * ends, and a frame before WELCOME longer than any handshake payload are
 * refused (AUTH_FAILED / AUTH_REQUIRED / BAD_FRAME) and that connection is
 * closed, while a client connected before keeps its pages.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "common/util.h"
#include "harness.h"

#define PAGE SDRSA_PAGE_SIZE
#define ESZ SDRSA_ENTRY_SIZE

static struct h_server srv;
static struct h_victim victim;
static uint8_t key_alice[SDRSA_KEY_SIZE], key_bob[SDRSA_KEY_SIZE], key_other[SDRSA_KEY_SIZE];
static unsigned failures_expected;

static int write_keys(const char *path)
{
	char hex_a[65], hex_b[65], text[512];

	sdrsa_hex_encode(key_alice, sizeof(key_alice), hex_a);
	sdrsa_hex_encode(key_bob, sizeof(key_bob), hex_b);
	snprintf(text, sizeof(text), "# test keys\nalice %s\nbob %s  # second client\n", hex_a,
		 hex_b);
	return h_write_file(path, text, 0600);
}

/* Handshake on a fresh socket expecting refusal `status`, then a close. */
static int expect_refused(const char *name, const uint8_t *key, uint16_t status,
			  const char *what)
{
	struct h_conn c;
	int fd = h_socket(&srv), step = 0, rc;

	CHECK(fd >= 0);
	rc = h_handshake(fd, name, key, &c, &step);
	CHECKM(rc == status, "%s: handshake returned %d (%s), want %s", what, rc,
	       rc > 0 ? sdrsa_status_name((unsigned)rc) : strerror(-rc), sdrsa_status_name(status));
	CHECKM(h_wait_closed(fd, 3000, NULL) == 0, "%s: connection not closed after %s", what,
	       sdrsa_status_name(status));
	close(fd);
	if (status == SDRSA_S_AUTH_FAILED)
		failures_expected++;
	return H_PASS;
}

static int t_right_key(void)
{
	struct h_conn c;
	uint64_t a = 0x1000;
	uint16_t st;
	uint8_t buf[PAGE];

	/* h_open verifies the server's proof in WELCOME */
	CHECK(h_open(&srv, "bob", key_bob, &c) == 0);
	CHECK(c.auth_required == 1);
	CHECK(h_put_pattern(&c, &a, 1, 5, &st) == 0 && st == SDRSA_S_OK);
	CHECK(h_get(&c, &a, 1, buf, &st) == 0 && st == SDRSA_S_OK);
	CHECK_OK(h_pattern_check(buf, 5, a));
	h_close(&c);
	return H_PASS;
}

static int t_wrong_key(void)
{
	CHECK_OK(expect_refused("alice", key_other, SDRSA_S_AUTH_FAILED, "alice, wrong key"));
	CHECK_OK(expect_refused("alice", key_bob, SDRSA_S_AUTH_FAILED, "alice with bob's key"));
	CHECK_OK(expect_refused("bob", key_alice, SDRSA_S_AUTH_FAILED, "bob with alice's key"));
	CHECK_OK(expect_refused("alice", NULL, SDRSA_S_AUTH_FAILED, "alice, no MAC"));
	CHECK_OK(h_victim_check(&srv, &victim));
	return H_PASS;
}

static int t_unknown_client(void)
{
	CHECK_OK(expect_refused("mallory", key_alice, SDRSA_S_AUTH_FAILED, "unknown name"));
	CHECK_OK(expect_refused("mallory", NULL, SDRSA_S_AUTH_FAILED, "unknown name, no MAC"));
	/* the key of a known client does not make another name known */
	CHECK_OK(expect_refused("alice2", key_alice, SDRSA_S_AUTH_FAILED, "alice2"));
	CHECK_OK(h_victim_check(&srv, &victim));
	return H_PASS;
}

/* A raw connection as "alice" that has not authenticated: just connected,
 * or (after_hello) with its HELLO answered OK; the HELLO's nonce goes to
 * nonce when not NULL. */
static int pre_auth_conn(struct h_conn *c, int after_hello, uint8_t *nonce)
{
	struct sdrsa_hdr req;

	memset(c, 0, sizeof(*c));
	c->fd = h_socket(&srv);
	CHECK(c->fd >= 0);
	if (after_hello) {
		CHECK(h_send_hello(c, "alice", &req, nonce) == 0);
		CHECK_OK(h_expect_status(c->fd, SDRSA_S_OK, req.req_id, 0, "HELLO"));
	}
	return H_PASS;
}

/* A MAC computed for another connection's nonces is worthless. */
static int t_replay(void)
{
	struct h_conn c;
	struct sdrsa_hdr req;
	uint8_t out[SDRSA_HELLO_MAX], mac[SDRSA_MAC_SIZE], stale_nonce[SDRSA_NONCE_SIZE];
	uint8_t nonce[SDRSA_NONCE_SIZE];
	int fd;
	size_t n;

	randombytes_buf(stale_nonce, sizeof(stale_nonce));
	CHECK_OK(pre_auth_conn(&c, 1, nonce));
	fd = c.fd;
	/* MAC over a nonce that is not this connection's challenge */
	sdrsa_auth_mac(key_alice, 0, nonce, stale_nonce, "alice", mac);
	h_req(&c, &req, SDRSA_OP_AUTH, 0, sizeof(mac), mac);
	CHECK(h_send_frame(fd, &req, mac) == 0);
	CHECK_OK(h_expect_status(fd, SDRSA_S_AUTH_FAILED, req.req_id, 1, "stale MAC"));
	close(fd);
	failures_expected++;
	/* the server's own proof replayed as the client's */
	{
		struct sdrsa_challenge ch;
		struct sdrsa_hdr rep;
		uint8_t in[256];

		fd = h_socket(&srv);
		CHECK(fd >= 0);
		c.fd = fd;
		n = h_hello("alice", out, nonce);
		h_req(&c, &req, SDRSA_OP_HELLO, 0, (uint32_t)n, out);
		CHECK(h_call(&c, &req, out, &rep, in, sizeof(in)) == 0);
		CHECK(rep.status == SDRSA_S_OK);
		CHECK(sdrsa_challenge_decode(in, rep.len, &ch) == 0);
		sdrsa_auth_mac(key_alice, 1, nonce, ch.nonce, "alice", mac);
		h_req(&c, &req, SDRSA_OP_AUTH, 0, sizeof(mac), mac);
		CHECK(h_send_frame(fd, &req, mac) == 0);
		CHECK_OK(
		    h_expect_status(fd, SDRSA_S_AUTH_FAILED, req.req_id, 1, "server-side MAC"));
		close(fd);
		failures_expected++;
	}
	CHECK_OK(h_victim_check(&srv, &victim));
	return H_PASS;
}

/* Any operation before WELCOME: AUTH_REQUIRED and close. */
static int op_before_auth(uint8_t op, int after_hello, const char *what)
{
	struct h_conn c;
	struct sdrsa_hdr req;
	uint8_t p[ESZ + PAGE];
	uint32_t len = 0;
	uint16_t count = 0;
	int fd;

	CHECK_OK(pre_auth_conn(&c, after_hello, NULL));
	fd = c.fd;
	if (op == SDRSA_OP_PUT) {
		struct sdrsa_entry e = { .addr = victim.addrs[0], .len = PAGE };
		h_pattern(p + ESZ, 99, e.addr);
		e.csum = sdrsa_page_csum(p + ESZ, e.addr);
		sdrsa_entry_encode(&e, p);
		count = 1;
		len = ESZ + PAGE;
	} else if (op == SDRSA_OP_GET || op == SDRSA_OP_FREE) {
		struct sdrsa_entry e = { .addr = victim.addrs[0] };
		sdrsa_entry_encode(&e, p);
		count = 1;
		len = ESZ;
	}
	h_req(&c, &req, op, count, len, p);
	req.ns = victim.c.ns; /* aim at a real namespace */
	CHECK(h_send_frame(fd, &req, len ? p : NULL) == 0);
	CHECK_OK(h_expect_status(fd, SDRSA_S_AUTH_REQUIRED, req.req_id, 1, what));
	close(fd);
	return H_PASS;
}

static int t_op_before_auth(void)
{
	CHECK_OK(op_before_auth(SDRSA_OP_GET, 0, "GET before HELLO"));
	CHECK_OK(op_before_auth(SDRSA_OP_PUT, 0, "PUT before HELLO"));
	CHECK_OK(op_before_auth(SDRSA_OP_FREE_ALL, 0, "FREE_ALL before HELLO"));
	CHECK_OK(op_before_auth(SDRSA_OP_STATS, 0, "STATS before HELLO"));
	CHECK_OK(op_before_auth(SDRSA_OP_GET, 1, "GET between HELLO and AUTH"));
	CHECK_OK(op_before_auth(SDRSA_OP_PUT, 1, "PUT between HELLO and AUTH"));
	CHECK_OK(op_before_auth(SDRSA_OP_FREE, 1, "FREE between HELLO and AUTH"));
	CHECK_OK(h_victim_check(&srv, &victim));
	return H_PASS;
}

/*
 * Before WELCOME no frame is longer than a HELLO. A longer one is refused as
 * soon as its header is in (the status it would get anyway), without waiting
 * for a payload: a peer that has not authenticated cannot make the server
 * buffer up to 1 MiB per connection. Only the header is sent here.
 */
static int big_before_auth(uint8_t op, uint16_t count, uint32_t len, int after_hello,
			   uint16_t status, const char *what)
{
	struct h_conn c;
	struct sdrsa_hdr req;
	uint8_t b[SDRSA_HDR_SIZE];
	int fd;

	CHECK_OK(pre_auth_conn(&c, after_hello, NULL));
	fd = c.fd;
	h_req(&c, &req, op, count, 0, NULL);
	req.len = len;
	sdrsa_hdr_encode(&req, b);
	CHECK(h_send(fd, b, sizeof(b)) == 0);
	CHECK_OK(h_expect_status(fd, status, req.req_id, 1, what));
	close(fd);
	return H_PASS;
}

static int t_big_before_auth(void)
{
	CHECK_OK(big_before_auth(SDRSA_OP_HELLO, 0, SDRSA_MAX_PAYLOAD, 0, SDRSA_S_BAD_FRAME,
				 "HELLO of 1 MiB"));
	CHECK_OK(big_before_auth(SDRSA_OP_HELLO, 0, SDRSA_HELLO_MAX + 1, 0, SDRSA_S_BAD_FRAME,
				 "HELLO one byte too long"));
	CHECK_OK(big_before_auth(SDRSA_OP_PUT, SDRSA_MAX_BATCH, SDRSA_MAX_PAYLOAD, 0,
				 SDRSA_S_AUTH_REQUIRED, "PUT of 1 MiB before HELLO"));
	CHECK_OK(big_before_auth(SDRSA_OP_AUTH, 0, SDRSA_MAX_PAYLOAD, 1, SDRSA_S_BAD_FRAME,
				 "AUTH of 1 MiB"));
	CHECK_OK(big_before_auth(SDRSA_OP_GET, SDRSA_MAX_BATCH, SDRSA_MAX_BATCH * ESZ, 1,
				 SDRSA_S_AUTH_REQUIRED, "GET of 256 pages between HELLO and AUTH"));
	CHECK_OK(h_victim_check(&srv, &victim));
	return H_PASS;
}

/* AUTH without HELLO: refused one way or the other, and closed. */
static int t_auth_without_hello(void)
{
	struct h_conn c;
	struct sdrsa_hdr req, rep;
	uint8_t mac[SDRSA_MAC_SIZE] = { 0 }, in[256];
	int fd = h_socket(&srv), rc;

	CHECK(fd >= 0);
	memset(&c, 0, sizeof(c));
	c.fd = fd;
	h_req(&c, &req, SDRSA_OP_AUTH, 0, sizeof(mac), mac);
	CHECK(h_send_frame(fd, &req, mac) == 0);
	rc = h_recv(fd, &rep, in, sizeof(in), H_TIMEOUT_MS);
	CHECKM(rc == 0 &&
		   (rep.status == SDRSA_S_AUTH_REQUIRED || rep.status == SDRSA_S_AUTH_FAILED),
	       "AUTH without HELLO: rc %d status %s", rc, rc ? "-" : sdrsa_status_name(rep.status));
	if (rep.status == SDRSA_S_AUTH_FAILED)
		failures_expected++;
	CHECK(h_wait_closed(fd, 3000, NULL) == 0);
	close(fd);
	CHECK_OK(h_victim_check(&srv, &victim));
	return H_PASS;
}

/* Many failed attempts in a row change nothing for others. */
static int t_hammer(void)
{
	for (int i = 0; i < 30; i++) {
		uint8_t k[SDRSA_KEY_SIZE];
		randombytes_buf(k, sizeof(k));
		CHECK_OK(expect_refused(i % 2 ? "alice" : "nobody", k, SDRSA_S_AUTH_FAILED,
					"random key"));
	}
	CHECK_OK(h_victim_check(&srv, &victim));
	return H_PASS;
}

static int t_stats_count_failures(void)
{
	struct sdrsa_stats s;

	CHECK(h_stats(&victim.c, &s) == 0);
	CHECKM(s.auth_failures == failures_expected, "auth_failures %llu, want %u",
	       (unsigned long long)s.auth_failures, failures_expected);
	return H_PASS;
}

int main(int argc, char **argv)
{
	char keys[256];
	const char *extra[] = { "--key-file", keys, "--io-timeout", "2s", NULL };

	h_init(argc, argv);
	randombytes_buf(key_alice, sizeof(key_alice));
	randombytes_buf(key_bob, sizeof(key_bob));
	randombytes_buf(key_other, sizeof(key_other));
	snprintf(keys, sizeof(keys), "%s/keys", h_tmpdir());
	if (write_keys(keys)) {
		h_log("cannot write %s", keys);
		return 1;
	}
	if (h_server_start_tcp(&srv, "8M", extra)) {
		h_log("cannot start the memory server");
		return 1;
	}
	if (h_victim_setup(&srv, &victim, "alice", key_alice) != H_PASS)
		return 1;
	h_run("right_key", t_right_key);
	h_run("wrong_key", t_wrong_key);
	h_run("unknown_client", t_unknown_client);
	h_run("replay", t_replay);
	h_run("op_before_auth", t_op_before_auth);
	h_run("auth_without_hello", t_auth_without_hello);
	h_run("big_before_auth", t_big_before_auth);
	h_run("hammer", t_hammer);
	h_run("stats_count_failures", t_stats_count_failures);
	h_victim_close(&victim);
	return h_finish();
}
