/* SPDX-License-Identifier: MIT */
/*
 * sdrsa-fill: write or check the deterministic pattern of guest/pattern.h.
 * The guest's memory loop (sdrsa-memloop) fills tmpfs files with it and
 * checks them after other memory has been churned; the host can run the same
 * static binary (or include pattern.h) to know what the data must be.
 *
 *   sdrsa-fill gen SEED SIZE        write SIZE bytes of the stream to stdout
 *   sdrsa-fill check SEED FILE      verify FILE; print the first bad page
 *
 * SIZE takes a K, M or G suffix and must be a multiple of 8. Exit status:
 * 0 ok, 1 mismatch or I/O error, 2 bad usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pattern.h"

#define CHUNK (64 * 1024)

static unsigned char buf[CHUNK];

static int parse_u64(const char *s, uint64_t *out, int suffix)
{
	char *end;
	uint64_t v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s)
		return -1;
	if (suffix && *end) {
		switch (*end++) {
		case 'k': case 'K': v <<= 10; break;
		case 'm': case 'M': v <<= 20; break;
		case 'g': case 'G': v <<= 30; break;
		default: return -1;
		}
	}
	if (*end)
		return -1;
	*out = v;
	return 0;
}

static int gen(uint64_t seed, uint64_t size)
{
	uint64_t off = 0;

	while (off < size) {
		size_t n = size - off < CHUNK ? (size_t)(size - off) : CHUNK;
		size_t done = 0;

		sdrsa_pattern_fill(buf, n, seed, off);
		while (done < n) {
			ssize_t w = write(1, buf + done, n - done);

			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				fprintf(stderr, "sdrsa-fill: write: %s\n", strerror(errno));
				return 1;
			}
			done += (size_t)w;
		}
		off += n;
	}
	return 0;
}

static int check(uint64_t seed, const char *path)
{
	uint64_t off = 0;
	int fd = open(path, O_RDONLY);

	if (fd < 0) {
		printf("sdrsa-fill: %s: %s\n", path, strerror(errno));
		return 1;
	}
	for (;;) {
		ssize_t n = read(fd, buf, CHUNK);
		long bad;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			printf("sdrsa-fill: %s: read at %" PRIu64 ": %s\n", path, off, strerror(errno));
			close(fd);
			return 1;
		}
		if (n == 0)
			break;
		if (n % 8) {
			printf("sdrsa-fill: %s: size is not a multiple of 8\n", path);
			close(fd);
			return 1;
		}
		bad = sdrsa_pattern_check(buf, (size_t)n, seed, off);
		if (bad >= 0) {
			printf("sdrsa-fill: %s: MISMATCH at offset %" PRIu64 " (page %" PRIu64 ")\n",
			       path, off + (uint64_t)bad, (off + (uint64_t)bad) / 4096);
			close(fd);
			return 1;
		}
		off += (uint64_t)n;
	}
	close(fd);
	printf("sdrsa-fill: %s: ok %" PRIu64 " bytes\n", path, off);
	return 0;
}

int main(int argc, char **argv)
{
	uint64_t seed, size;

	if (argc == 4 && !strcmp(argv[1], "gen") && !parse_u64(argv[2], &seed, 0) &&
	    !parse_u64(argv[3], &size, 1) && size % 8 == 0)
		return gen(seed, size);
	if (argc == 4 && !strcmp(argv[1], "check") && !parse_u64(argv[2], &seed, 0))
		return check(seed, argv[3]);
	fprintf(stderr, "usage: sdrsa-fill gen SEED SIZE | sdrsa-fill check SEED FILE\n");
	return 2;
}
