/* SPDX-License-Identifier: MIT */
/*
 * The VM pager: see pager.h for the states and the rules. Layout: one byte
 * of state and one of flags per guest page, a policy slot (RES, STAGED) and
 * a staging slot (STAGED) per page in two uint32 arrays, and the checksum of
 * the copy last stored (STORED) in a third: 14 bytes per 4 KiB page, 3.5 MiB
 * for a 1 GiB guest. The staging area and the eviction batch
 * buffer are allocated once; nothing is allocated per fault.
 *
 * Victim choice is the paging engine's policy module (src/engine/policy.h):
 * CLOCK over local pages with a staged (second chance) list; a page touched
 * while staged comes back hot and survives the next sweep, and a page
 * written after a clean install is marked hot too.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "common/hist.h"
#include "common/util.h"
#include "engine/policy.h"
#include "engine/store.h"
#include "vm/pager.h"

#define PAGE 4096u
#define BATCH 64u	/* pages per eviction or staging round */
#define FAULT_BATCH 16u /* pages evicted inline by a fault that finds no room */
#define MAX_WATCH PAGER_MAX_WATCH
#define PREFETCH_MAX 32u	      /* pages fetched ahead of a sequential remote fault */
#define NSTREAMS 4		      /* sequential fault streams followed at once */
#define FULL_BACKOFF_NS 1000000000ULL /* after the server refused a page */

enum { S_ZERO = 0, S_RES, S_STAGED, S_REMOTE };
#define F_DIRTY 0x01
#define F_STORED 0x02
#define F_WATCH 0x04

/* A run of remote faults on consecutive pages, up or down. */
struct stream {
	uint64_t last;	/* the last page fetched for it (prefetched pages included) */
	int dir;	/* +1, -1, 0: not known yet */
	unsigned hits;	/* consecutive faults that followed it */
	uint64_t stamp; /* last use, for replacement */
};

struct wsess {
	int used;
	uint64_t pg, gpa;
	uint64_t settle_ns;
	uint64_t rearm_at; /* send the page back at this time; 0: not pending */
	pager_emit_fn emit;
	void *ctx;
	uint64_t reads, writes;
};

struct pager {
	struct pager_config cfg;
	uint8_t *st, *fl;
	uint32_t *pslot; /* policy slot, RES and STAGED */
	uint32_t *sslot; /* staging slot, STAGED */
	/* STORED: 32 bits of sdrsa_page_csum() of the copy the server took,
	 * compared with every page fetched back (pager_why says what differed). */
	uint32_t *ssum;
	char why[160]; /* the detail of the last fatal error, or "" */
	struct policy *pol;

	uint8_t *stg; /* staging area: stage_cap pages */
	uint32_t stage_cap;
	uint32_t *stg_free; /* free staging slots (a stack) */
	uint32_t nfree;

	uint8_t *bbuf; /* eviction batch: BATCH pages */
	uint8_t *fbuf; /* 1 + PREFETCH_MAX pages for fetches */
	struct stream streams[NSTREAMS];
	uint64_t stamp;
	uint64_t low; /* background eviction target (RES + STAGED) */

	uint64_t n_res, n_stg, n_remote, n_dirty;
	uint64_t refused;	     /* puts the server refused (pool full, quota) */
	uint64_t full_until;	     /* no eviction before this time (ns) after a refusal */
	struct sdrsa_engine_stats s; /* counters (the gauges are filled on demand) */
	struct sdrsa_hist lat, rlat;	     /* fault service times, all and remote, ns */

	struct wsess w[MAX_WATCH];
	int nwatch;
};

static const uint8_t zero_page[PAGE] __attribute__((aligned(4096)));

static uint64_t now_ns(void)
{
	return sdrsa_now_ns();
}

int pager_new(const struct pager_config *cfg, struct pager **ret)
{
	struct pager *p;
	uint64_t n = cfg->npages;

	if (!n || !cfg->store || !cfg->ops || cfg->budget_pages < 16 || cfg->staging_pct > 50 ||
	    n > (1ULL << 32))
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->cfg = *cfg;
	p->st = calloc(n, 1);
	p->fl = calloc(n, 1);
	p->pslot = calloc(n, sizeof(uint32_t));
	p->sslot = calloc(n, sizeof(uint32_t));
	p->ssum = calloc(n, sizeof(uint32_t));
	p->stage_cap =
	    cfg->budget_pages >= 64 ? (uint32_t)(cfg->budget_pages * cfg->staging_pct / 100) : 0;
	p->stg_free = calloc(p->stage_cap + 1, sizeof(uint32_t));
	p->bbuf = aligned_alloc(PAGE, BATCH * PAGE);
	p->fbuf = aligned_alloc(PAGE, (1 + PREFETCH_MAX) * PAGE);
	if (!p->st || !p->fl || !p->pslot || !p->sslot || !p->ssum || !p->stg_free || !p->bbuf ||
	    !p->fbuf)
		goto out_nomem;
	if (p->stage_cap) {
		p->stg = mmap(NULL, (size_t)p->stage_cap * PAGE, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (p->stg == MAP_FAILED) {
			p->stg = NULL;
			goto out_nomem;
		}
	}
	for (uint32_t i = p->stage_cap; i-- > 0;)
		p->stg_free[p->nfree++] = i;
	if (policy_new(cfg->twoq ? POLICY_2Q : cfg->fifo ? POLICY_FIFO : POLICY_CLOCK, &p->pol) < 0)
		goto out_nomem;
	{
		uint64_t head = cfg->budget_pages / 32;

		head = head < 1 ? 1 : head > BATCH ? BATCH : head;
		p->low = cfg->budget_pages - head;
	}
	p->s.budget_pages = cfg->budget_pages;
	p->s.managed_bytes = n * PAGE;
	*ret = p;
	return 0;

out_nomem:
	pager_free(p);
	return -ENOMEM;
}

void pager_free(struct pager *p)
{
	if (!p)
		return;
	policy_free(p->pol);
	if (p->stg)
		munmap(p->stg, (size_t)p->stage_cap * PAGE);
	free(p->st);
	free(p->fl);
	free(p->pslot);
	free(p->sslot);
	free(p->ssum);
	free(p->stg_free);
	free(p->bbuf);
	free(p->fbuf);
	free(p);
}

static void lat_add(struct pager *p, uint64_t ns, int remote)
{
	sdrsa_hist_add(&p->lat, ns);
	if (remote)
		sdrsa_hist_add(&p->rlat, ns);
}

static void set_dirty(struct pager *p, uint64_t pg)
{
	if (!(p->fl[pg] & F_DIRTY)) {
		p->fl[pg] |= F_DIRTY;
		p->n_dirty++;
	}
}

static void clear_dirty(struct pager *p, uint64_t pg)
{
	if (p->fl[pg] & F_DIRTY) {
		p->fl[pg] &= (uint8_t)~F_DIRTY;
		p->n_dirty--;
	}
}

static uint8_t *stg_page(struct pager *p, uint32_t slot)
{
	return p->stg + (size_t)slot * PAGE;
}

/*
 * Fetch pages pgs[0..n) into bufs, each of which must be the copy the pager
 * stored last. libsdrsa has checked that the server sent what it holds;
 * this checks that what it holds is ours and current (not a copy a late
 * write put back, nor another client's data under our key): anything else
 * stops the guest. A store with several copies of a page (a pool) is told
 * which version is wanted, so that it reads another copy when one is not it;
 * the checksum compared is the store's when it hands one over.
 */
static int fetch_checked(struct pager *p, const uint64_t *pgs, void *const *bufs, size_t n)
{
	struct store *s = p->cfg.store;
	uint64_t keys[1 + PREFETCH_MAX], sums[1 + PREFETCH_MAX];
	uint32_t want[1 + PREFETCH_MAX];
	int r;

	for (size_t i = 0; i < n; i++) {
		keys[i] = pgs[i] * PAGE;
		want[i] = p->ssum[pgs[i]];
	}
	r = store_get_want(s, keys, want, bufs, n, store_arrived_ignore, NULL, sums);
	for (size_t i = 0; r == 0 && i < n; i++) {
		uint32_t got = (uint32_t)(store_fills_csums(s) ? sums[i]
							       : sdrsa_page_csum(bufs[i], keys[i]));

		if (got == want[i])
			continue;
		snprintf(p->why, sizeof(p->why),
			 "guest page %llu came back from the memory server different from the "
			 "copy stored (checksum %08x, stored %08x)",
			 (unsigned long long)pgs[i], got, want[i]);
		r = -EBADMSG;
	}
	return r;
}

const char *pager_why(const struct pager *p)
{
	return p->why[0] ? p->why : NULL;
}

/* A page became local (RES) after a fault: give it a policy slot. */
static int make_resident(struct pager *p, uint64_t pg)
{
	int64_t slot;

	p->st[pg] = S_RES;
	p->n_res++;
	if (p->fl[pg] & F_WATCH)
		return 0;
	slot = policy_on_fault(p->pol, pg);
	if (slot < 0)
		return (int)slot;
	p->pslot[pg] = (uint32_t)slot;
	return 0;
}

int pager_adopt(struct pager *p, uint64_t pg)
{
	if (pg >= p->cfg.npages || p->st[pg] != S_ZERO)
		return -EINVAL;
	set_dirty(p, pg);
	return make_resident(p, pg);
}

/* The state after a page left: REMOTE when the server has its current
 * data, ZERO when it was never stored and is clean (all zeros). */
static void became_nonlocal(struct pager *p, uint64_t pg)
{
	if (p->fl[pg] & F_STORED) {
		p->st[pg] = S_REMOTE;
		p->n_remote++;
	} else {
		p->st[pg] = S_ZERO;
	}
}

/* Put staged page pg back into the guest from its staging slot (wp:
 * write-protected, so that its first write faults) and free the slot: the
 * page is resident again. 0 or the backend's -errno. */
static int unstage(struct pager *p, uint64_t pg, int wp)
{
	uint32_t s = p->sslot[pg];
	int r = p->cfg.ops->install(p->cfg.be, pg, stg_page(p, s), wp);

	if (r < 0 && r != -EEXIST)
		return r;
	p->stg_free[p->nfree++] = s;
	p->n_stg--;
	p->n_res++;
	p->st[pg] = S_RES;
	return 0;
}

/* A victim the server refused (its pool is full, or our quota): it stays
 * local, over the budget, rather than the guest being stopped. A staged
 * page goes back into the guest (a dirty install, no fault needed). */
static int keep_local(struct pager *p, uint64_t pg, uint32_t slot)
{
	if (p->st[pg] == S_STAGED) {
		int r = unstage(p, pg, 0);

		if (r < 0)
			return r;
	}
	/* A protected dirty page: its next write is a WP fault, unprotected then. */
	policy_requeue(p->pol, slot);
	return 0;
}

/* Evict up to want pages (staged ones first). Returns the number evicted
 * (0: nothing could be), or -errno (fatal). */
static int evict_some(struct pager *p, size_t want)
{
	uint32_t slots[BATCH];
	uint64_t pgs[BATCH], keys[BATCH];
	const void *ptrs[BATCH];
	int sendidx[BATCH], results[BATCH];
	uint64_t sums[BATCH];
	size_t n, i, nsend = 0;
	int r, evicted = 0;

	if (want > BATCH)
		want = BATCH;
	n = policy_pick_evict(p->pol, slots, pgs, want);
	for (i = 0; i < n; i++) {
		uint64_t pg = pgs[i];

		sendidx[i] = -1;
		if (!(p->fl[pg] & F_DIRTY))
			continue;
		if (p->st[pg] == S_RES) {
			uint8_t *buf = p->bbuf + nsend * PAGE;

			/* Protect first: a write during the copy waits in a fault. */
			r = p->cfg.ops->protect(p->cfg.be, pg, 1);
			if (r == 0)
				r = p->cfg.ops->read(p->cfg.be, pg, buf);
			if (r < 0)
				return r;
			ptrs[nsend] = buf;
		} else {
			ptrs[nsend] = stg_page(p, p->sslot[pg]);
		}
		keys[nsend] = pg * PAGE;
		sendidx[i] = (int)nsend++;
	}
	if (nsend) {
		for (i = 0; i < nsend; i++)
			results[i] = 0;
		r = store_put_csum(p->cfg.store, keys, ptrs, nsend, results, sums);
		if (r < 0 && r != -ENOSPC && r != -EDQUOT)
			return r;
		if (r < 0)
			p->full_until = now_ns() + FULL_BACKOFF_NS;
	}
	for (i = 0; i < n; i++) {
		uint64_t pg = pgs[i];

		if (sendidx[i] >= 0) {
			if (results[sendidx[i]] < 0) {
				r = keep_local(p, pg, slots[i]);
				if (r < 0)
					return r;
				p->refused++;
				continue;
			}
			p->s.pages_out++;
			p->s.bytes_sent += PAGE;
			p->fl[pg] |= F_STORED;
			p->ssum[pg] = (uint32_t)sums[sendidx[i]];
			clear_dirty(p, pg);
		} else {
			p->s.pages_dropped++; /* clean: the server or zeros have it */
		}
		if (p->st[pg] == S_RES) {
			r = p->cfg.ops->drop(p->cfg.be, pg, 1);
			if (r < 0)
				return r;
			p->n_res--;
		} else {
			p->stg_free[p->nfree++] = p->sslot[pg];
			p->n_stg--;
		}
		policy_remove(p->pol, slots[i]);
		became_nonlocal(p, pg);
		evicted++;
	}
	return evicted;
}

/* Move up to want local pages to the staging area (their data kept here). */
static int stage_some(struct pager *p, size_t want)
{
	uint32_t slots[BATCH];
	uint64_t pgs[BATCH];
	size_t n, i;
	int r;

	if (want > BATCH)
		want = BATCH;
	if (want > p->nfree)
		want = p->nfree;
	n = policy_pick_stage(p->pol, slots, pgs, want);
	for (i = 0; i < n; i++) {
		uint64_t pg = pgs[i];
		uint32_t s = p->stg_free[--p->nfree];

		/* Clean pages are write-protected since their install. */
		r = p->fl[pg] & F_DIRTY ? p->cfg.ops->protect(p->cfg.be, pg, 1) : 0;
		if (r == 0)
			r = p->cfg.ops->read(p->cfg.be, pg, stg_page(p, s));
		if (r == 0)
			r = p->cfg.ops->drop(p->cfg.be, pg, 1);
		if (r < 0) {
			p->nfree++;
			return r;
		}
		p->sslot[pg] = s;
		p->st[pg] = S_STAGED;
		p->n_res--;
		p->n_stg++;
		p->s.pages_staged++;
	}
	return (int)n;
}

/* Make room for need more local pages. */
static int make_room(struct pager *p, uint64_t need)
{
	if (p->full_until && now_ns() < p->full_until)
		return 0; /* the server refused pages a moment ago: stay over budget */
	while (p->n_res + p->n_stg + need > p->cfg.budget_pages) {
		int r;

		/* Pages get their second chance in staging before they go. */
		if (p->nfree && p->n_stg < p->stage_cap) {
			r = stage_some(p, p->stage_cap - p->n_stg);
			if (r < 0)
				return r;
		}
		r = evict_some(p, FAULT_BATCH);

		if (r <= 0)
			return r; /* 0: nothing evictable (only watched pages) */
	}
	return 0;
}

/* ---- watch ---- */

static void fmt_time(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	snprintf(buf, len, "%02d:%02d:%02d.%06ld", tm.tm_hour, tm.tm_min, tm.tm_sec,
		 ts.tv_nsec / 1000);
}

static void emit_all(struct pager *p, uint64_t pg, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void emit_all(struct pager *p, uint64_t pg, const char *fmt, ...)
{
	char line[512], t[32];
	va_list ap;
	int n;

	fmt_time(t, sizeof(t));
	n = snprintf(line, sizeof(line), "%s ", t);
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	for (int i = 0; i < MAX_WATCH; i++)
		if (p->w[i].used && p->w[i].pg == pg)
			p->w[i].emit(p->w[i].ctx, line);
}

static uint64_t watch_gpa(const struct pager *p, uint64_t pg)
{
	for (int i = 0; i < MAX_WATCH; i++)
		if (p->w[i].used && p->w[i].pg == pg)
			return p->w[i].gpa;
	return pg * PAGE;
}

/* upload_some_ram: send a watched page to the server and take it out of
 * the guest, so that the next access faults. A local page leaves the guest
 * first (protect, copy, drop: a few microseconds) and is sent afterwards,
 * so the window in which an access goes unseen is short; if the server
 * refuses it (full), it goes back in. */
static int watch_upload(struct pager *p, uint64_t pg)
{
	uint64_t t0 = now_ns(), key = pg * PAGE, sum = 0;
	const void *data = NULL;
	uint8_t st = p->st[pg];
	int r = 0, res = 0;

	for (int i = 0; i < MAX_WATCH; i++)
		if (p->w[i].used && p->w[i].pg == pg)
			p->w[i].rearm_at = 0;
	switch (st) {
	case S_RES:
		r = p->cfg.ops->protect(p->cfg.be, pg, 1);
		if (r == 0)
			r = p->cfg.ops->read(p->cfg.be, pg, p->fbuf);
		if (r == 0)
			r = p->cfg.ops->drop(p->cfg.be, pg, 1);
		if (r < 0)
			return r;
		p->n_res--;
		data = p->fbuf;
		break;
	case S_STAGED:
		data = stg_page(p, p->sslot[pg]);
		break;
	case S_ZERO:
		data = zero_page;
		break;
	case S_REMOTE: /* never dirty: the server has it */
		emit_all(p, pg,
			 "upload_some_ram gpa=0x%llx bytes=0 (already on the memory "
			 "server)",
			 (unsigned long long)watch_gpa(p, pg));
		return 0;
	}
	r = store_put_csum(p->cfg.store, &key, &data, 1, &res, &sum);
	if (r == 0)
		r = res;
	if (r == -ENOSPC || r == -EDQUOT) {
		int perr = r;

		p->refused++;
		if (st == S_RES) { /* put it back */
			r = p->cfg.ops->install(p->cfg.be, pg, p->fbuf, 0);
			if (r < 0 && r != -EEXIST)
				return r;
			p->n_res++;
			set_dirty(p, pg);
		}
		emit_all(p, pg,
			 "upload_some_ram gpa=0x%llx failed: %s; the page stays in the guest",
			 (unsigned long long)watch_gpa(p, pg),
			 perr == -ENOSPC ? "the memory server is full"
					 : "our quota on the server is used up");
		return 0;
	}
	if (r < 0)
		return r;
	p->s.pages_out++;
	p->s.bytes_sent += PAGE;
	p->fl[pg] |= F_STORED;
	p->ssum[pg] = (uint32_t)sum;
	clear_dirty(p, pg);
	if (st == S_STAGED) {
		p->stg_free[p->nfree++] = p->sslot[pg];
		p->n_stg--;
	}
	p->st[pg] = S_REMOTE;
	p->n_remote++;
	emit_all(p, pg,
		 "upload_some_ram gpa=0x%llx bytes=%u us=%llu (sent to the memory server; "
		 "the page left the guest)",
		 (unsigned long long)watch_gpa(p, pg), PAGE,
		 (unsigned long long)((now_ns() - t0) / 1000));
	return 0;
}

static int watch_fault(struct pager *p, uint64_t pg, enum pager_access kind)
{
	uint64_t t0 = now_ns(), when;
	int write = kind != PAGER_READ, r;

	if (p->st[pg] == S_RES && kind != PAGER_WP) {
		/* As in pager_fault: a second thread's fault, or a vanished page. */
		r = p->cfg.ops->install(p->cfg.be, pg, zero_page, kind == PAGER_READ);
		if (r < 0 && r != -EEXIST)
			return r;
		if (r == 0) {
			set_dirty(p, pg);
			return 0;
		}
		if (kind == PAGER_READ) {
			p->s.faults_dup++;
			return 0;
		}
	}
	for (int i = 0; i < MAX_WATCH; i++) {
		struct wsess *w = &p->w[i];
		char t[32];
		char line[256];

		if (!w->used || w->pg != pg)
			continue;
		if (write)
			w->writes++;
		else
			w->reads++;
		fmt_time(t, sizeof(t));
		snprintf(line, sizeof(line), "%s %s gpa=0x%llx count=%llu reads=%llu writes=%llu%s",
			 t, write ? "write" : "read", (unsigned long long)w->gpa,
			 (unsigned long long)(w->reads + w->writes), (unsigned long long)w->reads,
			 (unsigned long long)w->writes,
			 kind == PAGER_WP ? " (first write after a read)" : "");
		w->emit(w->ctx, line);
	}
	switch (p->st[pg]) {
	case S_RES: /* a write to the page it had read (installed protected) */
		p->s.faults_wp++;
		set_dirty(p, pg);
		r = p->cfg.ops->unprotect(p->cfg.be, pg);
		if (r < 0)
			return r;
		break;
	case S_REMOTE: {
		void *buf = p->fbuf;

		r = make_room(p, 1);
		if (r < 0)
			return r;
		r = fetch_checked(p, &pg, &buf, 1);
		if (r < 0)
			return r;
		p->s.faults_remote++;
		p->s.pages_in++;
		p->s.bytes_recv += PAGE;
		emit_all(p, pg,
			 "download_more_ram gpa=0x%llx bytes=%u us=%llu (fetched from the "
			 "memory server, checksum ok)",
			 (unsigned long long)watch_gpa(p, pg), PAGE,
			 (unsigned long long)((now_ns() - t0) / 1000));
		r = p->cfg.ops->install(p->cfg.be, pg, buf, !write);
		if (r < 0 && r != -EEXIST)
			return r;
		p->n_remote--;
		if (write)
			set_dirty(p, pg);
		r = make_resident(p, pg);
		if (r < 0)
			return r;
		lat_add(p, now_ns() - t0, 1);
		break;
	}
	default: /* ZERO or STAGED: not reached while watched (uploaded at start) */
		r = make_room(p, 1);
		if (r < 0)
			return r;
		r = p->cfg.ops->install(
		    p->cfg.be, pg, p->st[pg] == S_STAGED ? stg_page(p, p->sslot[pg]) : zero_page,
		    !write);
		if (r < 0 && r != -EEXIST)
			return r;
		if (p->st[pg] == S_STAGED) {
			p->stg_free[p->nfree++] = p->sslot[pg];
			p->n_stg--;
		}
		if (write)
			set_dirty(p, pg);
		r = make_resident(p, pg);
		if (r < 0)
			return r;
		break;
	}
	when = now_ns();
	for (int i = 0; i < MAX_WATCH; i++)
		if (p->w[i].used && p->w[i].pg == pg)
			p->w[i].rearm_at = when + p->w[i].settle_ns + (p->w[i].settle_ns == 0);
	return 0;
}

int pager_watch_add(struct pager *p, uint64_t pg, uint64_t gpa, uint64_t settle_ns,
		    pager_emit_fn emit, void *ctx)
{
	int id = -1, shared = 0;

	if (pg >= p->cfg.npages || !emit)
		return -EINVAL;
	for (int i = 0; i < MAX_WATCH; i++) {
		if (!p->w[i].used && id < 0)
			id = i;
		if (p->w[i].used && p->w[i].pg == pg)
			shared = 1;
	}
	if (id < 0)
		return -EBUSY;
	if (!shared) {
		/* Out of the policy: the watch decides when it leaves. */
		if (p->st[pg] == S_RES || p->st[pg] == S_STAGED)
			policy_remove(p->pol, p->pslot[pg]);
		p->fl[pg] |= F_WATCH;
	}
	p->w[id] = (struct wsess){
	    .used = 1, .pg = pg, .gpa = gpa, .settle_ns = settle_ns, .emit = emit, .ctx = ctx};
	p->nwatch++;
	if (!shared) {
		int r = watch_upload(p, pg);

		if (r < 0)
			return r;
	}
	return id;
}

void pager_watch_remove(struct pager *p, int id)
{
	uint64_t pg;

	if (id < 0 || id >= MAX_WATCH || !p->w[id].used)
		return;
	pg = p->w[id].pg;
	p->w[id].used = 0;
	p->nwatch--;
	for (int i = 0; i < MAX_WATCH; i++)
		if (p->w[i].used && p->w[i].pg == pg)
			return; /* still watched by someone else */
	p->fl[pg] &= (uint8_t)~F_WATCH;
	if (p->st[pg] == S_RES) {
		int64_t slot = policy_on_fault(p->pol, pg);

		if (slot >= 0)
			p->pslot[pg] = (uint32_t)slot;
		/* else: the page stays local outside the policy; harmless */
	}
}

/* ---- faults ---- */

/* A remote fault at pg: follow the fault streams and choose up to max
 * REMOTE pages to fetch with it (the next ones in the stream's direction,
 * 4, 8, ... up to PREFETCH_MAX as the run grows). Returns how many, their
 * numbers in out. The engine's prefetcher does the same for processes. */
static size_t plan_prefetch(struct pager *p, uint64_t pg, uint64_t *out, size_t max)
{
	struct stream *s = NULL, *lru = &p->streams[0];
	size_t n = 0, want;

	p->stamp++;
	for (int i = 0; i < NSTREAMS && !s; i++) {
		struct stream *t = &p->streams[i];

		if (t->dir && pg == t->last + (uint64_t)(int64_t)t->dir) {
			s = t;
			s->hits++;
		} else if (!t->dir && t->stamp && (pg == t->last + 1 || pg + 1 == t->last)) {
			s = t;
			s->dir = pg == t->last + 1 ? 1 : -1;
			s->hits = 1;
		}
		if (t->stamp < lru->stamp)
			lru = t;
	}
	if (!s) {
		*lru = (struct stream){.last = pg, .stamp = p->stamp};
		return 0;
	}
	s->stamp = p->stamp;
	s->last = pg;
	if (s->hits < 2)
		return 0;
	want = s->hits - 2 < 3 ? (size_t)4 << (s->hits - 2) : PREFETCH_MAX;
	if (want > max)
		want = max;
	for (uint64_t q = pg + (uint64_t)(int64_t)s->dir; n < want && q < p->cfg.npages;
	     q += (uint64_t)(int64_t)s->dir) {
		if (p->st[q] != S_REMOTE || (p->fl[q] & F_WATCH))
			break;
		out[n++] = q;
		s->last = q;
	}
	return n;
}

int pager_fault(struct pager *p, uint64_t pg, enum pager_access kind)
{
	uint64_t t0 = now_ns();
	int write = kind != PAGER_READ, r;
	const void *data;

	if (pg >= p->cfg.npages)
		return -EINVAL;
	if (p->fl[pg] & F_WATCH)
		return watch_fault(p, pg, kind);
	if (p->st[pg] == S_RES) {
		/* A missing-page fault on a page we hold: either a second thread's
		 * fault on a page just installed (the install below finds it
		 * present: -EEXIST, the thread is woken), or the page vanished
		 * under us (QEMU discarded it, as a balloon does: it reads as
		 * zeros, which is what a discard means). */
		if (kind != PAGER_WP) {
			r = p->cfg.ops->install(p->cfg.be, pg, zero_page, kind == PAGER_READ);
			if (r < 0 && r != -EEXIST)
				return r;
			if (r == 0) {
				p->s.events++;
				set_dirty(p, pg);
				return 0;
			}
			if (kind == PAGER_READ) {
				p->s.faults_dup++;
				return 0;
			}
		}
		/* A write to a write-protected (clean) local page. */
		p->s.faults_wp++;
		if (!(p->fl[pg] & F_DIRTY)) {
			set_dirty(p, pg);
			policy_on_access(p->pol, p->pslot[pg]);
		}
		r = p->cfg.ops->unprotect(p->cfg.be, pg);
		lat_add(p, now_ns() - t0, 0);
		return r;
	}
	r = make_room(p, 1); /* may evict this very page if it was staged */
	if (r < 0)
		return r;
	switch (p->st[pg]) {
	case S_STAGED: {
		r = unstage(p, pg, !write && !(p->fl[pg] & F_DIRTY));
		if (r < 0)
			return r;
		policy_on_refill(p->pol, p->pslot[pg]);
		p->s.faults_refill++;
		if (write)
			set_dirty(p, pg);
		lat_add(p, now_ns() - t0, 0);
		return 0;
	}
	case S_REMOTE: {
		uint64_t pgs[1 + PREFETCH_MAX];
		void *bufs[1 + PREFETCH_MAX];
		size_t n = 1, max = p->cfg.prefetch ? p->cfg.budget_pages / 16 : 0;

		pgs[0] = pg;
		if (max)
			n += plan_prefetch(p, pg, pgs + 1, max < PREFETCH_MAX ? max : PREFETCH_MAX);
		if (n > 1) {
			r = make_room(p, n);
			if (r < 0)
				return r;
		}
		for (size_t i = 0; i < n; i++)
			bufs[i] = p->fbuf + i * PAGE;
		r = fetch_checked(p, pgs, bufs, n);
		if (r < 0)
			return r;
		p->s.faults_remote++;
		p->s.pages_in += n;
		p->s.bytes_recv += n * PAGE;
		p->n_remote--;
		/* The faulting page first: the guest goes on while the rest is put in. */
		r = p->cfg.ops->install(p->cfg.be, pg, bufs[0], !write);
		if (r < 0 && r != -EEXIST)
			return r;
		if (r == -EEXIST)
			write = 1;
		if (write)
			set_dirty(p, pg);
		r = make_resident(p, pg);
		if (r < 0)
			return r;
		lat_add(p, now_ns() - t0, 1);
		for (size_t i = 1; i < n; i++) {
			/* Clean and protected, as after a read: dropped for free if
			 * never touched. */
			r = p->cfg.ops->install(p->cfg.be, pgs[i], bufs[i], 1);
			if (r < 0 && r != -EEXIST)
				return r;
			if (r == -EEXIST)
				set_dirty(p, pgs[i]);
			p->n_remote--;
			p->s.pages_prefetched++;
			r = make_resident(p, pgs[i]);
			if (r < 0)
				return r;
		}
		return 0;
	}
	default:
		p->s.faults_zero++;
		data = zero_page;
		break;
	}
	/* Clean on a read: write-protected, so the first write is seen. */
	r = p->cfg.ops->install(p->cfg.be, pg, data, !write);
	if (r < 0 && r != -EEXIST)
		return r;
	if (r == -EEXIST) /* present although we had it elsewhere: trust nothing */
		write = 1;
	if (write)
		set_dirty(p, pg);
	r = make_resident(p, pg);
	lat_add(p, now_ns() - t0, 0);
	return r;
}

/* ---- background work ---- */

uint64_t pager_next_deadline(const struct pager *p)
{
	uint64_t d = UINT64_MAX;

	for (int i = 0; i < MAX_WATCH; i++)
		if (p->w[i].used && p->w[i].rearm_at && p->w[i].rearm_at < d)
			d = p->w[i].rearm_at;
	return d;
}

int pager_background(struct pager *p, uint64_t now)
{
	uint64_t local;
	int r;

	for (int i = 0; i < MAX_WATCH; i++) {
		if (p->w[i].used && p->w[i].rearm_at && p->w[i].rearm_at <= now) {
			r = watch_upload(p, p->w[i].pg);
			if (r < 0)
				return r;
		}
	}
	local = p->n_res + p->n_stg;
	if (p->full_until && now < p->full_until)
		return 0;
	if (local > p->low) {
		r = evict_some(p, local - p->low);
		if (r < 0)
			return r;
		return r > 0 && p->n_res + p->n_stg > p->low;
	}
	/* Under pressure (at the watermark): keep the second-chance list full. */
	if (local + 1 >= p->low && p->nfree && p->n_res > (uint64_t)p->nwatch) {
		r = stage_some(p, p->nfree);
		if (r < 0)
			return r;
		return r > 0 && p->nfree > 0;
	}
	return 0;
}

/* ---- statistics ---- */

void pager_counts(const struct pager *p, uint64_t *res, uint64_t *staged, uint64_t *remote,
		  uint64_t *dirty)
{
	*res = p->n_res;
	*staged = p->n_stg;
	*remote = p->n_remote;
	*dirty = p->n_dirty;
}

void pager_stats(const struct pager *p, struct sdrsa_engine_stats *out)
{
	*out = p->s;
	out->resident = p->n_res;
	out->staged = p->n_stg;
	out->remote = p->n_remote;
	out->dirty = p->n_dirty;
	out->retries = p->cfg.store->retries;
	out->lat_p50_ns = sdrsa_hist_pct(&p->lat, 50);
	out->lat_p90_ns = sdrsa_hist_pct(&p->lat, 90);
	out->lat_p99_ns = sdrsa_hist_pct(&p->lat, 99);
	out->lat_max_ns = p->lat.max;
	out->remote_p50_ns = sdrsa_hist_pct(&p->rlat, 50);
	out->remote_p99_ns = sdrsa_hist_pct(&p->rlat, 99);
}

int pager_restore_all(struct pager *p)
{
	for (uint64_t pg = 0; pg < p->cfg.npages; pg++) {
		void *buf = p->fbuf;
		int r;

		if (p->st[pg] == S_STAGED) {
			r = unstage(p, pg, 0);
			if (r < 0)
				return r;
			policy_requeue(p->pol, p->pslot[pg]);
		} else if (p->st[pg] == S_REMOTE) {
			r = fetch_checked(p, &pg, &buf, 1);
			if (r == 0)
				r = p->cfg.ops->install(p->cfg.be, pg, buf, 0);
			if (r < 0 && r != -EEXIST)
				return r;
			p->n_remote--;
			r = make_resident(p, pg);
			if (r < 0)
				return r;
		} else {
			continue;
		}
		set_dirty(p, pg);
	}
	return 0;
}

uint64_t pager_refused(const struct pager *p)
{
	return p->refused;
}

int pager_free_remote(struct pager *p, uint64_t *freed)
{
	return p->cfg.store->ops->free_all(p->cfg.store, freed);
}
