/* SPDX-License-Identifier: MIT */
/*
 * Page access traces: what `rsa-app run --trace FILE` records and what the
 * simulator (sim.h, `rsa-app sim`) replays. Format (little-endian), see
 * docs/ENGINE.md "Traces":
 *
 *   header, 32 bytes: magic "SDRSATR1", u32 version (1), u32 flags
 *   (TRACE_F_ACCESSES: every access, as a generator writes it; without it
 *   the faults the engine saw), u64 record count (0: not known, the writer
 *   did not close), u32 page size (4096), u32 zero.
 *   records: LEB128 varints. (zigzag(page - previous page) << 2) | type for
 *   TRACE_READ, TRACE_WRITE and TRACE_WP; (region << 2) | 3 says that the
 *   records after it belong to that region (a managed mapping, numbered by
 *   the engine; 0 until the first such record).
 *
 * A sequential scan costs one byte per record.
 */
#ifndef SDRSA_ENGINE_TRACE_H
#define SDRSA_ENGINE_TRACE_H

#include <stddef.h>
#include <stdint.h>

#define TRACE_MAGIC "SDRSATR1"
#define TRACE_VERSION 1u
#define TRACE_HEADER 32
#define TRACE_F_ACCESSES 1u

enum trace_type {
	TRACE_READ = 0,  /* a read (a read fault on a missing page) */
	TRACE_WRITE = 1, /* a write (a write fault on a missing page) */
	TRACE_WP = 2,    /* the first write to a clean resident page */
};

struct trace_rec {
	uint64_t page; /* address / 4096 */
	uint32_t region;
	uint8_t type;
};

struct trace {
	uint32_t flags;
	size_t n;
	struct trace_rec *rec;
};

/* Buffered on a plain descriptor, not stdio: a fork child that exits must
 * not flush the parent's buffered records a second time (trace_writer_drop). */
struct trace_writer {
	int fd; /* -1: closed */
	uint64_t prev;
	uint32_t region;
	uint64_t n;
	int err;
	size_t len;
	unsigned char buf[1 << 16];
};

/* Create (truncate) path and write the header. Returns 0 or -errno. */
int trace_writer_open(struct trace_writer *w, const char *path, uint32_t flags);
void trace_write(struct trace_writer *w, uint32_t region, uint64_t page, enum trace_type type);
/* Write the record count into the header and close. Returns 0 or -errno
 * (a write failed at any point). */
int trace_writer_close(struct trace_writer *w);

/* Forget the file without writing (a fork child's copy of the writer). */
void trace_writer_drop(struct trace_writer *w);

/* Read a whole trace. Returns 0, or -errno / -EINVAL with a one-line reason
 * in err (not a trace, other version, truncated, bad record). */
int trace_load(const char *path, struct trace *out, char *err, size_t errlen);
void trace_release(struct trace *t);

#endif
