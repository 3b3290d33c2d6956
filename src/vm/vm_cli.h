/* SPDX-License-Identifier: MIT */
/*
 * Entry points of the VM subcommands, for rsa-app's dispatch. argv[0] is the subcommand itself ("vm", "watch",
 * "stat"); options start at argv[1]. Each returns the process exit status.
 *
 *   rsa-app vm NAME --server ADDR --local SIZE|PCT% [options] -- QEMU-COMMAND...
 *       run QEMU with its RAM on the memory pool (exit status: QEMU's; 1 on
 *       errors; 2 on bad usage)
 *   rsa-app watch NAME GUEST-PHYS-ADDR [--settle DUR]
 *       the seed's "rsa-app DOMU_NAME MEMORY_ADDRESS": report every access to
 *       one guest page and move it to the server and back each time
 *   rsa-app stat NAME [--json]
 *       the statistics of a running VM, as rsa-app run --stats prints them
 */
#ifndef SDRSA_VM_CLI_H
#define SDRSA_VM_CLI_H

#include <stdio.h>

int rsa_vm_main(int argc, char **argv);
int rsa_watch_main(int argc, char **argv);
int rsa_stat_main(int argc, char **argv);

/* Usage text of the three subcommands (for rsa-app --help). */
void rsa_vm_usage(FILE *f);

#endif
