/* SPDX-License-Identifier: MIT */
/*
 * rsa-app watch NAME GUEST-PHYS-ADDR [--settle DUR]
 * rsa-app stat NAME [--json]
 *
 * Thin clients of a VM agent's control socket (vm_proto.h): they connect to
 * RUNDIR/NAME.sock, send one request line and print what comes back. The
 * agent checks the request against the running VM (alignment, guest RAM
 * layout) and words its errors for the user; these clients only add what
 * they alone can tell: no such VM, a dead agent, a bad address syntax.
 *
 * watch prints one line per event on stdout, flushed at once:
 *   HH:MM:SS.uuuuuu write gpa=0x29de000 count=1 reads=0 writes=1
 *   HH:MM:SS.uuuuuu download_more_ram gpa=0x29de000 bytes=4096 us=85 (...)
 *   HH:MM:SS.uuuuuu upload_some_ram gpa=0x29de000 bytes=4096 us=60 (...)
 * Ctrl-C (or SIGTERM) ends the watch; the agent puts the page back under
 * its normal policy and the guest runs on. Exit status: 0 when stopped by
 * the user or when the VM stopped; 1 on errors; 2 on bad usage.
 */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "vm/vm_cli.h"
#include "vm/vm_proto.h"

#define PROG "rsa-app"

static volatile sig_atomic_t g_stop;

static void on_stop(int sig)
{
	(void)sig;
	g_stop = 1;
}

static int usage_err(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int usage_err(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, PROG " %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (try '" PROG " vm --help')\n");
	return 2;
}

/* "web1, web2" from the NAME.sock files in RUNDIR, or "none". */
static void list_vms(const char *dir, char *buf, size_t len)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t o = 0;

	buf[0] = 0;
	while (d && (e = readdir(d))) {
		size_t n = strlen(e->d_name);

		if (n > 5 && !strcmp(e->d_name + n - 5, ".sock") && o + n + 2 < len) {
			o += (size_t)snprintf(buf + o, len - o, "%s%.*s", o ? ", " : "",
					      (int)(n - 5), e->d_name);
		}
	}
	if (d)
		closedir(d);
	if (!o)
		snprintf(buf, len, "none");
}

/* Connect to NAME's agent. Returns the fd, or -1 after printing. */
static int connect_vm(const char *cmd, const char *name)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char dir[sizeof(sa.sun_path)], list[512];
	int fd, n;

	if (!vm_name_ok(name)) {
		fprintf(stderr,
			PROG " %s: '%s' is not a VM name (1-64 letters, digits, '.', '_', "
			     "'-')\n",
			cmd, name);
		return -1;
	}
	if (vm_run_dir(dir, sizeof(dir)) < 0)
		goto too_long;
	n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s.sock", dir, name);
	if (n < 0 || (size_t)n >= sizeof(sa.sun_path))
		goto too_long;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		fprintf(stderr, PROG " %s: socket: %s\n", cmd, strerror(errno));
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
		return fd;
	n = errno;
	close(fd);
	if (n == ENOENT) {
		list_vms(dir, list, sizeof(list));
		fprintf(stderr,
			PROG " %s: no VM named '%s' on this host (no agent socket %s); "
			     "running VMs: %s\n",
			cmd, name, sa.sun_path, list);
	} else if (n == ECONNREFUSED) {
		fprintf(stderr,
			PROG " %s: VM '%s' has no running agent (%s is stale: its "
			     "'" PROG " vm' has exited)\n",
			cmd, name, sa.sun_path);
	} else if (n == EACCES || n == EPERM) {
		fprintf(stderr,
			PROG " %s: no permission to reach VM '%s' (%s): run as the user "
			     "of its agent or as root\n",
			cmd, name, sa.sun_path);
	} else {
		fprintf(stderr, PROG " %s: cannot reach the agent of VM '%s' at %s: %s\n", cmd,
			name, sa.sun_path, strerror(n));
	}
	return -1;
too_long:
	fprintf(stderr, PROG " %s: the control socket path is too long (set %s)\n", cmd,
		VM_ENV_RUN_DIR);
	return -1;
}

static int send_line(int fd, const char *line)
{
	size_t len = strlen(line), off = 0;

	while (off < len) {
		ssize_t n = send(fd, line + off, len - off, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		off += (size_t)n;
	}
	return 0;
}

/* Read the next line (without newline) into buf. Returns 1, 0 at EOF,
 * -1 on error, -2 when g_stop was set. */
static int read_line(int fd, char *buf, size_t len, char *acc, size_t *alen, size_t acap)
{
	for (;;) {
		char *nl = memchr(acc, '\n', *alen);
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t n;

		if (nl) {
			size_t l = (size_t)(nl - acc);

			snprintf(buf, len, "%.*s", (int)l, acc);
			memmove(acc, nl + 1, *alen - l - 1);
			*alen -= l + 1;
			return 1;
		}
		if (g_stop)
			return -2;
		if (poll(&p, 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (*alen == acap) /* a line longer than the buffer: cut it */
			*alen = 0;
		n = read(fd, acc + *alen, acap - *alen);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n == 0 ? 0 : -1;
		*alen += (size_t)n;
	}
}

/* "200us", "1ms", "2s", "500ns"; a bare number is ms. Returns 0 or -1. */
static int parse_dur_ns(const char *s, unsigned long long *out)
{
	char *end;
	double v = strtod(s, &end);
	double mul = 1e6;

	if (end == s || !(v >= 0))
		return -1;
	if (!strcmp(end, "ns"))
		mul = 1;
	else if (!strcmp(end, "us"))
		mul = 1e3;
	else if (!strcmp(end, "ms") || !*end)
		mul = 1e6;
	else if (!strcmp(end, "s"))
		mul = 1e9;
	else
		return -1;
	if (v * mul > 10e9)
		return -1;
	*out = (unsigned long long)(v * mul);
	return 0;
}

int rsa_watch_main(int argc, char **argv)
{
	const char *name = NULL, *addr = NULL;
	unsigned long long gpa, settle = 1000000;
	char req[128], line[1024], acc[8192];
	size_t alen = 0;
	struct sigaction sa = {.sa_handler = on_stop};
	int fd, r, got_ok = 0;
	char *end;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			rsa_vm_usage(stdout);
			return 0;
		} else if (!strcmp(argv[i], "--settle")) {
			if (i + 1 >= argc || parse_dur_ns(argv[i + 1], &settle) < 0)
				return usage_err("watch",
						 "--settle %s: a duration up to 10s (200us, "
						 "1ms)",
						 i + 1 < argc ? argv[i + 1] : "");
			i++;
		} else if (argv[i][0] == '-' && argv[i][1]) {
			return usage_err("watch", "unknown option '%s'", argv[i]);
		} else if (!name) {
			name = argv[i];
		} else if (!addr) {
			addr = argv[i];
		} else {
			return usage_err("watch", "unexpected '%s'", argv[i]);
		}
	}
	if (!name || !addr)
		return usage_err("watch", "%s", "usage: rsa-app watch NAME GUEST-PHYS-ADDR");
	errno = 0;
	gpa = strtoull(addr, &end, 0);
	if (errno || end == addr || *end || addr[0] == '-')
		return usage_err("watch", "'%s' is not an address (like 0x24c6000)", addr);
	fd = connect_vm("watch", name);
	if (fd < 0)
		return 1;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	snprintf(req, sizeof(req), "watch 0x%llx %llu\n", gpa, settle);
	if (send_line(fd, req) < 0) {
		fprintf(stderr, PROG " watch: the agent of VM '%s' closed the connection\n", name);
		close(fd);
		return 1;
	}
	for (;;) {
		r = read_line(fd, line, sizeof(line), acc, &alen, sizeof(acc));
		if (r == -2) {
			fprintf(stderr,
				PROG " watch: stopped watching 0x%llx; VM '%s' keeps running\n",
				gpa, name);
			close(fd);
			return 0;
		}
		if (r <= 0) {
			fprintf(stderr, PROG " watch: the agent of VM '%s' went away%s\n", name,
				got_ok ? " (the VM stopped?)" : "");
			close(fd);
			return 1;
		}
		if (!strncmp(line, "error ", 6)) {
			fprintf(stderr, PROG " watch: %s\n", line + 6);
			close(fd);
			return 1;
		}
		if (!strncmp(line, "end ", 4)) {
			fprintf(stderr, PROG " watch: %s\n", line + 4);
			close(fd);
			return 0;
		}
		if (!got_ok && !strncmp(line, "ok ", 3)) {
			got_ok = 1;
			printf("%s\n", line + 3);
		} else {
			printf("%s\n", line);
		}
		fflush(stdout);
	}
}

int rsa_stat_main(int argc, char **argv)
{
	const char *name = NULL;
	char line[4096], acc[16384];
	size_t alen = 0;
	int json = 0, fd, r;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			rsa_vm_usage(stdout);
			return 0;
		} else if (!strcmp(argv[i], "--json")) {
			json = 1;
		} else if (argv[i][0] == '-') {
			return usage_err("stat", "unknown option '%s'", argv[i]);
		} else if (!name) {
			name = argv[i];
		} else {
			return usage_err("stat", "unexpected '%s'", argv[i]);
		}
	}
	if (!name) {
		char dir[108], list[512];

		if (vm_run_dir(dir, sizeof(dir)) == 0)
			list_vms(dir, list, sizeof(list));
		else
			snprintf(list, sizeof(list), "?");
		fprintf(stderr, PROG " stat: missing the VM's NAME; running VMs: %s\n", list);
		return 2;
	}
	fd = connect_vm("stat", name);
	if (fd < 0)
		return 1;
	signal(SIGPIPE, SIG_IGN);
	if (send_line(fd, json ? "stat json\n" : "stat\n") < 0) {
		fprintf(stderr, PROG " stat: the agent of VM '%s' closed the connection\n", name);
		close(fd);
		return 1;
	}
	for (;;) {
		r = read_line(fd, line, sizeof(line), acc, &alen, sizeof(acc));
		if (r <= 0) {
			fprintf(stderr, PROG " stat: the agent of VM '%s' went away\n", name);
			close(fd);
			return 1;
		}
		if (!strncmp(line, "error ", 6)) {
			fprintf(stderr, PROG " stat: %s\n", line + 6);
			close(fd);
			return 1;
		}
		if (!strcmp(line, "end"))
			break;
		printf("%s\n", line);
	}
	close(fd);
	return 0;
}
