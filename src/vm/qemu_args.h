/* SPDX-License-Identifier: MIT */
/*
 * The QEMU command line as the agent sees it: find the guest's RAM size and
 * machine type, and put guest RAM in a shared file the agent can manage.
 *
 * The user gives a plain QEMU command. Unless it already has a
 * memory-backend-file with share=on named by -machine memory-backend=ID, the
 * plan appends
 *     -object memory-backend-file,id=sdrsa-ram,size=BYTES,mem-path=PATH,share=on
 *     -machine memory-backend=sdrsa-ram
 * (QEMU merges repeated -machine options). Things the agent cannot manage
 * are refused with a message that says what to change: -mem-path,
 * -mem-prealloc, -numa, -daemonize, memory hotplug (maxmem/slots), a RAM
 * backend that is not a shared file, machines other than pc/q35.
 *
 * Pure functions, no I/O: unit-tested in tests/vm/test_vm_qemu_args.c.
 */
#ifndef SDRSA_VM_QEMU_ARGS_H
#define SDRSA_VM_QEMU_ARGS_H

#include <stddef.h>
#include <stdint.h>

enum vm_machine {
	VM_MACHINE_PC = 0, /* i440fx; below 4 GiB: all RAM if < 3.5 GiB, else 3 GiB */
	VM_MACHINE_Q35,	   /* below 4 GiB: all RAM if < 2.75 GiB, else 2 GiB */
};

struct qemu_plan {
	char **argv; /* the command to run, NULL-terminated (owned) */
	int argc;
	uint64_t ram_bytes; /* guest RAM */
	enum vm_machine machine;
	char *mem_path;	  /* the RAM file (owned) */
	int user_backend; /* 1: the user's own memory-backend-file was kept */
};

/* Build the plan for argv[0..argc) (argv[0] is QEMU). default_path is the
 * RAM file to use when adding the backend. Returns 0, or -EINVAL with a
 * one-line message for the user in err. */
int qemu_plan_make(char *const *argv, int argc, const char *default_path, struct qemu_plan *out,
		   char *err, size_t errlen);
void qemu_plan_free(struct qemu_plan *p);

/* Guest-physical address -> RAM file offset for this machine and RAM size:
 * RAM below 4 GiB is at offset = address, the rest continues at 4 GiB.
 * Returns the offset, or -ERANGE when gpa is not guest RAM. */
int64_t vm_gpa_to_offset(enum vm_machine m, uint64_t ram_bytes, uint64_t gpa);
/* The inverse. */
uint64_t vm_offset_to_gpa(enum vm_machine m, uint64_t ram_bytes, uint64_t off);
/* RAM below 4 GiB (the rest is at [4 GiB, 4 GiB + ram - low)). */
uint64_t vm_low_ram(enum vm_machine m, uint64_t ram_bytes);

/* A QEMU size: digits with an optional K/M/G/T suffix (powers of 1024); a
 * bare number is in units of def_unit (1 for bytes, 1 MiB for -m).
 * Returns 0 or -EINVAL. */
int qemu_parse_size(const char *s, uint64_t def_unit, uint64_t *out);

#endif
