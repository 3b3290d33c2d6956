/* SPDX-License-Identifier: MIT */
/*
 * libsdrsa end to end against the real memory server (and, where the server
 * cannot be made to misbehave on demand, a small fake server in a thread):
 * synchronous get/put/swap/free/stats, batched many-page calls, the
 * pipelined submit/flush/reap interface with completions out of order,
 * -errno for every failure the header documents (ENOENT, EINVAL, EDQUOT,
 * ENOSPC, EBADMSG, ETIMEDOUT, ENOTCONN, ECONNRESET, ECONNREFUSED, EPERM,
 * EBUSY), keys and key files, Unix sockets, and one handle per thread.
 */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sodium.h>

#include "common/util.h"
#include "harness.h"
#include "harness_lib.h"

#define PAGE SDRSA_PAGE_SIZE
#define ESZ SDRSA_ENTRY_SIZE

static struct h_server srv;

#define CONNECT(cp, name)                                                                 \
	do {                                                                              \
		int rc_ = h_lib_connect(srv.addr_str, (name), NULL, 5000, (cp));          \
		CHECKM(rc_ == 0, "connect as %s: %s", (name), strerror(-rc_));            \
	} while (0)

static int t_connect(void)
{
	struct sdrsa_client *c;
	struct sdrsa_stats s;

	CONNECT(&c, "lib-basic");
	CHECK(sdrsa_client_pool_pages(c) == 64u * 1024 * 1024 / PAGE);
	CHECK(sdrsa_client_quota_pages(c) == 0);
	CHECK(sdrsa_client_fd(c) >= 0);
	CHECK(sdrsa_ping(c) == 0);
	CHECK(sdrsa_stats(c, &s) == 0);
	CHECK(s.pool_pages == sdrsa_client_pool_pages(c));
	CHECK(s.ns_pages == 0);
	sdrsa_client_free(c);
	sdrsa_client_free(NULL);
	/* the default name */
	{
		struct sdrsa_client_config cfg = { .address = srv.addr_str };
		CHECK(sdrsa_client_connect(&cfg, &c) == 0);
		CHECK(sdrsa_ping(c) == 0);
		sdrsa_client_free(c);
	}
	return H_PASS;
}

static int t_sync(void)
{
	struct sdrsa_client *c;
	uint8_t p[PAGE], q[PAGE], g[PAGE];
	uint64_t freed = 0, a = 0x10000, b = 0x20000, never = 0x990000;

	CONNECT(&c, "lib-sync");
	h_pattern(p, 1, a);
	CHECK(sdrsa_put(c, a, p) == 0);
	memset(g, 0, sizeof(g));
	CHECK(sdrsa_get(c, a, g) == 0);
	CHECK_OK(h_pattern_check(g, 1, a));
	/* a page never stored: -ENOENT and the buffer untouched */
	memset(g, 0x5a, sizeof(g));
	CHECK(sdrsa_get(c, never, g) == -ENOENT);
	for (size_t i = 0; i < PAGE; i++)
		CHECKM(g[i] == 0x5a, "get of a missing page wrote its buffer at %zu", i);
	/* misaligned */
	CHECK(sdrsa_get(c, a + 1, g) == -EINVAL);
	CHECK(sdrsa_put(c, a + 512, p) == -EINVAL);
	/* swap: store b, fetch a */
	h_pattern(q, 2, b);
	memset(g, 0, sizeof(g));
	CHECK(sdrsa_swap(c, b, q, a, g) == 0);
	CHECK_OK(h_pattern_check(g, 1, a));
	CHECK(sdrsa_get(c, b, g) == 0);
	CHECK_OK(h_pattern_check(g, 2, b));
	/* swap fetching nothing: the put's error first (none), then -ENOENT */
	CHECK(sdrsa_swap(c, b, q, never, g) == -ENOENT);
	/* zero page */
	memset(q, 0, sizeof(q));
	CHECK(sdrsa_put(c, 0x30000, q) == 0);
	memset(g, 1, sizeof(g));
	CHECK(sdrsa_get(c, 0x30000, g) == 0);
	CHECK(sdrsa_page_is_zero(g));
	/* free */
	CHECK(sdrsa_free(c, &a, 1) == 0);
	CHECK(sdrsa_get(c, a, g) == -ENOENT);
	CHECK(sdrsa_free(c, &never, 1) == 0); /* freeing what was never stored */
	CHECK(sdrsa_free(c, &a, 1) == 0);
	CHECK(sdrsa_free_all(c, &freed) == 0);
	CHECKM(freed == 2, "free_all freed %llu, want 2 (b and the zero page)",
	       (unsigned long long)freed);
	CHECK(sdrsa_get(c, b, g) == -ENOENT);
	CHECK(sdrsa_free_all(c, NULL) == 0);
	/* bad arguments */
	CHECK(sdrsa_get(NULL, a, g) == -EINVAL);
	CHECK(sdrsa_get(c, a, NULL) == -EINVAL);
	CHECK(sdrsa_put(c, a, NULL) == -EINVAL);
	sdrsa_client_free(c);
	return H_PASS;
}

static int t_many(void)
{
	enum { N = 700 };
	struct sdrsa_client *c;
	uint64_t a[N];
	int res[N];
	uint8_t *buf = malloc((size_t)N * PAGE);
	void *pages[N];

	CHECK(buf);
	CONNECT(&c, "lib-many");
	for (int i = 0; i < N; i++)
		a[i] = 0x40000000ull + (uint64_t)i * 3 * PAGE;
	CHECK(h_lib_put_pattern(c, a, N, 3) == 0);
	CHECK_OK(h_lib_check_pattern(c, a, N, 3));
	/* a miss among hits: the first failure is returned, each page has its
	 * own result */
	for (int i = 0; i < N; i++) {
		pages[i] = buf + (size_t)i * PAGE;
		res[i] = 1;
	}
	a[100] = 0x7770000;
	a[500] = 0x7771000;
	CHECK(sdrsa_get_many(c, a, pages, N, res) == -ENOENT);
	for (int i = 0; i < N; i++) {
		if (i == 100 || i == 500) {
			CHECK(res[i] == -ENOENT);
		} else {
			CHECK(res[i] == 0);
			CHECK_OK(h_pattern_check(pages[i], 3, a[i]));
		}
	}
	CHECK(sdrsa_get_many(c, a, pages, 0, NULL) == 0);
	CHECK(sdrsa_free(c, a, N) == 0);
	CHECK(sdrsa_get_many(c, a, pages, 10, res) == -ENOENT);
	sdrsa_client_free(c);
	free(buf);
	return H_PASS;
}

/* Reap until n completions; check each tag exactly once. */
static int reap_all(struct sdrsa_client *c, struct sdrsa_completion *out, size_t n)
{
	size_t got = 0;

	while (got < n) {
		int r = sdrsa_reap(c, out + got, n - got, 1, 5000);
		CHECKM(r > 0, "reap after %zu of %zu: %d", got, n, r);
		got += (size_t)r;
	}
	return H_PASS;
}

static int t_pipelined(void)
{
	enum { N = 600, F = 100 };
	struct sdrsa_client *c;
	uint64_t a[N];
	uint8_t *src = malloc((size_t)N * PAGE), *dst = malloc((size_t)N * PAGE);
	struct sdrsa_completion *done = calloc(N + F, sizeof(*done));
	int *seen = calloc(N + F, sizeof(int));

	CHECK(src && dst && done && seen);
	CONNECT(&c, "lib-pipe");
	for (int i = 0; i < N; i++) {
		a[i] = (uint64_t)i * PAGE;
		h_pattern(src + (size_t)i * PAGE, 4, a[i]);
		CHECK(sdrsa_submit_put(c, a[i], src + (size_t)i * PAGE, 1000 + (uint64_t)i) == 0);
	}
	CHECK(sdrsa_inflight(c) == N);
	CHECK(sdrsa_flush(c) == 0);
	CHECK_OK(reap_all(c, done, N));
	CHECK(sdrsa_inflight(c) == 0);
	for (int i = 0; i < N; i++) {
		int k = (int)(done[i].tag - 1000);
		CHECKM(k >= 0 && k < N && !seen[k], "completion with tag %llu",
		       (unsigned long long)done[i].tag);
		seen[k] = 1;
		CHECK(done[i].opcode == SDRSA_OP_PUT);
		CHECK(done[i].addr == a[k]);
		CHECKM(done[i].result == 0, "put %d: %d", k, done[i].result);
	}
	/* gets interleaved with frees of other pages: several frames of
	 * different kinds in flight at once */
	memset(seen, 0, (N + F) * sizeof(int));
	memset(dst, 0, (size_t)N * PAGE);
	for (int i = 0, f = 0; i < N; i++) {
		CHECK(sdrsa_submit_get(c, a[i], dst + (size_t)i * PAGE, (uint64_t)i) == 0);
		if (i % 6 == 5 && f < F) {
			CHECK(sdrsa_submit_free(c, 0x80000000ull + (uint64_t)f * PAGE,
						(uint64_t)(N + f)) == 0);
			f++;
		}
	}
	CHECK_OK(reap_all(c, done, N + F));
	for (int i = 0; i < N + F; i++) {
		uint64_t k = done[i].tag;
		CHECK(k < N + F && !seen[k]);
		seen[k] = 1;
		CHECKM(done[i].result == 0, "tag %llu: %d", (unsigned long long)k, done[i].result);
		if (k < N) {
			CHECK(done[i].opcode == SDRSA_OP_GET && done[i].addr == a[k]);
			CHECK_OK(h_pattern_check(dst + k * PAGE, 4, a[k]));
		} else {
			CHECK(done[i].opcode == SDRSA_OP_FREE);
		}
	}
	/* nothing left: reap returns 0 at once */
	CHECK(sdrsa_reap(c, done, 4, 0, 0) == 0);
	/* a get of a missing page completes with -ENOENT */
	CHECK(sdrsa_submit_get(c, 0x123450000ull, dst, 77) == 0);
	CHECK(sdrsa_reap(c, done, 1, 1, 5000) == 1);
	CHECK(done[0].tag == 77 && done[0].result == -ENOENT);
	sdrsa_client_free(c);
	free(src);
	free(dst);
	free(done);
	free(seen);
	return H_PASS;
}

/* sdrsa_submit_get_csum: each page's end-to-end checksum handed over with
 * the page, for pages received in place (many gets in flight), copied (one
 * get alone) and sent as zero pages; a failed get leaves it untouched. */
static int t_get_csum(void)
{
	enum { N = 64 };
	struct sdrsa_client *c;
	uint64_t a[N], sum[N], one;
	uint8_t *src = malloc((size_t)N * PAGE), *dst = malloc((size_t)N * PAGE);
	struct sdrsa_completion done[N];

	CHECK(src && dst);
	CONNECT(&c, "lib-csum");
	for (int i = 0; i < N; i++) {
		a[i] = 0x40000000ull + (uint64_t)i * PAGE;
		if (i % 5 == 4)
			memset(src + (size_t)i * PAGE, 0, PAGE); /* stored as a zero page */
		else
			h_pattern(src + (size_t)i * PAGE, 9, a[i]);
		CHECK(sdrsa_submit_put(c, a[i], src + (size_t)i * PAGE, (uint64_t)i) == 0);
	}
	CHECK_OK(reap_all(c, done, N));
	memset(dst, 0xee, (size_t)N * PAGE);
	for (int i = 0; i < N; i++) {
		sum[i] = 0x5eed;
		CHECK(sdrsa_submit_get_csum(c, a[i], dst + (size_t)i * PAGE, (uint64_t)i,
					    &sum[i]) == 0);
	}
	CHECK_OK(reap_all(c, done, N));
	for (int i = 0; i < N; i++) {
		uint64_t k = done[i].tag;
		CHECKM(done[i].result == 0, "get %llu: %d", (unsigned long long)k, done[i].result);
		CHECK(!memcmp(dst + k * PAGE, src + k * PAGE, PAGE));
		CHECKM(sum[k] == sdrsa_page_csum(src + k * PAGE, a[k]), "page %llu: checksum %#llx",
		       (unsigned long long)k, (unsigned long long)sum[k]);
	}
	/* One get alone (copied from the receive buffer), a zero page alone. */
	for (int i = 3; i <= 4; i++) {
		one = 0x5eed;
		CHECK(sdrsa_submit_get_csum(c, a[i], dst, 100, &one) == 0);
		CHECK(sdrsa_reap(c, done, 1, 1, 5000) == 1 && done[0].result == 0);
		CHECK(!memcmp(dst, src + (size_t)i * PAGE, PAGE));
		CHECK(one == sdrsa_page_csum(src + (size_t)i * PAGE, a[i]));
	}
	/* A missing page: -ENOENT, the checksum left alone. */
	one = 0x5eed;
	CHECK(sdrsa_submit_get_csum(c, 0x123450000ull, dst, 101, &one) == 0);
	CHECK(sdrsa_reap(c, done, 1, 1, 5000) == 1 && done[0].result == -ENOENT);
	CHECK(one == 0x5eed);
	CHECK(sdrsa_submit_get_csum(c, a[0], dst, 102, NULL) == -EINVAL);
	sdrsa_client_free(c);
	free(src);
	free(dst);
	return H_PASS;
}

/* sdrsa_put_many_csum: each page's checksum as sent, zero pages included,
 * equal to what a get of the page then verifies and hands over. */
static int t_put_csum(void)
{
	enum { N = 300 }; /* more than one frame */
	struct sdrsa_client *c;
	uint64_t a[N], sum[N], got;
	int res[N];
	const void *pg[N];
	uint8_t *src = malloc((size_t)N * PAGE), *dst = malloc(PAGE);
	struct sdrsa_completion done[1];

	CHECK(src && dst);
	CONNECT(&c, "lib-putcsum");
	for (int i = 0; i < N; i++) {
		a[i] = 0x50000000ull + (uint64_t)i * PAGE;
		if (i % 7 == 3)
			memset(src + (size_t)i * PAGE, 0, PAGE); /* sent as a zero page */
		else
			h_pattern(src + (size_t)i * PAGE, 11, a[i]);
		pg[i] = src + (size_t)i * PAGE;
		sum[i] = 0x5eed;
	}
	CHECK_OK(sdrsa_put_many_csum(c, a, pg, N, res, sum));
	for (int i = 0; i < N; i++) {
		CHECK(res[i] == 0);
		CHECKM(sum[i] == sdrsa_page_csum(src + (size_t)i * PAGE, a[i]), "page %d", i);
	}
	for (int i = 0; i < N; i += 37) {
		got = 0;
		CHECK(sdrsa_submit_get_csum(c, a[i], dst, 7, &got) == 0);
		CHECK(sdrsa_reap(c, done, 1, 1, 5000) == 1 && done[0].result == 0);
		CHECK(got == sum[i]);
	}
	CHECK(sdrsa_put_many_csum(c, a, pg, N, res, NULL) == -EINVAL);
	sdrsa_client_free(c);
	free(src);
	free(dst);
	return H_PASS;
}

/* A synchronous call completes what is queued first; those completions
 * stay reapable. */
static int t_sync_after_submit(void)
{
	struct sdrsa_client *c;
	uint8_t src[10][PAGE], g[PAGE];
	struct sdrsa_completion done[10];
	int seen[10] = { 0 };

	CONNECT(&c, "lib-mixed");
	for (int i = 0; i < 10; i++) {
		h_pattern(src[i], 5, (uint64_t)i * PAGE);
		CHECK(sdrsa_submit_put(c, (uint64_t)i * PAGE, src[i], (uint64_t)i) == 0);
	}
	CHECK(sdrsa_get(c, 9 * PAGE, g) == 0);
	CHECK_OK(h_pattern_check(g, 5, 9 * PAGE));
	CHECK_OK(reap_all(c, done, 10));
	for (int i = 0; i < 10; i++) {
		CHECK(done[i].tag < 10 && !seen[done[i].tag]);
		seen[done[i].tag] = 1;
		CHECK(done[i].result == 0);
	}
	sdrsa_client_free(c);
	return H_PASS;
}

static int t_inflight_limit(void)
{
	struct sdrsa_client *c;
	struct sdrsa_completion *done = calloc(SDRSA_CLIENT_MAX_INFLIGHT, sizeof(*done));

	CHECK(done);
	CONNECT(&c, "lib-limit");
	for (unsigned i = 0; i < SDRSA_CLIENT_MAX_INFLIGHT; i++)
		CHECKM(sdrsa_submit_free(c, (uint64_t)i * PAGE, i) == 0, "submit %u", i);
	CHECK(sdrsa_submit_free(c, 0, 99999) == -EBUSY);
	CHECK(sdrsa_inflight(c) == SDRSA_CLIENT_MAX_INFLIGHT);
	CHECK_OK(reap_all(c, done, SDRSA_CLIENT_MAX_INFLIGHT));
	for (unsigned i = 0; i < SDRSA_CLIENT_MAX_INFLIGHT; i++)
		CHECK(done[i].result == 0);
	CHECK(sdrsa_submit_free(c, 0, 1) == 0);
	CHECK(sdrsa_reap(c, done, 1, 1, 5000) == 1);
	sdrsa_client_free(c);
	free(done);
	return H_PASS;
}

/* ---- a fake server that answers in reverse order ---- */

struct fake {
	int lfd;
	char addr[64];
	pthread_t th;
	int corrupt;     /* corrupt the data of the first GET page answered */
	int frames;      /* frames answered */
	int reordered;   /* replies went out in another order than requests */
	int failed;
	uint64_t seed;
};

static int fake_reply(int fd, const struct sdrsa_hdr *req, const uint8_t *p, struct fake *f)
{
	struct sdrsa_hdr h = { .version = SDRSA_PROTO_VERSION, .opcode = req->opcode,
			       .flags = SDRSA_F_REPLY, .req_id = req->req_id, .ns = req->ns };
	size_t n = req->count, data = req->opcode == SDRSA_OP_GET ? n * PAGE : 0;
	uint8_t *out = malloc(n * ESZ + data + 1), *d = out + n * ESZ;
	int rc;

	if (!out)
		return -ENOMEM;
	if (sdrsa_op_has_entries(req->opcode)) {
		for (size_t i = 0; i < n; i++) {
			struct sdrsa_entry e;
			sdrsa_entry_decode(p + i * ESZ, &e);
			e.status = SDRSA_S_OK;
			e.flags = 0;
			e.len = 0;
			e.csum = 0;
			if (req->opcode == SDRSA_OP_GET) {
				h_pattern(d, f->seed, e.addr);
				e.csum = sdrsa_page_csum(d, e.addr);
				e.len = PAGE;
				if (f->corrupt) {
					d[7] ^= 0x20;
					f->corrupt = 0;
				}
				d += PAGE;
			}
			sdrsa_entry_encode(&e, out + i * ESZ);
		}
		h.count = (uint16_t)n;
		h.len = (uint32_t)(n * ESZ + data);
		h.csum = sdrsa_meta_csum(out, n * ESZ);
	}
	rc = h_send_frame(fd, &h, h.len ? out : NULL);
	free(out);
	return rc;
}

static void *fake_main(void *arg)
{
	struct fake *f = arg;
	struct sdrsa_hdr h, reqs[64];
	uint8_t *bufs[64] = { 0 }, in[512], out[128];
	int fd = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC), n = 0;

	if (fd < 0)
		goto fail;
	/* handshake: no key */
	if (h_recv_request(fd, &h, in, sizeof(in), 5000) || h.opcode != SDRSA_OP_HELLO)
		goto fail;
	{
		struct sdrsa_challenge ch = { .auth_required = 0 };
		struct sdrsa_hdr r = {.version = 1,
				      .opcode = SDRSA_OP_HELLO,
				      .flags = SDRSA_F_REPLY,
				      .req_id = h.req_id,
				      .len = SDRSA_CHALLENGE_SIZE};
		randombytes_buf(ch.nonce, sizeof(ch.nonce));
		sdrsa_challenge_encode(&ch, out);
		r.csum = sdrsa_meta_csum(out, r.len);
		if (h_send_frame(fd, &r, out))
			goto fail;
	}
	if (h_recv_request(fd, &h, in, sizeof(in), 5000) || h.opcode != SDRSA_OP_AUTH)
		goto fail;
	{
		struct sdrsa_welcome w = { .pool_pages = 1 << 20, .max_batch = SDRSA_MAX_BATCH };
		struct sdrsa_hdr r = {.version = 1,
				      .opcode = SDRSA_OP_AUTH,
				      .flags = SDRSA_F_REPLY,
				      .req_id = h.req_id,
				      .ns = 7,
				      .len = SDRSA_WELCOME_SIZE};
		sdrsa_welcome_encode(&w, out);
		r.csum = sdrsa_meta_csum(out, r.len);
		if (h_send_frame(fd, &r, out))
			goto fail;
	}
	/* collect requests until the client pauses */
	while (n < 64) {
		bufs[n] = malloc(SDRSA_MAX_PAYLOAD);
		if (!bufs[n] ||
		    h_recv_request(fd, &reqs[n], bufs[n], SDRSA_MAX_PAYLOAD, n ? 300 : 5000))
			break;
		n++;
	}
	/* answer them last first */
	for (int i = n - 1; i >= 0; i--)
		if (fake_reply(fd, &reqs[i], bufs[i], f))
			goto fail;
	f->frames = n;
	f->reordered = n > 1;
	/* serve whatever follows in order, until the client leaves */
	for (;;) {
		uint8_t *b = bufs[0] ? bufs[0] : malloc(SDRSA_MAX_PAYLOAD);
		bufs[0] = b;
		if (!b || h_recv_request(fd, &h, b, SDRSA_MAX_PAYLOAD, 5000) ||
		    fake_reply(fd, &h, b, f))
			break;
		f->frames++;
	}
	for (int i = 0; i < 64; i++)
		free(bufs[i]);
	close(fd);
	return NULL;
fail:
	for (int i = 0; i < 64; i++)
		free(bufs[i]);
	f->failed = 1;
	if (fd >= 0)
		close(fd);
	return NULL;
}

static int fake_start(struct fake *f)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);

	memset(f, 0, sizeof(*f));
	f->seed = 0xfa6e;
	f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(f->lfd >= 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK(bind(f->lfd, (struct sockaddr *)&sin, sizeof(sin)) == 0);
	CHECK(listen(f->lfd, 4) == 0);
	CHECK(getsockname(f->lfd, (struct sockaddr *)&sin, &len) == 0);
	snprintf(f->addr, sizeof(f->addr), "127.0.0.1:%u", ntohs(sin.sin_port));
	CHECK(pthread_create(&f->th, NULL, fake_main, f) == 0);
	return H_PASS;
}

static void fake_stop(struct fake *f)
{
	pthread_join(f->th, NULL);
	close(f->lfd);
}

static int t_out_of_order(void)
{
	enum { RUN = 20, RUNS = 6 };
	struct fake f;
	struct sdrsa_client *c;
	static uint8_t dst[RUN * RUNS][PAGE], src[PAGE];
	struct sdrsa_completion done[RUN * RUNS];
	int seen[RUN * RUNS] = { 0 }, rc;

	CHECK_OK(fake_start(&f));
	rc = h_lib_connect(f.addr, "ooo", NULL, 5000, &c);
	CHECKM(rc == 0, "connect to the fake server: %d", rc);
	memset(src, 0x11, sizeof(src));
	/* runs of different kinds: one frame each */
	for (int r = 0; r < RUNS; r++)
		for (int i = 0; i < RUN; i++) {
			int k = r * RUN + i;
			uint64_t addr = (uint64_t)k * PAGE;
			if (r % 3 == 0 || r % 3 == 2)
				CHECK(sdrsa_submit_get(c, addr, dst[k], (uint64_t)k) == 0);
			else
				CHECK(sdrsa_submit_put(c, addr, src, (uint64_t)k) == 0);
		}
	CHECK_OK(reap_all(c, done, RUN * RUNS));
	for (int i = 0; i < RUN * RUNS; i++) {
		uint64_t k = done[i].tag;
		CHECK(k < RUN * RUNS && !seen[k]);
		seen[k] = 1;
		CHECKM(done[i].result == 0, "tag %llu: %d", (unsigned long long)k, done[i].result);
		CHECK(done[i].addr == k * PAGE);
		if ((k / RUN) % 3 != 1) {
			CHECK(done[i].opcode == SDRSA_OP_GET);
			CHECK_OK(h_pattern_check(dst[k], f.seed, k * PAGE));
		} else {
			CHECK(done[i].opcode == SDRSA_OP_PUT);
		}
	}
	/* a page whose data does not match its checksum fails with -EBADMSG;
	 * a lone synchronous get reads its reply whole and checks it before
	 * copying, so its buffer is not even written (client.h promises less:
	 * a failed get's buffer is unspecified) */
	f.corrupt = 1;
	memset(dst[0], 0x5a, PAGE);
	rc = sdrsa_get(c, 0x1000, dst[0]);
	CHECKM(rc == -EBADMSG, "corrupted page: %d, want -EBADMSG", rc);
	for (size_t i = 0; i < PAGE; i++)
		CHECKM(dst[0][i] == 0x5a, "a page failing its checksum was written at %zu", i);
	/* the next one is fine */
	CHECK(sdrsa_get(c, 0x2000, dst[0]) == 0);
	CHECK_OK(h_pattern_check(dst[0], f.seed, 0x2000));
	sdrsa_client_free(c);
	fake_stop(&f);
	CHECK(!f.failed);
	h_log("fake server answered %d frames, the first batch in reverse", f.frames);
	CHECKM(f.reordered, "the client sent everything in one frame: nothing was reordered");
	return H_PASS;
}

/* ---- timeouts and dead servers ---- */

static int timeout_inner(void)
{
	struct sdrsa_client *c;
	struct sdrsa_completion done[5];
	uint8_t p[PAGE], g[PAGE];
	uint64_t t0, el;
	int rc;

	CHECK(h_lib_connect(srv.addr_str, "lib-timeout", NULL, 300, &c) == 0);
	h_pattern(p, 6, 0);
	CHECK(sdrsa_put(c, 0, p) == 0);
	CHECK(h_server_pause(&srv) == 0);
	t0 = h_now_ms();
	rc = sdrsa_get(c, 0, g);
	el = h_now_ms() - t0;
	CHECKM(rc == -ETIMEDOUT, "get from a stopped server: %d", rc);
	CHECKM(el >= 250 && el < 3000, "timed out after %llu ms with timeout_ms 300",
	       (unsigned long long)el);
	CHECK(sdrsa_client_fd(c) == -1);
	CHECK(sdrsa_get(c, 0, g) == -ENOTCONN);
	CHECK(sdrsa_submit_get(c, 0, g, 1) == -ENOTCONN);
	/* reconnecting while the server is stopped times out too */
	t0 = h_now_ms();
	rc = sdrsa_client_reconnect(c);
	CHECKM(rc == -ETIMEDOUT, "reconnect to a stopped server: %d", rc);
	CHECK(h_now_ms() - t0 < 3000);
	CHECK(h_server_resume(&srv) == 0);
	CHECK(sdrsa_client_reconnect(c) == 0);
	CHECK(sdrsa_get(c, 0, g) == 0);
	CHECK_OK(h_pattern_check(g, 6, 0));
	/* pipelined operations in flight when the server stops */
	CHECK(h_server_pause(&srv) == 0);
	for (int i = 0; i < 5; i++)
		CHECK(sdrsa_submit_get(c, 0, g, (uint64_t)i) == 0);
	/* each reap waits at most the configured timeout; within a few of
	 * them the connection is declared dead and everything fails */
	{
		int got = 0;
		t0 = h_now_ms();
		while (got < 5 && h_now_ms() - t0 < 3000) {
			rc = sdrsa_reap(c, done + got, (size_t)(5 - got), (size_t)(5 - got), -1);
			if (rc < 0)
				break;
			got += rc;
		}
		CHECK(h_server_resume(&srv) == 0);
		CHECKM(got == 5, "reap on a stopped server: %d completions (rc %d)", got, rc);
	}
	for (int i = 0; i < 5; i++)
		CHECKM(done[i].result == -ETIMEDOUT, "completion %d: %d", i, done[i].result);
	CHECK(sdrsa_client_reconnect(c) == 0);
	CHECK(sdrsa_ping(c) == 0);
	sdrsa_client_free(c);
	/* a new connection to a stopped server */
	{
		struct sdrsa_client *d = NULL;
		CHECK(h_server_pause(&srv) == 0);
		t0 = h_now_ms();
		rc = h_lib_connect(srv.addr_str, "lib-timeout-2", NULL, 300, &d);
		CHECK(h_server_resume(&srv) == 0);
		CHECKM(rc == -ETIMEDOUT, "connect to a stopped server: %d", rc);
		CHECK(d == NULL);
		CHECK(h_now_ms() - t0 < 3000);
	}
	CHECK(h_server_alive(&srv));
	return H_PASS;
}

static int t_timeout(void)
{
	int rc = timeout_inner();

	h_server_resume(&srv); /* whatever happened above */
	return rc;
}

static int t_server_gone(void)
{
	struct h_server s;
	struct sdrsa_client *c;
	uint8_t g[PAGE];
	char addr[128];
	int rc;

	CHECK(h_server_start_tcp(&s, "4M", NULL) == 0);
	snprintf(addr, sizeof(addr), "%s", s.addr_str);
	CHECK(h_lib_connect(addr, "gone", NULL, 2000, &c) == 0);
	CHECK(sdrsa_ping(c) == 0);
	h_server_stop(&s, SIGKILL, 5000);
	rc = sdrsa_get(c, 0, g);
	CHECKM(rc == -ECONNRESET, "get after the server died: %d", rc);
	CHECK(sdrsa_ping(c) == -ENOTCONN);
	rc = sdrsa_client_reconnect(c);
	CHECKM(rc == -ECONNREFUSED, "reconnect to a dead server: %d", rc);
	sdrsa_client_free(c);
	rc = h_lib_connect(addr, "gone", NULL, 2000, &c);
	CHECKM(rc == -ECONNREFUSED, "connect to a dead server: %d", rc);
	return H_PASS;
}

static int t_bad_address(void)
{
	struct sdrsa_client *c = NULL;

	CHECK(h_lib_connect("127.0.0.1:99999", "x", NULL, 1000, &c) == -EINVAL);
	CHECK(h_lib_connect("", "x", NULL, 1000, &c) == -EINVAL);
	CHECK(h_lib_connect("::1:5", "x", NULL, 1000, &c) == -EINVAL);
	CHECK(h_lib_connect(srv.addr_str, "bad name!", NULL, 1000, &c) == -EINVAL);
	CHECK(c == NULL);
	CHECK(sdrsa_client_connect(NULL, &c) == -EINVAL);
	return H_PASS;
}

/* ---- keys ---- */

static int t_keys(void)
{
	struct h_server ks;
	struct sdrsa_client *c = NULL;
	uint8_t k1[SDRSA_KEY_SIZE], k2[SDRSA_KEY_SIZE], loaded[SDRSA_KEY_SIZE];
	char hex[65], text[256], path[256];
	const char *args[] = { "4M", "--listen", "127.0.0.1:0", "--key-file", path, NULL };
	int rc;

	sdrsa_key_generate(k1);
	sdrsa_key_generate(k2);
	CHECK(memcmp(k1, k2, sizeof(k1)) != 0);
	sdrsa_hex_encode(k1, sizeof(k1), hex);
	snprintf(path, sizeof(path), "%s/lib-keys", h_tmpdir());
	snprintf(text, sizeof(text), "# keys\nlibtest %s\n", hex);
	CHECK(h_write_file(path, text, 0600) == 0);
	/* sdrsa_key_load */
	CHECK(sdrsa_key_load(path, "libtest", loaded) == 0);
	CHECK(memcmp(loaded, k1, sizeof(k1)) == 0);
	CHECK(sdrsa_key_load(path, "nobody", loaded) == -ENOENT);

	CHECK(h_server_start(&ks, args) == 0);
	rc = h_lib_connect(ks.addr_str, "libtest", k1, 2000, &c);
	CHECKM(rc == 0, "right key: %d", rc);
	CHECK(sdrsa_ping(c) == 0);
	sdrsa_client_free(c);
	c = NULL;
	rc = h_lib_connect(ks.addr_str, "libtest", k2, 2000, &c);
	CHECKM(rc == -EPERM, "wrong key: %d", rc);
	rc = h_lib_connect(ks.addr_str, "libtest", NULL, 2000, &c);
	CHECKM(rc == -EPERM, "no key: %d", rc);
	rc = h_lib_connect(ks.addr_str, "nobody", k1, 2000, &c);
	CHECKM(rc == -EPERM, "unknown name: %d", rc);
	CHECK(c == NULL);
	h_server_stop(&ks, SIGTERM, 5000);

	/* a client with a key refuses a server that cannot prove it */
	rc = h_lib_connect(srv.addr_str, "libtest", k1, 2000, &c);
	CHECKM(rc == -EPERM, "keyed client, keyless server: %d", rc);
	CHECK(c == NULL);

	/* key files others can read, malformed, missing */
	CHECK(h_write_file(path, text, 0644) == 0);
	CHECK(sdrsa_key_load(path, "libtest", loaded) == -EPERM);
	CHECK(h_write_file(path, "libtest 1234\n", 0600) == 0);
	CHECK(sdrsa_key_load(path, "libtest", loaded) == -EBADMSG);
	unlink(path);
	CHECK(sdrsa_key_load(path, "libtest", loaded) == -ENOENT);
	return H_PASS;
}

static int t_unix(void)
{
	struct h_server us;
	struct sdrsa_client *c;
	char path[200], addr[220];
	const char *args[] = { "4M", "--unix", path, NULL };
	uint64_t a[3] = { 0, PAGE, 2 * PAGE };

	snprintf(path, sizeof(path), "%s/lib.sock", h_tmpdir());
	CHECK(h_server_start(&us, args) == 0);
	snprintf(addr, sizeof(addr), "unix:%s", path);
	CHECK(h_lib_connect(addr, "unix-lib", NULL, 2000, &c) == 0);
	CHECK(h_lib_put_pattern(c, a, 3, 8) == 0);
	sdrsa_client_free(c);
	CHECK(h_lib_connect(path, "unix-lib", NULL, 2000, &c) == 0);
	CHECK_OK(h_lib_check_pattern(c, a, 3, 8));
	sdrsa_client_free(c);
	h_server_stop(&us, SIGTERM, 5000);
	return H_PASS;
}

static int t_quota_and_full(void)
{
	struct h_server qs;
	const char *args[] = { "64K", "--listen", "127.0.0.1:0", "-q", "8", NULL };
	struct sdrsa_client *a, *b, *c;
	uint64_t addrs[9];
	uint8_t p[PAGE];
	int rc;

	CHECK(h_server_start(&qs, args) == 0);
	CHECK(h_lib_connect(qs.addr_str, "qa", NULL, 2000, &a) == 0);
	CHECK(h_lib_connect(qs.addr_str, "qb", NULL, 2000, &b) == 0);
	CHECK(h_lib_connect(qs.addr_str, "qc", NULL, 2000, &c) == 0);
	CHECK(sdrsa_client_quota_pages(a) == 8);
	for (int i = 0; i < 9; i++)
		addrs[i] = (uint64_t)i * PAGE;
	CHECK(h_lib_put_pattern(a, addrs, 8, 9) == 0);
	h_pattern(p, 9, addrs[8]);
	rc = sdrsa_put(a, addrs[8], p);
	CHECKM(rc == -EDQUOT, "over quota: %d", rc);
	CHECK(h_lib_put_pattern(b, addrs, 8, 10) == 0); /* the pool (16) is full now */
	rc = sdrsa_put(c, 0, p);
	CHECKM(rc == -ENOSPC, "full pool: %d", rc);
	CHECK_OK(h_lib_check_pattern(a, addrs, 8, 9));
	CHECK_OK(h_lib_check_pattern(b, addrs, 8, 10));
	sdrsa_client_free(a);
	sdrsa_client_free(b);
	sdrsa_client_free(c);
	h_server_stop(&qs, SIGTERM, 5000);
	return H_PASS;
}

/* ---- one handle per thread ---- */

struct thr {
	int id;
	int failed;
	pthread_barrier_t *bar;
};

static void *thr_main(void *arg)
{
	struct thr *t = arg;
	struct sdrsa_client *c;
	uint64_t mine[100], theirs[100];

	if (h_lib_connect(srv.addr_str, "lib-shared", NULL, 5000, &c)) {
		t->failed = 1;
		pthread_barrier_wait(t->bar);
		return NULL;
	}
	for (int i = 0; i < 100; i++) {
		mine[i] = ((uint64_t)t->id << 32) + (uint64_t)i * PAGE;
		theirs[i] = ((uint64_t)(1 - t->id) << 32) + (uint64_t)i * PAGE;
	}
	for (int round = 0; round < 5; round++)
		if (h_lib_put_pattern(c, mine, 100, (uint64_t)t->id) != 0)
			t->failed = 1;
	pthread_barrier_wait(t->bar);
	if (h_lib_check_pattern(c, theirs, 100, (uint64_t)(1 - t->id)) != H_PASS)
		t->failed = 1;
	sdrsa_client_free(c);
	return NULL;
}

static int t_threads(void)
{
	pthread_barrier_t bar;
	pthread_t th[2];
	struct thr t[2] = { { .id = 0, .bar = &bar }, { .id = 1, .bar = &bar } };

	pthread_barrier_init(&bar, NULL, 2);
	for (int i = 0; i < 2; i++)
		CHECK(pthread_create(&th[i], NULL, thr_main, &t[i]) == 0);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&bar);
	CHECK(!t[0].failed && !t[1].failed);
	return H_PASS;
}

int main(int argc, char **argv)
{
	h_init(argc, argv);
	if (h_server_start_tcp(&srv, "64M", NULL)) {
		h_log("cannot start the memory server");
		return 1;
	}
	h_run("connect", t_connect);
	h_run("sync", t_sync);
	h_run("many", t_many);
	h_run("pipelined", t_pipelined);
	h_run("get_csum", t_get_csum);
	h_run("put_csum", t_put_csum);
	h_run("sync_after_submit", t_sync_after_submit);
	h_run("inflight_limit", t_inflight_limit);
	h_run("out_of_order", t_out_of_order);
	h_run("timeout", t_timeout);
	h_run("server_gone", t_server_gone);
	h_run("bad_address", t_bad_address);
	h_run("keys", t_keys);
	h_run("unix", t_unix);
	h_run("quota_and_full", t_quota_and_full);
	h_run("threads", t_threads);
	return h_finish();
}
