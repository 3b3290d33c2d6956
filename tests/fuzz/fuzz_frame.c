/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the frame decoder, as a server or client meets it.
 * Input: a frame as it would arrive on the wire, header then payload.
 * Decode the header; when the whole payload is there, run the consistency
 * check (with a correct metadata checksum when the request id is odd, so
 * that the fuzzer gets past the checksum half of the time) and walk the
 * entries and pages the way the server does. Small payloads are decoded as
 * the handshake or stats payload of their opcode.
 *
 * Invariants checked (abort on violation): a header that decodes re-encodes
 * to the same bytes; an entry re-encodes to the same bytes; a payload that
 * passes the check has exactly len bytes of entries and pages, every data
 * entry is page-aligned with 4096 bytes.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sdrsa/protocol.h>

#define FUZZ_ASSERT(c)                                                             \
	do {                                                                       \
		if (!(c))                                                          \
			abort();                                                   \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void small_payload(const struct sdrsa_hdr *h, const uint8_t *p)
{
	int reply = h->flags & SDRSA_F_REPLY;

	switch (h->opcode) {
	case SDRSA_OP_HELLO:
		if (reply) {
			struct sdrsa_challenge ch;
			if (sdrsa_challenge_decode(p, h->len, &ch) == 0)
				FUZZ_ASSERT(ch.auth_required <= 1);
		} else {
			struct sdrsa_hello m;
			if (sdrsa_hello_decode(p, h->len, &m) == 0)
				FUZZ_ASSERT(sdrsa_name_valid(m.name));
		}
		break;
	case SDRSA_OP_AUTH:
		if (reply) {
			struct sdrsa_welcome w;
			if (sdrsa_welcome_decode(p, h->len, &w) == 0)
				FUZZ_ASSERT(w.max_batch >= 1 && w.max_batch <= SDRSA_MAX_BATCH);
		}
		break;
	case SDRSA_OP_STATS:
		if (reply) {
			struct sdrsa_stats s;
			(void)sdrsa_stats_decode(p, h->len, &s);
		}
		break;
	default:
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sdrsa_hdr h;
	uint8_t again[SDRSA_HDR_SIZE];
	uint8_t *p;
	int rc;

	rc = sdrsa_hdr_decode(data, size, &h);
	if (size < SDRSA_HDR_SIZE) {
		FUZZ_ASSERT(rc == -EAGAIN);
		return 0;
	}
	(void)sdrsa_status_name(h.status);
	(void)sdrsa_op_name(h.opcode);
	(void)sdrsa_status_errno(h.status);
	if (rc) {
		FUZZ_ASSERT(rc == -EPROTO || rc == -EPROTONOSUPPORT || rc == -EMSGSIZE ||
			    rc == -EINVAL);
		return 0;
	}
	sdrsa_hdr_encode(&h, again);
	FUZZ_ASSERT(memcmp(again, data, SDRSA_HDR_SIZE) == 0);
	FUZZ_ASSERT(h.len <= SDRSA_MAX_PAYLOAD && h.count <= SDRSA_MAX_BATCH);
	if (size - SDRSA_HDR_SIZE < h.len)
		return 0; /* a receiver waits for the rest */

	/* exactly len bytes, so that any read past the payload is caught */
	p = malloc(h.len ? h.len : 1);
	if (!p)
		return 0;
	memcpy(p, data + SDRSA_HDR_SIZE, h.len);

	if (sdrsa_op_has_entries(h.opcode)) {
		size_t meta = sdrsa_meta_len(&h), off;

		if ((h.req_id & 1) && meta <= h.len)
			h.csum = sdrsa_meta_csum(p, meta);
		rc = sdrsa_payload_check(&h, p);
		FUZZ_ASSERT(rc == 0 || rc == -EBADMSG || rc == -EINVAL || rc == -EILSEQ);
		if (rc == 0) {
			FUZZ_ASSERT(h.count >= 1 && meta <= h.len);
			off = meta;
			for (unsigned i = 0; i < h.count; i++) {
				struct sdrsa_entry e;
				uint8_t enc[SDRSA_ENTRY_SIZE];

				sdrsa_entry_decode(p + (size_t)i * SDRSA_ENTRY_SIZE, &e);
				sdrsa_entry_encode(&e, enc);
				FUZZ_ASSERT(!memcmp(enc, p + (size_t)i * SDRSA_ENTRY_SIZE,
						    SDRSA_ENTRY_SIZE));
				FUZZ_ASSERT(e.addr % SDRSA_PAGE_SIZE == 0);
				FUZZ_ASSERT(e.len == 0 || e.len == SDRSA_PAGE_SIZE);
				FUZZ_ASSERT(e.status < SDRSA_S__COUNT);
				if (e.len) {
					FUZZ_ASSERT(off + SDRSA_PAGE_SIZE <= h.len);
					(void)sdrsa_page_is_zero(p + off);
					if (sdrsa_page_csum(p + off, e.addr) == e.csum)
						(void)sdrsa_status_errno(SDRSA_S_OK);
					off += SDRSA_PAGE_SIZE;
				}
			}
			FUZZ_ASSERT(off == h.len);
		}
	} else {
		small_payload(&h, p);
	}
	free(p);
	return 0;
}
