/* SPDX-License-Identifier: MIT */
/*
 * The memory server: listeners, N worker threads each running its own epoll
 * loop over its connections, the handshake, and the page operations served
 * from a store (store.h). src/bin/memory-server.c is a thin main() around
 * this API: it parses options, installs signal handlers that call the
 * async-signal-safe functions below, prints the stdout lines and logs.
 *
 * Life cycle: sdrsa_server_new() reserves the pool, loads keys and binds
 * every listener (connections queue from then on); sdrsa_server_run() starts
 * the workers and returns after sdrsa_server_stop(); sdrsa_server_free()
 * closes listeners and removes Unix socket files it created.
 *
 * The library does not print: every message goes through cfg.log, one line
 * each, without trailing newline. Threads and locks: docs/THREADS.md.
 */
#ifndef SDRSA_SERVER_SERVER_H
#define SDRSA_SERVER_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <syslog.h>

#include <sdrsa/protocol.h>

/* Defaults of the options (also shown by --help). */
#define SDRSA_SERVER_MAX_CONNS 1024u
#define SDRSA_SERVER_IO_TIMEOUT_MS 10000u
#define SDRSA_SERVER_MAX_THREADS_DEFAULT 4u
/*
 * Busy-poll after activity, in us; 0: off. While the window is open a worker
 * calls sched_yield() then epoll_wait(0) instead of sleeping, so a request that
 * arrives soon is served without a wake-up. Measured on this project's 2-vCPU
 * machine (Linux 6.18, loopback TCP, synchronous 4 KiB GETs, median of 20,000;
 * pipelined: windows of 32 GETs; a raw blocking TCP server that answers 16
 * bytes with 4096 as reference):
 *   client and server unpinned:    0 us: 53.5 us (raw 51.3)   50 us: 20.2 us
 *   both on the same vCPU:         0 us: 13.7 us (raw 12.3)   50 us: 13.6 us (raw 12.1)
 *   pipelined, unpinned:           0 us: 1.9-2.4 GB/s          50 us: 3.2-3.5 GB/s
 *   pipelined, same vCPU:          0 us: 4.2 GB/s              50 us: 4.2 GB/s
 * 10 us was too short to bridge a client's think time (23 us median), 25-100
 * us all gave ~21 us. Without the sched_yield() spinning on a vCPU shared with
 * the client cost 30% of pipelined throughput (4.2 -> 3.0 GB/s). An idle
 * server does not spin: the window opens only when events arrived.
 */
#define SDRSA_SERVER_BUSY_POLL_US 50u

typedef void (*sdrsa_server_log_fn)(void *userdata, int level, const char *msg);

struct sdrsa_server_config {
	uint64_t pool_bytes;	   /* rounded down to whole pages; must leave >= 1 */
	const char *const *listen; /* "HOST:PORT", "[V6]:PORT", "unix:PATH", "/PATH" */
	size_t nlisten;		   /* 0: 127.0.0.1:2223 */
	const char *key_file;	   /* NULL: no authentication (local peers only) */
	int insecure;		   /* without key_file, accept non-local peers too */
	unsigned threads;	   /* workers; 0: min(online CPUs, 4) */
	uint64_t quota_pages;	   /* per client namespace; 0: none */
	unsigned max_conns;	   /* 0: SDRSA_SERVER_MAX_CONNS */
	uint64_t io_timeout_ms;	   /* 0: SDRSA_SERVER_IO_TIMEOUT_MS */
	unsigned busy_poll_us;	   /* 0: no spinning */
	int lock;		   /* populate and mlock the pool */
	sdrsa_server_log_fn log;   /* optional */
	void *log_userdata;
	int log_level; /* highest syslog level passed to log; 0: LOG_INFO */
};

struct sdrsa_server;

/*
 * Check the config, raise RLIMIT_NOFILE, reserve the pool, load the key file,
 * bind and listen. On failure returns -errno and writes a one-line message
 * for the operator (what failed and what to do) to err.
 */
int sdrsa_server_new(const struct sdrsa_server_config *cfg, char *err, size_t err_len,
		     struct sdrsa_server **ret);
/* Check that a listen address parses (no socket is opened). Returns 0 or
 * -errno with a one-line message in err. */
int sdrsa_server_check_address(const char *spec, char *err, size_t err_len);

/* Close everything, remove Unix sockets this server created. Accepts NULL.
 * Must not be called while sdrsa_server_run() is running. */
void sdrsa_server_free(struct sdrsa_server *s);

/* Listeners in config order; name as sdrsa_format_sockaddr() prints it, with
 * the port the kernel chose when 0 was asked for. */
size_t sdrsa_server_listeners(const struct sdrsa_server *s);
void sdrsa_server_listener_name(const struct sdrsa_server *s, size_t i, char *buf, size_t n);
/* The human summary: "pool 64 MiB (16384 pages), 2 threads, ..." */
void sdrsa_server_describe(const struct sdrsa_server *s, char *buf, size_t n);

/* Serve until sdrsa_server_stop(). Returns 0 or -errno (threads could not
 * start). Call from the thread that receives the process's signals. */
int sdrsa_server_run(struct sdrsa_server *s);

/* Async-signal-safe requests, acted on by the thread in sdrsa_server_run():
 * stop (close listeners and connections, workers exit), log the page counts
 * of every namespace, reload the key file. */
void sdrsa_server_stop(struct sdrsa_server *s);
void sdrsa_server_request_dump(struct sdrsa_server *s);
void sdrsa_server_request_reload(struct sdrsa_server *s);
/* Enter draining mode (signal-safe): PUTs are refused as POOL_FULL, STATS
 * says draining, clients of a pool move their pages away, and the server
 * stops by itself once it holds no page (docs/POOL.md). */
void sdrsa_server_request_drain(struct sdrsa_server *s);

/* Counters summed over workers; ns_pages and ns_quota are 0. */
void sdrsa_server_stats(struct sdrsa_server *s, struct sdrsa_stats *out);
/* Connections accepted since start. */
uint64_t sdrsa_server_accepted(struct sdrsa_server *s);

const char *sdrsa_server_version(void);

#endif
