/* SPDX-License-Identifier: MIT */
/*
 * vm_agent.c: see vm_agent.h.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vm_agent.h"
#include "vm_harness.h"

#ifndef SDRSA_RSA_APP_DEFAULT
#define SDRSA_RSA_APP_DEFAULT "rsa-app"
#endif
#ifndef SDRSA_MEMORY_SERVER_DEFAULT
#define SDRSA_MEMORY_SERVER_DEFAULT "memory-server"
#endif

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

const char *vm_agent_bin(void)
{
	const char *s = getenv("SDRSA_RSA_APP");

	return s && *s ? s : SDRSA_RSA_APP_DEFAULT;
}

static const char *server_bin(void)
{
	const char *s = getenv("SDRSA_MEMORY_SERVER");

	return s && *s ? s : SDRSA_MEMORY_SERVER_DEFAULT;
}

int vm_agent_available(char *why, size_t len)
{
	if (access(vm_agent_bin(), X_OK) != 0) {
		snprintf(why, len, "the agent %s is not built", vm_agent_bin());
		return -ENOENT;
	}
	if (access(server_bin(), X_OK) != 0) {
		snprintf(why, len, "the memory server %s is not built", server_bin());
		return -ENOENT;
	}
	return vm_available(why, len);
}

int vm_agent_rundir(char *buf, size_t len)
{
	snprintf(buf, len, "/tmp/sdrsa-vmtest-%d-XXXXXX", (int)getpid());
	if (!mkdtemp(buf))
		return -errno;
	setenv("SDRSA_RUN_DIR", buf, 1);
	return 0;
}

void vm_agent_rundir_remove(const char *dir)
{
	char cmd[512];

	if (!dir || strncmp(dir, "/tmp/sdrsa-vmtest-", 18))
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		vm_log("could not remove %s", dir);
}

int vm_proc_start(struct vm_proc *p, const char *tag, const char *const *argv)
{
	int out[2];
	pid_t pid;

	memset(p, 0, sizeof(*p));
	p->out_fd = -1;
	p->tag = tag;
	if (pipe2(out, O_CLOEXEC) < 0)
		return -errno;
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		close(out[0]);
		close(out[1]);
		return -errno;
	}
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDONLY);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (devnull >= 0)
			dup2(devnull, 0);
		dup2(out[1], 1);
		dup2(out[1], 2);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		execv(argv[0], (char *const *)argv);
		fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(out[1]);
	p->pid = pid;
	p->out_fd = out[0];
	return 0;
}

static int take(struct vm_proc *p, char *line, size_t len)
{
	char *nl = memchr(p->buf, '\n', p->blen);
	size_t n, k, j = 0;

	if (!nl && p->blen < sizeof(p->buf) - 1 && (p->out_fd >= 0 || p->blen == 0))
		return 0;
	n = nl ? (size_t)(nl - p->buf) : p->blen;
	for (k = 0; k < n && j + 1 < len; k++)
		if (p->buf[k] != '\r')
			line[j++] = p->buf[k];
	line[j] = 0;
	n += nl ? 1 : 0;
	memmove(p->buf, p->buf + n, p->blen - n);
	p->blen -= n;
	fprintf(stderr, "%s: %s\n", p->tag ? p->tag : "proc", line);
	return 1;
}

static void fill(struct vm_proc *p, int ms)
{
	struct pollfd pf = {.fd = p->out_fd, .events = POLLIN};
	ssize_t n;

	if (p->out_fd < 0 || poll(&pf, 1, ms) <= 0)
		return;
	n = read(p->out_fd, p->buf + p->blen, sizeof(p->buf) - 1 - p->blen);
	if (n > 0) {
		p->blen += (size_t)n;
	} else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
		close(p->out_fd);
		p->out_fd = -1;
	}
}

int vm_proc_line(struct vm_proc *p, int timeout_ms, char *line, size_t len)
{
	double end = now_s() + timeout_ms / 1000.0;
	char tmp[4096];

	if (!line) {
		line = tmp;
		len = sizeof(tmp);
	}
	for (;;) {
		int left;

		if (take(p, line, len))
			return 0;
		if (p->out_fd < 0)
			return -ECHILD;
		if (now_s() >= end)
			return -ETIMEDOUT;
		left = (int)((end - now_s()) * 1000) + 1;
		fill(p, left > 100 ? 100 : left);
	}
}

int vm_proc_expect(struct vm_proc *p, const char *needle, int timeout_ms, char *line, size_t len)
{
	double end = now_s() + timeout_ms / 1000.0;
	char tmp[4096];

	for (;;) {
		int left = (int)((end - now_s()) * 1000), r;

		if (left < 0)
			left = 0;
		r = vm_proc_line(p, left, tmp, sizeof(tmp));
		if (r < 0) {
			vm_log("%s: no '%s' within %d ms (%s)", p->tag ? p->tag : "proc", needle,
			       timeout_ms, r == -ECHILD ? "it exited" : "timeout");
			return r;
		}
		if (strstr(tmp, needle)) {
			if (line && len)
				snprintf(line, len, "%s", tmp);
			return 0;
		}
	}
}

static int code(int st)
{
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int vm_proc_wait(struct vm_proc *p, int timeout_ms)
{
	double end = now_s() + timeout_ms / 1000.0;
	char tmp[4096];
	int st;

	for (;;) {
		while (take(p, tmp, sizeof(tmp)))
			;
		if (p->pid <= 0)
			return code(p->status);
		if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
			p->pid = 0;
			p->status = st;
			/* drain what is left */
			while (p->out_fd >= 0)
				fill(p, 100);
			while (take(p, tmp, sizeof(tmp)))
				;
			return code(st);
		}
		if (now_s() >= end)
			return -ETIMEDOUT;
		if (p->out_fd >= 0)
			fill(p, 20);
		else
			usleep(10000);
	}
}

void vm_proc_free(struct vm_proc *p)
{
	if (!p)
		return;
	if (p->pid > 0) {
		kill(p->pid, SIGKILL);
		waitpid(p->pid, &p->status, 0);
		p->pid = 0;
	}
	if (p->out_fd >= 0)
		close(p->out_fd);
	p->out_fd = -1;
}

int vm_server_start(struct vm_proc *p, char *addr, size_t len)
{
	const char *argv[] = {server_bin(), "1G", "--listen", "127.0.0.1:0", NULL};
	char line[512];
	const char *a;
	int r;

	r = vm_proc_start(p, "memory-server", argv);
	if (r < 0)
		return r;
	r = vm_proc_expect(p, "listening on ", 10000, line, sizeof(line));
	if (r < 0)
		return r;
	a = strstr(line, "listening on ") + 13;
	snprintf(addr, len, "%.*s", (int)strcspn(a, " \t"), a);
	return vm_proc_expect(p, "ready", 10000, NULL, 0);
}

int vm_run_cmd(const char *const *argv, int timeout_ms, char *out, size_t len)
{
	struct vm_proc p;
	char line[4096];
	size_t o = 0;
	double end = now_s() + timeout_ms / 1000.0;
	int r;

	if (out && len)
		out[0] = 0;
	r = vm_proc_start(&p, "cmd", argv);
	if (r < 0)
		return r;
	for (;;) {
		r = vm_proc_line(&p, 100, line, sizeof(line));
		if (r == 0) {
			if (out && o + strlen(line) + 2 < len)
				o += (size_t)snprintf(out + o, len - o, "%s\n", line);
			continue;
		}
		if (r == -ECHILD)
			break;
		if (now_s() >= end) {
			vm_log("%s did not finish within %d ms: killing it", argv[0], timeout_ms);
			vm_proc_free(&p);
			return -ETIMEDOUT;
		}
	}
	r = vm_proc_wait(&p, (int)((end - now_s()) * 1000) + 1000);
	vm_proc_free(&p);
	return r;
}

pid_t vm_agent_qemu_pid(const char *line)
{
	const char *p = strstr(line, "QEMU pid ");

	return p ? (pid_t)atoi(p + 9) : 0;
}

int vm_agent_boot(const char *prefix, const char *run, const char *after, struct vm **vm,
		  char *line, size_t len)
{
	struct vm_opts o = {0};
	int r;

	o.ram_file = "none";
	o.prefix = prefix;
	o.mem = "256M";
	o.run = run;
	o.after = after;
	o.timeout_s = 80;
	r = vm_start(&o, vm);
	if (r < 0) {
		vm_log("QEMU did not start");
		return r;
	}
	r = vm_expect(*vm, "QEMU pid", 30000, line, len);
	if (r < 0)
		vm_log("the agent did not start QEMU");
	return r;
}

int vm_agent_memloop_prepare(struct vm_memloop *ml, unsigned rounds, unsigned size_mb,
			     uint64_t seed, unsigned keep, char *rundir, size_t len)
{
	char why[512];

	if (vm_agent_available(why, sizeof(why)) < 0)
		return vm_skip("%s", why);
	if (vm_memloop_init(ml, rounds, size_mb, seed, keep) < 0)
		return vm_skip("cannot compute md5 on the host (md5sum missing?)");
	if (vm_agent_rundir(rundir, len) < 0)
		return vm_skip("cannot make a control directory in /tmp");
	return 0;
}
