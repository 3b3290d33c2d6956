/* SPDX-License-Identifier: MIT */
/*
 * test_vm_watch: the seed's scenario end to end, with the guest's RAM on the
 * memory pool. The guest boots under `rsa-app vm` with 256 MiB of RAM and a
 * local budget of 64 MiB (it touches more than that while booting, so
 * eviction runs from the start); the module is loaded; the seed's
 * interactive test_chrdev prints the page's physical address and waits for
 * ENTER. Then, as in the seed:
 *
 *  1. `rsa-app watch NAME ADDR` starts: it reports that the page went to the
 *     memory server (upload_some_ram).
 *  2. Three ENTERs: each round writes a pattern and reads it back in the
 *     guest (verify=ok). Watch reports a write each round, and the page
 *     coming back from the server (download_more_ram) and going again
 *     (upload_some_ram).
 *  3. The memory server itself holds exactly the last round's pattern at
 *     the page's key (checked with libsdrsa in the VM's namespace).
 *  4. On the guest's shell, two read-only passes (test_chrdev --mode read):
 *     watch reports reads, and the guest reads back exactly the pattern.
 *  5. Ctrl-C stops the watch (exit 0); the guest runs on and reads the
 *     pattern once more, the page now under the normal policy.
 *
 * Exit 0 pass, 1 fail, 77 skip (guest or agent not built; a failure with CI).
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sdrsa/client.h>

#include "pattern.h"
#include "vm_agent.h"
#include "vm_harness.h"

#define SEED0 0x5d25a000ULL /* test_chrdev's default pattern seed */
#define ROUNDS 3

struct counts {
	int reads, writes, up, down;
};

/* Read watch lines until one contains until (or the time is up), counting
 * events. Returns 0 when until was seen. */
static int follow(struct vm_proc *w, const char *until, int ms, struct counts *c)
{
	char line[1024];

	for (;;) {
		int r = vm_proc_line(w, ms, line, sizeof(line));

		if (r < 0)
			return r;
		if (strstr(line, " read gpa="))
			c->reads++;
		if (strstr(line, " write gpa="))
			c->writes++;
		if (strstr(line, "upload_some_ram"))
			c->up++;
		if (strstr(line, "download_more_ram"))
			c->down++;
		if (until && strstr(line, until))
			return 0;
	}
}

/* Drain watch lines for ms. */
static void settle_lines(struct vm_proc *w, int ms, struct counts *c)
{
	follow(w, NULL, ms, c);
}

int main(void)
{
	struct vm *vm = NULL;
	struct vm_proc srv = {.pid = 0, .out_fd = -1}, w = {.pid = 0, .out_fd = -1};
	struct sdrsa_client *cl = NULL;
	char why[512], addr[64], name[64], prefix[1024], line[1024], rundir[256] = "", hex[32];
	char cmd[256];
	unsigned char page[4096];
	struct counts c = {0}, before;
	uint64_t phys = 0;
	int rc = VM_PASS, k, st;
	long bad;

	if (vm_agent_available(why, sizeof(why)) < 0)
		return vm_skip("%s", why);
	if (vm_agent_rundir(rundir, sizeof(rundir)) < 0)
		return vm_skip("cannot make a control directory in /tmp");
	VM_CHECK(vm_server_start(&srv, addr, sizeof(addr)) == 0, "the memory server did not start");
	snprintf(name, sizeof(name), "watch%d", (int)getpid());
	snprintf(prefix, sizeof(prefix), "%s vm %s --server %s --local 64M --", vm_agent_bin(),
		 name, addr);
	VM_CHECK(vm_agent_boot(prefix, "test_chrdev", "shell", &vm, NULL, 0) == 0,
		 "the guest did not start under the agent");
	VM_CHECK(vm_expect(vm, "SDRSA-GUEST: chrdev device=", 60000, line, sizeof(line)) == 0,
		 "test_chrdev did not start in the guest");
	VM_CHECK(vm_parse_u64(line, "phys=", &phys) == 0 && phys % 4096 == 0,
		 "no page address in '%s'", line);
	VM_CHECK(vm_expect(vm, "press ENTER", 10000, NULL, 0) == 0, "no ENTER prompt");

	/* 1. The seed's rsa-app DOMU_NAME MEMORY_ADDRESS. */
	snprintf(hex, sizeof(hex), "0x%" PRIx64, phys);
	{
		const char *settle = getenv("SDRSA_TEST_SETTLE");
		const char *argv[] = {
		    vm_agent_bin(), "watch", name, hex, settle ? "--settle" : NULL, settle, NULL};

		VM_CHECK(vm_proc_start(&w, "watch", argv) == 0, "cannot start watch");
	}
	VM_CHECK(vm_proc_expect(&w, "watching VM", 10000, line, sizeof(line)) == 0,
		 "watch did not start");
	VM_CHECK(follow(&w, "upload_some_ram", 10000, &c) == 0,
		 "the page was not sent to the server when the watch began");

	/* 2. Three rounds of write + read in the guest. */
	for (k = 0; k < ROUNDS; k++) {
		before = c;
		VM_CHECK(vm_send(vm, "\n") == 0, "cannot type on the console");
		snprintf(cmd, sizeof(cmd), "chrdev round=%d ", k);
		VM_CHECK(vm_expect(vm, cmd, 20000, line, sizeof(line)) == 0, "round %d did not run",
			 k);
		VM_CHECK(strstr(line, "verify=ok") != NULL, "round %d: %s", k, line);
		/* The access, the page back, and away again. */
		VM_CHECK(follow(&w, "upload_some_ram", 10000, &c) == 0 && c.up > before.up,
			 "round %d: the page was not sent back to the server", k);
		settle_lines(&w, 300, &c);
		VM_CHECK(c.writes > before.writes, "round %d: watch reported no write", k);
		VM_CHECK(c.down > before.down, "round %d: no download_more_ram", k);
		if (k + 1 < ROUNDS)
			VM_CHECK(vm_expect(vm, "press ENTER", 10000, NULL, 0) == 0, "no prompt");
	}

	/* 3. The server holds exactly what the guest wrote last. */
	{
		char ns[96];
		struct sdrsa_client_config cc = {.address = addr, .name = ns, .timeout_ms = 5000};

		snprintf(ns, sizeof(ns), "vm-%s", name);
		VM_CHECK(sdrsa_client_connect(&cc, &cl) == 0,
			 "cannot connect to the memory server");
		VM_CHECK(sdrsa_get(cl, phys, page) == 0, "the server has no page at 0x%" PRIx64,
			 phys);
		bad = sdrsa_pattern_check(page, sizeof(page), SEED0 + ROUNDS - 1, 0);
		VM_CHECK(bad < 0,
			 "the server's copy of 0x%" PRIx64 " differs from the guest's last "
			 "write at byte %ld",
			 phys, bad);
	}

	/* 4. Read-only passes from the guest's shell: watch sees reads. */
	VM_CHECK(vm_send(vm, "q\n") == 0, "cannot type");
	VM_CHECK(vm_expect(vm, "chrdev result=PASS", 10000, NULL, 0) == 0, "test_chrdev failed");
	VM_CHECK(vm_expect(vm, "SDRSA-GUEST: shell", 10000, NULL, 0) == 0, "no shell");
	for (k = 0; k < 2; k++) {
		before = c;
		snprintf(cmd, sizeof(cmd),
			 "sleep 0.3; test_chrdev --mode read --rounds 1 --pattern "
			 "0x%llx\n",
			 SEED0 + ROUNDS - 1);
		VM_CHECK(vm_send(vm, cmd) == 0, "cannot type");
		VM_CHECK(vm_expect(vm, "chrdev round=0 ", 20000, line, sizeof(line)) == 0,
			 "the read pass did not run");
		VM_CHECK(strstr(line, "verify=ok") != NULL, "read pass %d: %s", k, line);
		VM_CHECK(follow(&w, "upload_some_ram", 10000, &c) == 0,
			 "read pass %d: the page was not sent back", k);
		VM_CHECK(c.reads > before.reads, "read pass %d: watch reported no read", k);
		VM_CHECK(c.down > before.down, "read pass %d: no download_more_ram", k);
	}

	/* 5. Ctrl-C: the watch ends, the guest runs on. */
	kill(w.pid, SIGINT);
	st = vm_proc_wait(&w, 5000);
	VM_CHECK(st == 0, "watch did not stop cleanly on Ctrl-C (%d)", st);
	snprintf(cmd, sizeof(cmd), "test_chrdev --mode read --rounds 1 --pattern 0x%llx\n",
		 SEED0 + ROUNDS - 1);
	VM_CHECK(vm_send(vm, cmd) == 0, "cannot type");
	VM_CHECK(vm_expect(vm, "chrdev round=0 ", 20000, line, sizeof(line)) == 0,
		 "the guest did not run on after the watch stopped");
	VM_CHECK(strstr(line, "verify=ok") != NULL, "after the watch: %s", line);

	vm_log("PASS: %d writes, %d reads, %d uploads, %d downloads reported for 0x%" PRIx64
	       " in %.1f s",
	       c.writes, c.reads, c.up, c.down, phys, vm_seconds(vm));
out:
	sdrsa_client_free(cl);
	vm_proc_free(&w);
	vm_free(vm);
	vm_proc_free(&srv);
	vm_agent_rundir_remove(rundir);
	return rc;
}
