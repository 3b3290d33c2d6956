// SPDX-License-Identifier: MIT
/*
 * Page store on a memcached fleet, through libmemcached (binary protocol,
 * ketama consistent hashing over the servers, so adding or losing one
 * server moves only its share of the keys). For sites that already run
 * memcached; docs/MEMCACHED.md says what it gives up against memory servers.
 *
 * Items. Key "<namespace>:<page key in hex>": the namespace is the engine's
 * name, so two engines sharing a fleet never see each other's pages. Value:
 * a 24-byte header (magic, page key, XXH3-64 of the page seeded with the
 * page key and a hash of the namespace) followed by the 4096 bytes. A get
 * checks the length, the magic, the key and the checksum: memcached may
 * evict an item at any time or lose a server, and a page that is missing or
 * does not match is a loud failure (-EIO, with the reason in store.why),
 * never zeros or another page's data.
 *
 * Puts go out as quiet SETs (SETQ) buffered by libmemcached, many per write.
 * A quiet SET that fails (memcached out of memory, item too large) is only
 * answered with an error that libmemcached drops, and it leaves the previous
 * version of the item in place, whose checksum is valid: reading it later
 * would be stale data. So each batch is read back with one multi-get on the
 * same connections (memcached answers a connection's requests in order):
 * a page whose item is absent or carries another checksum was refused and
 * is reported -ENOSPC (the engine keeps it local, as with a full memory
 * server). The read-back doubles the bytes on the wire for puts; measured
 * in docs/PERFORMANCE.md.
 *
 * Gets: one multi-get (GETKQ per key, a NOOP per server) for the whole
 * batch, so all servers work at once; pages are handed to the engine as they
 * arrive. Frees: quiet DELETEs, flushed once per batch.
 *
 * free_all: memcached cannot list or drop a prefix, so the store remembers
 * every key it stored (an open-addressing set of 8-byte keys, a quarter to
 * half full: 16 to 32 bytes per stored page) and deletes them. (A generation number in the prefix would
 * make old pages unreachable at once, but would leave them taking memcached
 * memory until its LRU pushes them out.)
 *
 * Under rsa-app (SDRSA_FREE_AT_EXIT=0) the program's pages are freed by
 * rsa-app after the program is gone, also after a crash, when no store is
 * left to remember its keys. So such a store keeps a record on the fleet:
 * it takes a slot number from the counter item "<namespace>:procs" (an
 * atomic increment) and writes the range of keys it uses to
 * "<namespace>:proc:<slot>" ("LO HI" in hex, HI ahead by 1024 pages, so it
 * is rewritten once per 1024 new keys; engine keys are dense: a counter
 * under a per-process prefix). store_memcached_free_namespace() reads the
 * records and deletes every key of every range. Neither name is a hex
 * number, so they never meet a page's key. If memcached evicts a record,
 * that process's pages stay until memcached's LRU drops them.
 *
 * Connection errors (a server down or silent longer than the timeout) are
 * retried with backoff (50 ms doubling to 500 ms) for retry_ms, then the
 * operation fails and the engine stops the program. A memcached that comes
 * back has lost its items: the next get of one of them fails loudly.
 *
 * Replication: not offered. libmemcached's NUMBER_OF_REPLICAS writes the
 * copies with unacknowledged quiet SETs to the next servers in list order,
 * reads a copy only when the first server cannot be reached (not when it
 * evicted the item), and a put whose first server is down fails. See
 * docs/MEMCACHED.md.
 *
 * fork_child: the parent's connections are left alone (their descriptors
 * are the parent's sockets; memcached_free() would send QUIT on them): the
 * child clones the handle (same servers and settings, no connections) on
 * first use and never frees the parent's copy (a small leak in the child).
 *
 * One thread at a time (the engine's lock). No allocation per page: key and
 * value buffers grow with the largest batch seen.
 */
#include <errno.h>
#include <stdarg.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libmemcached/memcached.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "common/util.h"
#include "engine/store.h"

#define PAGE 4096u
#define MC_MAGIC 0x31504453u /* "SDP1" */
#define MC_HDR 24u
#define MC_VALUE (MC_HDR + PAGE)
#define MC_KEY_MAX 200u /* memcached allows 250 bytes */
#define MC_NS_MAX (MC_KEY_MAX - 18u)

struct mc_hdr {
	uint32_t magic;
	uint32_t zero;
	uint64_t key;
	uint64_t sum;
};

struct mc_slot {
	uint64_t key;
	size_t idx;
};

struct store_mc {
	struct store base;
	memcached_st *m;        /* NULL in a fork child until first use */
	memcached_st *parent_m; /* a fork child: the parent's handle, never used */
	memcached_st *meta;     /* replies on, unbuffered: the key-range record */
	int keep_record;        /* rsa-app frees the namespace: keep the record */
	uint64_t slot;          /* our "<ns>:proc:<slot>"; 0: none (yet) */
	uint64_t rec_lo, rec_hi; /* range written there */
	char *servers;          /* "h1:p1,h2:p2", as given */
	char ns[MC_NS_MAX + 1];
	size_t nslen;
	uint64_t ns_seed;
	int retry_ms;
	int timeout_ms;
	memcached_result_st result;
	int have_result;
	/* Per-batch scratch, grown as needed. */
	size_t cap;
	char *keytxt;          /* cap x MC_KEY_MAX */
	const char **keyp;
	size_t *keylen;
	struct mc_slot *sorted;  /* (key, index), sorted: results back to pages */
	uint64_t *sums;          /* expected checksums of a put batch */
	uint8_t *state;
	size_t *arrived;
	unsigned char value[MC_VALUE];
	/* Keys stored (free_all): open addressing, linear probing, 0 = empty. */
	uint64_t *set;
	size_t setcap, setn; /* setcap: power of two */
	char whybuf[256];
};

/* ---- the set of stored keys ---- */

static size_t set_slot(const struct store_mc *s, uint64_t key)
{
	return (size_t)((key >> 12) * 0x9E3779B97F4A7C15ull >> 17) & (s->setcap - 1);
}

static int set_grow(struct store_mc *s)
{
	size_t ncap = s->setcap ? s->setcap * 2 : 4096;
	uint64_t *n = calloc(ncap, sizeof(*n));
	if (!n)
		return -ENOMEM;
	uint64_t *old = s->set;
	size_t ocap = s->setcap;
	s->set = n;
	s->setcap = ncap;
	for (size_t i = 0; i < ocap; i++) {
		if (!old[i])
			continue;
		size_t j = set_slot(s, old[i]);
		while (n[j])
			j = (j + 1) & (ncap - 1);
		n[j] = old[i];
	}
	free(old);
	return 0;
}

static int set_add(struct store_mc *s, uint64_t key)
{
	if ((s->setn + 1) * 2 > s->setcap && set_grow(s) < 0)
		return -ENOMEM;
	size_t j = set_slot(s, key);
	while (s->set[j] && s->set[j] != key)
		j = (j + 1) & (s->setcap - 1);
	if (!s->set[j]) {
		s->set[j] = key;
		s->setn++;
	}
	return 0;
}

/* Remove with backward shift, so that no tombstones are needed. */
static void set_del(struct store_mc *s, uint64_t key)
{
	if (!s->setcap)
		return;
	size_t mask = s->setcap - 1, j = set_slot(s, key);
	while (s->set[j] && s->set[j] != key)
		j = (j + 1) & mask;
	if (!s->set[j])
		return;
	s->set[j] = 0;
	s->setn--;
	for (size_t k = (j + 1) & mask; s->set[k]; k = (k + 1) & mask) {
		size_t home = set_slot(s, s->set[k]);
		/* Move s->set[k] into the hole at j unless its home lies in (j, k]. */
		if (((k - home) & mask) >= ((k - j) & mask)) {
			s->set[j] = s->set[k];
			s->set[k] = 0;
			j = k;
		}
	}
}

/* ---- helpers ---- */

static int grow(struct store_mc *s, size_t n)
{
	if (n <= s->cap)
		return 0;
	size_t c = s->cap ? s->cap : 64;
	while (c < n)
		c *= 2;
	char *kt = realloc(s->keytxt, c * MC_KEY_MAX);
	if (kt)
		s->keytxt = kt;
	const char **kp = realloc(s->keyp, c * sizeof(*kp));
	if (kp)
		s->keyp = kp;
	size_t *kl = realloc(s->keylen, c * sizeof(*kl));
	if (kl)
		s->keylen = kl;
	struct mc_slot *so = realloc(s->sorted, c * sizeof(*so));
	if (so)
		s->sorted = so;
	uint64_t *su = realloc(s->sums, c * sizeof(*su));
	if (su)
		s->sums = su;
	uint8_t *st = realloc(s->state, c);
	if (st)
		s->state = st;
	size_t *ar = realloc(s->arrived, c * sizeof(*ar));
	if (ar)
		s->arrived = ar;
	if (!kt || !kp || !kl || !so || !su || !st || !ar)
		return -ENOMEM;
	s->cap = c;
	return 0;
}

static size_t key_text(const struct store_mc *s, uint64_t key, char *out)
{
	memcpy(out, s->ns, s->nslen);
	int n = snprintf(out + s->nslen, MC_KEY_MAX - s->nslen, ":%llx", (unsigned long long)key);
	return s->nslen + (size_t)n;
}

static uint64_t page_sum(const struct store_mc *s, uint64_t key, const void *page)
{
	return XXH3_64bits_withSeed(page, PAGE, key ^ s->ns_seed);
}

static int cmp_slot(const void *a, const void *b)
{
	uint64_t x = ((const struct mc_slot *)a)->key, y = ((const struct mc_slot *)b)->key;
	return x < y ? -1 : x > y;
}

/* Index of the page whose item came back as key text k, or SIZE_MAX. */
static size_t index_of(const struct store_mc *s, size_t n, const char *k, size_t klen)
{
	if (klen <= s->nslen + 1 || klen > s->nslen + 17 || memcmp(k, s->ns, s->nslen) ||
	    k[s->nslen] != ':')
		return SIZE_MAX;
	uint64_t key = 0;
	for (size_t i = s->nslen + 1; i < klen; i++) {
		char c = k[i];
		unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0')
			     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
						    : 16;
		if (d > 15)
			return SIZE_MAX;
		key = key << 4 | d;
	}
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (s->sorted[mid].key < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && s->sorted[lo].key == key ? s->sorted[lo].idx : SIZE_MAX;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int ensure_handle(struct store_mc *s)
{
	if (!s->m && !(s->m = memcached_clone(NULL, s->parent_m)))
		return -ENOMEM;
	if (!s->have_result) {
		if (!memcached_result_create(s->m, &s->result))
			return -ENOMEM;
		s->have_result = 1;
	}
	s->base.why = NULL;
	return 0;
}

/* Where a key lives, for messages. */
static void server_of(struct store_mc *s, const char *k, size_t klen, char *out, size_t n)
{
	memcached_return_t rc;
	const memcached_instance_st *in = memcached_server_by_key(s->m, k, klen, &rc);
	if (in)
		snprintf(out, n, "%s:%u", memcached_server_name(in),
			 (unsigned)memcached_server_port(in));
	else
		snprintf(out, n, "?");
}

static void set_why(struct store_mc *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_why(struct store_mc *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->whybuf, sizeof(s->whybuf), fmt, ap);
	va_end(ap);
	s->base.why = s->whybuf;
}

/* A connection-level failure: worth retrying (server down, timed out). */
static int is_conn_rc(memcached_return_t rc)
{
	switch (rc) {
	case MEMCACHED_SUCCESS:
	case MEMCACHED_END:
	case MEMCACHED_NOTFOUND:
	case MEMCACHED_BUFFERED:
	case MEMCACHED_STORED:
	case MEMCACHED_DELETED:
		return 0;
	default:
		return 1;
	}
}

static int errno_of(memcached_return_t rc)
{
	switch (rc) {
	case MEMCACHED_TIMEOUT:
		return -ETIMEDOUT;
	case MEMCACHED_CONNECTION_FAILURE:
	case MEMCACHED_SERVER_MARKED_DEAD:
	case MEMCACHED_SERVER_TEMPORARILY_DISABLED:
	case MEMCACHED_NO_SERVERS:
		return -ECONNREFUSED;
	case MEMCACHED_MEMORY_ALLOCATION_FAILURE:
		return -ENOMEM;
	default:
		return -EIO;
	}
}

/*
 * After a connection failure, start over with fresh connections: a clone of
 * the handle (same servers and settings, none of the state). libmemcached
 * keeps counts of replies due and buffered bytes per server, and going on
 * with a server reset in the middle of a buffered write can end in one of
 * its assertions (seen with a memcached stopped by SIGSTOP) instead of an
 * error. Freeing the old handle sends QUIT where a connection is still up.
 */
static void reset_handle(struct store_mc *s)
{
	memcached_st *fresh = memcached_clone(NULL, s->m);
	if (!fresh)
		return; /* keep the old one: the retry fails and is reported */
	if (s->have_result)
		memcached_result_free(&s->result);
	s->have_result = 0;
	memcached_free(s->m);
	s->m = fresh;
	if (memcached_result_create(s->m, &s->result))
		s->have_result = 1;
}

/* Backoff before retrying after a connection failure; 0 to retry, else the
 * error to report (retry_ms spent). */
static int backoff(struct store_mc *s, uint64_t *t0, int *delay, int err)
{
	uint64_t now = sdrsa_now_ms();
	if (!*t0)
		*t0 = now;
	reset_handle(s);
	if (now - *t0 >= (uint64_t)s->retry_ms || !s->have_result)
		return err;
	s->base.retries++;
	sleep_ms(*delay);
	*delay = MIN(*delay * 2, 500);
	return 0;
}

/*
 * One multi-get of the pages whose state is WANT. Pages that arrive intact
 * go to pages[i] and become DONE (and are handed to arrived(), if given).
 * A page that came back with a wrong size, header or checksum becomes BAD;
 * with `expect` (the read-back of a put) so does one that is not the version
 * just stored. Returns 0 when the servers answered (pages may still be
 * missing), or the connection error (as -errno) after which the WANT ones
 * may be retried.
 */
enum { WANT = 0, DONE, BAD };

static int mget_once(struct store_mc *s, const uint64_t *keys, void *const *pages,
		     const uint64_t *expect, size_t n,
		     void (*arrived)(void *ctx, const size_t *idx, size_t k), void *ctx)
{
	size_t cnt = 0;
	for (size_t i = 0; i < n; i++) {
		if (s->state[i] != WANT)
			continue;
		char *kt = s->keytxt + i * MC_KEY_MAX;
		s->keyp[cnt] = kt;
		s->keylen[cnt] = key_text(s, keys[i], kt);
		cnt++;
	}
	if (!cnt)
		return 0;
	memcached_return_t rc = memcached_mget(s->m, s->keyp, s->keylen, cnt);
	int conn = 0;
	if (rc != MEMCACHED_SUCCESS)
		conn = errno_of(rc == MEMCACHED_SOME_ERRORS ? MEMCACHED_CONNECTION_FAILURE : rc);
	size_t k = 0;
	memcached_return_t frc = MEMCACHED_SUCCESS;
	for (;;) {
		memcached_result_st *res = memcached_fetch_result(s->m, &s->result, &frc);
		if (!res)
			break;
		size_t i = index_of(s, n, memcached_result_key_value(res),
				    memcached_result_key_length(res));
		if (i == SIZE_MAX || s->state[i] != WANT)
			continue;
		const char *v = memcached_result_value(res);
		struct mc_hdr h;
		if (memcached_result_length(res) != MC_VALUE) {
			s->state[i] = BAD;
			continue;
		}
		memcpy(&h, v, sizeof(h));
		if (h.magic != MC_MAGIC || h.key != keys[i]) {
			s->state[i] = BAD;
			continue;
		}
		if (expect) {
			/* Read-back of a put: the item must be this version. */
			s->state[i] = h.sum == expect[i] && page_sum(s, keys[i], v + MC_HDR) == h.sum
					      ? DONE
					      : BAD;
			continue;
		}
		if (page_sum(s, keys[i], v + MC_HDR) != h.sum) {
			s->state[i] = BAD;
			continue;
		}
		memcpy(pages[i], v + MC_HDR, PAGE);
		s->state[i] = DONE;
		s->base.bytes_recv += PAGE;
		s->arrived[k++] = i;
		/* The faulting page (index 0) goes at once: a thread waits on it. */
		if (arrived && (k == 16 || i == 0)) {
			arrived(ctx, s->arrived, k);
			k = 0;
		}
	}
	if (arrived && k)
		arrived(ctx, s->arrived, k);
	if (!conn && frc != MEMCACHED_END && frc != MEMCACHED_SUCCESS && frc != MEMCACHED_NOTFOUND)
		conn = errno_of(frc);
	return conn;
}

static void sort_keys(struct store_mc *s, const uint64_t *keys, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		s->sorted[i].key = keys[i];
		s->sorted[i].idx = i;
	}
	qsort(s->sorted, n, sizeof(*s->sorted), cmp_slot);
}

static int mc_get_stream(struct store *st, const uint64_t *keys, void *const *pages, size_t n,
			 void (*arrived)(void *ctx, const size_t *idx, size_t k), void *ctx,
			 uint64_t *csums)
{
	(void)csums; /* gives none */
	struct store_mc *s = (struct store_mc *)st;
	int r = ensure_handle(s);
	if (r < 0 || (r = grow(s, n)) < 0)
		return r;
	sort_keys(s, keys, n);
	memset(s->state, WANT, n);
	uint64_t t0 = 0;
	int delay = 50, badtries = 0;
	for (;;) {
		int conn = mget_once(s, keys, pages, NULL, n, arrived, ctx);
		size_t want = 0, bad = SIZE_MAX;
		for (size_t i = 0; i < n; i++) {
			if (s->state[i] == BAD && bad == SIZE_MAX)
				bad = i;
			if (s->state[i] != DONE)
				want++;
		}
		if (!want)
			return 0;
		if (bad != SIZE_MAX && badtries < 2) {
			/* A damaged item: read it again, in case it was the wire. */
			badtries++;
			for (size_t i = 0; i < n; i++)
				if (s->state[i] == BAD)
					s->state[i] = WANT;
			continue;
		}
		char where[128], *kt = s->keytxt;
		if (conn) {
			r = backoff(s, &t0, &delay, conn);
			if (r == 0)
				continue;
			for (size_t i = 0; i < n; i++)
				if (s->state[i] != DONE) {
					kt = s->keytxt + i * MC_KEY_MAX;
					server_of(s, kt, key_text(s, keys[i], kt), where,
						  sizeof(where));
					break;
				}
			set_why(s, "memcached %s (or another of %s) does not answer", where,
				s->servers);
			return r;
		}
		size_t i = bad != SIZE_MAX ? bad : 0;
		while (bad == SIZE_MAX && s->state[i] == DONE)
			i++;
		kt = s->keytxt + i * MC_KEY_MAX;
		server_of(s, kt, key_text(s, keys[i], kt), where, sizeof(where));
		if (bad != SIZE_MAX)
			set_why(s, "item %s on memcached %s is damaged (checksum or header wrong)",
				kt, where);
		else
			set_why(s,
				"item %s is missing on memcached %s: evicted (memcached too small) "
				"or the server restarted",
				kt, where);
		return -EIO;
	}
}

static int mc_get_many(struct store *st, const uint64_t *keys, void *const *pages, size_t n)
{
	return mc_get_stream(st, keys, pages, n, NULL, NULL, NULL);
}

/* Keep "<ns>:proc:<slot>" covering the keys stored (see the top). Best
 * effort: a failure only means rsa-app may not free those pages after a
 * crash. */
#define RECORD_AHEAD (1024ull * PAGE)

static void record_range(struct store_mc *s, const uint64_t *keys, size_t n)
{
	uint64_t lo = s->rec_lo, hi = s->rec_hi;
	for (size_t i = 0; i < n; i++) {
		if (s->state[i] != DONE)
			continue;
		if (!lo || keys[i] < lo)
			lo = keys[i];
		if (keys[i] > hi)
			hi = keys[i] + RECORD_AHEAD;
	}
	if (lo == s->rec_lo && hi == s->rec_hi)
		return;
	char k[MC_KEY_MAX], v[48];
	if (!s->meta) {
		s->meta = memcached_clone(NULL, s->m);
		if (!s->meta)
			return;
		memcached_behavior_set(s->meta, MEMCACHED_BEHAVIOR_NOREPLY, 0);
		memcached_behavior_set(s->meta, MEMCACHED_BEHAVIOR_BUFFER_REQUESTS, 0);
	}
	if (!s->slot) {
		int kl = snprintf(k, sizeof(k), "%s:procs", s->ns);
		uint64_t slot = 0;
		if (memcached_increment_with_initial(s->meta, k, (size_t)kl, 1, 1, 0, &slot) !=
			    MEMCACHED_SUCCESS ||
		    !slot)
			return;
		s->slot = slot;
	}
	int kl = snprintf(k, sizeof(k), "%s:proc:%llu", s->ns, (unsigned long long)s->slot);
	int vl = snprintf(v, sizeof(v), "%llx %llx", (unsigned long long)lo,
			  (unsigned long long)hi);
	if (memcached_set(s->meta, k, (size_t)kl, v, (size_t)vl, 0, 0) == MEMCACHED_SUCCESS) {
		s->rec_lo = lo;
		s->rec_hi = hi;
	}
}

/* Send the pages whose result is still to be decided as quiet SETs, then read
 * them back. results[i]: 0 stored, -ENOSPC refused; a connection error is
 * retried here until retry_ms is spent. */
static int mc_put_many(struct store *st, const uint64_t *keys, const void *const *pages, size_t n,
		       int *results)
{
	struct store_mc *s = (struct store_mc *)st;
	int r = ensure_handle(s);
	if (r < 0 || (r = grow(s, n)) < 0) {
		for (size_t i = 0; i < n && results; i++)
			results[i] = r;
		return r;
	}
	sort_keys(s, keys, n);
	memset(s->state, WANT, n);
	uint64_t t0 = 0;
	int delay = 50;
	for (;;) {
		int conn = 0;
		for (size_t i = 0; i < n; i++) {
			if (s->state[i] != WANT)
				continue;
			struct mc_hdr h = {.magic = MC_MAGIC, .key = keys[i]};
			h.sum = s->sums[i] = page_sum(s, keys[i], pages[i]);
			memcpy(s->value, &h, sizeof(h));
			memcpy(s->value + MC_HDR, pages[i], PAGE);
			char *kt = s->keytxt + i * MC_KEY_MAX;
			size_t kl = key_text(s, keys[i], kt);
			memcached_return_t rc =
				memcached_set(s->m, kt, kl, (const char *)s->value, MC_VALUE, 0, 0);
			if (rc != MEMCACHED_SUCCESS && rc != MEMCACHED_BUFFERED) {
				conn = errno_of(rc);
				break; /* the rest after the reset */
			}
		}
		/* Read back what was sent (this also flushes the buffered SETs). */
		if (!conn)
			conn = mget_once(s, keys, (void *const *)pages, s->sums, n, NULL, NULL);
		if (conn) {
			/* Send again whatever was not confirmed. */
			for (size_t i = 0; i < n; i++)
				if (s->state[i] == BAD)
					s->state[i] = WANT;
			r = backoff(s, &t0, &delay, conn);
			if (r == 0)
				continue;
			char where[128];
			size_t bad = 0;
			while (bad + 1 < n && s->state[bad] == DONE)
				bad++;
			char *kt = s->keytxt + bad * MC_KEY_MAX;
			server_of(s, kt, key_text(s, keys[bad], kt), where, sizeof(where));
			set_why(s, "memcached %s (or another of %s) does not answer", where,
				s->servers);
			int first = 0;
			for (size_t i = 0; i < n; i++) {
				int ri = s->state[i] == DONE ? 0 : r;
				if (results)
					results[i] = ri;
				if (ri == 0) {
					st->bytes_sent += PAGE;
					(void)set_add(s, keys[i]);
				} else if (!first) {
					first = ri;
				}
			}
			return first;
		}
		if (s->keep_record)
			record_range(s, keys, n);
		int first = 0;
		for (size_t i = 0; i < n; i++) {
			/* Absent or another version after the SET: memcached
			 * refused it (out of memory, or evicted at once). */
			int ri = s->state[i] == DONE ? 0 : -ENOSPC;
			if (ri == 0 && set_add(s, keys[i]) < 0)
				ri = -ENOMEM;
			if (results)
				results[i] = ri;
			if (ri == 0)
				st->bytes_sent += PAGE;
			else if (!first)
				first = ri;
		}
		return first;
	}
}

/* Read every reply still due on every server (a multi-get does that
 * before it sends its own request): the deletes sent before are done when
 * this returns. */
static memcached_return_t drain(memcached_st *m, const char *ns)
{
	char k[MC_KEY_MAX];
	const char *kp = k;
	size_t kl = (size_t)snprintf(k, sizeof(k), "%s:sync", ns);
	memcached_return_t rc = memcached_mget(m, &kp, &kl, 1);
	if (rc != MEMCACHED_SUCCESS)
		return rc;
	memcached_result_st *res;
	while ((res = memcached_fetch_result(m, NULL, &rc)))
		memcached_result_free(res);
	return rc == MEMCACHED_END || rc == MEMCACHED_NOTFOUND ? MEMCACHED_SUCCESS : rc;
}

static int mc_free_keys(struct store *st, const uint64_t *keys, size_t n)
{
	struct store_mc *s = (struct store_mc *)st;
	int r = ensure_handle(s);
	if (r < 0)
		return r;
	uint64_t t0 = 0;
	int delay = 50;
	for (;;) {
		memcached_return_t bad = MEMCACHED_SUCCESS;
		/* DELETEs with replies, still buffered: a quiet DELETE of a key
		 * memcached no longer has (evicted) is answered with an error
		 * that libmemcached would take for the answer to the next
		 * request. Counted replies are read and dropped by libmemcached
		 * as they pile up, and all of them by drain(): the pages are
		 * gone when this returns (they go on the same connections as
		 * later SETs anyway, so a recycled key's new page is never hit
		 * by its old delete). */
		memcached_behavior_set(s->m, MEMCACHED_BEHAVIOR_NOREPLY, 0);
		for (size_t i = 0; i < n; i++) {
			char kt[MC_KEY_MAX];
			size_t kl = key_text(s, keys[i], kt);
			memcached_return_t rc = memcached_delete(s->m, kt, kl, 0);
			if (is_conn_rc(rc)) {
				bad = rc;
				break; /* all again after the reset */
			}
		}
		memcached_behavior_set(s->m, MEMCACHED_BEHAVIOR_NOREPLY, 1);
		memcached_return_t rc = bad ? bad : memcached_flush_buffers(s->m);
		if (rc == MEMCACHED_SUCCESS)
			rc = drain(s->m, s->ns);
		if (bad == MEMCACHED_SUCCESS && is_conn_rc(rc))
			bad = rc;
		if (bad == MEMCACHED_SUCCESS) {
			for (size_t i = 0; i < n; i++)
				set_del(s, keys[i]);
			return 0;
		}
		r = backoff(s, &t0, &delay, errno_of(bad));
		if (r < 0) {
			set_why(s, "cannot delete pages on memcached (%s)", s->servers);
			return r;
		}
	}
}

static int mc_free_all(struct store *st, uint64_t *freed)
{
	struct store_mc *s = (struct store_mc *)st;
	uint64_t batch[256];
	uint64_t total = 0;
	size_t k = 0;
	int r = 0;
	/* Collect first: mc_free_keys removes from the set being walked. */
	while (s->setn && r == 0) {
		k = 0;
		for (size_t j = 0; j < s->setcap && k < 256; j++)
			if (s->set[j])
				batch[k++] = s->set[j];
		r = mc_free_keys(st, batch, k);
		if (r == 0)
			total += k;
	}
	if (r == 0 && freed)
		*freed = total;
	return r;
}

static void mc_destroy(struct store *st)
{
	struct store_mc *s = (struct store_mc *)st;
	if (s->have_result)
		memcached_result_free(&s->result);
	if (s->m)
		memcached_free(s->m);
	if (s->meta)
		memcached_free(s->meta);
	free(s->servers);
	free(s->keytxt);
	free(s->keyp);
	free(s->keylen);
	free(s->sorted);
	free(s->sums);
	free(s->state);
	free(s->arrived);
	free(s->set);
	free(s);
}

static void mc_fork_child(struct store *st)
{
	struct store_mc *s = (struct store_mc *)st;
	if (!s->m)
		return;
	s->parent_m = s->m; /* its sockets are the parent's: never used nor freed */
	s->m = NULL;
	s->meta = NULL; /* the parent's too; the child stores nothing */
	s->keep_record = 0;
	/* The result buffer belongs to the parent's handle's allocator; a
	 * fresh one is made on the clone's first use. */
	s->have_result = 0;
}

static const struct store_ops mc_ops = {
	.get_many = mc_get_many,
	.get_stream = mc_get_stream,
	.put_many = mc_put_many,
	.free_keys = mc_free_keys,
	.free_all = mc_free_all,
	.destroy = mc_destroy,
	.fork_child = mc_fork_child,
};

static memcached_st *mc_handle(const char *servers, int timeout_ms, int *err)
{
	memcached_server_st *list = memcached_servers_parse(servers);
	if (!list) {
		*err = -EINVAL;
		return NULL;
	}
	memcached_st *m = memcached_create(NULL);
	if (!m) {
		memcached_server_list_free(list);
		*err = -ENOMEM;
		return NULL;
	}
	uint64_t to = (uint64_t)timeout_ms;
	memcached_behavior_set(m, MEMCACHED_BEHAVIOR_BINARY_PROTOCOL, 1);
	memcached_behavior_set(m, MEMCACHED_BEHAVIOR_TCP_NODELAY, 1);
	memcached_behavior_set(m, MEMCACHED_BEHAVIOR_DISTRIBUTION,
			       MEMCACHED_DISTRIBUTION_CONSISTENT_KETAMA);
	/* Quiet, buffered SETs and DELETEs; gets are unaffected. */
	memcached_behavior_set(m, MEMCACHED_BEHAVIOR_BUFFER_REQUESTS, 1);
	memcached_behavior_set(m, MEMCACHED_BEHAVIOR_NOREPLY, 1);
	memcached_behavior_set(m, MEMCACHED_BEHAVIOR_CONNECT_TIMEOUT, to);
	memcached_behavior_set(m, MEMCACHED_BEHAVIOR_POLL_TIMEOUT, to);
	memcached_behavior_set(m, MEMCACHED_BEHAVIOR_RCV_TIMEOUT, to * 1000);
	memcached_behavior_set(m, MEMCACHED_BEHAVIOR_SND_TIMEOUT, to * 1000);
	/* Our own backoff decides when to give up: let libmemcached try a
	 * failed server again at once instead of skipping it for seconds. */
	memcached_behavior_set(m, MEMCACHED_BEHAVIOR_RETRY_TIMEOUT, 0);
	memcached_return_t rc = memcached_server_push(m, list);
	memcached_server_list_free(list);
	if (rc != MEMCACHED_SUCCESS) {
		memcached_free(m);
		*err = -EINVAL;
		return NULL;
	}
	return m;
}

int store_memcached_check(const char *servers, int timeout_ms, int check_size, char *why,
			  size_t whylen)
{
	int err = 0;
	memcached_st *m = mc_handle(servers, timeout_ms > 0 ? timeout_ms : 3000, &err);
	if (!m) {
		snprintf(why, whylen, "not a list of HOST:PORT");
		return err;
	}
	int r = 0;
	/* A version request on every server: each one must answer. */
	memcached_behavior_set(m, MEMCACHED_BEHAVIOR_NOREPLY, 0);
	memcached_behavior_set(m, MEMCACHED_BEHAVIOR_BUFFER_REQUESTS, 0);
	for (uint32_t i = 0; i < memcached_server_count(m) && r == 0; i++) {
		const memcached_instance_st *in = memcached_server_instance_by_position(m, i);
		memcached_st *one = memcached_create(NULL);
		if (!one) {
			r = -ENOMEM;
			break;
		}
		memcached_behavior_set(one, MEMCACHED_BEHAVIOR_BINARY_PROTOCOL, 1);
		memcached_behavior_set(one, MEMCACHED_BEHAVIOR_CONNECT_TIMEOUT,
				       (uint64_t)(timeout_ms > 0 ? timeout_ms : 3000));
		memcached_behavior_set(one, MEMCACHED_BEHAVIOR_POLL_TIMEOUT,
				       (uint64_t)(timeout_ms > 0 ? timeout_ms : 3000));
		memcached_return_t rc = memcached_server_add(one, memcached_server_name(in),
							     memcached_server_port(in));
		if (rc == MEMCACHED_SUCCESS)
			rc = memcached_version(one);
		if (rc == MEMCACHED_SUCCESS && check_size) {
			/* An item of a page's size, stored and deleted: a memcached
			 * whose item size limit (-I) is below it would refuse every
			 * page. (Out of memory is fine: pages then stay local.) */
			char k[64], v[MC_VALUE];
			memset(v, 0, sizeof(v));
			int kl = snprintf(k, sizeof(k), "sdrsa-size-check:%d", (int)getpid());
			memcached_return_t src = memcached_set(one, k, (size_t)kl, v, sizeof(v), 0, 0);
			if (src == MEMCACHED_E2BIG) {
				snprintf(why, whylen,
					 "memcached %s:%u refuses items of %u bytes (a page and its "
					 "header): raise its item size limit (-I)",
					 memcached_server_name(in), (unsigned)memcached_server_port(in),
					 MC_VALUE);
				r = -EMSGSIZE;
			} else if (src == MEMCACHED_SUCCESS) {
				(void)memcached_delete(one, k, (size_t)kl, 0);
			}
			if (r < 0) {
				memcached_free(one);
				break;
			}
		}
		if (rc != MEMCACHED_SUCCESS) {
			int en = memcached_last_error_errno(one);
			if (memcached_last_error(one) != MEMCACHED_SUCCESS)
				rc = memcached_last_error(one);
			snprintf(why, whylen, "memcached %s:%u: %s", memcached_server_name(in),
				 (unsigned)memcached_server_port(in),
				 rc == MEMCACHED_HOST_LOOKUP_FAILURE ? "unknown host"
				 : rc == MEMCACHED_TIMEOUT	       ? "no answer in time"
				 : en				     ? strerror(en)
								     : memcached_strerror(one, rc));
			r = errno_of(rc);
		}
		memcached_free(one);
	}
	memcached_free(m);
	return r;
}

int store_memcached_new(const char *servers, const char *ns, int timeout_ms, int retry_ms,
			struct store **ret)
{
	if (!servers || !*servers || !ns || !*ns || strlen(ns) > MC_NS_MAX || !ret)
		return -EINVAL;
	for (const char *c = ns; *c; c++)
		if (*c <= ' ' || *c == 0x7f)
			return -EINVAL; /* memcached keys have no spaces or controls */
	struct store_mc *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->timeout_ms = timeout_ms > 0 ? timeout_ms : 5000;
	s->retry_ms = retry_ms > 0 ? retry_ms : 10000;
	s->servers = strdup(servers);
	int err = 0;
	s->m = s->servers ? mc_handle(servers, s->timeout_ms, &err) : NULL;
	if (!s->m) {
		free(s->servers);
		free(s);
		return err ? err : -ENOMEM;
	}
	/* Every server must answer now, as a memory server must: a mistake is
	 * one line at the start, not a failure at the first eviction. */
	char why[256];
	int r = store_memcached_check(servers, s->timeout_ms, 1, why, sizeof(why));
	if (r < 0) {
		memcached_free(s->m);
		free(s->servers);
		free(s);
		return r;
	}
	s->nslen = strlen(ns);
	memcpy(s->ns, ns, s->nslen);
	const char *fae = getenv("SDRSA_FREE_AT_EXIT");
	s->keep_record = fae && !strcmp(fae, "0");
	s->ns_seed = XXH3_64bits(ns, s->nslen);
	s->base.ops = &mc_ops;
	*ret = &s->base;
	return 0;
}

int store_memcached_free_namespace(const char *servers, const char *ns, int timeout_ms,
				   uint64_t *deleted)
{
	if (!servers || !ns || !*ns || strlen(ns) > MC_NS_MAX)
		return -EINVAL;
	int err = 0;
	memcached_st *bulk = mc_handle(servers, timeout_ms > 0 ? timeout_ms : 3000, &err);
	if (!bulk)
		return err;
	memcached_st *meta = memcached_clone(NULL, bulk);
	if (!meta) {
		memcached_free(bulk);
		return -ENOMEM;
	}
	memcached_behavior_set(meta, MEMCACHED_BEHAVIOR_NOREPLY, 0);
	memcached_behavior_set(meta, MEMCACHED_BEHAVIOR_BUFFER_REQUESTS, 0);
	/* Buffered DELETEs with replies (see mc_free_keys). */
	memcached_behavior_set(bulk, MEMCACHED_BEHAVIOR_NOREPLY, 0);
	char k[MC_KEY_MAX];
	size_t vl;
	uint32_t fl;
	memcached_return_t rc;
	uint64_t n = 0;
	int kl = snprintf(k, sizeof(k), "%s:procs", ns);
	char *v = memcached_get(meta, k, (size_t)kl, &vl, &fl, &rc);
	uint64_t slots = v ? strtoull(v, NULL, 10) : 0;
	free(v);
	int r = rc == MEMCACHED_SUCCESS || rc == MEMCACHED_NOTFOUND ? 0 : errno_of(rc);
	for (uint64_t slot = 1; slot <= slots && r == 0; slot++) {
		kl = snprintf(k, sizeof(k), "%s:proc:%llu", ns, (unsigned long long)slot);
		v = memcached_get(meta, k, (size_t)kl, &vl, &fl, &rc);
		unsigned long long lo = 0, hi = 0;
		char buf[64];
		if (v && vl < sizeof(buf)) {
			memcpy(buf, v, vl);
			buf[vl] = 0;
			if (sscanf(buf, "%llx %llx", &lo, &hi) != 2 || hi < lo ||
			    hi - lo > (1ull << 42))
				lo = hi = 0; /* not ours: leave it */
		}
		free(v);
		for (uint64_t key = lo; lo && key <= hi; key += PAGE) {
			char pk[MC_KEY_MAX];
			int pl = snprintf(pk, sizeof(pk), "%s:%llx", ns, (unsigned long long)key);
			rc = memcached_delete(bulk, pk, (size_t)pl, 0);
			if (is_conn_rc(rc)) {
				r = errno_of(rc); /* stop: see reset_handle() */
				break;
			}
			n++;
		}
		if (r == 0)
			(void)memcached_delete(bulk, k, (size_t)kl, 0);
	}
	kl = snprintf(k, sizeof(k), "%s:procs", ns);
	if (r == 0) {
		(void)memcached_delete(bulk, k, (size_t)kl, 0);
		rc = memcached_flush_buffers(bulk);
		if (is_conn_rc(rc))
			r = errno_of(rc);
	}
	/* A multi-get first reads every reply still due on every server:
	 * when it is done, so are the deletes. */
	if (r == 0 && (rc = drain(bulk, ns)) != MEMCACHED_SUCCESS)
		r = errno_of(rc);
	memcached_free(meta);
	memcached_free(bulk);
	if (r == 0 && deleted)
		*deleted = n;
	return r;
}
