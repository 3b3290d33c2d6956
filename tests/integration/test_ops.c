/* SPDX-License-Identifier: MIT */
/*
 * Every operation of the protocol against a real memory server on loopback,
 * through raw frames: handshake and WELCOME, put/get round trips of single
 * pages and full batches, overwrite, zero pages (flagged and detected), GET
 * of pages never stored, SWAP, FREE, FREE_ALL, STATS counters, pipelined
 * requests with echoed ids, misaligned addresses, and a reconnect under the
 * same name finding its pages again.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define POOL "16M"
#define POOL_PAGES (16u * 1024 * 1024 / SDRSA_PAGE_SIZE)
#define PAGE SDRSA_PAGE_SIZE

static struct h_server srv;
/* A bystander for the subtests that send bad input (misses, misaligned
 * addresses, a malformed frame): its pages must survive them. */
static struct h_victim victim;

/* Open a connection with a unique name, or fail the subtest. */
#define OPEN(c, name)                                                                   \
	do {                                                                            \
		int rc_ = h_open(&srv, (name), NULL, (c));                              \
		CHECKM(rc_ == 0, "handshake as %s: %d", (name), rc_);                   \
	} while (0)

static int t_welcome(void)
{
	struct h_conn c;

	OPEN(&c, "welcome");
	CHECKM(c.welcome.pool_pages == POOL_PAGES, "pool_pages %llu, want %u",
	       (unsigned long long)c.welcome.pool_pages, POOL_PAGES);
	CHECK(c.welcome.quota_pages == 0);
	CHECK(c.welcome.max_batch >= 1 && c.welcome.max_batch <= SDRSA_MAX_BATCH);
	CHECK(c.auth_required == 0); /* no --key-file */
	CHECK(h_ping(&c) == 0);
	h_close(&c);
	return H_PASS;
}

static int t_put_get(void)
{
	struct h_conn c;
	uint64_t addrs[SDRSA_MAX_BATCH];
	uint16_t st[SDRSA_MAX_BATCH];
	uint8_t *buf = malloc((size_t)SDRSA_MAX_BATCH * PAGE);

	CHECK(buf);
	OPEN(&c, "putget");
	/* one page */
	addrs[0] = 0x1000;
	CHECK(h_put_pattern(&c, addrs, 1, 1, st) == 0);
	CHECK(st[0] == SDRSA_S_OK);
	CHECK(h_get(&c, addrs, 1, buf, st) == 0);
	CHECK(st[0] == SDRSA_S_OK);
	CHECK_OK(h_pattern_check(buf, 1, addrs[0]));

	/* a full batch in one frame, at addresses across the 64-bit space */
	for (unsigned i = 0; i < c.welcome.max_batch; i++)
		addrs[i] = (i & 1 ? 0xffff000000000000ull : 0) + (uint64_t)i * 4099 * PAGE;
	CHECK(h_put_pattern(&c, addrs, c.welcome.max_batch, 2, st) == 0);
	for (unsigned i = 0; i < c.welcome.max_batch; i++)
		CHECKM(st[i] == SDRSA_S_OK, "entry %u: %s", i, sdrsa_status_name(st[i]));
	memset(buf, 0, (size_t)SDRSA_MAX_BATCH * PAGE);
	CHECK(h_get(&c, addrs, c.welcome.max_batch, buf, st) == 0);
	for (unsigned i = 0; i < c.welcome.max_batch; i++) {
		CHECKM(st[i] == SDRSA_S_OK, "entry %u: %s", i, sdrsa_status_name(st[i]));
		CHECK_OK(h_pattern_check(buf + (size_t)i * PAGE, 2, addrs[i]));
	}
	/* the same pages one by one, in reverse */
	for (int i = (int)c.welcome.max_batch - 1; i >= 0; i -= 17) {
		CHECK(h_get(&c, &addrs[i], 1, buf, st) == 0);
		CHECK(st[0] == SDRSA_S_OK);
		CHECK_OK(h_pattern_check(buf, 2, addrs[i]));
	}
	/* the highest page address */
	addrs[0] = UINT64_MAX - PAGE + 1;
	CHECK(h_put_pattern(&c, addrs, 1, 3, st) == 0 && st[0] == SDRSA_S_OK);
	CHECK(h_get(&c, addrs, 1, buf, st) == 0 && st[0] == SDRSA_S_OK);
	CHECK_OK(h_pattern_check(buf, 3, addrs[0]));
	h_close(&c);
	free(buf);
	return H_PASS;
}

static int t_overwrite(void)
{
	struct h_conn c;
	uint64_t a[2] = { 0x40000, 0x40000 };
	uint16_t st[2];
	uint8_t buf[PAGE];

	OPEN(&c, "overwrite");
	CHECK(h_put_pattern(&c, a, 1, 10, st) == 0 && st[0] == SDRSA_S_OK);
	CHECK(h_put_pattern(&c, a, 1, 11, st) == 0 && st[0] == SDRSA_S_OK);
	CHECK(h_get(&c, a, 1, buf, st) == 0 && st[0] == SDRSA_S_OK);
	CHECK_OK(h_pattern_check(buf, 11, a[0]));
	h_close(&c);
	return H_PASS;
}

static int t_zero_pages(void)
{
	struct h_conn c;
	struct sdrsa_stats s0, s1;
	static uint8_t zero[PAGE];
	uint8_t buf[3 * PAGE];
	uint64_t a[3] = { 0x10000, 0x20000, 0x30000 };
	const uint8_t *pages[3] = { NULL, zero, NULL };
	uint16_t st[3];

	OPEN(&c, "zeros");
	CHECK(h_stats(&c, &s0) == 0);
	/* flagged zero page, a zero page sent with data, and a data page that
	 * is later overwritten with zeros */
	CHECK(h_put(&c, a, pages, 2, st) == 0);
	CHECK(st[0] == SDRSA_S_OK && st[1] == SDRSA_S_OK);
	CHECK(h_put_pattern(&c, &a[2], 1, 20, st) == 0 && st[0] == SDRSA_S_OK);
	CHECK(h_stats(&c, &s1) == 0);
	CHECKM(s1.zero_pages == s0.zero_pages + 2, "zero_pages %llu -> %llu",
	       (unsigned long long)s0.zero_pages, (unsigned long long)s1.zero_pages);
	CHECKM(s1.used_pages == s0.used_pages + 1,
	       "used_pages %llu -> %llu (zero pages take no slot)",
	       (unsigned long long)s0.used_pages, (unsigned long long)s1.used_pages);
	CHECK(s1.ns_pages == s0.ns_pages + 3);

	CHECK(h_put(&c, &a[2], &pages[2], 1, st) == 0 && st[0] == SDRSA_S_OK);
	CHECK(h_stats(&c, &s1) == 0);
	CHECKM(s1.used_pages == s0.used_pages,
	       "data overwritten with zeros kept its slot: %llu -> %llu",
	       (unsigned long long)s0.used_pages, (unsigned long long)s1.used_pages);
	CHECK(s1.zero_pages == s0.zero_pages + 3);

	memset(buf, 0xcc, sizeof(buf));
	CHECK(h_get(&c, a, 3, buf, st) == 0);
	for (int i = 0; i < 3; i++) {
		CHECK(st[i] == SDRSA_S_OK);
		CHECK(sdrsa_page_is_zero(buf + (size_t)i * PAGE));
	}
	/* and back from zero to data */
	CHECK(h_put_pattern(&c, a, 1, 21, st) == 0 && st[0] == SDRSA_S_OK);
	CHECK(h_get(&c, a, 1, buf, st) == 0 && st[0] == SDRSA_S_OK);
	CHECK_OK(h_pattern_check(buf, 21, a[0]));
	CHECK(h_stats(&c, &s1) == 0);
	CHECK(s1.used_pages == s0.used_pages + 1);
	CHECK(s1.zero_pages == s0.zero_pages + 2);
	h_close(&c);
	return H_PASS;
}

static int t_not_found(void)
{
	struct h_conn c;
	uint64_t a[4] = { 0x7000, 0x8000, 0x9000, 0xfffffffffffff000ull };
	uint16_t st[4];
	uint8_t buf[4 * PAGE];

	OPEN(&c, "notfound");
	CHECK(h_get(&c, a, 4, buf, st) == 0);
	for (int i = 0; i < 4; i++)
		CHECKM(st[i] == SDRSA_S_NOT_FOUND, "entry %d: %s", i, sdrsa_status_name(st[i]));
	/* mixed: stored and never stored in one frame */
	CHECK(h_put_pattern(&c, &a[1], 1, 30, st) == 0 && st[0] == SDRSA_S_OK);
	CHECK(h_get(&c, a, 4, buf, st) == 0);
	CHECK(st[0] == SDRSA_S_NOT_FOUND && st[2] == SDRSA_S_NOT_FOUND &&
	      st[3] == SDRSA_S_NOT_FOUND);
	CHECK(st[1] == SDRSA_S_OK);
	CHECK_OK(h_pattern_check(buf + PAGE, 30, a[1]));
	/* the connection is fine after misses */
	CHECK(h_ping(&c) == 0);
	h_close(&c);
	CHECK_OK(h_victim_check(&srv, &victim));
	return H_PASS;
}

/* SWAP: entry 0 stored, entry 1 fetched, in one round trip. */
static int swap(struct h_conn *c, uint64_t put_addr, uint64_t put_seed, uint64_t get_addr,
		uint16_t st[2], uint8_t *got)
{
	struct sdrsa_hdr req, rep;
	uint8_t p[2 * SDRSA_ENTRY_SIZE + PAGE], *in = malloc(SDRSA_MAX_PAYLOAD);
	struct sdrsa_entry e0 = { .addr = put_addr, .len = PAGE }, e1 = { .addr = get_addr }, r;
	int rc;

	if (!in)
		return -ENOMEM;
	h_pattern(p + 2 * SDRSA_ENTRY_SIZE, put_seed, put_addr);
	e0.csum = sdrsa_page_csum(p + 2 * SDRSA_ENTRY_SIZE, put_addr);
	sdrsa_entry_encode(&e0, p);
	sdrsa_entry_encode(&e1, p + SDRSA_ENTRY_SIZE);
	h_req(c, &req, SDRSA_OP_SWAP, 2, sizeof(p), p);
	rc = h_call(c, &req, p, &rep, in, SDRSA_MAX_PAYLOAD);
	if (rc || rep.status) {
		free(in);
		return rc ? rc : rep.status;
	}
	if (rep.count != 2) {
		free(in);
		return -EPROTO;
	}
	sdrsa_entry_decode(in, &r);
	st[0] = r.status;
	sdrsa_entry_decode(in + SDRSA_ENTRY_SIZE, &r);
	st[1] = r.status;
	if (r.status == SDRSA_S_OK) {
		if (r.flags & SDRSA_EF_ZERO) {
			memset(got, 0, PAGE);
		} else {
			memcpy(got, in + 2 * SDRSA_ENTRY_SIZE, PAGE);
			if (r.csum != sdrsa_page_csum(got, get_addr))
				st[1] = SDRSA_S_CHECKSUM;
		}
	}
	free(in);
	return 0;
}

static int t_swap(void)
{
	struct h_conn c;
	struct sdrsa_stats s0, s1;
	uint64_t a = 0x100000, b = 0x200000, x = 0x300000;
	uint16_t st[2];
	uint8_t buf[PAGE];

	OPEN(&c, "swap");
	CHECK(h_put_pattern(&c, &a, 1, 40, st) == 0 && st[0] == SDRSA_S_OK);
	CHECK(h_stats(&c, &s0) == 0);
	CHECK(swap(&c, b, 41, a, st, buf) == 0);
	CHECKM(st[0] == SDRSA_S_OK && st[1] == SDRSA_S_OK, "swap: %s, %s",
	       sdrsa_status_name(st[0]), sdrsa_status_name(st[1]));
	CHECK_OK(h_pattern_check(buf, 40, a));
	CHECK(h_stats(&c, &s1) == 0);
	CHECK(s1.swaps == s0.swaps + 1);
	/* b was stored, a is still there (SWAP does not free the fetched page) */
	CHECK(h_get(&c, &b, 1, buf, st) == 0 && st[0] == SDRSA_S_OK);
	CHECK_OK(h_pattern_check(buf, 41, b));
	CHECK(h_get(&c, &a, 1, buf, st) == 0 && st[0] == SDRSA_S_OK);
	CHECK_OK(h_pattern_check(buf, 40, a));
	/* fetching a page never stored: the put still happens */
	CHECK(swap(&c, a, 42, x, st, buf) == 0);
	CHECK(st[0] == SDRSA_S_OK);
	CHECK(st[1] == SDRSA_S_NOT_FOUND);
	CHECK(h_get(&c, &a, 1, buf, st) == 0 && st[0] == SDRSA_S_OK);
	CHECK_OK(h_pattern_check(buf, 42, a));
	h_close(&c);
	return H_PASS;
}

static int t_free(void)
{
	struct h_conn c;
	struct sdrsa_stats s0, s1;
	uint64_t a[4] = { 0x1000, 0x2000, 0x3000, 0x4000 }, never = 0x99000;
	uint16_t st[4];
	uint8_t buf[4 * PAGE];

	OPEN(&c, "free");
	CHECK(h_put_pattern(&c, a, 4, 50, st) == 0);
	CHECK(h_stats(&c, &s0) == 0);
	CHECK(h_free(&c, &a[1], 2, st) == 0);
	CHECK(st[0] == SDRSA_S_OK && st[1] == SDRSA_S_OK);
	CHECK(h_stats(&c, &s1) == 0);
	CHECK(s1.used_pages == s0.used_pages - 2);
	CHECK(s1.ns_pages == s0.ns_pages - 2);
	CHECK(s1.frees == s0.frees + 2);
	CHECK(h_get(&c, a, 4, buf, st) == 0);
	CHECK(st[0] == SDRSA_S_OK && st[3] == SDRSA_S_OK);
	CHECK(st[1] == SDRSA_S_NOT_FOUND && st[2] == SDRSA_S_NOT_FOUND);
	CHECK_OK(h_pattern_check(buf, 50, a[0]));
	CHECK_OK(h_pattern_check(buf + 3 * PAGE, 50, a[3]));
	/* freeing what was never stored (or freed twice) is harmless */
	CHECK(h_free(&c, &never, 1, st) == 0);
	CHECK(st[0] == SDRSA_S_OK || st[0] == SDRSA_S_NOT_FOUND);
	CHECK(h_free(&c, &a[1], 1, st) == 0);
	CHECK(st[0] == SDRSA_S_OK || st[0] == SDRSA_S_NOT_FOUND);
	CHECK(h_stats(&c, &s1) == 0);
	CHECK(s1.used_pages == s0.used_pages - 2);
	/* a freed address can be stored again */
	CHECK(h_put_pattern(&c, &a[1], 1, 51, st) == 0 && st[0] == SDRSA_S_OK);
	CHECK(h_get(&c, &a[1], 1, buf, st) == 0 && st[0] == SDRSA_S_OK);
	CHECK_OK(h_pattern_check(buf, 51, a[1]));
	h_close(&c);
	return H_PASS;
}

static int t_free_all(void)
{
	struct h_conn c, other;
	struct sdrsa_stats s0, s1;
	struct sdrsa_hdr req, rep;
	uint64_t a[10], oa = 0x5000;
	const uint8_t *pages[10];
	uint8_t *buf = malloc(10 * PAGE), in[256];
	uint16_t st[10];

	CHECK(buf);
	OPEN(&c, "freeall");
	OPEN(&other, "freeall-other");
	CHECK(h_put_pattern(&other, &oa, 1, 61, st) == 0 && st[0] == SDRSA_S_OK);
	for (int i = 0; i < 10; i++) {
		a[i] = (uint64_t)(i + 1) * 0x10000;
		h_pattern(buf + (size_t)i * PAGE, 60, a[i]);
		pages[i] = i == 3 ? NULL : buf + (size_t)i * PAGE; /* one zero page */
	}
	/* the other namespace also holds pages at the very same addresses, one
	 * of them a zero page: FREE_ALL of c must leave them all */
	{
		const uint8_t *opages[10];
		uint8_t *obuf = malloc(10 * PAGE);

		CHECK(obuf);
		for (int i = 0; i < 10; i++) {
			h_pattern(obuf + (size_t)i * PAGE, 62, a[i]);
			opages[i] = i == 5 ? NULL : obuf + (size_t)i * PAGE;
		}
		CHECK(h_put(&other, a, opages, 10, st) == 0);
		free(obuf);
		for (int i = 0; i < 10; i++)
			CHECK(st[i] == SDRSA_S_OK);
	}
	CHECK(h_put(&c, a, pages, 10, st) == 0);
	CHECK(h_stats(&c, &s0) == 0);
	CHECK(s0.ns_pages == 10);

	h_req(&c, &req, SDRSA_OP_FREE_ALL, 0, 0, NULL);
	CHECK(h_call(&c, &req, NULL, &rep, in, sizeof(in)) == 0);
	CHECKM(rep.status == SDRSA_S_OK, "FREE_ALL: %s", sdrsa_status_name(rep.status));
	/* the reply carries the number of pages freed */
	CHECKM(rep.len == 8, "FREE_ALL reply payload is %u bytes, want a u64 count", rep.len);
	{
		uint64_t freed = 0;
		for (int i = 7; i >= 0; i--)
			freed = freed << 8 | in[i];
		CHECKM(freed == 10, "FREE_ALL freed %llu, want 10", (unsigned long long)freed);
	}
	CHECK(h_stats(&c, &s1) == 0);
	CHECK(s1.ns_pages == 0);
	CHECK(s1.used_pages == s0.used_pages - 9);
	CHECK(s1.zero_pages == s0.zero_pages - 1);
	CHECKM(s1.namespaces == s0.namespaces - 1, "namespaces with pages %llu, was %llu",
	       (unsigned long long)s1.namespaces, (unsigned long long)s0.namespaces);
	CHECK(h_get(&c, a, 10, buf, st) == 0);
	for (int i = 0; i < 10; i++)
		CHECK(st[i] == SDRSA_S_NOT_FOUND);
	/* another namespace is untouched */
	CHECK(h_get(&other, &oa, 1, buf, st) == 0 && st[0] == SDRSA_S_OK);
	CHECK_OK(h_pattern_check(buf, 61, oa));
	CHECK(h_get(&other, a, 10, buf, st) == 0);
	for (int i = 0; i < 10; i++) {
		CHECKM(st[i] == SDRSA_S_OK, "other's page %d: %s", i, sdrsa_status_name(st[i]));
		if (i == 5) {
			for (size_t k = 0; k < PAGE; k++)
				CHECK(buf[(size_t)i * PAGE + k] == 0);
		} else {
			CHECK_OK(h_pattern_check(buf + (size_t)i * PAGE, 62, a[i]));
		}
	}
	CHECK(h_stats(&other, &s1) == 0);
	CHECK(s1.ns_pages == 11);
	/* FREE_ALL of an empty namespace */
	h_req(&c, &req, SDRSA_OP_FREE_ALL, 0, 0, NULL);
	CHECK(h_call(&c, &req, NULL, &rep, in, sizeof(in)) == 0);
	CHECK(rep.status == SDRSA_S_OK);
	h_close(&c);
	h_close(&other);
	free(buf);
	return H_PASS;
}

static int t_stats(void)
{
	struct h_conn c, c2;
	struct sdrsa_stats s0, s1;
	uint64_t a[8], miss[3] = { 0x900000, 0x901000, 0x902000 };
	uint16_t st[8];
	uint8_t buf[8 * PAGE];

	OPEN(&c, "stats");
	/* The server counts a closed connection until its worker has processed
	 * the close: let closes from earlier subtests settle first. */
	CHECK(h_stats(&c, &s1) == 0);
	for (int i = 0; i < 100; i++) {
		h_sleep_ms(20);
		CHECK(h_stats(&c, &s0) == 0);
		if (s0.connections == s1.connections)
			break;
		s1 = s0;
	}
	CHECK(s0.pool_pages == POOL_PAGES);
	CHECK(s0.pool_pages == c.welcome.pool_pages);
	CHECK(s0.used_pages <= s0.pool_pages);
	CHECK(s0.ns_pages == 0);
	CHECK(s0.ns_quota == 0);
	CHECK(s0.connections >= 1);
	OPEN(&c2, "stats-2");
	CHECK(h_stats(&c, &s1) == 0);
	CHECKM(s1.connections == s0.connections + 1, "connections %llu -> %llu",
	       (unsigned long long)s0.connections, (unsigned long long)s1.connections);
	h_close(&c2);

	CHECK(h_stats(&c, &s0) == 0);
	for (int i = 0; i < 8; i++)
		a[i] = 0x800000 + (uint64_t)i * PAGE;
	CHECK(h_put_pattern(&c, a, 8, 70, st) == 0);
	CHECK(h_get(&c, a, 5, buf, st) == 0);
	CHECK(h_get(&c, miss, 3, buf, st) == 0);
	CHECK(h_free(&c, a, 2, st) == 0);
	h_sleep_ms(5);
	CHECK(h_stats(&c, &s1) == 0);
#define DELTA(f, d)                                                                      \
	CHECKM(s1.f == s0.f + (d), #f " %llu -> %llu, want +%d", (unsigned long long)s0.f, \
	       (unsigned long long)s1.f, (int)(d))
	DELTA(puts, 8);
	DELTA(gets, 8);
	DELTA(misses, 3);
	DELTA(frees, 2);
	DELTA(used_pages, 6);
	DELTA(ns_pages, 6);
	DELTA(pool_full, 0);
	DELTA(quota_refused, 0);
	DELTA(auth_failures, 0);
	CHECK(s1.namespaces >= 1);
	CHECK(s1.bytes_in >= s0.bytes_in + 8 * PAGE);
	CHECK(s1.bytes_out >= s0.bytes_out + 5 * PAGE);
	CHECK(s1.uptime_ms >= s0.uptime_ms + 5);
	CHECK(s1.pool_pages == s0.pool_pages);

	/* a malformed frame from another connection counts as bad */
	{
		struct h_conn b;
		struct sdrsa_hdr h;
		uint8_t p[SDRSA_ENTRY_SIZE];
		struct sdrsa_entry e = { .addr = 0, .len = PAGE };

		OPEN(&b, "stats-bad");
		sdrsa_entry_encode(&e, p);
		h_req(&b, &h, SDRSA_OP_PUT, 1, sizeof(p), p); /* data missing */
		CHECK(h_send_frame(b.fd, &h, p) == 0);
		CHECK_OK(h_expect_status(b.fd, SDRSA_S_BAD_FRAME, h.req_id, 0, "short PUT"));
		h_close(&b);
		s0 = s1;
		CHECK(h_stats(&c, &s1) == 0);
		DELTA(bad_frames, 1);
	}
#undef DELTA
	h_close(&c);
	CHECK_OK(h_victim_check(&srv, &victim));
	return H_PASS;
}

/* Several requests in one write; replies echo each req_id. */
static int t_pipelined(void)
{
	struct h_conn c;
	uint8_t out[8 * SDRSA_HDR_SIZE], *in = malloc(SDRSA_MAX_PAYLOAD);
	struct sdrsa_hdr h;
	uint32_t ids[8];
	int seen[8] = { 0 };

	CHECK(in);
	OPEN(&c, "pipelined");
	for (int i = 0; i < 8; i++) {
		h_req(&c, &h, i % 2 ? SDRSA_OP_PING : SDRSA_OP_STATS, 0, 0, NULL);
		h.req_id = ids[i] = 0xabc00000u + (uint32_t)i * 7919;
		sdrsa_hdr_encode(&h, out + i * SDRSA_HDR_SIZE);
	}
	CHECK(h_send(c.fd, out, sizeof(out)) == 0);
	for (int n = 0; n < 8; n++) {
		int k;
		CHECK(h_recv(c.fd, &h, in, SDRSA_MAX_PAYLOAD, H_TIMEOUT_MS) == 0);
		CHECK(h.status == SDRSA_S_OK);
		CHECK(h.flags & SDRSA_F_REPLY);
		for (k = 0; k < 8; k++)
			if (ids[k] == h.req_id && !seen[k])
				break;
		CHECKM(k < 8, "reply with unknown or repeated req_id 0x%x", h.req_id);
		seen[k] = 1;
		CHECK(h.opcode == (k % 2 ? SDRSA_OP_PING : SDRSA_OP_STATS));
	}
	h_close(&c);
	free(in);
	return H_PASS;
}

static int t_misaligned(void)
{
	struct h_conn c;
	uint64_t a[2] = { 0x3000, 0x3001 };
	uint16_t st[2];
	uint8_t buf[2 * PAGE];
	int rc;

	OPEN(&c, "misaligned");
	rc = h_put_pattern(&c, a, 2, 80, st);
	CHECKM(rc == SDRSA_S_BAD_ADDRESS || (rc == 0 && st[1] == SDRSA_S_BAD_ADDRESS),
	       "PUT at 0x3001: rc %d, entry status %s", rc, sdrsa_status_name(st[1]));
	rc = h_get(&c, &a[1], 1, buf, st);
	CHECKM(rc == SDRSA_S_BAD_ADDRESS || (rc == 0 && st[0] == SDRSA_S_BAD_ADDRESS),
	       "GET at 0x3001: rc %d", rc);
	/* the connection is still usable: framing was intact */
	CHECK(h_ping(&c) == 0);
	rc = h_put_pattern(&c, a, 1, 81, st);
	CHECK(rc == 0 && st[0] == SDRSA_S_OK);
	CHECK(h_get(&c, a, 1, buf, st) == 0 && st[0] == SDRSA_S_OK);
	CHECK_OK(h_pattern_check(buf, 81, a[0]));
	h_close(&c);
	CHECK_OK(h_victim_check(&srv, &victim));
	return H_PASS;
}

static int t_reconnect(void)
{
	struct h_conn c, d;
	uint64_t a[16];
	uint16_t st[16];
	uint8_t buf[16 * PAGE];

	for (int i = 0; i < 16; i++)
		a[i] = 0xa0000000ull + (uint64_t)i * 3 * PAGE;
	OPEN(&c, "reco");
	CHECK(h_put_pattern(&c, a, 16, 90, st) == 0);
	/* a second connection under the same name shares the namespace */
	OPEN(&d, "reco");
	CHECK(d.ns == c.ns);
	CHECK(h_get(&d, a, 16, buf, st) == 0);
	for (int i = 0; i < 16; i++) {
		CHECK(st[i] == SDRSA_S_OK);
		CHECK_OK(h_pattern_check(buf + (size_t)i * PAGE, 90, a[i]));
	}
	h_close(&c);
	h_close(&d);
	h_sleep_ms(50);
	/* and after every connection is gone, the pages stay */
	OPEN(&c, "reco");
	memset(buf, 0, sizeof(buf));
	CHECK(h_get(&c, a, 16, buf, st) == 0);
	for (int i = 0; i < 16; i++) {
		CHECK(st[i] == SDRSA_S_OK);
		CHECK_OK(h_pattern_check(buf + (size_t)i * PAGE, 90, a[i]));
	}
	h_close(&c);
	return H_PASS;
}

/* Many frames, more pages than one batch, content verified. */
static int t_volume(void)
{
	struct h_conn c;
	enum { N = 3000, B = 200 };
	uint64_t a[B];
	uint16_t st[B];
	uint8_t *buf = malloc((size_t)B * PAGE);

	CHECK(buf);
	OPEN(&c, "volume");
	for (unsigned base = 0; base < N; base += B) {
		for (unsigned i = 0; i < B; i++)
			a[i] = (uint64_t)(base + i) * PAGE * 5;
		CHECK(h_put_pattern(&c, a, B, 100, st) == 0);
		for (unsigned i = 0; i < B; i++)
			CHECK(st[i] == SDRSA_S_OK);
	}
	for (unsigned base = 0; base < N; base += B) {
		for (unsigned i = 0; i < B; i++)
			a[i] = (uint64_t)(base + i) * PAGE * 5;
		CHECK(h_get(&c, a, B, buf, st) == 0);
		for (unsigned i = 0; i < B; i++) {
			CHECK(st[i] == SDRSA_S_OK);
			CHECK_OK(h_pattern_check(buf + (size_t)i * PAGE, 100, a[i]));
		}
	}
	h_close(&c);
	free(buf);
	return H_PASS;
}

static int t_victim_intact(void)
{
	return h_victim_check(&srv, &victim);
}

int main(int argc, char **argv)
{
	h_init(argc, argv);
	if (h_server_start_tcp(&srv, POOL, NULL)) {
		h_log("cannot start the memory server");
		return 1;
	}
	if (h_victim_setup(&srv, &victim, "victim", NULL) != H_PASS)
		return 1;
	h_run("welcome", t_welcome);
	h_run("put_get", t_put_get);
	h_run("overwrite", t_overwrite);
	h_run("zero_pages", t_zero_pages);
	h_run("not_found", t_not_found);
	h_run("swap", t_swap);
	h_run("free", t_free);
	h_run("free_all", t_free_all);
	h_run("stats", t_stats);
	h_run("pipelined", t_pipelined);
	h_run("misaligned", t_misaligned);
	h_run("reconnect", t_reconnect);
	h_run("volume", t_volume);
	h_run("victim_intact", t_victim_intact);
	h_victim_close(&victim);
	if (!h_server_alive(&srv)) {
		h_log("the server died during the tests");
		return 1;
	}
	return h_finish();
}
