/* SPDX-License-Identifier: MIT */
/*
 * pagebench: shared declarations of the page benchmark.
 *
 * The driver (pagebench.c) runs the same phases against every system; each
 * system (raw TCP baseline, sdrsa, memcached, Redis) lives in its own file
 * behind struct pb_sys_ops: start its server as a child process, connect one
 * client, a synchronous get and put, and a pipelined loop that keeps up to
 * `depth` operations in flight. Page contents, their expected generations and
 * the checks live in the driver, so every system is verified the same way.
 *
 * Child processes are registered with pb_child_*(); the driver kills them on
 * exit, on error and on signals. Nothing here is thread-safe: the bench is
 * one thread plus its children.
 */
#ifndef PAGEBENCH_H
#define PAGEBENCH_H

#include <sched.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#define PB_PAGE 4096u
/* Most operations a pipelined job keeps in flight. */
#define PB_MAX_DEPTH 256u
/* Most timed runs per throughput phase (--tp-reps). */
#define PB_TP_REPS_MAX 15u
/* Every page address is PB_ADDR_BASE + i * PB_PAGE, i < working-set pages. */
#define PB_ADDR_BASE 0x100000000ull

/* A pipelined run: n operations on addrs[], at most depth in flight. */
struct pb_job {
	int is_put;
	size_t n;
	const uint64_t *addrs;
	unsigned depth;
	uint8_t **slots; /* depth page buffers, one per operation in flight */
	int full_verify; /* 1: compare every byte of a got page; 0: sampled words */
	uint64_t done;	 /* operations completed (successfully or not) */
	uint64_t errors; /* operations that returned an error */
};

struct pb_system;

struct pb_sys_ops {
	const char *name;
	/* Start the server child (its CPU mask is s->cpus) and wait until it
	 * accepts connections. 0 or -1 with s->err set. */
	int (*start)(struct pb_system *s);
	/* One client connection. 0 or -1 with s->err set. */
	int (*connect)(struct pb_system *s);
	/* Synchronous page operations: 0, or -1 with s->err set. */
	int (*get)(struct pb_system *s, uint64_t addr, void *page);
	int (*put)(struct pb_system *s, uint64_t addr, const void *page);
	/* Run a whole job. Calls pb_job_fill() before sending each put,
	 * pb_job_check() on each page got, pb_job_error() on each failed
	 * operation. Returns 0, or -1 (s->err set) when the connection is lost
	 * and the job cannot go on. */
	int (*pipeline)(struct pb_system *s, struct pb_job *job);
	/* Close the client connection; the driver then stops the server. */
	void (*disconnect)(struct pb_system *s);
};

struct pb_system {
	const struct pb_sys_ops *ops;
	const cpu_set_t *cpus; /* CPU mask for the server process */
	pid_t pid;	       /* server child, 0 when none */
	int port;
	char log_path[256]; /* server's stdout and stderr */
	void *priv;	    /* the system's client state */
	char err[512];	    /* last error, one line */
};

/* Options the systems read. */
struct pb_opts {
	const char *server_bin; /* memory-server */
	int server_threads;	/* --threads of memory-server */
	int spin_us;		/* sdrsa client spin; 0: library default */
	int timeout_ms;		/* per-operation client timeout */
	uint64_t pages;		/* working set */
	const char *tmpdir;	/* logs and server files */
};
extern struct pb_opts pb_opts;

/* Systems. */
extern const struct pb_sys_ops pb_sys_raw;
extern const struct pb_sys_ops pb_sys_sdrsa;
extern const struct pb_sys_ops pb_sys_memcached;
extern const struct pb_sys_ops pb_sys_redis;

/* Page contents and checks (pagebench.c). */
void pb_job_fill(struct pb_job *job, void *page, uint64_t addr);
void pb_job_check(struct pb_job *job, const void *page, uint64_t addr);
void pb_job_error(struct pb_job *job, uint64_t addr, const char *what);
/* Page index of an address, or -1 when outside the working set. */
int64_t pb_page_index(uint64_t addr);
/* Key of a page for key-value stores: "pg:<hex addr>"; returns its length. */
size_t pb_page_key(uint64_t addr, char *buf, size_t n);

/* Child processes (proc.c). */
void pb_child_register(pid_t pid);
void pb_child_forget(pid_t pid);
/* Kill every registered child (SIGKILL); async-signal-safe. */
void pb_child_kill_all(void);
/* Ask a child to stop (SIGTERM), wait up to timeout_ms, then SIGKILL.
 * Returns its wait status, or -1 if it could not be reaped. */
int pb_child_stop(pid_t pid, int timeout_ms);
/* fork + exec argv with stdout and stderr appended to log_path, on the
 * given CPUs, dying with the bench (PR_SET_PDEATHSIG). Returns the pid or
 * -1 with err set. */
pid_t pb_spawn(char *const argv[], const char *log_path, const cpu_set_t *cpus, char *err,
	       size_t errlen);
/* A TCP port on 127.0.0.1 that was free a moment ago, or -1. */
int pb_free_port(void);
/* Wait until 127.0.0.1:port accepts a connection while pid lives.
 * 0, or -1 with err set (child exited, or timeout). */
int pb_wait_port(pid_t pid, int port, int timeout_ms, const char *log_path, char *err,
		 size_t errlen);
/* Start a peer server (memcached, redis-server) for s: find NAME in /usr/bin,
 * /usr/sbin or /usr/local/bin, run it with ARGS (NULL-terminated, without
 * argv[0]; an element "@PORT@" becomes a free port) logging to tmpdir/LOG,
 * and wait until it accepts connections. The port is chosen free and then
 * handed over, so another process can take it in between: up to 3 tries,
 * each with a new port. 0 with s->pid and s->port set, or -1 with s->err. */
#define PB_PORT_ARG "@PORT@"
int pb_start_peer(struct pb_system *s, const char *name, const char *log,
		  const char *const *args);
/* Copy the last lines of a log into buf (for error messages). */
void pb_log_tail(const char *path, char *buf, size_t n);
/* TCP connect to 127.0.0.1:port with TCP_NODELAY and send/receive timeouts.
 * Returns the fd or -errno. */
int pb_tcp_connect(int port, int timeout_ms);
/* Exact I/O on blocking sockets: 0, or -errno (-ECONNRESET on EOF). */
int pb_read_full(int fd, void *buf, size_t n);
int pb_writev_full(int fd, struct iovec *iov, int iovcnt);

uint64_t pb_now_ns(void);

#endif
