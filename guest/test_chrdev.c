/* SPDX-License-Identifier: MIT */
/*
 * test_chrdev: the seed's user-space test program. It opens the
 * chr_dev_udev device (one kernel page), prints the page's guest-physical
 * address, and on each ENTER sends one write of the whole page (a pattern)
 * and one read of it, and checks that the read returns what was written.
 * The host watches that physical page from outside (rsa-app watch), so each
 * round is exactly one write(2) and one read(2) of 4096 bytes.
 *
 * Interactive (as in the seed):  test_chrdev            ENTER = one round, q/EOF quits
 * Non-interactive (tests):       test_chrdev --rounds N [--interval MS] [--pattern SEED]
 *
 * Round k (0-based) uses the pattern stream of seed SEED+k (guest/pattern.h),
 * so the page after the last round holds the stream of SEED+rounds-1; the
 * host test reads it back from the guest's RAM file and checks exactly that.
 *
 * Every line goes to stdout, flushed, prefixed "SDRSA-GUEST: chrdev " so a
 * host following the serial console can parse it:
 *   ... device=PATH phys=0xADDR size=4096
 *   ... round=K seed=0xS write=ok read=ok verify=ok us=T
 *   ... result=PASS rounds=N          (or result=FAIL ...)
 * Exit status: 0 all rounds verified, 1 a mismatch or an I/O error, 2 bad
 * usage or the device is missing.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "chr_dev_udev.h"
#include "pattern.h"

#define TAG "SDRSA-GUEST: chrdev "

enum mode { MODE_RW, MODE_WRITE, MODE_READ };

static void usage(FILE *f)
{
	fprintf(f, "usage: test_chrdev [--device PATH] [--pattern SEED] [--rounds N]\n"
		   "                   [--interval MS] [--mode rw|write|read]\n"
		   "  without --rounds: wait for ENTER before each round (q or EOF quits)\n"
		   "  --mode write: only write the pattern; --mode read: only read and verify it\n");
}

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* The page's physical address: the ioctl, else the sysfs attribute. Returns
 * 0 on success, -1 when neither works. */
static int get_phys(int fd, uint64_t *out)
{
	unsigned long long v;
	__u64 phys;
	FILE *f;
	int ok;

	if (ioctl(fd, CHR_DEV_UDEV_IOC_PHYS, &phys) == 0) {
		*out = phys;
		return 0;
	}
	f = fopen(CHR_DEV_UDEV_SYSFS, "r");
	if (!f)
		return -1;
	ok = fscanf(f, "%llx", &v) == 1;
	fclose(f);
	if (!ok)
		return -1;
	*out = v;
	return 0;
}

/* The file operations stay inside the page: SEEK_END is the page's end, a
 * read there returns 0, a write there fails with ENOSPC, a seek past it
 * fails with EINVAL. None of this touches the page itself (a watcher on the
 * host sees no access). Returns 0 when all hold. */
static int check_bounds(int fd)
{
	char b = 0;

	if (lseek(fd, 0, SEEK_END) != (off_t)CHR_DEV_UDEV_SIZE)
		return -1;
	if (read(fd, &b, 1) != 0)
		return -1;
	if (write(fd, &b, 1) != -1 || errno != ENOSPC)
		return -1;
	if (lseek(fd, 1, SEEK_END) != -1 || errno != EINVAL)
		return -1;
	return lseek(fd, 0, SEEK_SET) == 0 ? 0 : -1;
}

/* One round: a single write and/or a single read of the whole page.
 * Returns 0 when verified, 1 otherwise (the reason is printed). */
static int round_once(int fd, enum mode mode, int k, uint64_t seed, unsigned char *buf)
{
	const char *w = "skip", *r = "skip", *v = "skip";
	char vbuf[48];
	uint64_t t0 = now_us();
	ssize_t n;
	long bad;

	if (mode != MODE_READ) {
		sdrsa_pattern_fill(buf, CHR_DEV_UDEV_SIZE, seed, 0);
		n = lseek(fd, 0, SEEK_SET) == 0 ? write(fd, buf, CHR_DEV_UDEV_SIZE) : -1;
		if (n != (ssize_t)CHR_DEV_UDEV_SIZE) {
			printf(TAG "round=%d write failed: %s\n", k, n < 0 ? strerror(errno) : "short");
			return 1;
		}
		w = "ok";
	}
	if (mode != MODE_WRITE) {
		memset(buf, 0, CHR_DEV_UDEV_SIZE);
		n = lseek(fd, 0, SEEK_SET) == 0 ? read(fd, buf, CHR_DEV_UDEV_SIZE) : -1;
		if (n != (ssize_t)CHR_DEV_UDEV_SIZE) {
			printf(TAG "round=%d read failed: %s\n", k, n < 0 ? strerror(errno) : "short");
			return 1;
		}
		r = "ok";
		bad = sdrsa_pattern_check(buf, CHR_DEV_UDEV_SIZE, seed, 0);
		if (bad >= 0) {
			snprintf(vbuf, sizeof(vbuf), "FAIL@%ld", bad);
			v = vbuf;
		} else {
			v = "ok";
		}
	}
	printf(TAG "round=%d seed=0x%" PRIx64 " write=%s read=%s verify=%s us=%" PRIu64 "\n", k,
	       seed, w, r, v, now_us() - t0);
	fflush(stdout);
	return strcmp(v, "ok") != 0 && strcmp(v, "skip") != 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "device", required_argument, NULL, 'd' },
		{ "pattern", required_argument, NULL, 'p' },
		{ "rounds", required_argument, NULL, 'n' },
		{ "interval", required_argument, NULL, 'i' },
		{ "mode", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dev = CHR_DEV_UDEV_PATH;
	unsigned char *buf;
	enum mode mode = MODE_RW;
	uint64_t seed = 0x5d25a000, phys;
	long rounds = -1, interval_ms = 0;
	int c, fd, k, fails = 0;
	char line[64];
	char *end;

	while ((c = getopt_long(argc, argv, "d:p:n:i:m:h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			dev = optarg;
			break;
		case 'p':
			errno = 0;
			seed = strtoull(optarg, &end, 0);
			if (errno || *end || end == optarg)
				goto bad;
			break;
		case 'n':
			rounds = strtol(optarg, &end, 0);
			if (*end || rounds < 0)
				goto bad;
			break;
		case 'i':
			interval_ms = strtol(optarg, &end, 0);
			if (*end || interval_ms < 0)
				goto bad;
			break;
		case 'm':
			if (!strcmp(optarg, "rw"))
				mode = MODE_RW;
			else if (!strcmp(optarg, "write"))
				mode = MODE_WRITE;
			else if (!strcmp(optarg, "read"))
				mode = MODE_READ;
			else
				goto bad;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			goto bad;
		}
	}
	if (optind != argc)
		goto bad;

	fd = open(dev, O_RDWR);
	if (fd < 0) {
		printf(TAG "cannot open %s: %s (is chr_dev_udev.ko loaded?)\n", dev, strerror(errno));
		return 2;
	}
	if (get_phys(fd, &phys) < 0) {
		printf(TAG "cannot read the buffer address of %s: %s\n", dev, strerror(errno));
		return 2;
	}
	buf = aligned_alloc(CHR_DEV_UDEV_SIZE, CHR_DEV_UDEV_SIZE);
	if (!buf)
		return 2;
	if (check_bounds(fd) < 0) {
		printf(TAG "the device does not keep to its %lu-byte page (lseek/read/write "
			   "past the end)\n", CHR_DEV_UDEV_SIZE);
		return 1;
	}
	printf(TAG "device=%s phys=0x%" PRIx64 " size=%lu bounds=ok\n", dev, phys,
	       CHR_DEV_UDEV_SIZE);
	fflush(stdout);

	for (k = 0; rounds < 0 || k < rounds; k++) {
		if (rounds < 0) {
			printf(TAG "press ENTER to %s the buffer (q to quit)\n",
			       mode == MODE_RW ? "write and read" : mode == MODE_WRITE ? "write" : "read");
			fflush(stdout);
			if (!fgets(line, sizeof(line), stdin) || line[0] == 'q')
				break;
		} else if (k > 0 && interval_ms > 0) {
			struct timespec ts = { interval_ms / 1000, (interval_ms % 1000) * 1000000L };

			nanosleep(&ts, NULL);
		}
		fails += round_once(fd, mode, k, seed + (uint64_t)k, buf);
	}
	printf(TAG "result=%s rounds=%d failed=%d phys=0x%" PRIx64 "\n", fails ? "FAIL" : "PASS", k,
	       fails, phys);
	fflush(stdout);
	free(buf);
	close(fd);
	return fails ? 1 : 0;

bad:
	usage(stderr);
	return 2;
}
