/* SPDX-License-Identifier: MIT */
/*
 * test_vm_badcopy: the memory server hands back a copy of a guest page that
 * is not the one the agent stored, and the guest must not run on it. The
 * guest runs test_vm_evict's memory loop (256 MiB of RAM, 32 MiB local, so
 * pages go to the server and come back all the time). Once the loop has
 * started, a second client with the VM's namespace overwrites every page the
 * server holds for it with a pattern (as a stale or misdirected copy would:
 * the server's own checksum is right, the data is not the agent's). The
 * agent must then stop the guest, naming the page that came back different,
 * and exit non-zero; every memory loop line the guest printed before must
 * still be right (the guest never ran on the overwritten data). Without the
 * agent's check the guest reads the pattern: its md5s or its kernel go wrong
 * and the agent's message never comes.
 *
 * Exit 0 pass, 1 fail, 77 skip (guest or agent not built; a failure with CI).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sdrsa/client.h>

#include "vm_agent.h"
#include "vm_harness.h"

#define ROUNDS 8
#define SIZE_MB 16
#define SEED 7300
#define KEEP 2
#define GUEST_PAGES (256u * 256u) /* 256 MiB of guest RAM */

/* Overwrite every page the server holds in namespace ns; the count. */
static long overwrite_all(const char *addr, const char *ns)
{
	struct sdrsa_client_config cfg = {.address = addr, .name = ns};
	struct sdrsa_client *c;
	static unsigned char page[4096] __attribute__((aligned(4096)));
	static unsigned char junk[4096] __attribute__((aligned(4096)));
	long n = 0;

	if (sdrsa_client_connect(&cfg, &c) < 0)
		return -1;
	memset(junk, 0xee, sizeof(junk));
	for (uint64_t pg = 0; pg < GUEST_PAGES; pg++) {
		int r = sdrsa_get(c, pg * 4096, page);

		if (r == -ENOENT)
			continue;
		if (r < 0 || sdrsa_put(c, pg * 4096, junk) < 0) {
			n = -1;
			break;
		}
		n++;
	}
	sdrsa_client_free(c);
	return n;
}

int main(void)
{
	struct vm *vm = NULL;
	struct vm_proc srv = {.pid = 0, .out_fd = -1};
	char addr[64], name[64], ns[80], prefix[1024], line[1024], rundir[256] = "";
	char run[128];
	struct vm_memloop ml;
	int rc = VM_PASS, st, r, lines = 0;
	long n;

	rc = vm_agent_memloop_prepare(&ml, ROUNDS, SIZE_MB, SEED, KEEP, rundir, sizeof(rundir));
	if (rc != VM_PASS)
		return rc;
	VM_CHECK(vm_server_start(&srv, addr, sizeof(addr)) == 0, "the memory server did not start");
	snprintf(name, sizeof(name), "badcopy%d", (int)getpid());
	snprintf(ns, sizeof(ns), "vm-%s", name);
	snprintf(prefix, sizeof(prefix), "%s vm %s --server %s --local 32M --", vm_agent_bin(),
		 name, addr);
	vm_memloop_cmd(&ml, run, sizeof(run));
	VM_CHECK(vm_agent_boot(prefix, run, NULL, &vm, NULL, 0) == 0,
		 "the guest did not start under the agent");
	VM_CHECK(vm_expect(vm, "SDRSA-GUEST: memloop ", 60000, line, sizeof(line)) == 0,
		 "the memory loop did not start");
	r = vm_memloop_line(&ml, line);
	VM_CHECK(r == 0, "the memory loop's first line is wrong (above)");

	n = overwrite_all(addr, ns);
	VM_CHECK(n > 0, "no page of %s to overwrite on the server (%ld)", ns, n);
	vm_log("overwrote %ld pages of %s on the server", n, ns);

	/* Every line up to the agent's stop: memory loop lines must be right. */
	for (;;) {
		r = vm_expect(vm, "", 60000, line, sizeof(line));
		VM_CHECK(r == 0, "the agent did not stop the guest within 60 s (%d)", r);
		if (strstr(line, "SDRSA-GUEST: memloop ")) {
			lines++;
			VM_CHECK(vm_memloop_line(&ml, line) >= 0,
				 "the guest printed a wrong result after its pages were "
				 "overwritten");
			VM_CHECK(!strstr(line, "done"),
				 "the memory loop ended without the agent noticing");
			continue;
		}
		if (strstr(line, "came back from the memory server different from the copy stored"))
			break;
	}
	VM_CHECK(strstr(line, "stopping"), "the agent did not say it stops the guest: %s", line);
	st = vm_wait(vm, 20000);
	VM_CHECK(st != 0 && st > 0, "the agent ended with %d after a wrong copy", st);
	vm_log("PASS: %ld pages overwritten; the agent stopped the guest (status %d) after %d more "
	       "right memory loop lines: %s",
	       n, st, lines, line);
out:
	vm_free(vm);
	vm_proc_free(&srv);
	vm_agent_rundir_remove(rundir);
	return rc;
}
