/* SPDX-License-Identifier: MIT */
/*
 * A client on another host: the server accepts only loopback and Unix peers
 * unless it has a key file (then any peer that proves a key) or --insecure.
 *
 * "Another host" is a network namespace this test creates itself: the server
 * runs in namespace S, the remote client in namespace C, joined by a veth
 * pair with addresses from 198.18.0.0/15 (reserved for benchmark networks,
 * used only inside these namespaces). All traffic stays on this machine.
 * Needs root and iproute2; on CI a missing feature is a failure.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <sodium.h>

#include "harness.h"

#define SRV_IP "198.18.7.1"
#define CLI_IP "198.18.7.2"

static char ns_srv[64], ns_cli[64];
static int netns_ready;
static uint8_t key_remote[SDRSA_KEY_SIZE], key_wrong[SDRSA_KEY_SIZE];

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[512];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	rc = system(cmd);
	if (rc != 0)
		h_log("command failed (%d): %s", rc, cmd);
	return rc == 0 ? 0 : -1;
}

static int enter_netns(const char *name)
{
	char path[128];
	int fd, rc;

	snprintf(path, sizeof(path), "/var/run/netns/%s", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	rc = setns(fd, CLONE_NEWNET) ? -errno : 0;
	close(fd);
	return rc;
}

static void teardown(void)
{
	if (!netns_ready)
		return;
	sh("ip netns del %s 2>/dev/null", ns_cli);
	sh("ip netns del %s 2>/dev/null", ns_srv);
}

static int setup_netns(void)
{
	snprintf(ns_srv, sizeof(ns_srv), "sdrsa-srv-%d", (int)getpid());
	snprintf(ns_cli, sizeof(ns_cli), "sdrsa-cli-%d", (int)getpid());
	if (geteuid() != 0)
		return h_skip("needs root to create network namespaces");
	if (system("ip -V >/dev/null 2>&1"))
		return h_skip("iproute2 (ip) not installed");
	netns_ready = 1;
	if (sh("ip netns add %s", ns_srv) || sh("ip netns add %s", ns_cli) ||
	    sh("ip link add sdrsa-v%d netns %s type veth peer name sdrsa-p%d netns %s",
	       (int)getpid() % 100000, ns_srv, (int)getpid() % 100000, ns_cli) ||
	    sh("ip -n %s addr add " SRV_IP "/30 dev sdrsa-v%d", ns_srv, (int)getpid() % 100000) ||
	    sh("ip -n %s addr add " CLI_IP "/30 dev sdrsa-p%d", ns_cli, (int)getpid() % 100000) ||
	    sh("ip -n %s link set sdrsa-v%d up", ns_srv, (int)getpid() % 100000) ||
	    sh("ip -n %s link set sdrsa-p%d up", ns_cli, (int)getpid() % 100000) ||
	    sh("ip -n %s link set lo up", ns_srv) || sh("ip -n %s link set lo up", ns_cli))
		return H_FAIL;
	/* This process (and the servers it starts) lives in S from now on. */
	if (enter_netns(ns_srv)) {
		h_log("setns(%s): %s", ns_srv, strerror(errno));
		return H_FAIL;
	}
	return H_PASS;
}

static int port_of(const struct h_server *s)
{
	const struct sockaddr_in *sin = (const struct sockaddr_in *)&s->addr;

	return ntohs(sin->sin_port);
}

/*
 * In a child that moved to namespace C: connect to the server's port on
 * SRV_IP, handshake as NAME with KEY, and, if accepted, put and get back one
 * pattern page. Exit status: 0 accepted and data intact, 10 + sdrsa status
 * when refused, 3 when the server did not close after refusing, 1 otherwise.
 */
static int remote_client(int port, const char *name, const uint8_t *key)
{
	pid_t pid = fork();
	int status;

	if (pid < 0)
		return -1;
	if (pid == 0) {
		struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
		struct h_conn c;
		uint64_t addr = 0x42000;
		uint16_t st;
		uint8_t page[SDRSA_PAGE_SIZE];
		int fd, rc;

		if (enter_netns(ns_cli))
			_exit(1);
		inet_pton(AF_INET, SRV_IP, &sin.sin_addr);
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof(sin)))
			_exit(1);
		rc = h_handshake(fd, name, key, &c, NULL);
		if (rc > 0)
			_exit(h_wait_closed(fd, 3000, NULL) == 0 ? 10 + rc : 3);
		if (rc < 0)
			_exit(1);
		if (h_put_pattern(&c, &addr, 1, 99, &st) != 0 || st != SDRSA_S_OK)
			_exit(1);
		if (h_get(&c, &addr, 1, page, &st) != 0 || st != SDRSA_S_OK)
			_exit(1);
		_exit(h_pattern_check(page, 99, addr) == H_PASS ? 0 : 1);
	}
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

static int write_keys(const char *path)
{
	char hex[2 * SDRSA_KEY_SIZE + 1];
	FILE *f;
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	f = fdopen(fd, "w");
	sodium_bin2hex(hex, sizeof(hex), key_remote, sizeof(key_remote));
	fprintf(f, "remote %s\n", hex);
	return fclose(f) ? -1 : 0;
}

/* No key file: the remote peer is refused with AUTH_FAILED and the server
 * closes; a local client is still served. */
static int t_no_key_refuses_remote(void)
{
	static const char *const args[] = { "16M", "--listen", "0.0.0.0:0", NULL };
	struct h_server s = { 0 };
	struct h_victim v;
	int rc;

	CHECK(h_server_start(&s, args) == 0);
	CHECK(h_victim_setup(&s, &v, "local", NULL) == H_PASS);
	rc = remote_client(port_of(&s), "remote", NULL);
	CHECKM(rc == 10 + SDRSA_S_AUTH_FAILED, "remote client without key: exit %d", rc);
	CHECK_OK(h_victim_check(&s, &v));
	h_victim_close(&v);
	CHECK(h_server_stop(&s, SIGTERM, 5000) >= 0);
	return H_PASS;
}

/* --insecure: the remote peer is served, data intact. */
static int t_insecure_accepts_remote(void)
{
	static const char *const args[] = { "16M", "--listen", "0.0.0.0:0", "--insecure", NULL };
	struct h_server s = { 0 };
	int rc;

	CHECK(h_server_start(&s, args) == 0);
	rc = remote_client(port_of(&s), "remote", NULL);
	CHECKM(rc == 0, "remote client with --insecure: exit %d", rc);
	CHECK(h_server_stop(&s, SIGTERM, 5000) >= 0);
	return H_PASS;
}

/* Key file: a remote peer with its key is served; with a wrong key refused. */
static int t_key_file_remote(void)
{
	char path[512];
	const char *args[] = { "16M", "--listen", "0.0.0.0:0", "--key-file", path, NULL };
	struct h_server s = { 0 };
	int rc;

	snprintf(path, sizeof(path), "%s/keys", h_tmpdir());
	CHECK(write_keys(path) == 0);
	CHECK(h_server_start(&s, args) == 0);
	rc = remote_client(port_of(&s), "remote", key_remote);
	CHECKM(rc == 0, "remote client with its key: exit %d", rc);
	rc = remote_client(port_of(&s), "remote", key_wrong);
	CHECKM(rc == 10 + SDRSA_S_AUTH_FAILED, "remote client with a wrong key: exit %d", rc);
	CHECK(h_server_stop(&s, SIGTERM, 5000) >= 0);
	return H_PASS;
}

int main(int argc, char **argv)
{
	int rc;

	h_init(argc, argv);
	if (sodium_init() < 0)
		return 1;
	randombytes_buf(key_remote, sizeof(key_remote));
	randombytes_buf(key_wrong, sizeof(key_wrong));
	rc = setup_netns();
	if (rc == H_PASS) {
		h_run("no key file refuses a remote peer", t_no_key_refuses_remote);
		h_run("--insecure accepts a remote peer", t_insecure_accepts_remote);
		h_run("key file: remote peer with its key", t_key_file_remote);
	} else {
		h_run("network namespaces", setup_netns);
	}
	teardown();
	return h_finish();
}
