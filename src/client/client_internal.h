/* SPDX-License-Identifier: MIT */
/*
 * libsdrsa internals shared by the connection code (client.c) and the request
 * queue (queue.c). Not installed; tests/unit/test_client_queue.c includes it
 * to drive the queue without a socket.
 *
 * Operations live in a fixed table of slots allocated at connect: nothing on
 * the submit, send or receive path calls malloc. A slot is
 *
 *     FREE ──submit──► QUEUED ──flush──► SENT ──reply/teardown──► DONE ──reap──► FREE
 *
 * (internal operations of the synchronous calls skip DONE: their result goes
 * straight to the caller's struct client_batch and the slot is freed at once).
 *
 * A frame is a chain of slots linked through `next`; the first slot (the
 * head) carries the frame's opcode, req_id and count. req_id encodes the
 * head's index in its low CLIENT_SLOT_BITS bits and a generation above them,
 * so a reply finds its frame in O(1) and a stale id never matches a reused
 * slot. While a frame is unsent its header and entries are encoded back to
 * back in `meta`; only the last unsent frame is open for more entries.
 * Completed user operations wait in a FIFO (again through `next`) for
 * sdrsa_reap().
 *
 * Ownership: a put's page is referenced, not copied, until its reply. A get's
 * page data is received straight into its destination when the reply frame
 * is not whole in the receive buffer (the usual case for frames of many
 * pages: the header and entries are read first, then the pages by readv into
 * the callers' buffers, "direct receive"); its checksum is verified there
 * after the data arrived, and a page that fails it completes with -EBADMSG
 * (the buffer then holds what came). Data the caller must not get (a page
 * for the wrong address) goes to a scratch page. A reply whole in the receive
 * buffer is copied out after its checksum is verified, as before.
 * Not thread-safe, like the handle it belongs to.
 */
#ifndef SDRSA_CLIENT_INTERNAL_H
#define SDRSA_CLIENT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <sdrsa/client.h>
#include <sdrsa/protocol.h>

#include "common/util.h"

/* Slots kept back for the synchronous calls, so that they work even with
 * SDRSA_CLIENT_MAX_INFLIGHT user operations outstanding: a window of
 * CLIENT_SYNC_FRAMES full frames for *_many() plus a swap. */
#define CLIENT_SYNC_FRAMES 4u
#define CLIENT_RESERVE (CLIENT_SYNC_FRAMES * SDRSA_MAX_BATCH + 8u)
#define CLIENT_NSLOTS (SDRSA_CLIENT_MAX_INFLIGHT + CLIENT_RESERVE)
#define CLIENT_SLOT_BITS 13u
#define CLIENT_SLOT_MASK ((1u << CLIENT_SLOT_BITS) - 1u)
#define CLIENT_NIL UINT32_MAX
/* Largest frame a server sends, and the receive buffer: two of them plus
 * slack, so that a partial frame is moved to the front at most once. */
#define CLIENT_MAX_FRAME (SDRSA_HDR_SIZE + SDRSA_MAX_PAYLOAD)
#define CLIENT_RBUF_SIZE (2u * CLIENT_MAX_FRAME + 65536u)
/* Direct receive pays a recv() for the header and entries before the pages;
 * a 4 KiB copy costs less than that, so plain reads stay greedy (and copy)
 * while fewer GETs than this are outstanding (a synchronous get: one). */
#define CLIENT_RX_DIRECT_MIN 4u

_Static_assert(CLIENT_NSLOTS <= (1u << CLIENT_SLOT_BITS), "slot index must fit in req_id");

enum op_state { OP_FREE = 0, OP_QUEUED, OP_SENT, OP_DONE };

/* Where the results of a synchronous call's internal operations go. */
struct client_batch {
	int *results;      /* results[op tag] = result, or NULL */
	size_t done;       /* operations completed so far */
	size_t first_idx;  /* lowest tag that failed; SIZE_MAX: none */
	int first_err;     /* its result */
	uint64_t *csums;   /* PUT (sdrsa_put_many_csum): csums[op tag] = the page's checksum sent */
};

struct client_op {
	uint64_t tag;               /* user tag; index in the batch for internal ops */
	uint64_t addr;              /* page address (entry operations) */
	void *page;                 /* GET: destination; PUT: source; STATS, FREE_ALL: output */
	struct client_batch *batch; /* internal operation: its batch; NULL: a user operation */
	uint32_t next;              /* frame chain, then completion FIFO / free list */
	uint32_t last;              /* head only: last slot of the frame */
	uint32_t req_id;            /* head only (0 in other slots) */
	uint32_t meta_off;          /* head only, while QUEUED: header offset in meta */
	uint16_t count;             /* head only: slots in the frame */
	uint16_t ndata;             /* head only: entries carrying a page (requests) */
	uint8_t kind;               /* what this slot does: SDRSA_OP_GET, PUT, FREE, PING, ... */
	uint8_t fop;                /* head only: the frame's opcode */
	uint8_t state;              /* enum op_state */
	uint8_t zero;               /* PUT: the page is all zeros, sent without data;
				     * GET in direct receive: the reply says zero page */
	uint8_t rdata;              /* GET in direct receive: the reply carries data */
	int result;                 /* 0 or -errno once DONE; direct receive: so far */
	uint64_t rcsum;             /* GET in direct receive: the reply's page checksum */
	uint64_t *csum_out;         /* GET (sdrsa_submit_get_csum): gets the verified checksum */
};

/* The GET reply whose page data is being received into its destinations. */
struct client_rx {
	uint32_t head;                      /* its head slot; CLIENT_NIL: none */
	uint32_t count;                     /* its operations */
	uint32_t ndest, pos;                /* destinations; the one being filled */
	size_t off;                         /* bytes of dest[pos] already there */
	size_t left;                        /* data bytes still to come */
	uint8_t *dest[SDRSA_MAX_BATCH];     /* a caller's page or scratch, in data order */
};

struct sdrsa_client {
	/* Configuration, copied at connect. */
	char *address;
	char name[SDRSA_NAME_MAX + 1];
	uint8_t key[SDRSA_KEY_SIZE];
	int has_key;
	int timeout_ms; /* < 0: none */
	int spin_us;    /* 0: no spinning */
	sdrsa_log_fn log;
	void *log_userdata;

	/* Connection; fd < 0 when closed. */
	int fd;
	uint32_t ns;
	uint64_t pool_pages;
	uint64_t quota_pages;
	uint32_t max_batch;
	uint32_t frame_limit; /* entries per frame we build: max_batch, less in *_many() */
	uint32_t gen;         /* req_id generation, never 0 */
	uint64_t progress_ns; /* last time bytes moved while operations were outstanding */
	int moved;            /* bytes moved since progress_ns was last set */

	/* Slots. */
	struct client_op *ops;
	uint32_t free_head;
	uint32_t user_ops; /* user operations submitted and not reaped */
	uint32_t nsent;    /* operations sent and not answered */
	uint32_t nsent_get; /* of them, GETs */
	uint32_t cq_head, cq_tail;
	uint32_t cq_len;

	/* Send side: unsent frames, their headers and entries, and the iovecs of a flush. */
	uint8_t *meta;
	size_t meta_len;
	uint32_t *unsent; /* heads of unsent frames, in order */
	uint32_t nunsent;
	struct iovec *iov;

	/* Receive buffer: bytes [rpos, wpos) are unparsed. */
	uint8_t *rbuf;
	size_t rpos, wpos;
	struct client_rx rx;
	uint8_t *scratch; /* one page: sink of data no caller gets */
};

/* queue.c */
/* Record result of operation idx of a synchronous call. */
void client_batch_record(struct client_batch *b, uint64_t idx, int result);
int client_queue_init(struct sdrsa_client *c);
void client_queue_destroy(struct sdrsa_client *c);
/* Forget everything unsent and unreceived (the connection is gone) after
 * failing every QUEUED and SENT operation with err. */
void client_queue_fail_all(struct sdrsa_client *c, int err);
/* Queue one entry operation (kind GET, PUT or FREE) or a frame of its own
 * (PING, STATS, FREE_ALL: page is the output). Returns 0 or -EAGAIN when no
 * slot is free; an entry operation's slot is then the last of the frame
 * at c->unsent[c->nunsent - 1]. */
int client_queue_op(struct sdrsa_client *c, uint8_t kind, uint64_t addr, void *page, uint64_t tag,
		    struct client_batch *batch);
/* SWAP: one frame of a put and a get, tags 0 and 1 of batch. */
int client_queue_swap(struct sdrsa_client *c, uint64_t put_addr, const void *put_page,
		      uint64_t get_addr, void *get_page, struct client_batch *batch);
/* Close the queued frames and describe them in c->iov; frames become SENT.
 * Returns the number of iovecs (0: nothing to send) and *bytes. */
size_t client_queue_build(struct sdrsa_client *c, size_t *bytes);
/* The iovecs were written: forget the encoded frames. */
void client_queue_sent(struct sdrsa_client *c);
/* Parse every complete frame in rbuf[rpos, wpos), complete their operations
 * and compact the buffer. Returns 0 or a -errno that must close the
 * connection (protocol violation, or the server's reason for closing). */
int client_process_rbuf(struct sdrsa_client *c);
/* Direct receive (see the top). client_rx_direct_start(): when the frame at
 * the head of rbuf is a GET reply with its header and entries in and its data
 * not, check it as client_process_rbuf() would, move the data already in
 * rbuf to its destinations, empty rbuf and return 1: the rest of the frame
 * must then be received with client_rx_iov() and client_rx_received().
 * Returns 0 (nothing started: the frame is read into rbuf as usual). */
int client_rx_direct_start(struct sdrsa_client *c);
/* The iovecs of the next read in direct receive (iov: SDRSA_MAX_BATCH + 1):
 * the rest of the data, then room in rbuf for the next frame's header and
 * entries. Returns how many. */
size_t client_rx_iov(struct sdrsa_client *c, struct iovec *iov);
/* n bytes were read into those iovecs. When the frame's data is complete,
 * verify each page, complete the operations and parse what came after it
 * (as client_process_rbuf(), whose result it returns). */
int client_rx_received(struct sdrsa_client *c, size_t n);
/* How many bytes a plain read into rbuf should take now: everything there is
 * room for, or with many GETs outstanding no more than the next frame's
 * header and entries (so that its pages can be received directly). */
size_t client_rx_want(const struct sdrsa_client *c);

/* Pop a completion. Returns 0 or -ENOENT when the FIFO is empty. */
int client_pop_completion(struct sdrsa_client *c, struct sdrsa_completion *out);

#define client_log(c, level, ...) sdrsa_log_to((c)->log, (c)->log_userdata, (level), __VA_ARGS__)

#endif
