// SPDX-License-Identifier: MIT
/*
 * UFFDIO_MOVE's count against the page table, without the engine: the
 * smallest reproduction of the kernel bug that engine.c's move_checked()
 * works around. A thread write-protects and unprotects the source over and
 * over (its PTEs change under the move: -EAGAIN inside move_pages_ptes,
 * retried); the main thread fills 64 source pages (each with its own
 * pattern), moves them in one UFFDIO_MOVE and compares the reported count
 * with the pages found at the destination in /proc/self/pagemap, whose
 * contents are checked.
 *
 * Linux 6.18.44 here: "UFFDIO_MOVE of 64 pages returned File exists,
 * move=-17, but 64 pages arrived" (or 61) in about 1 round in 600:
 * move_pages() keeps the -EAGAIN after the retry moved the pages, tries
 * the same address again, finds its own page at the destination (EEXIST)
 * and reports what it had counted before, here nothing.
 *
 * Asserts what the engine relies on: the moved pages are a prefix of the
 * range, each found at the destination with its own contents and gone
 * from the source, and never fewer than reported. Prints how many moves
 * were misreported (0 on a kernel without the bug).
 *
 * Usage: t_moveprobe [SECONDS]
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/util.h"
#include "engine/uffd_compat.h"
#include "etest.h"

#define PG 4096ul
#define N 64
static int g_fd;
static char *g_src, *g_dst;
static volatile int g_stop;

static void *toggler(void *arg)
{
	(void)arg;
	for (unsigned long i = 0; !g_stop; i++) {
		struct uffdio_writeprotect w = {
			.range = {.start = (uintptr_t)g_src, .len = N * PG},
			.mode = (i & 1) ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
		};
		(void)ioctl(g_fd, UFFDIO_WRITEPROTECT, &w);
	}
	return NULL;
}

/* Present or swapped, from pagemap (bits 63, 62). */
static void mapped(int pm, const char *a, uint8_t *out)
{
	uint64_t ent[N];
	if (pread(pm, ent, sizeof(ent), (off_t)((uintptr_t)a / PG * 8)) != (ssize_t)sizeof(ent)) {
		perror("pagemap");
		exit(T_FAIL);
	}
	for (int i = 0; i < N; i++)
		out[i] = (ent[i] >> 62) != 0;
}

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 1.5;
	t_require_uffd();
	g_fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	struct uffdio_api api = {.api = UFFD_API,
				 .features = UFFD_FEATURE_MOVE | UFFD_FEATURE_PAGEFAULT_FLAG_WP};
	CHECK(g_fd >= 0 && ioctl(g_fd, UFFDIO_API, &api) == 0);
	int pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	CHECK(pm >= 0);
	g_src = mmap(NULL, N * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	g_dst = mmap(NULL, N * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(g_src != MAP_FAILED && g_dst != MAP_FAILED);
	struct uffdio_register rs = {.range = {(uintptr_t)g_src, N * PG},
				     .mode = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP};
	struct uffdio_register rd = {.range = {(uintptr_t)g_dst, N * PG},
				     .mode = UFFDIO_REGISTER_MODE_MISSING};
	CHECK(ioctl(g_fd, UFFDIO_REGISTER, &rs) == 0 && ioctl(g_fd, UFFDIO_REGISTER, &rd) == 0);
	uint64_t *buf = aligned_alloc(PG, N * PG);
	CHECK(buf != NULL);

	pthread_t t;
	CHECK(pthread_create(&t, NULL, toggler, NULL) == 0);
	long rounds = 0, shorts = 0, misreported = 0;
	uint64_t t0 = sdrsa_now_ms();
	while (sdrsa_now_ms() - t0 < (uint64_t)(seconds * 1000)) {
		rounds++;
		for (uint64_t i = 0; i < N * PG / 8; i++)
			buf[i] = ((uint64_t)rounds << 32) | i;
		struct uffdio_copy c = {.dst = (uintptr_t)g_src, .src = (uintptr_t)buf, .len = N * PG};
		while (ioctl(g_fd, UFFDIO_COPY, &c) < 0) {
			CHECK(errno == EAGAIN && c.copy > 0);
			c.dst += (uint64_t)c.copy;
			c.src += (uint64_t)c.copy;
			c.len -= (uint64_t)c.copy;
		}
		struct uffdio_move m = {.dst = (uintptr_t)g_dst, .src = (uintptr_t)g_src,
					.len = N * PG, .mode = UFFDIO_MOVE_MODE_DONTWAKE};
		int rc = ioctl(g_fd, UFFDIO_MOVE, &m);
		int err = rc ? errno : 0;
		long reported = rc == 0 ? N : m.move > 0 ? (long)(m.move / (long)PG) : 0;
		uint8_t at_dst[N], at_src[N];
		mapped(pm, g_dst, at_dst);
		mapped(pm, g_src, at_src);
		long moved = 0;
		while (moved < N && at_dst[moved])
			moved++;
		for (long i = 0; i < N; i++) {
			/* A prefix moved: the rest stayed where it was. */
			CHECK(at_dst[i] == (i < moved) && at_src[i] == (i >= moved));
			const uint64_t *w = (const uint64_t *)(i < moved ? g_dst : g_src) + i * PG / 8;
			CHECK(w[0] == (((uint64_t)rounds << 32) | (uint64_t)i * PG / 8));
		}
		CHECK(moved >= reported);
		shorts += rc != 0;
		if (moved != reported && misreported++ < 3)
			fprintf(stderr, "round %ld: UFFDIO_MOVE of %d pages returned %s, move=%lld, "
				"but %ld pages arrived\n", rounds, N, rc ? strerror(err) : "0",
				(long long)m.move, moved);
		CHECK(madvise(g_dst, N * PG, MADV_DONTNEED) == 0);
		CHECK(madvise(g_src, N * PG, MADV_DONTNEED) == 0);
	}
	g_stop = 1;
	pthread_join(t, NULL);
	fprintf(stderr, "%ld moves of %d pages, %ld not complete, %ld misreported by the kernel\n",
		rounds, N, shorts, misreported);
	free(buf);
	munmap(g_src, N * PG);
	munmap(g_dst, N * PG);
	close(pm);
	close(g_fd);
	return T_PASS;
}
