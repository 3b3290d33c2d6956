/* SPDX-License-Identifier: MIT */
/*
 * vm_harness: boot the sdrsa guest under QEMU (TCG) from a test, follow its
 * serial console line by line, type into it, read and write its RAM through
 * the shared RAM file, and always stop QEMU at the end.
 *
 * QEMU is started through guest/run-guest.sh --exec (the one place that
 * spells the command line; $SDRSA_RUN_GUEST), with its RAM in
 * /dev/shm/sdrsa-vm-PID-N unless the options say otherwise. Guest physical
 * address = offset in that file (pc machine, RAM below 3.5 GiB).
 *
 * Lifetime rules: QEMU is the harness's direct child, dies with it
 * (PR_SET_PDEATHSIG), is killed when the VM's time limit passes or the test
 * gets SIGTERM/SIGINT/SIGHUP, and vm_free() kills it and reaps it. The RAM
 * file is opened and unlinked as soon as QEMU has created it (on its first
 * console output), so a killed test leaves nothing behind in /dev/shm. Console lines are copied to stderr as "console: ..." (meson
 * keeps them in the test log). One VM at a time per process is the tested
 * case; several work, but the signal clean-up covers only the newest.
 *
 * Functions return 0 or a value >= 0 on success and -errno on failure.
 * Test programs exit 0 pass, 1 fail, 77 skip; with CI set a skip fails.
 */
#ifndef SDRSA_TEST_VM_HARNESS_H
#define SDRSA_TEST_VM_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define VM_PASS 0
#define VM_FAIL 1
#define VM_SKIP 77

struct vm_opts {
	const char *run;       /* command for the guest's /init (sdrsa.run); NULL: none */
	const char *after;     /* after the command: "poweroff", "hold", "shell"; NULL: default */
	const char *mem;       /* guest RAM like "256M"; NULL: 256M */
	const char *ram_file;  /* RAM file path; NULL: /dev/shm/sdrsa-vm-PID-N; "none": anon */
	const char *append;    /* more kernel command line, or NULL */
	const char *prefix;    /* wrapper words before qemu (split on spaces), or NULL */
	const char *const *extra; /* more QEMU arguments, NULL-terminated, or NULL */
	int timeout_s;         /* the VM is killed after this many seconds; 0: 50 */
	int quiet;             /* do not copy the console to stderr */
	int keep_ram_path;     /* keep the RAM file's name until vm_free() (default: it is
				* unlinked as soon as QEMU has it open, so that nothing
				* is left in /dev/shm even if the test is SIGKILLed) */
};

struct vm;

/* Is everything there to boot the guest? Returns 0, or -ENOENT with a
 * one-line reason in why (no qemu-system-x86_64, guest not built). */
int vm_available(char *why, size_t len);

/* Start QEMU. Returns 0 and *ret, or -errno (the reason is logged). */
int vm_start(const struct vm_opts *o, struct vm **ret);

/* Wait for the next console line that contains needle; earlier lines are
 * consumed. The line (without CR/LF) is copied to line when given.
 * Returns 0, -ETIMEDOUT, or -ECHILD when QEMU exited first. */
int vm_expect(struct vm *vm, const char *needle, int timeout_ms, char *line, size_t len);

/* Type text on the guest's serial console. Returns 0 or -errno. */
int vm_send(struct vm *vm, const char *text);

/* The RAM file offset of guest-physical address gpa on QEMU's pc machine:
 * gpa itself when the guest has less than 3.5 GiB; with more, RAM from 3 GiB
 * on is mapped above 4 GiB (gpa - 1 GiB). Returns the offset, or -ERANGE
 * when gpa is not guest RAM (the PCI hole, beyond the end). */
int64_t vm_gpa_to_offset(const struct vm *vm, uint64_t gpa);

/* pread/pwrite len bytes at guest-physical address gpa straight from/to the
 * RAM file (the range must not cross the PCI hole). Returns 0, -ERANGE
 * outside guest RAM, or -errno. */
int vm_read_phys(struct vm *vm, uint64_t gpa, void *buf, size_t len);
int vm_write_phys(struct vm *vm, uint64_t gpa, const void *buf, size_t len);

/* Wait for QEMU to exit by itself (the guest powered off), draining the
 * console. Returns QEMU's exit status (0..255), 128+signal, or -ETIMEDOUT. */
int vm_wait(struct vm *vm, int timeout_ms);

uint64_t vm_ram_bytes(const struct vm *vm);
/* The RAM file's name; NULL with ram_file "none", or once it was unlinked. */
const char *vm_ram_path(const struct vm *vm);
pid_t vm_pid(const struct vm *vm);
double vm_seconds(const struct vm *vm);      /* since vm_start() */

/* Kill QEMU if it still runs, reap it, remove the RAM file. NULL is fine. */
void vm_free(struct vm *vm);

/* Logging and checks for the test programs. */
void vm_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print why the test is skipped; returns VM_SKIP, or VM_FAIL when $CI is set. */
int vm_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define VM_CHECK(cond, ...)                                                                        \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			vm_log("FAIL %s:%d: %s", __FILE__, __LINE__, #cond);                       \
			vm_log(__VA_ARGS__);                                                       \
			rc = VM_FAIL;                                                              \
			goto out;                                                                  \
		}                                                                                  \
	} while (0)

/* Parse a hex or decimal number that follows key (e.g. "phys=") in line.
 * Returns 0 or -EINVAL. */
int vm_parse_u64(const char *line, const char *key, uint64_t *out);

/* md5 (32 hex digits + NUL) of size_mb MiB of guest/pattern.h's pattern for
 * seed, computed on the host with md5sum, to compare with what a guest prints.
 * Returns 0, -errno or -EIO. */
int vm_host_md5(uint64_t seed, unsigned size_mb, char out[33]);

/* ---- the guest's memory loop (guest/initramfs/sdrsa-memloop) ---- */

#define VM_MEMLOOP_MAX_ROUNDS 8

/* What `sdrsa-memloop ROUNDS SIZE_MB SEED KEEP` must print: in round r a
 * write of file r (seed SEED+r, SIZE_MB MiB), then a recheck of each file
 * still kept (the last KEEP), every md5 equal to the host's, and a last
 * line with no mismatch. */
struct vm_memloop {
	unsigned rounds, size_mb, keep;
	uint64_t seed;
	char md5[VM_MEMLOOP_MAX_ROUNDS + 1][33]; /* md5[r]: the file of round r */
	int writes, checks;                      /* lines seen so far */
	int want_checks;                         /* rechecks in a whole run */
};

/* Set up m and compute every file's md5 on the host. 0, -EINVAL (rounds
 * not 1..VM_MEMLOOP_MAX_ROUNDS, keep 0) or vm_host_md5's error. */
int vm_memloop_init(struct vm_memloop *m, unsigned rounds, unsigned size_mb, uint64_t seed,
		    unsigned keep);
/* The guest command that runs it. */
void vm_memloop_cmd(const struct vm_memloop *m, char *buf, size_t len);
/* Check one "SDRSA-GUEST: memloop ..." console line against m: 0 for a
 * write or recheck that matches the host, 1 for the last line when the run
 * was whole and clean, -EINVAL (the reason logged) for anything wrong. */
int vm_memloop_line(struct vm_memloop *m, const char *line);

#endif
