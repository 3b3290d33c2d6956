/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of libsdrsa's request queue (src/client/queue.c) without a
 * socket: how consecutive operations are batched into frames (split at the
 * server's max_batch, a new frame at each change of opcode), the bytes of a
 * flush (the codec must accept every request frame; puts' pages referenced in
 * place, zero pages sent without data), and how replies are matched to
 * operations: out of order, byte by byte, corrupted page or metadata checksum,
 * zero pages, per-page and per-frame errors, unknown request ids, the
 * failure of everything outstanding when the connection goes, and GET pages
 * received straight into their buffers (direct receive).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "client/client_internal.h"
#include "common/util.h"

#define PAGE SDRSA_PAGE_SIZE
#define ESZ SDRSA_ENTRY_SIZE
#define HSZ SDRSA_HDR_SIZE

/* A request frame as the server would see it. */
struct req {
	struct sdrsa_hdr h;
	struct sdrsa_entry e[SDRSA_MAX_BATCH];
	const uint8_t *data[SDRSA_MAX_BATCH]; /* per entry, NULL without data */
};

static uint8_t wire[8u << 20];

static struct sdrsa_client *new_client(uint32_t max_batch)
{
	struct sdrsa_client *c = calloc(1, sizeof(*c));

	assert_non_null(c);
	c->max_batch = max_batch;
	c->ns = 7;
	c->fd = -1;
	assert_int_equal(client_queue_init(c), 0);
	return c;
}

static void free_client(struct sdrsa_client *c)
{
	client_queue_destroy(c);
	free(c);
}

static void fill_page(uint8_t *p, unsigned seed)
{
	for (unsigned i = 0; i < PAGE; i++)
		p[i] = (uint8_t)(seed * 131 + i * 7 + 1);
}

/* Build the queued frames, gather their bytes and parse them back with the
 * codec. Returns the number of frames. */
static size_t flush_and_parse(struct sdrsa_client *c, struct req *reqs, size_t max)
{
	size_t bytes, niov = client_queue_build(c, &bytes), off = 0, nreq = 0, pos = 0;

	for (size_t i = 0; i < niov; i++) {
		assert_true(off + c->iov[i].iov_len <= sizeof(wire));
		memcpy(wire + off, c->iov[i].iov_base, c->iov[i].iov_len);
		off += c->iov[i].iov_len;
	}
	assert_int_equal(off, bytes);
	while (pos < off) {
		struct req *r;
		const uint8_t *data;

		assert_true(nreq < max);
		r = &reqs[nreq++];
		assert_int_equal(sdrsa_hdr_decode(wire + pos, off - pos, &r->h), 0);
		assert_int_equal(r->h.flags, 0);
		assert_int_equal(r->h.ns, 7);
		if (sdrsa_op_has_entries(r->h.opcode)) {
			assert_int_equal(sdrsa_payload_check(&r->h, wire + pos + HSZ), 0);
			data = wire + pos + HSZ + sdrsa_meta_len(&r->h);
			for (unsigned i = 0; i < r->h.count; i++) {
				sdrsa_entry_decode(wire + pos + HSZ + i * ESZ, &r->e[i]);
				r->data[i] = r->e[i].len ? data : NULL;
				data += r->e[i].len;
			}
		} else {
			assert_int_equal(r->h.len, 0);
			assert_int_equal(r->h.csum, 0);
		}
		pos += HSZ + r->h.len;
	}
	client_queue_sent(c);
	return nreq;
}

/* Append a reply to c->rbuf. status[i]/zero[i]/pages[i] describe entry i;
 * pages[i] (GET) is the data to return, NULL for none. */
static size_t put_reply(uint8_t *out, const struct req *r, uint16_t hstatus, const uint16_t *status,
			const int *zero, const uint8_t *const *pages)
{
	struct sdrsa_hdr h = r->h;
	size_t meta = (size_t)h.count * ESZ, len = meta;

	h.flags = SDRSA_F_REPLY;
	h.status = hstatus;
	for (unsigned i = 0; i < h.count; i++) {
		struct sdrsa_entry e = { .addr = r->e[i].addr };

		e.status = status ? status[i] : 0;
		if (zero && zero[i]) {
			e.flags = SDRSA_EF_ZERO;
		} else if (pages && pages[i] && e.status == 0) {
			e.len = PAGE;
			e.csum = sdrsa_page_csum(pages[i], e.addr);
			memcpy(out + HSZ + len, pages[i], PAGE);
			len += PAGE;
		}
		sdrsa_entry_encode(&e, out + HSZ + i * ESZ);
	}
	h.len = (uint32_t)len;
	h.csum = sdrsa_meta_csum(out + HSZ, meta);
	sdrsa_hdr_encode(&h, out);
	return HSZ + len;
}

static void feed(struct sdrsa_client *c, const uint8_t *buf, size_t n)
{
	memcpy(c->rbuf + c->wpos, buf, n);
	c->wpos += n;
}

static size_t reap_all(struct sdrsa_client *c, struct sdrsa_completion *out, size_t max)
{
	size_t n = 0;

	while (n < max && client_pop_completion(c, &out[n]) == 0)
		n++;
	return n;
}

static void batching_follows_opcode_and_max_batch(void **state)
{
	struct sdrsa_client *c = new_client(4);
	static uint8_t pages[3][PAGE], zero[PAGE];
	static struct req reqs[8];
	size_t n;

	(void)state;
	for (int i = 0; i < 3; i++)
		fill_page(pages[i], (unsigned)i);
	for (uint64_t i = 0; i < 6; i++)
		assert_int_equal(client_queue_op(c, SDRSA_OP_GET, i * PAGE, pages[0], i, NULL), 0);
	assert_int_equal(client_queue_op(c, SDRSA_OP_PUT, 0x10000, pages[1], 100, NULL), 0);
	assert_int_equal(client_queue_op(c, SDRSA_OP_PUT, 0x11000, zero, 101, NULL), 0);
	assert_int_equal(client_queue_op(c, SDRSA_OP_PUT, 0x12000, pages[2], 102, NULL), 0);
	assert_int_equal(client_queue_op(c, SDRSA_OP_FREE, 0x13000, NULL, 103, NULL), 0);
	assert_int_equal(client_queue_op(c, SDRSA_OP_PING, 0, NULL, 104, NULL), 0);
	assert_int_equal(client_queue_op(c, SDRSA_OP_GET, 0x20000, pages[0], 105, NULL), 0);
	assert_int_equal(c->user_ops, 12);

	n = flush_and_parse(c, reqs, 8);
	assert_int_equal(n, 6);
	assert_int_equal(reqs[0].h.opcode, SDRSA_OP_GET);
	assert_int_equal(reqs[0].h.count, 4);
	assert_int_equal(reqs[1].h.opcode, SDRSA_OP_GET);
	assert_int_equal(reqs[1].h.count, 2);
	assert_int_equal(reqs[1].e[1].addr, 5 * PAGE);
	assert_int_equal(reqs[2].h.opcode, SDRSA_OP_PUT);
	assert_int_equal(reqs[2].h.count, 3);
	/* The zero page travels as a flag; the others as data, in order. */
	assert_int_equal(reqs[2].e[1].flags, SDRSA_EF_ZERO);
	assert_null(reqs[2].data[1]);
	assert_memory_equal(reqs[2].data[0], pages[1], PAGE);
	assert_memory_equal(reqs[2].data[2], pages[2], PAGE);
	assert_int_equal(reqs[2].e[2].csum, sdrsa_page_csum(pages[2], 0x12000));
	assert_int_equal(reqs[2].h.len, 3 * ESZ + 2 * PAGE);
	assert_int_equal(reqs[3].h.opcode, SDRSA_OP_FREE);
	assert_int_equal(reqs[4].h.opcode, SDRSA_OP_PING);
	assert_int_equal(reqs[5].h.opcode, SDRSA_OP_GET);
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			assert_int_not_equal(reqs[i].h.req_id, reqs[j].h.req_id);
	assert_int_equal(c->nsent, 12);
	/* Puts' pages are referenced, not copied. */
	{
		int found = 0;
		for (size_t i = 0; i < 2 * CLIENT_NSLOTS; i++)
			if (c->iov[i].iov_base == pages[1])
				found = 1;
		assert_true(found);
	}
	free_client(c);
}

static void replies_out_of_order_and_verified(void **state)
{
	struct sdrsa_client *c = new_client(SDRSA_MAX_BATCH);
	static uint8_t src[4][PAGE], dst[4][PAGE], untouched[PAGE];
	static uint8_t rep[4 * (HSZ + ESZ + PAGE) * 2];
	static struct req reqs[4];
	struct sdrsa_completion comp[8];
	size_t off = 0, n;

	(void)state;
	for (int i = 0; i < 4; i++)
		fill_page(src[i], 10u + (unsigned)i);
	memset(dst, 0xaa, sizeof(dst));
	memset(untouched, 0xaa, sizeof(untouched));
	/* Frame A: GET of 3 pages; frame B: PUT; frame C: GET of one page. */
	for (uint64_t i = 0; i < 3; i++)
		client_queue_op(c, SDRSA_OP_GET, (i + 1) * PAGE, dst[i], i, NULL);
	client_queue_op(c, SDRSA_OP_PUT, 0x40000, src[3], 10, NULL);
	client_queue_op(c, SDRSA_OP_GET, 0x50000, dst[3], 20, NULL);
	assert_int_equal(flush_and_parse(c, reqs, 4), 3);

	/* C first, then B, then A with: page 0 fine, page 1 zero, page 2
	 * corrupted in transit. */
	{
		const uint8_t *p[1] = { src[3] };
		off += put_reply(rep + off, &reqs[2], 0, NULL, NULL, p);
	}
	off += put_reply(rep + off, &reqs[1], 0, (const uint16_t[]){ SDRSA_S_QUOTA }, NULL, NULL);
	{
		const uint8_t *p[3] = { src[0], NULL, src[2] };
		size_t a = off;
		off += put_reply(rep + off, &reqs[0], 0, NULL, (const int[]){ 0, 1, 0 }, p);
		/* Flip one data byte of the third page (last in the frame). */
		rep[a + HSZ + 3 * ESZ + PAGE + 17] ^= 1;
	}
	/* Byte by byte: nothing completes before its frame is whole. */
	for (size_t i = 0; i < off; i++) {
		feed(c, rep + i, 1);
		assert_int_equal(client_process_rbuf(c), 0);
		if (i + 1 < HSZ + ESZ + PAGE)
			assert_int_equal(c->cq_len, 0);
	}
	assert_int_equal(c->rpos, 0);
	assert_int_equal(c->wpos, 0);
	assert_int_equal(c->nsent, 0);

	n = reap_all(c, comp, 8);
	assert_int_equal(n, 5);
	assert_int_equal(comp[0].tag, 20);
	assert_int_equal(comp[0].result, 0);
	assert_int_equal(comp[0].opcode, SDRSA_OP_GET);
	assert_memory_equal(dst[3], src[3], PAGE);
	assert_int_equal(comp[1].tag, 10);
	assert_int_equal(comp[1].result, -EDQUOT);
	assert_int_equal(comp[1].opcode, SDRSA_OP_PUT);
	assert_int_equal(comp[2].tag, 0);
	assert_int_equal(comp[2].result, 0);
	assert_memory_equal(dst[0], src[0], PAGE);
	assert_int_equal(comp[3].tag, 1);
	assert_int_equal(comp[3].result, 0);
	for (unsigned i = 0; i < PAGE; i++)
		assert_int_equal(dst[1][i], 0);
	assert_int_equal(comp[4].tag, 2);
	assert_int_equal(comp[4].result, -EBADMSG);
	assert_memory_equal(dst[2], untouched, PAGE);
	assert_int_equal(c->user_ops, 0);
	free_client(c);
}

static void frame_errors(void **state)
{
	struct sdrsa_client *c = new_client(SDRSA_MAX_BATCH);
	static uint8_t dst[2][PAGE], rep[4096];
	static struct req reqs[4];
	struct sdrsa_completion comp[8];
	struct sdrsa_hdr h;
	size_t len;

	(void)state;
	client_queue_op(c, SDRSA_OP_GET, 0, dst[0], 1, NULL);
	client_queue_op(c, SDRSA_OP_GET, PAGE, dst[1], 2, NULL);
	client_queue_op(c, SDRSA_OP_FREE, 0x9000, NULL, 3, NULL);
	client_queue_op(c, SDRSA_OP_PUT, 0xa000, dst[0], 4, NULL);
	assert_int_equal(flush_and_parse(c, reqs, 4), 3);

	/* Whole GET frame refused by the server: both pages fail. */
	h = reqs[0].h;
	h.flags = SDRSA_F_REPLY;
	h.status = SDRSA_S_BAD_FRAME;
	h.count = 0;
	h.len = 0;
	h.csum = 0;
	sdrsa_hdr_encode(&h, rep);
	feed(c, rep, HSZ);
	/* FREE of a page never stored is not an error. */
	len = put_reply(rep, &reqs[1], 0, (const uint16_t[]){ SDRSA_S_NOT_FOUND }, NULL, NULL);
	feed(c, rep, len);
	/* PUT reply whose metadata checksum is wrong: the page fails. */
	len = put_reply(rep, &reqs[2], 0, NULL, NULL, NULL);
	rep[24] ^= 0xff;
	feed(c, rep, len);
	assert_int_equal(client_process_rbuf(c), 0);
	assert_int_equal(reap_all(c, comp, 8), 4);
	assert_int_equal(comp[0].result, -EBADMSG);
	assert_int_equal(comp[1].result, -EBADMSG);
	assert_int_equal(comp[2].tag, 3);
	assert_int_equal(comp[2].result, 0);
	assert_int_equal(comp[3].tag, 4);
	assert_int_equal(comp[3].result, -EBADMSG);

	/* A reply nobody asked for is a protocol error... */
	client_queue_op(c, SDRSA_OP_PING, 0, NULL, 5, NULL);
	assert_int_equal(flush_and_parse(c, reqs, 4), 1);
	h = reqs[0].h;
	h.flags = SDRSA_F_REPLY;
	h.req_id ^= 1u << 20;
	sdrsa_hdr_encode(&h, rep);
	feed(c, rep, HSZ);
	assert_int_equal(client_process_rbuf(c), -EPROTO);
	/* ...unless it is the server's reason for closing. */
	c->rpos = c->wpos = 0;
	h.status = SDRSA_S_BUSY;
	sdrsa_hdr_encode(&h, rep);
	feed(c, rep, HSZ);
	assert_int_equal(client_process_rbuf(c), -EBUSY);
	/* Teardown fails what is outstanding. */
	client_queue_op(c, SDRSA_OP_GET, 0, dst[0], 6, NULL);
	client_queue_fail_all(c, -ETIMEDOUT);
	assert_int_equal(reap_all(c, comp, 8), 2);
	assert_int_equal(comp[0].tag + comp[1].tag, 5 + 6);
	assert_int_equal(comp[0].result, -ETIMEDOUT);
	assert_int_equal(comp[1].result, -ETIMEDOUT);
	assert_int_equal(c->user_ops, 0);
	assert_int_equal(c->nsent, 0);
	free_client(c);
}

static void internal_batch_and_simple_ops(void **state)
{
	struct sdrsa_client *c = new_client(2);
	struct client_batch b = { .first_idx = SIZE_MAX };
	static uint8_t pages[3][PAGE], got[PAGE], rep[3 * (HSZ + 2 * (ESZ + PAGE))];
	static struct req reqs[8];
	int results[3] = { 1, 1, 1 };
	struct sdrsa_stats st, want = { .pool_pages = 99, .used_pages = 5, .uptime_ms = 7 };
	uint64_t freed = 0;
	size_t off = 0;

	(void)state;
	b.results = results;
	for (int i = 0; i < 3; i++) {
		fill_page(pages[i], 20u + (unsigned)i);
		client_queue_op(c, SDRSA_OP_PUT, (uint64_t)i * PAGE, pages[i], (uint64_t)i, &b);
	}
	client_queue_op(c, SDRSA_OP_STATS, 0, &st, 0, NULL);
	client_queue_op(c, SDRSA_OP_FREE_ALL, 0, &freed, 0, NULL);
	assert_int_equal(c->user_ops, 2);
	assert_int_equal(flush_and_parse(c, reqs, 8), 4);
	assert_int_equal(reqs[0].h.count, 2);
	assert_int_equal(reqs[1].h.count, 1);
	off += put_reply(rep + off, &reqs[1], 0, (const uint16_t[]){ SDRSA_S_POOL_FULL }, NULL,
			 NULL);
	off += put_reply(rep + off, &reqs[0], 0, (const uint16_t[]){ 0, SDRSA_S_QUOTA }, NULL,
			 NULL);
	{
		struct sdrsa_hdr h = reqs[2].h;
		h.flags = SDRSA_F_REPLY;
		h.len = (uint32_t)sdrsa_stats_encode(&want, rep + off + HSZ);
		h.csum = sdrsa_meta_csum(rep + off + HSZ, h.len);
		sdrsa_hdr_encode(&h, rep + off);
		off += HSZ + h.len;
		h = reqs[3].h;
		h.flags = SDRSA_F_REPLY;
		h.len = 8;
		memset(rep + off + HSZ, 0, 8);
		rep[off + HSZ] = 42;
		h.csum = sdrsa_meta_csum(rep + off + HSZ, 8);
		sdrsa_hdr_encode(&h, rep + off);
		off += HSZ + 8;
	}
	feed(c, rep, off);
	assert_int_equal(client_process_rbuf(c), 0);
	/* Internal results go to the batch, never to the completion queue. */
	assert_int_equal(b.done, 3);
	assert_int_equal(results[0], 0);
	assert_int_equal(results[1], -EDQUOT);
	assert_int_equal(results[2], -ENOSPC);
	assert_int_equal(b.first_idx, 1);
	assert_int_equal(b.first_err, -EDQUOT);
	assert_int_equal(c->cq_len, 2);
	assert_memory_equal(&st, &want, sizeof(st));
	assert_int_equal(freed, 42);

	/* SWAP: one frame, put then get. */
	memset(&b, 0, sizeof(b));
	b.first_idx = SIZE_MAX;
	b.results = results;
	assert_int_equal(client_queue_swap(c, 0x7000, pages[0], 0x8000, got, &b), 0);
	assert_int_equal(flush_and_parse(c, reqs, 8), 1);
	assert_int_equal(reqs[0].h.opcode, SDRSA_OP_SWAP);
	assert_int_equal(reqs[0].h.count, 2);
	assert_memory_equal(reqs[0].data[0], pages[0], PAGE);
	{
		const uint8_t *p[2] = { NULL, pages[2] };
		off = put_reply(rep, &reqs[0], 0, NULL, NULL, p);
	}
	feed(c, rep, off);
	assert_int_equal(client_process_rbuf(c), 0);
	assert_int_equal(b.done, 2);
	assert_int_equal(b.first_idx, SIZE_MAX);
	assert_memory_equal(got, pages[2], PAGE);
	free_client(c);
}

/* A FREE_ALL reply is exactly one u64: any other size fails the operation
 * and leaves the caller's count alone. */
static void free_all_reply_size(void **state)
{
	struct sdrsa_client *c = new_client(SDRSA_MAX_BATCH);
	static struct req reqs[4];
	struct sdrsa_completion comp[4];
	uint8_t rep[2 * (HSZ + 16)];
	uint64_t freed = 99, freed2 = 99;
	size_t off = 0;

	(void)state;
	client_queue_op(c, SDRSA_OP_FREE_ALL, 0, &freed, 1, NULL);
	client_queue_op(c, SDRSA_OP_FREE_ALL, 0, &freed2, 2, NULL);
	assert_int_equal(flush_and_parse(c, reqs, 4), 2);
	for (int i = 0; i < 2; i++) {
		struct sdrsa_hdr h = reqs[i].h;

		h.flags = SDRSA_F_REPLY;
		h.len = i == 0 ? SDRSA_FREED_SIZE - 1 : SDRSA_FREED_SIZE;
		sdrsa_freed_encode(i == 0 ? 7 : 0x0102030405060708ull, rep + off + HSZ);
		h.csum = sdrsa_meta_csum(rep + off + HSZ, h.len);
		sdrsa_hdr_encode(&h, rep + off);
		off += HSZ + h.len;
	}
	feed(c, rep, off);
	assert_int_equal(client_process_rbuf(c), 0);
	assert_int_equal(reap_all(c, comp, 4), 2);
	assert_int_equal(comp[0].tag, 1);
	assert_int_equal(comp[0].result, -EBADMSG);
	assert_true(freed == 99);
	assert_int_equal(comp[1].tag, 2);
	assert_int_equal(comp[1].result, 0);
	assert_true(freed2 == 0x0102030405060708ull);
	free_client(c);
}

/* sdrsa_swap() writes its get page only on success: a fetched page is not
 * delivered when the put half of the swap was refused. */
static void swap_delivers_only_when_both_succeed(void **state)
{
	struct sdrsa_client *c = new_client(SDRSA_MAX_BATCH);
	struct client_batch b = { .first_idx = SIZE_MAX };
	static uint8_t put[PAGE], src[PAGE], got[PAGE], untouched[PAGE], rep[HSZ + 2 * ESZ + PAGE];
	static struct req reqs[2];
	const uint8_t *p[2] = { NULL, src };
	size_t len;

	(void)state;
	fill_page(put, 1);
	fill_page(src, 2);
	memset(got, 0xaa, sizeof(got));
	memset(untouched, 0xaa, sizeof(untouched));
	assert_int_equal(client_queue_swap(c, 0x7000, put, 0x8000, got, &b), 0);
	assert_int_equal(flush_and_parse(c, reqs, 2), 1);
	len = put_reply(rep, &reqs[0], 0, (const uint16_t[]){ SDRSA_S_QUOTA, 0 }, NULL, p);
	feed(c, rep, len);
	assert_int_equal(client_process_rbuf(c), 0);
	assert_int_equal(b.done, 2);
	assert_int_equal(b.first_idx, 0);
	assert_int_equal(b.first_err, -EDQUOT);
	assert_memory_equal(got, untouched, PAGE);

	/* both halves fine: delivered */
	memset(&b, 0, sizeof(b));
	b.first_idx = SIZE_MAX;
	assert_int_equal(client_queue_swap(c, 0x7000, put, 0x8000, got, &b), 0);
	assert_int_equal(flush_and_parse(c, reqs, 2), 1);
	len = put_reply(rep, &reqs[0], 0, NULL, NULL, p);
	feed(c, rep, len);
	assert_int_equal(client_process_rbuf(c), 0);
	assert_int_equal(b.done, 2);
	assert_int_equal(b.first_idx, SIZE_MAX);
	assert_memory_equal(got, src, PAGE);
	free_client(c);
}

static void slots_run_out_cleanly(void **state)
{
	struct sdrsa_client *c = new_client(SDRSA_MAX_BATCH);
	static uint8_t page[PAGE];
	struct sdrsa_completion comp;
	uint32_t i;

	(void)state;
	for (i = 0; i < CLIENT_NSLOTS; i++)
		assert_int_equal(client_queue_op(c, SDRSA_OP_GET, 0, page, i, NULL), 0);
	assert_int_equal(client_queue_op(c, SDRSA_OP_GET, 0, page, i, NULL), -EAGAIN);
	client_queue_fail_all(c, -ECONNRESET);
	for (i = 0; i < CLIENT_NSLOTS; i++) {
		assert_int_equal(client_pop_completion(c, &comp), 0);
		assert_int_equal(comp.tag, i);
		assert_int_equal(comp.result, -ECONNRESET);
	}
	assert_int_equal(client_pop_completion(c, &comp), -ENOENT);
	assert_int_equal(client_queue_op(c, SDRSA_OP_GET, 0, page, 0, NULL), 0);
	free_client(c);
}

static void big_frames_cross_the_buffer_end(void **state)
{
	struct sdrsa_client *c = new_client(SDRSA_MAX_BATCH);
	static uint8_t src[PAGE], dst[SDRSA_MAX_BATCH][PAGE];
	static const uint8_t *pp[SDRSA_MAX_BATCH];
	static struct req reqs[8];
	static uint8_t rep[CLIENT_MAX_FRAME];
	struct sdrsa_completion comp;
	size_t len, got = 0;

	(void)state;
	fill_page(src, 77);
	for (unsigned i = 0; i < SDRSA_MAX_BATCH; i++)
		pp[i] = src;
	/* Five full GET frames: more than the receive buffer holds at once. */
	for (unsigned f = 0; f < 5; f++) {
		for (unsigned i = 0; i < SDRSA_MAX_BATCH; i++)
			client_queue_op(c, SDRSA_OP_GET, (uint64_t)i * PAGE, dst[i], f, NULL);
	}
	assert_int_equal(flush_and_parse(c, reqs, 8), 5);
	for (unsigned f = 0; f < 5; f++) {
		len = put_reply(rep, &reqs[f], 0, NULL, NULL, pp);
		assert_int_equal(len, CLIENT_MAX_FRAME);
		/* Deliver in uneven chunks, as recv() would. */
		for (size_t off = 0; off < len;) {
			size_t n = MIN(len - off, (size_t)300007);
			n = MIN(n, CLIENT_RBUF_SIZE - c->wpos);
			assert_true(n > 0);
			feed(c, rep + off, n);
			off += n;
			assert_int_equal(client_process_rbuf(c), 0);
		}
	}
	while (client_pop_completion(c, &comp) == 0) {
		assert_int_equal(comp.result, 0);
		got++;
	}
	assert_int_equal(got, 5 * SDRSA_MAX_BATCH);
	assert_memory_equal(dst[SDRSA_MAX_BATCH - 1], src, PAGE);
	free_client(c);
}

/* Scatter n bytes of src into iov[] as readv() would; returns bytes used. */
static size_t scatter(const struct iovec *iov, size_t niov, const uint8_t *src, size_t n)
{
	size_t done = 0;

	for (size_t i = 0; i < niov && done < n; i++) {
		size_t k = MIN(iov[i].iov_len, n - done);

		memcpy(iov[i].iov_base, src + done, k);
		done += k;
	}
	return done;
}

/* Replies to GETs of many pages: header and entries read first, then the
 * pages straight into their buffers (client_rx_*), then the next reply's
 * header into rbuf. Zero page, miss (buffer untouched), a page corrupted in
 * transit (-EBADMSG), pages split across reads. */
static void direct_receive_into_pages(void **state)
{
	struct sdrsa_client *c = new_client(8);
	static uint8_t src[10][PAGE], dst[10][PAGE], rep[2 * CLIENT_MAX_FRAME];
	static struct req reqs[2];
	struct iovec iov[SDRSA_MAX_BATCH + 1];
	struct sdrsa_completion comp[16];
	const int want[10] = { 0, 0, -ENOENT, -EBADMSG, 0, 0, 0, 0, 0, 0 };
	size_t off = 0, len, pos, head_meta = HSZ + 8 * ESZ;
	int n, direct = 0;

	(void)state;
	for (unsigned i = 0; i < 10; i++) {
		fill_page(src[i], i + 3);
		memset(dst[i], 0x5a, PAGE);
		client_queue_op(c, SDRSA_OP_GET, (uint64_t)(i + 1) * PAGE, dst[i], i, NULL);
	}
	assert_int_equal(flush_and_parse(c, reqs, 2), 2);
	assert_int_equal(c->nsent_get, 10);
	{
		const uint8_t *p[8] = { src[0], NULL, NULL, src[3], src[4], src[5], src[6], src[7] };
		size_t a = off;

		off += put_reply(rep + off, &reqs[0], 0,
				 (const uint16_t[]){ 0, 0, SDRSA_S_NOT_FOUND, 0, 0, 0, 0, 0 },
				 (const int[]){ 0, 1, 0, 0, 0, 0, 0, 0 }, p);
		/* page 3 is the second data page of the frame (1 and 2 carry none) */
		rep[a + head_meta + PAGE + 99] ^= 1;
	}
	{
		const uint8_t *p[2] = { src[8], src[9] };
		off += put_reply(rep + off, &reqs[1], 0, NULL, NULL, p);
	}
	/* With this many GETs outstanding a plain read takes a header and at
	 * most one entry per outstanding operation. */
	assert_int_equal(client_rx_want(c), HSZ + 10 * ESZ);
	len = head_meta + 100;
	feed(c, rep, len);
	pos = len;
	assert_int_equal(client_process_rbuf(c), 0);
	assert_int_equal(c->cq_len, 0);
	assert_int_equal(client_rx_direct_start(c), 1);
	assert_int_equal(c->wpos, 0);
	while (pos < off) {
		if (c->rx.head != CLIENT_NIL) {
			size_t niov = client_rx_iov(c, iov), k;

			if (!direct) {
				/* the rest of page 0 goes straight to its buffer */
				assert_ptr_equal(iov[0].iov_base, dst[0] + 100);
				direct = 1;
			}
			k = scatter(iov, niov, rep + pos, MIN(off - pos, (size_t)5000));
			pos += k;
			assert_int_equal(client_rx_received(c, k), 0);
		} else {
			size_t k = MIN(off - pos, client_rx_want(c));

			feed(c, rep + pos, k);
			pos += k;
			assert_int_equal(client_process_rbuf(c), 0);
			client_rx_direct_start(c);
		}
	}
	assert_int_equal(c->rx.head, CLIENT_NIL);
	assert_int_equal(c->nsent, 0);
	assert_int_equal(c->nsent_get, 0);
	n = reap_all(c, comp, 16);
	assert_int_equal(n, 10);
	for (int k = 0; k < n; k++) {
		uint64_t i = comp[k].tag;

		assert_int_equal(comp[k].result, want[i]);
		if (want[i] == 0 && i != 1)
			assert_memory_equal(dst[i], src[i], PAGE);
	}
	for (unsigned i = 0; i < PAGE; i++) {
		assert_int_equal(dst[1][i], 0);
		assert_int_equal(dst[2][i], 0x5a); /* a miss leaves the buffer alone */
	}
	free_client(c);
}

/* The checksum picked for this CPU (AVX2 or not) must be the codec's. */
static void page_checksum_matches_codec(void **state)
{
	struct sdrsa_client *c;
	static uint8_t pages[64][PAGE];
	static struct req reqs[2];
	uint64_t x = 12345;

	(void)state;
	c = new_client(SDRSA_MAX_BATCH);
	for (unsigned i = 0; i < 64; i++) {
		for (unsigned j = 0; j < PAGE; j++) {
			x = x * 6364136223846793005ull + 1442695040888963407ull;
			pages[i][j] = (uint8_t)(x >> 56);
		}
		client_queue_op(c, SDRSA_OP_PUT, (uint64_t)i * 0x10000 * PAGE, pages[i], i, NULL);
	}
	assert_int_equal(flush_and_parse(c, reqs, 2), 1);
	for (unsigned i = 0; i < 64; i++)
		assert_int_equal(reqs[0].e[i].csum,
				 sdrsa_page_csum(pages[i], (uint64_t)i * 0x10000 * PAGE));
	free_client(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(batching_follows_opcode_and_max_batch),
		cmocka_unit_test(replies_out_of_order_and_verified),
		cmocka_unit_test(frame_errors),
		cmocka_unit_test(internal_batch_and_simple_ops),
		cmocka_unit_test(free_all_reply_size),
		cmocka_unit_test(swap_delivers_only_when_both_succeed),
		cmocka_unit_test(slots_run_out_cleanly),
		cmocka_unit_test(big_frames_cross_the_buffer_end),
		cmocka_unit_test(page_checksum_matches_codec),
		cmocka_unit_test(direct_receive_into_pages),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
