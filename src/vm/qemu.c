/* SPDX-License-Identifier: MIT */
/*
 * The QEMU backend of the VM agent: guest RAM is a file on tmpfs
 * (/dev/shm/sdrsa-NAME) that QEMU maps shared; libsdrsa-qemu-shim.so inside
 * QEMU registers that mapping with userfaultfd and sends us the descriptor
 * (see shim.c). Page n of the pager is byte n * 4096 of the file, which is
 * guest-physical address n * 4096 below the PCI hole (qemu_args.h).
 *
 * Page operations on QEMU's memory from this process:
 *   install    UFFDIO_COPY on the userfaultfd (acts on QEMU's mm), with
 *              UFFDIO_COPY_MODE_WP for clean pages
 *   protect    UFFDIO_WRITEPROTECT (mode WP)
 *   unprotect  UFFDIO_WRITEPROTECT (mode 0), which wakes the writer
 *   read       pread() of the file: never through a mapping of our own,
 *              which would allocate holes and hide the next fault
 *   drop       fallocate(PUNCH_HOLE | KEEP_SIZE) on the file
 *   wake       UFFDIO_WAKE
 * A fault of QEMU's mapping arrives as a uffd_msg with the address; the
 * WRITE and WP flags tell a read from a write and a write to a
 * write-protected page.
 *
 * Errors: ESRCH/ENOENT from an ioctl mean QEMU's memory is gone (it is
 * exiting): the operations return -ESRCH, which the agent takes as "stop
 * serving, QEMU's exit follows". EAGAIN means its mappings are changing and
 * the ioctl is retried.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/magic.h>

#include "common/util.h"
#include "engine/uffd_compat.h"
#include "vm/qemu_args.h"
#include "vm/vm_agent.h"
#include "vm/vm_proto.h"

#define PAGE 4096u
#define HELLO_TIMEOUT_MS 60000
#define MSGS 64

#ifndef SDRSA_SHIM_INSTALLED
#define SDRSA_SHIM_INSTALLED "/usr/local/lib/sdrsa/libsdrsa-qemu-shim.so"
#endif

struct qemu_be {
	char name[72];
	struct qemu_plan plan;
	int ram_fd; /* the RAM file (pread, fallocate) */
	int ours;   /* we chose the path: unlink it once QEMU has it */
	int uffd;
	uint64_t base, len; /* QEMU's mapping of the file */
	pid_t pid;
	int sock; /* our end of the shim's socketpair; open till exit */
	uint64_t npages;
	int gone; /* QEMU's memory is gone (ESRCH) */
};

/* ---- page operations ---- */

static uint64_t addr_of(const struct qemu_be *q, uint64_t pg)
{
	return q->base + pg * PAGE;
}

static int ioctl_retry(struct qemu_be *q, unsigned long req, void *arg)
{
	for (int i = 0; i < 1000; i++) {
		if (ioctl(q->uffd, req, arg) == 0)
			return 0;
		if (errno == EAGAIN || errno == EINTR)
			continue;
		if (errno == ESRCH || errno == ENOENT) {
			q->gone = 1;
			return -ESRCH;
		}
		return -errno;
	}
	return -EAGAIN;
}

static int op_wake(void *ctx, uint64_t pg)
{
	struct qemu_be *q = ctx;
	struct uffdio_range r = {.start = addr_of(q, pg), .len = PAGE};

	return ioctl_retry(q, UFFDIO_WAKE, &r);
}

static int op_install(void *ctx, uint64_t pg, const void *data, int wp)
{
	struct qemu_be *q = ctx;
	struct uffdio_copy c;

	for (int i = 0; i < 1000; i++) {
		c = (struct uffdio_copy){.dst = addr_of(q, pg),
					 .src = (uintptr_t)data,
					 .len = PAGE,
					 .mode = wp ? UFFDIO_COPY_MODE_WP : 0};
		if (ioctl(q->uffd, UFFDIO_COPY, &c) == 0)
			return 0;
		if (errno == EEXIST) {
			op_wake(q, pg);
			return -EEXIST;
		}
		if (errno == EAGAIN && c.copy > 0)
			return 0; /* partly done: with one page, done */
		if (errno == EAGAIN || errno == EINTR)
			continue;
		if (errno == ESRCH || errno == ENOENT) {
			q->gone = 1;
			return -ESRCH;
		}
		return -errno;
	}
	return -EAGAIN;
}

static int op_protect(void *ctx, uint64_t pg, uint64_t n)
{
	struct qemu_be *q = ctx;
	struct uffdio_writeprotect w = {.range = {.start = addr_of(q, pg), .len = n * PAGE},
					.mode = UFFDIO_WRITEPROTECT_MODE_WP};

	return ioctl_retry(q, UFFDIO_WRITEPROTECT, &w);
}

static int op_unprotect(void *ctx, uint64_t pg)
{
	struct qemu_be *q = ctx;
	struct uffdio_writeprotect w = {.range = {.start = addr_of(q, pg), .len = PAGE}, .mode = 0};

	return ioctl_retry(q, UFFDIO_WRITEPROTECT, &w);
}

static int op_read(void *ctx, uint64_t pg, void *buf)
{
	struct qemu_be *q = ctx;
	size_t off = 0;

	while (off < PAGE) {
		ssize_t n =
		    pread(q->ram_fd, (char *)buf + off, PAGE - off, (off_t)(pg * PAGE + off));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		off += (size_t)n;
	}
	return 0;
}

static int op_drop(void *ctx, uint64_t pg, uint64_t n)
{
	struct qemu_be *q = ctx;

	if (fallocate(q->ram_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(pg * PAGE),
		      (off_t)(n * PAGE)) < 0)
		return -errno;
	return 0;
}

static const struct pager_ops qemu_ops = {
    .install = op_install,
    .protect = op_protect,
    .unprotect = op_unprotect,
    .read = op_read,
    .drop = op_drop,
    .wake = op_wake,
};

/* ---- faults ---- */

static int be_serve(void *ctx, struct pager *p)
{
	struct qemu_be *q = ctx;
	struct uffd_msg m[MSGS];
	ssize_t n;
	int served = 0;

	n = read(q->uffd, m, sizeof(m));
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	for (size_t i = 0; i < (size_t)n / sizeof(m[0]); i++) {
		uint64_t a, f;
		enum pager_access kind;
		int r;

		if (m[i].event != UFFD_EVENT_PAGEFAULT)
			continue; /* no other events were asked for */
		a = m[i].arg.pagefault.address;
		f = m[i].arg.pagefault.flags;
		if (a < q->base || a >= q->base + q->len)
			continue;
		kind = f & UFFD_PAGEFAULT_FLAG_WP      ? PAGER_WP
		       : f & UFFD_PAGEFAULT_FLAG_WRITE ? PAGER_WRITE
						       : PAGER_READ;
		r = pager_fault(p, (a - q->base) / PAGE, kind);
		if (r < 0)
			return q->gone ? -ESRCH : r;
		served++;
	}
	return served;
}

static int64_t be_gpa_to_page(void *ctx, uint64_t gpa)
{
	struct qemu_be *q = ctx;
	int64_t off = vm_gpa_to_offset(q->plan.machine, q->plan.ram_bytes, gpa);

	return off < 0 ? off : off / PAGE;
}

static void be_describe(void *ctx, char *buf, size_t len)
{
	struct qemu_be *q = ctx;
	uint64_t ram = q->plan.ram_bytes, low = vm_low_ram(q->plan.machine, ram);

	if (low == ram)
		snprintf(buf, len, "%llu MiB at 0x0-0x%llx", (unsigned long long)(ram >> 20),
			 (unsigned long long)(ram - 1));
	else
		snprintf(buf, len, "%llu MiB at 0x0-0x%llx and 0x100000000-0x%llx",
			 (unsigned long long)(ram >> 20), (unsigned long long)(low - 1),
			 (unsigned long long)(0x100000000ULL + ram - low - 1));
}

/* Pages already in the file (a RAM file given by the user may have data). */
static int be_adopt(void *ctx, struct pager *p)
{
	struct qemu_be *q = ctx;
	off_t pos = 0, end = (off_t)(q->npages * PAGE);
	int r;

	while (pos < end) {
		off_t d = lseek(q->ram_fd, pos, SEEK_DATA), h;

		if (d < 0)
			return errno == ENXIO ? 0 : -errno;
		h = lseek(q->ram_fd, d, SEEK_HOLE);
		if (h < 0)
			h = end;
		for (off_t o = d & ~(off_t)(PAGE - 1); o < h && o < end; o += PAGE) {
			r = pager_adopt(p, (uint64_t)o / PAGE);
			if (r < 0)
				return r;
		}
		pos = h;
	}
	return 0;
}

static void be_kill(void *ctx)
{
	struct qemu_be *q = ctx;

	if (q->pid > 0)
		kill(q->pid, SIGKILL);
}

static void be_stop(void *ctx)
{
	struct qemu_be *q = ctx;

	if (q->pid > 0)
		kill(q->pid, SIGTERM);
}

static void be_destroy(void *ctx)
{
	qemu_discard(ctx);
}

/* ---- start ---- */

void qemu_discard(struct qemu_be *q)
{
	if (!q)
		return;
	if (q->ours && q->plan.mem_path)
		unlink(q->plan.mem_path); /* harmless when already gone */
	if (q->ram_fd >= 0)
		close(q->ram_fd);
	if (q->uffd >= 0)
		close(q->uffd);
	if (q->sock >= 0)
		close(q->sock);
	qemu_plan_free(&q->plan);
	free(q);
}

int qemu_prepare(const char *name, char **argv, int argc, struct qemu_be **ret, uint64_t *ram_bytes)
{
	struct qemu_be *q = calloc(1, sizeof(*q));
	char path[PATH_MAX], err[512];

	if (!q)
		return 1;
	q->ram_fd = q->uffd = q->sock = -1;
	snprintf(q->name, sizeof(q->name), "%s", name);
	snprintf(path, sizeof(path), "/dev/shm/sdrsa-%s", name);
	if (qemu_plan_make(argv, argc, path, &q->plan, err, sizeof(err)) < 0) {
		vm_say("%s", err);
		free(q);
		return 2;
	}
	q->ours = !q->plan.user_backend;
	q->npages = q->plan.ram_bytes / PAGE;
	*ram_bytes = q->plan.ram_bytes;
	*ret = q;
	return 0;
}

static int find_shim(char *buf, size_t n)
{
	const char *env = getenv(VM_ENV_SHIM_PATH);
	/* Next to the program; in a build tree (rsa-app in build/, build/src/bin or
	 * build/src/engine, the shim in build/src/vm); installed (../lib.../sdrsa). */
	static const char *const rel[] = {"",
					  "/src/vm",
					  "/../vm",
					  "/../src/vm",
					  "/../lib/sdrsa",
					  "/../lib/x86_64-linux-gnu/sdrsa",
					  "/../lib64/sdrsa"};
	char exe[PATH_MAX];
	ssize_t len;

	if (env && *env) {
		snprintf(buf, n, "%s", env);
		return access(buf, R_OK) == 0 ? 0 : -ENOENT;
	}
	len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (len > 0) {
		char *slash;

		exe[len] = 0;
		slash = strrchr(exe, '/');
		if (slash) {
			*slash = 0;
			for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
				if (snprintf(buf, n, "%s%s/libsdrsa-qemu-shim.so", exe, rel[i]) <
					(int)n &&
				    access(buf, R_OK) == 0)
					return 0;
			}
		}
	}
	snprintf(buf, n, "%s", SDRSA_SHIM_INSTALLED);
	return access(buf, R_OK) == 0 ? 0 : -ENOENT;
}

static int open_ram_file(struct qemu_be *q)
{
	const char *path = q->plan.mem_path;
	struct statfs sf;
	struct stat st;

	if (q->ours) {
		/* We hold the VM's lock: a file left here is from a dead agent. */
		unlink(path);
		q->ram_fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	} else {
		q->ram_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	}
	if (q->ram_fd < 0) {
		vm_say("cannot create the RAM file %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(q->ram_fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		vm_say("%s is not a regular file: give memory-backend-file a file path", path);
		return -1;
	}
	if (fstatfs(q->ram_fd, &sf) < 0 || sf.f_type != TMPFS_MAGIC) {
		vm_say("%s is not on tmpfs: userfaultfd handles guest RAM only in shared memory "
		       "(use a path under /dev/shm)",
		       path);
		return -1;
	}
	if ((uint64_t)st.st_size < q->plan.ram_bytes &&
	    ftruncate(q->ram_fd, (off_t)q->plan.ram_bytes) < 0) {
		vm_say("cannot size the RAM file %s to %llu bytes: %s", path,
		       (unsigned long long)q->plan.ram_bytes, strerror(errno));
		return -1;
	}
	return 0;
}

static void set_env_u64(const char *k, uint64_t v)
{
	char b[32];

	snprintf(b, sizeof(b), "%llu", (unsigned long long)v);
	setenv(k, b, 1);
}

static void describe_status(int st, char *buf, size_t len)
{
	if (WIFEXITED(st))
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(buf, len, "was killed by signal %d (%s)", WTERMSIG(st),
			 strsignal(WTERMSIG(st)));
	else
		snprintf(buf, len, "stopped");
}

/* Wait for the shim's hello. Returns 0 or -1 after printing. */
static int handshake(struct qemu_be *q)
{
	struct vm_hello h;
	struct vm_hello_reply rep = {0};
	char cbuf[CMSG_SPACE(sizeof(int))], why[128];
	struct iovec iov = {.iov_base = &h, .iov_len = sizeof(h)};
	struct msghdr m = {
	    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
	uint64_t end = sdrsa_now_ms() + HELLO_TIMEOUT_MS;
	struct cmsghdr *c;
	ssize_t n;
	int fd = -1, st;

	for (;;) {
		struct pollfd p = {.fd = q->sock, .events = POLLIN};
		int k = poll(&p, 1, 100);

		if (k > 0)
			break;
		if (waitpid(q->pid, &st, WNOHANG) == q->pid) {
			q->pid = 0;
			describe_status(st, why, sizeof(why));
			vm_say("QEMU %s before mapping its RAM (see its messages above)", why);
			return -1;
		}
		if (sdrsa_now_ms() > end) {
			vm_say("QEMU did not map its RAM file %s within %d s: is it using the "
			       "memory backend the agent added? stopping it",
			       q->plan.mem_path, HELLO_TIMEOUT_MS / 1000);
			return -1;
		}
	}
	n = recvmsg(q->sock, &m, MSG_CMSG_CLOEXEC);
	for (c = n > 0 ? CMSG_FIRSTHDR(&m) : NULL; c; c = CMSG_NXTHDR(&m, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
			memcpy(&fd, CMSG_DATA(c), sizeof(int));
	if (n != (ssize_t)sizeof(h) || fd < 0 || h.magic != VM_HELLO_MAGIC ||
	    h.version != VM_HELLO_VERSION) {
		vm_say("QEMU's shim sent no usable hello (%zd bytes%s): is %s from the same "
		       "build?",
		       n, fd < 0 ? ", no descriptor" : "", "libsdrsa-qemu-shim.so");
		if (fd >= 0)
			close(fd);
		return -1;
	}
	q->uffd = fd;
	q->base = h.base;
	q->len = h.len;
	if (h.file_off != 0 || h.len < q->plan.ram_bytes) {
		rep.status = -EINVAL;
		snprintf(rep.msg, sizeof(rep.msg),
			 "QEMU mapped %llu bytes at file offset %llu; the "
			 "agent needs the whole RAM file (%llu bytes) in one mapping",
			 (unsigned long long)h.len, (unsigned long long)h.file_off,
			 (unsigned long long)q->plan.ram_bytes);
	} else if (!(h.ioctls & (1ULL << _UFFDIO_COPY)) ||
		   !(h.ioctls & (1ULL << _UFFDIO_WRITEPROTECT)) ||
		   !(h.ioctls & (1ULL << _UFFDIO_WAKE))) {
		rep.status = -ENOSYS;
		snprintf(rep.msg, sizeof(rep.msg),
			 "the kernel cannot copy into or write-protect "
			 "guest RAM with userfaultfd (ioctls 0x%llx)",
			 (unsigned long long)h.ioctls);
	}
	q->len = q->plan.ram_bytes; /* pages beyond are not RAM */
	if (send(q->sock, &rep, sizeof(rep), MSG_NOSIGNAL) < 0 && !rep.status) {
		vm_say("cannot answer QEMU's shim: %s", strerror(errno));
		return -1;
	}
	if (rep.status) {
		vm_say("%s", rep.msg);
		return -1;
	}
	return 0;
}

int qemu_launch(struct qemu_be *q, struct vm_backend *out)
{
	char shim[PATH_MAX], pre[PATH_MAX + 4096];
	const char *old;
	struct stat st;
	int sv[2];
	sigset_t none;

	if (find_shim(shim, sizeof(shim)) < 0) {
		vm_say("cannot find libsdrsa-qemu-shim.so (looked last at %s); set %s", shim,
		       VM_ENV_SHIM_PATH);
		return 1;
	}
	if (open_ram_file(q) < 0)
		return 1;
	if (fstat(q->ram_fd, &st) < 0)
		return 1;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		vm_say("socketpair: %s", strerror(errno));
		return 1;
	}
	fflush(NULL);
	q->pid = fork();
	if (q->pid < 0) {
		vm_say("fork: %s", strerror(errno));
		close(sv[0]);
		close(sv[1]);
		return 1;
	}
	if (q->pid == 0) {
		fcntl(sv[1], F_SETFD, 0); /* QEMU keeps this end */
		set_env_u64(VM_ENV_SHIM_FD, (uint64_t)sv[1]);
		set_env_u64(VM_ENV_RAM_DEV, (uint64_t)st.st_dev);
		set_env_u64(VM_ENV_RAM_INO, (uint64_t)st.st_ino);
		set_env_u64(VM_ENV_AGENT_PID, (uint64_t)getppid());
		setenv(VM_ENV_NAME, q->name, 1);
		old = getenv("LD_PRELOAD");
		if (old && *old)
			snprintf(pre, sizeof(pre), "%s:%s", shim, old);
		else
			snprintf(pre, sizeof(pre), "%s", shim);
		setenv("LD_PRELOAD", pre, 1);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		execvp(q->plan.argv[0], q->plan.argv);
		fprintf(stderr, "rsa-app: cannot run %s: %s\n", q->plan.argv[0], strerror(errno));
		_exit(127);
	}
	close(sv[1]);
	q->sock = sv[0];
	if (handshake(q) < 0) {
		if (q->pid > 0) {
			kill(q->pid, SIGKILL);
			waitpid(q->pid, NULL, 0);
			q->pid = 0;
		}
		return 1;
	}
	if (q->ours)
		unlink(q->plan.mem_path); /* QEMU and we have it open; nothing left behind */
	*out = (struct vm_backend){
	    .kind = "QEMU",
	    .ops = &qemu_ops,
	    .ctx = q,
	    .npages = q->npages,
	    .fault_fd = q->uffd,
	    .pid = q->pid,
	    .serve = be_serve,
	    .gpa_to_page = be_gpa_to_page,
	    .describe_ram = be_describe,
	    .adopt = be_adopt,
	    .kill = be_kill,
	    .stop = be_stop,
	    .destroy = be_destroy,
	};
	return 0;
}
