// SPDX-License-Identifier: MIT
/*
 * libsdrsa-preload.so: the paging engine inside an unmodified program.
 * `rsa-app run` sets SDRSA_* variables and LD_PRELOAD; this library's
 * constructor starts the engine (or does nothing when SDRSA_SERVER is unset)
 * and then puts the program's large anonymous memory under it:
 *
 *   - mmap/mmap64 of private anonymous read-write memory of at least the
 *     threshold (SDRSA_THRESHOLD, default 1 MiB): Python's arenas, jemalloc's
 *     chunks, programs that mmap directly;
 *   - malloc/calloc/realloc of at least the threshold: glibc's malloc maps its
 *     big blocks with an internal mmap that no LD_PRELOAD can see, so big
 *     blocks are served here instead, each its own managed mapping with a
 *     32-byte header (recognised in free() by its page offset and a per-run
 *     magic). realloc of such a block is mremap, which the engine follows.
 *
 * munmap, mremap and madvise need no hooks: the kernel reports them to the
 * engine as userfaultfd events. fork: see engine.c; the fork() wrapper below
 * tells the engine the child's pid.
 *
 * Allocations made by the engine's own threads (or while inside engine code)
 * are never managed: the engine must not fault on its own memory.
 *
 * Environment (set by rsa-app): SDRSA_SERVER, SDRSA_NAME, SDRSA_LOCAL (bytes),
 * SDRSA_THRESHOLD (bytes), SDRSA_PREFETCH (off/stream/stride, 0/1 as
 * off/stride), SDRSA_POLICY (2q, the default; clock; fifo), SDRSA_TRACE
 * (record the faults into this file: docs/ENGINE.md "Traces"),
 * SDRSA_STATS (1: summary on stderr at exit), SDRSA_STATS_INTERVAL_MS,
 * SDRSA_STATS_JSON (file written at exit), SDRSA_KEY (64 hex digits).
 * SDRSA_STATS_PID (only that process reports), SDRSA_RETRY_MS,
 * SDRSA_POOL and SDRSA_REPLICAS (a pool of servers, poolconf.h; SDRSA_SERVER
 * then only names it in messages),
 * SDRSA_TIMEOUT_MS (per network operation), SDRSA_SPIN_US (engine thread
 * busy-poll), SDRSA_FREE_AT_EXIT (0: leave the pages to rsa-app, which
 * frees the namespace; default 1: free them in the destructor),
 * SDRSA_BACKEND (memcached: SDRSA_SERVER is a memcached list "H:P,H:P";
 * default: a memory server),
 * SDRSA_TEST_FAULT (tests only: see engine.c). The environment is left as
 * it is: a program started by this one (exec keeps the pid, e.g. a pyenv shim
 * or `sh -c`) runs its own engine with its own budget, in the same namespace;
 * keys carry the process id, so processes never overwrite each other's pages.
 */
#undef _FILE_OFFSET_BITS
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <sdrsa/engine.h>

#include "common/util.h"
#include "engine/engine_internal.h"
#include "engine/poolconf.h"

#define PAGE 4096ul
#define HDR 32ul
#define EXPORT __attribute__((visibility("default")))

extern void *__libc_malloc(size_t n);
extern void __libc_free(void *p);
extern void *__libc_calloc(size_t n, size_t sz);
extern void *__libc_realloc(void *p, size_t n);
extern void *__libc_memalign(size_t align, size_t n);

/*
 * The allocator behind ours: the next definition of malloc & co. in the
 * search order, which is glibc's, or jemalloc's or tcmalloc's when the
 * program brings its own (redis-server links jemalloc). Calls we do not
 * serve go there. With a foreign allocator there are no big blocks (its
 * own functions, e.g. jemalloc's sdallocx, must only ever see its own
 * pointers): its large extents are caught by the mmap hook instead.
 * dlsym() may allocate while we resolve: those few allocations come from a
 * static arena that free() ignores.
 *
 * The engine's own allocations (sdrsa_engine_internal) always go to glibc:
 * a foreign allocator would serve them from extents that are managed, and
 * the engine's thread would fault on its own memory. Engine memory is
 * allocated and freed by engine code only, so each side stays with its own
 * allocator.
 */
static struct {
	void *(*malloc)(size_t);
	void (*free)(void *);
	void *(*calloc)(size_t, size_t);
	void *(*realloc)(void *, size_t);
	void *(*memalign)(size_t, size_t);
	size_t (*usable)(void *);
	int foreign;
} real;
static __thread int resolving;
static _Alignas(64) char boot_arena[32768];
static size_t boot_used;

static void *boot_alloc(size_t n)
{
	n = (n + 63) & ~(size_t)63;
	if (boot_used + n > sizeof(boot_arena))
		return NULL;
	void *p = boot_arena + boot_used;
	boot_used += n;
	return p; /* static storage: already zero */
}

static int is_boot(const void *p)
{
	return (const char *)p >= boot_arena && (const char *)p < boot_arena + sizeof(boot_arena);
}

static void resolve_real(void)
{
	if (real.malloc || resolving)
		return;
	resolving = 1;
	void *m = dlsym(RTLD_NEXT, "malloc");
	void *f = dlsym(RTLD_NEXT, "free");
	void *c = dlsym(RTLD_NEXT, "calloc");
	void *r = dlsym(RTLD_NEXT, "realloc");
	void *a = dlsym(RTLD_NEXT, "memalign");
	void *u = dlsym(RTLD_NEXT, "malloc_usable_size");
	if (!m || !f || !c || !r) {
		m = (void *)__libc_malloc;
		f = (void *)__libc_free;
		c = (void *)__libc_calloc;
		r = (void *)__libc_realloc;
	}
	real.free = (void (*)(void *))f;
	real.calloc = (void *(*)(size_t, size_t))c;
	real.realloc = (void *(*)(void *, size_t))r;
	real.memalign = a ? (void *(*)(size_t, size_t))a : __libc_memalign;
	real.usable = (size_t(*)(void *))u;
	real.foreign = m != (void *)__libc_malloc;
	__atomic_store_n(&real.malloc, (void *(*)(size_t))m, __ATOMIC_RELEASE);
	resolving = 0;
}

static struct sdrsa_engine *g_engine;
/* A fork child: its engine only serves what the parent held remotely and
 * manages no new memory. */
static int g_child;
static size_t g_threshold = 1ul << 20;
static uint64_t g_magic;
static pid_t g_pid;
static int g_stats;
static uint64_t g_interval_ms;
static const char *g_json;
static pthread_t g_stats_thread;
static int g_stats_thread_on;
static int g_stats_stop[2] = {-1, -1}; /* pipe: the stats thread stops on EOF */
static uint64_t g_start_ms;
/* Our own copy of stderr: programs such as coreutils close fd 2 in an atexit
 * handler, before our destructor prints the summary. */
static int g_errfd = 2;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	char buf[1200];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > 0 && write(g_errfd, buf, MIN((size_t)n, sizeof(buf) - 1)) < 0) {
		/* nowhere to report */
	}
}

/* Header in front of a big block: at page offset 0, the block at offset 32. */
struct big_hdr {
	uint64_t tag;   /* g_magic ^ address of the block */
	uint64_t total; /* bytes mapped, from the header */
	uint64_t size;  /* bytes asked for */
	uint64_t pad;
};

static void *sys_mmap(void *a, size_t len, int prot, int flags, int fd, off_t off)
{
	return (void *)syscall(SYS_mmap, a, len, prot, flags, fd, off);
}

static int should_manage(size_t len, int prot, int flags, int fd)
{
	if (!g_engine || sdrsa_engine_internal || len < g_threshold || g_child)
		return 0;
	if (fd != -1 || !(flags & MAP_ANONYMOUS) || (flags & MAP_TYPE) != MAP_PRIVATE)
		return 0;
	if (flags & (MAP_HUGETLB | MAP_GROWSDOWN | MAP_STACK | MAP_POPULATE | MAP_LOCKED))
		return 0;
	return (prot & (PROT_READ | PROT_WRITE)) == (PROT_READ | PROT_WRITE);
}

static void manage(void *p, size_t len)
{
	sdrsa_engine_internal = 1;
	(void)sdrsa_engine_manage(g_engine, p, (len + PAGE - 1) & ~(PAGE - 1));
	sdrsa_engine_internal = 0;
}

EXPORT void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	void *p = sys_mmap(addr, len, prot, flags, fd, off);
	if (p != MAP_FAILED && should_manage(len, prot, flags, fd))
		manage(p, len);
	return p;
}

EXPORT void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	return mmap(addr, len, prot, flags, fd, off);
}

/* ---- big blocks ---- */

static int is_big(void *p)
{
	if (!p || ((uintptr_t)p & (PAGE - 1)) != HDR || !g_magic || real.foreign)
		return 0;
	const struct big_hdr *h = (const struct big_hdr *)((char *)p - HDR);
	return h->tag == (g_magic ^ (uint64_t)(uintptr_t)p);
}

static int big_wanted(size_t n)
{
	return g_engine && !sdrsa_engine_internal && !g_child && !real.foreign &&
	       n >= g_threshold && n < (1ul << 46);
}

static void *big_alloc(size_t n)
{
	size_t total = (n + HDR + PAGE - 1) & ~(PAGE - 1);
	char *b = sys_mmap(NULL, total, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (b == MAP_FAILED)
		return NULL;
	manage(b, total);
	struct big_hdr *h = (struct big_hdr *)b;
	h->tag = g_magic ^ (uint64_t)(uintptr_t)(b + HDR);
	h->total = total;
	h->size = n;
	return b + HDR;
}

static void big_free(void *p)
{
	struct big_hdr *h = (struct big_hdr *)((char *)p - HDR);
	size_t total = h->total;
	h->tag = 0;
	syscall(SYS_munmap, (char *)p - HDR, total);
}

/* Engine code with a foreign allocator: glibc's, see above. */
static inline int glibc_side(void)
{
	return sdrsa_engine_internal && real.foreign;
}

EXPORT void *malloc(size_t n)
{
	if (!real.malloc) {
		if (resolving)
			return boot_alloc(n);
		resolve_real();
	}
	if (glibc_side())
		return __libc_malloc(n);
	if (big_wanted(n)) {
		void *p = big_alloc(n);
		if (p)
			return p;
	}
	return real.malloc(n);
}

EXPORT void free(void *p)
{
	if (!p || is_boot(p))
		return;
	if (!real.malloc)
		resolve_real();
	if (glibc_side())
		__libc_free(p);
	else if (is_big(p))
		big_free(p);
	else
		real.free(p);
}

EXPORT void *calloc(size_t n, size_t sz)
{
	size_t total;
	if (__builtin_mul_overflow(n, sz, &total)) {
		errno = ENOMEM;
		return NULL;
	}
	if (!real.malloc) {
		if (resolving)
			return boot_alloc(total);
		resolve_real();
	}
	if (glibc_side())
		return __libc_calloc(n, sz);
	if (big_wanted(total)) {
		void *p = big_alloc(total); /* fresh mappings are zero */
		if (p)
			return p;
	}
	return real.calloc(n, sz);
}

EXPORT void *realloc(void *p, size_t n)
{
	if (!p)
		return malloc(n);
	if (is_boot(p)) {
		void *q = malloc(n);
		if (q)
			memcpy(q, p, MIN(n, (size_t)(boot_arena + sizeof(boot_arena) - (char *)p)));
		return q;
	}
	if (!real.malloc)
		resolve_real();
	if (glibc_side())
		return __libc_realloc(p, n);
	if (is_big(p)) {
		struct big_hdr *h = (struct big_hdr *)((char *)p - HDR);
		if (n == 0) {
			big_free(p);
			return NULL;
		}
		if (n >= g_threshold || !g_engine) {
			size_t total = (n + HDR + PAGE - 1) & ~(PAGE - 1);
			if (total == h->total) {
				h->size = n;
				return p;
			}
			/* The engine follows the move (UFFD_EVENT_REMAP). */
			char *b = (char *)syscall(SYS_mremap, h, h->total, total, MREMAP_MAYMOVE);
			if (b == MAP_FAILED)
				return NULL;
			h = (struct big_hdr *)b;
			h->tag = g_magic ^ (uint64_t)(uintptr_t)(b + HDR);
			h->total = total;
			h->size = n;
			return b + HDR;
		}
		void *q = real.malloc(n);
		if (!q)
			return NULL;
		memcpy(q, p, MIN(n, h->size));
		big_free(p);
		return q;
	}
	if (big_wanted(n)) {
		size_t old = real.usable ? real.usable(p) : 0;
		if (old && old < n) {
			void *q = big_alloc(n);
			if (q) {
				memcpy(q, p, old);
				real.free(p);
				return q;
			}
		}
	}
	return real.realloc(p, n);
}

EXPORT size_t malloc_usable_size(void *p)
{
	if (is_big(p))
		return ((struct big_hdr *)((char *)p - HDR))->total - HDR;
	if (!real.malloc)
		resolve_real();
	return real.usable && !is_boot(p) ? real.usable(p) : 0;
}

/* Aligned allocations stay with glibc unless the alignment is at most 32,
 * which a big block already has. */
EXPORT void *memalign(size_t align, size_t n)
{
	if (!real.malloc) {
		if (resolving)
			return align <= 64 ? boot_alloc(n) : NULL;
		resolve_real();
	}
	if (glibc_side())
		return __libc_memalign(align, n);
	if (align <= HDR && big_wanted(n)) {
		void *p = big_alloc(n);
		if (p)
			return p;
	}
	return real.memalign(align, n);
}

EXPORT void *aligned_alloc(size_t align, size_t n)
{
	return memalign(align, n);
}

EXPORT int posix_memalign(void **ret, size_t align, size_t n)
{
	if (align < sizeof(void *) || (align & (align - 1)))
		return EINVAL;
	void *p = memalign(align, n);
	if (!p)
		return ENOMEM;
	*ret = p;
	return 0;
}

EXPORT void *valloc(size_t n)
{
	return memalign(PAGE, n);
}

EXPORT void *pvalloc(size_t n)
{
	return memalign(PAGE, (n + PAGE - 1) & ~(PAGE - 1));
}

/* ---- stats ---- */

static void print_stats(const char *prefix)
{
	struct sdrsa_engine_stats s;
	char line[1024];
	if (sdrsa_engine_stats(g_engine, &s) < 0)
		return;
	sdrsa_engine_format_stats(&s, 0, line, sizeof(line));
	say("sdrsa: %s%s\n", prefix, line);
}

static void *stats_main(void *arg)
{
	(void)arg;
	sdrsa_engine_internal = 1;
	for (;;) {
		struct pollfd pf = {.fd = g_stats_stop[0], .events = POLLIN};
		if (poll(&pf, 1, (int)MIN(g_interval_ms, (uint64_t)INT32_MAX)) != 0)
			break;
		char pfx[64];
		snprintf(pfx, sizeof(pfx), "[%.1fs] ",
			 (double)(sdrsa_now_ms() - g_start_ms) / 1000.0);
		print_stats(pfx);
	}
	return NULL;
}

static void write_json(void)
{
	struct sdrsa_engine_stats s;
	char buf[2048];
	if (sdrsa_engine_stats(g_engine, &s) < 0)
		return;
	sdrsa_engine_format_stats(&s, 1, buf, sizeof(buf));
	FILE *f = fopen(g_json, "w");
	if (!f) {
		say("sdrsa: cannot write stats to %s: %s\n", g_json, strerror(errno));
		return;
	}
	fprintf(f, "%s\n", buf);
	fclose(f);
}

/* ---- fork ---- */

static void on_segv(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (g_engine && engine_is_lost_in_child(g_engine, (uintptr_t)si->si_addr)) {
		static const char msg[] =
			"sdrsa: this fork() child touched memory that its parent keeps on the "
			"memory server; children of managed programs cannot read it (see "
			"docs/ENGINE.md)\n";
		if (write(2, msg, sizeof(msg) - 1) < 0) {
			/* dying anyway */
		}
	}
	signal(sig, SIG_DFL); /* the access faults again and kills us */
}

/* After the engine's own handler (engine.c) made the child's engine. */
static void fork_child(void)
{
	if (!g_engine)
		return;
	g_child = 1;
	g_stats_thread_on = 0;
	g_stats = 0;
	g_json = NULL;
	struct sigaction sa = {.sa_sigaction = on_segv, .sa_flags = SA_SIGINFO | SA_NODEFER};
	sigaction(SIGSEGV, &sa, NULL);
}

/*
 * fork() itself, to tell the engine the child's pid (the parent then knows
 * when the child is gone, see engine.c). Everything else happens in the
 * pthread_atfork handlers (engine.c, and fork_child above), which glibc's fork
 * runs.
 */
EXPORT pid_t fork(void)
{
	static pid_t (*real_fork)(void);
	if (!real_fork)
		real_fork = (pid_t(*)(void))dlsym(RTLD_NEXT, "fork");
	pid_t pid = real_fork();
	if (pid != 0 && g_engine && !sdrsa_engine_internal) {
		int errno_saved = errno;
		sdrsa_engine_internal = 1;
		sdrsa_engine_forked(pid);
		sdrsa_engine_internal = 0;
		errno = errno_saved;
	}
	return pid;
}

/* ---- start and exit ---- */

static uint64_t env_u64(const char *name, uint64_t def)
{
	const char *v = getenv(name);
	return v && *v ? strtoull(v, NULL, 10) : def;
}

static enum sdrsa_engine_policy env_policy(void)
{
	const char *v = getenv("SDRSA_POLICY");
	if (v && !strcmp(v, "fifo"))
		return SDRSA_POLICY_FIFO;
	if (v && !strcmp(v, "clock"))
		return SDRSA_POLICY_CLOCK;
	return SDRSA_POLICY_2Q; /* rsa-app checked the name */
}

static enum sdrsa_engine_prefetch env_prefetch(void)
{
	const char *v = getenv("SDRSA_PREFETCH");
	if (v && (!strcmp(v, "0") || !strcmp(v, "off")))
		return SDRSA_PREFETCH_OFF;
	if (v && !strcmp(v, "stream"))
		return SDRSA_PREFETCH_STREAM;
	return SDRSA_PREFETCH_STRIDE;
}

static void log_to_stderr(void *ud, int level, const char *msg)
{
	(void)ud;
	if (level <= SDRSA_LOG_WARN)
		say("sdrsa: %s\n", msg);
}

__attribute__((constructor)) static void preload_init(void)
{
	const char *server = getenv("SDRSA_SERVER");
	if (!server || !*server)
		return;
	sdrsa_engine_internal = 1;
	resolve_real();
	char *srv = strdup(server);
	const char *nm = getenv("SDRSA_NAME");
	char *name = nm ? strdup(nm) : NULL;
	const char *trace = getenv("SDRSA_TRACE");
	const char *keyhex = getenv("SDRSA_KEY");
	uint8_t key[32];
	int has_key = keyhex && sdrsa_hex_decode(keyhex, key, sizeof(key)) == 0;
	struct sdrsa_engine_config cfg = {
		.server = srv,
		.name = name,
		.key = has_key ? key : NULL,
		.local_bytes = env_u64("SDRSA_LOCAL", 0),
		.prefetch = env_prefetch(),
		.policy = env_policy(),
		/* Only the process rsa-app started records (SDRSA_STATS_PID):
		 * a program it runs would truncate the same file. */
		.trace_path = trace && *trace && (!env_u64("SDRSA_STATS_PID", 0) ||
						  env_u64("SDRSA_STATS_PID", 0) == (uint64_t)getpid())
				      ? trace
				      : NULL,
		.retry_ms = (int)env_u64("SDRSA_RETRY_MS", 0),
		.timeout_ms = (int)env_u64("SDRSA_TIMEOUT_MS", 0),
		.spin_us = (int)env_u64("SDRSA_SPIN_US", 0),
		.log = log_to_stderr,
	};
	const char *backend = getenv("SDRSA_BACKEND");
	if (backend && !strcmp(backend, "memcached"))
		cfg.backend = SDRSA_BACKEND_MEMCACHED;
	/* A pool (rsa-app run with several servers): SDRSA_POOL lists them. */
	static struct poolconf pool;
	static struct sdrsa_pool_server pool_srv[POOLCONF_MAX];
	const char *pool_env = getenv("SDRSA_POOL");
	if (pool_env && *pool_env) {
		if (poolconf_decode(&pool, pool_env) < 0) {
			fprintf(stderr, "sdrsa: SDRSA_POOL is not a list of servers\n");
			_exit(1);
		}
		poolconf_servers(&pool, pool_srv);
		cfg.pool = pool_srv;
		cfg.pool_size = pool.n;
		cfg.replicas = (unsigned)env_u64("SDRSA_REPLICAS", 0);
	}
	g_threshold = env_u64("SDRSA_THRESHOLD", g_threshold);
	if (g_threshold < PAGE)
		g_threshold = PAGE;
	/* Programs this one runs inherit the engine (each process its own
	 * budget); only the process rsa-app started reports. */
	uint64_t stats_pid = env_u64("SDRSA_STATS_PID", 0);
	if (!stats_pid || stats_pid == (uint64_t)getpid()) {
		g_stats = (int)env_u64("SDRSA_STATS", 0);
		g_interval_ms = env_u64("SDRSA_STATS_INTERVAL_MS", 0);
		const char *json = getenv("SDRSA_STATS_JSON");
		g_json = json && *json ? strdup(json) : NULL;
	}
	int fd = fcntl(2, F_DUPFD_CLOEXEC, 64);
	if (fd >= 0)
		g_errfd = fd;

	struct sdrsa_engine *e;
	int r = sdrsa_engine_new(&cfg, &e);
	free(srv);
	free(name);
	if (r < 0) {
		fprintf(stderr, "sdrsa: cannot start the paging engine (server %s): %s\n", server,
			strerror(-r));
		_exit(1);
	}
	if (getrandom(&g_magic, sizeof(g_magic), 0) != sizeof(g_magic))
		g_magic = sdrsa_now_ns() * 0x9E3779B97F4A7C15ull;
	g_magic |= 1;
	g_pid = getpid();
	g_start_ms = sdrsa_now_ms();
	pthread_atfork(NULL, NULL, fork_child);
	if (g_interval_ms && pipe2(g_stats_stop, O_CLOEXEC) == 0) {
		sigset_t all, old;
		sigfillset(&all);
		pthread_sigmask(SIG_BLOCK, &all, &old);
		g_stats_thread_on = pthread_create(&g_stats_thread, NULL, stats_main, NULL) == 0;
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	g_engine = e;
	sdrsa_engine_internal = 0;
}

/*
 * At exit: report, then release the program's pages on the server. The
 * engine keeps serving faults (other threads and later destructors may still
 * touch managed memory), so it is not torn down; pages that were only on the
 * server can no longer be read after the release (engine_release_at_exit).
 * Under rsa-app (SDRSA_FREE_AT_EXIT=0) the release is left to rsa-app, which
 * frees the whole namespace once the program and everything it started are
 * gone, also after a crash.
 */
__attribute__((destructor)) static void preload_fini(void)
{
	if (!g_engine || getpid() != g_pid)
		return;
	sdrsa_engine_internal = 1;
	if (g_stats_thread_on) {
		close(g_stats_stop[1]);
		pthread_join(g_stats_thread, NULL);
		g_stats_thread_on = 0;
	}
	if (g_stats)
		print_stats("");
	if (g_json)
		write_json();
	(void)engine_trace_close(g_engine);
	if (env_u64("SDRSA_FREE_AT_EXIT", 1))
		(void)engine_release_at_exit(g_engine);
	sdrsa_engine_internal = 0;
}
