/* SPDX-License-Identifier: MIT */
/*
 * vm_harness.c: see vm_harness.h. QEMU's stdout and stderr share one pipe
 * that is read only when a test waits (vm_expect, vm_wait); QEMU writes
 * little, and a guest that blocks on a full pipe only waits until the test
 * reads again. stdin is a pipe too, so tests can type (the seed's "press
 * ENTER").
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pipe2 */
#endif
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pattern.h"
#include "vm_harness.h"

#ifndef SDRSA_RUN_GUEST_DEFAULT
#define SDRSA_RUN_GUEST_DEFAULT "guest/run-guest.sh"
#endif
#ifndef SDRSA_GUEST_DIR_DEFAULT
#define SDRSA_GUEST_DIR_DEFAULT "build/guest"
#endif

#define LINE_MAX_BYTES 4096

struct vm {
	pid_t pid;              /* QEMU (or the wrapper); 0 once reaped */
	int status;             /* wait status once reaped */
	int in_fd;              /* write end of QEMU's stdin */
	int out_fd;             /* read end of QEMU's stdout+stderr; -1 at EOF */
	int ram_fd;             /* the RAM file, opened on first use */
	char *ram_path;         /* NULL for anonymous RAM */
	uint64_t ram_bytes;
	int quiet;
	int keep_ram_path;      /* do not unlink ram_path before vm_free() */
	double t0;              /* vm_start() time, monotonic seconds */
	double deadline;        /* QEMU is killed at this time */
	char buf[LINE_MAX_BYTES]; /* console bytes not yet returned as lines */
	size_t blen;
};

/* For the signal handlers: the newest VM. */
static volatile pid_t sig_pid;
static char sig_ram[256];

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void vm_log(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("vm: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

int vm_skip(const char *fmt, ...)
{
	va_list ap;
	int ci = getenv("CI") && *getenv("CI");

	va_start(ap, fmt);
	fprintf(stderr, "vm: %s: ", ci ? "FAIL (skip on CI)" : "SKIP");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	return ci ? VM_FAIL : VM_SKIP;
}

int vm_parse_u64(const char *line, const char *key, uint64_t *out)
{
	const char *p = strstr(line, key);
	char *end;
	unsigned long long v;

	if (!p)
		return -EINVAL;
	p += strlen(key);
	errno = 0;
	v = strtoull(p, &end, 0);
	if (errno || end == p)
		return -EINVAL;
	*out = v;
	return 0;
}

static const char *run_guest_path(void)
{
	const char *s = getenv("SDRSA_RUN_GUEST");

	return s && *s ? s : SDRSA_RUN_GUEST_DEFAULT;
}

static const char *guest_dir(void)
{
	const char *s = getenv("SDRSA_GUEST_DIR");

	return s && *s ? s : SDRSA_GUEST_DIR_DEFAULT;
}

static int in_path(const char *prog)
{
	const char *path = getenv("PATH");
	char buf[4096];

	if (!path)
		path = "/usr/bin:/bin";
	while (*path) {
		size_t n = strcspn(path, ":");

		snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, path, prog);
		if (access(buf, X_OK) == 0)
			return 1;
		path += n + (path[n] == ':');
	}
	return 0;
}

int vm_available(char *why, size_t len)
{
	char env[4096];

	if (!in_path("qemu-system-x86_64")) {
		snprintf(why, len, "qemu-system-x86_64 is not installed (guest/build.sh installs it)");
		return -ENOENT;
	}
	if (access(run_guest_path(), X_OK) != 0) {
		snprintf(why, len, "%s is missing or not executable", run_guest_path());
		return -ENOENT;
	}
	snprintf(env, sizeof(env), "%s/guest.env", guest_dir());
	if (access(env, R_OK) != 0) {
		const char *log = getenv("SDRSA_GUEST_BUILD_LOG");

		snprintf(why, len, "the guest is not built (%s missing): run guest/build.sh%s%s", env,
			 log && *log ? "; its last output is in " : "", log && *log ? log : "");
		return -ENOENT;
	}
	return 0;
}

static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);

	if (end == s)
		return -EINVAL;
	if (*end == 'M' && !end[1])
		v <<= 20;
	else if (*end == 'G' && !end[1])
		v <<= 30;
	else
		return -EINVAL;
	*out = v;
	return 0;
}

static void on_fatal_signal(int sig)
{
	pid_t p = sig_pid;

	if (p > 0)
		kill(p, SIGKILL);
	if (sig_ram[0])
		unlink(sig_ram);
	signal(sig, SIG_DFL);
	raise(sig);
}

static void on_alarm(int sig)
{
	pid_t p = sig_pid;

	(void)sig;
	if (p > 0)
		kill(p, SIGKILL);
}

int vm_start(const struct vm_opts *o, struct vm **ret)
{
	static int seq;
	const char *argv[64];
	int in[2] = { -1, -1 }, out[2] = { -1, -1 };
	const char *mem = o->mem ? o->mem : "256M";
	char ram[256];
	struct vm *vm;
	int argc = 0, i, err;
	pid_t pid;

	vm = calloc(1, sizeof(*vm));
	if (!vm)
		return -ENOMEM;
	vm->in_fd = vm->out_fd = vm->ram_fd = -1;
	vm->quiet = o->quiet;
	vm->keep_ram_path = o->keep_ram_path;
	if (parse_size(mem, &vm->ram_bytes) < 0) {
		vm_log("bad guest memory size '%s' (want like 256M)", mem);
		free(vm);
		return -EINVAL;
	}
	if (!o->ram_file)
		snprintf(ram, sizeof(ram), "/dev/shm/sdrsa-vm-%d-%d", (int)getpid(), seq++);
	else
		snprintf(ram, sizeof(ram), "%s", o->ram_file);
	if (strcmp(ram, "none") != 0) {
		vm->ram_path = strdup(ram);
		if (!vm->ram_path) {
			free(vm);
			return -ENOMEM;
		}
	}

	argv[argc++] = run_guest_path();
	argv[argc++] = "--exec";
	argv[argc++] = "--dir";
	argv[argc++] = guest_dir();
	argv[argc++] = "--mem";
	argv[argc++] = mem;
	argv[argc++] = "--ram-file";
	argv[argc++] = ram;
	if (o->run) {
		argv[argc++] = "--run";
		argv[argc++] = o->run;
	}
	if (o->after) {
		argv[argc++] = "--after";
		argv[argc++] = o->after;
	}
	if (o->append) {
		argv[argc++] = "--append";
		argv[argc++] = o->append;
	}
	if (o->prefix) {
		argv[argc++] = "--prefix";
		argv[argc++] = o->prefix;
	}
	argv[argc++] = "--";
	for (i = 0; o->extra && o->extra[i] && argc < 63; i++)
		argv[argc++] = o->extra[i];
	argv[argc] = NULL;

	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0) {
		err = -errno;
		goto out_err;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		err = -errno;
		goto out_err;
	}
	if (pid == 0) {
		/* QEMU must not outlive the test, whatever kills the test. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(in[0], 0);
		dup2(out[1], 1);
		dup2(out[1], 2);
		execv(argv[0], (char *const *)argv);
		fprintf(stderr, "vm: cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	vm->pid = pid;
	vm->in_fd = in[1];
	vm->out_fd = out[0];
	vm->t0 = now();
	vm->deadline = vm->t0 + (o->timeout_s > 0 ? o->timeout_s : 50);

	sig_pid = pid;
	snprintf(sig_ram, sizeof(sig_ram), "%s", vm->ram_path ? vm->ram_path : "");
	signal(SIGTERM, on_fatal_signal);
	signal(SIGINT, on_fatal_signal);
	signal(SIGHUP, on_fatal_signal);
	signal(SIGALRM, on_alarm);
	signal(SIGPIPE, SIG_IGN);
	alarm((unsigned)(vm->deadline - vm->t0) + 1);

	vm_log("started pid %d, %s RAM in %s, limit %.0f s", (int)pid, mem,
	       vm->ram_path ? vm->ram_path : "anonymous memory", vm->deadline - vm->t0);
	*ret = vm;
	return 0;

out_err:
	vm_log("cannot start QEMU: %s", strerror(-err));
	for (i = 0; i < 2; i++) {
		if (in[i] >= 0)
			close(in[i]);
		if (out[i] >= 0)
			close(out[i]);
	}
	free(vm->ram_path);
	free(vm);
	return err;
}

/* Hand out the first complete line in buf (or everything at EOF). Returns 1
 * and the line, 0 when there is none yet. */
static int take_line(struct vm *vm, char *line, size_t len)
{
	char *nl = memchr(vm->buf, '\n', vm->blen);
	size_t n, k, j = 0;

	if (!nl && vm->blen < sizeof(vm->buf) - 1 && (vm->out_fd >= 0 || vm->blen == 0))
		return 0;
	n = nl ? (size_t)(nl - vm->buf) : vm->blen;
	for (k = 0; k < n && j + 1 < len; k++) {
		unsigned char c = (unsigned char)vm->buf[k];

		if (c == '\r')
			continue;
		line[j++] = (c >= 0x20 && c < 0x7f) || c == '\t' ? (char)c : '?';
	}
	line[j] = 0;
	n += nl ? 1 : 0;
	memmove(vm->buf, vm->buf + n, vm->blen - n);
	vm->blen -= n;
	if (!vm->quiet)
		fprintf(stderr, "console: %s\n", line);
	return 1;
}

static int ram_open(struct vm *vm);

/* QEMU has created and mapped its RAM file once it prints anything: keep
 * our own descriptor and remove the name, unless told to keep it. */
static void ram_grab(struct vm *vm)
{
	if (vm->keep_ram_path || !vm->ram_path || vm->ram_fd >= 0)
		return;
	if (ram_open(vm) < 0)
		return; /* a wrapper may create it later; vm_read_phys retries */
	unlink(vm->ram_path);
	if (!strcmp(sig_ram, vm->ram_path))
		sig_ram[0] = 0;
	free(vm->ram_path);
	vm->ram_path = NULL;
}

/* Read what QEMU has written, waiting up to ms. Returns 0, or -ECHILD at EOF. */
static int fill(struct vm *vm, int ms)
{
	struct pollfd p = { .fd = vm->out_fd, .events = POLLIN };
	ssize_t n;

	if (vm->out_fd < 0)
		return -ECHILD;
	if (poll(&p, 1, ms < 0 ? 0 : ms) <= 0)
		return 0;
	n = read(vm->out_fd, vm->buf + vm->blen, sizeof(vm->buf) - 1 - vm->blen);
	if (n > 0) {
		vm->blen += (size_t)n;
		ram_grab(vm);
		return 0;
	}
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return 0;
	close(vm->out_fd);
	vm->out_fd = -1;
	return -ECHILD;
}

static void kill_if_late(struct vm *vm)
{
	if (vm->pid > 0 && now() >= vm->deadline) {
		vm_log("the VM ran past its %.0f s limit: killing QEMU", vm->deadline - vm->t0);
		kill(vm->pid, SIGKILL);
	}
}

int vm_expect(struct vm *vm, const char *needle, int timeout_ms, char *line, size_t len)
{
	double end = now() + timeout_ms / 1000.0;
	char tmp[LINE_MAX_BYTES];
	int left;

	for (;;) {
		while (take_line(vm, tmp, sizeof(tmp))) {
			if (strstr(tmp, needle)) {
				if (line && len)
					snprintf(line, len, "%s", tmp);
				return 0;
			}
		}
		if (vm->out_fd < 0) {
			vm_log("QEMU exited before printing '%s'", needle);
			return -ECHILD;
		}
		if (now() >= end) {
			vm_log("no '%s' on the console within %d ms", needle, timeout_ms);
			return -ETIMEDOUT;
		}
		kill_if_late(vm);
		left = (int)((end - now()) * 1000) + 1;
		fill(vm, left > 200 ? 200 : left);
	}
}

int vm_send(struct vm *vm, const char *text)
{
	size_t len = strlen(text), off = 0;

	while (off < len) {
		ssize_t n = write(vm->in_fd, text + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		off += (size_t)n;
	}
	return 0;
}

static int ram_open(struct vm *vm)
{
	if (vm->ram_fd >= 0)
		return 0;
	if (!vm->ram_path)
		return -ENOENT;
	vm->ram_fd = open(vm->ram_path, O_RDWR | O_CLOEXEC);
	return vm->ram_fd < 0 ? -errno : 0;
}

int64_t vm_gpa_to_offset(const struct vm *vm, uint64_t gpa)
{
	/* hw/i386/pc_piix.c: below_4g = ram < 3.5 GiB ? ram : 3 GiB (gigabyte_align). */
	uint64_t low = vm->ram_bytes < 0xe0000000ULL ? vm->ram_bytes : 0xc0000000ULL;

	if (gpa < low)
		return (int64_t)gpa;
	if (gpa >= (1ULL << 32) && gpa - (1ULL << 32) < vm->ram_bytes - low)
		return (int64_t)(gpa - (1ULL << 32) + low);
	return -ERANGE;
}

/* The file offset of [gpa, gpa + len), or -ERANGE. */
static int64_t range_offset(const struct vm *vm, uint64_t gpa, size_t len)
{
	int64_t a = vm_gpa_to_offset(vm, gpa);

	if (a < 0 || len == 0)
		return a < 0 ? a : -ERANGE;
	if (vm_gpa_to_offset(vm, gpa + len - 1) != a + (int64_t)len - 1)
		return -ERANGE;
	return a;
}

/* len bytes at guest-physical gpa: pread into rbuf, or pwrite wbuf when
 * rbuf is NULL. */
static int phys_io(struct vm *vm, uint64_t gpa, void *rbuf, const void *wbuf, size_t len)
{
	int64_t base = range_offset(vm, gpa, len);
	size_t off = 0;
	int err;

	if (base < 0)
		return (int)base;
	err = ram_open(vm);
	if (err < 0)
		return err;
	while (off < len) {
		off_t at = (off_t)base + (off_t)off;
		ssize_t n = rbuf ? pread(vm->ram_fd, (char *)rbuf + off, len - off, at)
				 : pwrite(vm->ram_fd, (const char *)wbuf + off, len - off, at);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		off += (size_t)n;
	}
	return 0;
}

int vm_read_phys(struct vm *vm, uint64_t gpa, void *buf, size_t len)
{
	return phys_io(vm, gpa, buf, NULL, len);
}

int vm_write_phys(struct vm *vm, uint64_t gpa, const void *buf, size_t len)
{
	return phys_io(vm, gpa, NULL, buf, len);
}

static int reap(struct vm *vm, int block)
{
	int st;
	pid_t r;

	if (vm->pid <= 0)
		return 1;
	do
		r = waitpid(vm->pid, &st, block ? 0 : WNOHANG);
	while (r < 0 && errno == EINTR);
	if (r == vm->pid || (r < 0 && errno == ECHILD)) {
		vm->status = r == vm->pid ? st : 0;
		vm->pid = 0;
		if (sig_pid == r)
			sig_pid = 0;
		return 1;
	}
	return 0;
}

static int exit_code(int st)
{
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int vm_wait(struct vm *vm, int timeout_ms)
{
	double end = now() + timeout_ms / 1000.0;
	char tmp[LINE_MAX_BYTES];

	for (;;) {
		while (take_line(vm, tmp, sizeof(tmp)))
			;
		if (vm->out_fd < 0 && reap(vm, 0))
			return exit_code(vm->status);
		if (now() >= end) {
			vm_log("QEMU still runs after %d ms", timeout_ms);
			return -ETIMEDOUT;
		}
		kill_if_late(vm);
		if (vm->out_fd >= 0)
			fill(vm, 100);
		else
			usleep(10000);
	}
}

uint64_t vm_ram_bytes(const struct vm *vm)
{
	return vm->ram_bytes;
}

const char *vm_ram_path(const struct vm *vm)
{
	return vm->ram_path;
}

pid_t vm_pid(const struct vm *vm)
{
	return vm->pid;
}

double vm_seconds(const struct vm *vm)
{
	return now() - vm->t0;
}

void vm_free(struct vm *vm)
{
	int i;

	if (!vm)
		return;
	if (vm->pid > 0 && !reap(vm, 0)) {
		kill(vm->pid, SIGTERM);
		for (i = 0; i < 200 && !reap(vm, 0); i++)
			usleep(10000);
		if (vm->pid > 0) {
			kill(vm->pid, SIGKILL);
			reap(vm, 1);
		}
	}
	alarm(0);
	if (vm->in_fd >= 0)
		close(vm->in_fd);
	if (vm->out_fd >= 0)
		close(vm->out_fd);
	if (vm->ram_fd >= 0)
		close(vm->ram_fd);
	if (vm->ram_path) {
		unlink(vm->ram_path);
		if (!strcmp(sig_ram, vm->ram_path))
			sig_ram[0] = 0;
	}
	free(vm->ram_path);
	free(vm);
}

int vm_host_md5(uint64_t seed, unsigned size_mb, char out[33])
{
	static unsigned char chunk[1 << 16];
	char path[] = "/tmp/sdrsa-vm-md5-XXXXXX", cmd[128];
	uint64_t off;
	FILE *f, *p;
	int fd, ok;

	fd = mkstemp(path);
	if (fd < 0)
		return -errno;
	f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		unlink(path);
		return -ENOMEM;
	}
	for (off = 0; off < (uint64_t)size_mb << 20; off += sizeof(chunk)) {
		sdrsa_pattern_fill(chunk, sizeof(chunk), seed, off);
		fwrite(chunk, 1, sizeof(chunk), f);
	}
	ok = fclose(f) == 0;
	snprintf(cmd, sizeof(cmd), "md5sum %s", path);
	p = ok ? popen(cmd, "r") : NULL;
	ok = p && fscanf(p, "%32s", out) == 1 && strlen(out) == 32;
	if (p)
		pclose(p);
	unlink(path);
	return ok ? 0 : -EIO;
}

int vm_memloop_init(struct vm_memloop *m, unsigned rounds, unsigned size_mb, uint64_t seed,
		    unsigned keep)
{
	int rc;

	if (rounds < 1 || rounds > VM_MEMLOOP_MAX_ROUNDS || keep < 1)
		return -EINVAL;
	memset(m, 0, sizeof(*m));
	m->rounds = rounds;
	m->size_mb = size_mb;
	m->seed = seed;
	m->keep = keep;
	/* Round r rechecks the files of rounds r-keep+1..r. */
	for (unsigned r = 1; r <= rounds; r++)
		m->want_checks += (int)(r < keep ? r : keep);
	for (unsigned r = 1; r <= rounds; r++) {
		rc = vm_host_md5(seed + r, size_mb, m->md5[r]);
		if (rc < 0)
			return rc;
	}
	return 0;
}

void vm_memloop_cmd(const struct vm_memloop *m, char *buf, size_t len)
{
	snprintf(buf, len, "sdrsa-memloop %u %uM %llu %u", m->rounds, m->size_mb,
		 (unsigned long long)m->seed, m->keep);
}

int vm_memloop_line(struct vm_memloop *m, const char *line)
{
	const char *p = strstr(line, "md5=");
	char got[33];
	uint64_t round, seed, file, size;

	if (strstr(line, "memloop done")) {
		if (!strstr(line, "mismatches=0")) {
			vm_log("the guest found mismatches: %s", line);
			return -EINVAL;
		}
		if (m->writes != (int)m->rounds || m->checks != m->want_checks) {
			vm_log("%d writes and %d rechecks, want %u and %d", m->writes, m->checks,
			       m->rounds, m->want_checks);
			return -EINVAL;
		}
		return 1;
	}
	if (!p || sscanf(p, "md5=%32s", got) != 1) {
		vm_log("no md5 in '%s'", line);
		return -EINVAL;
	}
	if (vm_parse_u64(line, "round=", &round) < 0 || round < 1 || round > m->rounds) {
		vm_log("bad round in '%s'", line);
		return -EINVAL;
	}
	if (vm_parse_u64(line, "seed=", &seed) < 0) {
		vm_log("no seed in '%s'", line);
		return -EINVAL;
	}
	if (strstr(line, "memloop write ")) {
		file = round;
		if (vm_parse_u64(line, "size=", &size) < 0 || size != (uint64_t)m->size_mb << 20) {
			vm_log("short file: %s", line);
			return -EINVAL;
		}
		m->writes++;
	} else {
		if (vm_parse_u64(line, "file=", &file) < 0 || file < 1 || file > round) {
			vm_log("bad file in '%s'", line);
			return -EINVAL;
		}
		if (!strstr(line, " ok")) {
			vm_log("the guest found a mismatch: %s", line);
			return -EINVAL;
		}
		m->checks++;
	}
	if (seed != m->seed + file) {
		vm_log("file %llu has seed %llu", (unsigned long long)file,
		       (unsigned long long)seed);
		return -EINVAL;
	}
	if (strcmp(got, m->md5[file])) {
		vm_log("md5 mismatch for file %llu in round %llu: guest %s, host %s",
		       (unsigned long long)file, (unsigned long long)round, got, m->md5[file]);
		return -EINVAL;
	}
	return 0;
}
