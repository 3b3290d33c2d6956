/* SPDX-License-Identifier: MIT */
/*
 * The protocol on one connection: framing errors, the handshake, namespace
 * checks, and the page operations, with replies queued in the connection's
 * output buffer. No socket calls here; server.c reads and writes.
 *
 * Error policy (docs/PROTOCOL.md): where the byte stream can no longer be
 * trusted (bad magic, version, oversize) or the handshake fails, queue one
 * status reply and mark the connection closing; for a well-framed but wrong
 * request, reply with a status and carry on. Nothing a client sends can
 * crash the server or reach another namespace: every length is checked by
 * the codec before it is used, and page data is copied to and from slots
 * only by the store, under the index shard lock, or sent from a slot that
 * the store pinned under that lock.
 *
 * Replies are written straight into the output buffer: room for the largest
 * possible reply is reserved first, entries and page data are filled in, and
 * the header is written last, when the data length and checksum are known.
 * The one exception is a GET whose reply would be the only bytes queued: it
 * is sent at once, page data straight from the pool (get_zero_copy()); that
 * is the only socket call in this file (through server.c's conn_send_iov()).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "common/util.h"
#include "server/server_int.h"

/* Room for n more bytes at c->out + c->out_end, or NULL (c->oom set). */
static uint8_t *out_reserve(struct conn *c, size_t n)
{
	size_t pending = out_pending(c);

	if (c->out_cap - c->out_end >= n)
		return c->out + c->out_end;
	if (c->out_start) {
		memmove(c->out, c->out + c->out_start, pending);
		c->out_start = 0;
		c->out_end = pending;
	}
	if (c->out_cap - c->out_end < n) {
		size_t cap = c->out_cap ? c->out_cap : CONN_OUT_INITIAL;
		uint8_t *p;

		while (cap - c->out_end < n)
			cap *= 2;
		p = realloc(c->out, cap);
		if (!p) {
			c->oom = 1;
			return NULL;
		}
		c->out = p;
		c->out_cap = cap;
	}
	return c->out + c->out_end;
}

static void put_reply_hdr(uint8_t *dst, const struct sdrsa_hdr *req, uint32_t ns, unsigned status,
			  uint16_t count, uint32_t len, uint64_t csum)
{
	struct sdrsa_hdr h = {
	    .version = SDRSA_PROTO_VERSION,
	    .opcode = req ? req->opcode : 0,
	    .flags = SDRSA_F_REPLY,
	    .req_id = req ? req->req_id : 0,
	    .status = (uint16_t)status,
	    .count = count,
	    .ns = ns,
	    .len = len,
	    .csum = csum,
	};

	sdrsa_hdr_encode(&h, dst);
}

void session_encode_status(uint8_t out[SDRSA_HDR_SIZE], uint8_t opcode, unsigned status)
{
	struct sdrsa_hdr req = {.opcode = opcode};

	put_reply_hdr(out, &req, 0, status, 0, 0, 0);
}

/* Header-only reply carrying a status. */
static void reply_status(struct conn *c, const struct sdrsa_hdr *req, unsigned status)
{
	uint8_t *p = out_reserve(c, SDRSA_HDR_SIZE);

	if (!p)
		return;
	put_reply_hdr(p, req, req ? req->ns : 0, status, 0, 0, 0);
	c->out_end += SDRSA_HDR_SIZE;
}

/* Reply with a small non-entry payload; csum covers all of it (0 if empty). */
static void reply_payload(struct conn *c, const struct sdrsa_hdr *req, uint32_t ns,
			  const uint8_t *payload, size_t len)
{
	uint8_t *p = out_reserve(c, SDRSA_HDR_SIZE + len);

	if (!p)
		return;
	if (len)
		memcpy(p + SDRSA_HDR_SIZE, payload, len);
	put_reply_hdr(p, req, ns, SDRSA_S_OK, 0, (uint32_t)len,
		      len ? sdrsa_meta_csum(payload, len) : 0);
	c->out_end += SDRSA_HDR_SIZE + len;
}

static const char *client_name(const struct conn *c)
{
	return c->name[0] ? c->name : "-";
}

/*
 * Refuse and close: queue the status, stop reading frames, and record why
 * for the disconnect line. Input still buffered is dropped.
 */
static void __attribute__((format(printf, 4, 5)))
fatal(struct conn *c, const struct sdrsa_hdr *req, unsigned status, const char *fmt, ...)
{
	va_list ap;

	reply_status(c, req, status);
	c->closing = 1;
	c->in_start = c->in_end = 0;
	if (status == SDRSA_S_AUTH_FAILED)
		STAT_ADD(c->w, auth_failures, 1);
	else
		STAT_ADD(c->w, bad_frames, 1);
	va_start(ap, fmt);
	vsnprintf(c->reason, sizeof(c->reason), fmt, ap);
	va_end(ap);
}

/* A refused frame on a connection that stays open. The first one per
 * connection is logged, so a misbehaving client cannot flood the log. */
static void frame_error(struct conn *c, const struct sdrsa_hdr *req, unsigned status,
			const char *what)
{
	reply_status(c, req, status);
	if (status != SDRSA_S_FORBIDDEN)
		STAT_ADD(c->w, bad_frames, 1);
	if (!c->logged_bad) {
		c->logged_bad = 1;
		srv_log(c->w->srv, LOG_WARNING,
			"%s client=%s ns=%u: refused %s request id %u: %s (%s); "
			"further refusals on this connection are not logged",
			c->peer, client_name(c), c->ns_id, sdrsa_op_name(req->opcode), req->req_id,
			what, sdrsa_status_name(status));
	}
}

/* Payload checksum of a non-entry request: XXH3 of the payload, 0 if empty
 * (XXH3 of nothing is accepted too, for senders that hash unconditionally). */
static int small_csum_ok(const struct sdrsa_hdr *h, const uint8_t *payload)
{
	if (h->len == 0)
		return h->csum == 0 || h->csum == sdrsa_meta_csum(payload, 0);
	return h->csum == sdrsa_meta_csum(payload, h->len);
}

/* ---- handshake ---------------------------------------------------------- */

static void do_hello(struct conn *c, const struct sdrsa_hdr *h, const uint8_t *payload)
{
	struct sdrsa_server *s = c->w->srv;
	struct sdrsa_challenge ch;
	struct sdrsa_hello hello;
	uint8_t buf[SDRSA_CHALLENGE_SIZE];
	int auth;

	if (h->count || h->len > SDRSA_HELLO_MAX) {
		fatal(c, h, SDRSA_S_BAD_FRAME, "malformed HELLO (%s)",
		      h->count ? "entries" : "too long");
		return;
	}
	if (!small_csum_ok(h, payload)) {
		fatal(c, h, SDRSA_S_CHECKSUM, "malformed HELLO (checksum)");
		return;
	}
	if (sdrsa_hello_decode(payload, h->len, &hello)) {
		fatal(c, h, SDRSA_S_BAD_FRAME, "malformed HELLO (bad length or client name)");
		return;
	}
	memcpy(c->name, hello.name, sizeof(c->name));
	memcpy(c->cnonce, hello.nonce, SDRSA_NONCE_SIZE);
	pthread_rwlock_rdlock(&s->keys_lock);
	auth = s->keys != NULL;
	pthread_rwlock_unlock(&s->keys_lock);
	if (!auth && !s->insecure && !c->local) {
		srv_log(s, LOG_WARNING,
			"refused %s client=%s: not a loopback or Unix-socket peer and the server "
			"has no --key-file; start it with --key-file (or --insecure on a trusted "
			"network)",
			c->peer, c->name);
		fatal(c, h, SDRSA_S_AUTH_FAILED, "refused: non-local peer without --key-file");
		return;
	}
	randombytes_buf(c->snonce, SDRSA_NONCE_SIZE);
	memcpy(ch.nonce, c->snonce, SDRSA_NONCE_SIZE);
	ch.auth_required = (uint8_t)auth;
	reply_payload(c, h, 0, buf, sdrsa_challenge_encode(&ch, buf));
	c->state = CS_AUTH;
}

static void do_auth(struct conn *c, const struct sdrsa_hdr *h, const uint8_t *payload)
{
	struct sdrsa_server *s = c->w->srv;
	struct sdrsa_welcome wel = {.max_batch = SDRSA_MAX_BATCH};
	uint8_t buf[SDRSA_WELCOME_SIZE];
	struct sdrsa_ns *ns;
	int rc = 0, auth;

	if (h->count || h->len != SDRSA_AUTH_SIZE) {
		fatal(c, h, SDRSA_S_BAD_FRAME, "malformed AUTH");
		return;
	}
	if (!small_csum_ok(h, payload)) {
		fatal(c, h, SDRSA_S_CHECKSUM, "AUTH failed its checksum");
		return;
	}
	pthread_rwlock_rdlock(&s->keys_lock);
	auth = s->keys != NULL;
	if (auth)
		rc = sdrsa_keys_verify(s->keys, c->name, c->cnonce, c->snonce, payload, wel.mac);
	pthread_rwlock_unlock(&s->keys_lock);
	if (rc) {
		srv_log(s, LOG_WARNING,
			"authentication failed for %s client=%s: unknown client name or wrong key "
			"(check the client's key file line against the server's)",
			c->peer, c->name);
		fatal(c, h, SDRSA_S_AUTH_FAILED, "authentication failed");
		return;
	}
	rc = sdrsa_store_open(s->store, c->name, &ns);
	if (rc) {
		srv_log(s, LOG_ERR,
			"%s client=%s: cannot open a namespace: %s (every namespace holds "
			"pages or a connection; FREE_ALL unused ones)",
			c->peer, c->name, strerror(-rc));
		fatal(c, h, SDRSA_S_INTERNAL, "no namespace available");
		return;
	}
	c->ns = ns;
	c->ns_id = ns->id;
	c->state = CS_READY;
	wel.pool_pages = s->pool_pages;
	wel.quota_pages = s->quota_pages;
	reply_payload(c, h, ns->id, buf, sdrsa_welcome_encode(&wel, buf));
	srv_log(s, LOG_INFO, "connect %s client=%s ns=%u pages=%llu%s", c->peer, c->name, ns->id,
		(unsigned long long)atomic_load(&ns->pages), auth ? " (key verified)" : "");
}

/* ---- page operations ---------------------------------------------------- */

/* Store one page; fills the reply entry. */
static void op_put(struct conn *c, const struct sdrsa_entry *e, const uint8_t **data,
		   struct sdrsa_entry *r)
{
	const uint8_t *page = NULL;
	int rc;

	if (e->len) {
		page = *data;
		*data += SDRSA_PAGE_SIZE;
	}
	/* Draining (docs/POOL.md): no new data; clients move their pages off. */
	if (atomic_load_explicit(&c->w->srv->draining, memory_order_relaxed))
		rc = -ENOSPC;
	else
		rc = sdrsa_store_put(c->w->srv->store, c->ns, e->addr, page, e->csum);
	switch (rc) {
	case 1:
		r->flags = SDRSA_EF_ZERO;
		/* fall through */
	case 0:
		r->status = SDRSA_S_OK;
		STAT_ADD(c->w, puts, 1);
		break;
	case -EBADMSG:
		r->status = SDRSA_S_CHECKSUM;
		if (!c->logged_bad) {
			c->logged_bad = 1;
			srv_log(c->w->srv, LOG_WARNING,
				"%s client=%s ns=%u: page 0x%llx failed its checksum and was not "
				"stored (corrupted in transit or in the client); further refusals "
				"on this connection are not logged",
				c->peer, c->name, c->ns_id, (unsigned long long)e->addr);
		}
		break;
	case -EDQUOT:
		r->status = SDRSA_S_QUOTA;
		STAT_ADD(c->w, quota_refused, 1);
		break;
	case -ENOSPC:
		r->status = SDRSA_S_POOL_FULL;
		STAT_ADD(c->w, pool_full, 1);
		break;
	case -EINVAL:
		r->status = SDRSA_S_BAD_ADDRESS;
		break;
	default:
		r->status = SDRSA_S_INTERNAL;
		break;
	}
}

/* Fetch one page into *data (advanced when data was written). */
static void op_get(struct conn *c, const struct sdrsa_entry *e, uint8_t **data,
		   struct sdrsa_entry *r)
{
	uint64_t csum = 0;
	int rc = sdrsa_store_get(c->w->srv->store, c->ns, e->addr, *data, &csum);

	STAT_ADD(c->w, gets, 1);
	if (rc == 0) {
		r->status = SDRSA_S_OK;
		r->csum = csum;
		r->len = SDRSA_PAGE_SIZE;
		*data += SDRSA_PAGE_SIZE;
	} else if (rc == 1) {
		r->status = SDRSA_S_OK;
		r->flags = SDRSA_EF_ZERO;
	} else if (rc == -ENOENT) {
		r->status = SDRSA_S_NOT_FOUND;
		STAT_ADD(c->w, misses, 1);
	} else {
		r->status = rc == -EINVAL ? SDRSA_S_BAD_ADDRESS : SDRSA_S_INTERNAL;
	}
}

static void op_free(struct conn *c, const struct sdrsa_entry *e, struct sdrsa_entry *r)
{
	int rc = sdrsa_store_drop(c->w->srv->store, c->ns, e->addr);

	if (rc == 0) {
		r->status = SDRSA_S_OK;
		STAT_ADD(c->w, frees, 1);
	} else {
		r->status = rc == -ENOENT ? SDRSA_S_NOT_FOUND : SDRSA_S_BAD_ADDRESS;
	}
}

/*
 * Pages of a GET frame prefetched ahead of their copy: the first GET_PREFETCH
 * at once, then one per page copied. Pool pages are cold (a client's working
 * set is far larger than the cache), and a copy that waits for DRAM line by
 * line under the shard lock was the largest server cost of a pipelined GET.
 * The client library packs about 31 GETs per frame at 32 in flight. Measured
 * (pagebench, 200000 pipelined gets, runs with and without interleaved, this
 * project's VM): pinned, median of 15, 2.65 -> 2.81 GB/s (+6%, faster in 11
 * of 15 pairs); unpinned, median of 6, 3.51 -> 3.73 GB/s. The extra lookup
 * under the shard lock costs less than the DRAM stalls it hides. 32 pages are
 * 128 KiB: well inside L2, so the first pages are still cached when their
 * turn comes.
 */
#define GET_PREFETCH 32u

static void prefetch_entry(struct conn *c, const struct sdrsa_hdr *h,
			   const struct sdrsa_entry *e)
{
	if (h->opcode == SDRSA_OP_GET)
		sdrsa_store_prefetch(c->w->srv->store, c->ns, e->addr);
	else
		sdrsa_store_prefetch_write(c->w->srv->store, c->ns, e->addr);
}

/*
 * Start the cache misses of a GET or PUT frame early and all at once: the
 * index buckets of every page (no lock: these misses overlap), then the pool
 * slots of the first GET_PREFETCH pages (looked up under the lock, now
 * cached). do_entries() keeps prefetching one slot ahead per page. Puts
 * prefetch with intent to write the slots they overwrite: their copy into a
 * cold slot used to stall at the shard unlock, where the stores drain (14% of
 * the CPU of pipelined puts). Measured (pagebench pinned, 200000 pipelined
 * operations, 4 alternating pairs against the GET-only prefetch above): get
 * 2.67 -> 2.85 GB/s, put 3.06 -> 3.35 GB/s, both faster in every pair; in a
 * profile of gets the index lookups fell from 7.7% to 3% of the CPU. Tried
 * and dropped: non-temporal stores for puts instead (3.26 -> 2.64 GB/s).
 */
static void prefetch_frame(struct conn *c, const struct sdrsa_hdr *h,
			   const struct sdrsa_entry *ents)
{
	for (unsigned i = 0; i < h->count; i++)
		sdrsa_store_prefetch_index(c->w->srv->store, c->ns, ents[i].addr);
	for (unsigned i = 0; i < h->count && i < GET_PREFETCH; i++)
		prefetch_entry(c, h, &ents[i]);
}

/*
 * A GET frame of several pages whose reply can go out at once (nothing
 * queued before it):
 * header and entries from the output buffer, page data straight from the
 * pool slots, in one sendmsg(). The slots are pinned from their lookup
 * (under the shard lock, as a copy was) until the send returned and what it
 * did not take was copied into the output buffer, so no slot is referenced
 * after this function: a FREE or PUT elsewhere meanwhile lets the slot go
 * only when unpinned, or writes its new data into another slot (store.h).
 * The checksum sent is the one stored at PUT; the server never reads the
 * page. rh: room for the whole reply, reserved at c->out + c->out_end.
 */
static void get_zero_copy(struct conn *c, const struct sdrsa_hdr *h,
			  const struct sdrsa_entry *ents, uint8_t *rh)
{
	struct sdrsa_store *st = c->w->srv->store;
	size_t meta = sdrsa_meta_len(h), total, sent, off;
	struct iovec iov[SDRSA_MAX_BATCH + 1];
	uint32_t pinned[SDRSA_MAX_BATCH];
	uint8_t *re = rh + SDRSA_HDR_SIZE;
	unsigned n = 1, np = 0;

	for (unsigned i = 0; i < h->count; i++)
		sdrsa_store_prefetch_index(st, c->ns, ents[i].addr);
	for (unsigned i = 0; i < h->count; i++) {
		struct sdrsa_entry r;
		const void *page;
		uint64_t csum = 0;
		int rc;

		memset(&r, 0, sizeof(r));
		r.addr = ents[i].addr;
		rc = sdrsa_store_get_pinned(st, c->ns, ents[i].addr, &page, &pinned[np], &csum);
		STAT_ADD(c->w, gets, 1);
		if (rc == 0) {
			r.status = SDRSA_S_OK;
			r.csum = csum;
			r.len = SDRSA_PAGE_SIZE;
			iov[n].iov_base = (void *)page;
			iov[n].iov_len = SDRSA_PAGE_SIZE;
			n++;
			/* No prefetch of the slot for the kernel's copy: measured
			 * (pagebench pinned, 8 pairs), prefetching the first 32
			 * pages here made no difference (2.54 vs 2.58 GB/s). */
			np++;
		} else if (rc == 1) {
			r.status = SDRSA_S_OK;
			r.flags = SDRSA_EF_ZERO;
		} else if (rc == -ENOENT) {
			r.status = SDRSA_S_NOT_FOUND;
			STAT_ADD(c->w, misses, 1);
		} else {
			r.status = rc == -EINVAL ? SDRSA_S_BAD_ADDRESS : SDRSA_S_INTERNAL;
		}
		sdrsa_entry_encode(&r, re + (size_t)i * SDRSA_ENTRY_SIZE);
	}
	total = SDRSA_HDR_SIZE + meta + (size_t)np * SDRSA_PAGE_SIZE;
	put_reply_hdr(rh, h, c->ns_id, SDRSA_S_OK, h->count,
		      (uint32_t)(total - SDRSA_HDR_SIZE), sdrsa_meta_csum(re, meta));
	iov[0].iov_base = rh;
	iov[0].iov_len = SDRSA_HDR_SIZE + meta;
	if (c->w->srv->test_send_delay_us)
		usleep(c->w->srv->test_send_delay_us);
	sent = conn_send_iov(c, iov, n);
	/* What the socket did not take goes where the copying path would have
	 * put it, before any slot is unpinned. */
	off = iov[0].iov_len;
	for (unsigned k = 1; k < n; k++, off += SDRSA_PAGE_SIZE) {
		if (off + SDRSA_PAGE_SIZE <= sent)
			continue;
		if (off >= sent)
			memcpy(rh + off, iov[k].iov_base, SDRSA_PAGE_SIZE);
		else
			memcpy(rh + sent, (const uint8_t *)iov[k].iov_base + (sent - off),
			       off + SDRSA_PAGE_SIZE - sent);
	}
	for (unsigned k = 0; k < np; k++)
		sdrsa_store_unpin(st, pinned[k]);
	c->out_start = c->out_end + sent;
	c->out_end += total;
	if (!out_pending(c))
		c->out_start = c->out_end = 0; /* all sent: the next reply starts at 0 */
}

static void do_entries(struct conn *c, const struct sdrsa_hdr *h, const uint8_t *payload)
{
	size_t meta = sdrsa_meta_len(h), max_data;
	const uint8_t *in_data = payload + meta;
	struct sdrsa_entry ents[SDRSA_MAX_BATCH]; /* decoded once, for every pass below */
	uint8_t *rh, *re, *rd, *rd0;
	int rc = sdrsa_payload_check(h, payload);

	if (rc == -EINVAL) {
		frame_error(c, h, SDRSA_S_BAD_ADDRESS, "page address not a multiple of 4096");
		return;
	}
	if (rc == -EILSEQ) {
		frame_error(c, h, SDRSA_S_CHECKSUM, "entry checksum mismatch");
		return;
	}
	if (rc) {
		frame_error(c, h, SDRSA_S_BAD_FRAME, "entries inconsistent with the header");
		return;
	}
	for (unsigned i = 0; i < h->count; i++) /* count <= SDRSA_MAX_BATCH: checked */
		sdrsa_entry_decode(payload + (size_t)i * SDRSA_ENTRY_SIZE, &ents[i]);
	if (h->opcode == SDRSA_OP_GET)
		max_data = (size_t)h->count * SDRSA_PAGE_SIZE;
	else if (h->opcode == SDRSA_OP_SWAP)
		max_data = SDRSA_PAGE_SIZE;
	else
		max_data = 0;
	/* A frame of one page keeps the copy: sending it from its slot made a
	 * single get slower (median 13.05 -> 13.35 us, slower in 8 of 8
	 * pagebench pairs: a second iovec and two atomic pin operations cost
	 * more than copying 4 KiB). */
	if (h->opcode == SDRSA_OP_GET && h->count > 1 && !out_pending(c)) {
		rh = out_reserve(c, SDRSA_HDR_SIZE + meta + max_data);
		if (rh)
			get_zero_copy(c, h, ents, rh);
		return;
	}
	rh = out_reserve(c, SDRSA_HDR_SIZE + meta + max_data);
	if (!rh)
		return;
	re = rh + SDRSA_HDR_SIZE;
	rd = rd0 = re + meta;
	if (h->opcode == SDRSA_OP_SWAP)
		STAT_ADD(c->w, swaps, 1);
	if ((h->opcode == SDRSA_OP_GET || h->opcode == SDRSA_OP_PUT) && h->count > 1)
		prefetch_frame(c, h, ents);
	for (unsigned i = 0; i < h->count; i++) {
		const struct sdrsa_entry *e = &ents[i];
		struct sdrsa_entry r;

		memset(&r, 0, sizeof(r));
		r.addr = e->addr;
		switch (h->opcode) {
		case SDRSA_OP_PUT:
			if (i + GET_PREFETCH < h->count)
				prefetch_entry(c, h, &ents[i + GET_PREFETCH]);
			op_put(c, e, &in_data, &r);
			break;
		case SDRSA_OP_GET:
			if (i + GET_PREFETCH < h->count)
				prefetch_entry(c, h, &ents[i + GET_PREFETCH]);
			op_get(c, e, &rd, &r);
			break;
		case SDRSA_OP_FREE:
			op_free(c, e, &r);
			break;
		case SDRSA_OP_SWAP:
			if (i == 0)
				op_put(c, e, &in_data, &r);
			else
				op_get(c, e, &rd, &r);
			break;
		}
		sdrsa_entry_encode(&r, re + (size_t)i * SDRSA_ENTRY_SIZE);
	}
	put_reply_hdr(rh, h, c->ns_id, SDRSA_S_OK, h->count, (uint32_t)(meta + (size_t)(rd - rd0)),
		      sdrsa_meta_csum(re, meta));
	c->out_end += SDRSA_HDR_SIZE + meta + (size_t)(rd - rd0);
}

static void do_stats(struct conn *c, const struct sdrsa_hdr *h)
{
	uint8_t buf[SDRSA_STATS_SIZE];
	struct sdrsa_stats st;

	sdrsa_server_stats(c->w->srv, &st);
	st.ns_pages = atomic_load_explicit(&c->ns->pages, memory_order_relaxed);
	st.ns_quota = c->ns->quota;
	reply_payload(c, h, c->ns_id, buf, sdrsa_stats_encode(&st, buf));
}

static void do_free_all(struct conn *c, const struct sdrsa_hdr *h)
{
	uint64_t n = sdrsa_store_drop_all(c->w->srv->store, c->ns);
	uint8_t buf[SDRSA_FREED_SIZE];

	STAT_ADD(c->w, frees, n);
	reply_payload(c, h, c->ns_id, buf, sdrsa_freed_encode(n, buf));
}

static void handle_frame(struct conn *c, const struct sdrsa_hdr *h, const uint8_t *payload)
{
	c->frames++;
	if (c->state != CS_READY) {
		if (h->flags & SDRSA_F_REPLY)
			fatal(c, h, SDRSA_S_BAD_FRAME, "reply flag set on a handshake request");
		else if (c->state == CS_HELLO && h->opcode == SDRSA_OP_HELLO)
			do_hello(c, h, payload);
		else if (c->state == CS_AUTH && h->opcode == SDRSA_OP_AUTH)
			do_auth(c, h, payload);
		else
			fatal(c, h, SDRSA_S_AUTH_REQUIRED, "%s (0x%02x) before the handshake ended",
			      sdrsa_op_name(h->opcode), h->opcode);
		return;
	}
	if (h->flags & SDRSA_F_REPLY) {
		frame_error(c, h, SDRSA_S_BAD_FRAME, "reply flag set on a request");
		return;
	}
	if (!sdrsa_op_known(h->opcode)) {
		frame_error(c, h, SDRSA_S_UNKNOWN_OP, "unknown opcode");
		return;
	}
	if (h->ns != c->ns_id) {
		frame_error(c, h, SDRSA_S_FORBIDDEN, "namespace of another client");
		return;
	}
	if (sdrsa_op_has_entries(h->opcode)) {
		do_entries(c, h, payload);
		return;
	}
	if (h->opcode == SDRSA_OP_HELLO || h->opcode == SDRSA_OP_AUTH) {
		frame_error(c, h, SDRSA_S_BAD_FRAME, "handshake already done");
		return;
	}
	/* PING, STATS, FREE_ALL: no payload. */
	if (h->count || h->len) {
		frame_error(c, h, SDRSA_S_BAD_FRAME, "unexpected payload");
		return;
	}
	if (!small_csum_ok(h, payload)) {
		frame_error(c, h, SDRSA_S_CHECKSUM, "header checksum of an empty payload not 0");
		return;
	}
	switch (h->opcode) {
	case SDRSA_OP_PING:
		reply_payload(c, h, c->ns_id, NULL, 0);
		break;
	case SDRSA_OP_STATS:
		do_stats(c, h);
		break;
	case SDRSA_OP_FREE_ALL:
		do_free_all(c, h);
		break;
	}
}

/*
 * Before WELCOME no frame is longer than a HELLO, and every refusal there is
 * decided on the header (handle_frame() reads no payload of such a frame): a
 * longer frame is refused as soon as its header is in, so that a peer that has
 * not authenticated cannot make us buffer up to 1 MiB per connection.
 */
static int refused_on_header(const struct conn *c, const struct sdrsa_hdr *h)
{
	return c->state != CS_READY && h->len > SDRSA_HELLO_MAX;
}

size_t session_frame_need(const struct conn *c)
{
	struct sdrsa_hdr h;
	int rc = sdrsa_hdr_decode(c->in + c->in_start, c->in_end - c->in_start, &h);

	if ((rc == 0 || rc == -EINVAL) && !refused_on_header(c, &h))
		return SDRSA_HDR_SIZE + (size_t)h.len;
	return SDRSA_HDR_SIZE;
}

int session_frame_ready(const struct conn *c)
{
	size_t avail = c->in_end - c->in_start;

	return avail >= SDRSA_HDR_SIZE && avail >= session_frame_need(c);
}

int session_process(struct conn *c)
{
	while (!c->closing && !c->oom) {
		size_t avail = c->in_end - c->in_start;
		const uint8_t *p = c->in + c->in_start, *payload;
		struct sdrsa_hdr h;
		int rc;

		if (avail < SDRSA_HDR_SIZE)
			break;
		if (out_pending(c) >= CONN_OUT_HIGH)
			return session_frame_ready(c);
		rc = sdrsa_hdr_decode(p, avail, &h);
		if (rc == -EPROTO) {
			fatal(c, NULL, SDRSA_S_BAD_MAGIC,
			      "bad magic %02x %02x %02x %02x: not an sdrsa client", p[0], p[1],
			      p[2], p[3]);
			break;
		}
		if (rc == -EPROTONOSUPPORT) {
			fatal(c, &h, SDRSA_S_BAD_VERSION,
			      "protocol version %u (this server speaks %u): upgrade the client",
			      h.version, SDRSA_PROTO_VERSION);
			break;
		}
		if (rc == -EMSGSIZE) {
			fatal(c, &h, SDRSA_S_TOO_BIG, "frame too big (len %u, count %u)", h.len,
			      h.count);
			break;
		}
		if (refused_on_header(c, &h)) {
			/* Every path below closes the connection and drops the
			 * input; the payload is never read. */
			c->in_start += SDRSA_HDR_SIZE;
			payload = NULL;
		} else {
			if (avail < SDRSA_HDR_SIZE + (size_t)h.len)
				break;
			/* Consume first: the payload stays in place until the next read. */
			c->in_start += SDRSA_HDR_SIZE + (size_t)h.len;
			payload = p + SDRSA_HDR_SIZE;
		}
		if (rc == -EINVAL) {
			c->frames++;
			if (c->state != CS_READY)
				fatal(c, &h, SDRSA_S_BAD_FRAME, "unknown header flags 0x%x",
				      h.flags);
			else
				frame_error(c, &h, SDRSA_S_BAD_FRAME, "unknown header flags");
			continue;
		}
		handle_frame(c, &h, payload);
	}
	if (c->in_start == c->in_end)
		c->in_start = c->in_end = 0;
	return 0;
}
