/* SPDX-License-Identifier: MIT */
/*
 * vm_agent: what the agent's tests need besides vm_harness: a memory server
 * of their own on 127.0.0.1 (port 0), a private control directory
 * ($SDRSA_RUN_DIR) so that tests never see real VMs or each other, and
 * helper processes (rsa-app watch, rsa-app stat) whose merged stdout and
 * stderr are followed line by line.
 *
 * Paths come from the environment that tests/vm/meson.build sets:
 * $SDRSA_RSA_APP (the agent binary, rsa-app), $SDRSA_MEMORY_SERVER, and the
 * shim is found by the agent next to itself. Every process started here is
 * killed by vm_proc_free()/vm_server_stop() and dies with the test
 * (PR_SET_PDEATHSIG).
 *
 * Functions return 0 (or a value >= 0) on success and -errno on failure.
 */
#ifndef SDRSA_TEST_VM_AGENT_H
#define SDRSA_TEST_VM_AGENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct vm_proc {
	pid_t pid;	 /* 0 once reaped */
	int status;	 /* wait status once reaped */
	int out_fd;	 /* merged stdout+stderr; -1 at EOF */
	char buf[16384]; /* bytes not yet returned as lines */
	size_t blen;
	const char *tag; /* prefix when copying lines to stderr */
};

/* Is the agent built? Returns 0, or -ENOENT with a reason in why. */
int vm_agent_available(char *why, size_t len);
const char *vm_agent_bin(void);

/* A fresh control directory (under /tmp), exported as $SDRSA_RUN_DIR. */
int vm_agent_rundir(char *buf, size_t len);
void vm_agent_rundir_remove(const char *dir);

/* Start `memory-server 1G --listen 127.0.0.1:0` and wait for "ready";
 * addr gets "127.0.0.1:PORT". */
int vm_server_start(struct vm_proc *p, char *addr, size_t len);

/* Start argv with its output in a pipe. */
int vm_proc_start(struct vm_proc *p, const char *tag, const char *const *argv);
/* Next line containing needle (earlier lines are consumed and copied to
 * stderr); 0, -ETIMEDOUT, or -ECHILD at EOF. */
int vm_proc_expect(struct vm_proc *p, const char *needle, int timeout_ms, char *line, size_t len);
/* Next line, whatever it is: 0, -ETIMEDOUT, -ECHILD. */
int vm_proc_line(struct vm_proc *p, int timeout_ms, char *line, size_t len);
/* Wait for exit: exit code (0..255), 128+signal, or -ETIMEDOUT. */
int vm_proc_wait(struct vm_proc *p, int timeout_ms);
void vm_proc_free(struct vm_proc *p);

/* Run argv to the end (at most timeout_ms, then SIGKILL), its output in out.
 * Returns the exit code, 128+signal, or -errno. */
int vm_run_cmd(const char *const *argv, int timeout_ms, char *out, size_t len);

struct vm;

/* Boot the guest under the agent: PREFIX is the agent's command line up to
 * and including "--" (`rsa-app vm NAME --server ... --`); 256 MiB of guest
 * RAM in QEMU's own memory, 80 s limit, run and after as in struct vm_opts
 * (NULL: none, default). Waits up to 30 s for the agent's "QEMU pid" line,
 * copied to line when given. 0 and *vm (vm_free() it, also on failure), or
 * -errno with the reason logged. */
int vm_agent_boot(const char *prefix, const char *run, const char *after, struct vm **vm,
		  char *line, size_t len);

struct vm_memloop;
/* What an agent test running the guest's memory loop checks first: the agent
 * is built, the loop's md5s are computed on the host (vm_memloop_init) and
 * a control directory is made (vm_agent_rundir, into rundir). 0, or the
 * test's exit status after vm_skip (a failure with CI). */
int vm_agent_memloop_prepare(struct vm_memloop *ml, unsigned rounds, unsigned size_mb,
			     uint64_t seed, unsigned keep, char *rundir, size_t len);

/* The "QEMU pid N" the agent prints at start, from a console line. */
pid_t vm_agent_qemu_pid(const char *line);

#endif
