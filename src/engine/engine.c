// SPDX-License-Identifier: MIT
/*
 * The paging engine: serves userfaultfd faults on managed memory from a page
 * store, under a local budget. docs/ENGINE.md explains the design; this
 * comment is the summary that the code below relies on.
 *
 * Page states (struct pent, one per touched page, in a table keyed by the
 * page's current virtual address):
 *
 *   NONE      never stored, not local: a fault installs zeros, no traffic
 *   RESIDENT  mapped in the program (a policy slot)
 *   STAGED    taken out of the mapping, data kept in a staging slot (second
 *             chance: a touch is a local refill that marks the page hot)
 *   REMOTE    held only by the store, under pent.key
 *   LOST      (forked child only) held remotely by the parent: PROT_NONE
 *   GONE      was REMOTE when the process exited: freed on the server
 *             (engine_release_at_exit); a late touch never gets zeros
 *
 * Flags: DIRTY (the local data differs from what the store holds, or the
 * page was never stored and is not known to be zero), STORED (the store
 * holds a copy under pent.key, stale when DIRTY), PRED (installed writable
 * on a read because a write was predicted), FROZEN and BORROWED (fork: see
 * the fork section). Pages are installed write-protected
 * (UFFDIO_COPY_MODE_WP) unless the fault was a write or a write is
 * predicted (predict_write), so the first write arrives as a WP fault and
 * sets DIRTY. Clean pages are dropped at eviction without being sent.
 *
 * Work done after the faulting thread is woken: eviction (make_room, after
 * each fault), so that it is off that thread's path. The staging area is a
 * ring (stg_*): pages are staged at its head and evicted from its tail in
 * batches, each batch dropped with one madvise. Remote pages come in
 * streamed (store get_stream): the faulting page is installed as soon as
 * its frame is answered, pages fetched ahead as theirs are.
 * Pages fetched ahead are received into spares (staging pages kept after
 * their eviction) and moved into the mapping (install_moved), where the
 * kernel maps them writable. They are not write-protected: each keeps its
 * checksum (PF_VERIFY; the one libsdrsa verified on receipt when the store
 * gives it) and is hashed again when it is staged (verify_moved): a page
 * that differs was written while it was mapped and is dirty. Their dirty
 * state is therefore known when they leave the mapping, not at the write.
 *
 * Keys are not addresses: a counter hands out page-aligned keys, so mremap
 * (UFFD_EVENT_REMAP) just moves table entries and the stored pages keep
 * their keys.
 *
 * Two userfaultfds: `uffd` covers the program's memory (MISSING|WP, events
 * UNMAP, REMAP, REMOVE) and `sfd` the staging area (MISSING only, no events).
 * Eviction moves a page out of the mapping with UFFDIO_MOVE on `sfd`: the move
 * is atomic against the program's writes (a write before it travels with the
 * page, a write after it faults and waits for us), and, unlike
 * MADV_DONTNEED on the program's memory, it raises no REMOVE event that our
 * own thread would have to read. Dropping a staging slot is MADV_DONTNEED on
 * the staging area, which has no events either.
 *
 * Threads and locking: one handler thread reads `uffd` and does all the work
 * (faults, eviction, events) under `lock`. API calls take `lock` too. Nothing
 * that waits for the handler (munmap of managed memory: the kernel waits
 * until the UNMAP event is read) is done while holding `lock`.
 *
 * Event ordering: the kernel hands out faults before events, and an event
 * blocks the program's munmap/mremap/madvise until it is read; while one is
 * unread, UFFDIO_COPY/MOVE fail with EAGAIN. On EAGAIN we read what is
 * pending (so the event is consumed), wake the faulting thread so it faults
 * again, and handle events before faults in each batch.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <sdrsa/engine.h>
#include <sdrsa/protocol.h>

#include "common/hist.h"
#include "common/util.h"
#include "engine/engine_internal.h"
#include "engine/policy.h"
#include "engine/prefetch.h"
#include "engine/store.h"
#include "engine/trace.h"
#include "engine/uffd_compat.h"

#define PAGE 4096ull
#define PAGE_MASK (~(PAGE - 1))
#define CHUNK_SHIFT 21 /* 2 MiB of address space per table chunk */
#define CHUNK_PAGES (1u << (CHUNK_SHIFT - 12))
#define BATCH_MAX 64u
#define PREFETCH_MAX 128u
#define QUEUE_MAX 1024u

__thread int sdrsa_engine_internal __attribute__((tls_model("initial-exec")));

enum { PS_NONE = 0, PS_RESIDENT, PS_STAGED, PS_REMOTE, PS_LOST, PS_GONE };

/* Test faults, SDRSA_TEST_FAULT=NAME@N (test_fault_point). */
enum inject_kind {
	INJECT_NONE = 0,
	INJECT_EXIT,	     /* exit@N */
	INJECT_CRASH,	     /* crash@N */
	INJECT_LOSE,	     /* lose@N */
	INJECT_MISREPORT,    /* misreport@N (inject_misreport) */
	INJECT_MOVEIN_WRITE, /* movein-write@N (inject_window_write) */
	INJECT_SPARE_HOLE,   /* spare-hole@N (inject_spare_hole) */
};

#define PF_DIRTY 0x01
#define PF_STORED 0x02
#define PF_PRED 0x04 /* installed writable on a read: a write was predicted */
#define PF_FROZEN 0x08   /* parent: the key is shared with live fork children */
#define PF_BORROWED 0x10 /* fork child: the key is the parent's (read, never freed) */
#define PF_AHEAD 0x20    /* fetched ahead, no sign of use yet (prefetch accuracy) */
#define PF_VERIFY 0x40   /* moved in (install_moved), writable: clean only if it still hashes to vsum */

struct pent {
	uint64_t key;   /* store key when PF_STORED */
	uint32_t pslot; /* policy slot when RESIDENT or STAGED */
	/* PF_STORED and not DIRTY (every REMOTE page): the low half of
	 * sdrsa_page_csum(data, key) of the version stored, set when it was
	 * sent (store_put) and kept through its stays in memory; every page
	 * fetched must match it (fetched_ok). 32 bits so that the entry stays
	 * 24 bytes: a wrong copy goes unseen once in 4e9. */
	uint32_t ssum;
	union {
		uint32_t sslot;   /* staging slot when STAGED */
		uint32_t evstamp; /* e->evict_clock when last evicted (REMOTE) */
		/* RESIDENT with PF_VERIFY: the high half of the fetched
		 * page's checksum (ssum holds the low half). */
		uint32_t vsum_hi;
	};
	uint8_t state;  /* PS_* */
	uint8_t flags;  /* PF_* */
	uint8_t wscore; /* 0..3: how often the page was written while local */
};
/* One per touched page: 24 bytes is 0.6% of the managed memory. */
_Static_assert(sizeof(struct pent) == 24, "struct pent grew");

struct chunk {
	struct chunk *next; /* hash chain */
	uint64_t base;      /* address of p[0], 2 MiB aligned */
	struct pent p[CHUNK_PAGES];
};

/* A fork child of this process (see engine_atfork_*). */
struct kid {
	int fd;       /* the pipe's read end until EOF, then a pidfd (or -1) */
	int pipe_eof; /* the child (and its own fork children) exec'd or exited */
	pid_t pid;    /* 0 until engine_fork_pid() */
};

struct sdrsa_region {
	struct sdrsa_engine *e;
	void *addr;
	size_t size;
	int owned; /* mapped by sdrsa_region_new (unmapped by us) */
	struct sdrsa_region *next;
};

/* A managed range (region or sdrsa_engine_manage), numbered for the
 * prefetcher's per-region state and the trace. */
struct mrange {
	uint64_t start, end;
	uint32_t id;
};

struct sdrsa_engine {
	pthread_mutex_t lock;
	struct sdrsa_engine_config cfg;
	char *name;
	char *server;
	uint8_t key[SDRSA_KEY_SIZE];

	int uffd;   /* the program's memory */
	int sfd;    /* the staging area */
	int stopfd; /* eventfd: stop the handler */
	int kickfd; /* eventfd: the handler's poll set changed (a fork child) */
	pthread_t thread;
	int thread_started;

	struct store *store;
	struct policy *pol;

	struct chunk **ht; /* page table: chunks hashed by base */
	size_t ht_size, ht_count;

	/* Staging area: a ring of stg_cap slots, filled at stg_head and
	 * emptied from stg_tail (counters; slot = counter % stg_cap). Pages are
	 * staged in ring order and evicted oldest first, so an eviction batch
	 * frees a run at the tail that is dropped with one madvise. */
	char *stg;
	uint32_t stg_cap;
	uint8_t *stg_state;       /* per slot: STG_* */
	uint64_t stg_head, stg_tail;
	uint32_t nrefilled; /* STG_REFILLED slots: still hold a page, counted as local */

	uint64_t budget;       /* pages: resident + staged + nrefilled (local_pages) */
	uint32_t stage_target; /* pages kept staged */
	uint32_t batch;        /* pages per eviction batch */
	uint64_t key_prefix;   /* pid << 42: processes sharing a namespace never collide */
	uint64_t next_key;     /* counter, < 2^30 */
	uint64_t *recycled;    /* keys freed on the store, to reuse */
	size_t nrecycled, recycled_cap;

	struct sdrsa_region *regions;
	uint64_t managed_bytes;

	struct uffd_msg *q; /* messages read, not yet handled */
	size_t qn;

	unsigned char *zero; /* one zero page */
	unsigned char *fbuf; /* fetch buffers, 1 + PREFETCH_MAX pages */
	struct fetch *fetch; /* the remote fault in progress */
	uint64_t *fkeys;     /* keys waiting to be freed */
	size_t nfkeys;

	uint64_t nresident, nstaged, nremote, ndirty;
	struct sdrsa_engine_stats st;
	struct sdrsa_hist lat_all, lat_remote;
	struct prefetch *pf;
	struct mrange *ranges; /* sorted by start, not overlapping */
	size_t nranges, ranges_cap;
	uint32_t next_range_id;
	struct trace_writer *trace; /* rsa-app run --trace; NULL: off */

	unsigned spin_us; /* handler busy-poll after activity */
	int stopping;     /* set (atomically) to stop the handler */
	uint64_t pred_clock; /* write predictions made, for sampling */
	int exiting;         /* engine_release_at_exit() ran */
	int inject;          /* tests: enum inject_kind (SDRSA_TEST_FAULT, test_fault_point) */
	uint64_t inject_after;
	uint64_t last_fault; /* address of the last fault served, for INJECT_LOSE */
	uint64_t inject_moves; /* moves seen by INJECT_MISREPORT */
	int pagemap_fd;        /* /proc/self/pagemap (pages_mapped); -1: mincore only */
	uint64_t moves_misreported; /* UFFDIO_MOVEs that moved more than they said */
	uint32_t exit_tid;   /* the thread that called it */
	/* The server refuses pages (pool full, quota): since when (ms, 0: it
	 * does not), next retry, current backoff, last warning. */
	uint64_t full_since, full_retry_at, full_backoff_ms, full_warned;
	uint32_t evict_clock; /* pages evicted so far (wraps) */
	/* fork() (parent side): children alive that may read our stored keys.
	 * While there are any, keys flagged PF_FROZEN are neither overwritten
	 * nor freed: a dirty page gets a new key, old keys wait in `deferred`. */
	struct kid *kids;
	size_t nkids, kids_cap;
	unsigned kids_pending; /* forks between prepare and engine_fork_pid() */
	int fork_pipe[2];      /* created in prepare: the child keeps the write end */
	uint64_t *deferred;    /* frozen keys to free once no child is left */
	size_t ndeferred, deferred_cap;
	uint64_t startcode;    /* /proc/self/stat startcode: a child that exec'd differs */

	int dead;         /* fatal error: no longer serving */
	int forked_child; /* this is a fork child's engine (see engine_atfork_child) */
	struct sdrsa_engine *reg_next; /* the registry of live engines (fork) */
	int warned_stuck;
	int warned_spare;
	/* Spare pages (move-in install, install_moved): staging slots that the
	 * tail has passed whose page (clean, or already sent) is kept mapped
	 * as a receive buffer instead of being dropped. Their ring counters,
	 * oldest first, in a ring of stg_cap entries; at most spare_max. */
	uint64_t *spare;
	uint64_t spare_first, spare_n;
	uint32_t spare_max;
	uint64_t movein_pages; /* pages installed by UFFDIO_MOVE */
	uint64_t movein_raced; /* of those, found written when they left (verify_moved) */
	uint64_t spare_holes;  /* spares found without a page (spares_check) */
};

static uint64_t read_startcode(pid_t pid);
static void kids_check(struct sdrsa_engine *e);

/*
 * Every live engine is in this list so that fork() is handled for all of
 * them, whoever created them (the preload library, or a program using the
 * API): one set of pthread_atfork handlers, registered once.
 */
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sdrsa_engine *reg_head;
static pthread_once_t reg_once = PTHREAD_ONCE_INIT;
static void reg_atfork_install(void);

/* ---- small helpers ---- */

#define elog(e, level, ...) sdrsa_log_to((e)->cfg.log, (e)->cfg.log_userdata, (level), __VA_ARGS__)

void engine_default_fatal(void *userdata, const char *msg)
{
	(void)userdata;
	char line[640];
	int n = snprintf(line, sizeof(line), "sdrsa: %s; stopping the program (SIGBUS)\n", msg);
	if (n > 0 && write(2, line, MIN((size_t)n, sizeof(line) - 1)) < 0) {
		/* nothing more we can do */
	}
	signal(SIGBUS, SIG_DFL);
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGBUS);
	pthread_sigmask(SIG_UNBLOCK, &s, NULL);
	kill(getpid(), SIGBUS);
	raise(SIGBUS);
	abort();
}

static void engine_fatal(struct sdrsa_engine *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void engine_fatal(struct sdrsa_engine *e, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	e->dead = 1;
	if (e->cfg.fatal) {
		elog(e, SDRSA_LOG_ERR, "%s", msg);
		e->cfg.fatal(e->cfg.fatal_userdata, msg);
	} else {
		engine_default_fatal(NULL, msg); /* prints msg itself */
	}
}

/* ---- page table ---- */

static size_t ht_bucket(const struct sdrsa_engine *e, uint64_t base)
{
	return (size_t)(((base >> CHUNK_SHIFT) * 0x9E3779B97F4A7C15ull) >> 24) & (e->ht_size - 1);
}

static struct chunk *chunk_get(struct sdrsa_engine *e, uint64_t addr)
{
	uint64_t base = addr & ~((1ull << CHUNK_SHIFT) - 1);
	for (struct chunk *c = e->ht[ht_bucket(e, base)]; c; c = c->next)
		if (c->base == base)
			return c;
	return NULL;
}

static int ht_grow(struct sdrsa_engine *e)
{
	size_t nsize = e->ht_size * 2;
	struct chunk **nt = calloc(nsize, sizeof(*nt));
	if (!nt)
		return -ENOMEM;
	struct chunk **old = e->ht;
	size_t osize = e->ht_size;
	e->ht = nt;
	e->ht_size = nsize;
	for (size_t i = 0; i < osize; i++) {
		while (old[i]) {
			struct chunk *c = old[i];
			old[i] = c->next;
			size_t b = ht_bucket(e, c->base);
			c->next = nt[b];
			nt[b] = c;
		}
	}
	free(old);
	return 0;
}

static struct chunk *chunk_make(struct sdrsa_engine *e, uint64_t addr)
{
	struct chunk *c = chunk_get(e, addr);
	if (c)
		return c;
	if (e->ht_count >= e->ht_size * 2)
		(void)ht_grow(e);
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->base = addr & ~((1ull << CHUNK_SHIFT) - 1);
	size_t b = ht_bucket(e, c->base);
	c->next = e->ht[b];
	e->ht[b] = c;
	e->ht_count++;
	return c;
}

static void chunk_maybe_free(struct sdrsa_engine *e, struct chunk *c)
{
	for (unsigned i = 0; i < CHUNK_PAGES; i++)
		if (c->p[i].state != PS_NONE || c->p[i].flags)
			return;
	struct chunk **pp = &e->ht[ht_bucket(e, c->base)];
	while (*pp != c)
		pp = &(*pp)->next;
	*pp = c->next;
	e->ht_count--;
	free(c);
}

static inline struct pent *pent_of(struct chunk *c, uint64_t addr)
{
	return &c->p[(addr >> 12) & (CHUNK_PAGES - 1)];
}

static struct pent *pt_get(struct sdrsa_engine *e, uint64_t addr)
{
	struct chunk *c = chunk_get(e, addr);
	return c ? pent_of(c, addr) : NULL;
}

static struct pent *pt_make(struct sdrsa_engine *e, uint64_t addr)
{
	struct chunk *c = chunk_make(e, addr);
	return c ? pent_of(c, addr) : NULL;
}

/* ---- userfaultfd operations: 0 or -errno ---- */

static int uf_copy(int fd, uint64_t dst, const void *src, int wp, int dontwake)
{
	struct uffdio_copy c = {
		.dst = dst,
		.src = (uint64_t)(uintptr_t)src,
		.len = PAGE,
		.mode = (wp ? UFFDIO_COPY_MODE_WP : 0) | (dontwake ? UFFDIO_COPY_MODE_DONTWAKE : 0),
	};
	if (ioctl(fd, UFFDIO_COPY, &c) == 0)
		return 0;
	return -errno;
}

/* Move n pages; returns the bytes moved (n * PAGE when all) or -errno when
 * none moved. */
static int64_t uf_move_n(int fd, uint64_t dst, uint64_t src, uint64_t n, int dontwake)
{
	struct uffdio_move m = {
		.dst = dst,
		.src = src,
		.len = n * PAGE,
		.mode = dontwake ? UFFDIO_MOVE_MODE_DONTWAKE : 0,
	};
	if (ioctl(fd, UFFDIO_MOVE, &m) == 0)
		return (int64_t)(n * PAGE);
	int err = errno;
	if (m.move > 0)
		return m.move;
	return -err;
}

/* Copy n pages from consecutive buffers; bytes copied or -errno. */
static int64_t uf_copy_n(int fd, uint64_t dst, const void *src, uint64_t n, int wp, int dontwake)
{
	struct uffdio_copy c = {
		.dst = dst,
		.src = (uint64_t)(uintptr_t)src,
		.len = n * PAGE,
		.mode = (wp ? UFFDIO_COPY_MODE_WP : 0) | (dontwake ? UFFDIO_COPY_MODE_DONTWAKE : 0),
	};
	if (ioctl(fd, UFFDIO_COPY, &c) == 0)
		return (int64_t)(n * PAGE);
	int err = errno;
	if (c.copy > 0)
		return c.copy;
	return -err;
}

static int uf_move(int fd, uint64_t dst, uint64_t src, int dontwake)
{
	struct uffdio_move m = {
		.dst = dst,
		.src = src,
		.len = PAGE,
		.mode = dontwake ? UFFDIO_MOVE_MODE_DONTWAKE : 0,
	};
	if (ioctl(fd, UFFDIO_MOVE, &m) == 0)
		return 0;
	return -errno;
}

/*
 * Is something mapped (present or swapped out) at each of n pages from
 * addr? mincore() answers when it finds them all present, at a quarter of
 * the cost of pagemap (0.016 against 0.063 us a page in runs of 64 here);
 * otherwise /proc/self/pagemap (bits 63 and 62), which reads the page table
 * without faulting and also sees swapped-out pages, which mincore() does
 * not; mincore()'s answer when pagemap cannot be read. Returns 0 or -errno.
 */
static int pages_mapped(struct sdrsa_engine *e, uint64_t addr, uint64_t n, uint8_t *out)
{
	uint64_t ent[BATCH_MAX];
	unsigned char vec[BATCH_MAX];
	if (n > BATCH_MAX)
		return -EINVAL;
	int mc = mincore((void *)(uintptr_t)addr, n * PAGE, vec) == 0 ? 0 : -errno;
	if (mc == 0) {
		uint64_t i = 0;
		while (i < n && (vec[i] & 1))
			i++;
		if (i == n) {
			memset(out, 1, n);
			return 0;
		}
	}
	if (e->pagemap_fd >= 0 &&
	    pread(e->pagemap_fd, ent, n * sizeof(ent[0]), (off_t)(addr / PAGE * sizeof(ent[0]))) ==
		    (ssize_t)(n * sizeof(ent[0]))) {
		for (uint64_t i = 0; i < n; i++)
			out[i] = (ent[i] >> 62) != 0;
		return 0;
	}
	if (mc < 0)
		return mc;
	for (uint64_t i = 0; i < n; i++)
		out[i] = vec[i] & 1;
	return 0;
}

/* Faults served so far: the clock of SDRSA_TEST_FAULT's @N. */
static inline uint64_t faults_served(const struct sdrsa_engine *e)
{
	return e->st.faults_zero + e->st.faults_remote + e->st.faults_refill;
}

/* Tests (SDRSA_TEST_FAULT=misreport@N): report a complete move the way
 * the kernel bug below does, in turn as moved, as nothing moved (EEXIST)
 * and as half moved. */
static int64_t inject_misreport(struct sdrsa_engine *e, int64_t r, uint64_t n)
{
	if (e->inject != INJECT_MISREPORT || r != (int64_t)(n * PAGE) ||
	    faults_served(e) < e->inject_after)
		return r;
	switch (e->inject_moves++ % 3) {
	case 1:
		return -EEXIST;
	case 2:
		return n > 1 ? (int64_t)(n / 2 * PAGE) : -ENOENT;
	default:
		return r;
	}
}

/*
 * UFFDIO_MOVE of n pages (at most BATCH_MAX), counting what really moved.
 * The kernel's count cannot be trusted when it is short: Linux 6.18's
 * move_pages() retries a page whose PTE changed under it (-EAGAIN inside)
 * but keeps that -EAGAIN after the retry moved it, so it stops at the next
 * step and reports fewer pages than it moved, or none at all with EEXIST
 * or ENOENT (tests/engine/t_moveprobe.c shows it). Trusting that count
 * left a page moved to staging held as resident: lost, and its slot
 * blocked. So when the count is short, the pages past it are looked up: a
 * page that left src and is mapped at dst was moved (pages move in order,
 * so the moved ones are a prefix). A move that really moved and said it
 * failed also did not wake; we do. Returns the bytes moved or -errno when
 * none moved.
 */
static int64_t move_checked(struct sdrsa_engine *e, int fd, uint64_t dst, uint64_t src,
			    uint64_t n, int dontwake)
{
	int64_t r = inject_misreport(e, uf_move_n(fd, dst, src, n, dontwake), n);
	uint64_t ok = r > 0 ? (uint64_t)r / PAGE : 0, moved = ok;
	if (ok == n)
		return r;
	uint8_t at_dst[BATCH_MAX], at_src[BATCH_MAX];
	uint64_t rest = n - ok;
	if (pages_mapped(e, dst + ok * PAGE, rest, at_dst) < 0 ||
	    pages_mapped(e, src + ok * PAGE, rest, at_src) < 0)
		return r;
	while (moved < n && at_dst[moved - ok] && !at_src[moved - ok])
		moved++;
	if (moved == ok)
		return r;
	if (!e->moves_misreported++)
		elog(e, SDRSA_LOG_WARN,
		     "UFFDIO_MOVE moved %llu pages and reported %lld bytes (%s): a known "
		     "kernel bug, counted from the page table instead",
		     (unsigned long long)moved, (long long)(r > 0 ? r : 0),
		     r < 0 ? strerror((int)-r) : "short");
	if (!dontwake) {
		struct uffdio_range w = {.start = dst, .len = moved * PAGE};
		(void)ioctl(fd, UFFDIO_WAKE, &w);
	}
	return (int64_t)(moved * PAGE);
}

static int uf_wp(int fd, uint64_t addr, uint64_t len, int protect)
{
	struct uffdio_writeprotect w = {
		.range = {.start = addr, .len = len},
		.mode = protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};
	if (ioctl(fd, UFFDIO_WRITEPROTECT, &w) == 0)
		return 0;
	return -errno;
}

static void uf_wake(int fd, uint64_t addr)
{
	struct uffdio_range r = {.start = addr, .len = PAGE};
	(void)ioctl(fd, UFFDIO_WAKE, &r);
}

/* ---- staging area ---- */

/* Pages held locally: mapped, staged, and refilled slots not dropped yet. */
static inline uint64_t local_pages(const struct sdrsa_engine *e)
{
	return e->nresident + e->nstaged + e->nrefilled;
}

static inline void *stg_ptr(struct sdrsa_engine *e, uint32_t s)
{
	return e->stg + (size_t)s * PAGE;
}

/* GARBAGE: the page was sent; REFILLED: a refill copied it back into the
 * program's memory. Both still hold their page until the tail passes them
 * (stg_advance), which keeps it as a spare or drops it; a REFILLED page
 * counts as local until then. SPARE: behind the tail, page kept as a
 * receive buffer (e->spare); RECV: a spare handed to the fetch in progress. */
enum { STG_EMPTY = 0, STG_STAGED, STG_GARBAGE, STG_REFILLED, STG_SPARE, STG_RECV };

/* Release a slot whose page is still there (drop the data now). */
static void stg_release(struct sdrsa_engine *e, uint32_t s)
{
	(void)madvise(stg_ptr(e, s), PAGE, MADV_DONTNEED);
	e->stg_state[s] = STG_EMPTY;
}

/* Release a slot whose page was sent: dropped with its neighbours when the
 * tail passes it (stg_advance). */
static void stg_release_later(struct sdrsa_engine *e, uint32_t s)
{
	e->stg_state[s] = STG_GARBAGE;
}

static uint32_t stg_room(const struct sdrsa_engine *e)
{
	return e->stg_cap - (uint32_t)(e->stg_head - e->stg_tail);
}

/* Drop the pages of ring counters [from, to) in at most two madvise calls
 * (one per side of the wrap). Measured here: MADV_DONTNEED of 64 single
 * pages took 64 system calls of about 1 us each. */
static void stg_drop(struct sdrsa_engine *e, uint64_t from, uint64_t to)
{
	uint64_t a = from % e->stg_cap, n = to - from;
	uint64_t first = MIN(n, e->stg_cap - a);
	(void)madvise(stg_ptr(e, (uint32_t)a), first * PAGE, MADV_DONTNEED);
	if (n > first)
		(void)madvise(e->stg, (n - first) * PAGE, MADV_DONTNEED);
}

/* Move the tail past released slots. Released pages are kept as spares
 * (receive buffers for move-in) while there is room, the rest dropped. */
static void stg_advance(struct sdrsa_engine *e)
{
	uint64_t t = e->stg_tail, drop_from = UINT64_MAX;
	while (t < e->stg_head && e->stg_state[t % e->stg_cap] != STG_STAGED) {
		uint32_t s = (uint32_t)(t % e->stg_cap);
		uint8_t st = e->stg_state[s];
		int has_page = st == STG_GARBAGE || st == STG_REFILLED;
		if (st == STG_REFILLED)
			e->nrefilled--;
		if (has_page && drop_from == UINT64_MAX && e->spare_n < e->spare_max) {
			e->stg_state[s] = STG_SPARE;
			e->spare[(e->spare_first + e->spare_n++) % e->stg_cap] = t;
		} else {
			if (has_page && drop_from == UINT64_MAX)
				drop_from = t;
			e->stg_state[s] = STG_EMPTY;
		}
		t++;
	}
	if (drop_from != UINT64_MAX)
		stg_drop(e, drop_from, t);
	e->stg_tail = t;
}

/* The head is about to stage into ring counters below `upto`: drop the
 * spares that still occupy those slots (the oldest ones: spares are kept
 * and taken in ring order), in one call (two across the wrap). The slots
 * between them are empty (refill holes, spares taken): the head has not
 * reached them since, or the older spares would be gone already. */
static void spare_reclaim(struct sdrsa_engine *e, uint64_t upto)
{
	if (!e->spare_n || e->spare[e->spare_first] + e->stg_cap >= upto)
		return;
	uint64_t from = e->spare[e->spare_first], to = from;
	while (e->spare_n && e->spare[e->spare_first] + e->stg_cap < upto) {
		to = e->spare[e->spare_first] + 1;
		e->stg_state[(to - 1) % e->stg_cap] = STG_EMPTY;
		e->spare_first = (e->spare_first + 1) % e->stg_cap;
		e->spare_n--;
	}
	stg_drop(e, from, to);
}

/* Take the oldest spare page as a receive buffer: its slot (and in *ctr
 * its ring counter, for spares_untaken), or UINT32_MAX when there is none. */
static uint32_t spare_take(struct sdrsa_engine *e, uint64_t *ctr)
{
	if (!e->spare_n || !e->stg || e->forked_child)
		return UINT32_MAX;
	*ctr = e->spare[e->spare_first];
	uint32_t s = (uint32_t)(*ctr % e->stg_cap);
	e->spare_first = (e->spare_first + 1) % e->stg_cap;
	e->spare_n--;
	assert(e->stg_state[s] == STG_SPARE);
	e->stg_state[s] = STG_RECV;
	return s;
}

/* ---- store helpers ---- */

static void flush_frees(struct sdrsa_engine *e)
{
	if (!e->nfkeys)
		return;
	int r = e->store->ops->free_keys(e->store, e->fkeys, e->nfkeys);
	if (r < 0)
		elog(e, SDRSA_LOG_WARN, "freeing %zu pages on the server failed: %s", e->nfkeys,
		     strerror(-r));
	e->st.pages_freed += e->nfkeys;
	e->nfkeys = 0;
}

/* Keys: the process id in bits 42..63, a counter in bits 12..41. Freed keys
 * are reused once their free has been sent (frees are flushed before any
 * later put, all on this one connection). */
static int alloc_key(struct sdrsa_engine *e, uint64_t *key)
{
	if (e->nrecycled) {
		*key = e->recycled[--e->nrecycled];
		return 0;
	}
	if (e->next_key >= (1ull << 30))
		return -ENOSPC;
	*key = e->key_prefix | (e->next_key++ << 12);
	return 0;
}

static void queue_free(struct sdrsa_engine *e, uint64_t key)
{
	if (e->nrecycled == e->recycled_cap) {
		size_t ncap = e->recycled_cap ? e->recycled_cap * 2 : 4096;
		uint64_t *n = realloc(e->recycled, ncap * sizeof(*n));
		if (n) {
			e->recycled = n;
			e->recycled_cap = ncap;
		}
	}
	if (e->nrecycled < e->recycled_cap)
		e->recycled[e->nrecycled++] = key;
	e->fkeys[e->nfkeys++] = key;
	if (e->nfkeys == SDRSA_MAX_BATCH)
		flush_frees(e);
}

/* ---- keys shared with fork children ---- */

static inline int is_frozen(const struct sdrsa_engine *e, const struct pent *p)
{
	return (p->flags & PF_FROZEN) && (e->nkids || e->kids_pending);
}

/* Free a stored key later, once no fork child can read it. If the list
 * cannot grow, the key is never freed (a leak, never a wrong page). */
static void defer_key(struct sdrsa_engine *e, uint64_t key)
{
	if (e->ndeferred == e->deferred_cap) {
		size_t ncap = e->deferred_cap ? e->deferred_cap * 2 : 1024;
		uint64_t *n = realloc(e->deferred, ncap * sizeof(*n));
		if (!n)
			return;
		e->deferred = n;
		e->deferred_cap = ncap;
	}
	e->deferred[e->ndeferred++] = key;
}

/* Forget a page's stored copy: free its key, or defer the free while a
 * fork child may read it, or (in a child) leave the parent's key alone. */
static void release_key(struct sdrsa_engine *e, struct pent *p)
{
	if (!(p->flags & PF_STORED) || (p->flags & PF_BORROWED))
		return;
	if (is_frozen(e, p))
		defer_key(e, p->key);
	else
		queue_free(e, p->key);
}

/* ---- eviction ---- */

/* A write to the page was seen (write fault, WP fault, verify_moved). */
static inline void saw_write(struct pent *p)
{
	if (p->wscore < 3)
		p->wscore++;
}

/* A page installed by UFFDIO_MOVE (install_moved) was writable all its
 * stay, with no write fault to tell: now out of the mapping, it is clean
 * only if it still holds exactly what was fetched. (Seeded with its key as
 * on the wire; a key that changed meanwhile could only make a clean page
 * look dirty.) A page found written gets what its first write fault would
 * have given it: dirty, a write seen, a use for the policy. */
static void verify_moved(struct sdrsa_engine *e, struct pent *p, const void *data)
{
	uint64_t want = (uint64_t)p->ssum | (uint64_t)p->vsum_hi << 32;
	if (sdrsa_page_csum(data, p->key) == want)
		return;
	p->flags |= PF_DIRTY;
	p->flags &= (uint8_t)~PF_AHEAD;
	e->ndirty++;
	e->movein_raced++;
	saw_write(p);
	policy_on_access(e->pol, p->pslot);
}

/* Move up to n resident pages chosen by the policy into the staging area.
 * Runs of consecutive pages go to consecutive slots in one UFFDIO_MOVE
 * (measured here: 1.1 us per page alone, 0.2 us per page in runs of 16).
 * Returns the number moved. */
static size_t stage_some(struct sdrsa_engine *e, size_t n)
{
	uint32_t slots[BATCH_MAX];
	uint64_t addrs[BATCH_MAX];
	if (stg_room(e) < n)
		stg_advance(e);
	n = MIN(n, MIN((size_t)BATCH_MAX, (size_t)stg_room(e)));
	spare_reclaim(e, e->stg_head + n);
	size_t k = policy_pick_stage(e->pol, slots, addrs, n);
	size_t moved = 0;
	for (size_t i = 0; i < k;) {
		/* A run: consecutive addresses, consecutive slots (no wrap). */
		uint32_t s0 = (uint32_t)(e->stg_head % e->stg_cap);
		size_t run = 1;
		while (i + run < k && addrs[i + run] == addrs[i] + run * PAGE &&
		       s0 + run < e->stg_cap)
			run++;
		int64_t r = move_checked(e, e->sfd, (uint64_t)(uintptr_t)stg_ptr(e, s0), addrs[i], run, 1);
		size_t ok = r > 0 ? (size_t)r / PAGE : 0;
		for (size_t j = 0; j < ok; j++) {
			struct pent *p = pt_get(e, addrs[i + j]);
			assert(p && p->state == PS_RESIDENT && p->pslot == slots[i + j]);
			if ((p->flags & (PF_VERIFY | PF_DIRTY)) == PF_VERIFY)
				verify_moved(e, p, stg_ptr(e, s0 + (uint32_t)j));
			p->flags &= (uint8_t)~PF_VERIFY;
			p->state = PS_STAGED;
			p->sslot = s0 + (uint32_t)j;
			e->stg_state[s0 + j] = STG_STAGED;
			e->nresident--;
			e->nstaged++;
			e->st.pages_staged++;
		}
		e->stg_head += ok;
		moved += ok;
		if (ok < run) {
			/* The page at i + ok did not move. ENOENT: it is gone
			 * from the mapping and an event about it is pending;
			 * EBUSY: shared with a fork child. It stays resident;
			 * the rest of the run is tried on its own. */
			policy_requeue(e->pol, slots[i + ok]);
			i += ok + 1;
		} else {
			i += run;
		}
	}
	return moved;
}

static inline int res_refused(int r, size_t nput)
{
	return nput && (r == -ENOSPC || r == -EDQUOT);
}

/*
 * The server refused pages (pool full or quota): they stay local and the
 * budget is exceeded until it takes pages again. Eviction pauses for a
 * backoff (1 s doubling to 8 s) so that every fault does not retry; a
 * warning is logged when it starts and every 30 s while it lasts.
 */
static void store_refused(struct sdrsa_engine *e, size_t n, int err)
{
	uint64_t now = sdrsa_now_ms();
	if (!e->full_since) {
		e->full_since = now;
		e->full_backoff_ms = 1000;
		e->full_warned = 0;
	} else {
		e->full_backoff_ms = MIN(e->full_backoff_ms * 2, 8000u);
	}
	e->full_retry_at = now + e->full_backoff_ms;
	e->st.store_refusals += n;
	if (!e->full_warned || now - e->full_warned >= 30000) {
		e->full_warned = now;
		elog(e, SDRSA_LOG_WARN,
		     "memory server %s refused pages (%s): keeping them local, over the "
		     "budget (%llu local pages, budget %llu); retrying",
		     e->server ? e->server : "(test store)",
		     err == -EDQUOT ? "quota of this client reached" : "pool full",
		     (unsigned long long)local_pages(e), (unsigned long long)e->budget);
	}
}

static void store_accepts(struct sdrsa_engine *e)
{
	elog(e, SDRSA_LOG_WARN, "memory server %s takes pages again after %.1f s",
	     e->server ? e->server : "(test store)",
	     (double)(sdrsa_now_ms() - e->full_since) / 1000.0);
	e->full_since = 0;
	e->full_retry_at = 0;
}

/* Send up to n of the oldest staged pages away: dirty ones are stored,
 * clean ones dropped. Returns the number evicted, or -EIO after a fatal
 * store error. */
static ssize_t evict_some(struct sdrsa_engine *e, size_t n)
{
	uint32_t slots[BATCH_MAX];
	uint64_t addrs[BATCH_MAX];
	uint64_t keys[BATCH_MAX];
	const void *pages[BATCH_MAX];
	struct pent *ps[BATCH_MAX];
	int res[BATCH_MAX];
	uint64_t sums[BATCH_MAX]; /* checksum of each page stored, which a fetch must match */
	size_t put_of[BATCH_MAX]; /* index in keys[] of page i's put, or SIZE_MAX */
	size_t nput = 0;

	n = MIN(n, (size_t)BATCH_MAX);
	n = MIN(n, (size_t)e->nstaged);
	size_t k = policy_pick_evict(e->pol, slots, addrs, n);
	for (size_t i = 0; i < k; i++) {
		struct pent *p = pt_get(e, addrs[i]);
		assert(p && p->state == PS_STAGED && p->pslot == slots[i]);
		ps[i] = p;
		put_of[i] = SIZE_MAX;
		if (!(p->flags & PF_DIRTY))
			continue;
		const void *data = stg_ptr(e, p->sslot);
		if (!(p->flags & PF_STORED) && sdrsa_page_is_zero(data)) {
			/* Written, but back to zeros: nothing to store. */
			p->flags &= (uint8_t)~PF_DIRTY;
			e->ndirty--;
			continue;
		}
		if (is_frozen(e, p)) {
			/* A fork child may read the stored copy: keep it, and
			 * store this version under a new key. */
			defer_key(e, p->key);
			p->flags &= (uint8_t)~(PF_STORED | PF_FROZEN);
			p->key = 0;
		}
		/* A key allocated for a put the server refused is kept. */
		if (!(p->flags & PF_STORED) && !p->key) {
			if (alloc_key(e, &p->key) < 0) {
				engine_fatal(e, "out of page keys");
				return -EIO;
			}
		}
		keys[nput] = p->key;
		pages[nput] = data;
		put_of[i] = nput;
		nput++;
	}
	size_t refused = 0;
	int refusal = 0;
	if (nput) {
		int r = store_put_csum(e->store, keys, pages, nput, res, sums);
		for (size_t j = 0; r < 0 && j < nput; j++) {
			if (res[j] == -ENOSPC || res[j] == -EDQUOT) {
				refused++;
				refusal = res[j];
			} else if (res[j] < 0) {
				engine_fatal(e, "cannot store %zu pages on memory server %s: %s%s%s",
					     nput, e->server ? e->server : "(test store)",
					     strerror(-res[j]), e->store->why ? ": " : "",
					     e->store->why ? e->store->why : "");
				return -EIO;
			}
		}
	}
	for (size_t i = 0; i < k; i++) {
		struct pent *p = ps[i];
		if (put_of[i] != SIZE_MAX && res_refused(res[put_of[i]], nput)) {
			/* The server refused it (pool full, quota): the page
			 * stays staged, its data safe here; eviction pauses. */
			policy_unevict(e->pol, slots[i]);
			continue;
		}
		policy_remove(e->pol, slots[i]);
		stg_release_later(e, p->sslot);
		e->nstaged--;
		if (p->flags & PF_AHEAD) {
			p->flags &= (uint8_t)~PF_AHEAD;
			e->st.prefetch_unused++;
		}
		if (p->flags & PF_DIRTY) {
			p->flags = PF_STORED;
			p->ssum = (uint32_t)sums[put_of[i]];
			e->ndirty--;
			e->st.pages_out++;
		} else {
			/* Write-protected all its stay and never written. */
			if (p->wscore)
				p->wscore--;
			e->st.pages_dropped++;
		}
		if (p->flags & PF_STORED) {
			p->state = PS_REMOTE;
			p->evstamp = ++e->evict_clock;
			e->nremote++;
		} else {
			p->state = PS_NONE; /* clean and never stored: zeros */
		}
	}
	stg_advance(e);
	if (refused)
		store_refused(e, refused, refusal);
	else if (nput && e->full_since)
		store_accepts(e);
	return (ssize_t)(k - refused);
}

/* Make room for `need` more local pages. Keeps the staging area topped up
 * (that is what gives hot pages their second chance) and evicts from its
 * old end in batches. Returns 0, or -EIO after a fatal error. If nothing
 * can be moved (all pages pinned), the budget is exceeded for now. */
static int make_room(struct sdrsa_engine *e, size_t need)
{
	int stuck = 0;
	if (e->exiting || e->forked_child)
		return 0; /* exiting, or a fork child: nothing is sent any more */
	if (e->full_since && local_pages(e) + need > e->budget &&
	    sdrsa_now_ms() < e->full_retry_at)
		return 0; /* the server refuses pages: over budget until the retry */
	while (local_pages(e) + need > e->budget) {
		/* Top the staging area up to its target first: pages wait
		 * there for a second chance before they leave. */
		while (e->nstaged < e->stage_target && e->nresident > 0) {
			size_t want = e->stage_target - e->nstaged;
			if (stage_some(e, MIN(want, (size_t)BATCH_MAX)) == 0) {
				stuck++;
				break;
			}
		}
		if (local_pages(e) + need <= e->budget)
			break;
		if (e->nstaged == 0 && e->nrefilled) {
			stg_advance(e); /* nothing staged holds the tail: drops them all */
			continue;
		}
		if (e->nstaged == 0) {
			if (stuck >= 2 || e->nresident == 0) {
				if (!e->warned_stuck++)
					elog(e, SDRSA_LOG_WARN,
					     "no page can be evicted now; local budget exceeded");
				return 0;
			}
			continue;
		}
		ssize_t r = evict_some(e, e->batch);
		if (r < 0)
			return -EIO;
		if (e->full_since && sdrsa_now_ms() < e->full_retry_at)
			return 0; /* refused: over budget until the retry */
	}
	return 0;
}

/* ---- prefetch and trace: managed ranges ---- */

/* Remember [start, end) as a new range (forgetting any it overlaps: the
 * address space was reused). Called under lock. */
static void ranges_add(struct sdrsa_engine *e, uint64_t start, uint64_t end)
{
	size_t k = 0;
	for (size_t i = 0; i < e->nranges; i++)
		if (e->ranges[i].end <= start || e->ranges[i].start >= end)
			e->ranges[k++] = e->ranges[i];
	e->nranges = k;
	if (e->nranges == e->ranges_cap) {
		size_t ncap = e->ranges_cap ? 2 * e->ranges_cap : 16;
		struct mrange *nr = realloc(e->ranges, ncap * sizeof(*nr));
		if (!nr)
			return; /* faults there count as region 0: only prefetch is less precise */
		e->ranges = nr;
		e->ranges_cap = ncap;
	}
	size_t at = 0;
	while (at < e->nranges && e->ranges[at].start < start)
		at++;
	memmove(&e->ranges[at + 1], &e->ranges[at], (e->nranges - at) * sizeof(*e->ranges));
	e->ranges[at] = (struct mrange){start, end, ++e->next_range_id};
	e->nranges++;
}

/* The number of the managed range holding addr; 0 if none is known. */
static uint32_t range_of(const struct sdrsa_engine *e, uint64_t addr)
{
	size_t lo = 0, hi = e->nranges;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (e->ranges[mid].end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < e->nranges && e->ranges[lo].start <= addr ? e->ranges[lo].id : 0;
}

/* The prefetcher saw the stream pass a window fetched ahead: its pages
 * were used (reads of mapped pages are invisible otherwise). The trace gets
 * them as reads, so that a replay sees the accesses prefetch hid. */
static void ahead_used(struct sdrsa_engine *e, const struct prefetch_plan *pl)
{
	for (unsigned i = 0; i < pl->used_n; i++) {
		uint64_t pn = pl->used_first + (uint64_t)(pl->used_stride * (int64_t)i);
		struct pent *q = pt_get(e, pn << 12);
		if (!q || !(q->flags & PF_AHEAD))
			continue;
		q->flags &= (uint8_t)~PF_AHEAD;
		if (e->trace)
			trace_write(e->trace, range_of(e, pn << 12), pn, TRACE_READ);
	}
}

/* ---- faults ---- */

/* `ahead`: fetched ahead, not touched yet (not a use for the policy). */
static void make_resident(struct sdrsa_engine *e, struct pent *p, uint64_t addr, int dirty,
			  int ahead)
{
	unsigned hot = 0;
	if (p->state == PS_REMOTE) {
		/* Back soon after its eviction: it would have stayed with a
		 * budget half as large again; protect it for a lap or two. */
		uint64_t dist = (uint32_t)(e->evict_clock - p->evstamp);
		if (dist < e->budget / 2)
			hot = 3;
		else if (dist < e->budget)
			hot = 2;
		else if (dist < 2 * e->budget)
			hot = 1;
	}
	int64_t slot = ahead ? policy_on_prefetch(e->pol, addr, hot)
			     : policy_on_fault_hot(e->pol, addr, hot);
	if (slot < 0) {
		engine_fatal(e, "out of memory for the page policy");
		return;
	}
	p->pslot = (uint32_t)slot;
	p->state = PS_RESIDENT;
	e->nresident++;
	if (dirty && !(p->flags & PF_DIRTY)) {
		p->flags |= PF_DIRTY;
		e->ndirty++;
	}
}

static void become_resident(struct sdrsa_engine *e, struct pent *p, uint64_t addr, int dirty)
{
	make_resident(e, p, addr, dirty, 0);
}

/*
 * Write prediction: a read fault on a page that was written in most of its
 * recent stays installs it writable and dirty, which saves the WP fault of
 * the write that usually follows (a fault costs about 7 us here, a page sent
 * again at eviction about 2 us of CPU, off the faulting thread's path). One
 * such install in four is write-protected anyway, to keep learning: a page
 * that was not written during a write-protected stay loses a point.
 */
static int predict_write(struct sdrsa_engine *e, struct pent *p)
{
	if (p->wscore < 2 || (++e->pred_clock & 3) == 0)
		return 0;
	e->st.writes_predicted++;
	return 1;
}

/* Install write-protected (to see the first write)? Not in a fork child:
 * it evicts nothing and its userfaultfd has no WP mode. */
static inline int wp_install(const struct sdrsa_engine *e, int write)
{
	return !write && !e->forked_child;
}

static int fault_zero(struct sdrsa_engine *e, struct pent *p, uint64_t addr, int write)
{
	int r = uf_copy(e->uffd, addr, e->zero, wp_install(e, write), 0);
	if (r == -EEXIST) {
		uf_wake(e->uffd, addr);
		e->st.faults_dup++;
		return 0;
	}
	if (r < 0)
		return r;
	if (write)
		saw_write(p);
	become_resident(e, p, addr, write);
	e->st.faults_zero++;
	return 0;
}

static int fault_refill(struct sdrsa_engine *e, struct pent *p, uint64_t addr, int write)
{
	uint32_t s = p->sslot;
	int r;
	p->flags &= (uint8_t)~PF_AHEAD;
	if (write)
		saw_write(p);
	else if (!(p->flags & PF_DIRTY) && predict_write(e, p))
		p->flags |= PF_PRED;
	/*
	 * Copied back, not moved, and the slot dropped later with its
	 * neighbours (stg_advance): on this machine a one-page UFFDIO_MOVE
	 * back or a one-page MADV_DONTNEED of the slot costs 14-19 us (a TLB
	 * flush that waits for the other vCPU), a UFFDIO_COPY 4 us (the
	 * zipf phase of enginebench, 23000 refills). A clean page is copied
	 * write-protected in the same step, so that no write slips in before
	 * protection. The slot's page counts as local until it is dropped;
	 * past a quarter of the staging target it is dropped at once.
	 */
	int wr = (p->flags & (PF_DIRTY | PF_PRED)) || write;
	r = uf_copy(e->uffd, addr, stg_ptr(e, s), !wr, 0);
	if (r < 0)
		return r;
	if (e->nrefilled < e->stage_target / 4) {
		e->stg_state[s] = STG_REFILLED;
		e->nrefilled++;
	} else {
		stg_release(e, s);
	}
	if (wr && !(p->flags & PF_DIRTY)) {
		p->flags |= PF_DIRTY;
		e->ndirty++;
	}
	p->state = PS_RESIDENT;
	e->nstaged--;
	e->nresident++;
	policy_on_refill(e->pol, p->pslot);
	e->st.faults_refill++;
	return 0;
}

/* A remote fault in progress: the faulting page (index 0) and the pages
 * fetched ahead of it, installed as they arrive (fetch_arrived). */
struct fetch {
	struct sdrsa_engine *e;
	size_t n;
	int write;     /* the fault was a write */
	int wr;        /* install the faulting page writable */
	int r0;        /* result of installing the faulting page; 1: not yet */
	uint64_t qaddr[1 + PREFETCH_MAX];
	struct pent *qp[1 + PREFETCH_MAX];
	void *bufs[1 + PREFETCH_MAX];
	uint32_t slot[1 + PREFETCH_MAX];   /* spare slot receiving page i; UINT32_MAX: fbuf */
	uint64_t spc[1 + PREFETCH_MAX];    /* that spare's ring counter */
	uint8_t arrived[1 + PREFETCH_MAX]; /* 1 arrived, 2 installed or given up */
	uint64_t csum[1 + PREFETCH_MAX];   /* page i's checksum (the store's, or fetched_ok's) */
	int stale0;                        /* the faulting page failed fetched_ok (csum[0]) */
};

/*
 * End-to-end check of a fetched page: is it the version the engine stored?
 * The wire checksum only proves that the server sent the bytes it holds for
 * the key; an older copy (a put delivered late, a replica that missed a
 * write, another client writing under our name) verifies there too. The
 * page must hash to the checksum kept when it was stored (pent.ssum), a
 * 4-byte compare when the store hands over the checksum it verified
 * (gives_csums), else one hash here, kept in f->csum for install_moved.
 */
static int fetched_ok(struct sdrsa_engine *e, struct fetch *f, size_t i)
{
	if (!store_fills_csums(e->store))
		f->csum[i] = sdrsa_page_csum(f->bufs[i], f->qp[i]->key);
	return (uint32_t)f->csum[i] == f->qp[i]->ssum;
}

/* Tests (SDRSA_TEST_FAULT=movein-write@N): a write into a page right after
 * its move-in, as another thread could make it, which raises no fault and
 * which dirty tracking must not miss: a marker in the last 8 bytes of the
 * first page of each of the first N runs moved in. */
#define MOVEIN_WRITE_MARK 0x5344525341574e44ull
static void inject_window_write(struct sdrsa_engine *e, uint64_t addr)
{
	if (e->inject != INJECT_MOVEIN_WRITE || !e->inject_after)
		return;
	e->inject_after--;
	*(volatile uint64_t *)(uintptr_t)(addr + PAGE - 8) = MOVEIN_WRITE_MARK;
}

/*
 * Install pages fetched ahead that were received into spare pages by
 * moving the pages themselves into the mapping: no allocation and no copy,
 * where UFFDIO_COPY allocates and copies (0.19 against 0.75 us a page in
 * runs of 64 here, and the spare needs no MADV_DONTNEED later). The
 * moved-in entry is writable, with no uffd-wp bit, and is left so: a write
 * raises no fault. Such a page keeps the checksum of the data as fetched
 * (how[j] 2, sums[j]: the one the store verified on receipt, else hashed
 * here) and is checked when it leaves the mapping (verify_moved): if it
 * differs, it was written and is dirty. Write-protecting the run after the
 * move would not spare that check (a write between the move and the
 * protection raises no fault either) and cost 7% of the handler's time on
 * a pinned scan. Its contents are never read in
 * place: the program may unmap it at any time. A page that cannot be
 * moved (EBUSY: shared with a fork child; move_checked counts what the
 * kernel really moved) is copied as usual and its spare dropped. Returns
 * the pages installed; how[j]: 0 clean, 1 dirty, 2 clean if it verifies.
 */
static size_t install_moved(struct sdrsa_engine *e, struct fetch *f, size_t i, size_t run,
			    uint8_t *how, uint64_t *sums)
{
	int wp = wp_install(e, f->write);
	if (wp)
		for (size_t j = 0; j < run; j++)
			sums[j] = f->csum[i + j]; /* given by the store or hashed by fetched_ok */
	int64_t m = move_checked(e, e->uffd, f->qaddr[i], (uint64_t)(uintptr_t)f->bufs[i], run, 1);
	size_t ok = m > 0 ? (size_t)m / PAGE : 0;
	for (size_t j = 0; j < ok; j++)
		e->stg_state[f->slot[i + j]] = STG_EMPTY;
	if (ok && wp)
		inject_window_write(e, f->qaddr[i]);
	for (size_t j = 0; j < ok; j++)
		how[j] = wp ? 2 : 1;
	e->movein_pages += ok;
	if (ok == run)
		return ok;
	int64_t c = uf_copy_n(e->uffd, f->qaddr[i + ok], f->bufs[i + ok], run - ok, wp, 1);
	size_t copied = c > 0 ? (size_t)c / PAGE : 0;
	for (size_t j = ok; j < ok + copied; j++)
		how[j] = !wp;
	/* Not moved (or moved unseen): never a receive buffer again. */
	for (size_t j = ok; j < run; j++)
		e->stg_state[f->slot[i + j]] = STG_EMPTY;
	(void)madvise(f->bufs[i + ok], (run - ok) * PAGE, MADV_DONTNEED);
	return ok + copied;
}

/*
 * Pages came in. The faulting page is installed at once and its thread
 * woken; pages fetched ahead are installed without waking, runs of
 * consecutive pages (their buffers are consecutive too) with one
 * UFFDIO_COPY. Pages fetched ahead of a write stream are likely to be
 * written too: they are installed writable (dirty), which saves a WP fault
 * each. A page that cannot be installed stays REMOTE (fetched again on its
 * fault).
 */
static void fetch_arrived(void *ctx, const size_t *idx, size_t k)
{
	struct fetch *f = ctx;
	struct sdrsa_engine *e = f->e;
	for (size_t j = 0; j < k; j++) {
		f->arrived[idx[j]] = 1;
		if (fetched_ok(e, f, idx[j]))
			continue;
		/* Not the version stored: never installed. A page fetched
		 * ahead stays REMOTE (its fault fetches it again); the
		 * faulting page stops the program (fault_remote). */
		f->arrived[idx[j]] = 2;
		e->st.pages_mismatched++;
		if (idx[j] == 0) {
			f->stale0 = 1;
			f->r0 = -EBADMSG;
		}
	}
	e->st.pages_in += k;
	if (f->arrived[0] == 1) {
		f->arrived[0] = 2;
		struct pent *p = f->qp[0];
		f->r0 = uf_copy(e->uffd, f->qaddr[0], f->bufs[0], wp_install(e, f->wr), 0);
		if (f->r0 == 0) {
			e->nremote--;
			if (f->wr && !f->write)
				p->flags |= PF_PRED;
			become_resident(e, p, f->qaddr[0], f->wr);
			e->st.faults_remote++;
		}
	}
	if (f->r0 == 1)
		return; /* prefetched pages go in after the faulting one */
	for (size_t i = 1; i < f->n;) {
		if (f->arrived[i] != 1) {
			i++;
			continue;
		}
		/* A run: consecutive pages in consecutive buffers of one kind
		 * (spares: at most what move_checked can check). */
		int spare = f->slot[i] != UINT32_MAX;
		size_t run = 1;
		while (i + run < f->n && f->arrived[i + run] == 1 &&
		       f->qaddr[i + run] == f->qaddr[i] + run * PAGE &&
		       (f->slot[i + run] != UINT32_MAX) == spare &&
		       (char *)f->bufs[i + run] == (char *)f->bufs[i] + run * PAGE &&
		       (!spare || run < BATCH_MAX))
			run++;
		size_t ok = 0;
		uint8_t how[PREFETCH_MAX];
		uint64_t sums[PREFETCH_MAX];
		if (f->r0 == 0 && spare) {
			ok = install_moved(e, f, i, run, how, sums);
		} else if (f->r0 == 0) {
			int64_t c = uf_copy_n(e->uffd, f->qaddr[i], f->bufs[i], run,
					      wp_install(e, f->write), 1);
			ok = c > 0 ? (size_t)c / PAGE : 0;
			memset(how, f->write, ok);
		}
		for (size_t j = 0; j < run; j++)
			f->arrived[i + j] = 2;
		for (size_t j = 0; j < ok; j++) {
			struct pent *q = f->qp[i + j];
			e->nremote--;
			make_resident(e, q, f->qaddr[i + j], how[j] == 1, 1);
			q->flags |= PF_AHEAD;
			if (how[j] == 2) {
				/* After make_resident, which reads evstamp
				 * (the low half is ssum: fetched_ok). */
				q->flags |= PF_VERIFY;
				q->vsum_hi = (uint32_t)(sums[j] >> 32);
			}
			e->st.pages_prefetched++;
		}
		i += run;
	}
}

/* Tests (SDRSA_TEST_FAULT=spare-hole@N): a spare without a page behind the
 * bookkeeping's back, the engine bug spares_check guards against: the page
 * of the first spare of each of the first N fetches that use spares is
 * dropped. */
static void inject_spare_hole(struct sdrsa_engine *e, struct fetch *f)
{
	if (e->inject != INJECT_SPARE_HOLE || !e->inject_after)
		return;
	for (size_t i = 1; i < f->n; i++)
		if (f->slot[i] != UINT32_MAX) {
			(void)madvise(f->bufs[i], PAGE, MADV_DONTNEED);
			e->inject_after--;
			return;
		}
}

/*
 * The spares given to a fetch must hold a page: the handler receiving into
 * an empty slot of the staging area would fault on its own userfaultfd and
 * wait for ever. The engine's bookkeeping says so; the page table is asked
 * too (pages_mapped: about 1 us a fetch), and a slot found empty is not used.
 */
static void spares_check(struct sdrsa_engine *e, struct fetch *f)
{
	for (size_t i = 1; i < f->n;) {
		if (f->slot[i] == UINT32_MAX) {
			i++;
			continue;
		}
		size_t run = 1;
		while (i + run < f->n && run < BATCH_MAX && f->slot[i + run] == f->slot[i] + run)
			run++;
		uint8_t there[BATCH_MAX];
		int r = pages_mapped(e, (uint64_t)(uintptr_t)f->bufs[i], run, there);
		for (size_t j = 0; j < run; j++) {
			if (r == 0 && there[j])
				continue;
			if (r == 0)
				e->spare_holes++;
			if (r == 0 && !e->warned_spare++)
				elog(e, SDRSA_LOG_WARN,
				     "staging slot %u, kept as a receive buffer, holds no page; "
				     "not used (an engine bug: please report it)",
				     f->slot[i + j]);
			e->stg_state[f->slot[i + j]] = STG_EMPTY;
			f->slot[i + j] = UINT32_MAX;
			f->bufs[i + j] = e->fbuf + (i + j) * PAGE;
		}
		i += run;
	}
}

/* Spares of a fetch not installed because their pages never arrived or
 * the faulting page could not be installed: still there, untouched by any
 * move, so back to the front of the spare ring (they came from it). */
static void spares_untaken(struct sdrsa_engine *e, struct fetch *f)
{
	for (size_t i = f->n; i-- > 1;) {
		if (f->slot[i] == UINT32_MAX || e->stg_state[f->slot[i]] != STG_RECV)
			continue;
		e->spare_first = (e->spare_first + e->stg_cap - 1) % e->stg_cap;
		e->spare[e->spare_first] = f->spc[i];
		e->spare_n++;
		e->stg_state[f->slot[i]] = STG_SPARE;
	}
}

static int fault_remote(struct sdrsa_engine *e, struct pent *p, uint64_t addr, int write)
{
	uint64_t keys[1 + PREFETCH_MAX];
	uint32_t want[1 + PREFETCH_MAX]; /* for get_stream_want: the checksums kept */
	struct fetch *f = e->fetch;
	size_t n = 1;

	f->e = e;
	f->write = write;
	f->r0 = 1;
	f->stale0 = 0;
	keys[0] = p->key;
	want[0] = p->ssum;
	f->bufs[0] = e->fbuf;
	f->slot[0] = UINT32_MAX;
	f->qaddr[0] = addr;
	f->qp[0] = p;
	uint64_t pn = addr >> 12;
	struct prefetch_plan plan;
	prefetch_fault(e->pf, range_of(e, addr), pn, &plan);
	if (plan.used_n)
		ahead_used(e, &plan);
	uint64_t last = pn;
	for (unsigned i = 1; i <= plan.depth; i++) {
		uint64_t qa = (uint64_t)((int64_t)pn + plan.stride * (int64_t)i) << 12;
		struct pent *q = pt_get(e, qa);
		if (!q || q->state != PS_REMOTE)
			continue;
		keys[n] = q->key;
		want[n] = q->ssum;
		f->slot[n] = spare_take(e, &f->spc[n]);
		f->bufs[n] = f->slot[n] != UINT32_MAX ? stg_ptr(e, f->slot[n]) : e->fbuf + n * PAGE;
		f->qaddr[n] = qa;
		f->qp[n] = q;
		last = qa >> 12;
		n++;
	}
	f->n = n;
	memset(f->arrived, 0, n);
	if (n > 1)
		prefetch_issued(e->pf, last);
	f->wr = write;
	if (write)
		saw_write(p);
	else if (predict_write(e, p))
		f->wr = 1;
	inject_spare_hole(e, f);
	spares_check(e, f);
	/* A store with several copies checks them itself and reads another
	 * copy when one fails (the pool); fetched_ok checks again. */
	int r = store_get_want(e->store, keys, want, f->bufs, n, fetch_arrived, f, f->csum);
	spares_untaken(e, f);
	if (f->stale0) {
		/* Failing loudly beats handing the program the wrong data. */
		engine_fatal(e, "page %#llx came back from memory server %s, but not as the engine "
			     "stored it (key %#llx, checksum %08x, expected %08x): a stale or "
			     "foreign copy",
			     (unsigned long long)addr, e->server ? e->server : "(test store)",
			     (unsigned long long)p->key, (unsigned)(uint32_t)f->csum[0],
			     (unsigned)p->ssum);
		return -EIO;
	}
	if (r < 0 && f->r0 == 1) {
		engine_fatal(e, "cannot fetch page %#llx from memory server %s: %s%s%s",
			     (unsigned long long)addr, e->server ? e->server : "(test store)",
			     strerror(-r), e->store->why ? ": " : "",
			     e->store->why ? e->store->why : "");
		return -EIO;
	}
	/* A prefetched page that did not come stays REMOTE. */
	return f->r0 == 1 ? -EIO : f->r0;
}

static int fault_missing(struct sdrsa_engine *e, uint64_t addr, int write, uint32_t ptid)
{
	struct pent *p = pt_make(e, addr);
	if (!p) {
		engine_fatal(e, "out of memory for the page table");
		return -EIO;
	}
	switch (p->state) {
	case PS_NONE:
		return fault_zero(e, p, addr, write);
	case PS_STAGED:
		return fault_refill(e, p, addr, write);
	case PS_REMOTE:
		return fault_remote(e, p, addr, write);
	case PS_RESIDENT: {
		/* Usually a second thread on a page already served: the
		 * probe's copy finds the page there (EEXIST). If it does not,
		 * a page we hold as resident vanished from the mapping and
		 * its contents are lost: stop the program rather than let it
		 * read the probe's zeros (the faulting thread is not woken). */
		int r = uf_copy(e->uffd, addr, e->zero, wp_install(e, 0), 1);
		if (r == -EEXIST) {
			uf_wake(e->uffd, addr);
			e->st.faults_dup++;
			return 0;
		}
		/* The probe proves nothing while an event is pending (EAGAIN:
		 * the caller reads it and the thread faults again) or once the
		 * mapping is gone (ENOENT: its UNMAP event drops the page). */
		if (r < 0)
			return r;
		engine_fatal(e, "page %#llx, held as resident, is missing from the mapping: its "
			     "contents are lost (an engine bug: please report it)",
			     (unsigned long long)addr);
		return -EIO;
	}
	case PS_GONE:
		/* Touched after the engine released its pages at exit. The
		 * exiting thread (running the last destructors) must not wait
		 * for ever; any other thread is left waiting: exit_group()
		 * is about to end it. */
		if (ptid == e->exit_tid || !ptid)
			engine_fatal(e, "page %#llx was touched after the paging engine released "
				     "the program's memory at exit",
				     (unsigned long long)addr);
		return -EIO;
	default:
		uf_wake(e->uffd, addr);
		return 0;
	}
}

static void fault_wp(struct sdrsa_engine *e, uint64_t addr)
{
	struct pent *p = pt_get(e, addr);
	if (!p || p->state != PS_RESIDENT) {
		/* Taken away while the writer waited: let it fault again as a
		 * missing page. */
		uf_wake(e->uffd, addr);
		return;
	}
	if (!(p->flags & PF_DIRTY)) {
		p->flags |= PF_DIRTY;
		e->ndirty++;
	}
	saw_write(p);
	p->flags &= (uint8_t)~PF_AHEAD;
	policy_on_access(e->pol, p->pslot);
	e->st.faults_wp++;
	if (uf_wp(e->uffd, addr, PAGE, 0) < 0)
		uf_wake(e->uffd, addr);
}

/* ---- events ---- */

/* The program dropped [start, end): forget local and remote copies. */
static void drop_range(struct sdrsa_engine *e, uint64_t start, uint64_t end)
{
	start &= PAGE_MASK;
	for (uint64_t cb = start & ~((1ull << CHUNK_SHIFT) - 1); cb < end;
	     cb += 1ull << CHUNK_SHIFT) {
		struct chunk *c = chunk_get(e, cb);
		if (!c)
			continue;
		uint64_t a0 = MAX(cb, start), a1 = MIN(cb + (1ull << CHUNK_SHIFT), end);
		for (uint64_t a = a0; a < a1; a += PAGE) {
			struct pent *p = pent_of(c, a);
			switch (p->state) {
			case PS_RESIDENT:
				policy_remove(e->pol, p->pslot);
				e->nresident--;
				break;
			case PS_STAGED:
				policy_remove(e->pol, p->pslot);
				stg_release(e, p->sslot);
				e->nstaged--;
				break;
			case PS_REMOTE:
				e->nremote--;
				break;
			default:
				break;
			}
			if (p->flags & PF_DIRTY)
				e->ndirty--;
			release_key(e, p);
			memset(p, 0, sizeof(*p));
		}
		chunk_maybe_free(e, c);
	}
	flush_frees(e);
}

/* mremap moved [from, from + len) to `to`: move the entries along. */
static void remap_range(struct sdrsa_engine *e, uint64_t from, uint64_t to, uint64_t len)
{
	/* Whatever was recorded at the destination is stale. */
	drop_range(e, to, to + len);
	for (uint64_t off = 0; off < len; off += PAGE) {
		struct chunk *c = chunk_get(e, from + off);
		if (!c) {
			/* Skip to the next chunk. */
			uint64_t next = ((from + off) | ((1ull << CHUNK_SHIFT) - 1)) + 1;
			off = next - from - PAGE;
			continue;
		}
		struct pent *p = pent_of(c, from + off);
		if (p->state == PS_NONE && !p->flags)
			continue;
		struct pent *d = pt_make(e, to + off);
		if (!d) {
			engine_fatal(e, "out of memory for the page table");
			return;
		}
		*d = *p;
		if (d->state == PS_RESIDENT || d->state == PS_STAGED)
			policy_set_cookie(e->pol, d->pslot, to + off);
		memset(p, 0, sizeof(*p));
	}
	for (uint64_t cb = from & ~((1ull << CHUNK_SHIFT) - 1); cb < from + len;
	     cb += 1ull << CHUNK_SHIFT) {
		struct chunk *c = chunk_get(e, cb);
		if (c)
			chunk_maybe_free(e, c);
	}
}

static void handle_event(struct sdrsa_engine *e, const struct uffd_msg *m)
{
	e->st.events++;
	switch (m->event) {
	case UFFD_EVENT_UNMAP:
	case UFFD_EVENT_REMOVE:
		drop_range(e, m->arg.remove.start, m->arg.remove.end);
		break;
	case UFFD_EVENT_REMAP:
		remap_range(e, m->arg.remap.from, m->arg.remap.to, m->arg.remap.len);
		break;
	case UFFD_EVENT_FORK:
		/* Not requested; never keep a child's descriptor. */
		close((int)m->arg.fork.ufd);
		break;
	default:
		break;
	}
}

/* Read pending messages into the queue (non-blocking). */
static void read_msgs(struct sdrsa_engine *e)
{
	while (e->qn < QUEUE_MAX) {
		size_t want = (QUEUE_MAX - e->qn) * sizeof(struct uffd_msg);
		ssize_t n = read(e->uffd, &e->q[e->qn], want);
		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			return;
		}
		e->qn += (size_t)n / sizeof(struct uffd_msg);
		/* A short read took everything pending: no second read that
		 * would only say EAGAIN. */
		if ((size_t)n < want)
			return;
	}
}

static void handle_fault(struct sdrsa_engine *e, const struct uffd_msg *m)
{
	uint64_t t0 = sdrsa_now_ns();
	uint64_t addr = m->arg.pagefault.address & PAGE_MASK;
	uint64_t fl = m->arg.pagefault.flags;
	uint64_t remote_before = e->st.faults_remote;
	int r = 0;

	e->last_fault = addr;

	if (fl & UFFD_PAGEFAULT_FLAG_WP)
		fault_wp(e, addr);
	else
		r = fault_missing(e, addr, !!(fl & UFFD_PAGEFAULT_FLAG_WRITE),
				  m->arg.pagefault.feat.ptid);
	/* Recorded after the pages that this fault showed used (ahead_used),
	 * which the program touched before it. */
	if (e->trace)
		trace_write(e->trace, range_of(e, addr), addr >> 12,
			    (fl & UFFD_PAGEFAULT_FLAG_WP)      ? TRACE_WP
			    : (fl & UFFD_PAGEFAULT_FLAG_WRITE) ? TRACE_WRITE
							       : TRACE_READ);
	if (e->dead)
		return;
	if (r == -EAGAIN) {
		/* An event is pending: consume it, let the thread fault again. */
		read_msgs(e);
		uf_wake(e->uffd, addr);
	} else if (r < 0 && r != -EIO) {
		/* ENOENT/EINVAL: the mapping went away; the thread will see
		 * that when it retries. */
		uf_wake(e->uffd, addr);
	}
	uint64_t dt = sdrsa_now_ns() - t0;
	sdrsa_hist_add(&e->lat_all, dt);
	if (e->st.faults_remote != remote_before)
		sdrsa_hist_add(&e->lat_remote, dt);
	/* Evict after the faulting thread was woken, not before: the
	 * eviction work is off its path (the budget is exceeded by the pages
	 * of one fault for that long). */
	if (!e->dead)
		(void)make_room(e, 0);
}

/* Handle the events among q[from, to); faults stay queued. */
static void handle_events(struct sdrsa_engine *e, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++)
		if (e->q[i].event && e->q[i].event != UFFD_EVENT_PAGEFAULT) {
			handle_event(e, &e->q[i]);
			e->q[i].event = 0;
		}
}

static void process_queue(struct sdrsa_engine *e)
{
	while (e->qn && !e->dead) {
		size_t n = e->qn;
		handle_events(e, 0, n);
		for (size_t i = 0; i < n && !e->dead; i++) {
			if (e->q[i].event != UFFD_EVENT_PAGEFAULT)
				continue;
			size_t had = e->qn;
			handle_fault(e, &e->q[i]);
			/* An event read meanwhile (EAGAIN) already changed the
			 * mappings: the rest of this batch is served after it,
			 * or a stale entry would be installed into a range the
			 * program unmapped or reused. */
			if (e->qn > had)
				handle_events(e, had, e->qn);
		}
		memmove(e->q, e->q + n, (e->qn - n) * sizeof(*e->q));
		e->qn -= n;
	}
}

/*
 * The handler: poll the program's userfaultfd and serve what arrives. After
 * work it keeps looking for spin_us (non-blocking reads and sched_yield)
 * before it sleeps in poll(): a program that faults often then finds the
 * handler awake, which saves a wake-up per fault (on one vCPU the yield hands
 * the CPU to the faulting thread at once; across vCPUs it saves the
 * cross-CPU wake-up of the handler).
 */
/* The handler thread ends without being asked to (a bug, or a test's
 * injected fault): faulting threads would wait for ever, so stop loudly. */
static void handler_gone(void *arg)
{
	struct sdrsa_engine *e = arg;
	if (!__atomic_load_n(&e->stopping, __ATOMIC_ACQUIRE) && !e->dead)
		engine_fatal(e, "the paging engine's thread stopped unexpectedly; the program "
				"cannot go on without it");
}

/* Tests only: SDRSA_TEST_FAULT=exit@N or crash@N makes the handler thread
 * end (pthread_exit) or crash (SIGSEGV) after serving N faults; lose@N takes
 * the last page served out of the mapping behind the engine's back (moved
 * into the free staging slot at the ring's head and dropped there), the
 * state "resident without a page" that must stop the program
 * when the page is touched again; misreport@N makes UFFDIO_MOVE report
 * complete moves as failed or short from then on (inject_misreport);
 * spare-hole@N drops the page of one spare in each of the first N fetches
 * that receive into spares (inject_spare_hole);
 * movein-write@N writes to the first N runs of pages moved in, right after
 * the move (inject_window_write). */
static void test_fault_point(struct sdrsa_engine *e)
{
	if (!e->inject || faults_served(e) < e->inject_after)
		return;
	if (e->inject == INJECT_MISREPORT || e->inject == INJECT_MOVEIN_WRITE ||
	    e->inject == INJECT_SPARE_HOLE)
		return; /* in move_checked, in install_moved, in fault_remote */
	if (e->inject == INJECT_LOSE) {
		struct pent *p = pt_get(e, e->last_fault);
		uint32_t s = (uint32_t)(e->stg_head % e->stg_cap);
		if (p && p->state == PS_RESIDENT && e->stg_state[s] == STG_EMPTY &&
		    uf_move(e->sfd, (uint64_t)(uintptr_t)stg_ptr(e, s), e->last_fault, 1) == 0) {
			/* Gone for good: left in the slot, move_checked would
			 * find it there when the page is staged. */
			stg_release(e, s);
			e->inject = INJECT_NONE;
		}
		return;
	}
	if (e->inject == INJECT_EXIT) {
		pthread_mutex_unlock(&e->lock);
		pthread_exit(NULL);
	}
	static volatile uintptr_t bad = 8;
	*(volatile int *)bad = 1; /* a real fault: the kernel kills the process */
}

/* Run the store's tick when it is due (*at, ms; UINT64_MAX: never). */
static void store_tick(struct sdrsa_engine *e, uint64_t *at)
{
	if (!e->store || !e->store->ops->tick || *at == UINT64_MAX || sdrsa_now_ms() < *at)
		return;
	pthread_mutex_lock(&e->lock);
	int ms = e->dead ? -1 : e->store->ops->tick(e->store);
	pthread_mutex_unlock(&e->lock);
	*at = ms < 0 ? UINT64_MAX : sdrsa_now_ms() + (uint64_t)ms;
}

static void handler_loop(struct sdrsa_engine *e)
{
	uint64_t spin_ns = (uint64_t)e->spin_us * 1000u, last = 0, busy = 0;
	uint64_t tick_at = e->store && e->store->ops->tick ? 0 : UINT64_MAX;
	for (;;) {
		if (__atomic_load_n(&e->stopping, __ATOMIC_ACQUIRE))
			break;
		pthread_mutex_lock(&e->lock);
		size_t got = 0;
		if (!e->dead) {
			read_msgs(e);
			got = e->qn;
			process_queue(e);
			test_fault_point(e);
		}
		pthread_mutex_unlock(&e->lock);
		store_tick(e, &tick_at);
		if (got) {
			last = sdrsa_now_ns();
			/* Busy for long: still notice fork children that are gone. */
			if (e->nkids && ++busy % 4096 == 0) {
				pthread_mutex_lock(&e->lock);
				kids_check(e);
				pthread_mutex_unlock(&e->lock);
			}
			continue;
		}
		if (spin_ns && !e->dead && sdrsa_now_ns() - last < spin_ns) {
			sched_yield();
			continue;
		}
		/* Over budget because the server refused pages: wake up for
		 * the retry even if the program does not fault. */
		int timeout = -1;
		if (e->full_since && !e->dead) {
			uint64_t now = sdrsa_now_ms();
			timeout = e->full_retry_at > now ? (int)(e->full_retry_at - now) : 0;
		}
		/* The store's background work (a pool's probes and copies). */
		if (tick_at != UINT64_MAX && !e->dead) {
			uint64_t now = sdrsa_now_ms();
			int t = tick_at > now ? (int)MIN(tick_at - now, 60000u) : 0;
			if (timeout < 0 || t < timeout)
				timeout = t;
		}
		/* stopfd, uffd, kickfd, then the fork children's descriptors
		 * (read under the lock; kickfd tells us when they change). */
		struct pollfd pf[3 + 64];
		nfds_t n = 0;
		pf[n++] = (struct pollfd){.fd = e->stopfd, .events = POLLIN};
		if (!e->dead) {
			pf[n++] = (struct pollfd){.fd = e->uffd, .events = POLLIN};
			if (e->kickfd >= 0)
				pf[n++] = (struct pollfd){.fd = e->kickfd, .events = POLLIN};
			pthread_mutex_lock(&e->lock);
			for (size_t i = 0; i < e->nkids && n < 3 + 64; i++)
				if (e->kids[i].fd >= 0)
					pf[n++] = (struct pollfd){.fd = e->kids[i].fd, .events = POLLIN};
			/* A child whose state cannot be polled (no pidfd):
			 * look again every second. */
			for (size_t i = 0; i < e->nkids; i++)
				if (e->kids[i].fd < 0 && (timeout < 0 || timeout > 1000))
					timeout = 1000;
			pthread_mutex_unlock(&e->lock);
		}
		int r = poll(pf, n, timeout);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pf[0].revents)
			break;
		int kids_moved = r == 0;
		for (nfds_t i = 2; i < n; i++)
			if (pf[i].revents)
				kids_moved = 1;
		if (n > 2 && pf[2].fd == e->kickfd && pf[2].revents) {
			uint64_t v;
			if (read(e->kickfd, &v, sizeof(v)) < 0) {
				/* nothing to drain */
			}
		}
		if (kids_moved) {
			pthread_mutex_lock(&e->lock);
			if (!e->dead) {
				if (e->nkids)
					kids_check(e);
				(void)make_room(e, 0);
			}
			pthread_mutex_unlock(&e->lock);
		}
		last = sdrsa_now_ns();
	}
}

static void *handler_main(void *arg)
{
	struct sdrsa_engine *e = arg;
	sdrsa_engine_internal = 1;
	pthread_cleanup_push(handler_gone, e);
	handler_loop(e);
	pthread_cleanup_pop(1);
	return NULL;
}

/* ---- setup ---- */

static int uffd_open(uint64_t features, uint64_t *got)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return errno == ENOSYS ? -ENOSYS : -errno;
	struct uffdio_api api = {.api = UFFD_API, .features = features};
	if (ioctl(fd, UFFDIO_API, &api) < 0) {
		int r = -errno;
		close(fd);
		return r == -EINVAL ? -ENOSYS : r;
	}
	if ((api.features & features) != features) {
		close(fd);
		return -ENOSYS;
	}
	if (got)
		*got = api.features;
	return fd;
}

static char *xstrdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* Close the engine's own descriptors (userfaultfd, staging uffd, stop and
 * kick eventfds, pagemap: a fork child's would read its parent's) and mark
 * them closed. */
static void close_own_fds(struct sdrsa_engine *e)
{
	int *fds[] = { &e->uffd, &e->sfd, &e->stopfd, &e->kickfd, &e->pagemap_fd };

	for (size_t i = 0; i < ARRAY_SIZE(fds); i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
}

void sdrsa_engine_free(struct sdrsa_engine *e)
{
	if (!e)
		return;
	int internal = sdrsa_engine_internal;
	sdrsa_engine_internal = 1;
	pthread_mutex_lock(&reg_lock);
	for (struct sdrsa_engine **pp = &reg_head; *pp; pp = &(*pp)->reg_next)
		if (*pp == e) {
			*pp = e->reg_next;
			break;
		}
	pthread_mutex_unlock(&reg_lock);
	if (e->thread_started) {
		uint64_t one = 1;
		__atomic_store_n(&e->stopping, 1, __ATOMIC_RELEASE);
		if (write(e->stopfd, &one, sizeof(one)) < 0) {
			/* the handler will not stop; still join below */
		}
		pthread_join(e->thread, NULL);
	}
	struct sdrsa_region *r = e->regions;
	while (r) {
		struct sdrsa_region *next = r->next;
		struct uffdio_range rg = {.start = (uint64_t)(uintptr_t)r->addr, .len = r->size};
		if (e->uffd >= 0)
			(void)ioctl(e->uffd, UFFDIO_UNREGISTER, &rg);
		if (r->owned)
			munmap(r->addr, r->size);
		free(r);
		r = next;
	}
	if (e->store && !e->forked_child && !e->dead)
		(void)e->store->ops->free_all(e->store, NULL);
	if (!e->forked_child)
		store_free(e->store);
	for (size_t i = 0; e->ht && i < e->ht_size; i++) {
		while (e->ht[i]) {
			struct chunk *c = e->ht[i];
			e->ht[i] = c->next;
			free(c);
		}
	}
	free(e->ht);
	policy_free(e->pol);
	prefetch_free(e->pf);
	free(e->ranges);
	engine_trace_close(e);
	if (e->stg)
		munmap(e->stg, (size_t)e->stg_cap * PAGE);
	free(e->stg_state);
	free(e->spare);
	close_own_fds(e);
	for (size_t i = 0; i < e->nkids; i++)
		if (e->kids[i].fd >= 0)
			close(e->kids[i].fd);
	free(e->kids);
	free(e->deferred);
	free(e->q);
	free(e->zero);
	free(e->fbuf);
	free(e->fetch);
	free(e->fkeys);
	free(e->recycled);
	free(e->name);
	free(e->server);
	pthread_mutex_destroy(&e->lock);
	free(e);
	sdrsa_engine_internal = internal;
}

int engine_new_with_store(const struct sdrsa_engine_config *cfg, struct store *store,
			  struct sdrsa_engine **ret)
{
	int r;
	if (!cfg || !store || !ret) {
		store_free(store);
		return -EINVAL;
	}
	uint64_t budget = cfg->local_bytes / PAGE;
	if (budget < 64 || cfg->staging_pct > 50) {
		store_free(store);
		return -EINVAL;
	}
	int internal = sdrsa_engine_internal;
	sdrsa_engine_internal = 1;
	struct sdrsa_engine *e = calloc(1, sizeof(*e));
	if (!e) {
		store_free(store);
		sdrsa_engine_internal = internal;
		return -ENOMEM;
	}
	pthread_mutex_init(&e->lock, NULL);
	e->uffd = e->sfd = e->stopfd = e->kickfd = -1;
	e->pagemap_fd = -1;
	e->fork_pipe[0] = e->fork_pipe[1] = -1;
	e->startcode = read_startcode(getpid());
	e->cfg = *cfg;
	e->store = store;
	e->server = xstrdup(cfg->server);
	e->name = xstrdup(cfg->name);
	e->cfg.server = e->server;
	e->cfg.trace_path = NULL; /* only read in engine_new */
	e->cfg.name = e->name;
	if (cfg->key) {
		memcpy(e->key, cfg->key, SDRSA_KEY_SIZE);
		e->cfg.key = e->key;
	}
	const char *tf = getenv("SDRSA_TEST_FAULT");
	static const struct {
		const char *prefix;
		enum inject_kind kind;
	} faults[] = {
	    {"exit@", INJECT_EXIT},
	    {"crash@", INJECT_CRASH},
	    {"lose@", INJECT_LOSE},
	    {"misreport@", INJECT_MISREPORT},
	    {"movein-write@", INJECT_MOVEIN_WRITE},
	    {"spare-hole@", INJECT_SPARE_HOLE},
	};
	for (size_t i = 0; tf && i < ARRAY_SIZE(faults); i++) {
		size_t len = strlen(faults[i].prefix);
		if (!strncmp(tf, faults[i].prefix, len)) {
			e->inject = faults[i].kind;
			e->inject_after = strtoull(tf + len, NULL, 10);
		}
	}
	e->budget = budget;
	e->spin_us = cfg->spin_us < 0 ? 0 : cfg->spin_us ? (unsigned)cfg->spin_us : 50;
	e->batch = (uint32_t)MIN((uint64_t)BATCH_MAX, MAX(budget / 16, 1));
	unsigned pct = cfg->staging_pct ? cfg->staging_pct : 12;
	uint64_t target = budget * pct / 100;
	if (cfg->policy == SDRSA_POLICY_FIFO)
		target = 0; /* pages pass through staging straight to the server */
	target = MAX(target, (uint64_t)e->batch);
	e->stage_target = (uint32_t)target;
	/* Twice the target: slots freed out of order (refills) leave holes
	 * until the tail passes them. Address space only. */
	e->stg_cap = 2 * e->stage_target;
	/* Spares for two full fetches, within the ring's free half. */
	e->spare_max = (uint32_t)MIN(2ull * (1 + PREFETCH_MAX), (uint64_t)e->stage_target);
	e->next_key = 1;
	e->key_prefix = ((uint64_t)getpid() & ((1ull << 22) - 1)) << 42;
	e->st.budget_pages = budget;

	e->ht_size = 1024;
	e->ht = calloc(e->ht_size, sizeof(*e->ht));
	e->q = calloc(QUEUE_MAX, sizeof(*e->q));
	e->fkeys = calloc(SDRSA_MAX_BATCH, sizeof(*e->fkeys));
	e->stg_state = calloc(e->stg_cap, sizeof(*e->stg_state));
	e->spare = calloc(e->stg_cap, sizeof(*e->spare));
	e->zero = aligned_alloc(PAGE, PAGE);
	e->fbuf = aligned_alloc(PAGE, (1 + PREFETCH_MAX) * PAGE);
	e->fetch = calloc(1, sizeof(*e->fetch));
	r = policy_new(cfg->policy == SDRSA_POLICY_FIFO ? POLICY_FIFO
		       : cfg->policy == SDRSA_POLICY_2Q ? POLICY_2Q
							: POLICY_CLOCK,
		       &e->pol);
	enum prefetch_kind pk = cfg->no_prefetch || cfg->prefetch == SDRSA_PREFETCH_OFF ? PREFETCH_OFF
				: cfg->prefetch == SDRSA_PREFETCH_STREAM	      ? PREFETCH_STREAM
										      : PREFETCH_STRIDE;
	if (r == 0)
		r = prefetch_new(pk, PREFETCH_MAX, &e->pf);
	if (!e->ht || !e->q || !e->fkeys || !e->stg_state || !e->spare || !e->zero || !e->fbuf ||
	    !e->fetch || r < 0) {
		r = -ENOMEM;
		goto out_free;
	}
	if (cfg->trace_path) {
		e->trace = malloc(sizeof(*e->trace));
		if (!e->trace) {
			r = -ENOMEM;
			goto out_free;
		}
		r = trace_writer_open(e->trace, cfg->trace_path, 0);
		if (r < 0) {
			free(e->trace);
			e->trace = NULL;
			goto out_free;
		}
	}
	memset(e->zero, 0, PAGE);

	uint64_t want = UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_EVENT_REMAP |
			UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_UNMAP |
			UFFD_FEATURE_THREAD_ID | UFFD_FEATURE_MOVE;
	r = uffd_open(want, NULL);
	if (r < 0)
		goto out_free;
	e->uffd = r;
	r = uffd_open(UFFD_FEATURE_MOVE, NULL);
	if (r < 0)
		goto out_free;
	e->sfd = r;
	/* Optional: move_checked() falls back to mincore() without it. */
	e->pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	e->stg = mmap(NULL, (size_t)e->stg_cap * PAGE, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (e->stg == MAP_FAILED) {
		e->stg = NULL;
		r = -ENOMEM;
		goto out_free;
	}
	struct uffdio_register reg = {
		.range = {.start = (uint64_t)(uintptr_t)e->stg, .len = (uint64_t)e->stg_cap * PAGE},
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	if (ioctl(e->sfd, UFFDIO_REGISTER, &reg) < 0) {
		r = -errno;
		goto out_free;
	}
	e->stopfd = eventfd(0, EFD_CLOEXEC);
	e->kickfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (e->stopfd < 0 || e->kickfd < 0) {
		r = -errno;
		goto out_free;
	}
	/* The handler must not take the program's signals. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	r = -pthread_create(&e->thread, NULL, handler_main, e);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0)
		goto out_free;
	e->thread_started = 1;
	pthread_once(&reg_once, reg_atfork_install);
	pthread_mutex_lock(&reg_lock);
	e->reg_next = reg_head;
	reg_head = e;
	pthread_mutex_unlock(&reg_lock);
	*ret = e;
	sdrsa_engine_internal = internal;
	return 0;

out_free:
	sdrsa_engine_free(e);
	sdrsa_engine_internal = internal;
	return r;
}

/* The store of a pool (cfg->pool): every server with its own key or the
 * config's; desc gets "pool of N servers (A, B, ...)" for messages. */
static int engine_pool_store(const struct sdrsa_engine_config *cfg, const char *name, char *desc,
			     size_t ndesc, struct store **ret)
{
	struct sdrsa_pool_server srv[STORE_POOL_MAX];
	if (cfg->pool_size > STORE_POOL_MAX)
		return -EINVAL;
	size_t o = (size_t)snprintf(desc, ndesc, "pool of %zu servers (", cfg->pool_size);
	for (size_t i = 0; i < cfg->pool_size; i++) {
		srv[i] = cfg->pool[i];
		if (!srv[i].address)
			return -EINVAL;
		if (!srv[i].key)
			srv[i].key = cfg->key;
		if (o < ndesc)
			o += (size_t)snprintf(desc + o, ndesc - o, "%s%s", i ? ", " : "",
					      srv[i].address);
	}
	if (o < ndesc)
		snprintf(desc + o, ndesc - o, ")");
	struct store_pool_config pc = {
		.servers = srv,
		.n = cfg->pool_size,
		.replicas = cfg->replicas,
		.name = name,
		.timeout_ms = cfg->timeout_ms,
		.retry_ms = cfg->retry_ms,
		.log = cfg->log,
		.log_userdata = cfg->log_userdata,
	};
	return store_pool_new(&pc, ret);
}

int sdrsa_engine_new(const struct sdrsa_engine_config *cfg, struct sdrsa_engine **ret)
{
	if (!cfg || (!cfg->server && !cfg->pool_size) || !ret)
		return -EINVAL;
	if (cfg->local_bytes / PAGE < 64 || cfg->staging_pct > 50)
		return -EINVAL;
	char defname[SDRSA_NAME_MAX + 1];
	const char *name = cfg->name;
	if (!name) {
		char host[32] = "host";
		(void)gethostname(host, sizeof(host) - 1);
		host[sizeof(host) - 1] = 0;
		for (char *c = host; *c; c++)
			if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
			      (*c >= '0' && *c <= '9') || *c == '-' || *c == '.'))
				*c = '-';
		snprintf(defname, sizeof(defname), "sdrsa-%s-%d", host, (int)getpid());
		name = defname;
	}
	int internal = sdrsa_engine_internal;
	sdrsa_engine_internal = 1;
	struct sdrsa_client_config cc = {
		.address = cfg->server,
		.name = name,
		.key = cfg->key,
		.timeout_ms = cfg->timeout_ms,
		.log = cfg->log,
		.log_userdata = cfg->log_userdata,
	};
	struct store *s;
	struct sdrsa_engine_config c2 = *cfg;
	char desc[256];
	int r;
	if (cfg->backend == SDRSA_BACKEND_MEMCACHED && cfg->pool_size)
		r = -EINVAL; /* memcached spreads pages over its fleet itself */
	else if (cfg->backend == SDRSA_BACKEND_MEMCACHED)
		r = store_memcached_new(cfg->server, name, cfg->timeout_ms, cfg->retry_ms, &s);
	else if (cfg->pool_size)
		r = engine_pool_store(cfg, name, desc, sizeof(desc), &s);
	else
		r = store_sdrsa_new(&cc, cfg->retry_ms, &s);
	if (r >= 0) {
		c2.name = name;
		/* Messages say "memory server memcached HOST:PORT,..." or name
		 * the pool's servers. */
		if (cfg->backend == SDRSA_BACKEND_MEMCACHED) {
			snprintf(desc, sizeof(desc), "memcached %s", cfg->server);
			c2.server = desc;
		} else if (cfg->pool_size) {
			c2.server = desc;
		}
		r = engine_new_with_store(&c2, s, ret);
	}
	sdrsa_engine_internal = internal;
	return r;
}

int sdrsa_engine_manage(struct sdrsa_engine *e, void *addr, size_t len)
{
	if (!e || !addr || !len || ((uintptr_t)addr & (PAGE - 1)) || (len & (PAGE - 1)))
		return -EINVAL;
	struct uffdio_register reg = {
		.range = {.start = (uint64_t)(uintptr_t)addr, .len = len},
		.mode = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP,
	};
	if (ioctl(e->uffd, UFFDIO_REGISTER, &reg) < 0)
		return -errno;
	pthread_mutex_lock(&e->lock);
	e->managed_bytes += len;
	ranges_add(e, reg.range.start, reg.range.start + len);
	pthread_mutex_unlock(&e->lock);
	return 0;
}

int sdrsa_region_new(struct sdrsa_engine *e, size_t size, struct sdrsa_region **ret)
{
	if (!e || !size || !ret || size > (1ull << 46))
		return -EINVAL;
	size = (size + PAGE - 1) & PAGE_MASK;
	int internal = sdrsa_engine_internal;
	sdrsa_engine_internal = 1;
	int r;
	struct sdrsa_region *rg = calloc(1, sizeof(*rg));
	void *a = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (!rg || a == MAP_FAILED) {
		r = -ENOMEM;
		goto out;
	}
	struct uffdio_register reg = {
		.range = {.start = (uint64_t)(uintptr_t)a, .len = size},
		.mode = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP,
	};
	if (ioctl(e->uffd, UFFDIO_REGISTER, &reg) < 0) {
		r = -errno;
		goto out;
	}
	rg->e = e;
	rg->addr = a;
	rg->size = size;
	rg->owned = 1;
	pthread_mutex_lock(&e->lock);
	rg->next = e->regions;
	e->regions = rg;
	e->managed_bytes += size;
	ranges_add(e, (uint64_t)(uintptr_t)a, (uint64_t)(uintptr_t)a + size);
	pthread_mutex_unlock(&e->lock);
	*ret = rg;
	sdrsa_engine_internal = internal;
	return 0;
out:
	if (a != MAP_FAILED)
		munmap(a, size);
	free(rg);
	sdrsa_engine_internal = internal;
	return r;
}

void *sdrsa_region_addr(const struct sdrsa_region *r)
{
	return r ? r->addr : NULL;
}

size_t sdrsa_region_size(const struct sdrsa_region *r)
{
	return r ? r->size : 0;
}

void sdrsa_region_free(struct sdrsa_region *rg)
{
	if (!rg)
		return;
	struct sdrsa_engine *e = rg->e;
	pthread_mutex_lock(&e->lock);
	struct sdrsa_region **pp = &e->regions;
	while (*pp && *pp != rg)
		pp = &(*pp)->next;
	if (*pp)
		*pp = rg->next;
	e->managed_bytes -= rg->size;
	pthread_mutex_unlock(&e->lock);
	/* The UNMAP event makes the handler drop the pages; munmap returns
	 * once the handler has read it. Never called with the lock held. */
	munmap(rg->addr, rg->size);
	/* The handler reads the event and handles it in one locked section:
	 * once we get the lock, the pages are dropped and freed. */
	pthread_mutex_lock(&e->lock);
	pthread_mutex_unlock(&e->lock);
	free(rg);
}

static void stats_locked(struct sdrsa_engine *e, struct sdrsa_engine_stats *out)
{
	*out = e->st;
	out->managed_bytes = e->managed_bytes;
	out->resident = e->nresident;
	out->staged = e->nstaged;
	out->remote = e->nremote;
	out->dirty = e->ndirty;
	out->bytes_sent = e->store->bytes_sent;
	out->bytes_recv = e->store->bytes_recv;
	out->retries = e->store->retries;
	out->servers_total = e->store->servers_total;
	out->servers_up = e->store->servers_up;
	out->pages_under_replicated = e->store->pages_under_replicated;
	out->pages_rereplicated = e->store->pages_rereplicated;
	out->pages_lost = e->store->pages_lost;
	out->copies_bad = e->store->copies_bad;
	out->lat_p50_ns = sdrsa_hist_pct(&e->lat_all, 50);
	out->lat_p90_ns = sdrsa_hist_pct(&e->lat_all, 90);
	out->lat_p99_ns = sdrsa_hist_pct(&e->lat_all, 99);
	out->lat_max_ns = e->lat_all.max;
	out->remote_p50_ns = sdrsa_hist_pct(&e->lat_remote, 50);
	out->remote_p99_ns = sdrsa_hist_pct(&e->lat_remote, 99);
}

int sdrsa_engine_stats(struct sdrsa_engine *e, struct sdrsa_engine_stats *out)
{
	if (!e || !out)
		return -EINVAL;
	pthread_mutex_lock(&e->lock);
	stats_locked(e, out);
	pthread_mutex_unlock(&e->lock);
	return 0;
}

int sdrsa_engine_format_stats(const struct sdrsa_engine_stats *s, int json, char *buf, size_t n)
{
	if (json)
		return snprintf(
			buf, n,
			"{\"budget_pages\":%llu,\"managed_bytes\":%llu,"
			"\"faults\":{\"zero\":%llu,\"remote\":%llu,\"refill\":%llu,\"wp\":%llu,"
			"\"dup\":%llu},"
			"\"pages_in\":%llu,\"pages_prefetched\":%llu,\"pages_out\":%llu,"
			"\"pages_dropped\":%llu,\"pages_staged\":%llu,\"pages_freed\":%llu,"
			"\"bytes_sent\":%llu,\"bytes_recv\":%llu,"
			"\"resident\":%llu,\"staged\":%llu,\"remote\":%llu,\"dirty\":%llu,"
			"\"events\":%llu,\"retries\":%llu,\"writes_predicted\":%llu,"
			"\"store_refusals\":%llu,\"prefetch_unused\":%llu,"
			"\"fault_latency_ns\":{\"p50\":%llu,\"p90\":%llu,\"p99\":%llu,\"max\":%llu},"
			"\"remote_fault_latency_ns\":{\"p50\":%llu,\"p99\":%llu},"
			"\"servers_total\":%llu,\"servers_up\":%llu,"
			"\"pages_under_replicated\":%llu,\"pages_rereplicated\":%llu,"
			"\"pages_lost\":%llu,\"pages_mismatched\":%llu,\"copies_bad\":%llu}",
			(unsigned long long)s->budget_pages, (unsigned long long)s->managed_bytes,
			(unsigned long long)s->faults_zero, (unsigned long long)s->faults_remote,
			(unsigned long long)s->faults_refill, (unsigned long long)s->faults_wp,
			(unsigned long long)s->faults_dup, (unsigned long long)s->pages_in,
			(unsigned long long)s->pages_prefetched, (unsigned long long)s->pages_out,
			(unsigned long long)s->pages_dropped, (unsigned long long)s->pages_staged,
			(unsigned long long)s->pages_freed, (unsigned long long)s->bytes_sent,
			(unsigned long long)s->bytes_recv, (unsigned long long)s->resident,
			(unsigned long long)s->staged, (unsigned long long)s->remote,
			(unsigned long long)s->dirty, (unsigned long long)s->events,
			(unsigned long long)s->retries, (unsigned long long)s->writes_predicted,
			(unsigned long long)s->store_refusals,
			(unsigned long long)s->prefetch_unused, (unsigned long long)s->lat_p50_ns,
			(unsigned long long)s->lat_p90_ns, (unsigned long long)s->lat_p99_ns,
			(unsigned long long)s->lat_max_ns, (unsigned long long)s->remote_p50_ns,
			(unsigned long long)s->remote_p99_ns, (unsigned long long)s->servers_total,
			(unsigned long long)s->servers_up,
			(unsigned long long)s->pages_under_replicated,
			(unsigned long long)s->pages_rereplicated, (unsigned long long)s->pages_lost,
			(unsigned long long)s->pages_mismatched, (unsigned long long)s->copies_bad);
	int len = snprintf(buf, n,
			"faults zero %llu remote %llu refill %llu wp %llu | pages in %llu "
			"(prefetched %llu) out %llu dropped %llu | sent %.1f MiB | "
			"resident %llu staged %llu remote %llu dirty %llu (budget %llu) | "
			"fault p50 %.1f us p99 %.1f us, remote p50 %.1f us p99 %.1f us",
			(unsigned long long)s->faults_zero, (unsigned long long)s->faults_remote,
			(unsigned long long)s->faults_refill, (unsigned long long)s->faults_wp,
			(unsigned long long)s->pages_in, (unsigned long long)s->pages_prefetched,
			(unsigned long long)s->pages_out, (unsigned long long)s->pages_dropped,
			(double)s->bytes_sent / (1024.0 * 1024.0), (unsigned long long)s->resident,
			(unsigned long long)s->staged, (unsigned long long)s->remote,
			(unsigned long long)s->dirty, (unsigned long long)s->budget_pages,
			(double)s->lat_p50_ns / 1000.0, (double)s->lat_p99_ns / 1000.0,
			(double)s->remote_p50_ns / 1000.0, (double)s->remote_p99_ns / 1000.0);
	/* A pool: its health, appended so that one-server lines stay as they were. */
	if (s->servers_total > 1 && len >= 0 && (size_t)len < n)
		len += snprintf(buf + len, n - (size_t)len,
				" | servers up %llu/%llu, under-replicated %llu, re-replicated "
				"%llu, lost %llu",
				(unsigned long long)s->servers_up,
				(unsigned long long)s->servers_total,
				(unsigned long long)s->pages_under_replicated,
				(unsigned long long)s->pages_rereplicated,
				(unsigned long long)s->pages_lost);
	/* Copies that failed the end-to-end check: shown only when seen. */
	if ((s->pages_mismatched || s->copies_bad) && len >= 0 && (size_t)len < n)
		len += snprintf(buf + len, n - (size_t)len,
				" | mismatched pages %llu, bad copies %llu",
				(unsigned long long)s->pages_mismatched,
				(unsigned long long)s->copies_bad);
	return len;
}

/* ---- fork ---- */

/*
 * fork() without UFFD_FEATURE_EVENT_FORK: the kernel drops the child's
 * registration, so a page not present in the child would silently read as
 * zeros. Instead:
 *
 * - prepare (parent, before fork): take the lock (held across the fork, so
 *   the table is consistent), flag every stored key PF_FROZEN and count a
 *   pending child; create a pipe whose write end the child keeps (closed by
 *   its exec or exit, and inherited by its own fork children).
 * - parent: the child is tracked (engine_fork_pid() adds its pid). While any
 *   child lives, frozen keys are never overwritten (a dirty page is stored
 *   under a new key) nor freed (the frees wait in `deferred`).
 * - child (engine_atfork_child): a small engine of its own. Staged pages
 *   are copied back into place; pages held remotely stay REMOTE with the
 *   parent's keys (PF_BORROWED); their runs are registered with a new
 *   userfaultfd (MISSING only) and served by a new handler thread, which
 *   fetches them over its own connection (opened on first use). The child
 *   evicts nothing and manages no new memory; it never frees or writes a
 *   borrowed key.
 *
 * A child is gone for the parent when its pipe is at EOF and either it
 * exited or it exec'd (its startcode differs from ours): a program that
 * closes all its descriptors keeps the keys frozen until it exits.
 */
static uint64_t read_startcode(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	/* Field 26; the command (field 2) may hold spaces: count from ')'. */
	char *p = strrchr(buf, ')');
	if (!p)
		return 0;
	int field = 2;
	for (; *p && field < 26; p++)
		if (*p == ' ')
			field++;
	return strtoull(p, NULL, 10);
}

static void kids_thaw_if_none(struct sdrsa_engine *e)
{
	if (e->nkids || e->kids_pending || !e->ndeferred)
		return;
	for (size_t i = 0; i < e->ndeferred; i++)
		queue_free(e, e->deferred[i]);
	e->ndeferred = 0;
	flush_frees(e);
}

/* Is the child gone (exited, or exec'd), as far as our keys go? */
static int kid_done(struct sdrsa_engine *e, struct kid *k)
{
	if (!k->pipe_eof || !k->pid)
		return 0;
	if (k->fd >= 0) {
		/* A pidfd: readable once the child exited. */
		struct pollfd pf = {.fd = k->fd, .events = POLLIN};
		if (poll(&pf, 1, 0) > 0)
			return 1;
	} else if (kill(k->pid, 0) < 0 && errno == ESRCH) {
		return 1;
	}
	uint64_t sc = read_startcode(k->pid);
	return sc && e->startcode && sc != e->startcode;
}

/* Look at the children (their pipes and pidfds are in the handler's poll
 * set, or the handler is idle); forget the ones that are gone. */
static void kids_check(struct sdrsa_engine *e)
{
	for (size_t i = 0; i < e->nkids;) {
		struct kid *k = &e->kids[i];
		if (!k->pipe_eof) {
			char b;
			ssize_t n = read(k->fd, &b, 1);
			if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
				close(k->fd);
				k->fd = -1;
				k->pipe_eof = 1;
				if (k->pid)
					k->fd = (int)syscall(SYS_pidfd_open, k->pid, 0);
			}
		}
		if (kid_done(e, k)) {
			if (k->fd >= 0)
				close(k->fd);
			e->kids[i] = e->kids[--e->nkids];
			continue;
		}
		i++;
	}
	kids_thaw_if_none(e);
}

static void engine_atfork_prepare(struct sdrsa_engine *e)
{
	pthread_mutex_lock(&e->lock);
	if (e->dead)
		return;
	for (size_t i = 0; i < e->ht_size; i++)
		for (struct chunk *c = e->ht[i]; c; c = c->next)
			for (unsigned j = 0; j < CHUNK_PAGES; j++)
				if ((c->p[j].flags & (PF_STORED | PF_BORROWED)) == PF_STORED)
					c->p[j].flags |= PF_FROZEN;
	e->kids_pending++;
	if (pipe2(e->fork_pipe, O_CLOEXEC) < 0)
		e->fork_pipe[0] = e->fork_pipe[1] = -1;
}

static void engine_atfork_parent(struct sdrsa_engine *e)
{
	if (!e->dead && e->fork_pipe[0] >= 0) {
		close(e->fork_pipe[1]);
		if (e->nkids == e->kids_cap) {
			size_t ncap = e->kids_cap ? e->kids_cap * 2 : 8;
			struct kid *n = realloc(e->kids, ncap * sizeof(*n));
			if (n) {
				e->kids = n;
				e->kids_cap = ncap;
			}
		}
		if (e->nkids < e->kids_cap) {
			fcntl(e->fork_pipe[0], F_SETFL, O_NONBLOCK);
			e->kids[e->nkids++] = (struct kid){.fd = e->fork_pipe[0]};
		} else {
			close(e->fork_pipe[0]); /* cannot track it: stays pending */
			e->kids_pending++;
		}
		e->fork_pipe[0] = e->fork_pipe[1] = -1;
	}
	pthread_mutex_unlock(&e->lock);
}

/* The child's pid (or -1 if fork failed), for one engine. */
static void engine_fork_pid(struct sdrsa_engine *e, pid_t pid)
{
	pthread_mutex_lock(&e->lock);
	if (e->kids_pending)
		e->kids_pending--;
	if (pid > 0) {
		/* The newest child without a pid is this one. */
		for (size_t i = e->nkids; i-- > 0;)
			if (!e->kids[i].pid) {
				e->kids[i].pid = pid;
				break;
			}
	}
	kids_check(e);
	pthread_mutex_unlock(&e->lock);
	/* The handler's poll set changed. */
	uint64_t one = 1;
	if (e->kickfd >= 0 && write(e->kickfd, &one, sizeof(one)) < 0) {
		/* it will notice on its next wake-up */
	}
}

static int register_range(int fd, uint64_t a, uint64_t len)
{
	struct uffdio_register reg = {
		.range = {.start = a, .len = len},
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	return ioctl(fd, UFFDIO_REGISTER, &reg) < 0 ? -errno : 0;
}

static void *handler_main(void *arg);

static void child_stop(const char *msg)
{
	if (write(2, msg, strlen(msg)) < 0) {
		/* exiting anyway */
	}
	_exit(127);
}

static void engine_atfork_child(struct sdrsa_engine *e)
{
	int was_dead = e->dead;
	e->forked_child = 1;
	e->thread_started = 0;
	e->nkids = 0;
	e->kids_pending = 0;
	for (size_t i = 0; i < e->nkids; i++)
		if (e->kids[i].fd >= 0)
			close(e->kids[i].fd); /* the parent's children are not ours */
	e->nkids = 0;
	if (e->fork_pipe[0] >= 0)
		close(e->fork_pipe[0]); /* keep the write end: closed by exec/exit */
	e->fork_pipe[0] = e->fork_pipe[1] = -1;
	e->ndeferred = 0;
	if (e->trace) {
		/* The parent's trace: its buffered records are the parent's
		 * to write; this process records nothing. */
		close(e->trace->fd);
		trace_writer_drop(e->trace);
		free(e->trace);
		e->trace = NULL;
	}
	/* The parent's descriptors: this process's copies only. */
	close_own_fds(e);
	if (e->store && e->store->ops->fork_child)
		e->store->ops->fork_child(e->store);

	/* Staged pages back into place (plain memory now); stored keys are
	 * the parent's. */
	for (size_t i = 0; i < e->ht_size; i++) {
		for (struct chunk *c = e->ht[i]; c; c = c->next) {
			for (unsigned j = 0; j < CHUNK_PAGES; j++) {
				struct pent *p = &c->p[j];
				uint64_t a = c->base + (uint64_t)j * PAGE;
				if (p->state == PS_STAGED) {
					memcpy((void *)(uintptr_t)a, stg_ptr(e, p->sslot), PAGE);
					p->state = PS_RESIDENT;
				}
				if (p->flags & PF_STORED)
					p->flags |= PF_BORROWED;
				p->flags &= (uint8_t)~PF_FROZEN;
			}
		}
	}
	if (e->stg) {
		munmap(e->stg, (size_t)e->stg_cap * PAGE);
		e->stg = NULL;
	}

	/* A userfaultfd of our own over the runs of remote pages. */
	uint64_t want = UFFD_FEATURE_EVENT_REMAP | UFFD_FEATURE_EVENT_REMOVE |
			UFFD_FEATURE_EVENT_UNMAP | UFFD_FEATURE_THREAD_ID;
	int fd = was_dead ? -1 : uffd_open(want, NULL);
	int protect_only = fd < 0 || !e->store;
	e->uffd = fd;
	for (size_t i = 0; i < e->ht_size; i++) {
		for (struct chunk *c = e->ht[i]; c; c = c->next) {
			for (unsigned j = 0; j < CHUNK_PAGES; j++) {
				if (c->p[j].state != PS_REMOTE)
					continue;
				unsigned k = j;
				while (k < CHUNK_PAGES && c->p[k].state == PS_REMOTE)
					k++;
				uint64_t a = c->base + (uint64_t)j * PAGE, len = (uint64_t)(k - j) * PAGE;
				if (protect_only || register_range(fd, a, len) < 0) {
					/* Cannot serve them: unreadable, never zeros. */
					for (unsigned q = j; q < k; q++)
						c->p[q].state = PS_LOST;
					if (mprotect((void *)(uintptr_t)a, len, PROT_NONE) < 0)
						child_stop("sdrsa: fork(): cannot protect the pages this "
							   "child cannot read (too many mappings); child "
							   "stopped\n");
				}
				j = k - 1;
			}
		}
	}
	e->dead = was_dead || protect_only;
	if (!e->dead) {
		e->stopfd = eventfd(0, EFD_CLOEXEC);
		sigset_t all, old;
		sigfillset(&all);
		pthread_sigmask(SIG_BLOCK, &all, &old);
		int r = e->stopfd >= 0 ? pthread_create(&e->thread, NULL, handler_main, e) : -1;
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (r != 0)
			child_stop("sdrsa: fork(): cannot start the paging engine's thread in the "
				   "child; child stopped\n");
		e->thread_started = 1;
	}
	pthread_mutex_unlock(&e->lock);
}

static void reg_prepare(void)
{
	pthread_mutex_lock(&reg_lock);
	for (struct sdrsa_engine *e = reg_head; e; e = e->reg_next)
		engine_atfork_prepare(e);
}

static void reg_parent(void)
{
	for (struct sdrsa_engine *e = reg_head; e; e = e->reg_next)
		engine_atfork_parent(e);
	pthread_mutex_unlock(&reg_lock);
}

static void reg_child(void)
{
	for (struct sdrsa_engine *e = reg_head; e; e = e->reg_next)
		engine_atfork_child(e);
	pthread_mutex_unlock(&reg_lock);
}

static void reg_atfork_install(void)
{
	pthread_atfork(reg_prepare, reg_parent, reg_child);
}

void sdrsa_engine_forked(pid_t child)
{
	if (child == 0)
		return;
	int internal = sdrsa_engine_internal;
	sdrsa_engine_internal = 1;
	pthread_mutex_lock(&reg_lock);
	for (struct sdrsa_engine *e = reg_head; e; e = e->reg_next)
		engine_fork_pid(e, child);
	pthread_mutex_unlock(&reg_lock);
	sdrsa_engine_internal = internal;
}

int engine_is_child(const struct sdrsa_engine *e)
{
	return e->forked_child;
}

int engine_is_lost_in_child(struct sdrsa_engine *e, uintptr_t addr)
{
	if (!e->forked_child)
		return 0;
	struct pent *p = pt_get(e, addr & PAGE_MASK);
	return p && p->state == PS_LOST;
}

/*
 * The process is exiting (the preload library's destructor, when no rsa-app
 * frees the namespace afterwards): free every page this engine stored on the
 * server. Local pages keep their data and nothing is evicted any more; pages
 * held only remotely become GONE: a touch after this point (a later
 * destructor, a thread still running) never reads zeros or stale data (see
 * fault_missing). Returns the number of pages freed.
 */
uint64_t engine_release_at_exit(struct sdrsa_engine *e)
{
	uint64_t n = 0;
	pthread_mutex_lock(&e->lock);
	if (e->dead || e->exiting || e->forked_child) {
		pthread_mutex_unlock(&e->lock);
		return 0;
	}
	e->exiting = 1;
	e->exit_tid = (uint32_t)syscall(SYS_gettid);
	for (size_t i = 0; i < e->ht_size; i++) {
		for (struct chunk *c = e->ht[i]; c; c = c->next) {
			for (unsigned j = 0; j < CHUNK_PAGES; j++) {
				struct pent *p = &c->p[j];
				if (!(p->flags & PF_STORED) || is_frozen(e, p))
					continue; /* a fork child may still read a frozen key */
				e->fkeys[e->nfkeys++] = p->key;
				if (e->nfkeys == SDRSA_MAX_BATCH)
					flush_frees(e);
				p->flags &= (uint8_t)~PF_STORED;
				n++;
				if (p->state == PS_REMOTE) {
					p->state = PS_GONE;
					e->nremote--;
				}
			}
		}
	}
	flush_frees(e);
	pthread_mutex_unlock(&e->lock);
	return n;
}

int engine_trace_close(struct sdrsa_engine *e)
{
	if (!e->trace)
		return 0;
	int locked = e->thread_started;
	if (locked)
		pthread_mutex_lock(&e->lock);
	struct trace_writer *t = e->trace;
	e->trace = NULL;
	if (locked)
		pthread_mutex_unlock(&e->lock);
	int r = e->forked_child ? 0 : trace_writer_close(t);
	free(t);
	if (r < 0)
		elog(e, SDRSA_LOG_WARN, "cannot write the fault trace: %s", strerror(-r));
	return r;
}

uint64_t engine_moves_misreported(struct sdrsa_engine *e)
{
	pthread_mutex_lock(&e->lock);
	uint64_t n = e->moves_misreported;
	pthread_mutex_unlock(&e->lock);
	return n;
}

uint64_t engine_local_pages(struct sdrsa_engine *e)
{
	pthread_mutex_lock(&e->lock);
	uint64_t n = local_pages(e);
	pthread_mutex_unlock(&e->lock);
	return n;
}

int engine_uffd(const struct sdrsa_engine *e)
{
	return e->uffd;
}

void engine_movein_counts(struct sdrsa_engine *e, uint64_t *moved, uint64_t *raced)
{
	pthread_mutex_lock(&e->lock);
	*moved = e->movein_pages;
	*raced = e->movein_raced;
	pthread_mutex_unlock(&e->lock);
}

uint64_t engine_spare_holes(struct sdrsa_engine *e)
{
	pthread_mutex_lock(&e->lock);
	uint64_t n = e->spare_holes;
	pthread_mutex_unlock(&e->lock);
	return n;
}

int engine_page_key(struct sdrsa_engine *e, uintptr_t addr, uint64_t *key)
{
	pthread_mutex_lock(&e->lock);
	struct pent *p = pt_get(e, (uint64_t)addr & PAGE_MASK);
	int r = p && p->state == PS_REMOTE ? 0 : -ENOENT;
	if (r == 0)
		*key = p->key;
	pthread_mutex_unlock(&e->lock);
	return r;
}
