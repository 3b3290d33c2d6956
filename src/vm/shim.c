/* SPDX-License-Identifier: MIT */
/*
 * libsdrsa-qemu-shim.so: loaded into QEMU with LD_PRELOAD by `rsa-app vm`.
 * It finds the mapping of the guest's RAM file, registers it with
 * userfaultfd (MISSING + WP) and hands the userfaultfd to the agent, which
 * then serves every fault of guest RAM from outside QEMU.
 *
 * How the mapping is recognised: QEMU maps a memory-backend-file with mmap
 * (glibc exports mmap and mmap64; both are hooked). The agent created the
 * RAM file and put its device and inode numbers in the environment; a
 * MAP_SHARED mapping of a descriptor whose fstat() matches them is guest
 * RAM. The first one is registered and sent; a second one would be RAM the
 * agent cannot see, so it stops QEMU.
 *
 * Handshake: one struct vm_hello with the userfaultfd (SCM_RIGHTS) on the
 * inherited socketpair end ($SDRSA_VM_SHIM_FD), then one vm_hello_reply;
 * both happen inside the mmap() call, so QEMU touches no guest page before
 * the agent holds the userfaultfd (a touch before that would just wait).
 *
 * If the agent dies: the shim keeps its own copy of the userfaultfd open for
 * ever, so the registration survives the agent (closing the last copy would
 * unregister the range, and QEMU would then read holes of the RAM file as
 * zero pages: silent corruption). Faulting threads therefore stay blocked,
 * and a watchdog thread, blocked in read() on the socket, sees EOF the
 * moment the agent is gone (the kernel closes a dead process's sockets),
 * prints one line on stderr and kills QEMU with SIGKILL. SIGKILL rather
 * than abort() or a clean shutdown: QEMU's shutdown path would wait for the
 * blocked vCPU threads, and a core dump would read guest RAM; SIGKILL ends
 * the guest at once, and nothing in QEMU can run on a missing page first.
 *
 * Everything else QEMU does is untouched. Once the RAM is handed over, the
 * shim's variables are removed from the environment, so that programs QEMU
 * starts (which inherit LD_PRELOAD) find the shim inert. No allocation, no stdio (QEMU may be
 * anywhere when mmap is called): messages are formatted on the stack and written with write(2).
 */
/* glibc's headers turn mmap into mmap64 under _FILE_OFFSET_BITS=64 (meson
 * sets it); both symbols are defined here, so see them as they are. off_t
 * is 64 bits on the 64-bit targets QEMU runs on either way. */
#undef _FILE_OFFSET_BITS
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include "engine/uffd_compat.h"
#include "vm/vm_proto.h"

#define SHIM "sdrsa-qemu-shim"
#define HELLO_TIMEOUT_MS 60000

typedef void *(*mmap_fn)(void *, size_t, int, int, int, off_t);

static mmap_fn real_mmap, real_mmap64;
static int g_active;	/* the environment named a RAM file */
static int g_sock = -1; /* our end of the socketpair */
static dev_t g_dev;
static ino_t g_ino;
static int g_done;	/* the RAM mapping was registered */
static int g_uffd = -1; /* kept open for ever (see above) */
static char g_name[72] = "?";
static long g_agent_pid;
static __thread int t_busy; /* inside the shim: do not look at mmaps */

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	n = snprintf(buf, sizeof(buf), SHIM ": VM '%s': ", g_name);
	va_start(ap, fmt);
	n += vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 2)
		n = (int)sizeof(buf) - 2;
	buf[n++] = '\n';
	(void)!write(2, buf, (size_t)n);
}

/* Stop QEMU now; nothing of the guest may run after this. */
static void __attribute__((noreturn)) die_now(void)
{
	kill(getpid(), SIGKILL);
	for (;;)
		pause();
}

static long env_long(const char *name, int *ok)
{
	const char *s = getenv(name);
	char *end;
	long long v;

	if (!s || !*s) {
		*ok = 0;
		return 0;
	}
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end)
		*ok = 0;
	return (long)v;
}

/* Forget the variables once QEMU's RAM is ours: programs that QEMU starts
 * inherit LD_PRELOAD, and without them the shim stays inert in them. Not
 * done in the constructor: a wrapper (a shell script, taskset, timeout)
 * that execs QEMU must pass them on. unsetenv() does not allocate. */
static void scrub_env(void)
{
	unsetenv(VM_ENV_SHIM_FD);
	unsetenv(VM_ENV_RAM_DEV);
	unsetenv(VM_ENV_RAM_INO);
	unsetenv(VM_ENV_NAME);
	unsetenv(VM_ENV_AGENT_PID);
}

__attribute__((constructor)) static void shim_init(void)
{
	int ok = 1;
	long fd = env_long(VM_ENV_SHIM_FD, &ok);
	long dev = env_long(VM_ENV_RAM_DEV, &ok);
	long ino = env_long(VM_ENV_RAM_INO, &ok);
	const char *name = getenv(VM_ENV_NAME);
	int dummy = 1;

	if (name)
		snprintf(g_name, sizeof(g_name), "%s", name);
	g_agent_pid = env_long(VM_ENV_AGENT_PID, &dummy);
	real_mmap = (mmap_fn)dlsym(RTLD_NEXT, "mmap");
	real_mmap64 = (mmap_fn)dlsym(RTLD_NEXT, "mmap64");
	if (!getenv(VM_ENV_SHIM_FD))
		return; /* not started by the agent (or a child of QEMU): inert */
	if (!ok || fd < 0 || fcntl((int)fd, F_GETFD) < 0) {
		say("started without a usable agent socket (%s=%s); run QEMU through "
		    "'rsa-app vm', not by hand",
		    VM_ENV_SHIM_FD, getenv(VM_ENV_SHIM_FD));
		_exit(1);
	}
	g_sock = (int)fd;
	g_dev = (dev_t)dev;
	g_ino = (ino_t)ino;
	g_active = 1;
}

/* The watchdog: EOF on the socket means the agent is gone. */
static void *watchdog(void *arg)
{
	char c;
	ssize_t n;

	(void)arg;
	for (;;) {
		n = read(g_sock, &c, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n > 0)
			continue; /* the agent sends nothing after the reply; ignore */
		break;
	}
	say("the sdrsa agent (rsa-app vm, pid %ld) is gone (%s): stopping QEMU now (SIGKILL) "
	    "so that the guest never runs on pages it cannot get back",
	    g_agent_pid, n == 0 ? "its socket closed" : strerror(errno));
	die_now();
	return NULL;
}

static int start_watchdog(void)
{
	sigset_t all, old;
	pthread_attr_t a;
	pthread_t t;
	int err;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old); /* the thread inherits: no signals */
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&a, 64 * 1024);
	err = pthread_create(&t, &a, watchdog, NULL);
	pthread_attr_destroy(&a);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return -err;
}

static int send_hello(const struct vm_hello *h, int ufd)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = {.iov_base = (void *)h, .iov_len = sizeof(*h)};
	struct msghdr m = {
	    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
	struct cmsghdr *c;
	ssize_t n;

	memset(cbuf, 0, sizeof(cbuf));
	c = CMSG_FIRSTHDR(&m);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &ufd, sizeof(int));
	do
		n = sendmsg(g_sock, &m, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n == (ssize_t)sizeof(*h) ? 0 : -(n < 0 ? errno : EIO);
}

static int recv_reply(struct vm_hello_reply *r)
{
	struct pollfd p = {.fd = g_sock, .events = POLLIN};
	ssize_t n;
	int k;

	do
		k = poll(&p, 1, HELLO_TIMEOUT_MS);
	while (k < 0 && errno == EINTR);
	if (k == 0)
		return -ETIMEDOUT;
	do
		n = recv(g_sock, r, sizeof(*r), 0);
	while (n < 0 && errno == EINTR);
	if (n == 0)
		return -ECONNRESET;
	if (n < (ssize_t)sizeof(r->status))
		return n < 0 ? -errno : -EBADMSG;
	r->msg[sizeof(r->msg) - 1] = 0;
	return 0;
}

/* Register [addr, addr+len) and hand it to the agent. Any failure stops
 * QEMU: the guest must not run on memory the agent does not manage. */
static void take_over(void *addr, size_t len, off_t off)
{
	struct uffdio_api api = {.api = UFFD_API,
				 .features =
				     UFFD_FEATURE_MISSING_SHMEM | UFFD_FEATURE_WP_HUGETLBFS_SHMEM};
	struct uffdio_register reg = {
	    .range = {.start = (uintptr_t)addr, .len = len},
	    .mode = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP,
	};
	struct vm_hello h = {0};
	struct vm_hello_reply r;
	int ufd, err;

	ufd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (ufd < 0) {
		say("userfaultfd: %s (run as root, or set vm.unprivileged_userfaultfd=1); QEMU "
		    "cannot run with its RAM on the memory pool",
		    strerror(errno));
		_exit(1);
	}
	if (ioctl(ufd, UFFDIO_API, &api) < 0) {
		say("this kernel's userfaultfd cannot handle shared memory with write-protect "
		    "(UFFDIO_API: %s); Linux 5.19 or later is needed",
		    strerror(errno));
		_exit(1);
	}
	if (ioctl(ufd, UFFDIO_REGISTER, &reg) < 0) {
		say("cannot register guest RAM (%zu bytes at %p) with userfaultfd: %s", len, addr,
		    strerror(errno));
		_exit(1);
	}
	h.magic = VM_HELLO_MAGIC;
	h.version = VM_HELLO_VERSION;
	h.pid = (int32_t)getpid();
	h.base = (uintptr_t)addr;
	h.len = len;
	h.file_off = (uint64_t)off;
	h.features = api.features;
	h.ioctls = reg.ioctls;
	err = send_hello(&h, ufd);
	if (!err)
		err = recv_reply(&r);
	if (err) {
		say("cannot hand guest RAM to the sdrsa agent (pid %ld): %s; stopping QEMU",
		    g_agent_pid, strerror(-err));
		die_now();
	}
	if (r.status != 0) {
		say("the sdrsa agent refused guest RAM: %s", r.msg);
		_exit(1);
	}
	g_uffd = ufd;
	g_done = 1;
	fcntl(g_sock, F_SETFD, FD_CLOEXEC);
	scrub_env();
	err = start_watchdog();
	if (err) {
		say("cannot start the watchdog thread: %s; stopping QEMU", strerror(-err));
		die_now();
	}
}

static void check_mapping(void *p, size_t len, int flags, int fd, off_t off)
{
	struct stat st;

	if (fstat(fd, &st) < 0 || st.st_dev != g_dev || st.st_ino != g_ino)
		return;
	if (g_done) {
		say("QEMU mapped its RAM file a second time (%zu bytes at offset %lld); the agent "
		    "manages one mapping only: stopping QEMU",
		    len, (long long)off);
		die_now();
	}
	if (!(flags & MAP_SHARED)) {
		say("guest RAM is mapped private (memory-backend-file without share=on): the "
		    "agent cannot see it; stopping QEMU");
		_exit(1);
	}
	take_over(p, len, off);
}

static void *hooked(mmap_fn real, void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	void *p;

	if (!real) {
		errno = ENOSYS;
		return MAP_FAILED;
	}
	p = real(addr, len, prot, flags, fd, off);
	if (p != MAP_FAILED && g_active && fd >= 0 && !t_busy) {
		t_busy = 1;
		check_mapping(p, len, flags, fd, off);
		t_busy = 0;
	}
	return p;
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	if (!real_mmap)
		real_mmap = (mmap_fn)dlsym(RTLD_NEXT, "mmap");
	return hooked(real_mmap, addr, len, prot, flags, fd, off);
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	if (!real_mmap64)
		real_mmap64 = (mmap_fn)dlsym(RTLD_NEXT, "mmap64");
	return hooked(real_mmap64 ? real_mmap64 : real_mmap, addr, len, prot, flags, fd, off);
}
