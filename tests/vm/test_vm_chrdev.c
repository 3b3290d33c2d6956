/* SPDX-License-Identifier: MIT */
/*
 * test_vm_chrdev: the seed's guest-side flow, end to end. Boot the guest,
 * load chr_dev_udev.ko (insmod), take the buffer's physical address from the
 * console three ways (the /init's sysfs read, the module's own dmesg line,
 * test_chrdev's ioctl) and check that they agree and lie inside guest RAM;
 * then test_chrdev writes a pattern, reads it back and verifies it for
 * several rounds; the module unloads cleanly (rmmod, its /dev node gone, no
 * kernel warning in dmesg) and the guest powers off.
 * Exit 0 pass, 1 fail, 77 skip (guest not built; a failure when CI is set).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "vm_harness.h"

#define ROUNDS 3
#define SEED 0x5eed0000ULL

int main(void)
{
	struct vm_opts o = { 0 };
	struct vm *vm = NULL;
	uint64_t phys_sysfs = 0, phys_dmesg = 0, phys_prog = 0, v;
	char line[1024], why[512], run[512];
	int rc = VM_PASS, k, st;
	double t_ready;

	if (vm_available(why, sizeof(why)) < 0)
		return vm_skip("%s", why);
	snprintf(run, sizeof(run),
		 "test_chrdev --rounds %d --pattern 0x%llx; rc=$?; "
		 "rmmod chr_dev_udev && test ! -e /dev/chr_dev_udev && "
		 "dmesg | grep -q 'chr_dev_udev: unloaded' && echo SDRSA-GUEST: unload ok; "
		 "if dmesg | grep -qE 'BUG|WARNING|Oops|Call Trace'; then "
		 "echo SDRSA-GUEST: kernel complained; dmesg | tail -n 30; "
		 "else echo SDRSA-GUEST: kernel clean; fi; exit $rc",
		 ROUNDS, SEED);
	o.run = run;
	o.timeout_s = 50;
	VM_CHECK(vm_start(&o, &vm) == 0, "QEMU did not start");

	VM_CHECK(vm_expect(vm, "SDRSA-GUEST: module loaded phys=", 40000, line, sizeof(line)) == 0,
		 "the module did not load");
	VM_CHECK(vm_parse_u64(line, "phys=", &phys_sysfs) == 0, "no address in '%s'", line);
	VM_CHECK(vm_expect(vm, "SDRSA-GUEST: dmesg chr_dev_udev: buffer", 5000, line,
			   sizeof(line)) == 0, "the module printed no buffer line in dmesg");
	VM_CHECK(vm_parse_u64(line, "phys=", &phys_dmesg) == 0, "no address in '%s'", line);
	VM_CHECK(vm_expect(vm, "SDRSA-GUEST: ready", 5000, NULL, 0) == 0, "no ready line");
	t_ready = vm_seconds(vm);

	VM_CHECK(vm_expect(vm, "SDRSA-GUEST: chrdev device=", 10000, line, sizeof(line)) == 0,
		 "test_chrdev did not open the device");
	VM_CHECK(vm_parse_u64(line, "phys=", &phys_prog) == 0, "no address in '%s'", line);
	VM_CHECK(strstr(line, "bounds=ok") != NULL, "read/write/lseek not bounded: %s", line);

	VM_CHECK(phys_sysfs == phys_dmesg && phys_dmesg == phys_prog,
		 "the addresses disagree: sysfs 0x%" PRIx64 " dmesg 0x%" PRIx64 " ioctl 0x%" PRIx64,
		 phys_sysfs, phys_dmesg, phys_prog);
	VM_CHECK(phys_prog != 0 && phys_prog % 4096 == 0, "0x%" PRIx64 " is not a page", phys_prog);
	VM_CHECK(phys_prog + 4096 <= vm_ram_bytes(vm), "0x%" PRIx64 " is outside %" PRIu64
		 " bytes of guest RAM", phys_prog, vm_ram_bytes(vm));

	for (k = 0; k < ROUNDS; k++) {
		char want[64];

		VM_CHECK(vm_expect(vm, "SDRSA-GUEST: chrdev round=", 10000, line, sizeof(line)) == 0,
			 "round %d did not run", k);
		snprintf(want, sizeof(want), "round=%d seed=0x%llx ", k, SEED + (unsigned)k);
		VM_CHECK(strstr(line, want) != NULL, "unexpected round line '%s'", line);
		VM_CHECK(strstr(line, "write=ok read=ok verify=ok") != NULL, "round %d: %s", k, line);
	}
	VM_CHECK(vm_expect(vm, "SDRSA-GUEST: chrdev result=", 5000, line, sizeof(line)) == 0,
		 "no result line");
	VM_CHECK(strstr(line, "result=PASS") != NULL, "%s", line);
	VM_CHECK(vm_expect(vm, "SDRSA-GUEST: unload ok", 5000, NULL, 0) == 0,
		 "rmmod failed or left /dev/chr_dev_udev behind");
	VM_CHECK(vm_expect(vm, "SDRSA-GUEST: kernel ", 5000, line, sizeof(line)) == 0,
		 "no kernel check line");
	VM_CHECK(strstr(line, "kernel clean") != NULL, "the guest kernel warned (dmesg above)");
	VM_CHECK(vm_expect(vm, "SDRSA-GUEST: exit ", 5000, line, sizeof(line)) == 0, "no exit line");
	VM_CHECK(vm_parse_u64(line, "exit ", &v) == 0 && v == 0, "test_chrdev failed: %s", line);
	st = vm_wait(vm, 15000);
	VM_CHECK(st == 0, "QEMU ended with %d after the guest powered off", st);
	vm_log("PASS: buffer at guest-physical 0x%" PRIx64 ", %d rounds verified; ready after "
	       "%.2f s, powered off after %.2f s", phys_prog, ROUNDS, t_ready, vm_seconds(vm));
out:
	vm_free(vm);
	return rc;
}
