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
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pattern.h"
#include "vm_agent.h"
#include "vm_harness.h"

#define ROUNDS 4
#define SIZE_MB 16
#define SEED 7100
#define KEEP 2

static char md5s[ROUNDS + 1][33];

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
	struct vm_opts o = {0};
	struct vm *vm = NULL;
	struct vm_proc srv = {.pid = 0, .out_fd = -1};
	char why[512], addr[64], name[64], prefix[1024], line[1024], rundir[256] = "", run[128];
	char got[64], out[8192];
	uint64_t seed, r, file;
	int rc = VM_PASS, st, writes = 0, checks = 0, want_checks = 0, i;
	long long in, sent;
	const char *m;

	if (vm_agent_available(why, sizeof(why)) < 0)
		return vm_skip("%s", why);
	for (i = 1; i <= ROUNDS; i++)
		want_checks += i < KEEP ? i : KEEP;
	for (i = 1; i <= ROUNDS; i++)
		if (vm_host_md5(SEED + (uint64_t)i, SIZE_MB, md5s[i]) < 0)
			return vm_skip("cannot compute md5 on the host (md5sum missing?)");
	if (vm_agent_rundir(rundir, sizeof(rundir)) < 0)
		return vm_skip("cannot make a control directory in /tmp");
	VM_CHECK(vm_server_start(&srv, addr, sizeof(addr)) == 0, "the memory server did not start");
	snprintf(name, sizeof(name), "evict%d", (int)getpid());
	snprintf(prefix, sizeof(prefix), "%s vm %s --server %s --local 32M --stats --",
		 vm_agent_bin(), name, addr);
	snprintf(run, sizeof(run), "sdrsa-memloop %d %dM %d %d; sleep 2", ROUNDS, SIZE_MB, SEED,
		 KEEP);
	o.ram_file = "none";
	o.prefix = prefix;
	o.mem = "256M";
	o.run = run;
	o.timeout_s = 80;
	VM_CHECK(vm_start(&o, &vm) == 0, "QEMU did not start");
	VM_CHECK(vm_expect(vm, "QEMU pid", 30000, line, sizeof(line)) == 0,
		 "the agent did not start QEMU");
	VM_CHECK(vm_expect(vm, "SDRSA-GUEST: ready", 60000, NULL, 0) == 0,
		 "the guest did not boot");

	for (;;) {
		VM_CHECK(vm_expect(vm, "SDRSA-GUEST: memloop ", 60000, line, sizeof(line)) == 0,
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
			writes++;
		} else {
			VM_CHECK(vm_parse_u64(line, "file=", &file) == 0 && file >= 1 && file <= r,
				 "bad file in '%s'", line);
			VM_CHECK(strstr(line, " ok") != NULL, "the guest found a mismatch: %s",
				 line);
			checks++;
		}
		VM_CHECK(seed == SEED + file, "file %" PRIu64 " has seed %" PRIu64, file, seed);
		VM_CHECK(!strcmp(got, md5s[file]),
			 "md5 mismatch for file %" PRIu64 " in round %" PRIu64
			 ": guest %s, host %s",
			 file, r, got, md5s[file]);
	}
	VM_CHECK(strstr(line, "mismatches=0") != NULL, "%s", line);
	VM_CHECK(writes == ROUNDS && checks == want_checks, "%d writes, %d rechecks", writes,
		 checks);

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
	       ROUNDS, SIZE_MB, writes + checks, sent, in, vm_seconds(vm));
out:
	vm_free(vm);
	vm_proc_free(&srv);
	vm_agent_rundir_remove(rundir);
	return rc;
}
