/* SPDX-License-Identifier: MIT */
/*
 * Bad input on the wire. Each subtest attacks a real server over its own
 * connection and then checks, besides the answer the protocol defines, that
 * the server is alive and that a client connected before the attack (the
 * victim) reads every one of its pages back with the exact contents.
 *
 * Defined answers (include/sdrsa/protocol.h): wrong magic -> BAD_MAGIC and
 * close; wrong version -> BAD_VERSION and close; payload or batch over the
 * limit -> TOO_BIG and close; unknown opcode -> UNKNOWN_OP, connection
 * usable; payload inconsistent with its header (lengths that lie, entries of
 * the wrong shape) -> BAD_FRAME, connection usable when framing allows;
 * wrong metadata checksum -> CHECKSUM; wrong page checksum -> entry CHECKSUM
 * and the page is not stored.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "harness.h"

#define PAGE SDRSA_PAGE_SIZE
#define ESZ SDRSA_ENTRY_SIZE

static struct h_server srv;
static struct h_victim victim;
static unsigned attacker_no;

/* A fresh, authenticated attacker connection. */
static int attacker(struct h_conn *c)
{
	char name[32];
	int rc;

	snprintf(name, sizeof(name), "attacker-%u", ++attacker_no);
	rc = h_open(&srv, name, NULL, c);
	if (rc)
		h_log("attacker handshake failed: %d", rc);
	return rc;
}

#define ATTACKER(c) CHECK(attacker(c) == 0)

/* The attacker's connection still works: PING, then a page round trip. */
static int still_usable(struct h_conn *c)
{
	uint64_t a = 0x77770000ull + (uint64_t)c->next_id * PAGE;
	uint16_t st;
	uint8_t buf[PAGE];

	CHECKM(h_ping(c) == 0, "connection unusable after the error reply");
	CHECK(h_put_pattern(c, &a, 1, 0xa77, &st) == 0 && st == SDRSA_S_OK);
	CHECK(h_get(c, &a, 1, buf, &st) == 0 && st == SDRSA_S_OK);
	CHECK_OK(h_pattern_check(buf, 0xa77, a));
	return H_PASS;
}

/* An address is not stored in c's namespace. */
static int not_stored(struct h_conn *c, uint64_t addr)
{
	uint16_t st;
	uint8_t buf[PAGE];

	CHECK(h_get(c, &addr, 1, buf, &st) == 0);
	CHECKM(st == SDRSA_S_NOT_FOUND, "page 0x%llx was stored: %s", (unsigned long long)addr,
	       sdrsa_status_name(st));
	return H_PASS;
}

/* Send the request h as it is (altered after h_req or not) with its payload
 * p on fd and expect the reply status `status` for it; then, with
 * must_close, the connection closed by the server. */
static int send_frame_expect(int fd, const struct sdrsa_hdr *h, const void *p, uint16_t status,
			     int must_close, const char *what)
{
	CHECK(h_send_frame(fd, h, p) == 0);
	return h_expect_status(fd, status, h->req_id, must_close, what);
}

/* Send one request frame (op, count, len bytes of payload p; p may be NULL
 * when len is 0) with a correct checksum on c, and expect the reply status
 * `status` for it with the connection left open. */
static int send_expect(struct h_conn *c, uint8_t op, uint16_t count, uint32_t len, const uint8_t *p,
		       uint16_t status, const char *what)
{
	struct sdrsa_hdr h;

	h_req(c, &h, op, count, len, p);
	return send_frame_expect(c->fd, &h, p, status, 0, what);
}

/* Build a well-formed single-page PUT payload at addr; returns its length. */
static uint32_t put1(uint8_t *p, uint64_t addr, uint64_t seed)
{
	struct sdrsa_entry e = { .addr = addr, .len = PAGE };

	h_pattern(p + ESZ, seed, addr);
	e.csum = sdrsa_page_csum(p + ESZ, addr);
	sdrsa_entry_encode(&e, p);
	return ESZ + PAGE;
}

#define VICTIM_OK() CHECK_OK(h_victim_check(&srv, &victim))

static int t_bad_magic(void)
{
	struct h_conn c;
	struct sdrsa_hdr h;
	uint8_t b[SDRSA_HDR_SIZE];

	/* after the handshake */
	ATTACKER(&c);
	h_req(&c, &h, SDRSA_OP_PING, 0, 0, NULL);
	sdrsa_hdr_encode(&h, b);
	memcpy(b, "XDRA", 4);
	CHECK(h_send(c.fd, b, sizeof(b)) == 0);
	CHECK_OK(h_expect_status(c.fd, SDRSA_S_BAD_MAGIC, -1, 1, "bad magic"));
	h_close(&c);
	/* as the very first bytes of a connection: someone speaking HTTP */
	{
		static const char http[] = "GET / HTTP/1.1\r\nHost: sdrsa1\r\n\r\n";
		int fd = h_socket(&srv);
		CHECK(fd >= 0);
		CHECK(sizeof(http) - 1 == SDRSA_HDR_SIZE);
		CHECK(h_send(fd, http, SDRSA_HDR_SIZE) == 0);
		CHECK_OK(h_expect_status(fd, SDRSA_S_BAD_MAGIC, -1, 1, "HTTP request"));
		close(fd);
	}
	VICTIM_OK();
	return H_PASS;
}

static int t_bad_version(void)
{
	static const uint8_t versions[] = { 0, 2, 0xff };

	for (size_t i = 0; i < sizeof(versions); i++) {
		struct h_conn c;
		struct sdrsa_hdr h;

		ATTACKER(&c);
		h_req(&c, &h, SDRSA_OP_PING, 0, 0, NULL);
		h.version = versions[i];
		CHECK_OK(send_frame_expect(c.fd, &h, NULL, SDRSA_S_BAD_VERSION, 1, "bad version"));
		h_close(&c);
	}
	VICTIM_OK();
	return H_PASS;
}

static int t_too_big(void)
{
	static const uint32_t lens[] = { SDRSA_MAX_PAYLOAD + 1, 0x7fffffffu, 0xffffffffu };

	/* payload length over the limit: only the header is sent */
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		struct h_conn c;
		struct sdrsa_hdr h;

		ATTACKER(&c);
		h_req(&c, &h, SDRSA_OP_PUT, 1, 0, NULL);
		h.len = lens[i];
		CHECK_OK(send_frame_expect(c.fd, &h, NULL, SDRSA_S_TOO_BIG, 1, "huge len"));
		h_close(&c);
	}
	/* entry count over the limit, with a length that would fit */
	{
		struct h_conn c;
		struct sdrsa_hdr h;

		ATTACKER(&c);
		h_req(&c, &h, SDRSA_OP_GET, SDRSA_MAX_BATCH + 1, 0, NULL);
		h.len = (SDRSA_MAX_BATCH + 1) * ESZ;
		CHECK_OK(send_frame_expect(c.fd, &h, NULL, SDRSA_S_TOO_BIG, 1, "count 257"));
		h_close(&c);
		ATTACKER(&c);
		h_req(&c, &h, SDRSA_OP_FREE, 0xffff, 0, NULL);
		CHECK_OK(send_frame_expect(c.fd, &h, NULL, SDRSA_S_TOO_BIG, 1, "count 65535"));
		h_close(&c);
	}
	VICTIM_OK();
	return H_PASS;
}

static int t_unknown_op(void)
{
	struct h_conn c;
	uint8_t p[100];

	ATTACKER(&c);
	/* empty payload */
	CHECK_OK(send_expect(&c, 0x7e, 0, 0, NULL, SDRSA_S_UNKNOWN_OP, "opcode 0x7e"));
	CHECK_OK(still_usable(&c));
	/* with a payload the server must skip */
	for (size_t i = 0; i < sizeof(p); i++)
		p[i] = (uint8_t)i;
	CHECK_OK(send_expect(&c, 0xff, 2, sizeof(p), p, SDRSA_S_UNKNOWN_OP, "opcode 0xff"));
	CHECK_OK(still_usable(&c));
	/* opcode 0 */
	CHECK_OK(send_expect(&c, 0, 0, 0, NULL, SDRSA_S_UNKNOWN_OP, "opcode 0"));
	CHECK_OK(still_usable(&c));
	h_close(&c);
	VICTIM_OK();
	return H_PASS;
}

/* len shorter than the frame's contents. */
static int t_lying_short(void)
{
	struct h_conn c;
	uint8_t p[2 * ESZ + PAGE];
	uint64_t addr = 0x51000;

	ATTACKER(&c);
	/* a PUT whose entry announces a page that the length leaves out */
	put1(p, addr, 1);
	CHECK_OK(
	    send_expect(&c, SDRSA_OP_PUT, 1, ESZ, p, SDRSA_S_BAD_FRAME, "PUT without its page"));
	CHECK_OK(still_usable(&c));
	CHECK_OK(not_stored(&c, addr));

	/* a PUT one byte short of its page */
	put1(p, addr, 1);
	CHECK_OK(send_expect(&c, SDRSA_OP_PUT, 1, ESZ + PAGE - 1, p, SDRSA_S_BAD_FRAME,
			     "PUT one byte short"));
	CHECK_OK(still_usable(&c));
	CHECK_OK(not_stored(&c, addr));

	/* two entries announced, one entry's bytes sent */
	{
		struct sdrsa_entry e = { .addr = addr };
		sdrsa_entry_encode(&e, p);
		CHECK_OK(
		    send_expect(&c, SDRSA_OP_GET, 2, ESZ, p, SDRSA_S_BAD_FRAME, "GET meta > len"));
		CHECK_OK(still_usable(&c));
	}
	/* entries announced, nothing at all */
	CHECK_OK(send_expect(&c, SDRSA_OP_FREE, 3, 0, NULL, SDRSA_S_BAD_FRAME, "FREE len 0"));
	CHECK_OK(still_usable(&c));
	h_close(&c);
	VICTIM_OK();
	return H_PASS;
}

/* len longer than the frame's contents, within the limit, all bytes sent. */
static int t_lying_long(void)
{
	struct h_conn c;
	uint8_t *p = calloc(1, 3 * PAGE);
	uint64_t addr = 0x52000;

	CHECK(p);
	ATTACKER(&c);
	put1(p, addr, 2);
	CHECK_OK(send_expect(&c, SDRSA_OP_PUT, 1, ESZ + PAGE + 100, p, SDRSA_S_BAD_FRAME,
			     "PUT + 100 bytes"));
	CHECK_OK(still_usable(&c));
	CHECK_OK(not_stored(&c, addr));

	/* two pages' worth for one page */
	put1(p, addr, 2);
	CHECK_OK(
	    send_expect(&c, SDRSA_OP_PUT, 1, ESZ + 2 * PAGE, p, SDRSA_S_BAD_FRAME, "PUT + a page"));
	CHECK_OK(still_usable(&c));
	CHECK_OK(not_stored(&c, addr));

	/* a GET carrying a page it should not */
	{
		struct sdrsa_entry e = { .addr = addr };
		sdrsa_entry_encode(&e, p);
		CHECK_OK(send_expect(&c, SDRSA_OP_GET, 1, ESZ + PAGE, p, SDRSA_S_BAD_FRAME,
				     "GET with data"));
		CHECK_OK(still_usable(&c));
	}
	/* a payload on an operation that takes none */
	CHECK_OK(send_expect(&c, SDRSA_OP_PING, 0, 16, p, SDRSA_S_BAD_FRAME, "PING with payload"));
	CHECK_OK(still_usable(&c));
	h_close(&c);
	free(p);
	VICTIM_OK();
	return H_PASS;
}

/* Entries of the wrong shape, framing intact. */
static int t_bad_entries(void)
{
	struct h_conn c;
	uint8_t p[3 * ESZ + PAGE];
	struct sdrsa_entry e;
	uint64_t addr = 0x53000;

	ATTACKER(&c);
	/* GET with no entries */
	CHECK_OK(send_expect(&c, SDRSA_OP_GET, 0, 0, NULL, SDRSA_S_BAD_FRAME, "GET count 0"));
	CHECK_OK(still_usable(&c));
	/* PUT entry with a status set */
	put1(p, addr, 3);
	sdrsa_entry_decode(p, &e);
	e.status = SDRSA_S_OK + 1;
	sdrsa_entry_encode(&e, p);
	CHECK_OK(
	    send_expect(&c, SDRSA_OP_PUT, 1, ESZ + PAGE, p, SDRSA_S_BAD_FRAME, "entry status"));
	CHECK_OK(not_stored(&c, addr));
	/* PUT entry with an unknown flag */
	put1(p, addr, 3);
	sdrsa_entry_decode(p, &e);
	e.flags = 0x8000;
	sdrsa_entry_encode(&e, p);
	CHECK_OK(send_expect(&c, SDRSA_OP_PUT, 1, ESZ + PAGE, p, SDRSA_S_BAD_FRAME, "entry flag"));
	CHECK_OK(not_stored(&c, addr));
	/* zero flag and data together */
	put1(p, addr, 3);
	sdrsa_entry_decode(p, &e);
	e.flags = SDRSA_EF_ZERO;
	sdrsa_entry_encode(&e, p);
	CHECK_OK(
	    send_expect(&c, SDRSA_OP_PUT, 1, ESZ + PAGE, p, SDRSA_S_BAD_FRAME, "zero with data"));
	CHECK_OK(not_stored(&c, addr));
	/* SWAP with three entries */
	memset(p, 0, sizeof(p));
	{
		struct sdrsa_entry e0 = { .addr = addr, .len = PAGE }, e1 = { .addr = addr + PAGE };
		h_pattern(p + 3 * ESZ, 3, addr);
		e0.csum = sdrsa_page_csum(p + 3 * ESZ, addr);
		sdrsa_entry_encode(&e0, p);
		sdrsa_entry_encode(&e1, p + ESZ);
		sdrsa_entry_encode(&e1, p + 2 * ESZ);
	}
	CHECK_OK(send_expect(&c, SDRSA_OP_SWAP, 3, 3 * ESZ + PAGE, p, SDRSA_S_BAD_FRAME,
			     "SWAP count 3"));
	CHECK_OK(not_stored(&c, addr));
	CHECK_OK(still_usable(&c));
	h_close(&c);
	VICTIM_OK();
	return H_PASS;
}

static int t_bad_meta_csum(void)
{
	struct h_conn c;
	struct sdrsa_hdr h;
	uint8_t p[ESZ + PAGE];
	uint64_t addr = 0x54000;

	ATTACKER(&c);
	put1(p, addr, 4);
	h_req(&c, &h, SDRSA_OP_PUT, 1, sizeof(p), p);
	h.csum ^= 0x100;
	CHECK_OK(send_frame_expect(c.fd, &h, p, SDRSA_S_CHECKSUM, 0, "PUT meta csum"));
	CHECK_OK(not_stored(&c, addr));
	CHECK_OK(still_usable(&c));
	/* an entry corrupted after the checksum was computed */
	put1(p, addr, 4);
	h_req(&c, &h, SDRSA_OP_PUT, 1, sizeof(p), p);
	p[1] ^= 0x10; /* the address, still page-aligned */
	CHECK_OK(send_frame_expect(c.fd, &h, p, SDRSA_S_CHECKSUM, 0, "corrupted entry"));
	CHECK_OK(not_stored(&c, addr));
	CHECK_OK(not_stored(&c, addr ^ 0x1000));
	CHECK_OK(still_usable(&c));
	/* a GET and a FREE with a wrong checksum change nothing */
	{
		struct sdrsa_entry e = { .addr = victim.addrs[1] };
		sdrsa_entry_encode(&e, p);
		h_req(&c, &h, SDRSA_OP_FREE, 1, ESZ, p);
		h.csum = ~h.csum;
		CHECK_OK(send_frame_expect(c.fd, &h, p, SDRSA_S_CHECKSUM, 0, "FREE csum"));
	}
	h_close(&c);
	/* a handshake payload with a wrong checksum */
	{
		uint8_t out[SDRSA_HELLO_MAX];
		struct h_conn fresh = { .fd = h_socket(&srv) };
		size_t n;

		CHECK(fresh.fd >= 0);
		n = h_hello("csum", out, NULL);
		h_req(&fresh, &h, SDRSA_OP_HELLO, 0, (uint32_t)n, out);
		h.csum ^= 1;
		CHECK_OK(send_frame_expect(fresh.fd, &h, out, SDRSA_S_CHECKSUM, 0, "HELLO csum"));
		h_close(&fresh);
	}
	VICTIM_OK();
	return H_PASS;
}

static int t_bad_page_csum(void)
{
	struct h_conn c;
	uint64_t a[3] = { 0x61000, 0x62000, 0x63000 };
	uint16_t st[3];
	uint8_t buf[3 * PAGE];
	uint8_t p[3 * ESZ + 3 * PAGE];
	struct sdrsa_hdr h, rep;
	uint8_t *in = malloc(SDRSA_MAX_PAYLOAD);

	CHECK(in);
	ATTACKER(&c);
	/* page 1 already holds data that a corrupt overwrite must not touch */
	CHECK(h_put_pattern(&c, &a[1], 1, 5, st) == 0 && st[0] == SDRSA_S_OK);
	for (int i = 0; i < 3; i++) {
		struct sdrsa_entry e = { .addr = a[i], .len = PAGE };
		uint8_t *d = p + 3 * ESZ + (size_t)i * PAGE;
		h_pattern(d, 6, a[i]);
		e.csum = sdrsa_page_csum(d, a[i]);
		if (i == 1)
			d[100] ^= 0x04; /* corrupted in flight */
		sdrsa_entry_encode(&e, p + (size_t)i * ESZ);
	}
	h_req(&c, &h, SDRSA_OP_PUT, 3, sizeof(p), p);
	CHECK(h_call(&c, &h, p, &rep, in, SDRSA_MAX_PAYLOAD) == 0);
	CHECKM(rep.status == SDRSA_S_OK, "header status %s; want per-entry statuses",
	       sdrsa_status_name(rep.status));
	CHECK(rep.count == 3);
	for (int i = 0; i < 3; i++) {
		struct sdrsa_entry e;
		sdrsa_entry_decode(in + (size_t)i * ESZ, &e);
		st[i] = e.status;
	}
	CHECKM(st[1] == SDRSA_S_CHECKSUM, "corrupted page: %s", sdrsa_status_name(st[1]));
	CHECKM(st[0] == SDRSA_S_OK && st[2] == SDRSA_S_OK, "good pages: %s, %s",
	       sdrsa_status_name(st[0]), sdrsa_status_name(st[2]));
	CHECK(h_get(&c, a, 3, buf, st) == 0);
	CHECK(st[0] == SDRSA_S_OK && st[1] == SDRSA_S_OK && st[2] == SDRSA_S_OK);
	CHECK_OK(h_pattern_check(buf, 6, a[0]));
	CHECKM(h_pattern_check(buf + PAGE, 5, a[1]) == H_PASS,
	       "the corrupt PUT changed the stored page");
	CHECK_OK(h_pattern_check(buf + 2 * PAGE, 6, a[2]));
	/* a corrupt page at a new address is not stored */
	{
		uint64_t n = 0x64000;
		struct sdrsa_entry e = { .addr = n, .len = PAGE };
		h_pattern(p + ESZ, 7, n);
		e.csum = sdrsa_page_csum(p + ESZ, n) + 1;
		sdrsa_entry_encode(&e, p);
		h_req(&c, &h, SDRSA_OP_PUT, 1, ESZ + PAGE, p);
		CHECK(h_call(&c, &h, p, &rep, in, SDRSA_MAX_PAYLOAD) == 0);
		CHECK(rep.status == SDRSA_S_OK && rep.count == 1);
		sdrsa_entry_decode(in, &e);
		CHECK(e.status == SDRSA_S_CHECKSUM);
		CHECK_OK(not_stored(&c, n));
		/* the checksum binds the page to its address */
		e = (struct sdrsa_entry){ .addr = n, .len = PAGE };
		e.csum = sdrsa_page_csum(p + ESZ, n + PAGE);
		sdrsa_entry_encode(&e, p);
		h_req(&c, &h, SDRSA_OP_PUT, 1, ESZ + PAGE, p);
		CHECK(h_call(&c, &h, p, &rep, in, SDRSA_MAX_PAYLOAD) == 0);
		sdrsa_entry_decode(in, &e);
		CHECK(rep.status == SDRSA_S_OK && e.status == SDRSA_S_CHECKSUM);
		CHECK_OK(not_stored(&c, n));
	}
	CHECK_OK(still_usable(&c));
	h_close(&c);
	free(in);
	VICTIM_OK();
	return H_PASS;
}

/* Header faults without a specific status: any error or a close. */
static int t_odd_headers(void)
{
	struct h_conn c;
	struct sdrsa_hdr h;

	/* unknown header flags */
	ATTACKER(&c);
	h_req(&c, &h, SDRSA_OP_PING, 0, 0, NULL);
	h.flags = 0x8000;
	CHECK(h_send_frame(c.fd, &h, NULL) == 0);
	CHECK_OK(h_expect_error_or_close(c.fd, "unknown header flag"));
	h_close(&c);
	/* a GET that claims to be a reply */
	ATTACKER(&c);
	{
		uint8_t p[ESZ];
		struct sdrsa_entry e = { .addr = victim.addrs[0] };
		sdrsa_entry_encode(&e, p);
		h_req(&c, &h, SDRSA_OP_GET, 1, ESZ, p);
		h.flags = SDRSA_F_REPLY;
		CHECK(h_send_frame(c.fd, &h, p) == 0);
		/* whatever the answer, nothing of the victim's may come back */
		{
			struct sdrsa_hdr r;
			uint8_t *in = malloc(SDRSA_MAX_PAYLOAD);
			int rc = h_recv(c.fd, &r, in, SDRSA_MAX_PAYLOAD, 2000);
			CHECK(rc != 0 || r.status != SDRSA_S_OK || r.len <= ESZ ||
			      h_pattern_check(in + ESZ, victim.seed, victim.addrs[0]) != H_PASS);
			free(in);
		}
	}
	h_close(&c);
	VICTIM_OK();
	return H_PASS;
}

/* Cut-off headers followed by a close: the server just drops them. */
static int t_truncated_then_close(void)
{
	for (int n = 1; n < (int)SDRSA_HDR_SIZE; n += 5) {
		struct h_conn c;
		struct sdrsa_hdr h;
		uint8_t b[SDRSA_HDR_SIZE];

		ATTACKER(&c);
		h_req(&c, &h, SDRSA_OP_PING, 0, 0, NULL);
		sdrsa_hdr_encode(&h, b);
		CHECK(h_send(c.fd, b, (size_t)n) == 0);
		h_close(&c);
	}
	/* a PUT cut in its page, then close */
	{
		struct h_conn c;
		struct sdrsa_hdr h;
		uint8_t p[ESZ + PAGE], b[SDRSA_HDR_SIZE];
		uint64_t addr = 0x65000;

		ATTACKER(&c);
		put1(p, addr, 8);
		h_req(&c, &h, SDRSA_OP_PUT, 1, sizeof(p), p);
		sdrsa_hdr_encode(&h, b);
		CHECK(h_send(c.fd, b, sizeof(b)) == 0);
		CHECK(h_send(c.fd, p, 1000) == 0);
		h_close(&c);
		h_sleep_ms(50);
		ATTACKER(&c);
		CHECK_OK(not_stored(&c, addr));
		h_close(&c);
	}
	/* a PUT frame replacing stored pages, cut in its second page, then
	 * close: no page of the frame changes (none is half-written) */
	{
		struct h_conn c;
		struct sdrsa_hdr h;
		uint64_t a[3] = { 0x66000, 0x67000, 0x68000 };
		uint16_t st[3];
		uint8_t p[3 * ESZ + 3 * PAGE], b[SDRSA_HDR_SIZE], buf[3 * PAGE];

		CHECK(h_open(&srv, "cut-frame", NULL, &c) == 0);
		CHECK(h_put_pattern(&c, a, 3, 11, st) == 0);
		CHECK(st[0] == SDRSA_S_OK && st[1] == SDRSA_S_OK && st[2] == SDRSA_S_OK);
		for (int i = 0; i < 3; i++) {
			struct sdrsa_entry e = { .addr = a[i], .len = PAGE };
			uint8_t *d = p + 3 * ESZ + (size_t)i * PAGE;

			h_pattern(d, 12, a[i]);
			e.csum = sdrsa_page_csum(d, a[i]);
			sdrsa_entry_encode(&e, p + (size_t)i * ESZ);
		}
		h_req(&c, &h, SDRSA_OP_PUT, 3, sizeof(p), p);
		sdrsa_hdr_encode(&h, b);
		CHECK(h_send(c.fd, b, sizeof(b)) == 0);
		CHECK(h_send(c.fd, p, 3 * ESZ + PAGE + 1000) == 0);
		h_close(&c);
		h_sleep_ms(50);
		CHECK(h_open(&srv, "cut-frame", NULL, &c) == 0); /* same namespace */
		CHECK(h_get(&c, a, 3, buf, st) == 0);
		for (int i = 0; i < 3; i++) {
			CHECK(st[i] == SDRSA_S_OK);
			CHECKM(h_pattern_check(buf + (size_t)i * PAGE, 11, a[i]) == H_PASS,
			       "page %d changed by a PUT frame that never arrived whole", i);
		}
		h_close(&c);
	}
	VICTIM_OK();
	return H_PASS;
}

/* Random bytes: the server refuses them as not sdrsa and closes. */
static int t_garbage(void)
{
	uint8_t junk[8192];

	for (int round = 0; round < 20; round++) {
		int fd = h_socket(&srv);
		size_t n = round < 10 ? SDRSA_HDR_SIZE : sizeof(junk);

		CHECK(fd >= 0);
		randombytes_buf(junk, sizeof(junk));
		junk[0] = 'Z'; /* never the magic */
		CHECK(h_send(fd, junk, n) == 0 || n > SDRSA_HDR_SIZE);
		if (n == SDRSA_HDR_SIZE)
			CHECK_OK(h_expect_status(fd, SDRSA_S_BAD_MAGIC, -1, 1, "random header"));
		else
			CHECK(h_wait_closed(fd, 3000, NULL) >= 0);
		close(fd);
	}
	/* random bytes after a valid handshake */
	for (int round = 0; round < 10; round++) {
		struct h_conn c;
		ATTACKER(&c);
		randombytes_buf(junk, sizeof(junk));
		junk[0] = 'Z';
		h_send(c.fd, junk, sizeof(junk));
		h_close(&c);
	}
	VICTIM_OK();
	return H_PASS;
}

/* A frame delivered one byte at a time is still one frame. */
static int t_dribble(void)
{
	struct h_conn c;
	struct sdrsa_hdr h;
	uint8_t p[ESZ + PAGE], b[SDRSA_HDR_SIZE + ESZ + PAGE];
	uint64_t addr = 0x66000;
	uint16_t st;
	uint8_t buf[PAGE];

	ATTACKER(&c);
	put1(p, addr, 9);
	h_req(&c, &h, SDRSA_OP_PUT, 1, sizeof(p), p);
	sdrsa_hdr_encode(&h, b);
	memcpy(b + SDRSA_HDR_SIZE, p, sizeof(p));
	for (size_t i = 0; i < sizeof(b); i++) {
		CHECK(h_send(c.fd, b + i, 1) == 0);
		if (i < 64 || i % 512 == 0)
			usleep(200);
	}
	CHECK_OK(h_expect_status(c.fd, SDRSA_S_OK, h.req_id, 0, "dribbled PUT"));
	CHECK(h_get(&c, &addr, 1, buf, &st) == 0 && st == SDRSA_S_OK);
	CHECK_OK(h_pattern_check(buf, 9, addr));
	h_close(&c);
	VICTIM_OK();
	return H_PASS;
}

/* A bad frame between good ones in a single write: each gets its own
 * answer, matched by req_id. */
static int t_mixed_stream(void)
{
	struct h_conn c;
	struct sdrsa_hdr h, r;
	uint8_t out[3 * SDRSA_HDR_SIZE + ESZ], *o = out;
	uint8_t *in = malloc(SDRSA_MAX_PAYLOAD);
	struct sdrsa_entry e = { .addr = 0x1000 };
	uint32_t ids[3];
	int got[3] = { 0 };

	CHECK(in);
	ATTACKER(&c);
	h_req(&c, &h, SDRSA_OP_PING, 0, 0, NULL);
	ids[0] = h.req_id;
	sdrsa_hdr_encode(&h, o);
	o += SDRSA_HDR_SIZE;
	/* a FREE that lies: two entries announced, one sent */
	sdrsa_entry_encode(&e, o + SDRSA_HDR_SIZE);
	h_req(&c, &h, SDRSA_OP_FREE, 2, ESZ, o + SDRSA_HDR_SIZE);
	ids[1] = h.req_id;
	sdrsa_hdr_encode(&h, o);
	o += SDRSA_HDR_SIZE + ESZ;
	h_req(&c, &h, SDRSA_OP_PING, 0, 0, NULL);
	ids[2] = h.req_id;
	sdrsa_hdr_encode(&h, o);
	CHECK(h_send(c.fd, out, sizeof(out)) == 0);
	for (int n = 0; n < 3; n++) {
		int k;
		CHECK(h_recv(c.fd, &r, in, SDRSA_MAX_PAYLOAD, H_TIMEOUT_MS) == 0);
		for (k = 0; k < 3 && ids[k] != r.req_id; k++)
			;
		CHECKM(k < 3 && !got[k], "unexpected req_id %u", r.req_id);
		got[k] = 1;
		if (k == 1)
			CHECKM(r.status == SDRSA_S_BAD_FRAME, "lying FREE: %s",
			       sdrsa_status_name(r.status));
		else
			CHECK(r.status == SDRSA_S_OK);
	}
	CHECK_OK(still_usable(&c));
	h_close(&c);
	free(in);
	VICTIM_OK();
	return H_PASS;
}

int main(int argc, char **argv)
{
	static const char *const extra[] = { "--io-timeout", "2s", NULL };

	h_init(argc, argv);
	if (h_server_start_tcp(&srv, "32M", extra)) {
		h_log("cannot start the memory server");
		return 1;
	}
	if (h_victim_setup(&srv, &victim, "victim", NULL) != H_PASS) {
		h_log("cannot store the victim's pages");
		return 1;
	}
	h_run("bad_magic", t_bad_magic);
	h_run("bad_version", t_bad_version);
	h_run("too_big", t_too_big);
	h_run("unknown_op", t_unknown_op);
	h_run("lying_short", t_lying_short);
	h_run("lying_long", t_lying_long);
	h_run("bad_entries", t_bad_entries);
	h_run("bad_meta_csum", t_bad_meta_csum);
	h_run("bad_page_csum", t_bad_page_csum);
	h_run("odd_headers", t_odd_headers);
	h_run("truncated_then_close", t_truncated_then_close);
	h_run("garbage", t_garbage);
	h_run("dribble", t_dribble);
	h_run("mixed_stream", t_mixed_stream);
	h_victim_close(&victim);
	return h_finish();
}
