/* SPDX-License-Identifier: MIT */
/*
 * Integration test harness; see harness.h for the contract with the tests
 * and with the memory-server binary. Single-threaded from the tests' point of
 * view, except for one thread per running server that drains its stdout.
 * Helpers that talk to a server never print on success and log one line
 * with context on failure.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "common/util.h"
#include "harness.h"

static const char *server_bin;
static char tmpdir[64];
static int n_pass, n_fail, n_skip, n_violations;
static const char *current_test = "";

/* Servers still running, killed at exit (even if their struct h_server
 * lived on a stack frame that is gone). */
#define MAX_SERVERS 64
static pid_t live[MAX_SERVERS];

static void live_add(pid_t pid)
{
	for (int i = 0; i < MAX_SERVERS; i++)
		if (!live[i]) {
			live[i] = pid;
			return;
		}
}

static void live_del(pid_t pid)
{
	for (int i = 0; i < MAX_SERVERS; i++)
		if (live[i] == pid)
			live[i] = 0;
}

/* ---- reporting ---- */

void h_log(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "# ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

void h_check_failed(const char *file, int line, const char *expr, const char *fmt, ...)
{
	fprintf(stderr, "FAILED %s:%d [%s]: %s", file, line, current_test, expr);
	if (fmt) {
		va_list ap;
		fputs(": ", stderr);
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
	}
	fputc('\n', stderr);
}

static void violation(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void violation(const char *fmt, ...)
{
	va_list ap;

	n_violations++;
	fprintf(stderr, "PROTOCOL VIOLATION [%s]: ", current_test);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int h_skip(const char *fmt, ...)
{
	const char *ci = getenv("CI");
	va_list ap;

	fprintf(stderr, "# skip [%s]: ", current_test);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (ci && *ci) {
		fprintf(stderr, "# CI is set: a missing feature is a failure\n");
		return H_FAIL;
	}
	return H_SKIP;
}

uint64_t h_now_ms(void)
{
	return sdrsa_now_ms();
}

void h_sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ---- setup and teardown ---- */

static void remove_tmpdir(void)
{
	DIR *d;
	struct dirent *de;
	char p[512];

	if (!tmpdir[0])
		return;
	d = opendir(tmpdir);
	if (d) {
		while ((de = readdir(d))) {
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			snprintf(p, sizeof(p), "%s/%s", tmpdir, de->d_name);
			unlink(p);
		}
		closedir(d);
	}
	rmdir(tmpdir);
	tmpdir[0] = '\0';
}

static void kill_servers(void)
{
	for (int i = 0; i < MAX_SERVERS; i++)
		if (live[i] > 0) {
			kill(live[i], SIGKILL);
			waitpid(live[i], NULL, 0);
			live[i] = 0;
		}
}

static void at_exit(void)
{
	kill_servers();
	remove_tmpdir();
}

void h_init(int argc, char **argv)
{
	if (argc > 1 && argv[1][0] != '-')
		server_bin = argv[1];
	else
		server_bin = getenv("SDRSA_MEMORY_SERVER");
	if (!server_bin || access(server_bin, X_OK) != 0) {
		fprintf(stderr, "usage: %s MEMORY_SERVER_BINARY (or set SDRSA_MEMORY_SERVER)\n",
			argv[0]);
		exit(1);
	}
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (sodium_init() < 0) {
		fprintf(stderr, "libsodium init failed\n");
		exit(1);
	}
	strcpy(tmpdir, "/tmp/sdrsa-it-XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		exit(1);
	}
	atexit(at_exit);
}

const char *h_tmpdir(void)
{
	return tmpdir;
}

const char *h_server_bin(void)
{
	return server_bin;
}

int h_raise_nofile(unsigned long n)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -errno;
	if (rl.rlim_cur >= n)
		return 0;
	if (rl.rlim_max < n) {
		rl.rlim_max = n;
		rl.rlim_cur = n;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			return -errno;
		return 0;
	}
	rl.rlim_cur = n;
	return setrlimit(RLIMIT_NOFILE, &rl) < 0 ? -errno : 0;
}

void h_run(const char *name, int (*fn)(void))
{
	uint64_t t0 = h_now_ms();
	int rc;

	current_test = name;
	printf("# subtest %s\n", name);
	fflush(stdout);
	rc = fn();
	if (rc == H_PASS) {
		n_pass++;
		printf("ok %s (%llu ms)\n", name, (unsigned long long)(h_now_ms() - t0));
	} else if (rc == H_SKIP) {
		n_skip++;
		printf("skip %s\n", name);
	} else {
		n_fail++;
		printf("FAIL %s\n", name);
	}
	fflush(stdout);
	current_test = "";
}

int h_finish(void)
{
	kill_servers();
	remove_tmpdir();
	if (n_violations)
		printf("# %d protocol violation(s) in replies (see above)\n", n_violations);
	printf("# %d passed, %d failed, %d skipped\n", n_pass, n_fail, n_skip);
	if (n_fail || n_violations)
		return 1;
	if (n_skip && !n_pass)
		return 77;
	return 0;
}

/* ---- server process ---- */

/* The drain thread owns the read end of the server's stdout. */
struct drain {
	int fd;
	pid_t pid;
};

static void *drain_main(void *arg)
{
	struct drain *s = arg;
	char buf[4096];
	size_t used = 0;

	for (;;) {
		ssize_t r = read(s->fd, buf + used, sizeof(buf) - used - 1);
		char *nl, *p;

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		used += (size_t)r;
		buf[used] = '\0';
		p = buf;
		while ((nl = strchr(p, '\n'))) {
			*nl = '\0';
			fprintf(stderr, "server[%d]: %s\n", (int)s->pid, p);
			p = nl + 1;
		}
		used = (size_t)(buf + used - p);
		memmove(buf, p, used);
		if (used == sizeof(buf) - 1) {
			buf[used] = '\0';
			fprintf(stderr, "server[%d]: %s\n", (int)s->pid, buf);
			used = 0;
		}
	}
	if (used) {
		buf[used] = '\0';
		fprintf(stderr, "server[%d]: %s\n", (int)s->pid, buf);
	}
	close(s->fd);
	free(s);
	return NULL;
}

static pid_t spawn(const char *const *args, int out_fd, int err_fd)
{
	const char *argv[64];
	int n = 0;
	pid_t pid;

	argv[n++] = server_bin;
	for (; args && args[n - 1] && n < 63; n++)
		argv[n] = args[n - 1];
	argv[n] = NULL;

	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		/* the server dies with the test, even when the test is killed */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		signal(SIGPIPE, SIG_DFL);
		if (out_fd >= 0 && dup2(out_fd, 1) < 0)
			_exit(126);
		if (err_fd >= 0 && dup2(err_fd, 2) < 0)
			_exit(126);
		execv(server_bin, (char *const *)argv);
		_exit(127);
	}
	return pid;
}

static void log_cmd(const char *const *args)
{
	char line[1024];
	size_t n = (size_t)snprintf(line, sizeof(line), "$ %s", server_bin);

	for (int i = 0; args && args[i] && n < sizeof(line); i++)
		n += (size_t)snprintf(line + n, sizeof(line) - n, " %s", args[i]);
	h_log("%s", line);
}

int h_server_start(struct h_server *s, const char *const *args)
{
	int pfd[2];
	char buf[8192];
	size_t used = 0;
	uint64_t deadline = h_now_ms() + 15000;
	int ready = 0;

	memset(s, 0, sizeof(*s));
	s->out_fd = -1;
	log_cmd(args);
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	s->pid = spawn(args, pfd[1], -1);
	close(pfd[1]);
	if (s->pid < 0) {
		int e = s->pid;
		close(pfd[0]);
		s->pid = 0;
		return e;
	}
	s->out_fd = pfd[0];
	live_add(s->pid);

	while (!ready) {
		struct pollfd p = { .fd = s->out_fd, .events = POLLIN };
		int64_t left = (int64_t)(deadline - h_now_ms());
		ssize_t r;
		char *nl, *line;

		if (left <= 0) {
			h_log("server did not print \"ready\" within 15 s");
			h_server_stop(s, SIGKILL, 2000);
			return -ETIMEDOUT;
		}
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		r = read(s->out_fd, buf + used, sizeof(buf) - used - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			int st;
			h_log("server exited before \"ready\"");
			st = h_server_stop(s, SIGKILL, 2000);
			if (st >= 0 && WIFEXITED(st))
				h_log("server exit status %d", WEXITSTATUS(st));
			else if (st >= 0 && WIFSIGNALED(st))
				h_log("server killed by signal %d", WTERMSIG(st));
			return -ECONNREFUSED;
		}
		used += (size_t)r;
		buf[used] = '\0';
		line = buf;
		while (!ready && (nl = strchr(line, '\n'))) {
			*nl = '\0';
			fprintf(stderr, "server[%d]: %s\n", (int)s->pid, line);
			if (!strncmp(line, "listening on ", 13) && s->nlisten < H_MAX_LISTEN) {
				snprintf(s->listen[s->nlisten++], sizeof(s->listen[0]), "%.*s",
					 (int)sizeof(s->listen[0]) - 1, line + 13);
			} else if (!strncmp(line, "pool ", 5)) {
				snprintf(s->pool_line, sizeof(s->pool_line), "%.*s",
					 (int)sizeof(s->pool_line) - 1, line);
			} else if (!strcmp(line, "ready")) {
				ready = 1;
			}
			line = nl + 1;
		}
		used = (size_t)(buf + used - line);
		memmove(buf, line, used);
		if (used == sizeof(buf) - 1)
			used = 0;
	}
	/* output that came with "ready" in the same read */
	if (used) {
		buf[used] = '\0';
		fprintf(stderr, "server[%d]: %s", (int)s->pid, buf);
	}
	{
		struct drain *d = malloc(sizeof(*d));
		if (d) {
			d->fd = s->out_fd;
			d->pid = s->pid;
			if (pthread_create(&s->drain_thread, NULL, drain_main, d) == 0) {
				s->drain_started = 1;
				s->out_fd = -1; /* the thread's now */
			} else {
				free(d);
			}
		}
	}

	if (s->nlisten == 0) {
		h_log("server printed no \"listening on\" line");
		h_server_stop(s, SIGKILL, 2000);
		return -EPROTO;
	}
	if (!s->pool_line[0])
		h_log("warning: server printed no \"pool\" line");
	/* prefer TCP */
	for (int i = 0; i < s->nlisten; i++)
		if (strncmp(s->listen[i], "unix:", 5) && h_server_use_addr(s, s->listen[i]) == 0)
			return 0;
	for (int i = 0; i < s->nlisten; i++)
		if (h_server_use_addr(s, s->listen[i]) == 0)
			return 0;
	h_log("cannot parse listening address \"%s\"", s->listen[0]);
	h_server_stop(s, SIGKILL, 2000);
	return -EPROTO;
}

int h_server_use_addr(struct h_server *s, const char *addr)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int rc = sdrsa_parse_sockaddr(addr, SDRSA_DEFAULT_PORT, &ss, &len);

	if (rc)
		return rc;
	s->addr = ss;
	s->addr_len = len;
	snprintf(s->addr_str, sizeof(s->addr_str), "%s", addr);
	return 0;
}

int h_server_start_tcp(struct h_server *s, const char *size, const char *const *extra)
{
	const char *args[48];
	int n = 0;

	args[n++] = size;
	args[n++] = "--listen";
	args[n++] = "127.0.0.1:0";
	for (int i = 0; extra && extra[i] && n < 47; i++)
		args[n++] = extra[i];
	args[n] = NULL;
	return h_server_start(s, args);
}

int h_server_alive(struct h_server *s)
{
	int st;
	pid_t r;

	if (s->pid <= 0 || s->reaped)
		return 0;
	r = waitpid(s->pid, &st, WNOHANG);
	if (r == s->pid) {
		s->reaped = 1;
		s->status = st;
		live_del(s->pid);
		if (WIFSIGNALED(st))
			h_log("server %d died of signal %d", (int)s->pid, WTERMSIG(st));
		else
			h_log("server %d exited with status %d", (int)s->pid, WEXITSTATUS(st));
		return 0;
	}
	return r == 0;
}

static void reap_drain(struct h_server *s)
{
	if (s->drain_started) {
		pthread_join(s->drain_thread, NULL);
		s->drain_started = 0;
	}
	if (s->out_fd >= 0) {
		close(s->out_fd);
		s->out_fd = -1;
	}
}

/* State letter of a task from /proc/PID/task/TID/stat, or 0. */
static char task_state(const char *path)
{
	char buf[512], *p;
	FILE *f = fopen(path, "re");
	size_t n;

	if (!f)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p[2] : 0;
}

int h_server_pause(struct h_server *s)
{
	char dir[64];
	uint64_t deadline = h_now_ms() + 5000;

	if (s->pid <= 0 || kill(s->pid, SIGSTOP) < 0)
		return -ESRCH;
	snprintf(dir, sizeof(dir), "/proc/%d/task", (int)s->pid);
	while (h_now_ms() < deadline) {
		DIR *d = opendir(dir);
		struct dirent *de;
		int running = 0;

		if (!d)
			return -errno;
		while ((de = readdir(d))) {
			char path[64 + 256 + 8];
			char st;

			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s/stat", dir, de->d_name);
			st = task_state(path);
			if (st && st != 'T' && st != 't')
				running = 1;
		}
		closedir(d);
		if (!running)
			return 0;
		h_sleep_ms(1);
	}
	return -ETIMEDOUT;
}

int h_server_resume(struct h_server *s)
{
	return s->pid > 0 && kill(s->pid, SIGCONT) == 0 ? 0 : -ESRCH;
}

int h_server_stop(struct h_server *s, int sig, int timeout_ms)
{
	uint64_t deadline = h_now_ms() + (uint64_t)timeout_ms;

	if (s->pid <= 0)
		return -ESRCH;
	if (s->reaped) {
		reap_drain(s);
		return s->status;
	}
	kill(s->pid, SIGCONT);
	kill(s->pid, sig);
	for (;;) {
		int st;
		pid_t r = waitpid(s->pid, &st, WNOHANG);

		if (r == s->pid) {
			s->reaped = 1;
			s->status = st;
			live_del(s->pid);
			reap_drain(s);
			return st;
		}
		if (r < 0 && errno != EINTR) {
			int e = -errno;
			s->reaped = 1;
			live_del(s->pid);
			reap_drain(s);
			return e;
		}
		if (h_now_ms() >= deadline)
			break;
		h_sleep_ms(5);
	}
	h_log("server %d did not exit within %d ms of signal %d; killing it", (int)s->pid,
	      timeout_ms, sig);
	kill(s->pid, SIGKILL);
	waitpid(s->pid, &s->status, 0);
	s->reaped = 1;
	live_del(s->pid);
	reap_drain(s);
	return -ETIMEDOUT;
}

int h_run_server_cmd(const char *const *args, int timeout_ms, char *out, size_t out_n,
		     char *err, size_t err_n)
{
	int po[2], pe[2], st = 0;
	size_t no = 0, ne = 0;
	int open_fds = 2, done = 0;
	uint64_t deadline = h_now_ms() + (uint64_t)timeout_ms;
	pid_t pid;

	log_cmd(args);
	if (pipe2(po, O_CLOEXEC) < 0)
		return -errno;
	if (pipe2(pe, O_CLOEXEC) < 0) {
		close(po[0]);
		close(po[1]);
		return -errno;
	}
	pid = spawn(args, po[1], pe[1]);
	close(po[1]);
	close(pe[1]);
	if (pid < 0) {
		close(po[0]);
		close(pe[0]);
		return pid;
	}
	out[0] = err[0] = '\0';
	while (open_fds > 0) {
		struct pollfd p[2] = { { .fd = po[0], .events = POLLIN },
				       { .fd = pe[0], .events = POLLIN } };
		int64_t left = (int64_t)(deadline - h_now_ms());

		if (left <= 0)
			break;
		if (poll(p, 2, (int)left) <= 0)
			continue;
		for (int i = 0; i < 2; i++) {
			char tmp[1024];
			ssize_t r;
			char *dst = i ? err : out;
			size_t *used = i ? &ne : &no, cap = i ? err_n : out_n;

			if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			r = read(p[i].fd, tmp, sizeof(tmp));
			if (r <= 0) {
				close(i ? pe[0] : po[0]);
				if (i)
					pe[0] = -1;
				else
					po[0] = -1;
				open_fds--;
				continue;
			}
			for (ssize_t k = 0; k < r && *used + 1 < cap; k++)
				dst[(*used)++] = tmp[k];
			dst[*used] = '\0';
		}
	}
	while (h_now_ms() < deadline) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid) {
			done = 1;
			break;
		}
		h_sleep_ms(5);
	}
	if (po[0] >= 0)
		close(po[0]);
	if (pe[0] >= 0)
		close(pe[0]);
	if (!done) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
		return -ETIMEDOUT;
	}
	return st;
}

/* ---- raw connections ---- */

int h_socket(const struct h_server *s)
{
	int fd, one = 1;

	fd = socket(s->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (const struct sockaddr *)&s->addr, s->addr_len) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	if (s->addr.ss_family != AF_UNIX)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

int h_send(int fd, const void *buf, size_t n)
{
	const uint8_t *p = buf;

	while (n) {
		ssize_t r = send(fd, p, n, MSG_NOSIGNAL);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

uint64_t h_frame_csum(const struct sdrsa_hdr *h, const uint8_t *payload)
{
	/* docs/PROTOCOL.md: non-entry operations carry XXH3-64 of the whole
	 * payload, 0 for an empty one */
	if (!payload || (!h->len && !sdrsa_op_has_entries(h->opcode)))
		return 0;
	if (sdrsa_op_has_entries(h->opcode))
		return sdrsa_meta_csum(payload, MIN(sdrsa_meta_len(h), (size_t)h->len));
	return sdrsa_meta_csum(payload, h->len);
}

int h_send_frame(int fd, const struct sdrsa_hdr *h, const void *payload)
{
	uint8_t hb[SDRSA_HDR_SIZE];
	struct iovec iov[2];
	struct msghdr msg;
	size_t total = SDRSA_HDR_SIZE + (payload ? h->len : 0), sent = 0;

	sdrsa_hdr_encode(h, hb);
	if (!payload || !h->len)
		return h_send(fd, hb, sizeof(hb));
	/* one sendmsg for small frames, so the server sees them whole */
	while (sent < total) {
		ssize_t r;
		memset(&msg, 0, sizeof(msg));
		if (sent < SDRSA_HDR_SIZE) {
			iov[0].iov_base = hb + sent;
			iov[0].iov_len = SDRSA_HDR_SIZE - sent;
			iov[1].iov_base = (void *)payload;
			iov[1].iov_len = h->len;
			msg.msg_iovlen = 2;
		} else {
			iov[0].iov_base = (uint8_t *)payload + (sent - SDRSA_HDR_SIZE);
			iov[0].iov_len = total - sent;
			msg.msg_iovlen = 1;
		}
		msg.msg_iov = iov;
		r = sendmsg(fd, &msg, MSG_NOSIGNAL);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		sent += (size_t)r;
	}
	return 0;
}

void h_req(struct h_conn *c, struct sdrsa_hdr *h, uint8_t op, uint16_t count, uint32_t len,
	   const uint8_t *payload)
{
	memset(h, 0, sizeof(*h));
	h->version = SDRSA_PROTO_VERSION;
	h->opcode = op;
	h->req_id = ++c->next_id;
	h->count = count;
	h->ns = c->ns;
	h->len = len;
	h->csum = h_frame_csum(h, payload);
}

/* Read exactly n bytes before the deadline. */
static int read_deadline(int fd, uint8_t *buf, size_t n, uint64_t deadline)
{
	while (n) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int64_t left = (int64_t)(deadline - h_now_ms());
		ssize_t r;

		if (left <= 0)
			return -ETIMEDOUT;
		r = poll(&p, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			continue;
		r = recv(fd, buf, n, 0);
		if (r == 0)
			return -ECONNRESET;
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return errno == ECONNRESET || errno == EPIPE ? -ECONNRESET : -errno;
		}
		buf += r;
		n -= (size_t)r;
	}
	return 0;
}

static void check_reply(const struct sdrsa_hdr *h, const uint8_t *payload)
{
	if (!(h->flags & SDRSA_F_REPLY))
		violation("reply to %s without SDRSA_F_REPLY", sdrsa_op_name(h->opcode));
	if (h->status >= SDRSA_S__COUNT)
		violation("reply status %u is not in the enum", h->status);
	if (sdrsa_op_has_entries(h->opcode) && h->count > 0) {
		int rc = sdrsa_payload_check(h, payload);
		if (rc)
			violation("%s reply (status %s, count %u, len %u) fails payload check: %s",
				  sdrsa_op_name(h->opcode), sdrsa_status_name(h->status), h->count,
				  h->len, strerror(-rc));
	} else if (h->len == 0 ? h->csum != 0 && h->csum != sdrsa_meta_csum(payload, 0)
			       : h->csum != sdrsa_meta_csum(payload, h->len)) {
		/* docs/PROTOCOL.md: the csum of an empty payload is 0 */
		violation("%s reply (status %s, len %u) has a wrong header checksum",
			  sdrsa_op_name(h->opcode), sdrsa_status_name(h->status), h->len);
	}
}

static int recv_frame(int fd, struct sdrsa_hdr *h, uint8_t *buf, size_t cap, int timeout_ms,
		      int is_reply)
{
	uint64_t deadline = h_now_ms() + (uint64_t)timeout_ms;
	uint8_t hb[SDRSA_HDR_SIZE];
	int rc;

	rc = read_deadline(fd, hb, sizeof(hb), deadline);
	if (rc)
		return rc;
	rc = sdrsa_hdr_decode(hb, sizeof(hb), h);
	if (rc) {
		if (is_reply)
			violation("server sent a header the codec refuses: %s", strerror(-rc));
		return -EPROTO;
	}
	if (h->len > cap) {
		if (is_reply)
			violation("reply payload %u bigger than expected %zu", h->len, cap);
		return -EMSGSIZE;
	}
	rc = read_deadline(fd, buf, h->len, deadline);
	if (rc)
		return rc;
	if (is_reply)
		check_reply(h, buf);
	return 0;
}

int h_recv(int fd, struct sdrsa_hdr *h, uint8_t *buf, size_t cap, int timeout_ms)
{
	return recv_frame(fd, h, buf, cap, timeout_ms, 1);
}

int h_recv_request(int fd, struct sdrsa_hdr *h, uint8_t *buf, size_t cap, int timeout_ms)
{
	return recv_frame(fd, h, buf, cap, timeout_ms, 0);
}

int h_call(struct h_conn *c, struct sdrsa_hdr *req, const uint8_t *payload,
	   struct sdrsa_hdr *rep, uint8_t *buf, size_t cap)
{
	int rc = h_send_frame(c->fd, req, payload);

	if (rc)
		return rc;
	rc = h_recv(c->fd, rep, buf, cap, H_TIMEOUT_MS);
	if (rc)
		return rc;
	/* a server at its connection limit says BUSY as soon as it accepts,
	 * before any request: that answer carries req_id 0 */
	if (rep->req_id == 0 && rep->status == SDRSA_S_BUSY)
		return 0;
	if (rep->req_id != req->req_id) {
		violation("reply to %s req_id %u carries req_id %u", sdrsa_op_name(req->opcode),
			  req->req_id, rep->req_id);
		return -EPROTO;
	}
	return 0;
}

int h_wait_closed(int fd, int timeout_ms, uint64_t *elapsed_ms)
{
	uint64_t t0 = h_now_ms(), deadline = t0 + (uint64_t)timeout_ms;
	uint8_t scratch[4096];

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int64_t left = (int64_t)(deadline - h_now_ms());
		ssize_t r;

		if (left <= 0)
			return -ETIMEDOUT;
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		r = recv(fd, scratch, sizeof(scratch), MSG_DONTWAIT);
		if (r == 0 || (r < 0 && (errno == ECONNRESET || errno == EPIPE))) {
			if (elapsed_ms)
				*elapsed_ms = h_now_ms() - t0;
			return 0;
		}
		if (r > 0)
			return 1;
	}
}

/* h_recv of one reply whose payload does not matter: 0, -ENOMEM or h_recv's
 * error. */
static int recv_reply_hdr(int fd, struct sdrsa_hdr *h)
{
	uint8_t *buf = malloc(SDRSA_MAX_PAYLOAD);
	int rc;

	if (!buf)
		return -ENOMEM;
	rc = h_recv(fd, h, buf, SDRSA_MAX_PAYLOAD, H_TIMEOUT_MS);
	free(buf);
	return rc;
}

int h_expect_status(int fd, uint16_t status, int64_t req_id, int must_close, const char *what)
{
	struct sdrsa_hdr h;
	int rc = recv_reply_hdr(fd, &h);

	if (rc) {
		h_log("%s: expected a %s reply, got none (%s)", what, sdrsa_status_name(status),
		      strerror(-rc));
		return H_FAIL;
	}
	if (h.status != status) {
		h_log("%s: expected status %s, got %s (%u)", what, sdrsa_status_name(status),
		      sdrsa_status_name(h.status), h.status);
		return H_FAIL;
	}
	if (req_id >= 0 && h.req_id != (uint32_t)req_id) {
		violation("%s: %s reply carries req_id %u, request had %lld", what,
			  sdrsa_status_name(status), h.req_id, (long long)req_id);
	}
	if (must_close) {
		rc = h_wait_closed(fd, 3000, NULL);
		if (rc) {
			h_log("%s: the server did not close the connection after %s (%s)", what,
			      sdrsa_status_name(status), rc > 0 ? "sent more data" : "timeout");
			return H_FAIL;
		}
	}
	return H_PASS;
}

int h_expect_error_or_close(int fd, const char *what)
{
	struct sdrsa_hdr h;
	int rc = recv_reply_hdr(fd, &h);

	if (rc == -ECONNRESET)
		return H_PASS;
	if (rc) {
		h_log("%s: neither an error reply nor a close (%s)", what, strerror(-rc));
		return H_FAIL;
	}
	if (h.status == SDRSA_S_OK) {
		h_log("%s: the server answered OK", what);
		return H_FAIL;
	}
	h_log("%s: server answered %s", what, sdrsa_status_name(h.status));
	return H_PASS;
}

size_t h_hello(const char *name, uint8_t *out, uint8_t *nonce)
{
	struct sdrsa_hello hello;

	memset(&hello, 0, sizeof(hello));
	randombytes_buf(hello.nonce, sizeof(hello.nonce));
	snprintf(hello.name, sizeof(hello.name), "%s", name);
	if (nonce)
		memcpy(nonce, hello.nonce, sizeof(hello.nonce));
	return sdrsa_hello_encode(&hello, out);
}

int h_send_hello(struct h_conn *c, const char *name, struct sdrsa_hdr *req, uint8_t *nonce)
{
	uint8_t out[SDRSA_HELLO_MAX];
	size_t n = h_hello(name, out, nonce);

	h_req(c, req, SDRSA_OP_HELLO, 0, (uint32_t)n, out);
	return h_send_frame(c->fd, req, out);
}

/* One step of the handshake (HELLO or AUTH, named in *step when step is
 * not NULL): 0 with the reply in rep and in, the status the server refused
 * it with (> 0), or -errno. */
static int handshake_call(struct h_conn *c, uint8_t op, const uint8_t *payload, uint32_t len,
			  int *step, struct sdrsa_hdr *rep, uint8_t *in, size_t cap)
{
	struct sdrsa_hdr req;
	int rc;

	if (step)
		*step = op;
	h_req(c, &req, op, 0, len, payload);
	rc = h_call(c, &req, payload, rep, in, cap);
	if (rc)
		return rc;
	return rep->status != SDRSA_S_OK ? rep->status : 0;
}

int h_handshake(int fd, const char *name, const uint8_t *key, struct h_conn *c, int *step)
{
	struct sdrsa_challenge ch;
	struct sdrsa_welcome w;
	struct sdrsa_hdr rep;
	uint8_t out[SDRSA_HELLO_MAX], in[512], mac[SDRSA_MAC_SIZE], nonce[SDRSA_NONCE_SIZE];
	size_t n;
	int rc;

	memset(c, 0, sizeof(*c));
	c->fd = fd;
	snprintf(c->name, sizeof(c->name), "%s", name);
	n = h_hello(name, out, nonce);
	rc = handshake_call(c, SDRSA_OP_HELLO, out, (uint32_t)n, step, &rep, in, sizeof(in));
	if (rc > 0)
		return rc;
	if (rc < 0)
		goto fail;
	if (sdrsa_challenge_decode(in, rep.len, &ch)) {
		violation("HELLO reply is not a challenge (len %u)", rep.len);
		rc = -EPROTO;
		goto fail;
	}
	memcpy(c->server_nonce, ch.nonce, sizeof(ch.nonce));
	c->auth_required = ch.auth_required;
	if (key)
		sdrsa_auth_mac(key, 0, nonce, ch.nonce, name, mac);
	else
		memset(mac, 0, sizeof(mac));
	rc = handshake_call(c, SDRSA_OP_AUTH, mac, SDRSA_AUTH_SIZE, step, &rep, in, sizeof(in));
	if (rc > 0)
		return rc;
	if (rc < 0)
		goto fail;
	if (sdrsa_welcome_decode(in, rep.len, &w)) {
		violation("AUTH reply is not a welcome (len %u)", rep.len);
		rc = -EPROTO;
		goto fail;
	}
	if (key && ch.auth_required) {
		sdrsa_auth_mac(key, 1, nonce, ch.nonce, name, mac);
		if (sodium_memcmp(mac, w.mac, sizeof(mac))) {
			violation("server proof in WELCOME does not verify");
			rc = -EPROTO;
			goto fail;
		}
	}
	c->welcome = w;
	c->ns = rep.ns;
	return 0;
fail:
	close(fd);
	c->fd = -1;
	return rc;
}

int h_open(const struct h_server *s, const char *name, const uint8_t *key, struct h_conn *c)
{
	int fd = h_socket(s);
	int rc;

	if (fd < 0) {
		memset(c, 0, sizeof(*c));
		c->fd = -1;
		return fd;
	}
	rc = h_handshake(fd, name, key, c, NULL);
	if (rc > 0)
		h_close(c);
	return rc;
}

void h_close(struct h_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

/* ---- pages ---- */

void h_pattern(uint8_t *page, uint64_t seed, uint64_t addr)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull ^ (addr + 0x632be59bd9b4e019ull);

	for (size_t i = 0; i < SDRSA_PAGE_SIZE; i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(page + i, &x, 8);
	}
	page[0] |= 1; /* never an all-zero page */
}

int h_pattern_check(const uint8_t *page, uint64_t seed, uint64_t addr)
{
	uint8_t want[SDRSA_PAGE_SIZE];

	h_pattern(want, seed, addr);
	if (!memcmp(want, page, SDRSA_PAGE_SIZE))
		return H_PASS;
	for (size_t i = 0; i < SDRSA_PAGE_SIZE; i++)
		if (want[i] != page[i]) {
			h_log("page 0x%llx (seed %llu) differs at byte %zu: 0x%02x, want 0x%02x",
			      (unsigned long long)addr, (unsigned long long)seed, i, page[i],
			      want[i]);
			break;
		}
	return H_FAIL;
}

/* Build an entry frame's payload; pages NULL for data-less ops. */
static uint8_t *build_entries(uint8_t op, const uint64_t *addrs, const uint8_t *const *pages,
			      unsigned n, uint32_t *len)
{
	size_t data = 0, off;
	uint8_t *p;

	for (unsigned i = 0; pages && i < n; i++)
		if (pages[i])
			data += SDRSA_PAGE_SIZE;
	p = malloc((size_t)n * SDRSA_ENTRY_SIZE + data + 1);
	if (!p)
		return NULL;
	off = (size_t)n * SDRSA_ENTRY_SIZE;
	for (unsigned i = 0; i < n; i++) {
		struct sdrsa_entry e = { .addr = addrs[i] };
		if (pages && op == SDRSA_OP_PUT) {
			if (pages[i]) {
				e.len = SDRSA_PAGE_SIZE;
				e.csum = sdrsa_page_csum(pages[i], addrs[i]);
				memcpy(p + off, pages[i], SDRSA_PAGE_SIZE);
				off += SDRSA_PAGE_SIZE;
			} else {
				e.flags = SDRSA_EF_ZERO;
			}
		}
		sdrsa_entry_encode(&e, p + (size_t)i * SDRSA_ENTRY_SIZE);
	}
	*len = (uint32_t)off;
	return p;
}

/* Send an entry request, receive the reply, check entries echo addresses,
 * and hand back the reply payload. Returns header status or -errno. */
static int entry_call(struct h_conn *c, uint8_t op, const uint64_t *addrs,
		      const uint8_t *const *pages, unsigned n, uint16_t *st, struct sdrsa_hdr *rep,
		      uint8_t **reply_payload)
{
	struct sdrsa_hdr req;
	uint32_t len;
	uint8_t *p = build_entries(op, addrs, pages, n, &len), *in;
	int rc;

	if (!p)
		return -ENOMEM;
	in = malloc(SDRSA_MAX_PAYLOAD);
	if (!in) {
		free(p);
		return -ENOMEM;
	}
	h_req(c, &req, op, (uint16_t)n, len, p);
	rc = h_call(c, &req, p, rep, in, SDRSA_MAX_PAYLOAD);
	free(p);
	if (rc) {
		free(in);
		return rc;
	}
	if (rep->status != SDRSA_S_OK) {
		for (unsigned i = 0; st && i < n; i++)
			st[i] = rep->status;
		free(in);
		return rep->status;
	}
	if (rep->count != n) {
		violation("%s reply has %u entries for %u", sdrsa_op_name(op), rep->count, n);
		free(in);
		return -EPROTO;
	}
	for (unsigned i = 0; i < n; i++) {
		struct sdrsa_entry e;
		sdrsa_entry_decode(in + (size_t)i * SDRSA_ENTRY_SIZE, &e);
		if (e.addr != addrs[i]) {
			violation("%s reply entry %u is for 0x%llx, asked 0x%llx",
				  sdrsa_op_name(op), i, (unsigned long long)e.addr,
				  (unsigned long long)addrs[i]);
			free(in);
			return -EPROTO;
		}
		if (st)
			st[i] = e.status;
	}
	*reply_payload = in;
	return 0;
}

int h_put(struct h_conn *c, const uint64_t *addrs, const uint8_t *const *pages, unsigned n,
	  uint16_t *st)
{
	struct sdrsa_hdr rep;
	uint8_t *in = NULL;
	int rc = entry_call(c, SDRSA_OP_PUT, addrs, pages, n, st, &rep, &in);

	free(in);
	return rc;
}

int h_put_pattern(struct h_conn *c, const uint64_t *addrs, unsigned n, uint64_t seed,
		  uint16_t *st)
{
	uint8_t *buf = malloc((size_t)n * SDRSA_PAGE_SIZE);
	const uint8_t **pages = malloc(n * sizeof(*pages));
	int rc = -ENOMEM;

	if (buf && pages) {
		for (unsigned i = 0; i < n; i++) {
			h_pattern(buf + (size_t)i * SDRSA_PAGE_SIZE, seed, addrs[i]);
			pages[i] = buf + (size_t)i * SDRSA_PAGE_SIZE;
		}
		rc = h_put(c, addrs, pages, n, st);
	}
	free(buf);
	free(pages);
	return rc;
}

int h_get(struct h_conn *c, const uint64_t *addrs, unsigned n, uint8_t *out, uint16_t *st)
{
	struct sdrsa_hdr rep;
	uint8_t *in = NULL;
	size_t off = (size_t)n * SDRSA_ENTRY_SIZE;
	int rc = entry_call(c, SDRSA_OP_GET, addrs, NULL, n, st, &rep, &in);

	if (rc)
		return rc;
	for (unsigned i = 0; i < n; i++) {
		struct sdrsa_entry e;
		uint8_t *dst = out + (size_t)i * SDRSA_PAGE_SIZE;

		sdrsa_entry_decode(in + (size_t)i * SDRSA_ENTRY_SIZE, &e);
		if (e.status != SDRSA_S_OK)
			continue;
		if (e.flags & SDRSA_EF_ZERO) {
			memset(dst, 0, SDRSA_PAGE_SIZE);
			continue;
		}
		if (e.csum != sdrsa_page_csum(in + off, e.addr)) {
			h_log("GET 0x%llx: page checksum mismatch", (unsigned long long)e.addr);
			if (st)
				st[i] = SDRSA_S_CHECKSUM;
		}
		memcpy(dst, in + off, SDRSA_PAGE_SIZE);
		off += SDRSA_PAGE_SIZE;
	}
	free(in);
	return 0;
}

int h_free(struct h_conn *c, const uint64_t *addrs, unsigned n, uint16_t *st)
{
	struct sdrsa_hdr rep;
	uint8_t *in = NULL;
	int rc = entry_call(c, SDRSA_OP_FREE, addrs, NULL, n, st, &rep, &in);

	free(in);
	return rc;
}

int h_ping(struct h_conn *c)
{
	struct sdrsa_hdr req, rep;
	uint8_t in[256];
	int rc;

	h_req(c, &req, SDRSA_OP_PING, 0, 0, NULL);
	rc = h_call(c, &req, NULL, &rep, in, sizeof(in));
	if (rc)
		return rc;
	return rep.status;
}

int h_stats(struct h_conn *c, struct sdrsa_stats *out)
{
	struct sdrsa_hdr req, rep;
	uint8_t in[4096];
	int rc;

	h_req(c, &req, SDRSA_OP_STATS, 0, 0, NULL);
	rc = h_call(c, &req, NULL, &rep, in, sizeof(in));
	if (rc)
		return rc;
	if (rep.status)
		return rep.status;
	if (sdrsa_stats_decode(in, rep.len, out)) {
		violation("STATS reply does not decode (len %u)", rep.len);
		return -EPROTO;
	}
	return 0;
}

/* ---- victim ---- */

int h_victim_setup(const struct h_server *s, struct h_victim *v, const char *name,
		   const uint8_t *key)
{
	return h_victim_setup_n(s, v, name, key, H_VICTIM_PAGES);
}

int h_victim_setup_n(const struct h_server *s, struct h_victim *v, const char *name,
		     const uint8_t *key, unsigned n)
{
	uint8_t *buf;
	const uint8_t *pages[H_VICTIM_PAGES];
	uint16_t st[H_VICTIM_PAGES];
	int rc;

	memset(v, 0, sizeof(*v));
	v->seed = 0x5eed0000u + (uint64_t)getpid();
	v->n = MIN(n, H_VICTIM_PAGES);
	if (key) {
		v->has_key = 1;
		memcpy(v->key, key, SDRSA_KEY_SIZE);
	}
	rc = h_open(s, name, key, &v->c);
	if (rc) {
		h_log("victim %s: handshake failed: %d (%s)", name, rc,
		      rc > 0 ? sdrsa_status_name((unsigned)rc) : strerror(-rc));
		return H_FAIL;
	}
	buf = malloc((size_t)H_VICTIM_PAGES * SDRSA_PAGE_SIZE);
	if (!buf)
		return H_FAIL;
	for (unsigned i = 0; i < v->n; i++) {
		/* scattered: low, page-strided, high in the 64-bit space */
		v->addrs[i] = (i % 3 == 0) ? (uint64_t)i * SDRSA_PAGE_SIZE
			      : (i % 3 == 1)
				  ? 0x7f0000000000ull + (uint64_t)i * 7919 * SDRSA_PAGE_SIZE
				  : 0xfffffffffff00000ull - (uint64_t)i * SDRSA_PAGE_SIZE;
		v->zero[i] = i % 11 == 5;
		h_pattern(buf + (size_t)i * SDRSA_PAGE_SIZE, v->seed, v->addrs[i]);
		pages[i] = v->zero[i] ? NULL : buf + (size_t)i * SDRSA_PAGE_SIZE;
	}
	rc = h_put(&v->c, v->addrs, pages, v->n, st);
	free(buf);
	if (rc) {
		h_log("victim %s: PUT failed: %d (%s)", name, rc,
		      rc > 0 ? sdrsa_status_name((unsigned)rc) : strerror(-rc));
		return H_FAIL;
	}
	for (unsigned i = 0; i < v->n; i++)
		if (st[i] != SDRSA_S_OK) {
			h_log("victim %s: PUT entry %u: %s", name, i, sdrsa_status_name(st[i]));
			return H_FAIL;
		}
	return h_victim_check_pages(v);
}

int h_victim_check_pages(struct h_victim *v)
{
	uint8_t *buf = malloc((size_t)H_VICTIM_PAGES * SDRSA_PAGE_SIZE);
	uint16_t st[H_VICTIM_PAGES];
	int rc, ret = H_PASS;

	if (!buf)
		return H_FAIL;
	memset(buf, 0xa5, (size_t)H_VICTIM_PAGES * SDRSA_PAGE_SIZE);
	rc = h_get(&v->c, v->addrs, v->n, buf, st);
	if (rc) {
		h_log("victim %s: GET failed: %d (%s)", v->c.name, rc,
		      rc > 0 ? sdrsa_status_name((unsigned)rc) : strerror(-rc));
		free(buf);
		return H_FAIL;
	}
	for (unsigned i = 0; i < v->n && ret == H_PASS; i++) {
		const uint8_t *p = buf + (size_t)i * SDRSA_PAGE_SIZE;
		if (st[i] != SDRSA_S_OK) {
			h_log("victim %s: page 0x%llx: %s", v->c.name,
			      (unsigned long long)v->addrs[i], sdrsa_status_name(st[i]));
			ret = H_FAIL;
		} else if (v->zero[i]) {
			if (!sdrsa_page_is_zero(p)) {
				h_log("victim %s: zero page 0x%llx came back non-zero", v->c.name,
				      (unsigned long long)v->addrs[i]);
				ret = H_FAIL;
			}
		} else {
			ret = h_pattern_check(p, v->seed, v->addrs[i]);
		}
	}
	free(buf);
	return ret;
}

int h_victim_check(struct h_server *s, struct h_victim *v)
{
	struct h_conn probe;
	int rc;

	if (!h_server_alive(s)) {
		h_log("the server is gone");
		return H_FAIL;
	}
	if (h_victim_check_pages(v) != H_PASS)
		return H_FAIL;
	rc = h_open(s, v->c.name, v->has_key ? v->key : NULL, &probe);
	if (rc) {
		h_log("a new connection after the attack failed: %d (%s)", rc,
		      rc > 0 ? sdrsa_status_name((unsigned)rc) : strerror(-rc));
		return H_FAIL;
	}
	rc = h_ping(&probe);
	if (rc) {
		h_close(&probe);
		h_log("PING on a new connection after the attack: %d", rc);
		return H_FAIL;
	}
	/* leave the server as we found it: wait until it has seen the probe
	 * go, so that tests counting connections are not disturbed */
	{
		struct sdrsa_stats before, now;

		if (h_stats(&v->c, &before) == 0) {
			h_close(&probe);
			for (int i = 0; i < 200; i++) {
				if (h_stats(&v->c, &now) || now.connections < before.connections)
					break;
				h_sleep_ms(5);
			}
		}
		h_close(&probe);
	}
	if (!h_server_alive(s)) {
		h_log("the server is gone");
		return H_FAIL;
	}
	return H_PASS;
}

void h_victim_close(struct h_victim *v)
{
	h_close(&v->c);
}

int h_write_file(const char *path, const char *text, mode_t mode)
{
	size_t n = strlen(text);
	int fd;

	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (write(fd, text, n) != (ssize_t)n || fchmod(fd, mode)) {
		close(fd);
		return -EIO;
	}
	return close(fd);
}
