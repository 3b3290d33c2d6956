/* SPDX-License-Identifier: MIT */
/*
 * swapref: a memory cgroup v1 with a swap file or zram, the Linux swap that
 * the benches measure the paging engine against (see swapref.h). Moved out
 * of enginebench so that curvebench sets up the same reference the same way.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/swap.h>
#include <sys/wait.h>
#include <unistd.h>

#include "swapref.h"

static char cg_path[256];   /* memory cgroup we created, "" when none */
static char swap_path[512]; /* swap file we created */
static int swap_on;	    /* swap_path is enabled */
static int zram_dev = -1;   /* zram device we added */
static char zram_swap[64];  /* /dev/zramN when enabled as swap */

int swapref_write_file(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = write(fd, val, strlen(val));
	int e = n < 0 ? -errno : 0;
	close(fd);
	return e;
}

/* Run a command quietly: 0 when it exits 0, -1 otherwise. */
static int run_cmd(const char *const argv[])
{
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	int st;
	if (waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

int swapref_available(char *why, size_t n)
{
	if (geteuid() != 0) {
		snprintf(why, n, "not root");
		return 0;
	}
	if (access("/sys/fs/cgroup/memory/memory.limit_in_bytes", W_OK) != 0) {
		snprintf(why, n, "no cgroup v1 memory controller at /sys/fs/cgroup/memory");
		return 0;
	}
	if (access("/sbin/mkswap", X_OK) != 0 && access("/usr/sbin/mkswap", X_OK) != 0) {
		snprintf(why, n, "no mkswap");
		return 0;
	}
	return 1;
}

int swapref_cgroup_setup(const char *tag, uint64_t limit, char *why, size_t n)
{
	snprintf(cg_path, sizeof(cg_path), "/sys/fs/cgroup/memory/%.64s.%d", tag, (int)getpid());
	if (mkdir(cg_path, 0755) < 0 && errno != EEXIST) {
		snprintf(why, n, "mkdir %.200s: %s", cg_path, strerror(errno));
		cg_path[0] = 0;
		return -1;
	}
	char p[300], v[32];
	snprintf(p, sizeof(p), "%s/memory.limit_in_bytes", cg_path);
	snprintf(v, sizeof(v), "%llu", (unsigned long long)limit);
	int e = swapref_write_file(p, v);
	if (e < 0) {
		snprintf(why, n, "%.200s: %s", p, strerror(-e));
		return -1;
	}
	return 0;
}

int swapref_cgroup_join(pid_t pid)
{
	char p[300], v[32];
	if (!cg_path[0])
		return -ENOENT;
	snprintf(p, sizeof(p), "%s/cgroup.procs", cg_path);
	snprintf(v, sizeof(v), "%d", (int)pid);
	return swapref_write_file(p, v);
}

const char *swapref_cgroup_path(void)
{
	return cg_path;
}

void swapref_cgroup_teardown(void)
{
	if (cg_path[0]) {
		char p[300];
		snprintf(p, sizeof(p), "%s/memory.force_empty", cg_path);
		swapref_write_file(p, "0");
		rmdir(cg_path);
		cg_path[0] = 0;
	}
}

int swapref_swapfile_setup(const char *dir, const char *tag, uint64_t bytes, char *why,
			   size_t n)
{
	snprintf(swap_path, sizeof(swap_path), "%.300s/%.64s.%d.swap", dir, tag, (int)getpid());
	int fd = open(swap_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(why, n, "create %.200s: %s", swap_path, strerror(errno));
		swap_path[0] = 0;
		return -1;
	}
	/* Written, not fallocated: some filesystems refuse swap on
	 * unwritten extents. */
	static char zero[1 << 20];
	for (uint64_t off = 0; off < bytes; off += sizeof(zero))
		if (write(fd, zero, sizeof(zero)) != (ssize_t)sizeof(zero)) {
			snprintf(why, n, "write %.200s: %s", swap_path, strerror(errno));
			close(fd);
			return -1;
		}
	fsync(fd);
	close(fd);
	const char *mk[] = {"mkswap", swap_path, NULL};
	if (run_cmd(mk) < 0) {
		snprintf(why, n, "mkswap %.200s failed", swap_path);
		return -1;
	}
	if (swapon(swap_path, 0) < 0) {
		snprintf(why, n, "swapon %.200s: %s", swap_path, strerror(errno));
		return -1;
	}
	swap_on = 1;
	return 0;
}

void swapref_swapfile_teardown(void)
{
	if (swap_on) {
		swapoff(swap_path);
		swap_on = 0;
	}
	if (swap_path[0]) {
		unlink(swap_path);
		swap_path[0] = 0;
	}
}

int swapref_zram_setup(uint64_t bytes, char *why, size_t n)
{
	char buf[32] = "";
	int fd = open("/sys/class/zram-control/hot_add", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		const char *mp[] = {"modprobe", "zram", "num_devices=0", NULL};
		run_cmd(mp);
		fd = open("/sys/class/zram-control/hot_add", O_RDONLY | O_CLOEXEC);
	}
	if (fd < 0) {
		snprintf(why, n, "no zram (modprobe zram failed)");
		return -1;
	}
	ssize_t r = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (r <= 0) {
		snprintf(why, n, "zram hot_add: %s", strerror(errno));
		return -1;
	}
	buf[r] = 0;
	zram_dev = atoi(buf);
	char p[96], v[32];
	snprintf(p, sizeof(p), "/sys/block/zram%d/disksize", zram_dev);
	snprintf(v, sizeof(v), "%llu", (unsigned long long)bytes);
	int e = swapref_write_file(p, v);
	if (e < 0) {
		snprintf(why, n, "%.200s: %s", p, strerror(-e));
		return -1;
	}
	snprintf(zram_swap, sizeof(zram_swap), "/dev/zram%d", zram_dev);
	for (int i = 0; i < 50 && access(zram_swap, F_OK) != 0; i++)
		usleep(20000);
	const char *mk[] = {"mkswap", zram_swap, NULL};
	if (run_cmd(mk) < 0) {
		snprintf(why, n, "mkswap %s failed", zram_swap);
		zram_swap[0] = 0;
		return -1;
	}
	if (swapon(zram_swap, 0) < 0) {
		snprintf(why, n, "swapon %s: %s", zram_swap, strerror(errno));
		zram_swap[0] = 0;
		return -1;
	}
	return 0;
}

void swapref_zram_teardown(void)
{
	if (zram_swap[0]) {
		swapoff(zram_swap);
		zram_swap[0] = 0;
	}
	if (zram_dev >= 0) {
		char p[96], v[16];
		snprintf(p, sizeof(p), "/sys/block/zram%d/reset", zram_dev);
		swapref_write_file(p, "1");
		snprintf(v, sizeof(v), "%d", zram_dev);
		swapref_write_file("/sys/class/zram-control/hot_remove", v);
		zram_dev = -1;
	}
}

void swapref_teardown_all(void)
{
	swapref_cgroup_teardown();
	swapref_swapfile_teardown();
	swapref_zram_teardown();
}
