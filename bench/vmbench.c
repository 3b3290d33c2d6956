/* SPDX-License-Identifier: MIT */
/*
 * vmbench: what putting a guest's RAM on the memory pool costs, as ratios
 * against plain QEMU measured in the same run. Not a test (never in
 * `meson test`); see docs/PERFORMANCE.md, "Virtual machines".
 *
 * The guest is the one of tests/vm (guest/run-guest.sh: Debian's 6.1
 * kernel, busybox, QEMU TCG, 256 MiB by default). Configurations:
 *
 *   plain   qemu-system-x86_64 as run-guest.sh starts it, anonymous RAM
 *   100%    under `rsa-app vm --local 100%` (every page local: the cost of
 *           the agent serving first touches)
 *   50%     --local 50%
 *   25%     --local 25%
 *
 * Each configuration boots the guest and runs the memory workload
 * (sdrsa-memloop: writes and re-reads tmpfs files, md5 of each; all md5s
 * must be equal to the host's, or the run counts as failed). Timed: boot
 * (start to "SDRSA-GUEST: ready": QEMU start, SeaBIOS, kernel, initramfs,
 * module) and workload (the memloop's first line to its last). The
 * configurations are interleaved, --reps times, and the median of each is
 * reported with its ratio to plain. A memory server of its own is started
 * on 127.0.0.1.
 *
 * Exit status: 0 when everything was measured, 1 when a run failed, 2 on bad
 * usage.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vm_agent.h"
#include "vm_harness.h"

#define MAX_REPS 15
#define NCFG 4

static const char *const cfg_name[NCFG] = {"plain", "100%", "50%", "25%"};

struct result {
	double boot[MAX_REPS], work[MAX_REPS];
	long long in[MAX_REPS], out[MAX_REPS];
	int n;
};

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(const double *v, int n)
{
	double t[MAX_REPS];

	memcpy(t, v, (size_t)n * sizeof(double));
	qsort(t, (size_t)n, sizeof(double), cmp_d);
	return n ? (n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2) : 0;
}

static long long after(const char *line, const char *key)
{
	const char *p = strstr(line, key);

	return p ? atoll(p + strlen(key)) : -1;
}

/* One boot + workload. Returns 0 and the times, or -1. */
static int one(int cfg, const char *server, const char *mem, const char *work, int rep,
	       double *boot, double *wtime, long long *pin, long long *pout)
{
	struct vm_opts o = {0};
	struct vm *vm = NULL;
	char prefix[1024], line[2048], name[64];
	double t_run = 0;
	int rc = -1, st;

	snprintf(name, sizeof(name), "bench%d-%d-%d", (int)getpid(), cfg, rep);
	o.ram_file = "none";
	o.mem = mem;
	o.run = work;
	o.quiet = 1;
	o.timeout_s = 600;
	if (cfg > 0) {
		snprintf(prefix, sizeof(prefix), "%s vm %s --server %s --local %s --stats --",
			 vm_agent_bin(), name, server, cfg_name[cfg]);
		o.prefix = prefix;
	}
	if (vm_start(&o, &vm) < 0)
		return -1;
	if (vm_expect(vm, "SDRSA-GUEST: ready", 300000, NULL, 0) < 0)
		goto out;
	*boot = vm_seconds(vm);
	if (vm_expect(vm, "SDRSA-GUEST: run ", 60000, NULL, 0) < 0)
		goto out;
	t_run = vm_seconds(vm);
	if (vm_expect(vm, "SDRSA-GUEST: memloop done", 600000, line, sizeof(line)) < 0)
		goto out;
	*wtime = vm_seconds(vm) - t_run;
	if (!strstr(line, "mismatches=0")) {
		vm_log("%s: the guest found mismatches: %s", cfg_name[cfg], line);
		goto out;
	}
	*pin = *pout = 0;
	if (cfg > 0) {
		if (vm_expect(vm, "stats: faults", 60000, line, sizeof(line)) < 0)
			goto out;
		*pin = after(line, "pages in ");
		*pout = after(line, ") out ");
	}
	st = vm_wait(vm, 60000);
	if (st != 0) {
		vm_log("%s: QEMU ended with %d", cfg_name[cfg], st);
		goto out;
	}
	rc = 0;
out:
	vm_free(vm);
	return rc;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: vmbench [--reps N] [--mem SIZE] [--rounds N] [--size SIZE] [--quick]\n"
		   "  --reps N     boots per configuration, interleaved (3; at most 15)\n"
		   "  --mem SIZE   guest RAM (256M)\n"
		   "  --rounds N, --size SIZE   the memloop workload (4 rounds of 16M)\n"
		   "  --quick      one boot each, 2 rounds of 8M\n"
		   "Environment: SDRSA_RSA_APP, SDRSA_MEMORY_SERVER, SDRSA_RUN_GUEST,\n"
		   "SDRSA_GUEST_DIR (set by meson for the build's own binaries).\n");
}

int main(int argc, char **argv)
{
	struct result res[NCFG];
	struct vm_proc srv = {.pid = 0, .out_fd = -1};
	char why[512], addr[64], rundir[256] = "", work[128], host[128] = "?", when[32];
	const char *mem = "256M", *size = "16M";
	int reps = 3, rounds = 4, failed = 0, cfg, rep;
	double load[3] = {0};
	time_t now = time(NULL);
	FILE *f;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--reps") && i + 1 < argc) {
			reps = atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--mem") && i + 1 < argc) {
			mem = argv[++i];
		} else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) {
			rounds = atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--size") && i + 1 < argc) {
			size = argv[++i];
		} else if (!strcmp(argv[i], "--quick")) {
			reps = 1;
			rounds = 2;
			size = "8M";
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (reps < 1 || reps > MAX_REPS || rounds < 1) {
		usage(stderr);
		return 2;
	}
	if (vm_agent_available(why, sizeof(why)) < 0) {
		fprintf(stderr, "vmbench: %s\n", why);
		return 1;
	}
	if (vm_agent_rundir(rundir, sizeof(rundir)) < 0 ||
	    vm_server_start(&srv, addr, sizeof(addr)) < 0) {
		fprintf(stderr, "vmbench: cannot start the memory server\n");
		return 1;
	}
	snprintf(work, sizeof(work), "sdrsa-memloop %d %s 7200 2", rounds, size);
	memset(res, 0, sizeof(res));
	if (getloadavg(load, 3) < 0)
		load[0] = -1;
	f = popen("uname -r", "r");
	if (f) {
		if (fgets(host, sizeof(host), f))
			host[strcspn(host, "\n")] = 0;
		pclose(f);
	}
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M", gmtime(&now));
	printf("vmbench %s UTC: guest %s RAM, workload '%s', %d boot(s) per configuration, "
	       "Linux %s, load %.2f at start\n",
	       when, mem, work, reps, host, load[0]);
	fflush(stdout);
	for (rep = 0; rep < reps; rep++) {
		for (cfg = 0; cfg < NCFG; cfg++) {
			struct result *r = &res[cfg];
			double b = 0, w = 0;
			long long in = 0, out = 0;

			if (one(cfg, addr, mem, work, rep, &b, &w, &in, &out) < 0) {
				fprintf(stderr, "vmbench: %s (boot %d) failed\n", cfg_name[cfg],
					rep + 1);
				failed = 1;
				continue;
			}
			r->boot[r->n] = b;
			r->work[r->n] = w;
			r->in[r->n] = in;
			r->out[r->n] = out;
			r->n++;
			fprintf(stderr,
				"vmbench: %-5s boot %d: boot %.2f s, workload %.2f s, pages in "
				"%lld out %lld\n",
				cfg_name[cfg], rep + 1, b, w, in, out);
		}
	}
	printf(
	    "\n| local | boot s (median) | boot / plain | workload s (median) | workload / plain "
	    "| pages in | pages out |\n| --- | --- | --- | --- | --- | --- | --- |\n");
	for (cfg = 0; cfg < NCFG; cfg++) {
		struct result *r = &res[cfg];
		double b = median(r->boot, r->n), w = median(r->work, r->n);
		double b0 = median(res[0].boot, res[0].n), w0 = median(res[0].work, res[0].n);

		if (!r->n) {
			printf("| %s | failed | | | | | |\n", cfg_name[cfg]);
			continue;
		}
		printf("| %s | %.2f | %.2f | %.2f | %.2f | %lld | %lld |\n",
		       cfg == 0 ? "plain QEMU" : cfg_name[cfg], b, b0 > 0 ? b / b0 : 0, w,
		       w0 > 0 ? w / w0 : 0, r->in[r->n - 1], r->out[r->n - 1]);
	}
	vm_proc_free(&srv);
	vm_agent_rundir_remove(rundir);
	return failed;
}
