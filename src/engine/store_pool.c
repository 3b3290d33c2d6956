// SPDX-License-Identifier: MIT
/*
 * Page store over a pool of memory servers, with replication (docs/POOL.md).
 * It composes one store_sdrsa per server and keeps, per key, the set of
 * servers holding a copy.
 *
 * Placement: weighted rendezvous hashing. For a key every server gets the
 * score -weight / ln(u), u a hash of (key, server) in (0,1); servers are
 * tried in decreasing score. A put goes to the first R eligible servers
 * (up, not refusing pages, not draining); a server that refuses the page
 * (-ENOSPC pool full, -EDQUOT quota) or fails is replaced by the next one in
 * that order. Rendezvous keeps placement deterministic without a ring and
 * moves only the keys of a server that leaves; the weights (a server's
 * configured weight, else its free pages at connect) spread pages by
 * capacity. Because a full or dead server is skipped, the location of a key
 * is not a function of the key: the location table (key -> bit mask of
 * servers, 12 bytes per slot of an open-addressing hash at most 3/4 full:
 * 16 to 32 bytes per page) says where the copies are.
 *
 * Reads go to the copy on the up server with the lowest round-trip estimate
 * (PING every second, EWMA); a failed read tries the other copies. A key with
 * no copy left fails with -EHOSTDOWN, logged with the servers that held it:
 * the engine's fatal path then stops the program; zeros are never returned.
 *
 * Health: a server whose operation fails with a connection error after one
 * reconnect attempt (the per-server store runs with the pool's short timeout
 * and a minimal retry budget when R >= 2) is marked down: its bit is cleared
 * from every key, those keys count as under-replicated, and the keys it held
 * are remembered so that they are freed there if it comes back. A down
 * server is probed (connect and handshake) every second by the prober
 * thread, so that a stalled server never blocks the engine's thread; one
 * that answers is used again for new pages and re-replication. Every second the up servers get a PING
 * (round trip) and a STATS (the server says whether it is draining).
 *
 * Re-replication runs in store_pool's tick (called by the engine's thread
 * between faults): at most REPAIR_BATCH pages every REPAIR_INTERVAL_MS,
 * copied from a surviving copy to the next eligible server in the key's
 * rendezvous order, so that the program keeps running while replication is
 * restored. A draining server's keys are copied the same way, then freed on
 * it.
 *
 * Threading: like every store, used by one thread at a time (the engine's
 * lock covers the tick too). The prober thread only connects and hands the
 * connected store over under pmu; it touches nothing else. A fork child has
 * no prober and probes nothing.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sdrsa/client.h>
#include <sdrsa/engine.h>

#include "common/util.h"
#include "engine/engine_internal.h"
#include "engine/store.h"

#define REPAIR_BATCH 64        /* pages copied per tick */
#define REPAIR_INTERVAL_MS 2   /* between ticks while copies are missing */
#define PROBE_INTERVAL_MS 1000 /* health probe of every server */
#define FULL_BACKOFF_MS 1000   /* a server that refused a page: not tried for this long */
#define SCAN_PER_TICK 65536    /* table slots looked at per tick when searching */
#define EMPTY_KEY UINT64_MAX   /* keys are page-aligned: never this */

struct pool_server {
	char *address;
	uint8_t key[SDRSA_KEY_SIZE];
	int has_key;
	double weight;        /* rendezvous weight */
	struct store *st;     /* NULL while down */
	int up;
	int draining;         /* the server said so in STATS */
	uint64_t full_until;  /* refused pages: skip for new pages until then (ms) */
	uint64_t next_probe;  /* ms */
	uint64_t rtt_us;      /* EWMA of PING round trips */
	uint64_t pages;       /* keys whose mask has this server */
	uint64_t *purge;      /* keys it held when it went down: free them when back */
	size_t npurge, purge_cap;
	uint64_t sent0, recv0, retries0; /* counters of closed stores, carried over */
};

/* Scratch memory of one operation, kept between calls: no allocation per
 * fault once the largest batch has been seen. */
struct arena {
	unsigned char *mem;
	size_t cap, used;
};

#define ARENA_SIZE(bytes) (((bytes) + 15) & ~(size_t)15)

static int arena_reset(struct arena *a, size_t need)
{
	if (need > a->cap) {
		unsigned char *m = realloc(a->mem, need);
		if (!m)
			return -ENOMEM;
		a->mem = m;
		a->cap = need;
	}
	a->used = 0;
	return 0;
}

/* Zeroed memory from the arena (reserved by arena_reset). */
static void *arena_get(struct arena *a, size_t bytes)
{
	void *r = a->mem + a->used;
	a->used += ARENA_SIZE(bytes);
	memset(r, 0, bytes);
	return r;
}

struct store_pool {
	struct store base;
	struct arena fetch_mem, put_mem, free_mem;
	struct pool_server srv[STORE_POOL_MAX];
	unsigned n, replicas;
	char *name;
	int timeout_ms, retry_ms;
	sdrsa_log_fn log;
	void *log_ud;
	int child; /* fork child: reads only, no repair, no probes */

	/* Location table: open addressing, linear probing, power-of-two size. */
	uint64_t *keys;
	uint32_t *masks;
	size_t cap, count;

	uint64_t under;       /* keys with fewer than R copies (at least one) */
	uint64_t lost;        /* keys with no copy left */
	size_t cursor;        /* repair scan position */
	size_t scan_empty;    /* slots scanned since the last page found to copy */
	int repair_idle;      /* a full scan found nothing to do; reset on changes */
	uint64_t next_repair; /* ms */
	uint64_t next_probe;  /* ms */
	uint64_t warned_short; /* ms of the last "fewer than R servers" warning */
	unsigned char *buf;   /* REPAIR_BATCH pages */
	uint64_t gen;         /* tags of pipelined operations (PIPE_TAG) */

	/* The prober thread connects to down servers, so that a server that
	 * accepts connections but never answers (stalled) costs the engine's
	 * thread nothing: it asks (probe_want) and picks up (probe_got). */
	pthread_t prober;
	int prober_started;
	pthread_mutex_t pmu;
	pthread_cond_t pcv;
	uint32_t probe_want;                       /* under pmu */
	struct store *probe_got[STORE_POOL_MAX];   /* under pmu */
	int prober_stop;                           /* under pmu */
};

/* Pipelined operations across servers carry PIPE_TAG | gen << 32 | index:
 * store_sdrsa's own tags never set bit 63, and a completion left on a
 * connection by an earlier call (another gen) is ignored. */
#define PIPE_TAG (1ull << 63)
#define PIPE_TAG_OF(gen, i) (PIPE_TAG | ((gen) & 0x7fffffffull) << 32 | (uint64_t)(i))

#define plog(p, level, ...) sdrsa_log_to((p)->log, (p)->log_ud, (level), __VA_ARGS__)

/* ---- placement ---- */

void store_pool_rank(const double *weights, unsigned n, uint64_t key, uint8_t *order)
{
	double score[STORE_POOL_MAX];
	for (unsigned i = 0; i < n; i++) {
		uint64_t h = sdrsa_mix64(key ^ sdrsa_mix64(0x9E3779B97F4A7C15ull * (i + 1)));
		/* u in (0,1): 53 random bits, never 0 or 1. */
		double u = ((double)(h >> 11) + 0.5) / 9007199254740992.0;
		score[i] = weights[i] > 0 ? -weights[i] / log(u) : 0;
		order[i] = (uint8_t)i;
	}
	/* Insertion sort, highest score first: n is small. */
	for (unsigned i = 1; i < n; i++) {
		uint8_t o = order[i];
		unsigned j = i;
		while (j > 0 && score[order[j - 1]] < score[o]) {
			order[j] = order[j - 1];
			j--;
		}
		order[j] = o;
	}
}

static void rank(struct store_pool *p, uint64_t key, uint8_t *order)
{
	double w[STORE_POOL_MAX];
	for (unsigned i = 0; i < p->n; i++)
		w[i] = p->srv[i].weight;
	store_pool_rank(w, p->n, key, order);
}

static int eligible(struct store_pool *p, unsigned i, uint64_t now)
{
	struct pool_server *s = &p->srv[i];
	return s->up && !s->draining && s->full_until <= now;
}

/* ---- location table ---- */

static size_t slot_of(const struct store_pool *p, uint64_t key)
{
	return (size_t)sdrsa_mix64(key) & (p->cap - 1);
}

static size_t find(const struct store_pool *p, uint64_t key)
{
	size_t i = slot_of(p, key);
	while (p->keys[i] != EMPTY_KEY && p->keys[i] != key)
		i = (i + 1) & (p->cap - 1);
	return i;
}

static uint32_t loc_get(const struct store_pool *p, uint64_t key)
{
	size_t i = find(p, key);
	return p->keys[i] == key ? p->masks[i] : 0;
}

static int loc_known(const struct store_pool *p, uint64_t key)
{
	return p->keys[find(p, key)] == key;
}

static int grow(struct store_pool *p)
{
	size_t ncap = p->cap * 2;
	uint64_t *nk = malloc(ncap * sizeof(*nk));
	uint32_t *nm = malloc(ncap * sizeof(*nm));
	if (!nk || !nm) {
		free(nk);
		free(nm);
		return -ENOMEM;
	}
	memset(nk, 0xff, ncap * sizeof(*nk));
	uint64_t *ok = p->keys;
	uint32_t *om = p->masks;
	size_t ocap = p->cap;
	p->keys = nk;
	p->masks = nm;
	p->cap = ncap;
	for (size_t i = 0; i < ocap; i++)
		if (ok[i] != EMPTY_KEY) {
			size_t j = find(p, ok[i]);
			p->keys[j] = ok[i];
			p->masks[j] = om[i];
		}
	free(ok);
	free(om);
	p->cursor = 0;
	return 0;
}

static unsigned popcount(uint32_t m)
{
	return (unsigned)__builtin_popcount(m);
}

/* Account for a key's mask going from old to new (0: absent or lost). */
static void account(struct store_pool *p, uint32_t old, uint32_t new, int known_old,
		    int known_new)
{
	unsigned r = p->replicas;
	if (known_old) {
		if (old && popcount(old) < r)
			p->under--;
		if (!old)
			p->lost--;
	}
	if (known_new) {
		if (new && popcount(new) < r)
			p->under++;
		if (!new)
			p->lost++;
	}
	for (unsigned i = 0; i < p->n; i++) {
		uint32_t b = 1u << i;
		if (known_old && (old & b))
			p->srv[i].pages--;
		if (known_new && (new & b))
			p->srv[i].pages++;
	}
}

/* Set key's mask (inserting it). Returns 0 or -ENOMEM. */
static int loc_set(struct store_pool *p, uint64_t key, uint32_t mask)
{
	if ((p->count + 1) * 4 > p->cap * 3 && grow(p) < 0)
		return -ENOMEM;
	size_t i = find(p, key);
	int known = p->keys[i] == key;
	account(p, known ? p->masks[i] : 0, mask, known, 1);
	if (!known) {
		p->keys[i] = key;
		p->count++;
	}
	p->masks[i] = mask;
	if (mask && popcount(mask) < p->replicas)
		p->repair_idle = 0, p->scan_empty = 0;
	return 0;
}

/* Delete key (backward-shift deletion keeps probe chains whole). */
static void loc_del(struct store_pool *p, uint64_t key)
{
	size_t i = find(p, key);
	if (p->keys[i] != key)
		return;
	account(p, p->masks[i], 0, 1, 0);
	p->count--;
	size_t j = i;
	for (;;) {
		j = (j + 1) & (p->cap - 1);
		if (p->keys[j] == EMPTY_KEY)
			break;
		size_t h = slot_of(p, p->keys[j]);
		/* Move j to i if its home is not in (i, j]. */
		if ((j > i && (h <= i || h > j)) || (j < i && (h <= i && h > j))) {
			p->keys[i] = p->keys[j];
			p->masks[i] = p->masks[j];
			i = j;
		}
	}
	p->keys[i] = EMPTY_KEY;
}

/* ---- servers ---- */

static int is_conn_error(int r)
{
	return r == -ETIMEDOUT || r == -ECONNRESET || r == -ENOTCONN || r == -EPIPE ||
	       r == -ECONNREFUSED || r == -ECONNABORTED || r == -EHOSTUNREACH ||
	       r == -ENETUNREACH || r == -EIO || r == -EHOSTDOWN;
}

static unsigned servers_up(const struct store_pool *p)
{
	unsigned k = 0;
	for (unsigned i = 0; i < p->n; i++)
		k += p->srv[i].up;
	return k;
}

static void refresh_counters(struct store_pool *p)
{
	uint64_t sent = 0, recv = 0, retries = 0;
	for (unsigned i = 0; i < p->n; i++) {
		struct pool_server *s = &p->srv[i];
		sent += s->sent0 + (s->st ? s->st->bytes_sent : 0);
		recv += s->recv0 + (s->st ? s->st->bytes_recv : 0);
		retries += s->retries0 + (s->st ? s->st->retries : 0);
	}
	p->base.bytes_sent = sent;
	p->base.bytes_recv = recv;
	p->base.retries = retries;
	p->base.servers_total = p->n;
	p->base.servers_up = servers_up(p);
	p->base.pages_under_replicated = p->under;
	p->base.pages_lost = p->lost;
}

static void close_store(struct pool_server *s)
{
	if (!s->st)
		return;
	s->sent0 += s->st->bytes_sent;
	s->recv0 += s->st->bytes_recv;
	s->retries0 += s->st->retries;
	store_free(s->st);
	s->st = NULL;
}

static void warn_short(struct store_pool *p)
{
	unsigned up = servers_up(p);
	if (up >= p->replicas)
		return;
	p->warned_short = sdrsa_now_ms();
	plog(p, SDRSA_LOG_WARN,
	     "only %u of %u memory servers up, fewer than the %u replicas asked for: "
	     "%llu pages have fewer copies than that",
	     up, p->n, p->replicas, (unsigned long long)(p->under + p->lost));
}

static int push_purge(struct pool_server *s, uint64_t key)
{
	if (s->npurge == s->purge_cap) {
		size_t ncap = s->purge_cap ? s->purge_cap * 2 : 1024;
		uint64_t *n = realloc(s->purge, ncap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		s->purge = n;
		s->purge_cap = ncap;
	}
	s->purge[s->npurge++] = key;
	return 0;
}

/* Server i failed with err: take it out, its copies no longer count. */
static void mark_down(struct store_pool *p, unsigned i, int err)
{
	struct pool_server *s = &p->srv[i];
	if (!s->up)
		return;
	int was_draining = s->draining;
	s->up = 0;
	s->draining = 0;
	s->next_probe = sdrsa_now_ms() + PROBE_INTERVAL_MS;
	close_store(s);
	uint32_t b = 1u << i;
	uint64_t moved = 0;
	for (size_t j = 0; j < p->cap; j++)
		if (p->keys[j] != EMPTY_KEY && (p->masks[j] & b)) {
			uint32_t old = p->masks[j];
			account(p, old, old & ~b, 1, 1);
			p->masks[j] = old & ~b;
			(void)push_purge(s, p->keys[j]);
			moved++;
		}
	p->repair_idle = 0;
	if (was_draining && !moved)
		plog(p, SDRSA_LOG_WARN, "memory server %s drained and left the pool", s->address);
	else
		plog(p, SDRSA_LOG_WARN,
		     "memory server %s is down (%s): %llu pages lost a copy there; restoring "
		     "%u copies on the other servers in the background",
		     s->address, strerror(-err), (unsigned long long)moved, p->replicas);
	warn_short(p);
	refresh_counters(p);
}

/* Connect to server i (its address, key and the pool's name and timeouts
 * never change: the prober thread may call this too). */
static int open_store(const struct store_pool *p, unsigned i, struct store **st)
{
	const struct pool_server *s = &p->srv[i];
	struct sdrsa_client_config cc = {
		.address = s->address,
		.name = p->name,
		.key = s->has_key ? s->key : NULL,
		.timeout_ms = p->timeout_ms,
	};
	return store_sdrsa_new(&cc, p->retry_ms, st);
}

static void *prober_main(void *arg)
{
	struct store_pool *p = arg;
	sdrsa_engine_internal = 1; /* never manage what this thread allocates */
	pthread_mutex_lock(&p->pmu);
	for (;;) {
		while (!p->probe_want && !p->prober_stop)
			pthread_cond_wait(&p->pcv, &p->pmu);
		if (p->prober_stop)
			break;
		unsigned i = (unsigned)__builtin_ctz(p->probe_want);
		p->probe_want &= ~(1u << i);
		pthread_mutex_unlock(&p->pmu);
		struct store *st = NULL;
		int r = open_store(p, i, &st);
		pthread_mutex_lock(&p->pmu);
		if (r == 0) {
			store_free(p->probe_got[i]);
			p->probe_got[i] = st;
		}
	}
	pthread_mutex_unlock(&p->pmu);
	return NULL;
}

/* ---- pipelined operations on several servers at once ---- */

/*
 * One page operation on one server. Servers are sent their operations all
 * at once, then each is reaped, so that a batch spread over 3 servers costs
 * one round trip, not three. r: the result, or PIPE_RETRY when it has to go
 * through the server's store (which reconnects and retries), as after any
 * error on the connection.
 */
#define PIPE_RETRY 1
struct pipe_op {
	uint8_t srv;
	uint8_t opcode; /* SDRSA_OP_PUT or SDRSA_OP_GET */
	uint64_t key;
	void *page;
	int r;
	uint64_t csum; /* GET: the page's checksum, verified by libsdrsa */
};

static void pipe_run(struct store_pool *p, struct pipe_op *ops, size_t n, int first_srv,
		     void (*done)(void *ctx, struct pipe_op *op), void *ctx)
{
	uint64_t gen = ++p->gen;
	size_t sent[STORE_POOL_MAX] = {0};
	struct sdrsa_client *cl[STORE_POOL_MAX] = {0};
	for (size_t i = 0; i < n; i++)
		ops[i].r = PIPE_RETRY;
	for (unsigned s = 0; s < p->n; s++) {
		if (!p->srv[s].up)
			continue;
		for (size_t i = 0; i < n; i++) {
			if (ops[i].srv != s)
				continue;
			if (!cl[s] && !sent[s])
				cl[s] = store_sdrsa_client(p->srv[s].st);
			if (!cl[s])
				break;
			int r = ops[i].opcode == SDRSA_OP_PUT
					? sdrsa_submit_put(cl[s], ops[i].key, ops[i].page,
							   PIPE_TAG_OF(gen, i))
					: sdrsa_submit_get_csum(cl[s], ops[i].key, ops[i].page,
								PIPE_TAG_OF(gen, i), &ops[i].csum);
			if (r < 0)
				break; /* the rest go through the store */
			sent[s]++;
		}
		if (sent[s] && sdrsa_flush(cl[s]) < 0) {
			/* Completions report the failure. */
		}
	}
	/* Reap, the server of the page a thread waits for first. */
	for (unsigned k = 0; k < p->n; k++) {
		unsigned s = first_srv >= 0 ? (k == 0 ? (unsigned)first_srv
						      : k <= (unsigned)first_srv ? k - 1 : k)
					    : k;
		size_t got = 0;
		while (got < sent[s]) {
			struct sdrsa_completion comp[64];
			int c = sdrsa_reap(cl[s], comp, 64, 1, p->timeout_ms);
			if (c <= 0)
				break;
			for (int j = 0; j < c; j++) {
				uint64_t t = comp[j].tag;
				size_t i = (size_t)(t & 0xffffffffu);
				if ((t & ~0xffffffffull) != (PIPE_TAG_OF(gen, 0)) || i >= n)
					continue;
				got++;
				ops[i].r = comp[j].result == 0 ? 0
					   : comp[j].result == -ENOSPC || comp[j].result == -EDQUOT
						   ? comp[j].result
						   : PIPE_RETRY;
				if (ops[i].r == 0) {
					if (ops[i].opcode == SDRSA_OP_PUT)
						p->srv[s].st->bytes_sent += SDRSA_PAGE_SIZE;
					else
						p->srv[s].st->bytes_recv += SDRSA_PAGE_SIZE;
				}
				if (done)
					done(ctx, &ops[i]);
			}
		}
		/* Not all answered in time: drop the connection, so that no late
		 * answer writes into a page buffer after we return; the rest go
		 * through the store, which reconnects. */
		if (got < sent[s])
			(void)sdrsa_client_reconnect(cl[s]);
	}
}

/* ---- reads ---- */

/* The up server holding a copy (in mask) with the lowest round trip; -1. */
static int best_copy(struct store_pool *p, uint32_t mask)
{
	int best = -1;
	for (unsigned i = 0; i < p->n; i++)
		if ((mask & (1u << i)) && p->srv[i].up &&
		    (best < 0 || p->srv[i].rtt_us < p->srv[best].rtt_us))
			best = (int)i;
	return best;
}

static void free_on(struct store_pool *p, unsigned i, const uint64_t *keys, size_t n);

struct fetch_ctx {
	const size_t *map; /* index in the sub call -> index in the caller's */
	uint8_t *done;
	size_t ndone;
	void (*arrived)(void *ctx, const size_t *idx, size_t k);
	void *ctx;
	/* End-to-end check (pool_get_stream_want), by the caller's index:
	 * want[i] the checksum's low half the caller stored, csums[i] gets
	 * the page's; NULL: no check (re-replication, get_many). */
	struct store_pool *p;
	const uint64_t *keys;
	void *const *pages;
	const uint32_t *want;
	uint64_t *csums;
	uint32_t *bad; /* servers whose copy of page i failed: freed there after the fetch */
	int srv;       /* the server the sub call reads from */
	uint64_t *subsum; /* the sub call's checksums (libsdrsa's), by its index */
};

/*
 * Is the copy of page i that server srv sent, with checksum sum (libsdrsa's,
 * verified on receipt: no second hash), the version stored? One that
 * is not (a put it missed or got late, a client writing under our name) is
 * taken as a failed copy: the server's copy is forgotten (and freed there)
 * and another is read. The last copy is handed over even so: the caller's
 * check then fails it loudly, where "no copy left" would hide why.
 */
static int copy_ok(struct fetch_ctx *f, size_t i, int srv, uint64_t sum)
{
	if (!f->want)
		return 1;
	if (f->csums)
		f->csums[i] = sum;
	if ((uint32_t)sum == f->want[i])
		return 1;
	struct store_pool *p = f->p;
	uint64_t key = f->keys[i];
	uint32_t mask = loc_get(p, key);
	p->base.copies_bad++;
	if (srv < 0 || !(mask & (1u << srv)) || !(mask & ~(1u << srv)))
		return 1;
	plog(p, SDRSA_LOG_WARN,
	     "memory server %s holds a copy of page key 0x%llx that is not the version "
	     "stored (checksum %08x, expected %08x): reading another copy",
	     p->srv[srv].address, (unsigned long long)key, (unsigned)(uint32_t)sum,
	     (unsigned)f->want[i]);
	if (loc_set(p, key, mask & ~(1u << srv)) < 0)
		return 1;
	f->bad[i] |= 1u << srv; /* not freed now: srv's connection is busy with this fetch */
	return 0;
}

static void sub_arrived(void *c, const size_t *idx, size_t k)
{
	struct fetch_ctx *f = c;
	size_t out[512];
	size_t m = 0;
	for (size_t j = 0; j < k; j++) {
		size_t i = f->map[idx[j]];
		if (f->done[i] || !copy_ok(f, i, f->srv, f->subsum[idx[j]]))
			continue;
		f->done[i] = 1;
		f->ndone++;
		out[m++] = i;
		if (m == ARRAY_SIZE(out)) {
			if (f->arrived)
				f->arrived(f->ctx, out, m);
			m = 0;
		}
	}
	if (m && f->arrived)
		f->arrived(f->ctx, out, m);
}

struct pipe_fetch {
	struct fetch_ctx *f;
	struct pipe_op *ops;
};

static void pipe_fetched(void *ctx, struct pipe_op *op)
{
	struct pipe_fetch *pf = ctx;
	if (op->r != 0)
		return;
	size_t i = (size_t)(op - pf->ops);
	struct fetch_ctx *f = pf->f;
	if (f->done[i] || !copy_ok(f, i, op->srv, op->csum))
		return;
	f->done[i] = 1;
	f->ndone++;
	if (f->arrived)
		f->arrived(f->ctx, &i, 1);
}

static int no_copy(struct store_pool *p, uint64_t key)
{
	if (!loc_known(p, key))
		return -ENOENT;
	char held[256] = "";
	size_t o = 0;
	for (unsigned i = 0; i < p->n && o < sizeof(held) - 1; i++)
		if (!p->srv[i].up)
			o += (size_t)snprintf(held + o, sizeof(held) - o, "%s%s", o ? ", " : "",
					      p->srv[i].address);
	plog(p, SDRSA_LOG_ERR,
	     "page key 0x%llx: no copy left on any memory server (down: %s); %u replicas "
	     "were not enough",
	     (unsigned long long)key, held[0] ? held : "none", p->replicas);
	return -EHOSTDOWN;
}

/*
 * Fetch n keys, each from its best copy, server by server (the group with
 * page 0, the one a thread waits for, first). A server that fails is marked
 * down (connection) or loses its copy of the keys it could not serve
 * (-ENOENT, -EBADMSG after its retries), and those keys are fetched from
 * their other copies.
 */
static int fetch(struct store_pool *p, const uint64_t *keys, void *const *pages, size_t n,
		 void (*arrived)(void *ctx, const size_t *idx, size_t k), void *ctx,
		 const uint32_t *want, uint64_t *csums)
{
	if (!n)
		return 0;
	struct arena *a = &p->fetch_mem;
	if (arena_reset(a, ARENA_SIZE(n) + ARENA_SIZE(n * sizeof(size_t)) +
				   ARENA_SIZE(n * sizeof(uint64_t)) + ARENA_SIZE(n * sizeof(void *)) +
				   ARENA_SIZE(n * sizeof(struct pipe_op)) +
				   ARENA_SIZE(n * sizeof(uint32_t)) + ARENA_SIZE(n * sizeof(uint64_t))) < 0)
		return -ENOMEM;
	uint8_t *done = arena_get(a, n);
	size_t *map = arena_get(a, n * sizeof(*map));
	uint64_t *k = arena_get(a, n * sizeof(*k));
	void **pg = arena_get(a, n * sizeof(*pg));
	struct pipe_op *ops = arena_get(a, n * sizeof(*ops));
	uint32_t *bad = arena_get(a, n * sizeof(*bad));
	uint64_t *subsum = arena_get(a, n * sizeof(*subsum));
	int err = 0;
	struct fetch_ctx f = {.map = map, .done = done, .arrived = arrived, .ctx = ctx,
			      .p = p, .keys = keys, .pages = pages, .want = want, .csums = csums,
			      .bad = bad, .subsum = subsum};
	/* All copies asked for at once (pages spread over servers); what does
	 * not come this way is fetched below, server by server, with retries. */
	if (n > 1) {
		int first = -1;
		for (size_t i = 0; i < n; i++) {
			int b = best_copy(p, loc_get(p, keys[i]));
			if (b < 0) {
				ops = NULL;
				break;
			}
			if (i == 0)
				first = b;
			ops[i] = (struct pipe_op){.srv = (uint8_t)b, .opcode = SDRSA_OP_GET,
						  .key = keys[i], .page = pages[i]};
		}
		if (ops) {
			struct pipe_fetch pf = {.f = &f, .ops = ops};
			pipe_run(p, ops, n, first, pipe_fetched, &pf);
		}
	}
	while (f.ndone < n) {
		/* The server of the first page not yet here. */
		int srv = -1;
		for (size_t i = 0; i < n && srv < 0; i++) {
			if (done[i])
				continue;
			int b = best_copy(p, loc_get(p, keys[i]));
			if (b < 0) {
				err = no_copy(p, keys[i]);
				goto out;
			}
			srv = b;
		}
		size_t m = 0;
		for (size_t i = 0; i < n; i++)
			if (!done[i] && best_copy(p, loc_get(p, keys[i])) == srv) {
				map[m] = i;
				k[m] = keys[i];
				pg[m] = pages[i];
				m++;
			}
		struct pool_server *s = &p->srv[srv];
		f.srv = srv;
		int r = s->st->ops->get_stream(s->st, k, pg, m, sub_arrived, &f, subsum);
		if (r == 0)
			continue;
		if (is_conn_error(r)) {
			mark_down(p, (unsigned)srv, r);
			continue;
		}
		/* A key it cannot serve: try each missing one alone, and drop
		 * this server's copy of those it still cannot serve. */
		for (size_t j = 0; j < m; j++) {
			size_t i = map[j];
			if (done[i])
				continue;
			struct fetch_ctx f1 = f;
			f1.map = &map[j];
			f1.subsum = &subsum[j];
			f1.ndone = 0;
			int r1 = s->st->ops->get_stream(s->st, &k[j], &pg[j], 1, sub_arrived, &f1,
							&subsum[j]);
			f.ndone += f1.ndone;
			if (r1 == 0)
				continue;
			if (is_conn_error(r1)) {
				mark_down(p, (unsigned)srv, r1);
				break;
			}
			plog(p, SDRSA_LOG_WARN,
			     "memory server %s could not serve page key 0x%llx (%s): reading "
			     "another copy",
			     s->address, (unsigned long long)k[j], strerror(-r1));
			uint32_t mask = loc_get(p, k[j]) & ~(1u << srv);
			if (loc_set(p, k[j], mask) < 0) {
				err = -ENOMEM;
				goto out;
			}
			if (!mask) {
				err = no_copy(p, k[j]);
				goto out;
			}
		}
	}
out:
	/* Copies that failed the end-to-end check (copy_ok): free them. */
	for (unsigned s = 0; want && s < p->n; s++) {
		size_t m = 0;
		for (size_t i = 0; i < n; i++)
			if (bad[i] & (1u << s))
				k[m++] = keys[i];
		free_on(p, s, k, m);
	}
	refresh_counters(p);
	return err;
}

static int pool_get_many(struct store *st, const uint64_t *keys, void *const *pages, size_t n)
{
	return fetch((struct store_pool *)st, keys, pages, n, store_arrived_ignore, NULL, NULL, NULL);
}

static int pool_get_stream(struct store *st, const uint64_t *keys, void *const *pages, size_t n,
			   void (*arrived)(void *ctx, const size_t *idx, size_t k), void *ctx,
			   uint64_t *csums)
{
	(void)csums; /* given only with want: pool_get_stream_want */
	return fetch((struct store_pool *)st, keys, pages, n, arrived, ctx, NULL, NULL);
}

/* The engine's end-to-end check inside the pool, where a copy that fails it
 * can be replaced by another (copy_ok); csums[i] gets each page's checksum,
 * so that the engine does not hash it again. */
static int pool_get_stream_want(struct store *st, const uint64_t *keys, const uint32_t *want,
				void *const *pages, size_t n,
				void (*arrived)(void *ctx, const size_t *idx, size_t k), void *ctx,
				uint64_t *csums)
{
	return fetch((struct store_pool *)st, keys, pages, n, arrived, ctx, want, csums);
}

/* ---- writes ---- */

/* Free keys on server i (best effort: a failure marks it down, and the
 * purge list frees them when it is back). */
static void free_on(struct store_pool *p, unsigned i, const uint64_t *keys, size_t n)
{
	struct pool_server *s = &p->srv[i];
	if (!n)
		return;
	if (!s->up) {
		for (size_t j = 0; j < n; j++)
			(void)push_purge(s, keys[j]);
		return;
	}
	int r = s->st->ops->free_keys(s->st, keys, n);
	if (r < 0 && is_conn_error(r))
		mark_down(p, i, r);
}

/*
 * Store n pages on up to R servers each. Per page: the servers are tried in
 * the key's rendezvous order; a refusal or a failure moves to the next one.
 * results[i]: 0 when at least one copy was stored (fewer than R: counted as
 * under-replicated, restored by the tick), else -ENOSPC/-EDQUOT when every
 * server with room refused it, else -EHOSTDOWN (no server up).
 */
static int pool_put_many(struct store *st, const uint64_t *keys, const void *const *pages,
			 size_t n, int *results)
{
	struct store_pool *p = (struct store_pool *)st;
	uint64_t now = sdrsa_now_ms();
	if (!n)
		return 0;
	struct arena *a = &p->put_mem;
	size_t nr = n * p->replicas;
	if (arena_reset(a, ARENA_SIZE(n * STORE_POOL_MAX) + ARENA_SIZE(n) +
				   2 * ARENA_SIZE(n * sizeof(uint32_t)) +
				   2 * ARENA_SIZE(n * sizeof(int)) + ARENA_SIZE(n * sizeof(uint64_t)) +
				   ARENA_SIZE(n * sizeof(void *)) + ARENA_SIZE(n * sizeof(size_t)) +
				   ARENA_SIZE(nr * sizeof(struct pipe_op)) +
				   ARENA_SIZE(nr * sizeof(size_t))) < 0) {
		for (size_t i = 0; results && i < n; i++)
			results[i] = -ENOMEM;
		return -ENOMEM;
	}
	uint8_t (*order)[STORE_POOL_MAX] = arena_get(a, n * STORE_POOL_MAX);
	uint8_t *next = arena_get(a, n);                     /* next position in order[] to try */
	uint32_t *want = arena_get(a, n * sizeof(*want));    /* servers asked, no answer yet */
	uint32_t *got = arena_get(a, n * sizeof(*got));      /* servers that stored it */
	int *refusal = arena_get(a, n * sizeof(*refusal));   /* -ENOSPC/-EDQUOT seen */
	uint64_t *k = arena_get(a, n * sizeof(*k));
	const void **pg = arena_get(a, n * sizeof(*pg));
	size_t *map = arena_get(a, n * sizeof(*map));
	int *res = arena_get(a, n * sizeof(*res));
	struct pipe_op *ops = arena_get(a, nr * sizeof(*ops));
	size_t *ops_page = arena_get(a, nr * sizeof(*ops_page)); /* op -> page index */
	int first = 0;
	for (size_t i = 0; i < n; i++)
		rank(p, keys[i], order[i]);
	for (;;) {
		/* Give every page as many servers to try as it lacks copies. */
		int pending = 0;
		for (size_t i = 0; i < n; i++) {
			while (popcount(got[i]) + popcount(want[i]) < p->replicas && next[i] < p->n) {
				unsigned s = order[i][next[i]++];
				if (eligible(p, s, now))
					want[i] |= 1u << s;
			}
			pending |= want[i] != 0;
		}
		if (!pending)
			break;
		/* Every (page, server) pair at once, then what needs the store's
		 * retries server by server. */
		size_t nops = 0;
		for (unsigned s = 0; s < p->n; s++)
			for (size_t i = 0; i < n; i++)
				if (want[i] & (1u << s)) {
					ops_page[nops] = i;
					ops[nops++] = (struct pipe_op){.srv = (uint8_t)s,
								       .opcode = SDRSA_OP_PUT,
								       .key = keys[i],
								       .page = (void *)pages[i]};
				}
		pipe_run(p, ops, nops, -1, NULL, NULL);
		for (unsigned s = 0; s < p->n; s++) {
			size_t m = 0;
			for (size_t o = 0; o < nops; o++)
				if (ops[o].srv == s && ops[o].r == PIPE_RETRY) {
					map[m] = o;
					k[m] = ops[o].key;
					pg[m] = ops[o].page;
					m++;
				}
			if (!m)
				continue;
			struct pool_server *sv = &p->srv[s];
			int r = sv->up ? sv->st->ops->put_many(sv->st, k, pg, m, res) : -EHOSTDOWN;
			for (size_t j = 0; j < m; j++)
				ops[map[j]].r = r == 0 ? 0 : sv->up ? res[j] : r;
		}
		for (unsigned s = 0; s < p->n; s++) {
			struct pool_server *sv = &p->srv[s];
			int down = 0;
			for (size_t o = 0; o < nops; o++) {
				if (ops[o].srv != s)
					continue;
				size_t i = ops_page[o];
				int rj = ops[o].r;
				want[i] &= ~(1u << s);
				if (rj == 0) {
					got[i] |= 1u << s;
				} else if (rj == -ENOSPC || rj == -EDQUOT) {
					refusal[i] = rj;
					if (sv->full_until <= now)
						plog(p, SDRSA_LOG_WARN,
						     "memory server %s refused pages (%s): using the "
						     "other servers",
						     sv->address,
						     rj == -EDQUOT ? "quota reached" : "pool full");
					sv->full_until = now + FULL_BACKOFF_MS;
				} else {
					/* A connection error after the store's retries, or
					 * an answer not expected from a server: do not
					 * trust it with pages. */
					down = rj;
				}
			}
			if (down)
				mark_down(p, s, down);
		}
	}
	for (size_t i = 0; i < n; i++) {
		int known = loc_known(p, keys[i]);
		uint32_t old = loc_get(p, keys[i]);
		int ri;
		if (got[i]) {
			ri = loc_set(p, keys[i], got[i]);
			/* Older versions elsewhere must go. */
			uint32_t stale = old & ~got[i];
			for (unsigned s = 0; ri == 0 && s < p->n; s++)
				if (stale & (1u << s))
					free_on(p, s, &keys[i], 1);
		} else if (refusal[i]) {
			ri = refusal[i];
		} else {
			ri = -EHOSTDOWN;
			plog(p, SDRSA_LOG_ERR, "no memory server up to store pages (%u servers down)",
			     p->n);
		}
		(void)known;
		if (results)
			results[i] = ri;
		if (ri < 0 && !first)
			first = ri;
	}
	if (servers_up(p) < p->replicas && sdrsa_now_ms() - p->warned_short >= 30000)
		warn_short(p);
	refresh_counters(p);
	return first;
}

static int pool_free_keys(struct store *st, const uint64_t *keys, size_t n)
{
	struct store_pool *p = (struct store_pool *)st;
	if (!n)
		return 0;
	if (arena_reset(&p->free_mem, ARENA_SIZE(n * sizeof(uint64_t))) < 0)
		return -ENOMEM;
	uint64_t *k = arena_get(&p->free_mem, n * sizeof(*k));
	for (unsigned s = 0; s < p->n; s++) {
		size_t m = 0;
		for (size_t i = 0; i < n; i++)
			if (loc_get(p, keys[i]) & (1u << s))
				k[m++] = keys[i];
		free_on(p, s, k, m);
	}
	for (size_t i = 0; i < n; i++)
		loc_del(p, keys[i]);
	refresh_counters(p);
	return 0;
}

static int pool_free_all(struct store *st, uint64_t *freed)
{
	struct store_pool *p = (struct store_pool *)st;
	uint64_t total = 0;
	int err = 0;
	for (unsigned s = 0; s < p->n; s++) {
		struct pool_server *sv = &p->srv[s];
		if (!sv->up)
			continue;
		uint64_t f = 0;
		int r = sv->st->ops->free_all(sv->st, &f);
		if (r < 0 && !err)
			err = r;
		total += f;
		sv->npurge = 0;
	}
	memset(p->keys, 0xff, p->cap * sizeof(*p->keys));
	p->count = p->under = p->lost = 0;
	for (unsigned s = 0; s < p->n; s++)
		p->srv[s].pages = 0;
	refresh_counters(p);
	if (freed)
		*freed = total;
	return err;
}

/* ---- background work: health probes and re-replication ---- */

static void probe(struct store_pool *p, uint64_t now)
{
	for (unsigned i = 0; i < p->n; i++) {
		struct pool_server *s = &p->srv[i];
		if (!s->up) {
			struct store *got = NULL;
			pthread_mutex_lock(&p->pmu);
			got = p->probe_got[i];
			p->probe_got[i] = NULL;
			if (!got && now >= s->next_probe && p->prober_started) {
				s->next_probe = now + PROBE_INTERVAL_MS;
				p->probe_want |= 1u << i;
				pthread_cond_signal(&p->pcv);
			}
			pthread_mutex_unlock(&p->pmu);
			if (!got)
				continue;
			s->st = got;
			/* Back: whatever it held of ours is stale. */
			if (s->npurge && s->st->ops->free_keys(s->st, s->purge, s->npurge) < 0) {
				close_store(s);
				continue;
			}
			s->npurge = 0;
			s->up = 1;
			s->full_until = 0;
			s->draining = 0;
			p->repair_idle = 0;
			plog(p, SDRSA_LOG_WARN,
			     "memory server %s is back: used again for new pages and copies",
			     s->address);
			continue;
		}
		uint64_t t0 = sdrsa_now_ns();
		int r = store_sdrsa_ping(s->st);
		if (r == 0) {
			uint64_t us = (sdrsa_now_ns() - t0) / 1000;
			s->rtt_us = s->rtt_us ? (s->rtt_us * 7 + us) / 8 : us;
			struct sdrsa_stats ss;
			r = store_sdrsa_stats(s->st, &ss);
			if (r == 0) {
				int dr = ss.draining != 0;
				if (dr && !s->draining)
					plog(p, SDRSA_LOG_WARN,
					     "memory server %s is draining: moving our %llu pages "
					     "off it",
					     s->address, (unsigned long long)s->pages);
				if (dr != s->draining)
					p->repair_idle = 0;
				s->draining = dr;
			}
		}
		if (r < 0 && is_conn_error(r))
			mark_down(p, i, r);
	}
}

/* Does key (mask) need a copy, and where from/to? Returns 1 with *from and
 * *to set, 0 when nothing can be done for it now. A copy on a draining
 * server does not count; once enough copies are elsewhere it is freed. */
static int needs_copy(struct store_pool *p, uint64_t key, uint32_t mask, uint64_t now, int *from,
		      int *to)
{
	uint32_t good = 0, drain = 0;
	for (unsigned i = 0; i < p->n; i++)
		if (mask & (1u << i)) {
			if (p->srv[i].draining)
				drain |= 1u << i;
			else
				good |= 1u << i;
		}
	if (popcount(good) >= p->replicas || (!drain && popcount(mask) >= p->replicas))
		return 0;
	*from = best_copy(p, mask);
	if (*from < 0)
		return 0;
	uint8_t order[STORE_POOL_MAX];
	rank(p, key, order);
	for (unsigned j = 0; j < p->n; j++)
		if (!(mask & (1u << order[j])) && eligible(p, order[j], now)) {
			*to = order[j];
			return 1;
		}
	return 0;
}

/* Free the copies on draining servers of keys that have enough copies
 * elsewhere: R, or as many as the servers that are not draining allow. */
static void release_drained(struct store_pool *p, const uint64_t *keys, size_t n)
{
	uint32_t drain = 0;
	unsigned keep = 0;
	for (unsigned t = 0; t < p->n; t++) {
		if (p->srv[t].draining)
			drain |= 1u << t;
		else
			keep += p->srv[t].up;
	}
	keep = MIN(keep, p->replicas);
	for (unsigned s = 0; s < p->n; s++) {
		if (!(drain & (1u << s)) || !p->srv[s].up)
			continue;
		uint64_t k[REPAIR_BATCH];
		size_t m = 0;
		for (size_t i = 0; i < n; i++) {
			uint32_t mask = loc_get(p, keys[i]);
			uint32_t good = mask & ~drain;
			if ((mask & (1u << s)) && good && popcount(good) >= keep) {
				k[m++] = keys[i];
				(void)loc_set(p, keys[i], mask & ~(1u << s));
			}
		}
		free_on(p, s, k, m);
	}
}

/* Copy up to REPAIR_BATCH under-replicated (or draining) pages. */
static void repair(struct store_pool *p, uint64_t now)
{
	uint64_t key[REPAIR_BATCH];
	int from, to[REPAIR_BATCH];
	size_t m = 0, scanned = 0;
	int any_draining = 0;
	for (unsigned i = 0; i < p->n; i++)
		any_draining |= p->srv[i].up && p->srv[i].draining;
	if (!p->under && !any_draining)
		return;
	while (m < REPAIR_BATCH && scanned < MIN(p->cap, (size_t)SCAN_PER_TICK)) {
		size_t j = p->cursor;
		p->cursor = (p->cursor + 1) & (p->cap - 1);
		scanned++;
		if (p->keys[j] == EMPTY_KEY)
			continue;
		if (needs_copy(p, p->keys[j], p->masks[j], now, &from, &to[m]))
			key[m++] = p->keys[j];
		else if (any_draining)
			release_drained(p, &p->keys[j], 1);
	}
	if (!m) {
		p->scan_empty += scanned;
		if (p->scan_empty >= p->cap)
			p->repair_idle = 1; /* nothing fixable now: wait for a change */
		return;
	}
	p->scan_empty = 0;
	/* Read each page from its best copy, then store it on its target. */
	void *pages[REPAIR_BATCH];
	for (size_t i = 0; i < m; i++)
		pages[i] = p->buf + i * SDRSA_PAGE_SIZE;
	if (fetch(p, key, pages, m, store_arrived_ignore, NULL, NULL, NULL) < 0)
		return; /* a key lost every copy (logged) or a server failed: next tick */
	for (unsigned s = 0; s < p->n; s++) {
		uint64_t k[REPAIR_BATCH];
		const void *pg[REPAIR_BATCH];
		int res[REPAIR_BATCH];
		size_t c = 0;
		for (size_t i = 0; i < m; i++)
			if (to[i] == (int)s) {
				k[c] = key[i];
				pg[c++] = pages[i];
			}
		struct pool_server *sv = &p->srv[s];
		if (!c || !sv->up)
			continue;
		int r = sv->st->ops->put_many(sv->st, k, pg, c, res);
		int down = 0;
		for (size_t i = 0; i < c; i++) {
			int ri = r == 0 ? 0 : res[i];
			if (ri == 0) {
				/* The key may have been freed by a failed fetch. */
				if (loc_known(p, k[i])) {
					(void)loc_set(p, k[i], loc_get(p, k[i]) | (1u << s));
					p->base.pages_rereplicated++;
				}
			} else if (ri == -ENOSPC || ri == -EDQUOT) {
				sv->full_until = now + FULL_BACKOFF_MS;
			} else {
				down = ri;
			}
		}
		if (down)
			mark_down(p, s, down);
	}
	release_drained(p, key, m);
}

static int pool_tick(struct store *st)
{
	struct store_pool *p = (struct store_pool *)st;
	if (p->child)
		return -1;
	uint64_t now = sdrsa_now_ms();
	if (now >= p->next_probe) {
		p->next_probe = now + PROBE_INTERVAL_MS;
		probe(p, now);
	}
	if (!p->repair_idle && now >= p->next_repair) {
		p->next_repair = now + REPAIR_INTERVAL_MS;
		repair(p, now);
	}
	refresh_counters(p);
	uint64_t next = p->next_probe;
	if (!p->repair_idle)
		next = MIN(next, p->next_repair);
	now = sdrsa_now_ms();
	return next > now ? (int)(next - now) : 0;
}

static void pool_destroy(struct store *st)
{
	struct store_pool *p = (struct store_pool *)st;
	if (p->prober_started) {
		pthread_mutex_lock(&p->pmu);
		p->prober_stop = 1;
		pthread_cond_signal(&p->pcv);
		pthread_mutex_unlock(&p->pmu);
		pthread_join(p->prober, NULL);
	}
	for (unsigned i = 0; i < p->n; i++) {
		store_free(p->probe_got[i]);
		store_free(p->srv[i].st);
		free(p->srv[i].address);
		free(p->srv[i].purge);
	}
	free(p->keys);
	free(p->masks);
	free(p->buf);
	free(p->fetch_mem.mem);
	free(p->put_mem.mem);
	free(p->free_mem.mem);
	free(p->name);
	pthread_mutex_destroy(&p->pmu);
	pthread_cond_destroy(&p->pcv);
	free(p);
}

static void pool_fork_child(struct store *st)
{
	struct store_pool *p = (struct store_pool *)st;
	p->child = 1;
	p->prober_started = 0; /* the parent's thread; the child probes nothing */
	for (unsigned i = 0; i < p->n; i++)
		if (p->srv[i].st && p->srv[i].st->ops->fork_child)
			p->srv[i].st->ops->fork_child(p->srv[i].st);
}

static const struct store_ops pool_ops = {
	.get_many = pool_get_many,
	.get_stream = pool_get_stream,
	.get_stream_want = pool_get_stream_want,
	.put_many = pool_put_many,
	.free_keys = pool_free_keys,
	.free_all = pool_free_all,
	.destroy = pool_destroy,
	.fork_child = pool_fork_child,
	.tick = pool_tick,
};

int store_pool_new(const struct store_pool_config *cfg, struct store **ret)
{
	if (!cfg || !cfg->n || cfg->n > STORE_POOL_MAX || !ret)
		return -EINVAL;
	unsigned replicas = cfg->replicas ? cfg->replicas : cfg->n >= 2 ? 2 : 1;
	if (replicas > cfg->n) {
		sdrsa_log_to(cfg->log, cfg->log_userdata, SDRSA_LOG_ERR,
			     "%u replicas asked for, but the pool has only %zu servers", replicas,
			     cfg->n);
		return -EINVAL;
	}
	struct store_pool *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	pthread_mutex_init(&p->pmu, NULL);
	pthread_cond_init(&p->pcv, NULL);
	p->base.ops = &pool_ops;
	p->n = (unsigned)cfg->n;
	p->replicas = replicas;
	p->name = cfg->name ? strdup(cfg->name) : NULL;
	/* A dead server must cost the program little: a short per-operation
	 * timeout, and with other copies to read one reconnect attempt only. */
	p->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 1000;
	p->retry_ms = replicas >= 2 ? 1 : cfg->retry_ms;
	p->log = cfg->log;
	p->log_ud = cfg->log_userdata;
	p->cap = 4096;
	p->keys = malloc(p->cap * sizeof(*p->keys));
	p->masks = malloc(p->cap * sizeof(*p->masks));
	p->buf = malloc((size_t)REPAIR_BATCH * SDRSA_PAGE_SIZE);
	int r = 0;
	if (!p->keys || !p->masks || !p->buf || (cfg->name && !p->name)) {
		r = -ENOMEM;
		goto fail;
	}
	memset(p->keys, 0xff, p->cap * sizeof(*p->keys));
	int first_err = 0;
	for (unsigned i = 0; i < p->n; i++) {
		struct pool_server *s = &p->srv[i];
		s->address = strdup(cfg->servers[i].address);
		if (!s->address) {
			r = -ENOMEM;
			goto fail;
		}
		if (cfg->servers[i].key) {
			memcpy(s->key, cfg->servers[i].key, SDRSA_KEY_SIZE);
			s->has_key = 1;
		}
		int rc = open_store(p, i, &s->st);
		if (rc < 0) {
			plog(p, SDRSA_LOG_WARN, "memory server %s: %s; it is left out until it answers",
			     s->address, strerror(-rc));
			if (!first_err)
				first_err = rc;
			s->next_probe = sdrsa_now_ms() + PROBE_INTERVAL_MS;
			s->weight = cfg->servers[i].weight ? cfg->servers[i].weight : 1;
			continue;
		}
		s->up = 1;
		s->weight = cfg->servers[i].weight;
		struct sdrsa_stats ss;
		if (!s->weight && store_sdrsa_stats(s->st, &ss) == 0) {
			/* Free capacity, in GiB: the weight of a server. */
			uint64_t free_pages = ss.pool_pages > ss.used_pages ? ss.pool_pages - ss.used_pages
									    : 0;
			if (ss.ns_quota && ss.ns_quota > ss.ns_pages)
				free_pages = MIN(free_pages, ss.ns_quota - ss.ns_pages);
			s->weight = (double)free_pages / 262144.0;
			s->draining = ss.draining != 0;
		}
		if (s->weight <= 0)
			s->weight = 1.0 / 262144.0;
	}
	if (servers_up(p) < replicas) {
		plog(p, SDRSA_LOG_ERR,
		     "only %u of %u memory servers answer, fewer than the %u replicas asked for",
		     servers_up(p), p->n, replicas);
		r = first_err ? first_err : -EHOSTDOWN;
		goto fail;
	}
	p->repair_idle = 1;
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	p->prober_started = pthread_create(&p->prober, NULL, prober_main, p) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!p->prober_started) {
		r = -EAGAIN;
		goto fail;
	}
	refresh_counters(p);
	*ret = &p->base;
	return 0;
fail:
	pool_destroy(&p->base);
	return r;
}
