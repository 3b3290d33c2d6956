/* SPDX-License-Identifier: MIT */
/*
 * test_vm_physmap: guest-physical address = offset in QEMU's RAM file, the
 * mapping the agent relies on, checked in both directions on the seed's page:
 *
 *  1. test_chrdev in the guest writes pattern A into the module's page; the
 *     host preads the RAM file at the printed physical address and finds A.
 *  2. The host pwrites pattern B at that offset while the guest runs; the
 *     guest's test_chrdev (the seed's interactive mode: it waits for ENTER,
 *     which the host types on the serial console) reads the page through the
 *     module and finds exactly B.
 *
 * Exit 0 pass, 1 fail, 77 skip (guest not built; a failure when CI is set).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "pattern.h"
#include "vm_harness.h"

#define SEED_A 0xa11ce000ULL /* written by the guest, 2 rounds: A and A+1 */
#define SEED_B 0xb0b00000ULL /* written by the host */

int main(void)
{
	struct vm_opts o = { 0 };
	struct vm *vm = NULL;
	unsigned char page[4096];
	uint64_t phys = 0, v;
	char line[1024], why[512], run[256];
	int rc = VM_PASS, st;
	long bad;

	if (vm_available(why, sizeof(why)) < 0)
		return vm_skip("%s", why);
	snprintf(run, sizeof(run),
		 "test_chrdev --rounds 2 --pattern 0x%llx && test_chrdev --mode read --pattern 0x%llx",
		 SEED_A, SEED_B);
	o.run = run;
	o.timeout_s = 50;
	VM_CHECK(vm_start(&o, &vm) == 0, "QEMU did not start");

	VM_CHECK(vm_expect(vm, "SDRSA-GUEST: module loaded phys=", 40000, line, sizeof(line)) == 0,
		 "the module did not load");
	VM_CHECK(vm_parse_u64(line, "phys=", &phys) == 0, "no address in '%s'", line);
	VM_CHECK(phys % 4096 == 0 && phys + 4096 <= vm_ram_bytes(vm),
		 "0x%" PRIx64 " is not a page inside guest RAM", phys);

	/* 1. guest writes, host reads. */
	VM_CHECK(vm_expect(vm, "SDRSA-GUEST: chrdev result=", 20000, line, sizeof(line)) == 0,
		 "the writing test_chrdev did not finish");
	VM_CHECK(strstr(line, "result=PASS") != NULL, "%s", line);
	VM_CHECK(vm_expect(vm, "press ENTER", 10000, NULL, 0) == 0,
		 "the reading test_chrdev did not wait for ENTER");
	VM_CHECK(vm_read_phys(vm, phys, page, sizeof(page)) == 0, "pread of the RAM file failed");
	bad = sdrsa_pattern_check(page, sizeof(page), SEED_A + 1, 0);
	VM_CHECK(bad < 0, "the RAM file at 0x%" PRIx64 " differs from what the guest wrote, from "
		 "byte %ld (first word there: %02x %02x %02x %02x)", phys, bad, page[0], page[1],
		 page[2], page[3]);
	vm_log("host read the guest's pattern at file offset 0x%" PRIx64, phys);
	VM_CHECK(vm_read_phys(vm, vm_ram_bytes(vm), page, sizeof(page)) == -ERANGE,
		 "a read past the end of guest RAM was not refused");

	/* 2. host writes, guest reads (after ENTER). */
	sdrsa_pattern_fill(page, sizeof(page), SEED_B, 0);
	VM_CHECK(vm_write_phys(vm, phys, page, sizeof(page)) == 0, "pwrite of the RAM file failed");
	VM_CHECK(vm_send(vm, "\n") == 0, "cannot type on the console");
	VM_CHECK(vm_expect(vm, "SDRSA-GUEST: chrdev round=0", 10000, line, sizeof(line)) == 0,
		 "ENTER did not start a round");
	VM_CHECK(strstr(line, "read=ok verify=ok") != NULL,
		 "the guest did not read what the host wrote: %s", line);
	VM_CHECK(vm_expect(vm, "press ENTER", 10000, NULL, 0) == 0, "no second prompt");
	VM_CHECK(vm_send(vm, "q\n") == 0, "cannot type on the console");
	VM_CHECK(vm_expect(vm, "SDRSA-GUEST: chrdev result=", 10000, line, sizeof(line)) == 0,
		 "q did not end test_chrdev");
	VM_CHECK(strstr(line, "result=PASS rounds=1") != NULL, "%s", line);
	VM_CHECK(vm_expect(vm, "SDRSA-GUEST: exit ", 5000, line, sizeof(line)) == 0, "no exit line");
	VM_CHECK(vm_parse_u64(line, "exit ", &v) == 0 && v == 0, "%s", line);
	st = vm_wait(vm, 15000);
	VM_CHECK(st == 0, "QEMU ended with %d after the guest powered off", st);
	vm_log("PASS: guest-physical 0x%" PRIx64 " = RAM file offset 0x%" PRIx64
	       ", both directions, %.2f s", phys, phys, vm_seconds(vm));
out:
	vm_free(vm);
	return rc;
}
