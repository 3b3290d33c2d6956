/* SPDX-License-Identifier: MIT */
/*
 * pagebench: child processes, ports and socket helpers.
 *
 * Every server the bench starts is registered here so that it is killed on
 * every way out of the bench: normal exit, error, a signal, the watchdog
 * alarm, and (through PR_SET_PDEATHSIG) the bench being killed outright.
 * The registry is a fixed array written only by the main thread and read by
 * signal handlers, hence volatile and no allocation.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pagebench.h"

#define MAX_CHILDREN 16

static volatile pid_t children[MAX_CHILDREN];

void pb_child_register(pid_t pid)
{
	for (int i = 0; i < MAX_CHILDREN; i++) {
		if (children[i] == 0) {
			children[i] = pid;
			return;
		}
	}
	/* Never more than two at once; a leak here is a bench bug. */
	kill(pid, SIGKILL);
	fprintf(stderr, "pagebench: too many child processes\n");
	abort();
}

void pb_child_forget(pid_t pid)
{
	for (int i = 0; i < MAX_CHILDREN; i++)
		if (children[i] == pid)
			children[i] = 0;
}

void pb_child_kill_all(void)
{
	for (int i = 0; i < MAX_CHILDREN; i++) {
		pid_t p = children[i];
		if (p > 0)
			kill(p, SIGKILL);
	}
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int pb_child_stop(pid_t pid, int timeout_ms)
{
	int status;
	if (pid <= 0)
		return -1;
	kill(pid, SIGTERM);
	for (int waited = 0;; waited += 5) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid) {
			pb_child_forget(pid);
			return status;
		}
		if (r < 0 && errno != EINTR) {
			pb_child_forget(pid);
			return -1;
		}
		if (waited >= timeout_ms)
			break;
		sleep_ms(5);
	}
	kill(pid, SIGKILL);
	if (waitpid(pid, &status, 0) != pid)
		status = -1;
	pb_child_forget(pid);
	return status;
}

pid_t pb_spawn(char *const argv[], const char *log_path, const cpu_set_t *cpus, char *err,
	       size_t errlen)
{
	pid_t parent = getpid();
	int logfd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (logfd < 0) {
		snprintf(err, errlen, "cannot open %s: %s", log_path, strerror(errno));
		return -1;
	}
	/* Tell a failed exec from a started server through a close-on-exec pipe. */
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		close(logfd);
		return -1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		close(logfd);
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		signal(SIGPIPE, SIG_DFL);
		int nullfd = open("/dev/null", O_RDONLY);
		if (nullfd >= 0)
			dup2(nullfd, 0);
		dup2(logfd, 1);
		dup2(logfd, 2);
		if (cpus && sched_setaffinity(0, sizeof(*cpus), cpus) < 0) {
			int e = errno;
			(void)!write(pfd[1], &e, sizeof(e));
			_exit(127);
		}
		execv(argv[0], argv);
		int e = errno;
		(void)!write(pfd[1], &e, sizeof(e));
		_exit(127);
	}
	close(logfd);
	close(pfd[1]);
	pb_child_register(pid);
	int e = 0;
	ssize_t r;
	do
		r = read(pfd[0], &e, sizeof(e));
	while (r < 0 && errno == EINTR);
	close(pfd[0]);
	if (r == (ssize_t)sizeof(e)) {
		snprintf(err, errlen, "cannot start %s: %s", argv[0], strerror(e));
		waitpid(pid, NULL, 0);
		pb_child_forget(pid);
		return -1;
	}
	return pid;
}

int pb_free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in sa = {
	    .sin_family = AF_INET, .sin_port = 0, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	int port = -1;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
		port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

void pb_log_tail(const char *path, char *buf, size_t n)
{
	buf[0] = '\0';
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	off_t size = lseek(fd, 0, SEEK_END);
	off_t from = size > (off_t)(n - 1) ? size - (off_t)(n - 1) : 0;
	ssize_t r = pread(fd, buf, n - 1, from);
	close(fd);
	if (r <= 0)
		return;
	buf[r] = '\0';
	/* One line for the error message: newlines become " | ". */
	while (r > 0 && (buf[r - 1] == '\n' || buf[r - 1] == '\r'))
		buf[--r] = '\0';
	for (ssize_t i = 0; i < r; i++)
		if (buf[i] == '\n' || buf[i] == '\r')
			buf[i] = '|';
}

int pb_tcp_connect(int port, int timeout_ms)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int one = 1;
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

int pb_wait_port(pid_t pid, int port, int timeout_ms, const char *log_path, char *err,
		 size_t errlen)
{
	uint64_t deadline = pb_now_ns() + (uint64_t)timeout_ms * 1000000u;
	for (;;) {
		int status;
		if (waitpid(pid, &status, WNOHANG) == pid) {
			char tail[300];
			pb_child_forget(pid);
			pb_log_tail(log_path, tail, sizeof(tail));
			snprintf(err, errlen, "server exited (%s %d) before accepting: %s",
				 WIFEXITED(status) ? "status" : "signal",
				 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), tail);
			return -1;
		}
		int fd = pb_tcp_connect(port, 1000);
		if (fd >= 0) {
			close(fd);
			return 0;
		}
		if (pb_now_ns() > deadline) {
			snprintf(err, errlen, "server did not accept on 127.0.0.1:%d within %d ms",
				 port, timeout_ms);
			return -1;
		}
		sleep_ms(10);
	}
}

int pb_read_full(int fd, void *buf, size_t n)
{
	uint8_t *p = buf;
	while (n > 0) {
		ssize_t r = read(fd, p, n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		}
		if (r == 0)
			return -ECONNRESET;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

int pb_writev_full(int fd, struct iovec *iov, int iovcnt)
{
	while (iovcnt > 0) {
		ssize_t r = writev(fd, iov, iovcnt);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		}
		while (iovcnt > 0 && (size_t)r >= iov->iov_len) {
			r -= (ssize_t)iov->iov_len;
			iov++;
			iovcnt--;
		}
		if (iovcnt > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + r;
			iov->iov_len -= (size_t)r;
		}
	}
	return 0;
}

uint64_t pb_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int pb_start_peer(struct pb_system *s, const char *name, const char *log,
		  const char *const *args)
{
	static const char *const dirs[] = {"/usr/bin", "/usr/sbin", "/usr/local/bin"};
	char bin[256], port[16];
	char *argv[64];
	size_t n = 0, i;

	bin[0] = '\0';
	for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(bin, sizeof(bin), "%s/%s", dirs[i], name);
		if (access(bin, X_OK) == 0)
			break;
	}
	if (i == sizeof(dirs) / sizeof(dirs[0])) {
		snprintf(s->err, sizeof(s->err), "%s not installed (scripts/deps.sh installs it)",
			 name);
		return -1;
	}
	argv[n++] = bin;
	for (i = 0; args[i] && n < sizeof(argv) / sizeof(argv[0]) - 1; i++)
		argv[n++] = strcmp(args[i], PB_PORT_ARG) ? (char *)args[i] : port;
	argv[n] = NULL;
	snprintf(s->log_path, sizeof(s->log_path), "%s/%s", pb_opts.tmpdir, log);
	for (int attempt = 0; attempt < 3; attempt++) {
		s->port = pb_free_port();
		if (s->port < 0) {
			snprintf(s->err, sizeof(s->err), "no free port");
			return -1;
		}
		snprintf(port, sizeof(port), "%d", s->port);
		s->pid = pb_spawn(argv, s->log_path, s->cpus, s->err, sizeof(s->err));
		if (s->pid < 0) {
			s->pid = 0;
			return -1;
		}
		if (pb_wait_port(s->pid, s->port, 10000, s->log_path, s->err, sizeof(s->err)) == 0)
			return 0;
		pb_child_stop(s->pid, 1000);
		s->pid = 0;
	}
	return -1;
}
