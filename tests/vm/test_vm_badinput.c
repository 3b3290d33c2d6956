/* SPDX-License-Identifier: MIT */
/*
 * test_vm_badinput: what a user gets wrong, and the one-line answers.
 *
 * Without a VM: watch and stat of an unknown VM name; a watch address that
 * is not a number; rsa-app vm without --server, without a QEMU command, with
 * a QEMU option the agent cannot manage (-mem-path), with an unreachable
 * memory server. With a running VM (256 MiB): an address outside guest RAM,
 * an address that is not page-aligned, a second agent for the same VM
 * (refused at once, QEMU not started, the first VM unaffected: stat still
 * answers and the guest still responds on its console).
 *
 * Exit 0 pass, 1 fail, 77 skip (guest or agent not built; a failure with CI).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vm_agent.h"
#include "vm_harness.h"

static char out[16384];

/* Run the agent binary with args; expect exit code want and needle in the
 * output. Returns 1 when both hold. */
static int expect_cmd(const char *const *argv, int want, const char *needle)
{
	int st = vm_run_cmd(argv, 20000, out, sizeof(out));

	if (st != want || !strstr(out, needle)) {
		vm_log("'%s %s %s ...' gave %d (want %d) and said: %s(want '%s')", argv[0], argv[1],
		       argv[2] ? argv[2] : "", st, want, out, needle);
		return 0;
	}
	return 1;
}

int main(void)
{
	struct vm *vm = NULL;
	struct vm_proc srv = {.pid = 0, .out_fd = -1};
	char why[512], addr[64], name[64], other[64], prefix[1024], rundir[256] = "", line[1024];
	const char *bin;
	struct timespec t0, t1;
	int rc = VM_PASS;

	if (vm_agent_available(why, sizeof(why)) < 0)
		return vm_skip("%s", why);
	if (vm_agent_rundir(rundir, sizeof(rundir)) < 0)
		return vm_skip("cannot make a control directory in /tmp");
	bin = vm_agent_bin();
	snprintf(name, sizeof(name), "bad%d", (int)getpid());
	snprintf(other, sizeof(other), "nosuch%d", (int)getpid());

	/* No VM needed. */
	{
		const char *a1[] = {bin, "watch", other, "0x1000", NULL};
		const char *a2[] = {bin, "stat", other, NULL};
		const char *a3[] = {bin, "watch", other, "zebra", NULL};
		const char *a4[] = {bin, "vm", name, "--local", "64M", "--", "qemu-system-x86_64",
				    NULL};
		const char *a5[] = {bin,	   "vm",      name,  "--server",
				    "127.0.0.1:1", "--local", "64M", NULL};
		const char *a6[] = {bin,
				    "vm",
				    name,
				    "--server",
				    "127.0.0.1:1",
				    "--local",
				    "64M",
				    "--",
				    "qemu-system-x86_64",
				    "-mem-path",
				    "/dev/hugepages",
				    NULL};
		const char *a7[] = {bin,       "vm",  name, "--server",		  "127.0.0.1:1",
				    "--local", "64M", "--", "qemu-system-x86_64", "-m",
				    "256M",    NULL};
		const char *a8[] = {bin,       "vm", "bad/name", "--server", "x",
				    "--local", "1M", "--",	 "qemu",     NULL};
		const char *a9[] = {bin,       "vm",   name, "--server",	   "127.0.0.1:1",
				    "--local", "101%", "--", "qemu-system-x86_64", NULL};

		VM_CHECK(expect_cmd(a1, 1, "no VM named"), "watch of an unknown VM");
		VM_CHECK(expect_cmd(a2, 1, "no VM named"), "stat of an unknown VM");
		VM_CHECK(expect_cmd(a3, 2, "is not an address"), "watch of a non-address");
		VM_CHECK(expect_cmd(a4, 2, "missing --server"), "vm without --server");
		VM_CHECK(expect_cmd(a5, 2, "no QEMU command"), "vm without a QEMU command");
		VM_CHECK(expect_cmd(a6, 2, "remove -mem-path"), "vm with -mem-path");
		VM_CHECK(expect_cmd(a7, 1, "cannot reach the memory server"),
			 "vm with an unreachable server");
		VM_CHECK(expect_cmd(a8, 2, "not a usable VM name"), "a name with a slash");
		VM_CHECK(expect_cmd(a9, 2, "percentage"), "--local 101%%");
	}

	/* A running VM. */
	VM_CHECK(vm_server_start(&srv, addr, sizeof(addr)) == 0, "the memory server did not start");
	snprintf(prefix, sizeof(prefix), "%s vm %s --server %s --local 64M --", bin, name, addr);
	VM_CHECK(vm_agent_boot(prefix, NULL, "shell", &vm, NULL, 0) == 0,
		 "the guest did not start under the agent");
	VM_CHECK(vm_expect(vm, "SDRSA-GUEST: shell", 60000, NULL, 0) == 0,
		 "the guest did not boot");
	{
		const char *a1[] = {bin, "watch", name, "0x10000000",
				    NULL}; /* = 256 MiB: the end */
		const char *a2[] = {bin, "watch", name, "0xfffff000000", NULL};
		const char *a3[] = {bin, "watch", name, "0x29de001", NULL};
		const char *a4[] = {bin, "stat", name, NULL};
		const char *a5[] = {bin,	"vm",	name,
				    "--server", addr,	"--local",
				    "64M",	"--",	"qemu-system-x86_64",
				    "-m",	"256M", "-nographic",
				    "-nic",	"none", NULL};

		VM_CHECK(expect_cmd(a1, 1, "is not guest RAM"), "watch at the end of RAM");
		VM_CHECK(strstr(out, "256 MiB at 0x0-0xfffffff") != NULL, "no RAM layout: %s", out);
		VM_CHECK(expect_cmd(a2, 1, "is not guest RAM"), "watch far outside RAM");
		VM_CHECK(expect_cmd(a3, 1, "not page-aligned"), "watch of an unaligned address");
		VM_CHECK(strstr(out, "0x29de000") != NULL, "no aligned address suggested: %s", out);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		VM_CHECK(expect_cmd(a5, 1, "already has an agent"), "a second agent for the VM");
		clock_gettime(CLOCK_MONOTONIC, &t1);
		VM_CHECK(t1.tv_sec - t0.tv_sec < 5, "the second agent took %ld s to give up",
			 (long)(t1.tv_sec - t0.tv_sec));
		VM_CHECK(!strstr(out, "QEMU pid"), "the second agent started QEMU: %s", out);
		VM_CHECK(expect_cmd(a4, 0, "local budget 64 MiB"), "stat of the running VM");
	}
	/* The first VM is unaffected: its guest still answers. */
	VM_CHECK(vm_send(vm, "echo still-here-$((6*7))\n") == 0, "cannot type");
	VM_CHECK(vm_expect(vm, "still-here-42", 10000, line, sizeof(line)) == 0,
		 "the guest stopped answering");
	vm_log("PASS: every bad input got its message; the VM ran on (%.1f s)", vm_seconds(vm));
out:
	vm_free(vm);
	vm_proc_free(&srv);
	vm_agent_rundir_remove(rundir);
	return rc;
}
