/* SPDX-License-Identifier: MIT */
/*
 * A namespace that is not yours. Bob sends frames carrying Alice's namespace
 * id (GET, PUT, SWAP, FREE, FREE_ALL) and ids that belong to nobody: each is
 * refused with FORBIDDEN, no page data of Alice's comes back, and Alice's
 * pages are neither changed nor freed. Bob's own namespace is separate: the
 * same addresses there are his own pages.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define PAGE SDRSA_PAGE_SIZE
#define ESZ SDRSA_ENTRY_SIZE

static struct h_server srv;
static struct h_victim alice;

/* Send one entry frame from bob's connection with header ns = ns and
 * expect FORBIDDEN without any page data in the reply. */
static int forbidden(struct h_conn *bob, uint8_t op, uint32_t ns, const char *what)
{
	uint8_t p[2 * ESZ + PAGE];
	struct sdrsa_hdr req, rep;
	uint8_t *in = malloc(SDRSA_MAX_PAYLOAD);
	uint16_t count = 1;
	uint32_t len = ESZ;
	int rc;

	CHECK(in);
	memset(p, 0, sizeof(p));
	if (op == SDRSA_OP_PUT || op == SDRSA_OP_SWAP) {
		struct sdrsa_entry e = { .addr = alice.addrs[0], .len = PAGE };
		h_pattern(p + (op == SDRSA_OP_SWAP ? 2 : 1) * ESZ, 0xbad, e.addr);
		e.csum = sdrsa_page_csum(p + (op == SDRSA_OP_SWAP ? 2 : 1) * ESZ, e.addr);
		sdrsa_entry_encode(&e, p);
		if (op == SDRSA_OP_SWAP) {
			struct sdrsa_entry g = { .addr = alice.addrs[1] };
			sdrsa_entry_encode(&g, p + ESZ);
			count = 2;
			len = 2 * ESZ + PAGE;
		} else {
			len = ESZ + PAGE;
		}
	} else if (op == SDRSA_OP_FREE_ALL || op == SDRSA_OP_STATS) {
		count = 0;
		len = 0;
	} else {
		struct sdrsa_entry e = { .addr = alice.addrs[0] };
		sdrsa_entry_encode(&e, p);
	}
	h_req(bob, &req, op, count, len, p);
	req.ns = ns;
	rc = h_call(bob, &req, len ? p : NULL, &rep, in, SDRSA_MAX_PAYLOAD);
	CHECKM(rc == 0, "%s: no reply (%s)", what, strerror(-rc));
	CHECKM(rep.status == SDRSA_S_FORBIDDEN, "%s: status %s, want FORBIDDEN", what,
	       sdrsa_status_name(rep.status));
	/* nothing of Alice's may leak in the reply */
	for (unsigned i = 0; i < alice.n && rep.len >= 64; i++) {
		uint8_t page[PAGE];
		h_pattern(page, alice.seed, alice.addrs[i]);
		CHECKM(!memmem(in, rep.len, page, 64), "%s: reply leaks Alice's page", what);
	}
	free(in);
	return H_PASS;
}

static int t_other_namespace(void)
{
	static const uint8_t ops[] = { SDRSA_OP_GET, SDRSA_OP_PUT, SDRSA_OP_SWAP, SDRSA_OP_FREE,
				       SDRSA_OP_FREE_ALL };
	struct h_conn bob;
	char what[64];

	CHECK(h_open(&srv, "bob", NULL, &bob) == 0);
	CHECKM(bob.ns != alice.c.ns, "alice and bob share namespace id %u", bob.ns);
	for (size_t i = 0; i < sizeof(ops); i++) {
		snprintf(what, sizeof(what), "%s in alice's namespace", sdrsa_op_name(ops[i]));
		CHECK_OK(forbidden(&bob, ops[i], alice.c.ns, what));
		/* FORBIDDEN keeps the connection */
		CHECKM(h_ping(&bob) == 0, "bob's connection unusable after FORBIDDEN");
		CHECK_OK(h_victim_check(&srv, &alice));
	}
	h_close(&bob);
	return H_PASS;
}

static int t_nobodys_namespace(void)
{
	static const uint32_t ids[] = { 0x7fffffffu, 0xffffffffu, 12345 };
	struct h_conn bob;

	CHECK(h_open(&srv, "bob", NULL, &bob) == 0);
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		if (ids[i] == bob.ns)
			continue;
		CHECK_OK(forbidden(&bob, SDRSA_OP_PUT, ids[i], "PUT in nobody's namespace"));
		CHECK_OK(forbidden(&bob, SDRSA_OP_GET, ids[i], "GET in nobody's namespace"));
	}
	/* bob's neighbour ids: the next namespace may well be in use */
	CHECK_OK(forbidden(&bob, SDRSA_OP_GET, bob.ns + 1, "GET in ns + 1"));
	CHECK_OK(forbidden(&bob, SDRSA_OP_FREE_ALL, bob.ns - 1, "FREE_ALL in ns - 1"));
	h_close(&bob);
	CHECK_OK(h_victim_check(&srv, &alice));
	return H_PASS;
}

/* The same addresses in bob's own namespace are bob's pages. */
static int t_separate(void)
{
	struct h_conn bob;
	uint16_t st[H_VICTIM_PAGES];
	uint8_t *buf = malloc((size_t)H_VICTIM_PAGES * PAGE);
	struct sdrsa_hdr req, rep;
	uint8_t in[64];

	CHECK(buf);
	CHECK(h_open(&srv, "bob2", NULL, &bob) == 0);
	CHECK(h_get(&bob, alice.addrs, alice.n, buf, st) == 0);
	for (unsigned i = 0; i < alice.n; i++)
		CHECKM(st[i] == SDRSA_S_NOT_FOUND, "bob sees a page at alice's 0x%llx",
		       (unsigned long long)alice.addrs[i]);
	CHECK(h_put_pattern(&bob, alice.addrs, alice.n, 0xb0b, st) == 0);
	for (unsigned i = 0; i < alice.n; i++)
		CHECK(st[i] == SDRSA_S_OK);
	CHECK(h_get(&bob, alice.addrs, alice.n, buf, st) == 0);
	for (unsigned i = 0; i < alice.n; i++) {
		CHECK(st[i] == SDRSA_S_OK);
		CHECK_OK(h_pattern_check(buf + (size_t)i * PAGE, 0xb0b, alice.addrs[i]));
	}
	CHECK_OK(h_victim_check(&srv, &alice));
	/* bob frees everything of his: alice keeps hers */
	CHECK(h_free(&bob, alice.addrs, 3, st) == 0);
	h_req(&bob, &req, SDRSA_OP_FREE_ALL, 0, 0, NULL);
	CHECK(h_call(&bob, &req, NULL, &rep, in, sizeof(in)) == 0);
	CHECK(rep.status == SDRSA_S_OK);
	CHECK_OK(h_victim_check(&srv, &alice));
	h_close(&bob);
	free(buf);
	return H_PASS;
}

int main(int argc, char **argv)
{
	h_init(argc, argv);
	if (h_server_start_tcp(&srv, "8M", NULL)) {
		h_log("cannot start the memory server");
		return 1;
	}
	if (h_victim_setup(&srv, &alice, "alice", NULL) != H_PASS)
		return 1;
	h_run("other_namespace", t_other_namespace);
	h_run("nobodys_namespace", t_nobodys_namespace);
	h_run("separate", t_separate);
	h_victim_close(&alice);
	return h_finish();
}
