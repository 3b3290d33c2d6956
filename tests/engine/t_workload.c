// SPDX-License-Identifier: MIT
/*
 * Test helper run under rsa-app (or the preload library): a known workload
 * on one mmap'd region (managed: it is above the threshold), every page
 * checked. Exit 0 when every check passed, 3 on wrong data (which must never
 * happen), 2 on bad usage.
 *
 *   t_workload once N   write N pages (each with its index), read them back
 *   t_workload loop N   write N pages, print "filled", then forever: check
 *                       every page and write its next version (until killed)
 *   t_workload hold N   write N pages, print "filled", wait for a line on
 *                       stdin, check every page, exit 0 (a normal exit)
 *   t_workload fork N   write N pages, fork; the child checks every page and
 *                       writes its own versions, the parent too, each checks
 *                       its own view again (copy-on-write), exit 0 if both
 *                       saw only right data
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define PG 4096u

static uint64_t *page(unsigned char *m, uint64_t i)
{
	return (uint64_t *)(m + i * PG);
}

static void fill(unsigned char *m, uint64_t i, uint64_t ver)
{
	uint64_t *w = page(m, i);
	w[0] = i;
	w[1] = ver;
	w[511] = i * 0x9E3779B97F4A7C15ull + ver;
}

static int check(unsigned char *m, uint64_t i, uint64_t ver)
{
	uint64_t *w = page(m, i);
	if (w[0] != i || w[1] != ver || w[511] != i * 0x9E3779B97F4A7C15ull + ver) {
		fprintf(stderr, "t_workload[%d]: page %llu: want version %llu, found %llu/%llu\n",
			(int)getpid(), (unsigned long long)i, (unsigned long long)ver,
			(unsigned long long)w[0], (unsigned long long)w[1]);
		return -1;
	}
	return 0;
}

static int pass(unsigned char *m, uint64_t n, uint64_t ver, uint64_t next)
{
	for (uint64_t i = 0; i < n; i++) {
		if (check(m, i, ver))
			return -1;
		if (next)
			fill(m, i, next);
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 3)
		return 2;
	uint64_t n = strtoull(argv[2], NULL, 10);
	unsigned char *m = mmap(NULL, n * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
				-1, 0);
	if (m == MAP_FAILED)
		return 2;
	for (uint64_t i = 0; i < n; i++)
		fill(m, i, 1);
	if (!strcmp(argv[1], "once")) {
		if (pass(m, n, 1, 0))
			return 3;
		printf("ok %llu pages\n", (unsigned long long)n);
		return 0;
	}
	if (!strcmp(argv[1], "loop")) {
		printf("filled\n");
		fflush(stdout);
		for (uint64_t v = 1;; v++)
			if (pass(m, n, v, v + 1))
				return 3;
	}
	if (!strcmp(argv[1], "hold")) {
		char line[16];
		printf("filled\n");
		fflush(stdout);
		if (!fgets(line, sizeof(line), stdin))
			return 2;
		if (pass(m, n, 1, 0))
			return 3;
		printf("ok %llu pages\n", (unsigned long long)n);
		return 0;
	}
	if (!strcmp(argv[1], "fork")) {
		pid_t pid = fork();
		if (pid < 0)
			return 2;
		uint64_t mine = pid == 0 ? 100 : 200;
		int bad = pass(m, n, 1, mine) || pass(m, n, mine, 0);
		if (pid == 0)
			_exit(bad ? 3 : 0);
		int st;
		if (waitpid(pid, &st, 0) != pid)
			return 2;
		if (bad)
			return 3;
		if (!WIFEXITED(st)) {
			fprintf(stderr, "t_workload: fork child killed by signal %d\n", WTERMSIG(st));
			return 4;
		}
		if (WEXITSTATUS(st))
			return WEXITSTATUS(st);
		printf("fork ok\n");
		return 0;
	}
	return 2;
}
