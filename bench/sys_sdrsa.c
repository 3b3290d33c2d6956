/* SPDX-License-Identifier: MIT */
/*
 * pagebench: sdrsa, the real memory-server binary driven through libsdrsa.
 *
 * The server is started as `memory-server SIZE --listen 127.0.0.1:0
 * --threads N` with its stdout and stderr in a log file; the bench waits for
 * the `listening on 127.0.0.1:PORT` and `ready` lines it prints there.
 * Latency uses the synchronous sdrsa_get()/sdrsa_put(); throughput keeps
 * `depth` operations in flight with sdrsa_submit_get()/_put() and
 * sdrsa_reap(), resubmitting as completions arrive (in any order).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sdrsa/client.h>

#include "pagebench.h"

/* Scan the log for "listening on 127.0.0.1:PORT" and "ready". 1 when both
 * were seen (port set), 0 otherwise. */
static int sdrsa_scan_log(const char *path, int *port)
{
	char buf[8192];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	const char *l = strstr(buf, "listening on ");
	if (!l)
		return 0;
	l += strlen("listening on ");
	const char *colon = strchr(l, '\n');
	const char *p = NULL;
	for (const char *q = l; *q && (!colon || q < colon); q++)
		if (*q == ':')
			p = q; /* last ':' of the line: the port follows */
	if (!p)
		return 0;
	int v = atoi(p + 1);
	if (v <= 0 || v > 65535)
		return 0;
	/* "ready" on a line of its own, after the listening line */
	const char *r = l;
	while ((r = strstr(r, "ready"))) {
		if ((r == buf || r[-1] == '\n') && (r[5] == '\n' || r[5] == '\0' || r[5] == '\r')) {
			*port = v;
			return 1;
		}
		r += 5;
	}
	return 0;
}

/* Start memory-server listening on `listen`; 0 when it printed its port and
 * "ready", -1 with s->err set otherwise. */
static int sdrsa_start_on(struct pb_system *s, const char *size, const char *threads,
			  const char *listen)
{
	/* Start from an empty log so that an earlier run's lines do not count. */
	int fd = open(s->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
	char *argv[] = {(char *)pb_opts.server_bin,
			(char *)size,
			"--listen",
			(char *)listen,
			"--threads",
			(char *)threads,
			NULL};
	s->pid = pb_spawn(argv, s->log_path, s->cpus, s->err, sizeof(s->err));
	if (s->pid < 0) {
		s->pid = 0;
		return -1;
	}
	uint64_t deadline = pb_now_ns() + 10000000000ull;
	for (;;) {
		int status, port;
		if (sdrsa_scan_log(s->log_path, &port)) {
			s->port = port;
			return 0;
		}
		if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
			char tail[300];
			pb_child_forget(s->pid);
			s->pid = 0;
			pb_log_tail(s->log_path, tail, sizeof(tail));
			snprintf(s->err, sizeof(s->err),
				 "memory-server exited (%s %d) at start: %s",
				 WIFEXITED(status) ? "status" : "signal",
				 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), tail);
			return -1;
		}
		if (pb_now_ns() > deadline) {
			char tail[300];
			pb_log_tail(s->log_path, tail, sizeof(tail));
			snprintf(s->err, sizeof(s->err),
				 "memory-server printed no 'listening on' and 'ready' within 10 s"
				 " (is its stdout flushed?): %s",
				 tail);
			pb_child_stop(s->pid, 1000);
			s->pid = 0;
			return -1;
		}
		struct timespec ts = {0, 5000000};
		nanosleep(&ts, NULL);
	}
}

static int sdrsa_start(struct pb_system *s)
{
	char size[32], threads[16], listen[32];
	/* Room for the working set twice over; at least 64 MiB. */
	uint64_t mib = (pb_opts.pages * PB_PAGE * 2 + (1u << 20) - 1) >> 20;
	snprintf(size, sizeof(size), "%lluM", (unsigned long long)(mib < 64 ? 64 : mib));
	snprintf(threads, sizeof(threads), "%d", pb_opts.server_threads);
	snprintf(s->log_path, sizeof(s->log_path), "%s/memory-server.log", pb_opts.tmpdir);
	if (access(pb_opts.server_bin, X_OK) != 0) {
		snprintf(s->err, sizeof(s->err),
			 "memory-server not found at %s (build it, or give --server-bin)",
			 pb_opts.server_bin);
		return -1;
	}
	/* Port 0: the kernel picks a free port and the server prints it. */
	if (sdrsa_start_on(s, size, threads, "127.0.0.1:0") == 0)
		return 0;
	/* A server that refuses port 0 gets a port that was free a moment ago
	 * (retried, since another process may take it in between). */
	char first_err[sizeof(s->err)];
	memcpy(first_err, s->err, sizeof(first_err));
	for (int attempt = 0; attempt < 3; attempt++) {
		int port = pb_free_port();
		if (port < 0)
			break;
		snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
		if (sdrsa_start_on(s, size, threads, listen) == 0) {
			fprintf(stderr,
				"pagebench: note: memory-server refused --listen 127.0.0.1:0"
				" (%s); used port %d\n",
				first_err, port);
			return 0;
		}
	}
	return -1;
}

static int sdrsa_connect(struct pb_system *s)
{
	char addr[64];
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", s->port);
	struct sdrsa_client_config cfg = {
	    .address = addr,
	    .name = "pagebench",
	    .timeout_ms = pb_opts.timeout_ms,
	    .spin_us = pb_opts.spin_us,
	};
	struct sdrsa_client *c;
	int r = sdrsa_client_connect(&cfg, &c);
	if (r < 0) {
		snprintf(s->err, sizeof(s->err), "sdrsa connect %s: %s", addr, strerror(-r));
		return -1;
	}
	s->priv = c;
	return 0;
}

static void sdrsa_disconnect(struct pb_system *s)
{
	sdrsa_client_free(s->priv);
	s->priv = NULL;
}

static int sdrsa_bench_get(struct pb_system *s, uint64_t addr, void *page)
{
	int r = sdrsa_get(s->priv, addr, page);
	if (r < 0) {
		snprintf(s->err, sizeof(s->err), "sdrsa get %#llx: %s", (unsigned long long)addr,
			 strerror(-r));
		return -1;
	}
	return 0;
}

static int sdrsa_bench_put(struct pb_system *s, uint64_t addr, const void *page)
{
	int r = sdrsa_put(s->priv, addr, page);
	if (r < 0) {
		snprintf(s->err, sizeof(s->err), "sdrsa put %#llx: %s", (unsigned long long)addr,
			 strerror(-r));
		return -1;
	}
	return 0;
}

static int sdrsa_submit(struct pb_system *s, struct pb_job *job, unsigned slot, uint64_t addr)
{
	int r;
	if (job->is_put) {
		pb_job_fill(job, job->slots[slot], addr);
		r = sdrsa_submit_put(s->priv, addr, job->slots[slot], slot);
	} else {
		r = sdrsa_submit_get(s->priv, addr, job->slots[slot], slot);
	}
	if (r < 0)
		snprintf(s->err, sizeof(s->err), "sdrsa submit %#llx: %s", (unsigned long long)addr,
			 strerror(-r));
	return r;
}

static int sdrsa_pipeline(struct pb_system *s, struct pb_job *job)
{
	struct sdrsa_completion comp[PB_MAX_DEPTH];
	uint64_t addr_of[PB_MAX_DEPTH];
	size_t issued = 0, inflight = 0;

	for (unsigned i = 0; i < job->depth && issued < job->n; i++) {
		addr_of[i] = job->addrs[issued++];
		if (sdrsa_submit(s, job, i, addr_of[i]) < 0)
			return -1;
		inflight++;
	}
	while (inflight > 0) {
		int n = sdrsa_reap(s->priv, comp, job->depth, 1, -1);
		if (n < 0) {
			snprintf(s->err, sizeof(s->err), "sdrsa reap: %s", strerror(-n));
			return -1;
		}
		for (int i = 0; i < n; i++) {
			uint64_t slot = comp[i].tag;
			inflight--;
			job->done++;
			if (slot >= job->depth || comp[i].addr != addr_of[slot]) {
				pb_job_error(job, comp[i].addr,
					     "sdrsa: completion with a wrong tag");
				continue;
			}
			if (comp[i].result < 0) {
				char why[96];
				snprintf(why, sizeof(why), "sdrsa %s: %s",
					 job->is_put ? "put" : "get", strerror(-comp[i].result));
				pb_job_error(job, comp[i].addr, why);
			} else if (!job->is_put) {
				pb_job_check(job, job->slots[slot], addr_of[slot]);
			}
			if (issued < job->n) {
				addr_of[slot] = job->addrs[issued++];
				if (sdrsa_submit(s, job, (unsigned)slot, addr_of[slot]) < 0)
					return -1;
				inflight++;
			}
		}
	}
	return 0;
}

const struct pb_sys_ops pb_sys_sdrsa = {
    .name = "sdrsa",
    .start = sdrsa_start,
    .connect = sdrsa_connect,
    .get = sdrsa_bench_get,
    .put = sdrsa_bench_put,
    .pipeline = sdrsa_pipeline,
    .disconnect = sdrsa_disconnect,
};
