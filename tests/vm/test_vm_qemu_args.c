/* SPDX-License-Identifier: MIT */
/*
 * test_vm_qemu_args: how the agent reads and rewrites a QEMU command line
 * (src/vm/qemu_args.c), and guest-physical address <-> RAM file offset for
 * the pc and q35 machines. No QEMU is run.
 *
 * Exit 0 pass, 1 fail.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "vm/qemu_args.h"

static int failures;

#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);            \
			fprintf(stderr, __VA_ARGS__);                                              \
			fputc('\n', stderr);                                                       \
			failures++;                                                                \
		}                                                                                  \
	} while (0)

#define GIB (1ULL << 30)
#define MIB (1ULL << 20)

static int plan(struct qemu_plan *p, char *err, size_t len, const char *const *argv)
{
	int n = 0;

	while (argv[n])
		n++;
	memset(p, 0, sizeof(*p));
	err[0] = 0;
	return qemu_plan_make((char *const *)argv, n, "/dev/shm/sdrsa-t", p, err, len);
}

static int has_args(const struct qemu_plan *p, const char *a, const char *b)
{
	for (int i = 0; i + 1 < p->argc; i++)
		if (!strcmp(p->argv[i], a) && !strcmp(p->argv[i + 1], b))
			return 1;
	return 0;
}

static void expect_error(const char *const *argv, const char *needle)
{
	struct qemu_plan p;
	char err[512];
	int r = plan(&p, err, sizeof(err), argv);

	CHECK(r == -EINVAL, "%s accepted", argv[1]);
	CHECK(strstr(err, needle) != NULL, "error '%s' lacks '%s'", err, needle);
	qemu_plan_free(&p);
}

int main(void)
{
	struct qemu_plan p;
	char err[512];
	uint64_t v;

	/* The plain command of the tests: the backend is added. */
	{
		const char *argv[] = {
		    "qemu-system-x86_64", "-machine", "pc,accel=tcg", "-m", "256M",
		    "-nographic",	  NULL};

		CHECK(plan(&p, err, sizeof(err), argv) == 0, "%s", err);
		CHECK(p.ram_bytes == 256 * MIB, "ram %llu", (unsigned long long)p.ram_bytes);
		CHECK(p.machine == VM_MACHINE_PC, "machine %d", p.machine);
		CHECK(!p.user_backend, "user backend");
		CHECK(!strcmp(p.mem_path, "/dev/shm/sdrsa-t"), "%s", p.mem_path);
		CHECK(has_args(&p, "-object",
			       "memory-backend-file,id=sdrsa-ram,size=268435456,"
			       "mem-path=/dev/shm/sdrsa-t,share=on"),
		      "no -object");
		CHECK(has_args(&p, "-machine", "memory-backend=sdrsa-ram"), "no -machine");
		CHECK(p.argc == 10 && p.argv[10] == NULL, "argc %d", p.argc);
		CHECK(!strcmp(p.argv[0], "qemu-system-x86_64") && !strcmp(p.argv[4], "256M"),
		      "original arguments changed");
		qemu_plan_free(&p);
	}
	/* -m forms; QEMU's default of 128 MiB; q35. */
	{
		const char *a1[] = {"qemu", "--m", "size=2G", "-M", "q35", NULL};
		const char *a2[] = {"qemu", "-m", "512", NULL};
		const char *a3[] = {"qemu", NULL};
		const char *a4[] = {"qemu", "-machine", "type=pc-i440fx-7.2", "-m", "1g", NULL};

		CHECK(plan(&p, err, sizeof(err), a1) == 0 && p.ram_bytes == 2 * GIB &&
			  p.machine == VM_MACHINE_Q35,
		      "%s", err);
		qemu_plan_free(&p);
		CHECK(plan(&p, err, sizeof(err), a2) == 0 && p.ram_bytes == 512 * MIB, "%s", err);
		qemu_plan_free(&p);
		CHECK(plan(&p, err, sizeof(err), a3) == 0 && p.ram_bytes == 128 * MIB, "%s", err);
		qemu_plan_free(&p);
		CHECK(plan(&p, err, sizeof(err), a4) == 0 && p.ram_bytes == GIB &&
			  p.machine == VM_MACHINE_PC,
		      "%s", err);
		qemu_plan_free(&p);
	}
	/* The user's own shared file backend is kept as it is. */
	{
		const char *argv[] = {
		    "qemu",
		    "-object",
		    "memory-backend-file,id=m0,size=1G,mem-path=/dev/shm/my,,ram,share=on",
		    "-machine",
		    "pc,memory-backend=m0",
		    NULL};

		CHECK(plan(&p, err, sizeof(err), argv) == 0, "%s", err);
		CHECK(p.user_backend && p.ram_bytes == GIB, "user backend not taken");
		CHECK(p.mem_path && !strcmp(p.mem_path, "/dev/shm/my,ram"), "path %s", p.mem_path);
		CHECK(p.argc == 5, "arguments were added: %d", p.argc);
		qemu_plan_free(&p);
	}
	/* What the agent cannot manage, each with a message saying what to do. */
	{
		const char *a1[] = {"qemu",
				    "-object",
				    "memory-backend-file,id=m0,size=1G,mem-path=/x",
				    "-machine",
				    "memory-backend=m0",
				    NULL};
		const char *a2[] = {
		    "qemu",	"-object",	     "memory-backend-ram,id=m0,size=1G",
		    "-machine", "memory-backend=m0", NULL};
		const char *a3[] = {"qemu", "-mem-path", "/dev/hugepages", NULL};
		const char *a4[] = {"qemu", "-m", "1G,slots=2,maxmem=4G", NULL};
		const char *a5[] = {"qemu", "-M", "microvm", NULL};
		const char *a6[] = {"qemu", "-m", "lots", NULL};
		const char *a7[] = {"qemu", "-machine", "memory-backend=nothere", NULL};
		const char *a8[] = {"qemu", "-numa", "node,memdev=m0", NULL};
		const char *a9[] = {"qemu", "-mem-prealloc", NULL};

		expect_error(a1, "share=on");
		expect_error(a2, "shared file");
		expect_error(a3, "remove -mem-path");
		expect_error(a4, "hotplug");
		expect_error(a5, "pc or q35");
		expect_error(a6, "not a size");
		expect_error(a7, "names no -object");
		expect_error(a8, "-numa");
		expect_error(a9, "remove -mem-prealloc");
		{
			const char *a10[] = {"qemu", "-daemonize", NULL};

			expect_error(a10, "remove -daemonize");
		}
	}
	/* Sizes. */
	CHECK(qemu_parse_size("4096", 1, &v) == 0 && v == 4096, "bytes");
	CHECK(qemu_parse_size("2M", 1, &v) == 0 && v == 2 * MIB, "2M");
	CHECK(qemu_parse_size("3", MIB, &v) == 0 && v == 3 * MIB, "MiB unit");
	CHECK(qemu_parse_size("1.5G", 1, &v) < 0, "1.5G accepted");
	CHECK(qemu_parse_size("", 1, &v) < 0, "empty accepted");

	/* Guest-physical address <-> RAM file offset. */
	CHECK(vm_gpa_to_offset(VM_MACHINE_PC, 256 * MIB, 0x29de000) == 0x29de000, "identity");
	CHECK(vm_gpa_to_offset(VM_MACHINE_PC, 256 * MIB, 256 * MIB) == -ERANGE, "end of RAM");
	CHECK(vm_gpa_to_offset(VM_MACHINE_PC, 4 * GIB, 3 * GIB - 4096) == (int64_t)(3 * GIB - 4096),
	      "below the hole");
	CHECK(vm_gpa_to_offset(VM_MACHINE_PC, 4 * GIB, 3 * GIB) == -ERANGE, "PCI hole");
	CHECK(vm_gpa_to_offset(VM_MACHINE_PC, 4 * GIB, 4 * GIB) == (int64_t)(3 * GIB), "above 4G");
	CHECK(vm_gpa_to_offset(VM_MACHINE_PC, 4 * GIB, 5 * GIB) == -ERANGE, "past the end");
	CHECK(vm_gpa_to_offset(VM_MACHINE_PC, 3 * GIB + 512 * MIB - 4096, 3 * GIB) ==
		  (int64_t)(3 * GIB),
	      "3.5 GiB - 1 page is all low");
	CHECK(vm_gpa_to_offset(VM_MACHINE_Q35, 3 * GIB, 2 * GIB) == -ERANGE, "q35 hole");
	CHECK(vm_gpa_to_offset(VM_MACHINE_Q35, 3 * GIB, 4 * GIB + 4096) ==
		  (int64_t)(2 * GIB + 4096),
	      "q35 high");
	CHECK(vm_gpa_to_offset(VM_MACHINE_Q35, 2 * GIB, 2 * GIB - 4096) ==
		  (int64_t)(2 * GIB - 4096),
	      "q35 small");
	CHECK(vm_offset_to_gpa(VM_MACHINE_PC, 4 * GIB, 3 * GIB) == 4 * GIB, "inverse high");
	CHECK(vm_offset_to_gpa(VM_MACHINE_PC, 4 * GIB, 4096) == 4096, "inverse low");

	if (failures) {
		fprintf(stderr, "%d checks failed\n", failures);
		return 1;
	}
	fprintf(stderr, "PASS: QEMU command lines and address translation\n");
	return 0;
}
