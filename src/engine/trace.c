// SPDX-License-Identifier: MIT
/* Trace files; the format is in trace.h. */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/trace.h"

static void put_u32(unsigned char *b, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		b[i] = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char *b, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *b)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++)
		v |= (uint32_t)b[i] << (8 * i);
	return v;
}

static uint64_t get_u64(const unsigned char *b)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}

static void flush_buf(struct trace_writer *w)
{
	size_t off = 0;
	while (off < w->len) {
		ssize_t n = write(w->fd, w->buf + off, w->len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			w->err = n < 0 ? errno : EIO;
			break;
		}
		off += (size_t)n;
	}
	w->len = 0;
}

int trace_writer_open(struct trace_writer *w, const char *path, uint32_t flags)
{
	memset(w, 0, offsetof(struct trace_writer, buf));
	w->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (w->fd < 0)
		return -errno;
	memcpy(w->buf, TRACE_MAGIC, 8);
	put_u32(w->buf + 8, TRACE_VERSION);
	put_u32(w->buf + 12, flags);
	put_u64(w->buf + 16, 0);
	put_u32(w->buf + 24, 4096);
	put_u32(w->buf + 28, 0);
	w->len = TRACE_HEADER;
	return 0;
}

static void put_varint(struct trace_writer *w, uint64_t v)
{
	if (w->len + 10 > sizeof(w->buf))
		flush_buf(w);
	do {
		unsigned char b = (unsigned char)(v & 0x7f);
		v >>= 7;
		w->buf[w->len++] = v ? (unsigned char)(b | 0x80) : b;
	} while (v);
}

void trace_write(struct trace_writer *w, uint32_t region, uint64_t page, enum trace_type type)
{
	if (w->fd < 0)
		return;
	if (region != w->region) {
		put_varint(w, ((uint64_t)region << 2) | 3);
		w->region = region;
	}
	int64_t d = (int64_t)(page - w->prev);
	uint64_t zz = ((uint64_t)d << 1) ^ (uint64_t)(d >> 63);
	put_varint(w, (zz << 2) | (uint64_t)type);
	w->prev = page;
	w->n++;
}

int trace_writer_close(struct trace_writer *w)
{
	if (w->fd < 0)
		return 0;
	flush_buf(w);
	unsigned char b[8];
	put_u64(b, w->n);
	if (pwrite(w->fd, b, 8, 16) != 8 && !w->err)
		w->err = errno ? errno : EIO;
	if (close(w->fd) < 0 && !w->err)
		w->err = errno;
	w->fd = -1;
	return -w->err;
}

void trace_writer_drop(struct trace_writer *w)
{
	w->fd = -1;
	w->len = 0;
}

int trace_load(const char *path, struct trace *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	FILE *f = fopen(path, "rbe");
	if (!f) {
		int r = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return r;
	}
	int r = -EINVAL;
	unsigned char h[TRACE_HEADER];
	size_t cap = 0;
	if (fread(h, 1, sizeof(h), f) != sizeof(h) || memcmp(h, TRACE_MAGIC, 8)) {
		snprintf(err, errlen, "%s: not an sdrsa trace (no SDRSATR1 header)", path);
		goto out;
	}
	if (get_u32(h + 8) != TRACE_VERSION || get_u32(h + 24) != 4096) {
		snprintf(err, errlen, "%s: trace version %u, page size %u: this build reads "
			 "version %u, 4096", path, get_u32(h + 8), get_u32(h + 24), TRACE_VERSION);
		goto out;
	}
	out->flags = get_u32(h + 12);
	uint64_t count = get_u64(h + 16);
	uint64_t prev = 0, v = 0;
	uint32_t region = 0;
	unsigned shift = 0;
	int c;
	long off = TRACE_HEADER;
	while ((c = getc(f)) != EOF) {
		off++;
		if (shift > 63) {
			snprintf(err, errlen, "%s: bad record at byte %ld", path, off);
			goto out;
		}
		v |= (uint64_t)(c & 0x7f) << shift;
		shift += 7;
		if (c & 0x80)
			continue;
		if ((v & 3) == 3) {
			region = (uint32_t)(v >> 2);
		} else {
			if (out->n == cap) {
				cap = cap ? cap * 2 : 4096;
				struct trace_rec *nr = realloc(out->rec, cap * sizeof(*nr));
				if (!nr) {
					r = -ENOMEM;
					snprintf(err, errlen, "%s: out of memory", path);
					goto out;
				}
				out->rec = nr;
			}
			uint64_t zz = v >> 2;
			int64_t d = (int64_t)(zz >> 1) ^ -(int64_t)(zz & 1);
			prev += (uint64_t)d;
			out->rec[out->n++] = (struct trace_rec){prev, region, (uint8_t)(v & 3)};
		}
		v = 0;
		shift = 0;
	}
	if (shift) {
		snprintf(err, errlen, "%s: truncated (a record is cut at the end)", path);
		goto out;
	}
	if (count && count != out->n) {
		snprintf(err, errlen, "%s: truncated: %zu records of %llu", path, out->n,
			 (unsigned long long)count);
		goto out;
	}
	r = 0;
out:
	fclose(f);
	if (r < 0)
		trace_release(out);
	return r;
}

void trace_release(struct trace *t)
{
	free(t->rec);
	memset(t, 0, sizeof(*t));
}
