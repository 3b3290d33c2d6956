/* SPDX-License-Identifier: MIT */
/*
 * libsdrsa request queue: operation slots, batching of consecutive operations
 * into frames, the iovecs of a flush, and the matching of replies to frames.
 * No system calls here (client.c owns the socket), so the batching logic can
 * be unit-tested by feeding it reply bytes. Data structures and slot life
 * cycle: see client_internal.h.
 *
 * Costs per page on the hot path: a put computes its XXH3 checksum and a
 * zero-page test once at submit (its page is sent from the caller's buffer);
 * a get verifies the checksum of the reply. Its page arrives in the caller's
 * buffer by readv() when the frame carries many pages (direct receive, see
 * client_internal.h), or is copied out of the receive buffer when a frame
 * came whole (one recv() for a small reply is cheaper than two).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_internal.h"
#include "common/util.h"

void client_batch_record(struct client_batch *b, uint64_t idx, int result)
{
	if (b->results)
		b->results[idx] = result;
	if (result < 0 && idx < b->first_idx) {
		b->first_idx = idx;
		b->first_err = result;
	}
	b->done++;
}

int client_queue_init(struct sdrsa_client *c)
{
	c->ops = calloc(CLIENT_NSLOTS, sizeof(*c->ops));
	c->meta = malloc((size_t)CLIENT_NSLOTS * (SDRSA_HDR_SIZE + SDRSA_ENTRY_SIZE));
	c->unsent = calloc(CLIENT_NSLOTS, sizeof(*c->unsent));
	/* Worst case per frame: its metadata, then one page per entry. */
	c->iov = calloc(2 * (size_t)CLIENT_NSLOTS + 1, sizeof(*c->iov));
	c->rbuf = malloc(CLIENT_RBUF_SIZE);
	c->scratch = malloc(SDRSA_PAGE_SIZE);
	if (!c->ops || !c->meta || !c->unsent || !c->iov || !c->rbuf || !c->scratch) {
		client_queue_destroy(c);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < CLIENT_NSLOTS; i++)
		c->ops[i].next = i + 1 < CLIENT_NSLOTS ? i + 1 : CLIENT_NIL;
	c->free_head = 0;
	c->cq_head = c->cq_tail = CLIENT_NIL;
	c->cq_len = 0;
	c->user_ops = 0;
	c->nsent = 0;
	c->nsent_get = 0;
	c->meta_len = 0;
	c->nunsent = 0;
	c->rpos = c->wpos = 0;
	c->rx.head = CLIENT_NIL;
	c->gen = 1;
	if (!c->max_batch)
		c->max_batch = SDRSA_MAX_BATCH;
	c->frame_limit = c->max_batch;
	return 0;
}

void client_queue_destroy(struct sdrsa_client *c)
{
	free(c->ops);
	free(c->meta);
	free(c->unsent);
	free(c->iov);
	free(c->rbuf);
	free(c->scratch);
	c->scratch = NULL;
	c->ops = NULL;
	c->meta = NULL;
	c->unsent = NULL;
	c->iov = NULL;
	c->rbuf = NULL;
}

static void free_slot(struct sdrsa_client *c, uint32_t i)
{
	struct client_op *op = &c->ops[i];

	op->state = OP_FREE;
	op->batch = NULL;
	op->next = c->free_head;
	c->free_head = i;
}

static uint32_t alloc_slot(struct sdrsa_client *c)
{
	uint32_t i = c->free_head;
	struct client_op *op;

	if (i == CLIENT_NIL)
		return CLIENT_NIL;
	op = &c->ops[i];
	c->free_head = op->next;
	memset(op, 0, sizeof(*op));
	op->next = CLIENT_NIL;
	op->last = i;
	return i;
}

/* A GET's page arrived and matched its checksum: copy it in (from the
 * receive buffer; NULL: it was received in place) and hand the checksum
 * over to a caller that asked for it (sdrsa_submit_get_csum). */
static void get_page_ok(struct client_op *op, const uint8_t *data, uint64_t csum)
{
	if (data)
		memcpy(op->page, data, SDRSA_PAGE_SIZE);
	if (op->csum_out)
		*op->csum_out = csum;
}

/* A GET's reply says zero page (sent without data nor checksum). */
static void get_zero_page(struct client_op *op)
{
	memset(op->page, 0, SDRSA_PAGE_SIZE);
	if (op->csum_out)
		*op->csum_out = sdrsa_page_csum(op->page, op->addr);
}

/* Deliver a result: into the synchronous caller's batch (slot freed now) or
 * onto the completion FIFO for sdrsa_reap(). */
static void complete(struct sdrsa_client *c, uint32_t i, int result)
{
	struct client_op *op = &c->ops[i];

	if (op->state == OP_SENT) {
		c->nsent--;
		if (op->kind == SDRSA_OP_GET)
			c->nsent_get--;
	}
	if (op->batch) {
		client_batch_record(op->batch, op->tag, result);
		free_slot(c, i);
		return;
	}
	op->result = result;
	op->state = OP_DONE;
	op->next = CLIENT_NIL;
	if (c->cq_tail == CLIENT_NIL)
		c->cq_head = i;
	else
		c->ops[c->cq_tail].next = i;
	c->cq_tail = i;
	c->cq_len++;
}

static void fail_frame(struct sdrsa_client *c, uint32_t head, int err)
{
	uint32_t i = head;

	while (i != CLIENT_NIL) {
		uint32_t next = c->ops[i].next;
		complete(c, i, err);
		i = next;
	}
}

void client_queue_fail_all(struct sdrsa_client *c, int err)
{
	for (uint32_t i = 0; i < CLIENT_NSLOTS; i++)
		if (c->ops[i].state == OP_QUEUED || c->ops[i].state == OP_SENT)
			complete(c, i, err);
	c->nsent = 0;
	c->nsent_get = 0;
	c->nunsent = 0;
	c->meta_len = 0;
	c->rpos = c->wpos = 0;
	c->rx.head = CLIENT_NIL;
}

static uint32_t next_req_id(struct sdrsa_client *c, uint32_t slot)
{
	if (++c->gen > (UINT32_MAX >> CLIENT_SLOT_BITS))
		c->gen = 1;
	return (c->gen << CLIENT_SLOT_BITS) | slot;
}

static void open_frame(struct sdrsa_client *c, uint32_t head, uint8_t fop)
{
	struct client_op *op = &c->ops[head];

	op->fop = fop;
	op->count = 1;
	op->req_id = next_req_id(c, head);
	op->meta_off = (uint32_t)c->meta_len;
	c->meta_len += SDRSA_HDR_SIZE;
	c->unsent[c->nunsent++] = head;
}

static void append_entry(struct sdrsa_client *c, uint32_t head, uint32_t i)
{
	struct client_op *op = &c->ops[i];
	struct sdrsa_entry e = { .addr = op->addr };

	if (op->kind == SDRSA_OP_PUT) {
		if (sdrsa_page_is_zero(op->page)) {
			op->zero = 1;
			e.flags = SDRSA_EF_ZERO;
		} else {
			e.csum = sdrsa_page_csum(op->page, op->addr);
			e.len = SDRSA_PAGE_SIZE;
			c->ops[head].ndata++;
		}
		/* What a GET of it will verify (a zero page is sent without a
		 * checksum, but get_zero_page hands one over). */
		if (op->batch && op->batch->csums)
			op->batch->csums[op->tag] =
			    op->zero ? sdrsa_page_csum(op->page, op->addr) : e.csum;
	}
	sdrsa_entry_encode(&e, c->meta + c->meta_len);
	c->meta_len += SDRSA_ENTRY_SIZE;
}

int client_queue_op(struct sdrsa_client *c, uint8_t kind, uint64_t addr, void *page, uint64_t tag,
		    struct client_batch *batch)
{
	int entries = sdrsa_op_has_entries(kind);
	uint32_t head = CLIENT_NIL, i;
	struct client_op *op;

	if (entries && c->nunsent) {
		uint32_t h = c->unsent[c->nunsent - 1];
		if (c->ops[h].fop == kind && c->ops[h].count < c->frame_limit)
			head = h;
	}
	i = alloc_slot(c);
	if (i == CLIENT_NIL)
		return -EAGAIN;
	op = &c->ops[i];
	op->tag = tag;
	op->addr = addr;
	op->page = page;
	op->batch = batch;
	op->kind = kind;
	op->state = OP_QUEUED;
	if (head == CLIENT_NIL) {
		head = i;
		open_frame(c, i, kind);
	} else {
		c->ops[c->ops[head].last].next = i;
		c->ops[head].last = i;
		c->ops[head].count++;
	}
	if (entries)
		append_entry(c, head, i);
	if (!batch)
		c->user_ops++;
	return 0;
}

int client_queue_swap(struct sdrsa_client *c, uint64_t put_addr, const void *put_page,
		      uint64_t get_addr, void *get_page, struct client_batch *batch)
{
	uint32_t p, g;

	p = alloc_slot(c);
	if (p == CLIENT_NIL)
		return -EAGAIN;
	g = alloc_slot(c);
	if (g == CLIENT_NIL) {
		free_slot(c, p);
		return -EAGAIN;
	}
	c->ops[p] = (struct client_op){ .tag = 0, .addr = put_addr, .page = (void *)put_page,
					.batch = batch, .kind = SDRSA_OP_PUT, .state = OP_QUEUED,
					.next = g, .last = g };
	c->ops[g] = (struct client_op){ .tag = 1, .addr = get_addr, .page = get_page,
					.batch = batch, .kind = SDRSA_OP_GET, .state = OP_QUEUED,
					.next = CLIENT_NIL, .last = g };
	open_frame(c, p, SDRSA_OP_SWAP);
	c->ops[p].count = 2;
	append_entry(c, p, p);
	append_entry(c, p, g);
	return 0;
}

size_t client_queue_build(struct sdrsa_client *c, size_t *bytes)
{
	struct iovec *iov = c->iov;
	size_t n = 0, total = 0;

	for (uint32_t f = 0; f < c->nunsent; f++) {
		uint32_t head = c->unsent[f];
		struct client_op *h = &c->ops[head];
		uint8_t *meta = c->meta + h->meta_off;
		struct sdrsa_hdr hdr = {
			.version = SDRSA_PROTO_VERSION,
			.opcode = h->fop,
			.req_id = h->req_id,
			.ns = c->ns,
		};
		size_t mlen = 0;

		if (sdrsa_op_has_entries(h->fop)) {
			mlen = (size_t)h->count * SDRSA_ENTRY_SIZE;
			hdr.count = h->count;
			hdr.len = (uint32_t)(mlen + (size_t)h->ndata * SDRSA_PAGE_SIZE);
			hdr.csum = sdrsa_meta_csum(meta + SDRSA_HDR_SIZE, mlen);
		}
		sdrsa_hdr_encode(&hdr, meta);
		/* Frames without data are adjacent in meta: one iovec for all. */
		if (n && (uint8_t *)iov[n - 1].iov_base + iov[n - 1].iov_len == meta) {
			iov[n - 1].iov_len += SDRSA_HDR_SIZE + mlen;
		} else {
			iov[n].iov_base = meta;
			iov[n].iov_len = SDRSA_HDR_SIZE + mlen;
			n++;
		}
		total += SDRSA_HDR_SIZE + hdr.len;
		for (uint32_t i = head; i != CLIENT_NIL; i = c->ops[i].next) {
			struct client_op *op = &c->ops[i];

			op->state = OP_SENT;
			c->nsent++;
			if (op->kind == SDRSA_OP_GET)
				c->nsent_get++;
			if (op->kind == SDRSA_OP_PUT && !op->zero) {
				iov[n].iov_base = op->page;
				iov[n].iov_len = SDRSA_PAGE_SIZE;
				n++;
			}
		}
	}
	c->nunsent = 0;
	*bytes = total;
	return n;
}

void client_queue_sent(struct sdrsa_client *c)
{
	c->meta_len = 0;
}

static int closes_connection(unsigned status)
{
	return status == SDRSA_S_BAD_MAGIC || status == SDRSA_S_BAD_VERSION ||
	       status == SDRSA_S_TOO_BIG || status == SDRSA_S_AUTH_REQUIRED ||
	       status == SDRSA_S_AUTH_FAILED || status == SDRSA_S_BUSY;
}

/* Reply to PUT, GET, SWAP or FREE: per-entry results, verified pages. */
static int handle_entries(struct sdrsa_client *c, uint32_t head, const struct sdrsa_hdr *h,
			  const uint8_t *payload)
{
	const uint8_t *data = payload + sdrsa_meta_len(h);
	uint32_t i = head;
	int rc, put_r = 0;

	if (h->status != SDRSA_S_OK && h->count == 0) {
		int err = sdrsa_status_errno(h->status);

		client_log(c, SDRSA_LOG_DEBUG, "%s frame refused by server: %s",
			   sdrsa_op_name(h->opcode), sdrsa_status_name(h->status));
		fail_frame(c, head, err);
		return closes_connection(h->status) ? err : 0;
	}
	if (h->count != c->ops[head].count) {
		client_log(c, SDRSA_LOG_WARN, "%s reply has %u entries for %u requested",
			   sdrsa_op_name(h->opcode), h->count, c->ops[head].count);
		fail_frame(c, head, -EBADMSG);
		return -EPROTO;
	}
	rc = sdrsa_payload_check(h, payload);
	if (rc < 0) {
		client_log(c, SDRSA_LOG_WARN, "%s reply malformed (%s): failing its %u pages",
			   sdrsa_op_name(h->opcode), rc == -EILSEQ ? "checksum" : "shape",
			   h->count);
		fail_frame(c, head, -EBADMSG);
		return 0;
	}
	for (unsigned k = 0; k < h->count; k++) {
		struct client_op *op = &c->ops[i];
		uint32_t next = op->next;
		struct sdrsa_entry e;
		const uint8_t *page = NULL;
		int r;

		sdrsa_entry_decode(payload + (size_t)k * SDRSA_ENTRY_SIZE, &e);
		if (e.len) {
			page = data;
			data += SDRSA_PAGE_SIZE;
		}
		r = e.addr == op->addr ? sdrsa_status_errno(e.status) : -EBADMSG;
		/* A swap returns the put's error first and writes its get
		 * page only on success: not when the put half failed. */
		if (h->opcode == SDRSA_OP_SWAP) {
			if (k == 0)
				put_r = r;
			else if (r == 0)
				r = put_r;
		}
		if (r == 0 && op->kind == SDRSA_OP_GET) {
			if (e.flags & SDRSA_EF_ZERO)
				get_zero_page(op);
			else if (page && sdrsa_page_csum(page, e.addr) == e.csum)
				get_page_ok(op, page, e.csum);
			else
				r = -EBADMSG;
			if (r < 0)
				client_log(c, SDRSA_LOG_WARN,
					   "page 0x%llx failed its checksum; not delivered",
					   (unsigned long long)op->addr);
		}
		if (op->kind == SDRSA_OP_FREE && r == -ENOENT)
			r = 0;
		complete(c, i, r);
		i = next;
	}
	return 0;
}

/* Reply to PING, STATS or FREE_ALL. */
static int handle_simple(struct sdrsa_client *c, uint32_t head, const struct sdrsa_hdr *h,
			 const uint8_t *payload)
{
	struct client_op *op = &c->ops[head];
	int r = sdrsa_status_errno(h->status);

	if (r == 0 && (h->len ? sdrsa_meta_csum(payload, h->len) : 0) != h->csum)
		r = -EBADMSG;
	if (r == 0 && op->kind == SDRSA_OP_STATS) {
		struct sdrsa_stats s;

		if (sdrsa_stats_decode(payload, h->len, &s) < 0)
			r = -EBADMSG;
		else
			memcpy(op->page, &s, sizeof(s));
	} else if (r == 0 && op->kind == SDRSA_OP_FREE_ALL) {
		if (sdrsa_freed_decode(payload, h->len, (uint64_t *)op->page) < 0)
			r = -EBADMSG;
	}
	complete(c, head, r);
	return r < 0 && closes_connection(h->status) ? r : 0;
}

static int handle_reply(struct sdrsa_client *c, const struct sdrsa_hdr *h, const uint8_t *payload)
{
	uint32_t head = h->req_id & CLIENT_SLOT_MASK;

	if (head >= CLIENT_NSLOTS || c->ops[head].state != OP_SENT ||
	    c->ops[head].req_id != h->req_id) {
		/* Not ours: the server's last word before closing, or a bug. */
		if (h->status != SDRSA_S_OK) {
			client_log(c, SDRSA_LOG_WARN, "server closes the connection: %s",
				   sdrsa_status_name(h->status));
			return sdrsa_status_errno(h->status);
		}
		client_log(c, SDRSA_LOG_WARN, "reply to unknown request %u", h->req_id);
		return -EPROTO;
	}
	if (h->opcode != c->ops[head].fop) {
		client_log(c, SDRSA_LOG_WARN, "reply to %s request %u has opcode %s",
			   sdrsa_op_name(c->ops[head].fop), h->req_id, sdrsa_op_name(h->opcode));
		return -EPROTO;
	}
	if (sdrsa_op_has_entries(h->opcode))
		return handle_entries(c, head, h, payload);
	return handle_simple(c, head, h, payload);
}

int client_process_rbuf(struct sdrsa_client *c)
{
	size_t need = SDRSA_HDR_SIZE;
	int rc = 0;

	while (c->wpos - c->rpos >= SDRSA_HDR_SIZE) {
		size_t avail = c->wpos - c->rpos;
		struct sdrsa_hdr h;

		rc = sdrsa_hdr_decode(c->rbuf + c->rpos, avail, &h);
		if (rc < 0 || !(h.flags & SDRSA_F_REPLY)) {
			client_log(c, SDRSA_LOG_WARN, "server sent an invalid frame header (%d)",
				   rc);
			return -EPROTO;
		}
		need = SDRSA_HDR_SIZE + (size_t)h.len;
		if (avail < need)
			break;
		rc = handle_reply(c, &h, c->rbuf + c->rpos + SDRSA_HDR_SIZE);
		c->rpos += need;
		need = SDRSA_HDR_SIZE;
		if (rc < 0)
			return rc;
	}
	if (c->rpos == c->wpos) {
		c->rpos = c->wpos = 0;
	} else if (c->rpos + need > CLIENT_RBUF_SIZE) {
		memmove(c->rbuf, c->rbuf + c->rpos, c->wpos - c->rpos);
		c->wpos -= c->rpos;
		c->rpos = 0;
	}
	return 0;
}

/* ---- direct receive of GET replies ---------------------------------------- */

/* The head slot of the frame a reply answers, or CLIENT_NIL if it answers
 * none of ours (handle_reply() reports that case when the frame is whole). */
static uint32_t reply_head(const struct sdrsa_client *c, const struct sdrsa_hdr *h)
{
	uint32_t head = h->req_id & CLIENT_SLOT_MASK;

	if (head >= CLIENT_NSLOTS || c->ops[head].state != OP_SENT ||
	    c->ops[head].req_id != h->req_id || c->ops[head].fop != h->opcode)
		return CLIENT_NIL;
	return head;
}

int client_rx_direct_start(struct sdrsa_client *c)
{
	size_t avail = c->wpos - c->rpos, meta, have;
	const uint8_t *payload, *data;
	struct client_rx *rx = &c->rx;
	struct sdrsa_hdr h;
	uint32_t head, i;

	if (rx->head != CLIENT_NIL || avail < SDRSA_HDR_SIZE)
		return 0;
	if (sdrsa_hdr_decode(c->rbuf + c->rpos, avail, &h) < 0 || !(h.flags & SDRSA_F_REPLY) ||
	    h.opcode != SDRSA_OP_GET || h.status != SDRSA_S_OK)
		return 0;
	meta = sdrsa_meta_len(&h);
	if (avail < SDRSA_HDR_SIZE + meta || avail >= SDRSA_HDR_SIZE + (size_t)h.len)
		return 0;
	head = reply_head(c, &h);
	payload = c->rbuf + c->rpos + SDRSA_HDR_SIZE;
	/* Anything odd: leave it to handle_entries() once the frame is whole. */
	if (head == CLIENT_NIL || h.count != c->ops[head].count ||
	    sdrsa_payload_check(&h, payload) < 0)
		return 0;
	rx->ndest = 0;
	i = head;
	for (unsigned k = 0; k < h.count; k++) {
		struct client_op *op = &c->ops[i];
		struct sdrsa_entry e;
		int r;

		sdrsa_entry_decode(payload + (size_t)k * SDRSA_ENTRY_SIZE, &e);
		r = e.addr == op->addr ? sdrsa_status_errno(e.status) : -EBADMSG;
		op->result = r;
		op->zero = r == 0 && (e.flags & SDRSA_EF_ZERO);
		op->rdata = e.len != 0;
		op->rcsum = e.csum;
		if (e.len)
			rx->dest[rx->ndest++] = r == 0 ? op->page : c->scratch;
		i = op->next;
	}
	rx->head = head;
	rx->count = h.count;
	rx->pos = 0;
	rx->off = 0;
	rx->left = (size_t)h.len - meta;
	/* The data that came with the entries: copied (at most one read's worth
	 * beyond them), the rest goes straight to its pages. */
	data = payload + meta;
	have = avail - SDRSA_HDR_SIZE - meta;
	while (have) {
		size_t n = MIN(have, SDRSA_PAGE_SIZE - rx->off);

		memcpy(rx->dest[rx->pos] + rx->off, data, n);
		data += n;
		have -= n;
		rx->left -= n;
		rx->off += n;
		if (rx->off == SDRSA_PAGE_SIZE) {
			rx->pos++;
			rx->off = 0;
		}
	}
	c->rpos = c->wpos = 0;
	return 1;
}

size_t client_rx_iov(struct sdrsa_client *c, struct iovec *iov)
{
	const struct client_rx *rx = &c->rx;
	uint32_t others = c->nsent - rx->count;
	size_t n = 0;

	for (uint32_t k = rx->pos; k < rx->ndest; k++) {
		size_t off = k == rx->pos ? rx->off : 0;

		iov[n].iov_base = rx->dest[k] + off;
		iov[n].iov_len = SDRSA_PAGE_SIZE - off;
		n++;
	}
	/* Room for the header and entries of the next reply, no more: its
	 * pages should go to their destinations too. */
	if (others) {
		iov[n].iov_base = c->rbuf + c->wpos;
		iov[n].iov_len = MIN(SDRSA_HDR_SIZE + (size_t)SDRSA_ENTRY_SIZE *
						       MIN(others, SDRSA_MAX_BATCH),
				     CLIENT_RBUF_SIZE - c->wpos);
		n++;
	}
	return n;
}

/* The frame's data is all in: verify and complete its operations. */
static void rx_finish(struct sdrsa_client *c)
{
	uint32_t i = c->rx.head;

	c->rx.head = CLIENT_NIL;
	while (i != CLIENT_NIL) {
		struct client_op *op = &c->ops[i];
		uint32_t next = op->next;
		int r = op->result;

		if (r == 0) {
			if (op->zero) {
				get_zero_page(op);
			} else if (op->rdata && sdrsa_page_csum(op->page, op->addr) == op->rcsum) {
				get_page_ok(op, NULL, op->rcsum);
			} else {
				client_log(c, SDRSA_LOG_WARN,
					   "page 0x%llx failed its checksum; its buffer holds what "
					   "came, not a valid page",
					   (unsigned long long)op->addr);
				r = -EBADMSG;
			}
		}
		complete(c, i, r);
		i = next;
	}
}

int client_rx_received(struct sdrsa_client *c, size_t n)
{
	struct client_rx *rx = &c->rx;
	size_t data = MIN(n, rx->left), take = data;

	rx->left -= data;
	while (take) {
		size_t k = MIN(take, SDRSA_PAGE_SIZE - rx->off);

		take -= k;
		rx->off += k;
		if (rx->off == SDRSA_PAGE_SIZE) {
			rx->pos++;
			rx->off = 0;
		}
	}
	if (rx->left)
		return 0;
	/* Bytes past the data landed in rbuf (the last iovec). */
	c->wpos += n - data;
	rx_finish(c);
	return client_process_rbuf(c);
}

size_t client_rx_want(const struct sdrsa_client *c)
{
	size_t room = CLIENT_RBUF_SIZE - c->wpos, avail = c->wpos - c->rpos, want;
	struct sdrsa_hdr h;

	if (c->nsent_get < CLIENT_RX_DIRECT_MIN)
		return room;
	if (avail < SDRSA_HDR_SIZE)
		want = SDRSA_HDR_SIZE +
		       (size_t)SDRSA_ENTRY_SIZE * MIN(c->nsent, SDRSA_MAX_BATCH) - avail;
	else if (sdrsa_hdr_decode(c->rbuf + c->rpos, avail, &h) < 0)
		return room;
	else if (h.opcode == SDRSA_OP_GET && avail < SDRSA_HDR_SIZE + sdrsa_meta_len(&h))
		want = SDRSA_HDR_SIZE + sdrsa_meta_len(&h) - avail;
	else if (avail < SDRSA_HDR_SIZE + (size_t)h.len)
		want = SDRSA_HDR_SIZE + (size_t)h.len - avail;
	else
		return room;
	return MIN(want, room);
}

int client_pop_completion(struct sdrsa_client *c, struct sdrsa_completion *out)
{
	uint32_t i = c->cq_head;
	struct client_op *op;

	if (i == CLIENT_NIL)
		return -ENOENT;
	op = &c->ops[i];
	c->cq_head = op->next;
	if (c->cq_head == CLIENT_NIL)
		c->cq_tail = CLIENT_NIL;
	c->cq_len--;
	out->tag = op->tag;
	out->addr = op->addr;
	out->opcode = op->kind;
	out->result = op->result;
	c->user_ops--;
	free_slot(c, i);
	return 0;
}
