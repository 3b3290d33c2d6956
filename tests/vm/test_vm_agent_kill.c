/* SPDX-License-Identifier: MIT */
/*
 * test_vm_agent_kill: if the agent dies, the guest must not run on: QEMU is
 * killed, with a clear message, within seconds. Pages the guest had on the
 * server would otherwise come back as zeros (or the guest would hang).
 *
 * The guest boots under `rsa-app vm` with a 32 MiB budget and runs the
 * memory loop for ever (so part of its memory is on the server and it
 * faults all the time). After two rounds the test kills the agent with
 * SIGKILL. The test is QEMU's subreaper (PR_SET_CHILD_SUBREAPER), so it can
 * reap QEMU and see how it ended. Checked:
 *   - QEMU's shim prints its message ("the sdrsa agent ... is gone ...
 *     stopping QEMU") on the console within 5 s;
 *   - QEMU is dead within 5 s, killed by SIGKILL;
 *   - no md5 mismatch was ever printed by the guest.
 *
 * Exit 0 pass, 1 fail, 77 skip (guest or agent not built; a failure with CI).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vm_agent.h"
#include "vm_harness.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(void)
{
	struct vm *vm = NULL;
	struct vm_proc srv = {.pid = 0, .out_fd = -1};
	char why[512], addr[64], name[64], prefix[1024], line[1024], rundir[256] = "";
	pid_t qemu = 0, agent;
	int rc = VM_PASS, st = 0, reaped = 0, rounds = 0;
	double t_kill, t_msg = -1, t_dead = -1;

	if (vm_agent_available(why, sizeof(why)) < 0)
		return vm_skip("%s", why);
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		return vm_skip("cannot become a subreaper: %s", strerror(errno));
	if (vm_agent_rundir(rundir, sizeof(rundir)) < 0)
		return vm_skip("cannot make a control directory in /tmp");
	VM_CHECK(vm_server_start(&srv, addr, sizeof(addr)) == 0, "the memory server did not start");
	snprintf(name, sizeof(name), "kill%d", (int)getpid());
	snprintf(prefix, sizeof(prefix), "%s vm %s --server %s --local 32M --", vm_agent_bin(),
		 name, addr);
	VM_CHECK(vm_agent_boot(prefix, "sdrsa-memloop 1000 16M 9000 2", NULL, &vm, line,
			       sizeof(line)) == 0,
		 "the guest did not start under the agent");
	qemu = vm_agent_qemu_pid(line);
	agent = vm_pid(vm);
	VM_CHECK(qemu > 0 && agent > 0, "no QEMU pid in '%s'", line);
	VM_CHECK(vm_expect(vm, "SDRSA-GUEST: ready", 60000, NULL, 0) == 0,
		 "the guest did not boot");
	while (rounds < 2) {
		VM_CHECK(vm_expect(vm, "SDRSA-GUEST: memloop ", 30000, line, sizeof(line)) == 0,
			 "the memory loop stopped");
		VM_CHECK(!strstr(line, "MISMATCH") && !strstr(line, "mismatch"), "%s", line);
		rounds += strstr(line, "memloop write ") != NULL;
	}

	vm_log("killing the agent (pid %d) with SIGKILL; QEMU is pid %d", (int)agent, (int)qemu);
	t_kill = now_s();
	VM_CHECK(kill(agent, SIGKILL) == 0, "kill: %s", strerror(errno));
	/* The console (QEMU's stderr) must say why QEMU stops. */
	if (vm_expect(vm, "is gone", 5000, line, sizeof(line)) == 0) {
		t_msg = now_s() - t_kill;
		VM_CHECK(strstr(line, "sdrsa-qemu-shim") && strstr(line, "stopping QEMU"),
			 "unclear message: %s", line);
	}
	/* QEMU must be dead (we reap it as its subreaper). */
	while (now_s() - t_kill < 5.0) {
		pid_t r = waitpid(qemu, &st, WNOHANG);

		if (r == qemu) {
			reaped = 1;
			t_dead = now_s() - t_kill;
			break;
		}
		if (r < 0 && errno == ECHILD && kill(qemu, 0) < 0) {
			reaped = 1; /* reaped by someone else (not our child) */
			t_dead = now_s() - t_kill;
			st = -1;
			break;
		}
		usleep(20000);
	}
	VM_CHECK(reaped, "QEMU (pid %d) still runs 5 s after the agent was killed", (int)qemu);
	VM_CHECK(st == -1 || (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL),
		 "QEMU ended with status 0x%x, not SIGKILL", st);
	VM_CHECK(t_msg >= 0, "QEMU printed no message about the agent");
	vm_log("PASS: QEMU printed its message %.2f s and was dead %.2f s after the agent was "
	       "killed",
	       t_msg, t_dead);
out:
	if (rc != VM_PASS && qemu > 0)
		kill(qemu, SIGKILL);
	vm_free(vm);
	vm_proc_free(&srv);
	vm_agent_rundir_remove(rundir);
	return rc;
}
