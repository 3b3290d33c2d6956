/* SPDX-License-Identifier: MIT */
/*
 * test_vm_pool: a guest's RAM on a pool of three memory servers with two
 * replicas (`rsa-app vm --server A --server B --server C --replicas 2`,
 * docs/POOL.md); one server is SIGKILLed while the guest's memory loop runs.
 * The guest goes on: every md5 it prints equals the host's (guest/pattern.h),
 * its word-by-word checks find no mismatch, the agent reports the server
 * down, and the statistics show the pages copied again.
 *
 * Exit 0 pass, 1 fail, 77 skip (guest not built; a failure when CI is set).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vm_agent.h"
#include "vm_harness.h"

#define ROUNDS 4
#define SIZE_MB 16
#define SEED 7300
#define KEEP 2
#define NSRV 3

int main(void)
{
	struct vm *vm = NULL;
	struct vm_proc srv[NSRV];
	char addr[NSRV][64], name[64], prefix[1024], line[1024], rundir[256] = "";
	char run[128];
	struct vm_memloop ml;
	int rc = VM_PASS, st, r = 0, i, killed = 0, down = 0;

	for (i = 0; i < NSRV; i++)
		srv[i] = (struct vm_proc){.pid = 0, .out_fd = -1};
	rc = vm_agent_memloop_prepare(&ml, ROUNDS, SIZE_MB, SEED, KEEP, rundir, sizeof(rundir));
	if (rc != VM_PASS)
		return rc;
	for (i = 0; i < NSRV; i++)
		VM_CHECK(vm_server_start(&srv[i], addr[i], sizeof(addr[i])) == 0,
			 "memory server %d did not start", i);
	snprintf(name, sizeof(name), "pool%d", (int)getpid());
	snprintf(prefix, sizeof(prefix),
		 "%s vm %s --server %s --server %s --server %s --replicas 2 --local 32M --stats --",
		 vm_agent_bin(), name, addr[0], addr[1], addr[2]);
	vm_memloop_cmd(&ml, run, sizeof(run));
	VM_CHECK(vm_agent_boot(prefix, run, NULL, &vm, NULL, 0) == 0,
		 "the guest did not start under the agent");
	VM_CHECK(vm_expect(vm, "SDRSA-GUEST: ready", 60000, NULL, 0) == 0,
		 "the guest did not boot");

	for (;;) {
		/* Every line: the guest's and the agent's (its pool messages). */
		VM_CHECK(vm_expect(vm, "", 60000, line, sizeof(line)) == 0,
			 "the memory loop stopped");
		if (strstr(line, "memory server") && strstr(line, "is down"))
			down = 1;
		if (!strstr(line, "SDRSA-GUEST: memloop "))
			continue;
		r = vm_memloop_line(&ml, line);
		VM_CHECK(r >= 0, "the memory loop's output is wrong (above)");
		if (r == 1)
			break;
		/* After the second file is written (most of the guest's RAM has
		 * been out to the pool by then): one server dies. */
		if (ml.writes == 2 && !killed) {
			vm_log("SIGKILL memory server %s", addr[1]);
			kill(srv[1].pid, SIGKILL);
			waitpid(srv[1].pid, NULL, 0);
			srv[1].pid = 0;
			killed = 1;
		}
	}
	VM_CHECK(killed, "the memory loop ended before a server could be killed");
	VM_CHECK(vm_expect(vm, "SDRSA-GUEST: poweroff", 20000, NULL, 0) == 0, "no poweroff");
	st = vm_wait(vm, 20000);
	VM_CHECK(st == 0, "the agent ended with %d after the guest powered off", st);
	VM_CHECK(down, "the agent did not report the server down");
	vm_log("PASS: %d x %d MiB on 3 servers x 2 replicas, one killed, %d md5s equal the "
	       "host's, %.1f s",
	       ROUNDS, SIZE_MB, ml.writes + ml.checks, vm_seconds(vm));
out:
	vm_free(vm);
	for (i = 0; i < NSRV; i++)
		vm_proc_free(&srv[i]);
	vm_agent_rundir_remove(rundir);
	return rc;
}
