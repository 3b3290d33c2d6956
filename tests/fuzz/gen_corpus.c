/* SPDX-License-Identifier: MIT */
/*
 * Seed corpus generator, run once by hand; its output is committed under
 * tests/fuzz/corpus/:
 *
 *     ninja -C build fuzz_gen_corpus && build/tests/fuzz/fuzz_gen_corpus tests/fuzz/corpus
 *
 * fuzz_frame seeds are whole frames (header + payload): valid requests and
 * replies of every opcode, and the malformed cases of the integration tests
 * (bad magic and version, oversize, unknown flags and opcodes, lengths that
 * lie, wrong checksums, misaligned addresses). fuzz_handshake seeds are a
 * selector byte (0 HELLO, 1 CHALLENGE, 2 WELCOME, 3 STATS, 4 name) and a
 * payload. Pages in seeds are mostly zero, so that the files stay small and
 * compress well in git.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sdrsa/protocol.h>

#define PAGE SDRSA_PAGE_SIZE
#define ESZ SDRSA_ENTRY_SIZE

static const char *out_dir;
static uint8_t buf[SDRSA_HDR_SIZE + 8 * (ESZ + PAGE)];

static void write_seed(const char *target, const char *name, const uint8_t *p, size_t n)
{
	char path[1024];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", out_dir, target);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/%s/%s", out_dir, target, name);
	f = fopen(path, "wb");
	if (!f || fwrite(p, 1, n, f) != n || fclose(f)) {
		perror(path);
		exit(1);
	}
}

/* A frame under construction. */
struct fb {
	struct sdrsa_hdr h;
	uint8_t p[8 * (ESZ + PAGE)];
	size_t n;
	size_t data;
};

static void fb_start(struct fb *f, uint8_t op, int reply, uint32_t req_id)
{
	memset(f, 0, sizeof(*f));
	f->h.version = SDRSA_PROTO_VERSION;
	f->h.opcode = op;
	f->h.flags = reply ? SDRSA_F_REPLY : 0;
	f->h.req_id = req_id;
	f->h.ns = 3;
}

/* Entries first (count known up front), then pages via fb_page. */
static void fb_entry(struct fb *f, uint64_t addr, uint16_t status, uint16_t flags, uint32_t len)
{
	struct sdrsa_entry e = { .addr = addr, .status = status, .flags = flags, .len = len };

	sdrsa_entry_encode(&e, f->p + f->n);
	f->n += ESZ;
	f->h.count++;
}

/* Append a page for entry i and set that entry's checksum. */
static void fb_page(struct fb *f, unsigned i, uint8_t fill)
{
	struct sdrsa_entry e;
	uint8_t *d = f->p + f->n;

	memset(d, 0, PAGE);
	d[0] = fill;
	d[PAGE - 1] = (uint8_t)(fill ^ 0xff);
	sdrsa_entry_decode(f->p + (size_t)i * ESZ, &e);
	e.csum = sdrsa_page_csum(d, e.addr);
	sdrsa_entry_encode(&e, f->p + (size_t)i * ESZ);
	f->n += PAGE;
}

static void fb_bytes(struct fb *f, const void *p, size_t n)
{
	memcpy(f->p + f->n, p, n);
	f->n += n;
}

/* Finish with a correct len and csum. */
static void fb_end(struct fb *f)
{
	f->h.len = (uint32_t)f->n;
	if (sdrsa_op_has_entries(f->h.opcode))
		f->h.csum = sdrsa_meta_csum(f->p, sdrsa_meta_len(&f->h));
	else
		f->h.csum = f->n ? sdrsa_meta_csum(f->p, f->n) : 0;
}

static void fb_write(struct fb *f, const char *name)
{
	sdrsa_hdr_encode(&f->h, buf);
	memcpy(buf + SDRSA_HDR_SIZE, f->p, f->n);
	write_seed("fuzz_frame", name, buf, SDRSA_HDR_SIZE + f->n);
}

static void frames(void)
{
	static struct fb f;
	struct sdrsa_hello hello;
	struct sdrsa_challenge ch = { .auth_required = 1 };
	struct sdrsa_welcome w = { .pool_pages = 1024, .quota_pages = 16, .max_batch = 256 };
	struct sdrsa_stats st;
	uint8_t small[SDRSA_STATS_SIZE];
	size_t n;

	/* valid requests */
	fb_start(&f, SDRSA_OP_PUT, 0, 1);
	fb_entry(&f, 0x1000, 0, 0, PAGE);
	fb_page(&f, 0, 0x11);
	fb_end(&f);
	fb_write(&f, "put1-odd-id");
	f.h.req_id = 2;
	fb_write(&f, "put1-even-id");

	fb_start(&f, SDRSA_OP_PUT, 0, 3);
	fb_entry(&f, 0x2000, 0, 0, PAGE);
	fb_entry(&f, 0x3000, 0, SDRSA_EF_ZERO, 0);
	fb_entry(&f, 0xfffffffffffff000ull, 0, 0, PAGE);
	fb_page(&f, 0, 0x22);
	fb_page(&f, 2, 0x33);
	fb_end(&f);
	fb_write(&f, "put3-zero-high");

	fb_start(&f, SDRSA_OP_GET, 0, 5);
	for (int i = 0; i < 4; i++)
		fb_entry(&f, (uint64_t)i * PAGE, 0, 0, 0);
	fb_end(&f);
	fb_write(&f, "get4");

	fb_start(&f, SDRSA_OP_SWAP, 0, 7);
	fb_entry(&f, 0x5000, 0, 0, PAGE);
	fb_entry(&f, 0x6000, 0, 0, 0);
	fb_page(&f, 0, 0x44);
	fb_end(&f);
	fb_write(&f, "swap");

	fb_start(&f, SDRSA_OP_FREE, 0, 9);
	fb_entry(&f, 0x5000, 0, 0, 0);
	fb_entry(&f, 0x6000, 0, 0, 0);
	fb_end(&f);
	fb_write(&f, "free2");

	fb_start(&f, SDRSA_OP_PING, 0, 11);
	fb_end(&f);
	fb_write(&f, "ping");
	fb_start(&f, SDRSA_OP_STATS, 0, 13);
	fb_end(&f);
	fb_write(&f, "stats");
	fb_start(&f, SDRSA_OP_FREE_ALL, 0, 15);
	fb_end(&f);
	fb_write(&f, "free-all");

	memset(&hello, 0, sizeof(hello));
	memset(hello.nonce, 0xab, sizeof(hello.nonce));
	strcpy(hello.name, "client-1");
	fb_start(&f, SDRSA_OP_HELLO, 0, 1);
	n = sdrsa_hello_encode(&hello, small);
	fb_bytes(&f, small, n);
	fb_end(&f);
	fb_write(&f, "hello");

	fb_start(&f, SDRSA_OP_AUTH, 0, 2);
	memset(small, 0x5c, SDRSA_MAC_SIZE);
	fb_bytes(&f, small, SDRSA_MAC_SIZE);
	fb_end(&f);
	fb_write(&f, "auth");

	/* valid replies */
	fb_start(&f, SDRSA_OP_GET, 1, 5);
	fb_entry(&f, 0x0000, SDRSA_S_OK, 0, PAGE);
	fb_entry(&f, 0x1000, SDRSA_S_NOT_FOUND, 0, 0);
	fb_entry(&f, 0x2000, SDRSA_S_OK, SDRSA_EF_ZERO, 0);
	fb_page(&f, 0, 0x55);
	fb_end(&f);
	fb_write(&f, "reply-get");

	fb_start(&f, SDRSA_OP_PUT, 1, 3);
	fb_entry(&f, 0x2000, SDRSA_S_OK, 0, 0);
	fb_entry(&f, 0x3000, SDRSA_S_POOL_FULL, 0, 0);
	fb_entry(&f, 0x4000, SDRSA_S_CHECKSUM, 0, 0);
	fb_end(&f);
	fb_write(&f, "reply-put");

	fb_start(&f, SDRSA_OP_SWAP, 1, 7);
	fb_entry(&f, 0x5000, SDRSA_S_OK, 0, 0);
	fb_entry(&f, 0x6000, SDRSA_S_OK, 0, PAGE);
	fb_page(&f, 1, 0x66);
	fb_end(&f);
	fb_write(&f, "reply-swap");

	fb_start(&f, SDRSA_OP_HELLO, 1, 1);
	memset(ch.nonce, 0x3c, sizeof(ch.nonce));
	n = sdrsa_challenge_encode(&ch, small);
	fb_bytes(&f, small, n);
	fb_end(&f);
	fb_write(&f, "reply-challenge");

	fb_start(&f, SDRSA_OP_AUTH, 1, 2);
	f.h.ns = 42;
	n = sdrsa_welcome_encode(&w, small);
	fb_bytes(&f, small, n);
	fb_end(&f);
	fb_write(&f, "reply-welcome");

	memset(&st, 0, sizeof(st));
	st.pool_pages = 1024;
	st.used_pages = 10;
	st.uptime_ms = 12345;
	fb_start(&f, SDRSA_OP_STATS, 1, 13);
	n = sdrsa_stats_encode(&st, small);
	fb_bytes(&f, small, n);
	fb_end(&f);
	fb_write(&f, "reply-stats");

	fb_start(&f, SDRSA_OP_FREE_ALL, 1, 15);
	memset(small, 0, 8);
	small[0] = 7;
	fb_bytes(&f, small, 8);
	fb_end(&f);
	fb_write(&f, "reply-free-all");

	fb_start(&f, SDRSA_OP_PUT, 1, 17);
	f.h.status = SDRSA_S_BAD_FRAME;
	fb_end(&f);
	fb_write(&f, "reply-error");

	/* malformed */
	fb_start(&f, SDRSA_OP_PING, 0, 21);
	fb_end(&f);
	sdrsa_hdr_encode(&f.h, buf);
	memcpy(buf, "XDRA", 4);
	write_seed("fuzz_frame", "bad-magic", buf, SDRSA_HDR_SIZE);
	write_seed("fuzz_frame", "http", (const uint8_t *)"GET / HTTP/1.1\r\nHost: sdrsa1\r\n\r\n",
		   SDRSA_HDR_SIZE);
	f.h.version = 2;
	fb_write(&f, "bad-version");
	f.h.version = 1;
	f.h.flags = 0x8000;
	fb_write(&f, "unknown-flag");
	f.h.flags = 0;
	sdrsa_hdr_encode(&f.h, buf);
	write_seed("fuzz_frame", "short-header", buf, 10);
	f.h.opcode = 0x7e;
	fb_write(&f, "unknown-op");

	fb_start(&f, SDRSA_OP_PUT, 0, 23);
	fb_entry(&f, 0, 0, 0, PAGE);
	fb_end(&f);
	f.h.len = SDRSA_MAX_PAYLOAD + 1;
	sdrsa_hdr_encode(&f.h, buf);
	write_seed("fuzz_frame", "too-big-len", buf, SDRSA_HDR_SIZE);
	f.h.len = ESZ;
	f.h.count = SDRSA_MAX_BATCH + 1;
	sdrsa_hdr_encode(&f.h, buf);
	write_seed("fuzz_frame", "too-big-count", buf, SDRSA_HDR_SIZE);

	/* lies: PUT without its page, and with 100 bytes too many */
	fb_start(&f, SDRSA_OP_PUT, 0, 25);
	fb_entry(&f, 0x1000, 0, 0, PAGE);
	fb_end(&f);
	fb_write(&f, "lie-short");
	fb_start(&f, SDRSA_OP_PUT, 0, 27);
	fb_entry(&f, 0x1000, 0, 0, PAGE);
	fb_page(&f, 0, 1);
	memset(f.p + f.n, 0xcc, 100);
	f.n += 100;
	fb_end(&f);
	fb_write(&f, "lie-long");
	fb_start(&f, SDRSA_OP_GET, 0, 29);
	fb_entry(&f, 0x1000, 0, 0, 0);
	fb_end(&f);
	f.h.count = 3;
	fb_write(&f, "lie-count");

	/* checksums, alignment, entry shape */
	fb_start(&f, SDRSA_OP_PUT, 0, 30);
	fb_entry(&f, 0x1000, 0, 0, PAGE);
	fb_page(&f, 0, 2);
	fb_end(&f);
	f.h.csum ^= 1;
	fb_write(&f, "bad-meta-csum");
	fb_start(&f, SDRSA_OP_PUT, 0, 31);
	fb_entry(&f, 0x1000, 0, 0, PAGE);
	fb_page(&f, 0, 2);
	f.p[ESZ + 5] ^= 1;
	fb_end(&f);
	fb_write(&f, "bad-page-csum");
	fb_start(&f, SDRSA_OP_GET, 0, 33);
	fb_entry(&f, 0x1001, 0, 0, 0);
	fb_end(&f);
	fb_write(&f, "misaligned");
	fb_start(&f, SDRSA_OP_PUT, 0, 35);
	fb_entry(&f, 0x1000, 0, SDRSA_EF_ZERO, PAGE);
	fb_page(&f, 0, 0);
	fb_end(&f);
	fb_write(&f, "zero-with-data");
	fb_start(&f, SDRSA_OP_PUT, 0, 37);
	fb_entry(&f, 0x1000, SDRSA_S_QUOTA, 0, PAGE);
	fb_page(&f, 0, 3);
	fb_end(&f);
	fb_write(&f, "request-status");
	fb_start(&f, SDRSA_OP_SWAP, 0, 39);
	fb_entry(&f, 0x1000, 0, 0, PAGE);
	fb_page(&f, 0, 4);
	fb_end(&f);
	fb_write(&f, "swap-one-entry");
	fb_start(&f, SDRSA_OP_GET, 0, 41);
	fb_end(&f);
	fb_write(&f, "get-count-0");
	fb_start(&f, SDRSA_OP_PING, 0, 43);
	fb_bytes(&f, "payload!", 8);
	fb_end(&f);
	fb_write(&f, "ping-with-payload");
	fb_start(&f, SDRSA_OP_HELLO, 0, 45);
	hello.name[3] = '/';
	n = sdrsa_hello_encode(&hello, small);
	fb_bytes(&f, small, n);
	fb_end(&f);
	fb_write(&f, "hello-bad-name");
}

static void handshakes(void)
{
	uint8_t b[1 + SDRSA_STATS_SIZE + 64];
	struct sdrsa_hello hello;
	struct sdrsa_challenge ch = { .auth_required = 0 };
	struct sdrsa_welcome w = { .pool_pages = 1ull << 30, .quota_pages = 0, .max_batch = 64 };
	struct sdrsa_stats st;
	size_t n;

	memset(&hello, 0, sizeof(hello));
	for (unsigned i = 0; i < SDRSA_NONCE_SIZE; i++)
		hello.nonce[i] = (uint8_t)i;
	b[0] = 0;
	strcpy(hello.name, "vm-01.rack_2");
	n = sdrsa_hello_encode(&hello, b + 1);
	write_seed("fuzz_handshake", "hello", b, 1 + n);
	memset(hello.name, 'x', SDRSA_NAME_MAX);
	hello.name[SDRSA_NAME_MAX] = '\0';
	n = sdrsa_hello_encode(&hello, b + 1);
	write_seed("fuzz_handshake", "hello-longest", b, 1 + n);
	strcpy(hello.name, "a");
	n = sdrsa_hello_encode(&hello, b + 1);
	write_seed("fuzz_handshake", "hello-shortest", b, 1 + n);
	b[1 + SDRSA_NONCE_SIZE] = 5; /* name_len lies */
	write_seed("fuzz_handshake", "hello-len-lie", b, 1 + n);
	strcpy(hello.name, "a b");
	n = sdrsa_hello_encode(&hello, b + 1);
	write_seed("fuzz_handshake", "hello-space", b, 1 + n);
	strcpy(hello.name, "abc");
	n = sdrsa_hello_encode(&hello, b + 1);
	b[1 + SDRSA_NONCE_SIZE + 2] = '\0';
	write_seed("fuzz_handshake", "hello-nul", b, 1 + n);

	b[0] = 1;
	memset(ch.nonce, 0x77, sizeof(ch.nonce));
	n = sdrsa_challenge_encode(&ch, b + 1);
	write_seed("fuzz_handshake", "challenge", b, 1 + n);
	b[1 + SDRSA_NONCE_SIZE] = 2;
	write_seed("fuzz_handshake", "challenge-bad-flag", b, 1 + n);

	b[0] = 2;
	n = sdrsa_welcome_encode(&w, b + 1);
	write_seed("fuzz_handshake", "welcome", b, 1 + n);
	w.max_batch = 0;
	n = sdrsa_welcome_encode(&w, b + 1);
	write_seed("fuzz_handshake", "welcome-batch-0", b, 1 + n);

	b[0] = 3;
	memset(&st, 0, sizeof(st));
	st.pool_pages = 4096;
	st.connections = 3;
	n = sdrsa_stats_encode(&st, b + 1);
	write_seed("fuzz_handshake", "stats", b, 1 + n);
	b[1] = 2; /* two fields, as an older server would send */
	write_seed("fuzz_handshake", "stats-old", b, 1 + 4 + 16);
	b[1] = (uint8_t)(SDRSA_STATS_FIELDS + 2); /* a newer server */
	memset(b + 1 + n, 0x99, 16);
	write_seed("fuzz_handshake", "stats-new", b, 1 + n + 16);
	b[1] = 0xff;
	write_seed("fuzz_handshake", "stats-lie", b, 1 + 20);

	b[0] = 4;
	memcpy(b + 1, "client.name-1", 13);
	write_seed("fuzz_handshake", "name", b, 1 + 13);
	memcpy(b + 1, "bad name", 8);
	write_seed("fuzz_handshake", "name-bad", b, 1 + 8);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s OUTPUT_DIR (tests/fuzz/corpus)\n", argv[0]);
		return 2;
	}
	out_dir = argv[1];
	mkdir(out_dir, 0755);
	frames();
	handshakes();
	return 0;
}
