/* SPDX-License-Identifier: MIT */
/*
 * Pure codec for the sdrsa wire protocol (see include/sdrsa/protocol.h and
 * docs/PROTOCOL.md). No I/O, no allocation: every function works on caller
 * buffers, so the same code is unit-tested, fuzzed and used by both ends.
 * Integers are written byte by byte in little-endian order, independent of
 * the host's byte order and alignment.
 */
#include <errno.h>
#include <string.h>

#include <sodium.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

#include <sdrsa/protocol.h>

static inline void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t get32(const uint8_t *p)
{
	uint32_t v = 0;
	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static inline uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

void sdrsa_hdr_encode(const struct sdrsa_hdr *h, uint8_t out[SDRSA_HDR_SIZE])
{
	put32(out + 0, SDRSA_MAGIC);
	out[4] = h->version;
	out[5] = h->opcode;
	put16(out + 6, h->flags);
	put32(out + 8, h->req_id);
	put16(out + 12, h->status);
	put16(out + 14, h->count);
	put32(out + 16, h->ns);
	put32(out + 20, h->len);
	put64(out + 24, h->csum);
}

int sdrsa_hdr_decode(const uint8_t *buf, size_t n, struct sdrsa_hdr *out)
{
	struct sdrsa_hdr h;

	if (n < SDRSA_HDR_SIZE)
		return -EAGAIN;
	if (get32(buf) != SDRSA_MAGIC)
		return -EPROTO;
	h.version = buf[4];
	h.opcode = buf[5];
	h.flags = get16(buf + 6);
	h.req_id = get32(buf + 8);
	h.status = get16(buf + 12);
	h.count = get16(buf + 14);
	h.ns = get32(buf + 16);
	h.len = get32(buf + 20);
	h.csum = get64(buf + 24);
	if (h.version != SDRSA_PROTO_VERSION) {
		*out = h;
		return -EPROTONOSUPPORT;
	}
	if (h.len > SDRSA_MAX_PAYLOAD || h.count > SDRSA_MAX_BATCH) {
		*out = h;
		return -EMSGSIZE;
	}
	if (h.flags & ~SDRSA_F_KNOWN) {
		*out = h;
		return -EINVAL;
	}
	*out = h;
	return 0;
}

void sdrsa_entry_encode(const struct sdrsa_entry *e, uint8_t out[SDRSA_ENTRY_SIZE])
{
	put64(out, e->addr);
	put64(out + 8, e->csum);
	put16(out + 16, e->status);
	put16(out + 18, e->flags);
	put32(out + 20, e->len);
}

void sdrsa_entry_decode(const uint8_t in[SDRSA_ENTRY_SIZE], struct sdrsa_entry *out)
{
	out->addr = get64(in);
	out->csum = get64(in + 8);
	out->status = get16(in + 16);
	out->flags = get16(in + 18);
	out->len = get32(in + 20);
}

int sdrsa_op_has_entries(uint8_t opcode)
{
	return opcode == SDRSA_OP_PUT || opcode == SDRSA_OP_GET || opcode == SDRSA_OP_SWAP ||
	       opcode == SDRSA_OP_FREE;
}

int sdrsa_op_known(uint8_t opcode)
{
	switch (opcode) {
	case SDRSA_OP_HELLO:
	case SDRSA_OP_AUTH:
	case SDRSA_OP_PING:
	case SDRSA_OP_STATS:
	case SDRSA_OP_PUT:
	case SDRSA_OP_GET:
	case SDRSA_OP_SWAP:
	case SDRSA_OP_FREE:
	case SDRSA_OP_FREE_ALL:
		return 1;
	default:
		return 0;
	}
}

/*
 * Whether entry i of a frame must, may or must not carry data.
 * Requests: PUT entries carry data unless flagged ZERO; SWAP's entry 0 likewise;
 * GET, FREE and SWAP's entry 1 never. Replies: GET entries and SWAP's entry 1
 * carry data when their status is OK and they are not ZERO; others never.
 */
static int entry_wants_data(const struct sdrsa_hdr *h, unsigned i, const struct sdrsa_entry *e)
{
	int reply = h->flags & SDRSA_F_REPLY;
	int carries;

	if (h->opcode == SDRSA_OP_PUT)
		carries = !reply;
	else if (h->opcode == SDRSA_OP_GET)
		carries = reply;
	else if (h->opcode == SDRSA_OP_SWAP)
		carries = reply ? i == 1 : i == 0;
	else
		carries = 0;
	if (!carries || (e->flags & SDRSA_EF_ZERO))
		return 0;
	if (reply && e->status != SDRSA_S_OK)
		return 0;
	return 1;
}

int sdrsa_payload_check(const struct sdrsa_hdr *h, const uint8_t *payload)
{
	size_t meta = sdrsa_meta_len(h);
	uint64_t data = 0;

	if (!sdrsa_op_has_entries(h->opcode))
		return -EBADMSG;
	if (h->count == 0 || h->count > SDRSA_MAX_BATCH || meta > h->len)
		return -EBADMSG;
	if (h->opcode == SDRSA_OP_SWAP && h->count != 2)
		return -EBADMSG;
	for (unsigned i = 0; i < h->count; i++) {
		struct sdrsa_entry e;

		sdrsa_entry_decode(payload + (size_t)i * SDRSA_ENTRY_SIZE, &e);
		if (e.flags & ~SDRSA_EF_KNOWN)
			return -EBADMSG;
		if (e.len != (entry_wants_data(h, i, &e) ? SDRSA_PAGE_SIZE : 0))
			return -EBADMSG;
		if (!(h->flags & SDRSA_F_REPLY) && e.status != 0)
			return -EBADMSG;
		if (e.status >= SDRSA_S__COUNT)
			return -EBADMSG;
		if (e.addr % SDRSA_PAGE_SIZE)
			return -EINVAL;
		data += e.len;
	}
	if (meta + data != h->len)
		return -EBADMSG;
	if (sdrsa_meta_csum(payload, meta) != h->csum)
		return -EILSEQ;
	return 0;
}

uint64_t sdrsa_meta_csum(const void *meta, size_t n)
{
	return XXH3_64bits(meta, n);
}

static uint64_t page_csum_generic(const void *page, uint64_t addr)
{
	return XXH3_64bits_withSeed(page, SDRSA_PAGE_SIZE, addr);
}

#ifdef SDRSA_CSUM_AVX2
uint64_t proto_page_csum_avx2(const void *page, uint64_t addr); /* csum_avx2.c */
#endif

#ifdef SDRSA_CSUM_AVX512
uint64_t proto_page_csum_avx512(const void *page, uint64_t addr); /* csum_avx512.c */

/* The AVX-512 version is our own code, not the library's: use it only if it
 * gives the library's result on a few pages (a pattern, all zeros, all ones)
 * and seeds (0, all ones, page addresses). */
static int avx512_matches_library(void)
{
	static const uint64_t seeds[] = {0, ~0ull, SDRSA_PAGE_SIZE, 0x7fffffffe000ull,
					 0x123456789abcd000ull};
	static uint8_t page[SDRSA_PAGE_SIZE];
	uint64_t x = 0x9e3779b97f4a7c15ull;

	for (unsigned fill = 0; fill < 3; fill++) {
		for (size_t i = 0; i < SDRSA_PAGE_SIZE; i++) {
			x = x * 6364136223846793005ull + 1442695040888963407ull;
			page[i] = fill == 0 ? (uint8_t)(x >> 56) : fill == 1 ? 0 : 0xff;
		}
		for (size_t k = 0; k < sizeof(seeds) / sizeof(seeds[0]); k++)
			if (proto_page_csum_avx512(page, seeds[k]) !=
			    page_csum_generic(page, seeds[k]))
				return 0;
	}
	return 1;
}
#endif

/* The same checksum for this CPU: the library built for AVX2, 68 instead of
 * 208 ns per page here (csum_avx2.c), or our AVX-512 version, 30 ns
 * (csum_avx512.c). Chosen once, before main(). */
static uint64_t (*page_csum_impl)(const void *page, uint64_t addr) = page_csum_generic;

__attribute__((constructor)) static void page_csum_select(void)
{
#if defined(SDRSA_CSUM_AVX2) || defined(SDRSA_CSUM_AVX512)
	__builtin_cpu_init(); /* x86 only, as are the variants */
#endif
#ifdef SDRSA_CSUM_AVX2
	if (__builtin_cpu_supports("avx2"))
		page_csum_impl = proto_page_csum_avx2;
#endif
#ifdef SDRSA_CSUM_AVX512
	if (__builtin_cpu_supports("avx512f") && avx512_matches_library())
		page_csum_impl = proto_page_csum_avx512;
#endif
}

uint64_t sdrsa_page_csum(const void *page, uint64_t addr)
{
	return page_csum_impl(page, addr);
}

int sdrsa_page_is_zero(const void *page)
{
	const uint8_t *p = page;

	/* Page data sits wherever its frame landed in a receive buffer, not
	 * always 8-byte aligned: load through memcpy (one vector load each).
	 * OR-reduce 64 bytes at a time; most non-zero pages exit at once. */
	for (size_t i = 0; i < SDRSA_PAGE_SIZE; i += 64) {
		uint64_t w[8];

		memcpy(w, p + i, sizeof(w));
		if (w[0] | w[1] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7])
			return 0;
	}
	return 1;
}

int sdrsa_name_valid(const char *name)
{
	size_t n = 0;

	for (; name[n]; n++) {
		char c = name[n];
		if (n >= SDRSA_NAME_MAX)
			return 0;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return 0;
	}
	return n > 0;
}

size_t sdrsa_hello_encode(const struct sdrsa_hello *m, uint8_t *out)
{
	size_t n = strnlen(m->name, SDRSA_NAME_MAX);

	memcpy(out, m->nonce, SDRSA_NONCE_SIZE);
	out[SDRSA_NONCE_SIZE] = (uint8_t)n;
	memcpy(out + SDRSA_NONCE_SIZE + 1, m->name, n);
	return SDRSA_NONCE_SIZE + 1 + n;
}

int sdrsa_hello_decode(const uint8_t *in, size_t n, struct sdrsa_hello *out)
{
	struct sdrsa_hello m;
	size_t name_len;

	if (n < SDRSA_HELLO_MIN || n > SDRSA_HELLO_MAX)
		return -EBADMSG;
	name_len = in[SDRSA_NONCE_SIZE];
	if (name_len == 0 || name_len > SDRSA_NAME_MAX || n != SDRSA_NONCE_SIZE + 1 + name_len)
		return -EBADMSG;
	memcpy(m.nonce, in, SDRSA_NONCE_SIZE);
	memcpy(m.name, in + SDRSA_NONCE_SIZE + 1, name_len);
	m.name[name_len] = '\0';
	/* A NUL inside the name would make "a\0c" authenticate as "a". */
	if (strlen(m.name) != name_len || !sdrsa_name_valid(m.name))
		return -EBADMSG;
	*out = m;
	return 0;
}

size_t sdrsa_challenge_encode(const struct sdrsa_challenge *m, uint8_t *out)
{
	memcpy(out, m->nonce, SDRSA_NONCE_SIZE);
	out[SDRSA_NONCE_SIZE] = m->auth_required ? 1 : 0;
	return SDRSA_CHALLENGE_SIZE;
}

int sdrsa_challenge_decode(const uint8_t *in, size_t n, struct sdrsa_challenge *out)
{
	if (n != SDRSA_CHALLENGE_SIZE || in[SDRSA_NONCE_SIZE] > 1)
		return -EBADMSG;
	memcpy(out->nonce, in, SDRSA_NONCE_SIZE);
	out->auth_required = in[SDRSA_NONCE_SIZE];
	return 0;
}

size_t sdrsa_welcome_encode(const struct sdrsa_welcome *m, uint8_t *out)
{
	memcpy(out, m->mac, SDRSA_MAC_SIZE);
	put64(out + SDRSA_MAC_SIZE, m->pool_pages);
	put64(out + SDRSA_MAC_SIZE + 8, m->quota_pages);
	put32(out + SDRSA_MAC_SIZE + 16, m->max_batch);
	return SDRSA_WELCOME_SIZE;
}

int sdrsa_welcome_decode(const uint8_t *in, size_t n, struct sdrsa_welcome *out)
{
	struct sdrsa_welcome m;

	if (n != SDRSA_WELCOME_SIZE)
		return -EBADMSG;
	memcpy(m.mac, in, SDRSA_MAC_SIZE);
	m.pool_pages = get64(in + SDRSA_MAC_SIZE);
	m.quota_pages = get64(in + SDRSA_MAC_SIZE + 8);
	m.max_batch = get32(in + SDRSA_MAC_SIZE + 16);
	if (m.max_batch == 0 || m.max_batch > SDRSA_MAX_BATCH)
		return -EBADMSG;
	*out = m;
	return 0;
}

size_t sdrsa_stats_encode(const struct sdrsa_stats *s, uint8_t *out)
{
	const uint64_t *f = (const uint64_t *)s;

	put32(out, SDRSA_STATS_FIELDS);
	for (size_t i = 0; i < SDRSA_STATS_FIELDS; i++)
		put64(out + 4 + 8 * i, f[i]);
	return SDRSA_STATS_SIZE;
}

int sdrsa_stats_decode(const uint8_t *in, size_t n, struct sdrsa_stats *out)
{
	struct sdrsa_stats s;
	uint64_t *f = (uint64_t *)&s;
	uint32_t nfields;

	if (n < 4)
		return -EBADMSG;
	nfields = get32(in);
	if (n != 4 + (size_t)nfields * 8)
		return -EBADMSG;
	memset(&s, 0, sizeof(s));
	for (size_t i = 0; i < nfields && i < SDRSA_STATS_FIELDS; i++)
		f[i] = get64(in + 4 + 8 * i);
	*out = s;
	return 0;
}

size_t sdrsa_freed_encode(uint64_t pages, uint8_t *out)
{
	put64(out, pages);
	return SDRSA_FREED_SIZE;
}

int sdrsa_freed_decode(const uint8_t *in, size_t n, uint64_t *pages)
{
	if (n != SDRSA_FREED_SIZE)
		return -EBADMSG;
	*pages = get64(in);
	return 0;
}

void sdrsa_auth_mac(const uint8_t key[SDRSA_KEY_SIZE], int server_side,
		    const uint8_t client_nonce[SDRSA_NONCE_SIZE],
		    const uint8_t server_nonce[SDRSA_NONCE_SIZE], const char *name,
		    uint8_t mac[SDRSA_MAC_SIZE])
{
	static const char label_client[] = "sdrsa1 client proof";
	static const char label_server[] = "sdrsa1 server proof";
	crypto_auth_hmacsha256_state st;
	size_t name_len = strnlen(name, SDRSA_NAME_MAX);
	uint8_t len_byte = (uint8_t)name_len;

	crypto_auth_hmacsha256_init(&st, key, SDRSA_KEY_SIZE);
	if (server_side)
		crypto_auth_hmacsha256_update(&st, (const uint8_t *)label_server,
					      sizeof(label_server));
	else
		crypto_auth_hmacsha256_update(&st, (const uint8_t *)label_client,
					      sizeof(label_client));
	crypto_auth_hmacsha256_update(&st, client_nonce, SDRSA_NONCE_SIZE);
	crypto_auth_hmacsha256_update(&st, server_nonce, SDRSA_NONCE_SIZE);
	crypto_auth_hmacsha256_update(&st, &len_byte, 1);
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)name, name_len);
	crypto_auth_hmacsha256_final(&st, mac);
}

static const char *const status_names[SDRSA_S__COUNT] = {
	[SDRSA_S_OK] = "ok",
	[SDRSA_S_NOT_FOUND] = "not found",
	[SDRSA_S_POOL_FULL] = "pool full",
	[SDRSA_S_QUOTA] = "quota exceeded",
	[SDRSA_S_BAD_FRAME] = "malformed frame",
	[SDRSA_S_BAD_MAGIC] = "bad magic",
	[SDRSA_S_BAD_VERSION] = "unsupported protocol version",
	[SDRSA_S_UNKNOWN_OP] = "unknown opcode",
	[SDRSA_S_TOO_BIG] = "frame too big",
	[SDRSA_S_CHECKSUM] = "checksum mismatch",
	[SDRSA_S_AUTH_REQUIRED] = "authentication required",
	[SDRSA_S_AUTH_FAILED] = "authentication failed",
	[SDRSA_S_FORBIDDEN] = "namespace not yours",
	[SDRSA_S_BUSY] = "server busy",
	[SDRSA_S_BAD_ADDRESS] = "address not page-aligned",
	[SDRSA_S_INTERNAL] = "internal server error",
};

const char *sdrsa_status_name(unsigned status)
{
	return status < SDRSA_S__COUNT ? status_names[status] : "unknown status";
}

const char *sdrsa_op_name(unsigned opcode)
{
	switch (opcode) {
	case SDRSA_OP_HELLO: return "HELLO";
	case SDRSA_OP_AUTH: return "AUTH";
	case SDRSA_OP_PING: return "PING";
	case SDRSA_OP_STATS: return "STATS";
	case SDRSA_OP_PUT: return "PUT";
	case SDRSA_OP_GET: return "GET";
	case SDRSA_OP_SWAP: return "SWAP";
	case SDRSA_OP_FREE: return "FREE";
	case SDRSA_OP_FREE_ALL: return "FREE_ALL";
	default: return "UNKNOWN";
	}
}

int sdrsa_status_errno(unsigned status)
{
	switch (status) {
	case SDRSA_S_OK: return 0;
	case SDRSA_S_NOT_FOUND: return -ENOENT;
	case SDRSA_S_POOL_FULL: return -ENOSPC;
	case SDRSA_S_QUOTA: return -EDQUOT;
	case SDRSA_S_BAD_FRAME: return -EBADMSG;
	case SDRSA_S_BAD_MAGIC: return -EPROTO;
	case SDRSA_S_BAD_VERSION: return -EPROTONOSUPPORT;
	case SDRSA_S_UNKNOWN_OP: return -EOPNOTSUPP;
	case SDRSA_S_TOO_BIG: return -EMSGSIZE;
	case SDRSA_S_CHECKSUM: return -EBADMSG;
	case SDRSA_S_AUTH_REQUIRED: return -EPERM;
	case SDRSA_S_AUTH_FAILED: return -EPERM;
	case SDRSA_S_FORBIDDEN: return -EACCES;
	case SDRSA_S_BUSY: return -EBUSY;
	case SDRSA_S_BAD_ADDRESS: return -EINVAL;
	default: return -EIO;
	}
}
