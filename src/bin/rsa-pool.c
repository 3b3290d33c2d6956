// SPDX-License-Identifier: MIT
/*
 * rsa-app pool: look at and operate a pool of memory servers (docs/POOL.md).
 *
 *   rsa-app pool status [FILE] [--server ADDR]... [--name NAME] [-k KEYFILE]
 *       each server: up or down, pages used and free, draining, PING latency.
 *       Exit 0 when every server answers, 1 otherwise.
 *   rsa-app pool drain ADDR [--pid PID] [--timeout DUR]
 *       run on the server's host: sends SIGUSR2 to the memory-server
 *       listening on ADDR (found through /proc, or --pid), which then refuses
 *       new pages; the engines of its clients move their pages to the other
 *       servers and free them there, and the server exits once it holds no
 *       page. Waits for that (progress on stderr) up to --timeout (10m).
 *
 * Draining is asked for with a signal, not a protocol operation: it affects
 * every client of the server, so only who may signal the server's process
 * (its user, root) on its own host may ask; no network client can.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <sdrsa/client.h>

#include "common/util.h"
#include "rsa-pool.h"

#define PROG "rsa-app"

static int connect_one(const struct poolconf *pool, size_t i, const char *name,
		       const uint8_t *key, int timeout_ms, struct sdrsa_client **c)
{
	struct sdrsa_client_config cc = {
		.address = pool->addr[i],
		.name = name,
		.key = pool->has_key[i] ? pool->key[i] : key,
		.timeout_ms = timeout_ms,
	};
	return sdrsa_client_connect(&cc, c);
}

int rsa_pool_check(const struct poolconf *pool, const char *name, const uint8_t *key,
		   unsigned replicas)
{
	unsigned up = 0;
	for (size_t i = 0; i < pool->n; i++) {
		struct sdrsa_client *c;
		int r = connect_one(pool, i, name, key, 3000, &c);
		if (r < 0) {
			fprintf(stderr, PROG ": memory server %s: %s (left out until it answers)\n",
				pool->addr[i], strerror(-r));
			continue;
		}
		sdrsa_client_free(c);
		up++;
	}
	if (up < replicas) {
		fprintf(stderr,
			PROG ": only %u of %zu memory servers answer; %u replicas need at least "
			"%u\n",
			up, pool->n, replicas, replicas);
		return 1;
	}
	return 0;
}

void rsa_pool_free_all(const struct poolconf *pool, const char *name, const uint8_t *key)
{
	for (size_t i = 0; i < pool->n; i++) {
		struct sdrsa_client *c;
		if (connect_one(pool, i, name, key, 2000, &c) < 0) {
			fprintf(stderr, PROG ": could not reach %s to free the program's pages\n",
				pool->addr[i]);
			continue;
		}
		if (sdrsa_free_all(c, NULL) < 0)
			fprintf(stderr, PROG ": could not free the program's pages on %s\n",
				pool->addr[i]);
		sdrsa_client_free(c);
	}
}

static void pool_usage(FILE *f)
{
	fprintf(f,
		"Usage: " PROG " pool status [FILE] [--server ADDR]... [--name NAME] [-k KEYFILE]\n"
		"       " PROG " pool drain ADDR [--pid PID] [--timeout DUR]\n"
		"\n"
		"status: each server of a pool (a pool file and/or --server options): up or\n"
		"down, pages used and free, draining, PING latency. Exit 1 if one is down.\n"
		"drain: on the server's host, make the memory-server listening on ADDR (or\n"
		"process PID) refuse new pages; its clients move their pages to the other\n"
		"servers and it exits once empty. Waits for that, up to DUR (default 10m).\n");
}

static int pool_status(int argc, char **argv)
{
	static const struct option opts[] = {
		{"server", required_argument, NULL, 's'},
		{"name", required_argument, NULL, 'n'},
		{"key-file", required_argument, NULL, 'k'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	static struct poolconf pool;
	const char *name = "rsa-pool-status", *keyfile = NULL, *servers[POOLCONF_MAX];
	size_t nservers = 0;
	char err[512];
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "s:n:k:h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			if (nservers == POOLCONF_MAX) {
				fprintf(stderr, PROG ": more than %d servers\n", POOLCONF_MAX);
				return 2;
			}
			servers[nservers++] = optarg;
			break;
		case 'n':
			name = optarg;
			break;
		case 'k':
			keyfile = optarg;
			break;
		case 'h':
			pool_usage(stdout);
			return 0;
		default:
			return 2;
		}
	}
	uint8_t key[SDRSA_KEY_SIZE];
	if (keyfile) {
		int r = sdrsa_key_load(keyfile, name, key);
		if (r < 0) {
			fprintf(stderr, PROG ": cannot load the key of '%s' from %s: %s\n", name,
				keyfile, strerror(-r));
			return 1;
		}
	}
	for (int i = optind; i < argc; i++) {
		int r = poolconf_load(&pool, argv[i], name, err, sizeof(err));
		if (r < 0) {
			fprintf(stderr, PROG ": %s\n", err);
			return 2;
		}
	}
	for (size_t i = 0; i < nservers; i++)
		if (poolconf_add(&pool, servers[i], 0, NULL, err, sizeof(err)) < 0) {
			fprintf(stderr, PROG ": --server: %s\n", err);
			return 2;
		}
	if (!pool.n) {
		fprintf(stderr, PROG ": pool status: no servers (give a pool file or --server)\n");
		return 2;
	}
	printf("%-28s %-9s %12s %12s %10s\n", "SERVER", "STATE", "USED PAGES", "FREE PAGES",
	       "LATENCY");
	int down = 0;
	for (size_t i = 0; i < pool.n; i++) {
		struct sdrsa_client *cl;
		struct sdrsa_stats st;
		int r = connect_one(&pool, i, name, keyfile ? key : NULL, 2000, &cl);
		uint64_t t0 = 0, t1 = 0;
		if (r == 0) {
			t0 = sdrsa_now_ns();
			r = sdrsa_ping(cl);
			t1 = sdrsa_now_ns();
			if (r == 0)
				r = sdrsa_stats(cl, &st);
			sdrsa_client_free(cl);
		}
		if (r < 0) {
			printf("%-28s %-9s %12s %12s %10s  (%s)\n", pool.addr[i], "down", "-", "-", "-",
			       strerror(-r));
			down++;
			continue;
		}
		uint64_t used = st.used_pages + st.zero_pages;
		printf("%-28s %-9s %12llu %12llu %7.0f us\n", pool.addr[i],
		       st.draining ? "draining" : "up", (unsigned long long)used,
		       (unsigned long long)(st.pool_pages > st.used_pages
						    ? st.pool_pages - st.used_pages
						    : 0),
		       (double)(t1 - t0) / 1000.0);
	}
	return down ? 1 : 0;
}

/* The inode of the listening socket of addr in this network namespace, or 0. */
static unsigned long listener_inode(const char *addr)
{
	struct sockaddr_storage ss;
	socklen_t len;
	if (sdrsa_parse_sockaddr(addr, SDRSA_DEFAULT_PORT, &ss, &len) < 0)
		return 0;
	char line[512];
	if (ss.ss_family == AF_UNIX) {
		const char *path = ((struct sockaddr_un *)&ss)->sun_path;
		FILE *f = fopen("/proc/net/unix", "re");
		unsigned long inode = 0;
		while (f && fgets(line, sizeof(line), f)) {
			char p[256] = "";
			unsigned long ino;
			unsigned flags;
			/* Num RefCount Protocol Flags Type St Inode Path */
			if (sscanf(line, "%*s %*s %*s %x %*s %*s %lu %255s", &flags, &ino, p) == 3 &&
			    (flags & 0x10000) && !strcmp(p, path))
				inode = ino;
		}
		if (f)
			fclose(f);
		return inode;
	}
	int port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
						   : ((struct sockaddr_in6 *)&ss)->sin6_port);
	const char *files[] = {"/proc/net/tcp", "/proc/net/tcp6"};
	for (size_t k = 0; k < 2; k++) {
		FILE *f = fopen(files[k], "re");
		while (f && fgets(line, sizeof(line), f)) {
			char local[64];
			unsigned st, lport;
			unsigned long ino;
			if (sscanf(line, "%*s %63[0-9A-Fa-f]:%x %*s %x %*s %*s %*s %*s %*s %lu", local,
				   &lport, &st, &ino) != 4 ||
			    st != 0x0A || (int)lport != port)
				continue;
			int match = 1;
			if (ss.ss_family == AF_INET && strlen(local) == 8) {
				uint32_t raw = (uint32_t)strtoul(local, NULL, 16);
				uint32_t want = ((struct sockaddr_in *)&ss)->sin_addr.s_addr;
				match = raw == want || raw == 0;
			}
			if (match) {
				fclose(f);
				return ino;
			}
		}
		if (f)
			fclose(f);
	}
	return 0;
}

/* The process holding socket inode ino, or -1. */
static pid_t owner_of(unsigned long ino)
{
	char want[64], path[300], link[64];
	snprintf(want, sizeof(want), "socket:[%lu]", ino);
	DIR *d = opendir("/proc");
	pid_t found = -1;
	struct dirent *de;
	while (d && found < 0 && (de = readdir(d))) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/fd", de->d_name);
		DIR *fd = opendir(path);
		struct dirent *fe;
		while (fd && found < 0 && (fe = readdir(fd))) {
			char p[600];
			snprintf(p, sizeof(p), "%s/%s", path, fe->d_name);
			ssize_t n = readlink(p, link, sizeof(link) - 1);
			if (n > 0) {
				link[n] = 0;
				if (!strcmp(link, want))
					found = (pid_t)atoi(de->d_name);
			}
		}
		if (fd)
			closedir(fd);
	}
	if (d)
		closedir(d);
	return found;
}

/* Has process pid ended (gone, or a zombie its parent has not reaped)? */
static int process_ended(pid_t pid)
{
	char path[64], buf[256];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return 1;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	const char *paren = strrchr(buf, ')');
	return paren && paren[1] == ' ' && (paren[2] == 'Z' || paren[2] == 'X');
}

static int pool_drain(int argc, char **argv)
{
	static const struct option opts[] = {
		{"pid", required_argument, NULL, 'p'},
		{"timeout", required_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	pid_t pid = 0;
	uint64_t timeout = 600000;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "p:t:h", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			pid = (pid_t)atoi(optarg);
			if (pid <= 0) {
				fprintf(stderr, PROG ": --pid %s: not a process id\n", optarg);
				return 2;
			}
			break;
		case 't':
			if (sdrsa_parse_duration_ms(optarg, &timeout) < 0 || !timeout) {
				fprintf(stderr, PROG ": --timeout %s: not a duration (e.g. 10m)\n",
					optarg);
				return 2;
			}
			break;
		case 'h':
			pool_usage(stdout);
			return 0;
		default:
			return 2;
		}
	}
	if (optind + 1 != argc) {
		fprintf(stderr, PROG ": pool drain: give one server address (try '" PROG
				" pool --help')\n");
		return 2;
	}
	const char *addr = argv[optind];
	if (!pid) {
		unsigned long ino = listener_inode(addr);
		pid = ino ? owner_of(ino) : -1;
		if (pid <= 0) {
			fprintf(stderr,
				PROG ": no process listens on %s on this host; run this on the "
				"server's host, or give --pid\n",
				addr);
			return 1;
		}
	}
	if (kill(pid, SIGUSR2) < 0) {
		fprintf(stderr, PROG ": cannot signal memory-server (pid %d): %s\n", (int)pid,
			strerror(errno));
		return 1;
	}
	fprintf(stderr, PROG ": %s (pid %d) is draining: its clients move their pages away\n",
		addr, (int)pid);
	uint64_t t0 = sdrsa_now_ms(), last = UINT64_MAX;
	for (;;) {
		struct sdrsa_client_config cc = {
			.address = addr, .name = "rsa-pool-drain", .timeout_ms = 2000};
		struct sdrsa_client *cl;
		struct sdrsa_stats st;
		int r = sdrsa_client_connect(&cc, &cl);
		if (r == 0) {
			r = sdrsa_stats(cl, &st);
			sdrsa_client_free(cl);
		}
		if (r < 0 && process_ended(pid)) {
			fprintf(stderr, PROG ": %s has moved every page away and stopped (%.1f s)\n",
				addr, (double)(sdrsa_now_ms() - t0) / 1000.0);
			return 0;
		}
		if (r == 0 && st.used_pages + st.zero_pages != last) {
			last = st.used_pages + st.zero_pages;
			fprintf(stderr, PROG ": %s: %llu pages left\n", addr, (unsigned long long)last);
		}
		if (sdrsa_now_ms() - t0 >= timeout) {
			fprintf(stderr,
				PROG ": %s still holds pages after %.0f s (clients not in a pool "
				"cannot move theirs); it keeps draining, SIGTERM stops it\n",
				addr, (double)timeout / 1000.0);
			return 1;
		}
		usleep(200000);
	}
}

int rsa_pool_main(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		pool_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (!strcmp(argv[1], "status"))
		return pool_status(argc - 1, argv + 1);
	if (!strcmp(argv[1], "drain"))
		return pool_drain(argc - 1, argv + 1);
	fprintf(stderr, PROG ": unknown pool command '%s' (use status or drain)\n", argv[1]);
	return 2;
}
