/* SPDX-License-Identifier: MIT */
/*
 * sdrsa wire protocol: constants and the pure codec (no I/O).
 *
 * Every message is a 32-byte header followed by a payload of `len` bytes.
 * All integers are little-endian. docs/PROTOCOL.md describes each byte; this
 * header is the executable form of that document and the two must agree.
 *
 * Page-carrying operations (PUT, GET, SWAP, FREE) use a payload made of
 * `count` 24-byte entries followed by the page data of the entries that carry
 * data, back to back, in entry order:
 *
 *     [hdr 32][entry 0]..[entry n-1][page of entry i]..[page of entry j]
 *
 * Keeping metadata contiguous lets the header checksum (`csum`) cover all of
 * it in one pass, while each page is covered by its own end-to-end checksum
 * (XXH3-64 seeded with the page address) that the server stores with the
 * page and returns untouched on GET: the client that reads a page verifies the
 * checksum computed by the client that wrote it.
 *
 * Other operations carry a small fixed payload, covered entirely by `csum`.
 *
 * The codec functions return 0 or a negative errno; they never allocate and
 * never touch a file descriptor, so they can be unit-tested and fuzzed.
 */
#ifndef SDRSA_PROTOCOL_H
#define SDRSA_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SDRSA_PAGE_SIZE 4096u
#define SDRSA_PROTO_VERSION 1
/* "SDRA" on the wire: bytes 53 44 52 41. */
#define SDRSA_MAGIC 0x41524453u
#define SDRSA_HDR_SIZE 32u
#define SDRSA_ENTRY_SIZE 24u
/* Entries per frame. 256 pages is 1 MiB of data: large enough to amortise a
 * system call, small enough to bound a connection's buffers. */
#define SDRSA_MAX_BATCH 256u
#define SDRSA_MAX_PAYLOAD (SDRSA_MAX_BATCH * (SDRSA_ENTRY_SIZE + SDRSA_PAGE_SIZE))
#define SDRSA_NONCE_SIZE 32u
#define SDRSA_MAC_SIZE 32u
#define SDRSA_KEY_SIZE 32u
#define SDRSA_NAME_MAX 64u
#define SDRSA_DEFAULT_PORT 2223

enum sdrsa_opcode {
	SDRSA_OP_HELLO = 0x01,    /* client name + nonce; reply: challenge */
	SDRSA_OP_AUTH = 0x02,     /* client MAC; reply: welcome (namespace id) */
	SDRSA_OP_PING = 0x10,     /* empty; reply: empty */
	SDRSA_OP_STATS = 0x11,    /* empty; reply: counters */
	SDRSA_OP_PUT = 0x20,      /* the seed's upload_some_ram: n entries with data */
	SDRSA_OP_GET = 0x21,      /* the seed's download_more_ram: n entries, no data */
	SDRSA_OP_SWAP = 0x22,     /* entry 0 with data is stored, entry 1 fetched */
	SDRSA_OP_FREE = 0x23,     /* n entries, no data */
	SDRSA_OP_FREE_ALL = 0x24, /* empty; reply: pages freed */
};

/* Header flags. */
#define SDRSA_F_REPLY 0x0001u /* set on every server reply */
#define SDRSA_F_KNOWN 0x0001u /* mask of flags a receiver accepts */

/* Entry flags. */
#define SDRSA_EF_ZERO 0x0001u /* the page is all zeros; no data follows */
#define SDRSA_EF_KNOWN 0x0001u

/*
 * Status codes carried in replies (header and per entry). The client library
 * maps them to -errno with sdrsa_status_errno(). Values are part of the wire
 * format: never renumber, only append.
 */
enum sdrsa_status {
	SDRSA_S_OK = 0,
	SDRSA_S_NOT_FOUND = 1,      /* no page stored at this address */
	SDRSA_S_POOL_FULL = 2,      /* no free slot; nothing was evicted */
	SDRSA_S_QUOTA = 3,          /* this client's page quota is used up */
	SDRSA_S_BAD_FRAME = 4,      /* payload inconsistent with header */
	SDRSA_S_BAD_MAGIC = 5,      /* not an sdrsa stream; connection closed */
	SDRSA_S_BAD_VERSION = 6,    /* unsupported version; connection closed */
	SDRSA_S_UNKNOWN_OP = 7,     /* opcode not known */
	SDRSA_S_TOO_BIG = 8,        /* payload or batch over the limit; closed */
	SDRSA_S_CHECKSUM = 9,       /* header or page checksum mismatch */
	SDRSA_S_AUTH_REQUIRED = 10, /* operation before the handshake ended */
	SDRSA_S_AUTH_FAILED = 11,   /* wrong key or unknown client; closed */
	SDRSA_S_FORBIDDEN = 12,     /* namespace is not this session's */
	SDRSA_S_BUSY = 13,          /* server at its connection limit; closed */
	SDRSA_S_BAD_ADDRESS = 14,   /* page address not page-aligned */
	SDRSA_S_INTERNAL = 15,
	SDRSA_S__COUNT
};

struct sdrsa_hdr {
	uint8_t version;     /* SDRSA_PROTO_VERSION */
	uint8_t opcode;      /* enum sdrsa_opcode */
	uint16_t flags;      /* SDRSA_F_* */
	uint32_t req_id;     /* chosen by the client, echoed in the reply */
	uint16_t status;     /* enum sdrsa_status; 0 in requests */
	uint16_t count;      /* number of entries in the payload */
	uint32_t ns;         /* namespace id from WELCOME; 0 before it */
	uint32_t len;        /* payload bytes following the header */
	uint64_t csum;       /* XXH3-64 of the payload's metadata (see above) */
};

struct sdrsa_entry {
	uint64_t addr;   /* page address, a multiple of SDRSA_PAGE_SIZE */
	uint64_t csum;   /* sdrsa_page_csum() of the data; 0 without data */
	uint16_t status; /* enum sdrsa_status; 0 in requests */
	uint16_t flags;  /* SDRSA_EF_* */
	uint32_t len;    /* 0 or SDRSA_PAGE_SIZE: data bytes for this entry */
};

/* HELLO payload: [nonce 32][name_len 1][name name_len], name [A-Za-z0-9._-]. */
struct sdrsa_hello {
	uint8_t nonce[SDRSA_NONCE_SIZE];
	char name[SDRSA_NAME_MAX + 1]; /* NUL-terminated after decode */
};

/* HELLO reply payload: [nonce 32][auth_required 1]. */
struct sdrsa_challenge {
	uint8_t nonce[SDRSA_NONCE_SIZE];
	uint8_t auth_required;
};

/* AUTH payload: [mac 32]; all zero when the server requires no key. */
struct sdrsa_auth {
	uint8_t mac[SDRSA_MAC_SIZE];
};

/* AUTH reply payload: [mac 32][pool_pages 8][quota_pages 8][max_batch 4].
 * The namespace id is in the reply header's `ns`. */
struct sdrsa_welcome {
	uint8_t mac[SDRSA_MAC_SIZE]; /* server's proof; zero without a key */
	uint64_t pool_pages;
	uint64_t quota_pages; /* 0: no quota */
	uint32_t max_batch;
};

#define SDRSA_HELLO_MIN (SDRSA_NONCE_SIZE + 2u)
#define SDRSA_HELLO_MAX (SDRSA_NONCE_SIZE + 1u + SDRSA_NAME_MAX)
#define SDRSA_CHALLENGE_SIZE (SDRSA_NONCE_SIZE + 1u)
#define SDRSA_AUTH_SIZE SDRSA_MAC_SIZE
#define SDRSA_WELCOME_SIZE (SDRSA_MAC_SIZE + 8u + 8u + 4u)

/*
 * STATS reply payload: [nfields 4] then nfields little-endian u64, in the order
 * of struct sdrsa_stats. A decoder takes the fields it knows and ignores the
 * rest, so fields can be appended without a version bump.
 */
struct sdrsa_stats {
	uint64_t pool_pages;    /* slots in the pool */
	uint64_t used_pages;    /* slots holding data */
	uint64_t zero_pages;    /* all-zero pages stored without a slot */
	uint64_t namespaces;    /* namespaces holding at least one page */
	uint64_t connections;   /* open client connections */
	uint64_t ns_pages;      /* pages (data + zero) of the asking namespace */
	uint64_t ns_quota;      /* its quota in pages; 0: none */
	uint64_t gets;          /* pages asked for */
	uint64_t puts;          /* pages stored */
	uint64_t swaps;         /* SWAP operations */
	uint64_t frees;         /* pages freed */
	uint64_t misses;        /* GET of a page not stored */
	uint64_t pool_full;     /* PUTs refused: pool full */
	uint64_t quota_refused; /* PUTs refused: quota */
	uint64_t bad_frames;    /* frames refused as malformed */
	uint64_t auth_failures; /* handshakes refused */
	uint64_t bytes_in;      /* bytes received */
	uint64_t bytes_out;     /* bytes sent */
	uint64_t uptime_ms;
	uint64_t draining;      /* 1: taking no new pages, exits when empty (pool drain) */
};
#define SDRSA_STATS_FIELDS (sizeof(struct sdrsa_stats) / sizeof(uint64_t))
#define SDRSA_STATS_SIZE (4u + SDRSA_STATS_FIELDS * 8u)

/* FREE_ALL reply payload: [pages freed 8]. */
#define SDRSA_FREED_SIZE 8u

/* Header. decode: -EAGAIN if fewer than SDRSA_HDR_SIZE bytes; -EPROTO on bad
 * magic; -EPROTONOSUPPORT on another version; -EMSGSIZE if len is over
 * SDRSA_MAX_PAYLOAD or count over SDRSA_MAX_BATCH; -EINVAL on unknown flags.
 * On error *out is left untouched except with -EPROTONOSUPPORT, -EMSGSIZE and
 * -EINVAL, where it is filled so that the caller can answer req_id. */
void sdrsa_hdr_encode(const struct sdrsa_hdr *h, uint8_t out[SDRSA_HDR_SIZE]);
int sdrsa_hdr_decode(const uint8_t *buf, size_t n, struct sdrsa_hdr *out);

void sdrsa_entry_encode(const struct sdrsa_entry *e, uint8_t out[SDRSA_ENTRY_SIZE]);
void sdrsa_entry_decode(const uint8_t in[SDRSA_ENTRY_SIZE], struct sdrsa_entry *out);

/* True for opcodes whose payload is entries (PUT, GET, SWAP, FREE). */
int sdrsa_op_has_entries(uint8_t opcode);
int sdrsa_op_known(uint8_t opcode);

/*
 * Check a complete entry payload against its header: entry count and shape for
 * the opcode and direction (request or reply), every entry's len and flags,
 * page alignment, that data lengths add up to exactly hdr->len, and the header
 * checksum over the entries. Page checksums are not checked here (the server
 * checks them while storing, the client while delivering).
 * Returns 0, -EBADMSG (inconsistent), -EINVAL (misaligned address), or
 * -EILSEQ (header checksum mismatch).
 */
int sdrsa_payload_check(const struct sdrsa_hdr *h, const uint8_t *payload);

/* Offset in the payload of the data of the entries, i.e. count * ENTRY_SIZE. */
static inline size_t sdrsa_meta_len(const struct sdrsa_hdr *h)
{
	return (size_t)h->count * SDRSA_ENTRY_SIZE;
}

uint64_t sdrsa_meta_csum(const void *meta, size_t n);
uint64_t sdrsa_page_csum(const void *page, uint64_t addr);
int sdrsa_page_is_zero(const void *page);

/* Handshake payloads. encode returns the bytes written; decode -EBADMSG on a
 * wrong size or an invalid name. */
int sdrsa_name_valid(const char *name);
size_t sdrsa_hello_encode(const struct sdrsa_hello *m, uint8_t *out);
int sdrsa_hello_decode(const uint8_t *in, size_t n, struct sdrsa_hello *out);
size_t sdrsa_challenge_encode(const struct sdrsa_challenge *m, uint8_t *out);
int sdrsa_challenge_decode(const uint8_t *in, size_t n, struct sdrsa_challenge *out);
size_t sdrsa_welcome_encode(const struct sdrsa_welcome *m, uint8_t *out);
int sdrsa_welcome_decode(const uint8_t *in, size_t n, struct sdrsa_welcome *out);
size_t sdrsa_stats_encode(const struct sdrsa_stats *s, uint8_t *out);
int sdrsa_stats_decode(const uint8_t *in, size_t n, struct sdrsa_stats *out);
/* FREE_ALL reply. encode returns SDRSA_FREED_SIZE; decode -EBADMSG on any
 * other size (*pages untouched). */
size_t sdrsa_freed_encode(uint64_t pages, uint8_t *out);
int sdrsa_freed_decode(const uint8_t *in, size_t n, uint64_t *pages);

/*
 * Handshake MACs: HMAC-SHA256 keyed with the client's pre-shared key over a
 * role label, both nonces and the client name, so neither side's proof can be
 * replayed as the other's or on another connection.
 */
void sdrsa_auth_mac(const uint8_t key[SDRSA_KEY_SIZE], int server_side,
		    const uint8_t client_nonce[SDRSA_NONCE_SIZE],
		    const uint8_t server_nonce[SDRSA_NONCE_SIZE], const char *name,
		    uint8_t mac[SDRSA_MAC_SIZE]);

/* Names and errno mapping. */
const char *sdrsa_status_name(unsigned status);
const char *sdrsa_op_name(unsigned opcode);
int sdrsa_status_errno(unsigned status);

#ifdef __cplusplus
}
#endif
#endif
