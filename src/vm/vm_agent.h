/* SPDX-License-Identifier: MIT */
/*
 * Inside the VM agent: what a hypervisor backend gives the shared agent
 * (event loop, control socket, pager, statistics). agent.c is the shared
 * part; qemu.c (tested) and xen.c (compiled with -Dxen=true, not run here)
 * are the backends.
 */
#ifndef SDRSA_VM_AGENT_H
#define SDRSA_VM_AGENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "vm/pager.h"

struct vm_backend {
	const char *kind;	     /* "QEMU" or "Xen domain", for messages */
	const struct pager_ops *ops; /* page operations for the pager */
	void *ctx;		     /* the backend's state, for every callback */
	uint64_t npages;	     /* guest RAM in pages */
	int fault_fd;		     /* readable when faults wait */
	pid_t pid;		     /* the guest's process (QEMU), or -1 */
	/* Read and serve the faults that wait (pager_fault for each). Returns
	 * how many, 0 when none, or -errno (fatal; -ESRCH: the guest is gone). */
	int (*serve)(void *ctx, struct pager *p);
	/* Guest-physical address -> page number, or -ERANGE. */
	int64_t (*gpa_to_page)(void *ctx, uint64_t gpa);
	/* The layout of guest RAM for messages ("256 MiB at 0x0-0xfffffff"). */
	void (*describe_ram)(void *ctx, char *buf, size_t len);
	/* Tell the pager about pages present before it started (the backend
	 * may keep p for later, e.g. to restore pages when it detaches). */
	int (*adopt)(void *ctx, struct pager *p);
	/* Stop the guest at once (a fatal error: pages can no longer be served). */
	void (*kill)(void *ctx);
	/* Ask the guest to stop (the agent got SIGTERM or SIGINT). */
	void (*stop)(void *ctx);
	/* The guest ended by itself (for Xen: the domain is gone). NULL: use
	 * pid and SIGCHLD. Returns 1 when it ended. */
	int (*ended)(void *ctx);
	/* May the agent free the guest's pages on the server at exit? NULL:
	 * yes (QEMU is gone by then). Xen: only if the domain is gone or has
	 * all its pages back. */
	int (*may_free)(void *ctx);
	void (*destroy)(void *ctx);
};

/* Print "rsa-app: vm NAME: ..." on stderr. */
void vm_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The QEMU backend (qemu.c). qemu_prepare checks and rewrites the command
 * line and creates nothing yet; it returns 0, or an exit status (2 bad
 * usage) after printing why. qemu_launch creates the RAM file, starts QEMU
 * with the shim and waits for its userfaultfd; 0 or 1 after printing. */
struct qemu_be;
int qemu_prepare(const char *name, char **argv, int argc, struct qemu_be **ret,
		 uint64_t *ram_bytes);
int qemu_launch(struct qemu_be *q, struct vm_backend *out);
void qemu_discard(struct qemu_be *q);

#ifdef SDRSA_HAVE_XEN
/* The Xen backend (xen.c): attach to a running domain. 0 or 1 after
 * printing. */
int xen_attach(const char *domain, struct vm_backend *out, uint64_t *ram_bytes);
#endif

#endif
