/* SPDX-License-Identifier: MIT */
/*
 * test_vm_evict: the guest's memory workload (test_vm_memloop's) with the
 * guest's RAM on the memory pool under heavy eviction: 256 MiB of guest RAM,
 * a local budget of 32 MiB, while the guest boots (it touches about 110 MiB
 * doing so) and then writes and re-reads tmpfs files of 16 MiB. Every md5
 * the guest prints must equal the host's own (from guest/pattern.h and
 * md5sum), the guest's word-by-word check must find nothing, and
 * `rsa-app stat` must show pages sent to the server and fetched back. The
 * guest then powers off and the agent exits with QEMU's status (0).
 *
 * Exit 0 pass, 1 fail, 77 skip (guest or agent not built; a failure with CI).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vm_agent.h"
#include "vm_harness.h"

#define ROUNDS 4
#define SIZE_MB 16
#define SEED 7100
#define KEEP 2

/* The number after "key": in a JSON text, or -1. */
static long long json_num(const char *s, const char *key)
{
	char k[64];
	const char *p;

	snprintf(k, sizeof(k), "\"%s\":", key);
	p = strstr(s, k);
	return p ? atoll(p + strlen(k)) : -1;
}

int main(void)
{
	struct vm *vm = NULL;
	struct vm_proc srv = {.pid = 0, .out_fd = -1};
	char addr[64], name[64], prefix[1024], line[1024], rundir[256] = "", run[128];
	char out[8192];
	struct vm_memloop ml;
	int rc = VM_PASS, st, r;
	long long in, sent;

	rc = vm_agent_memloop_prepare(&ml, ROUNDS, SIZE_MB, SEED, KEEP, rundir, sizeof(rundir));
	if (rc != VM_PASS)
		return rc;
	VM_CHECK(vm_server_start(&srv, addr, sizeof(addr)) == 0, "the memory server did not start");
	snprintf(name, sizeof(name), "evict%d", (int)getpid());
	snprintf(prefix, sizeof(prefix), "%s vm %s --server %s --local 32M --stats --",
		 vm_agent_bin(), name, addr);
	vm_memloop_cmd(&ml, run, sizeof(run));
	strncat(run, "; sleep 2", sizeof(run) - strlen(run) - 1);
	VM_CHECK(vm_agent_boot(prefix, run, NULL, &vm, NULL, 0) == 0,
		 "the guest did not start under the agent");
	VM_CHECK(vm_expect(vm, "SDRSA-GUEST: ready", 60000, NULL, 0) == 0,
		 "the guest did not boot");

	do {
		VM_CHECK(vm_expect(vm, "SDRSA-GUEST: memloop ", 60000, line, sizeof(line)) == 0,
			 "the memory loop stopped");
		r = vm_memloop_line(&ml, line);
		VM_CHECK(r >= 0, "the memory loop's output is wrong (above)");
	} while (r == 0);

	/* The statistics of the running VM (the guest sleeps 2 s before poweroff). */
	{
		const char *argv[] = {vm_agent_bin(), "stat", name, "--json", NULL};

		st = vm_run_cmd(argv, 10000, out, sizeof(out));
		VM_CHECK(st == 0, "rsa-app stat failed (%d): %s", st, out);
	}
	in = json_num(out, "pages_in");
	sent = json_num(out, "pages_out");
	VM_CHECK(in > 0 && sent > 0, "no paging: pages_in %lld pages_out %lld", in, sent);
	VM_CHECK(json_num(out, "resident") + json_num(out, "staged") <= 32 * 256,
		 "more local pages than the budget: %s", out);
	{
		const char *argv[] = {vm_agent_bin(), "stat", name, NULL};

		st = vm_run_cmd(argv, 10000, out, sizeof(out));
		VM_CHECK(st == 0 && strstr(out, "faults zero") &&
			     strstr(out, "local budget 32 MiB"),
			 "rsa-app stat (text) failed (%d): %s", st, out);
	}
	VM_CHECK(vm_expect(vm, "SDRSA-GUEST: poweroff", 20000, NULL, 0) == 0, "no poweroff");
	VM_CHECK(vm_expect(vm, "stats: faults", 20000, line, sizeof(line)) == 0,
		 "the agent printed no statistics at exit");
	st = vm_wait(vm, 20000);
	VM_CHECK(st == 0, "the agent ended with %d after the guest powered off", st);
	vm_log("PASS: %d x %d MiB under a 32 MiB budget, %d md5s equal the host's, %lld pages out, "
	       "%lld in, %.1f s",
	       ROUNDS, SIZE_MB, ml.writes + ml.checks, sent, in, vm_seconds(vm));
out:
	vm_free(vm);
	vm_proc_free(&srv);
	vm_agent_rundir_remove(rundir);
	return rc;
}
