/* SPDX-License-Identifier: MIT */
/*
 * faultfloor: what a remote page fault costs at the least, on one CPU.
 *
 * Issue 3 asks for a remote fault within 1.3x of the raw TCP 4 KiB round trip
 * with the program, the engine and the memory server on the same vCPU. This
 * program measures, in one run and pinned to one CPU, the three figures that
 * bound what any design can reach there, with nothing of sdrsa in them (no
 * checksum, no frame header, no bookkeeping; the server is a forked process
 * answering a 16-byte request with 4096 bytes, as enginebench's raw baseline):
 *
 *   1. the raw round trip itself;
 *   2. a fault served by a handler thread (the only design that works for
 *      unmodified programs: the engine's): blocking read() of the
 *      userfaultfd, the round trip, UFFDIO_COPY, which wakes the program;
 *   3. a fault served by the faulting thread itself (UFFD_FEATURE_SIGBUS: a
 *      SIGBUS handler makes the round trip and UFFDIO_COPY, no wake-up);
 *
 * and then shows why 3 cannot serve unmodified programs: in that mode a
 * system call that writes into a missing page (read() from a pipe here)
 * fails with EFAULT instead of waiting for the page.
 *
 *   faultfloor [--cpu N] [--faults N]
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096
#define FILL 0x5a

static int sock = -1; /* to the server */
static int uffd = -1;
static char *region;
static size_t nfaults = 4000;
static uint8_t page_in[PAGE];

static void die(const char *what)
{
	fprintf(stderr, "faultfloor: %s: %s\n", what, strerror(errno));
	_exit(1);
}

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static uint64_t median(uint64_t *t, size_t n)
{
	qsort(t, n, sizeof(*t), cmp_u64);
	return t[n / 2];
}

/* One round trip: 16 bytes out, a page back. Async-signal-safe (used from the
 * SIGBUS handler). */
static void round_trip(void)
{
	uint64_t req[2] = {1, 2};
	size_t got = 0;

	if (send(sock, req, sizeof(req), MSG_NOSIGNAL) != (ssize_t)sizeof(req))
		die("send");
	while (got < PAGE) {
		ssize_t r = recv(sock, page_in + got, PAGE - got, 0);

		if (r <= 0)
			die("recv");
		got += (size_t)r;
	}
}

static void server(int lfd)
{
	int fd = accept(lfd, NULL, NULL), one = 1;
	uint8_t page[PAGE], req[16];

	if (fd < 0)
		_exit(1);
	memset(page, FILL, sizeof(page));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	while (recv(fd, req, sizeof(req), MSG_WAITALL) == (ssize_t)sizeof(req))
		if (send(fd, page, sizeof(page), MSG_NOSIGNAL) != (ssize_t)sizeof(page))
			break;
	_exit(0);
}

static void install(uint64_t addr)
{
	struct uffdio_copy c = {
	    .dst = addr & ~(uint64_t)(PAGE - 1), .src = (uint64_t)page_in, .len = PAGE};

	if (ioctl(uffd, UFFDIO_COPY, &c) < 0 && errno != EEXIST)
		die("UFFDIO_COPY");
}

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	round_trip();
	install((uint64_t)si->si_addr);
}

static void *handler_main(void *arg)
{
	(void)arg;
	for (;;) {
		struct uffd_msg m;

		if (read(uffd, &m, sizeof(m)) != (ssize_t)sizeof(m))
			continue;
		if (m.event != UFFD_EVENT_PAGEFAULT)
			continue;
		round_trip();
		install(m.arg.pagefault.address);
	}
	return NULL;
}

/* A fresh region of nfaults missing pages on a fresh userfaultfd. */
static void new_region(uint64_t features)
{
	struct uffdio_api api = {.api = UFFD_API, .features = features};
	struct uffdio_register reg = {.mode = UFFDIO_REGISTER_MODE_MISSING};

	if (region)
		munmap(region, nfaults * PAGE);
	if (uffd >= 0)
		close(uffd);
	uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC);
	if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api) < 0)
		die("userfaultfd");
	region = mmap(NULL, nfaults * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		      -1, 0);
	if (region == MAP_FAILED)
		die("mmap");
	reg.range.start = (uint64_t)region;
	reg.range.len = nfaults * PAGE;
	if (ioctl(uffd, UFFDIO_REGISTER, &reg) < 0)
		die("UFFDIO_REGISTER");
}

/* Median time of a first read of each page; every page must hold the
 * server's pattern. */
static uint64_t fault_median(uint64_t *t)
{
	for (size_t i = 0; i < nfaults; i++) {
		uint64_t a = now_ns();

		if (((volatile char *)region)[i * PAGE] != FILL) {
			fprintf(stderr, "faultfloor: page %zu: wrong content\n", i);
			_exit(1);
		}
		t[i] = now_ns() - a;
	}
	return median(t, nfaults);
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct sigaction act = {.sa_sigaction = on_sigbus, .sa_flags = SA_SIGINFO};
	socklen_t sl = sizeof(sa);
	int cpu = 0, one = 1, lfd, pfd[2];
	uint64_t *t, raw, by_thread, by_self;
	pthread_t th;
	cpu_set_t set;
	ssize_t r;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--cpu") && i + 1 < argc) {
			cpu = atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--faults") && i + 1 < argc) {
			nfaults = strtoul(argv[++i], NULL, 10);
		} else {
			fprintf(stderr, "usage: faultfloor [--cpu N] [--faults N (>= 100)]\n");
			return 2;
		}
	}
	if (nfaults < 100)
		nfaults = 100;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) < 0) /* inherited by the server */
		die("sched_setaffinity");
	t = calloc(nfaults, sizeof(*t));
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (!t || lfd < 0 || bind(lfd, (void *)&sa, sizeof(sa)) < 0 || listen(lfd, 1) < 0 ||
	    getsockname(lfd, (void *)&sa, &sl) < 0)
		die("listen");
	if (fork() == 0)
		server(lfd);
	close(lfd);
	sock = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sock < 0 || connect(sock, (void *)&sa, sizeof(sa)) < 0)
		die("connect");
	setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

	for (int i = 0; i < 500; i++)
		round_trip();
	for (size_t i = 0; i < nfaults; i++) {
		uint64_t a = now_ns();

		round_trip();
		t[i] = now_ns() - a;
	}
	raw = median(t, nfaults);

	new_region(0);
	if (pthread_create(&th, NULL, handler_main, NULL))
		die("pthread_create");
	by_thread = fault_median(t);
	pthread_cancel(th); /* blocked in read(): a cancellation point */
	pthread_join(th, NULL);

	if (sigaction(SIGBUS, &act, NULL) < 0)
		die("sigaction");
	new_region(UFFD_FEATURE_SIGBUS);
	by_self = fault_median(t);

	new_region(UFFD_FEATURE_SIGBUS);
	if (pipe(pfd) < 0 || write(pfd[1], "page", 4) != 4)
		die("pipe");
	r = read(pfd[0], region, 4);

	printf("CPU %d, %zu round trips and faults per figure, medians\n", cpu, nfaults);
	printf("raw TCP 4 KiB round trip            %6.1f us\n", raw / 1000.0);
	printf("remote fault, handler thread        %6.1f us  %.2fx raw\n", by_thread / 1000.0,
	       (double)by_thread / (double)raw);
	printf("remote fault, the faulting thread   %6.1f us  %.2fx raw (UFFD_FEATURE_SIGBUS)\n",
	       by_self / 1000.0, (double)by_self / (double)raw);
	printf("read() into a missing page in that mode: %s\n",
	       r < 0 ? strerror(errno) : "succeeded (unexpected)");
	return 0;
}
