/* SPDX-License-Identifier: MIT */
/*
 * What the VM agent (rsa-app vm), the QEMU shim (libsdrsa-qemu-shim.so) and
 * the control clients (rsa-app watch, rsa-app stat) say to each other. All
 * three run on one host as the same user, so these are host-endian structs
 * and text lines, not the network protocol of include/sdrsa/protocol.h.
 *
 * 1. Agent <-> shim: an AF_UNIX SOCK_SEQPACKET socketpair made by the agent
 *    before it starts QEMU; QEMU inherits one end, its number is in
 *    $SDRSA_VM_SHIM_FD. The shim sends one struct vm_hello with the
 *    userfaultfd as SCM_RIGHTS once QEMU has mapped the RAM file; the agent
 *    answers one struct vm_hello_reply. Afterwards the socket carries nothing:
 *    the shim's watchdog thread blocks on it, and EOF means the agent died
 *    (see shim.c for what happens then).
 *
 * 2. Control clients -> agent: a SOCK_STREAM Unix socket per VM,
 *    RUNDIR/NAME.sock (vm_run_dir()), mode 0600, peers of another user than
 *    the agent's (root excepted) refused. One request line per connection:
 *      "stat\n" / "stat json\n"   -> the statistics (lines), then "end\n"
 *      "watch GPA SETTLE_NS\n"    -> "ok MESSAGE\n", then one line per event
 *                                    until the client closes, or
 *                                    "end MESSAGE\n" when the VM stops
 *    An error is one line "error MESSAGE" after which the agent closes; the
 *    client prints MESSAGE as is, so the agent words it for the user.
 */
#ifndef SDRSA_VM_PROTO_H
#define SDRSA_VM_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define VM_HELLO_MAGIC 0x51524453u /* "SDRQ" */
#define VM_HELLO_VERSION 1u

/* Environment that the agent sets for QEMU and the shim reads. */
#define VM_ENV_SHIM_FD "SDRSA_VM_SHIM_FD"     /* fd number of the socketpair end */
#define VM_ENV_RAM_DEV "SDRSA_VM_RAM_DEV"     /* st_dev of the RAM file, decimal */
#define VM_ENV_RAM_INO "SDRSA_VM_RAM_INO"     /* st_ino of the RAM file, decimal */
#define VM_ENV_NAME "SDRSA_VM_NAME"	      /* the VM's name, for messages */
#define VM_ENV_AGENT_PID "SDRSA_VM_AGENT_PID" /* for messages */
#define VM_ENV_SHIM_PATH "SDRSA_QEMU_SHIM"    /* override the shim's path (agent side) */
#define VM_ENV_RUN_DIR "SDRSA_RUN_DIR"	      /* override the control socket directory */

/* Shim -> agent, with the userfaultfd in SCM_RIGHTS. */
struct vm_hello {
	uint32_t magic;	  /* VM_HELLO_MAGIC */
	uint32_t version; /* VM_HELLO_VERSION */
	int32_t pid;	  /* QEMU's pid */
	uint32_t pad;
	uint64_t base;	   /* address of the mapping in QEMU */
	uint64_t len;	   /* its length in bytes */
	uint64_t file_off; /* file offset mapped at base */
	uint64_t features; /* UFFDIO_API features the shim obtained */
	uint64_t ioctls;   /* UFFDIO_REGISTER's ioctls bitmask for the range */
};

/* Agent -> shim. status 0: go on; otherwise -errno and a message that the
 * shim prints before it stops QEMU. */
struct vm_hello_reply {
	int32_t status;
	char msg[252];
};

/* The directory of the control sockets and lock files: $SDRSA_RUN_DIR, else
 * /run/sdrsa for root, else $XDG_RUNTIME_DIR/sdrsa, else /tmp/sdrsa-UID.
 * Writes it to buf; returns 0 or -ENAMETOOLONG. Does not create it. */
int vm_run_dir(char *buf, size_t len);

/* Is name usable as a VM name (1..64 of [A-Za-z0-9._-], not starting with
 * '.' or '-')? Returns 1 or 0. */
int vm_name_ok(const char *name);

#endif
