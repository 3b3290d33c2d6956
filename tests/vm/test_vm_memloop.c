/* SPDX-License-Identifier: MIT */
/*
 * test_vm_memloop: the guest's memory workload with plain QEMU, the baseline
 * for the eviction tests that put the guest's RAM on the pool. sdrsa-memloop
 * writes ROUNDS tmpfs files of the deterministic pattern, prints each md5,
 * and re-reads and re-checksums the kept files every round. The host
 * computes every md5 itself from guest/pattern.h (and md5sum) and compares
 * each one the guest printed; the guest also checks word by word.
 *
 * Exit 0 pass, 1 fail, 77 skip (guest not built; a failure when CI is set).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vm_harness.h"

#define ROUNDS 4
#define SIZE_MB 8
#define SEED 7000
#define KEEP 2

int main(void)
{
	struct vm_opts o = { 0 };
	struct vm *vm = NULL;
	struct vm_memloop ml;
	char line[1024], why[512], run[128];
	uint64_t v;
	int rc = VM_PASS, st, r;

	if (vm_available(why, sizeof(why)) < 0)
		return vm_skip("%s", why);
	if (vm_memloop_init(&ml, ROUNDS, SIZE_MB, SEED, KEEP) < 0)
		return vm_skip("cannot compute md5 on the host (md5sum missing?)");

	vm_memloop_cmd(&ml, run, sizeof(run));
	o.run = run;
	o.timeout_s = 55;
	VM_CHECK(vm_start(&o, &vm) == 0, "QEMU did not start");
	VM_CHECK(vm_expect(vm, "SDRSA-GUEST: ready", 40000, NULL, 0) == 0, "the guest did not boot");

	do {
		VM_CHECK(vm_expect(vm, "SDRSA-GUEST: memloop ", 30000, line, sizeof(line)) == 0,
			 "the memory loop stopped");
		r = vm_memloop_line(&ml, line);
		VM_CHECK(r >= 0, "the memory loop's output is wrong (above)");
	} while (r == 0);
	VM_CHECK(vm_expect(vm, "SDRSA-GUEST: exit ", 5000, line, sizeof(line)) == 0, "no exit line");
	VM_CHECK(vm_parse_u64(line, "exit ", &v) == 0 && v == 0, "%s", line);
	st = vm_wait(vm, 15000);
	VM_CHECK(st == 0, "QEMU ended with %d after the guest powered off", st);
	vm_log("PASS: %d x %d MiB written, %d md5s compared with the host's, %.2f s", ROUNDS,
	       SIZE_MB, ml.writes + ml.checks, vm_seconds(vm));
out:
	vm_free(vm);
	return rc;
}
