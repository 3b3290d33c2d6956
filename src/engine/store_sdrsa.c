// SPDX-License-Identifier: MIT
/*
 * Page store backed by a memory server through libsdrsa. One connection,
 * used by one thread at a time (the engine's lock). Connection errors are
 * retried: reconnect with backoff (50 ms doubling to 500 ms) until retry_ms
 * have passed since the first failure, then the operation fails with the
 * last error and the engine fails loudly. Pages survive a reconnect on the
 * server (same client name, same namespace), so a retried get or put is
 * exact; a put is idempotent. A page that fails its checksum (-EBADMSG from
 * libsdrsa, which never hands such data over) is fetched again up to three
 * times, then the error is reported.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sdrsa/client.h>

#include "common/util.h"
#include "engine/store.h"

struct store_sdrsa {
	struct store base;
	struct sdrsa_client *c; /* NULL: connect on first use (fork child) */
	struct sdrsa_client_config cfg; /* for that connect: strings and key owned */
	char *address, *name;
	uint8_t key[SDRSA_KEY_SIZE];
	int retry_ms;
	uint64_t gen; /* generation of streamed gets' tags (sd_get_stream) */
	/* Tests only (SDRSA_TEST_FAULT=badsum@N, badsum-always@N): the N-th
	 * page fetched fails its checksum once, or that page's every fetch. */
	uint64_t fetched, bad_at, bad_key;
	int bad_always;
};

/* A page that arrived: does the test injection make it a checksum failure? */
static int injected_badsum(struct store_sdrsa *s, uint64_t key)
{
	if (!s->bad_at)
		return 0;
	if (s->bad_key)
		return s->bad_always && key == s->bad_key;
	if (++s->fetched < s->bad_at)
		return 0;
	s->bad_key = key;
	return 1;
}

/* Connect if not connected (a fork child's first use). 0 or -errno. */
static int ensure_conn(struct store_sdrsa *s)
{
	if (s->c)
		return 0;
	return sdrsa_client_connect(&s->cfg, &s->c);
}

static int is_conn_error(int r)
{
	return r == -ETIMEDOUT || r == -ECONNRESET || r == -ENOTCONN || r == -EPIPE ||
	       r == -ECONNREFUSED || r == -ECONNABORTED || r == -EHOSTUNREACH ||
	       r == -ENETUNREACH || r == -EIO;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Called after op failed with r. Returns 0 to retry the operation, or the
 * error to report. *t0 is the time of the first failure (0: none yet). */
static int recover(struct store_sdrsa *s, int r, uint64_t *t0, int *attempt)
{
	if (r == -EBADMSG && *attempt < 3) {
		/* A page failed its checksum: refetch it a few times. */
		(*attempt)++;
		return 0;
	}
	if (!is_conn_error(r))
		return r;
	if (!*t0)
		*t0 = sdrsa_now_ms();
	int delay = 50;
	for (;;) {
		if (sdrsa_now_ms() - *t0 >= (uint64_t)s->retry_ms)
			return r;
		s->base.retries++;
		int rc = s->c ? sdrsa_client_reconnect(s->c) : ensure_conn(s);
		if (rc == 0)
			return 0;
		r = rc;
		sleep_ms(delay);
		delay = MIN(delay * 2, 500);
	}
}

/* Run op(c, arg) on the connection, reconnecting and retrying it as
 * recover() allows. */
static int with_retry(struct store_sdrsa *s, int (*op)(struct sdrsa_client *c, void *arg),
		      void *arg)
{
	uint64_t t0 = 0;
	int attempt = 0;
	for (;;) {
		int r = ensure_conn(s);
		if (r == 0)
			r = op(s->c, arg);
		if (r == 0)
			return 0;
		r = recover(s, r, &t0, &attempt);
		if (r < 0)
			return r;
	}
}

struct page_args {
	const uint64_t *keys;
	void *const *pages;
	size_t n;
	uint64_t *freed;
	struct sdrsa_stats *stats;
};

static int op_get(struct sdrsa_client *c, void *arg)
{
	struct page_args *a = arg;
	return sdrsa_get_many(c, a->keys, a->pages, a->n, NULL);
}

static int op_free(struct sdrsa_client *c, void *arg)
{
	struct page_args *a = arg;
	return sdrsa_free(c, a->keys, a->n);
}

static int op_free_all(struct sdrsa_client *c, void *arg)
{
	return sdrsa_free_all(c, ((struct page_args *)arg)->freed);
}

static int op_ping(struct sdrsa_client *c, void *arg)
{
	(void)arg;
	return sdrsa_ping(c);
}

static int op_stats(struct sdrsa_client *c, void *arg)
{
	return sdrsa_stats(c, ((struct page_args *)arg)->stats);
}

static int sd_get_many(struct store *st, const uint64_t *keys, void *const *pages, size_t n)
{
	struct page_args a = {.keys = keys, .pages = pages, .n = n};
	int r = with_retry((struct store_sdrsa *)st, op_get, &a);
	if (r == 0)
		st->bytes_recv += n * SDRSA_PAGE_SIZE;
	return r;
}

/*
 * Streamed gets: the pages go out as pipelined GETs in small frames (8
 * pages first, so that the page a thread waits for comes back at once, then
 * 32 per frame), and each frame's pages are handed to the engine as soon as
 * it is answered, while the server works on the next ones. Tags carry the
 * page's index and a generation, bumped at each reconnect, so that a
 * completion of an abandoned connection is never taken for a new one.
 * csums[i] (csums not NULL) gets the page's checksum that libsdrsa verified
 * (sdrsa_submit_get_csum), so that the engine need not hash it again.
 */
#define STREAM_MAX 512
#define STREAM_FIRST 8
#define STREAM_FRAME 128

static int submit_get(struct store_sdrsa *s, uint64_t key, void *page, uint64_t tag, uint64_t *csum)
{
	return csum ? sdrsa_submit_get_csum(s->c, key, page, tag, csum)
		    : sdrsa_submit_get(s->c, key, page, tag);
}

static int sd_get_stream(struct store *st, const uint64_t *keys, void *const *pages, size_t n,
			 void (*arrived)(void *ctx, const size_t *idx, size_t k), void *ctx,
			 uint64_t *csums)
{
	struct store_sdrsa *s = (struct store_sdrsa *)st;
	if (n > STREAM_MAX) {
		int r = sd_get_many(st, keys, pages, n);
		if (r < 0)
			return r;
		for (size_t i = 0; csums && i < n; i++)
			csums[i] = sdrsa_page_csum(pages[i], keys[i]);
		for (size_t base = 0; base < n; base += STREAM_MAX) {
			size_t idx[STREAM_MAX], k = MIN((size_t)STREAM_MAX, n - base);
			for (size_t i = 0; i < k; i++)
				idx[i] = base + i;
			arrived(ctx, idx, k);
		}
		return 0;
	}
	enum { WANT = 0, SENT, DONE };
	uint8_t state[STREAM_MAX];
	uint8_t tries[STREAM_MAX];
	size_t idx[STREAM_MAX];
	struct sdrsa_completion comp[64];
	memset(state, WANT, n);
	memset(tries, 0, n);
	size_t ndone = 0;
	uint64_t gen = s->gen, t0 = 0;
	int attempt = 0, err = 0;
	while (ndone < n) {
		int conn = ensure_conn(s);
		/* Send what is to be sent, frame by frame. */
		size_t inframe = 0, limit = STREAM_FIRST, inflight = 0;
		for (size_t i = 0; i < n && conn == 0; i++) {
			if (state[i] == SENT)
				inflight++;
			if (state[i] != WANT)
				continue;
			conn = submit_get(s, keys[i], pages[i], (gen << 32) | i,
					  csums ? &csums[i] : NULL);
			if (conn < 0)
				break;
			state[i] = SENT;
			inflight++;
			if (++inframe == limit) {
				conn = sdrsa_flush(s->c);
				inframe = 0;
				limit = STREAM_FRAME;
			}
		}
		if (conn == 0 && inframe)
			conn = sdrsa_flush(s->c);
		/* Collect, handing pages over as their frames come in. */
		while (conn == 0 && inflight) {
			int got = sdrsa_reap(s->c, comp, 64, 1, -1);
			if (got < 0) {
				conn = got;
				break;
			}
			if (got == 0 && sdrsa_client_fd(s->c) < 0) {
				conn = -ENOTCONN;
				break;
			}
			size_t k = 0;
			for (int j = 0; j < got; j++) {
				size_t i = (size_t)(comp[j].tag & 0xffffffffu);
				if (comp[j].tag >> 32 != gen || i >= n || state[i] != SENT)
					continue; /* an abandoned connection's */
				inflight--;
				int r = comp[j].result;
				if (r == 0 && injected_badsum(s, keys[i]))
					r = -EBADMSG;
				if (r == 0) {
					state[i] = DONE;
					idx[k++] = i;
				} else if (r == -EBADMSG && tries[i] < 3) {
					tries[i]++; /* failed its checksum: fetch it again */
					st->retries++;
					state[i] = WANT;
				} else if (is_conn_error(r)) {
					state[i] = WANT;
					conn = r;
				} else {
					state[i] = DONE; /* will not come: report */
					ndone++;
					if (!err)
						err = r;
				}
			}
			if (k) {
				ndone += k;
				st->bytes_recv += k * SDRSA_PAGE_SIZE;
				arrived(ctx, idx, k);
			}
			if (conn == 0 && inflight == 0)
				break;
			if (conn == 0) {
				/* Checksum retries go out at once. */
				for (size_t i = 0; i < n; i++)
					if (state[i] == WANT) {
						conn = submit_get(s, keys[i], pages[i],
								  (gen << 32) | i,
								  csums ? &csums[i] : NULL);
						if (conn < 0)
							break;
						state[i] = SENT;
						inflight++;
					}
				if (conn == 0)
					conn = sdrsa_flush(s->c);
			}
		}
		if (conn == 0)
			continue;
		if (!is_conn_error(conn) && conn != -EBUSY)
			return conn;
		/* The connection failed: what was in flight is sent again on
		 * the next one (a get is idempotent). */
		for (size_t i = 0; i < n; i++)
			if (state[i] == SENT)
				state[i] = WANT;
		gen = ++s->gen;
		int rr = recover(s, conn == -EBUSY ? -ECONNRESET : conn, &t0, &attempt);
		if (rr < 0)
			return rr;
		/* Drop what the old connection left to reap. */
		while (s->c && sdrsa_reap(s->c, comp, 64, 0, 0) > 0)
			;
	}
	return err;
}

/* Puts are retried page by page: a page answered with a connection error
 * is sent again after the reconnect, a page answered -ENOSPC or -EDQUOT is
 * reported to the caller (the engine keeps it). */
static int sd_put(struct store *st, const uint64_t *keys, const void *const *pages, size_t n,
		  int *results, uint64_t *csums)
{
	struct store_sdrsa *s = (struct store_sdrsa *)st;
	enum { CHUNK = 256 };
	uint64_t k[CHUNK];
	const void *pg[CHUNK];
	size_t idx[CHUNK];
	int res[CHUNK];
	uint64_t cs[CHUNK];
	int first = 0;
	for (size_t base = 0; base < n; base += CHUNK) {
		size_t m = MIN((size_t)CHUNK, n - base);
		for (size_t i = 0; i < m; i++) {
			k[i] = keys[base + i];
			pg[i] = pages[base + i];
			idx[i] = base + i;
		}
		uint64_t t0 = 0;
		int attempt = 0;
		while (m) {
			int r = ensure_conn(s);
			if (r < 0)
				for (size_t i = 0; i < m; i++)
					res[i] = r;
			else
				r = csums ? sdrsa_put_many_csum(s->c, k, pg, m, res, cs)
					  : sdrsa_put_many(s->c, k, pg, m, res);
			size_t left = 0;
			int conn = 0;
			for (size_t i = 0; i < m; i++) {
				int ri = r == 0 ? 0 : res[i];
				if (ri < 0 && is_conn_error(ri)) {
					conn = ri;
					k[left] = k[i];
					pg[left] = pg[i];
					idx[left] = idx[i];
					left++;
					continue;
				}
				if (results)
					results[idx[i]] = ri;
				if (ri == 0 && csums)
					csums[idx[i]] = cs[i];
				if (ri == 0)
					st->bytes_sent += SDRSA_PAGE_SIZE;
				else if (!first)
					first = ri;
			}
			m = left;
			if (m) {
				int rr = recover(s, conn, &t0, &attempt);
				if (rr < 0) {
					for (size_t i = 0; i < m && results; i++)
						results[idx[i]] = rr;
					return rr;
				}
			}
		}
	}
	return first;
}

static int sd_put_many(struct store *st, const uint64_t *keys, const void *const *pages, size_t n,
		       int *results)
{
	return sd_put(st, keys, pages, n, results, NULL);
}

/* The checksums come from libsdrsa, which computed them to build the PUT
 * frames: the engine keeps them without hashing the pages again. */
static int sd_put_many_csum(struct store *st, const uint64_t *keys, const void *const *pages,
			    size_t n, int *results, uint64_t *csums)
{
	return sd_put(st, keys, pages, n, results, csums);
}

static int sd_free_keys(struct store *st, const uint64_t *keys, size_t n)
{
	struct page_args a = {.keys = keys, .n = n};
	return with_retry((struct store_sdrsa *)st, op_free, &a);
}

static int sd_free_all(struct store *st, uint64_t *freed)
{
	struct page_args a = {.freed = freed};
	return with_retry((struct store_sdrsa *)st, op_free_all, &a);
}

struct sdrsa_client *store_sdrsa_client(struct store *st)
{
	struct store_sdrsa *s = (struct store_sdrsa *)st;
	return ensure_conn(s) == 0 ? s->c : NULL;
}

int store_sdrsa_ping(struct store *st)
{
	return with_retry((struct store_sdrsa *)st, op_ping, NULL);
}

int store_sdrsa_stats(struct store *st, struct sdrsa_stats *out)
{
	struct page_args a = {.stats = out};
	return with_retry((struct store_sdrsa *)st, op_stats, &a);
}

static void sd_destroy(struct store *st)
{
	struct store_sdrsa *s = (struct store_sdrsa *)st;
	sdrsa_client_free(s->c);
	free(s->address);
	free(s->name);
	free(s);
}

static void sd_fork_child(struct store *st)
{
	struct store_sdrsa *s = (struct store_sdrsa *)st;
	/* Closes only this process's copy of the socket; nothing is sent. */
	sdrsa_client_free(s->c);
	s->c = NULL;
}

static const struct store_ops sd_ops = {
	.get_many = sd_get_many,
	.get_stream = sd_get_stream,
	.put_many = sd_put_many,
	.free_keys = sd_free_keys,
	.free_all = sd_free_all,
	.destroy = sd_destroy,
	.fork_child = sd_fork_child,
	.put_many_csum = sd_put_many_csum,
};

int store_sdrsa_new(const struct sdrsa_client_config *cfg, int retry_ms, struct store **ret)
{
	struct store_sdrsa *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->cfg = *cfg;
	s->address = cfg->address ? strdup(cfg->address) : NULL;
	s->name = cfg->name ? strdup(cfg->name) : NULL;
	s->cfg.address = s->address;
	s->cfg.name = s->name;
	if (cfg->key) {
		memcpy(s->key, cfg->key, sizeof(s->key));
		s->cfg.key = s->key;
	}
	int r = (cfg->address && !s->address) || (cfg->name && !s->name)
			? -ENOMEM
			: sdrsa_client_connect(&s->cfg, &s->c);
	if (r < 0) {
		free(s->address);
		free(s->name);
		free(s);
		return r;
	}
	s->base.ops = &sd_ops;
	s->base.servers_total = s->base.servers_up = 1;
	s->base.gives_csums = 1;
	s->retry_ms = retry_ms > 0 ? retry_ms : 10000;
	const char *tf = getenv("SDRSA_TEST_FAULT");
	if (tf && !strncmp(tf, "badsum", 6) && strchr(tf, '@')) {
		s->bad_always = !strncmp(tf, "badsum-always@", 14);
		s->bad_at = strtoull(strchr(tf, '@') + 1, NULL, 10);
	}
	*ret = &s->base;
	return 0;
}
