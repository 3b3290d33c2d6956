/* SPDX-License-Identifier: MIT */
/*
 * swapref: Linux swap as a reference at a given local-memory budget, shared
 * by the benches (enginebench, curvebench): a memory cgroup v1 whose
 * memory.limit_in_bytes is the budget, with a swap file or a zram device
 * the bench creates and removes itself.
 *
 * One cgroup, one swap file and one zram device at a time per process.
 * swapref_teardown_all() undoes whatever is set up and only makes system
 * calls, so signal handlers and watchdogs may call it. Every setup function
 * returns 0, or -1 with a one-line reason in why; after a failure, the
 * matching teardown cleans up what was done. Root only.
 */
#ifndef SWAPREF_H
#define SWAPREF_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* 1 when this process can make cgroups and swap (root, a cgroup v1 memory
 * controller, mkswap); 0 with the reason in why. */
int swapref_available(char *why, size_t n);

/* A memory cgroup named "TAG.PID" with memory.limit_in_bytes = limit. */
int swapref_cgroup_setup(const char *tag, uint64_t limit, char *why, size_t n);
/* Move process pid into it: 0 or -errno. */
int swapref_cgroup_join(pid_t pid);
/* Its directory ("" when none): for messages and for `echo $$ > .../cgroup.procs`. */
const char *swapref_cgroup_path(void);
void swapref_cgroup_teardown(void);

/* A swap file of `bytes` at DIR/TAG.PID.swap, written (not fallocated),
 * mkswap'ed and enabled. */
int swapref_swapfile_setup(const char *dir, const char *tag, uint64_t bytes, char *why,
			   size_t n);
void swapref_swapfile_teardown(void);

/* A zram device of `bytes` (hot_add, modprobe zram when needed), enabled as
 * swap. */
int swapref_zram_setup(uint64_t bytes, char *why, size_t n);
void swapref_zram_teardown(void);

void swapref_teardown_all(void);

/* Write val to a sysfs or cgroup file: 0 or -errno. */
int swapref_write_file(const char *path, const char *val);

#endif
