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
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pattern.h"
#include "vm_harness.h"

#define ROUNDS 4
#define SIZE_MB 8
#define SEED 7000
#define KEEP 2

static char md5s[ROUNDS + 1][33]; /* expected md5 of the file of round r */

int main(void)
{
	struct vm_opts o = { 0 };
	struct vm *vm = NULL;
	char line[1024], why[512], run[128], got[64];
	uint64_t seed, r, file, v;
	int rc = VM_PASS, st, writes = 0, checks = 0, want_checks = 0, i;
	const char *m;

	if (vm_available(why, sizeof(why)) < 0)
		return vm_skip("%s", why);
	for (i = 1; i <= ROUNDS; i++)
		want_checks += i < KEEP ? i : KEEP;
	for (i = 1; i <= ROUNDS; i++)
		if (vm_host_md5(SEED + (uint64_t)i, SIZE_MB, md5s[i]) < 0)
			return vm_skip("cannot compute md5 on the host (md5sum missing?)");

	snprintf(run, sizeof(run), "sdrsa-memloop %d %dM %d %d", ROUNDS, SIZE_MB, SEED, KEEP);
	o.run = run;
	o.timeout_s = 55;
	VM_CHECK(vm_start(&o, &vm) == 0, "QEMU did not start");
	VM_CHECK(vm_expect(vm, "SDRSA-GUEST: ready", 40000, NULL, 0) == 0, "the guest did not boot");

	for (;;) {
		VM_CHECK(vm_expect(vm, "SDRSA-GUEST: memloop ", 30000, line, sizeof(line)) == 0,
			 "the memory loop stopped");
		if (strstr(line, "memloop done"))
			break;
		m = strstr(line, "md5=");
		VM_CHECK(m && sscanf(m, "md5=%32s", got) == 1, "no md5 in '%s'", line);
		VM_CHECK(vm_parse_u64(line, "round=", &r) == 0 && r >= 1 && r <= ROUNDS,
			 "bad round in '%s'", line);
		VM_CHECK(vm_parse_u64(line, "seed=", &seed) == 0, "no seed in '%s'", line);
		if (strstr(line, "memloop write ")) {
			file = r;
			VM_CHECK(vm_parse_u64(line, "size=", &v) == 0 && v == (uint64_t)SIZE_MB << 20,
				 "short file: %s", line);
			writes++;
		} else {
			VM_CHECK(vm_parse_u64(line, "file=", &file) == 0 && file >= 1 && file <= r,
				 "bad file in '%s'", line);
			VM_CHECK(strstr(line, " ok") != NULL, "the guest found a mismatch: %s", line);
			checks++;
		}
		VM_CHECK(seed == SEED + file, "file %" PRIu64 " has seed %" PRIu64, file, seed);
		VM_CHECK(!strcmp(got, md5s[file]), "md5 mismatch for file %" PRIu64
			 " in round %" PRIu64 ": guest %s, host %s", file, r, got, md5s[file]);
	}
	VM_CHECK(strstr(line, "mismatches=0") != NULL, "%s", line);
	VM_CHECK(writes == ROUNDS, "%d write lines, want %d", writes, ROUNDS);
	VM_CHECK(checks == want_checks, "%d recheck lines, want %d", checks, want_checks);
	VM_CHECK(vm_expect(vm, "SDRSA-GUEST: exit ", 5000, line, sizeof(line)) == 0, "no exit line");
	VM_CHECK(vm_parse_u64(line, "exit ", &v) == 0 && v == 0, "%s", line);
	st = vm_wait(vm, 15000);
	VM_CHECK(st == 0, "QEMU ended with %d after the guest powered off", st);
	vm_log("PASS: %d x %d MiB written, %d md5s compared with the host's, %.2f s", ROUNDS,
	       SIZE_MB, writes + checks, vm_seconds(vm));
out:
	vm_free(vm);
	return rc;
}
