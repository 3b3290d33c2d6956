/* SPDX-License-Identifier: MIT */
/*
 * The command line of memory-server: bad SIZE values (syntax, unit, zero,
 * not a page multiple, negative), unknown options, missing or bad option
 * values and extra arguments exit 2 with one line on stderr; a SIZE the
 * machine cannot reserve (100T), a key file others can read, a missing key
 * file, a busy port and an impossible Unix path exit non-zero with one line;
 * --help documents every option.
 */
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static char out[16384], err[16384];

static int count_lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* Run with args; expect exit status `want` (-1: any non-zero) and exactly
 * one non-empty line on stderr, nothing that looks like "ready" on stdout. */
static int expect_refusal(const char *const *args, int want, const char *what)
{
	int st = h_run_server_cmd(args, 15000, out, sizeof(out), err, sizeof(err));

	CHECKM(st != -ETIMEDOUT, "%s: still running after 15 s (stdout: %s)", what, out);
	CHECKM(st >= 0 && WIFEXITED(st), "%s: did not exit normally (%d)", what, st);
	if (want >= 0)
		CHECKM(WEXITSTATUS(st) == want, "%s: exit status %d, want %d; stderr: %s", what,
		       WEXITSTATUS(st), want, err);
	else
		CHECKM(WEXITSTATUS(st) != 0, "%s: exit status 0", what);
	CHECKM(count_lines(err) == 1 && strlen(err) > 10,
	       "%s: want a one-line message on stderr, got %d lines: \"%s\"", what,
	       count_lines(err), err);
	CHECKM(!strstr(out, "ready"), "%s: server printed ready", what);
	h_log("%s -> %d: %s", what, WEXITSTATUS(st), strtok(err, "\n"));
	return H_PASS;
}

#define REFUSE(want, ...)                                                          \
	do {                                                                       \
		const char *const a_[] = { __VA_ARGS__, NULL };                    \
		CHECK_OK(expect_refusal(a_, (want), #__VA_ARGS__));                \
	} while (0)

static int t_bad_size(void)
{
	REFUSE(2, "abc");
	REFUSE(2, "4X");
	REFUSE(2, "4 G");
	REFUSE(2, "G");
	REFUSE(2, "");
	REFUSE(2, "0");
	REFUSE(2, "0K");
	REFUSE(2, "100");  /* less than a page */
	REFUSE(2, "4095");
	REFUSE(2, "-4M");
	REFUSE(2, "99999999T");
	REFUSE(2, "4M", "--listen", "127.0.0.1:0", "5M"); /* two sizes */
	return H_PASS;
}

static int t_no_size(void)
{
	REFUSE(2, "--listen", "127.0.0.1:0");
	{
		const char *const none[] = { NULL };
		CHECK_OK(expect_refusal(none, 2, "no arguments"));
	}
	return H_PASS;
}

static int t_unknown_option(void)
{
	REFUSE(2, "4M", "--bogus");
	REFUSE(2, "4M", "-Z");
	REFUSE(2, "--no-such-option", "4M");
	return H_PASS;
}

static int t_bad_option_values(void)
{
	REFUSE(2, "4M", "--listen");          /* missing value */
	REFUSE(2, "4M", "--io-timeout", "soon");
	REFUSE(2, "4M", "--io-timeout", "-1s");
	REFUSE(2, "4M", "--max-conns", "many");
	REFUSE(2, "4M", "--max-conns", "-1");
	REFUSE(2, "4M", "-q", "lots");
	REFUSE(2, "4M", "--max-client-pages", "-5");
	REFUSE(2, "4M", "--threads", "x");
	return H_PASS;
}

/* An address that can never be valid is a usage error like any other bad
 * option value (exit 2), not a failure to start (exit 1). */
static int t_bad_listen_value(void)
{
	REFUSE(2, "4M", "--listen", "127.0.0.1:99999");
	REFUSE(2, "4M", "--listen", "127.0.0.1:port");
	REFUSE(2, "4M", "--listen", "[::1");
	return H_PASS;
}

static int t_huge_size(void)
{
	REFUSE(-1, "100T", "--listen", "127.0.0.1:0");
	REFUSE(-1, "16000000T", "--listen", "127.0.0.1:0");
	return H_PASS;
}

static int t_key_files(void)
{
	char path[256], missing[256];
	static const char good[] =
		"alice 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n";

	snprintf(path, sizeof(path), "%s/keys", h_tmpdir());
	snprintf(missing, sizeof(missing), "%s/no-such-keys", h_tmpdir());
	CHECK(h_write_file(path, good, 0644) == 0);
	REFUSE(-1, "4M", "--listen", "127.0.0.1:0", "--key-file", path);
	CHECK(h_write_file(path, good, 0640) == 0);
	REFUSE(-1, "4M", "--listen", "127.0.0.1:0", "--key-file", path);
	REFUSE(-1, "4M", "--listen", "127.0.0.1:0", "--key-file", missing);
	CHECK(h_write_file(path, "alice 0011\n", 0600) == 0);
	REFUSE(-1, "4M", "--listen", "127.0.0.1:0", "--key-file", path);
	CHECKM(strstr(err, "line 1") || strstr(err, ":1:"), "no line number in: %s", err);
	/* the same file with mode 0600 is accepted */
	{
		struct h_server s;
		const char *const args[] = { "4M", "--listen", "127.0.0.1:0", "--key-file", path,
					     NULL };
		int st;

		CHECK(h_write_file(path, good, 0600) == 0);
		CHECK(h_server_start(&s, args) == 0);
		st = h_server_stop(&s, SIGTERM, 5000);
		CHECK(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	return H_PASS;
}

static int t_sockets(void)
{
	char path[256];
	int fd, one = 1;
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	char busy[64];

	/* a port someone else holds */
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(fd >= 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK(bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0);
	CHECK(listen(fd, 1) == 0);
	CHECK(getsockname(fd, (struct sockaddr *)&sin, &len) == 0);
	snprintf(busy, sizeof(busy), "127.0.0.1:%u", ntohs(sin.sin_port));
	REFUSE(-1, "4M", "--listen", busy);
	close(fd);
	/* a Unix socket in a directory that does not exist */
	snprintf(path, sizeof(path), "%s/no/such/dir/mem.sock", h_tmpdir());
	REFUSE(-1, "4M", "--unix", path);
	return H_PASS;
}

static int t_help(void)
{
	static const char *const options[] = { "--listen", "--unix", "--key-file", "--insecure",
					       "--threads", "--max-client-pages", "--max-conns",
					       "--io-timeout", "--help" };
	const char *const args[] = { "--help", NULL };
	int st = h_run_server_cmd(args, 5000, out, sizeof(out), err, sizeof(err));

	CHECK(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	for (size_t i = 0; i < sizeof(options) / sizeof(options[0]); i++)
		CHECKM(strstr(out, options[i]), "--help does not mention %s", options[i]);
	CHECK(strstr(out, "SIZE"));
	return H_PASS;
}

/* Sizes with every unit are accepted and reported. */
static int t_good_sizes(void)
{
	static const char *const sizes[] = { "4096", "64K", "1M", "1.5M", "2MiB" };

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct h_server s;
		const char *const args[] = { sizes[i], "--listen", "127.0.0.1:0", NULL };
		struct h_conn c;
		uint64_t bytes;
		int st;

		CHECK(h_server_start(&s, args) == 0);
		CHECK(h_open(&s, "size", NULL, &c) == 0);
		bytes = !strcmp(sizes[i], "4096")   ? 4096
			: !strcmp(sizes[i], "64K")  ? 65536
			: !strcmp(sizes[i], "1M")   ? 1048576
			: !strcmp(sizes[i], "1.5M") ? 1572864
						    : 2097152;
		CHECKM(c.welcome.pool_pages == bytes / SDRSA_PAGE_SIZE, "%s: %llu pages", sizes[i],
		       (unsigned long long)c.welcome.pool_pages);
		h_close(&c);
		st = h_server_stop(&s, SIGTERM, 5000);
		CHECK(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	return H_PASS;
}

int main(int argc, char **argv)
{
	h_init(argc, argv);
	h_run("bad_size", t_bad_size);
	h_run("no_size", t_no_size);
	h_run("unknown_option", t_unknown_option);
	h_run("bad_option_values", t_bad_option_values);
	h_run("bad_listen_value", t_bad_listen_value);
	h_run("huge_size", t_huge_size);
	h_run("key_files", t_key_files);
	h_run("sockets", t_sockets);
	h_run("help", t_help);
	h_run("good_sizes", t_good_sizes);
	return h_finish();
}
