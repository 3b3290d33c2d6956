/* SPDX-License-Identifier: MIT */
/*
 * Helpers for the engine's tests (header-only, each test is one program):
 * check macros, starting a real memory-server on 127.0.0.1 port 0, and the
 * per-page content pattern. Exit codes: 0 pass, 1 fail, 77 skip.
 */
#ifndef SDRSA_TEST_ETEST_H
#define SDRSA_TEST_ETEST_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"

#define T_PASS 0
#define T_FAIL 1
#define T_SKIP 77

#define CHECK(cond)                                                                        \
	do {                                                                               \
		if (!(cond)) {                                                             \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__,   \
				#cond);                                                    \
			exit(T_FAIL);                                                      \
		}                                                                          \
	} while (0)

#define CHECK_EQ(a, b)                                                                     \
	do {                                                                               \
		long long _a = (long long)(a), _b = (long long)(b);                        \
		if (_a != _b) {                                                            \
			fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", __FILE__, \
				__LINE__, #a, #b, _a, _b);                                 \
			exit(T_FAIL);                                                      \
		}                                                                          \
	} while (0)

/* The exit status of a test that cannot run here: skip, but a failure with
 * CI, where every kernel feature and tool the tests need is there. */
static inline int t_skip_status(void)
{
	return getenv("CI") ? T_FAIL : T_SKIP;
}

/* Skip when userfaultfd is not available to this process (t_skip_status). */
static inline void t_require_uffd(void)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "skip: userfaultfd: %s\n", strerror(errno));
		exit(t_skip_status());
	}
	close(fd);
}

struct t_server {
	pid_t pid;
	char addr[256]; /* "127.0.0.1:PORT" */
};

/* Start `memory-server SIZE --listen 127.0.0.1:0 --quiet` and wait for "ready".
 * Returns 0 or -1. */
static inline int t_server_start(const char *bin, const char *size, struct t_server *s)
{
	int pfd[2];
	if (pipe(pfd) < 0)
		return -1;
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		dup2(pfd[1], 1);
		close(pfd[0]);
		close(pfd[1]);
		execl(bin, bin, size, "--listen", "127.0.0.1:0", "--quiet", (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	FILE *f = fdopen(pfd[0], "r");
	char line[256];
	s->pid = pid;
	s->addr[0] = 0;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "listening on ", 13)) {
			snprintf(s->addr, sizeof(s->addr), "%s", line + 13);
			s->addr[strcspn(s->addr, "\r\n")] = 0;
		}
		if (!strncmp(line, "ready", 5))
			break;
	}
	fclose(f);
	if (!s->addr[0]) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return -1;
	}
	return 0;
}

static inline void t_server_stop(struct t_server *s)
{
	if (s->pid > 0) {
		kill(s->pid, SIGTERM);
		waitpid(s->pid, NULL, 0);
		s->pid = 0;
	}
}

/* An engine's log kept for tests that look for a message: cfg.log =
 * t_log_capture, cfg.log_userdata = a struct t_log. */
struct t_log {
	char text[8192];
};

static inline void t_log_capture(void *ud, int level, const char *msg)
{
	struct t_log *l = ud;
	size_t n = strlen(l->text);
	(void)level;
	snprintf(l->text + n, sizeof(l->text) - n, "%s\n", msg);
}

/* Page content: word 0 = page index, word 1 = version, the rest a hash. */
static inline void t_fill(void *page, uint64_t idx, uint64_t ver)
{
	uint64_t *w = page;
	w[0] = idx;
	w[1] = ver;
	uint64_t h = sdrsa_mix64(idx * 1000003u + ver);
	for (int i = 2; i < 512; i++)
		w[i] = h + (uint64_t)i * 0x9E3779B97F4A7C15ull;
}

/* 0 if the page holds (idx, ver); ver 0 means "never written": all zeros. */
static inline int t_check(const void *page, uint64_t idx, uint64_t ver)
{
	const uint64_t *w = page;
	if (ver == 0) {
		for (int i = 0; i < 512; i++)
			if (w[i])
				return -1;
		return 0;
	}
	if (w[0] != idx || w[1] != ver)
		return -1;
	uint64_t h = sdrsa_mix64(idx * 1000003u + ver);
	for (int i = 2; i < 512; i++)
		if (w[i] != h + (uint64_t)i * 0x9E3779B97F4A7C15ull)
			return -1;
	return 0;
}

#endif
