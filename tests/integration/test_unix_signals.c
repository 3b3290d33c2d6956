/* SPDX-License-Identifier: MIT */
/*
 * Unix sockets and shutdown: a server on a Unix socket serves pages; one on
 * TCP and a Unix socket at once serves the same namespaces on both;
 * SIGTERM and SIGINT end it with status 0 within a few seconds (also with
 * clients connected, one of them stuck mid-frame) and remove the socket
 * file; a stale socket file left by a killed server is replaced, while a
 * live server's socket is not stolen.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define PAGE SDRSA_PAGE_SIZE

static char sock_path[200];

static int exists(const char *p)
{
	struct stat st;
	return lstat(p, &st) == 0;
}

static int unix_addr_of(struct h_server *s, const char *path)
{
	char want[256];

	snprintf(want, sizeof(want), "unix:%s", path);
	for (int i = 0; i < s->nlisten; i++)
		if (!strcmp(s->listen[i], want))
			return h_server_use_addr(s, s->listen[i]);
	h_log("no \"listening on %s\" line", want);
	return -ENOENT;
}

/* Expect a clean exit after sig. */
static int stop_clean(struct h_server *s, int sig)
{
	uint64_t t0 = h_now_ms();
	int st = h_server_stop(s, sig, 5000);

	CHECKM(st >= 0, "server still running 5 s after signal %d", sig);
	CHECKM(WIFEXITED(st) && WEXITSTATUS(st) == 0, "after signal %d: %s %d", sig,
	       WIFEXITED(st) ? "exit status" : "killed by signal",
	       WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
	h_log("exited 0 %llu ms after signal %d", (unsigned long long)(h_now_ms() - t0), sig);
	return H_PASS;
}

static int t_unix_sigterm(void)
{
	struct h_server s;
	struct h_victim v;
	const char *args[] = { "8M", "--unix", sock_path, NULL };

	CHECK(h_server_start(&s, args) == 0);
	CHECK(exists(sock_path));
	CHECK(unix_addr_of(&s, sock_path) == 0);
	CHECK(s.addr.ss_family == AF_UNIX);
	CHECK_OK(h_victim_setup(&s, &v, "unix-client", NULL));
	CHECK(v.c.auth_required == 0);
	CHECK_OK(h_victim_check(&s, &v));
	h_victim_close(&v);
	CHECK_OK(stop_clean(&s, SIGTERM));
	CHECKM(!exists(sock_path), "%s still exists after shutdown", sock_path);
	return H_PASS;
}

static int t_tcp_and_unix_sigint(void)
{
	struct h_server s;
	struct h_conn tcp, unx;
	const char *args[] = { "8M", "--listen", "127.0.0.1:0", "--unix", sock_path, NULL };
	uint64_t a[3] = { 0x1000, 0x2000, 0x3000 };
	uint16_t st[3];
	uint8_t buf[3 * PAGE];

	CHECK(h_server_start(&s, args) == 0);
	CHECK(s.nlisten == 2);
	CHECK(s.addr.ss_family == AF_INET);
	CHECK(h_open(&s, "both", NULL, &tcp) == 0);
	CHECK(h_put_pattern(&tcp, a, 3, 11, st) == 0);
	CHECK(unix_addr_of(&s, sock_path) == 0);
	CHECK(h_open(&s, "both", NULL, &unx) == 0);
	CHECK(h_get(&unx, a, 3, buf, st) == 0);
	for (int i = 0; i < 3; i++) {
		CHECK(st[i] == SDRSA_S_OK);
		CHECK_OK(h_pattern_check(buf + (size_t)i * PAGE, 11, a[i]));
	}
	/* shut down with both clients connected and one stuck mid-frame */
	{
		uint8_t half[10] = { 0x53, 0x44, 0x52, 0x41, 1, SDRSA_OP_PUT };
		CHECK(h_send(unx.fd, half, sizeof(half)) == 0);
	}
	CHECK_OK(stop_clean(&s, SIGINT));
	CHECK(h_wait_closed(tcp.fd, 1000, NULL) == 0);
	h_close(&tcp);
	h_close(&unx);
	CHECKM(!exists(sock_path), "%s still exists after shutdown", sock_path);
	return H_PASS;
}

static int t_stale_socket(void)
{
	struct h_server s, second;
	struct h_victim v;
	const char *args[] = { "8M", "--unix", sock_path, NULL };
	char out[4096], err[4096];
	int st;

	/* a server killed with SIGKILL leaves its socket file behind */
	CHECK(h_server_start(&s, args) == 0);
	h_server_stop(&s, SIGKILL, 5000);
	CHECK(exists(sock_path));
	/* a new server replaces the stale file */
	CHECK_OK(h_server_start(&second, args) == 0 ? H_PASS : H_FAIL);
	CHECK(unix_addr_of(&second, sock_path) == 0);
	CHECK_OK(h_victim_setup(&second, &v, "after-stale", NULL));
	/* but a live server's socket is not taken over */
	st = h_run_server_cmd(args, 10000, out, sizeof(out), err, sizeof(err));
	CHECKM(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) != 0,
	       "a second server on a live socket: status %d", st);
	h_log("second server said: %s", err);
	CHECK_OK(h_victim_check(&second, &v));
	h_victim_close(&v);
	CHECK_OK(stop_clean(&second, SIGTERM));
	CHECK(!exists(sock_path));
	return H_PASS;
}

/* SIGTERM while hundreds of pages are in flight does not crash or hang. */
static int t_term_under_load(void)
{
	struct h_server s;
	struct h_conn c;
	const char *args[] = { "32M", "--unix", sock_path, NULL };
	enum { N = 200 };
	uint64_t a[N];
	uint16_t st[N];

	CHECK(h_server_start(&s, args) == 0);
	CHECK(unix_addr_of(&s, sock_path) == 0);
	CHECK(h_open(&s, "load", NULL, &c) == 0);
	for (int i = 0; i < N; i++)
		a[i] = (uint64_t)i * PAGE;
	CHECK(h_put_pattern(&c, a, N, 1, st) == 0);
	/* queue a few big requests without reading the replies */
	for (int k = 0; k < 4; k++) {
		struct sdrsa_hdr h;
		uint8_t p[N * SDRSA_ENTRY_SIZE];
		for (int i = 0; i < N; i++) {
			struct sdrsa_entry e = { .addr = a[i] };
			sdrsa_entry_encode(&e, p + i * SDRSA_ENTRY_SIZE);
		}
		h_req(&c, &h, SDRSA_OP_GET, N, sizeof(p), p);
		CHECK(h_send_frame(c.fd, &h, p) == 0);
	}
	CHECK_OK(stop_clean(&s, SIGTERM));
	h_close(&c);
	CHECK(!exists(sock_path));
	return H_PASS;
}

int main(int argc, char **argv)
{
	h_init(argc, argv);
	snprintf(sock_path, sizeof(sock_path), "%s/mem.sock", h_tmpdir());
	h_run("unix_sigterm", t_unix_sigterm);
	h_run("tcp_and_unix_sigint", t_tcp_and_unix_sigint);
	h_run("stale_socket", t_stale_socket);
	h_run("term_under_load", t_term_under_load);
	return h_finish();
}
