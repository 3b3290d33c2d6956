/* SPDX-License-Identifier: MIT */
/*
 * sdrsa-demo: store a working set bigger than one client's quota on a memory
 * server and read it back, verifying every byte (the README's main job).
 *
 * The working set is W pages with content derived from (seed, page index),
 * one page in eight all zeros. The pages are put through the first client
 * name, PREFIX-0, until the server refuses with -EDQUOT; the refused pages
 * then go to PREFIX-1, and so on, so ceil(W / quota) namespaces end up
 * holding the set, each within its quota. Then one more put into the full
 * namespace shows the refusal on its own, every page is read back with
 * batched gets and compared byte for byte, a sample of single gets measures
 * latency, and the server's STATS are printed. Exit 0 only if every page
 * came back intact; the pages are freed at the end unless --keep.
 *
 * Everything here goes through the public API of include/sdrsa/client.h.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sdrsa/client.h>

#include "common/util.h"

#define PAGE SDRSA_PAGE_SIZE
#define MIB (1024.0 * 1024.0)
#define MAX_CLIENTS 256
#define ZERO_EVERY 8 /* page i is all zeros when i % ZERO_EVERY == ZERO_EVERY - 1 */

struct demo {
	/* options */
	const char *server;
	const char *prefix;
	const char *key_file;
	uint64_t pages;   /* W */
	size_t batch;     /* pages per put_many / get_many call */
	uint64_t seed;
	unsigned samples; /* single gets timed */
	int keep;

	/* state */
	struct sdrsa_client *clients[MAX_CLIENTS];
	unsigned nclients;
	uint16_t *owner; /* owner[i]: client index holding page i */
	int tty;

	/* results */
	uint64_t quota_refusals;
	uint64_t zero_pages;
	uint64_t verified;
	uint64_t mismatches;
	uint64_t errors;
	uint64_t put_ns, get_ns;
	double lat_median_us, lat_p99_us;
	int extra_put_rc;
};

/* For die(): what to free on the way out, and whether a progress line on
 * the terminal is still open (then messages start on a new line). */
static struct demo *g_demo;
static int g_line_open;

static void end_line(void)
{
	if (g_line_open) {
		putchar('\n');
		fflush(stdout);
		g_line_open = 0;
	}
}

/* Free what this run stored (unless --keep), so that a failed run leaves a
 * shared server as it found it. */
static void release(struct demo *d, uint64_t *freed_total)
{
	uint64_t freed, total = 0;

	if (d->keep)
		return;
	for (unsigned k = 0; k < d->nclients; k++)
		if (sdrsa_free_all(d->clients[k], &freed) == 0)
			total += freed;
	if (freed_total)
		*freed_total = total;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;

	end_line();
	fputs("sdrsa-demo: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (g_demo)
		release(g_demo, NULL);
	exit(1);
}

static void lib_log(void *userdata, int level, const char *msg)
{
	(void)userdata;
	if (level <= SDRSA_LOG_WARN) {
		end_line();
		fprintf(stderr, "sdrsa-demo: libsdrsa: %s\n", msg);
	}
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: sdrsa-demo [options]\n"
		"Store a working set bigger than one client's quota on a memory server,\n"
		"spread over as many client namespaces as the quota requires, read it all\n"
		"back and verify every byte. Exit status 0 only if every page verified.\n"
		"\n"
		"  -s, --server ADDR      memory server: HOST:PORT or unix:PATH\n"
		"                         (default 127.0.0.1:%d)\n"
		"  -n, --pages N          working set in 4 KiB pages (default 40960)\n"
		"  -S, --size SIZE        working set as a size, e.g. 160M (instead of --pages)\n"
		"  -N, --name PREFIX      client names are PREFIX-0, PREFIX-1, ... (default demo)\n"
		"  -k, --key-file FILE    key file holding a key for each client name used\n"
		"  -b, --batch N          pages per batched call (default 1024)\n"
		"      --seed N           content seed (default: time based)\n"
		"      --samples N        single gets timed for latency (default 2000)\n"
		"      --keep             leave the pages on the server (default: free them)\n"
		"  -h, --help             this help\n",
		SDRSA_DEFAULT_PORT);
}

/* ---- the working set ------------------------------------------------------ */


static int page_is_zero_by_design(uint64_t idx)
{
	return idx % ZERO_EVERY == ZERO_EVERY - 1;
}

/* The content of page idx: a pseudo-random stream keyed by seed and index,
 * with the index itself in the first word so a misplaced page is obvious. */
static void make_page(const struct demo *d, uint64_t idx, uint8_t *page)
{
	uint64_t *w = (uint64_t *)page;
	uint64_t x = d->seed ^ (idx * 0xd1b54a32d192ed03ull);

	if (page_is_zero_by_design(idx)) {
		memset(page, 0, PAGE);
		return;
	}
	w[0] = idx;
	for (size_t i = 1; i < PAGE / 8; i++)
		w[i] = sdrsa_splitmix64(&x);
}

static uint64_t page_addr(uint64_t idx)
{
	return idx * PAGE;
}

/* ---- progress ------------------------------------------------------------- */

struct progress {
	const char *what;
	uint64_t total, done, last_done;
	uint64_t start_ns, last_ns;
	unsigned last_decile;
};

static void progress_start(struct progress *p, const char *what, uint64_t total)
{
	memset(p, 0, sizeof(*p));
	p->what = what;
	p->total = total;
	p->start_ns = sdrsa_now_ns();
}

static void progress_show(struct demo *d, struct progress *p, const char *note, int final)
{
	uint64_t now = sdrsa_now_ns();
	double secs = (double)(now - p->start_ns) / 1e9;
	double mib = (double)p->done * PAGE / MIB;
	unsigned pct = p->total ? (unsigned)(p->done * 100 / p->total) : 100;
	char bar[21];

	if (d->tty) {
		if (!final && now - p->last_ns < 100000000u)
			return;
		for (unsigned i = 0; i < 20; i++)
			bar[i] = i < pct / 5 ? '#' : '.';
		bar[20] = '\0';
		printf("\r  %-4s [%s] %3u%%  %8" PRIu64 "/%" PRIu64
		       " pages  %7.1f MiB  %7.0f MiB/s  %-12s",
		       p->what, bar, pct, p->done, p->total, mib, secs > 0 ? mib / secs : 0.0,
		       note);
		g_line_open = 1;
		if (final)
			end_line();
		fflush(stdout);
	} else {
		unsigned decile = pct / 10;
		if (decile == p->last_decile && (!final || p->last_done == p->done))
			return;
		p->last_decile = decile;
		p->last_done = p->done;
		printf("  %-4s %3u%%  %" PRIu64 "/%" PRIu64 " pages  %.1f MiB  %.0f MiB/s  %s\n",
		       p->what, pct, p->done, p->total, mib, secs > 0 ? mib / secs : 0.0, note);
		fflush(stdout);
	}
	p->last_ns = now;
}

/* ---- clients -------------------------------------------------------------- */

static struct sdrsa_client *client(struct demo *d, unsigned k)
{
	struct sdrsa_client_config cfg = { .address = d->server, .log = lib_log };
	uint8_t key[SDRSA_KEY_SIZE];
	char name[SDRSA_NAME_MAX + 1];
	int rc;

	if (k >= MAX_CLIENTS)
		die("the working set needs more than %d client namespaces; use a smaller --pages "
		    "or a server with a larger quota", MAX_CLIENTS);
	if (k < d->nclients)
		return d->clients[k];
	snprintf(name, sizeof(name), "%s-%u", d->prefix, k);
	cfg.name = name;
	if (d->key_file) {
		rc = sdrsa_key_load(d->key_file, name, key);
		if (rc == -ENOENT)
			die("key file %s has no key for client %s; add one with "
			    "'memory-server --gen-key %s >> %s'", d->key_file, name, name,
			    d->key_file);
		if (rc == -EPERM)
			die("key file %s can be read by group or others; chmod 600 %s", d->key_file,
			    d->key_file);
		if (rc == -EBADMSG)
			die("key file %s has a malformed line; lines are 'NAME HEX64KEY'",
			    d->key_file);
		if (rc < 0)
			die("cannot read key file %s: %s", d->key_file, strerror(-rc));
		cfg.key = key;
	}
	rc = sdrsa_client_connect(&cfg, &d->clients[k]);
	if (rc == -EPERM)
		die("server %s refused client %s: authentication failed (check --key-file and "
		    "the server's key file)", d->server, name);
	if (rc < 0)
		die("cannot connect to memory server at %s as %s: %s (is memory-server "
		    "running there?)", d->server, name, strerror(-rc));
	d->nclients = k + 1;
	return d->clients[k];
}

static const char *client_name(const struct demo *d, unsigned k, char *buf, size_t n)
{
	snprintf(buf, n, "%s-%u", d->prefix, k);
	return buf;
}

/* ---- phases --------------------------------------------------------------- */

/* Put every page; a namespace at its quota refuses (-EDQUOT) and the refused
 * pages move on to the next namespace. */
static void phase_put(struct demo *d, uint8_t *buf, uint64_t *addrs, void **ptrs, int *results,
		      size_t *todo)
{
	struct progress p;
	unsigned k = 0;
	char note[80], name[80];

	progress_start(&p, "put", d->pages);
	for (uint64_t start = 0; start < d->pages; start += d->batch) {
		size_t n = (size_t)MIN((uint64_t)d->batch, d->pages - start), m = n;

		for (size_t j = 0; j < n; j++) {
			make_page(d, start + j, buf + j * PAGE);
			todo[j] = j;
		}
		while (m) {
			struct sdrsa_client *c = client(d, k);
			size_t refused = 0;
			uint64_t t0;
			int rc;

			for (size_t j = 0; j < m; j++) {
				addrs[j] = page_addr(start + todo[j]);
				ptrs[j] = buf + todo[j] * PAGE;
			}
			t0 = sdrsa_now_ns();
			rc = sdrsa_put_many(c, addrs, (const void *const *)ptrs, m, results);
			d->put_ns += sdrsa_now_ns() - t0;
			for (size_t j = 0; j < m; j++) {
				uint64_t idx = start + todo[j];

				if (results[j] == 0) {
					d->owner[idx] = (uint16_t)k;
					if (page_is_zero_by_design(idx))
						d->zero_pages++;
					p.done++;
				} else if (results[j] == -EDQUOT) {
					todo[refused++] = todo[j];
				} else if (results[j] == -ENOSPC) {
					die("the server's pool is full after %" PRIu64
					    " pages; start memory-server with a larger SIZE or "
					    "use a smaller --pages",
					    p.done);
				} else {
					die("put of page %" PRIu64 " failed: %s", idx,
					    strerror(-results[j]));
				}
			}
			if (rc < 0 && rc != -EDQUOT && !refused)
				die("put to %s failed: %s", client_name(d, k, name, sizeof(name)),
				    strerror(-rc));
			m = refused;
			d->quota_refusals += refused;
			if (refused) {
				uint64_t q = sdrsa_client_quota_pages(c);

				if (!q)
					die("server refused %zu pages with EDQUOT but "
					    "announced no quota", refused);
				end_line();
				printf("  %s reached its quota of %" PRIu64 " pages: %zu pages "
				       "refused with EDQUOT, nothing dropped; continuing with %s\n",
				       client_name(d, k, name, sizeof(name)), q, refused,
				       client_name(d, k + 1, note, sizeof(note)));
				k++;
			}
		}
		snprintf(note, sizeof(note), "%s", client_name(d, k, name, sizeof(name)));
		progress_show(d, &p, note, 0);
	}
	progress_show(d, &p, "", 1);
}

/* One more page into the first namespace, which is at its quota if there
 * are several: it must be refused, and nothing it holds may change. */
static void phase_quota_probe(struct demo *d, uint8_t *page)
{
	struct sdrsa_client *c = d->clients[0];
	struct sdrsa_stats before, after;
	char name[80];
	int rc;

	if (d->nclients < 2)
		return;
	if (sdrsa_stats(c, &before) < 0)
		die("STATS failed");
	make_page(d, 0, page);
	rc = sdrsa_put(c, page_addr(d->pages + 1), page);
	d->extra_put_rc = rc;
	if (sdrsa_stats(c, &after) < 0)
		die("STATS failed");
	printf("  %s: one more put -> %s (%s); its pages before %" PRIu64 ", after %" PRIu64 "\n",
	       client_name(d, 0, name, sizeof(name)), rc == 0 ? "stored" : strerrorname_np(-rc),
	       rc == -EDQUOT ? "refused cleanly, as it should be" : "UNEXPECTED",
	       before.ns_pages, after.ns_pages);
	if (rc == 0)
		sdrsa_free(c, (uint64_t[]){ page_addr(d->pages + 1) }, 1);
	else
		d->quota_refusals++;
}

static void phase_get(struct demo *d, uint8_t *buf, uint8_t *expect, uint64_t *addrs, void **ptrs,
		      int *results, uint64_t *idxs)
{
	struct progress p;
	char note[80];

	progress_start(&p, "get", d->pages);
	for (unsigned k = 0; k < d->nclients; k++) {
		struct sdrsa_client *c = d->clients[k];
		uint64_t next = 0;

		client_name(d, k, note, sizeof(note));
		while (next < d->pages) {
			size_t n = 0;
			uint64_t t0;

			for (; next < d->pages && n < d->batch; next++)
				if (d->owner[next] == k) {
					idxs[n] = next;
					addrs[n] = page_addr(next);
					ptrs[n] = buf + n * PAGE;
					n++;
				}
			if (!n)
				break;
			t0 = sdrsa_now_ns();
			sdrsa_get_many(c, addrs, ptrs, n, results);
			d->get_ns += sdrsa_now_ns() - t0;
			for (size_t j = 0; j < n; j++) {
				if (results[j] < 0) {
					if (d->errors++ < 5) {
						end_line();
						fprintf(stderr, "sdrsa-demo: get of page %" PRIu64
							" from %s failed: %s\n", idxs[j], note,
							strerror(-results[j]));
					}
					continue;
				}
				make_page(d, idxs[j], expect);
				if (memcmp(buf + j * PAGE, expect, PAGE)) {
					if (d->mismatches++ < 5) {
						end_line();
						fprintf(stderr, "sdrsa-demo: page %" PRIu64
							" came back different\n", idxs[j]);
					}
					continue;
				}
				d->verified++;
			}
			p.done += n;
			progress_show(d, &p, note, 0);
		}
	}
	progress_show(d, &p, "", 1);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void phase_latency(struct demo *d, uint8_t *page, uint8_t *expect)
{
	uint64_t *lat, x = d->seed;
	unsigned n = d->samples;

	if (!n)
		return;
	lat = calloc(n, sizeof(*lat));
	if (!lat)
		die("out of memory");
	for (unsigned i = 0; i < n + n / 10; i++) {
		uint64_t idx = sdrsa_splitmix64(&x) % d->pages, t0, t;
		int rc;

		t0 = sdrsa_now_ns();
		rc = sdrsa_get(d->clients[d->owner[idx]], page_addr(idx), page);
		t = sdrsa_now_ns() - t0;
		if (rc < 0) {
			d->errors++;
			continue;
		}
		make_page(d, idx, expect);
		if (memcmp(page, expect, PAGE))
			d->mismatches++;
		if (i >= n / 10) /* the first tenth warms up */
			lat[i - n / 10] = t;
	}
	qsort(lat, n, sizeof(*lat), cmp_u64);
	d->lat_median_us = (double)lat[n / 2] / 1e3;
	d->lat_p99_us = (double)lat[(size_t)n * 99 / 100] / 1e3;
	free(lat);
}

static double rate(uint64_t pages, uint64_t ns)
{
	return ns ? (double)pages * PAGE / MIB / ((double)ns / 1e9) : 0.0;
}

static void summary(struct demo *d, const struct sdrsa_stats *st)
{
	double mib = (double)d->pages * PAGE / MIB;
	uint64_t quota = sdrsa_client_quota_pages(d->clients[0]);
	char name[80];

	printf("\nsummary\n");
	printf("  working set        %" PRIu64 " pages, %.1f MiB (%" PRIu64
	       " zero pages), seed %#" PRIx64 "\n", d->pages, mib, d->zero_pages, d->seed);
	if (quota)
		printf("  client quota       %" PRIu64 " pages, %.1f MiB\n", quota,
		       (double)quota * PAGE / MIB);
	else
		printf("  client quota       none set by the server\n");
	printf("  namespaces used    %u:", d->nclients);
	for (unsigned k = 0; k < d->nclients; k++) {
		struct sdrsa_stats s;
		if (sdrsa_stats(d->clients[k], &s) == 0)
			printf(" %s=%" PRIu64, client_name(d, k, name, sizeof(name)), s.ns_pages);
	}
	printf("\n");
	if (d->quota_refusals)
		printf("  quota refusals     %" PRIu64 " puts refused with EDQUOT, every page "
		       "stored elsewhere\n", d->quota_refusals);
	else
		printf("  quota refusals     none\n");
	printf("  put                %.1f MiB in %.3f s = %.0f MiB/s (batches of %zu pages)\n", mib,
	       (double)d->put_ns / 1e9, rate(d->pages, d->put_ns), d->batch);
	printf("  get                %.1f MiB in %.3f s = %.0f MiB/s\n", mib,
	       (double)d->get_ns / 1e9, rate(d->pages, d->get_ns));
	if (d->samples)
		printf("  single get         median %.1f us, p99 %.1f us (%u samples)\n",
		       d->lat_median_us, d->lat_p99_us, d->samples);
	printf("  verified           %" PRIu64 " of %" PRIu64 " pages, %" PRIu64
	       " mismatches, %" PRIu64 " errors\n", d->verified, d->pages, d->mismatches,
	       d->errors);
	printf("server stats (as seen by %s)\n", client_name(d, 0, name, sizeof(name)));
	printf("  pool               %" PRIu64 " pages (%.1f MiB), %" PRIu64 " used, %" PRIu64
	       " zero pages stored without a slot\n", st->pool_pages,
	       (double)st->pool_pages * PAGE / MIB, st->used_pages, st->zero_pages);
	printf("  clients            %" PRIu64 " namespaces with pages, %" PRIu64
	       " connections\n", st->namespaces, st->connections);
	printf("  operations         gets %" PRIu64 ", puts %" PRIu64 ", frees %" PRIu64
	       ", misses %" PRIu64 "\n", st->gets, st->puts, st->frees, st->misses);
	printf("  refusals           quota %" PRIu64 ", pool full %" PRIu64 ", bad frames %" PRIu64
	       ", auth failures %" PRIu64 "\n", st->quota_refused, st->pool_full, st->bad_frames,
	       st->auth_failures);
	printf("  traffic            %.1f MiB in, %.1f MiB out, up %.1f s\n",
	       (double)st->bytes_in / MIB, (double)st->bytes_out / MIB,
	       (double)st->uptime_ms / 1e3);
}

static uint64_t parse_u64(const char *opt, const char *s)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || !*s || *end || *s == '-')
		die("%s: '%s' is not a number", opt, s);
	return v;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "server", required_argument, NULL, 's' },
		{ "pages", required_argument, NULL, 'n' },
		{ "size", required_argument, NULL, 'S' },
		{ "name", required_argument, NULL, 'N' },
		{ "key-file", required_argument, NULL, 'k' },
		{ "batch", required_argument, NULL, 'b' },
		{ "seed", required_argument, NULL, 1 },
		{ "samples", required_argument, NULL, 2 },
		{ "keep", no_argument, NULL, 3 },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	static char default_server[32];
	struct demo d = { .prefix = "demo", .pages = 40960, .batch = 1024, .samples = 2000 };
	struct sdrsa_stats st;
	uint8_t *buf, *expect;
	uint64_t *addrs, *idxs;
	size_t *todo;
	void **ptrs;
	int *results, opt, ok;

	snprintf(default_server, sizeof(default_server), "127.0.0.1:%d", SDRSA_DEFAULT_PORT);
	d.server = default_server;
	d.seed = sdrsa_now_ns() ^ ((uint64_t)getpid() << 32);
	while ((opt = getopt_long(argc, argv, "s:n:S:N:k:b:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 's':
			d.server = optarg;
			break;
		case 'n':
			d.pages = parse_u64("--pages", optarg);
			break;
		case 'S': {
			uint64_t bytes;
			if (sdrsa_parse_size(optarg, &bytes) < 0)
				die("--size: '%s' is not a size (e.g. 160M, 1G)", optarg);
			d.pages = bytes / PAGE;
			break;
		}
		case 'N':
			d.prefix = optarg;
			break;
		case 'k':
			d.key_file = optarg;
			break;
		case 'b':
			d.batch = (size_t)parse_u64("--batch", optarg);
			break;
		case 1:
			d.seed = parse_u64("--seed", optarg);
			break;
		case 2:
			d.samples = (unsigned)parse_u64("--samples", optarg);
			break;
		case 3:
			d.keep = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			fprintf(stderr, "Try 'sdrsa-demo --help'.\n");
			return 2;
		}
	}
	if (optind < argc)
		die("unexpected argument '%s'; see --help", argv[optind]);
	if (!d.pages)
		die("the working set is empty; give --pages N or --size SIZE");
	if (!d.batch || d.batch > 1u << 20)
		die("--batch must be between 1 and %u pages", 1u << 20);
	{
		char name[SDRSA_NAME_MAX + 16];
		snprintf(name, sizeof(name), "%s-%u", d.prefix, MAX_CLIENTS - 1);
		if (!sdrsa_name_valid(name))
			die("--name: '%s' is not a valid client name prefix ([A-Za-z0-9._-], "
			    "short enough for a number to be added)", d.prefix);
	}
	/* sdrsa_key_load() says -ENOENT for a missing name and a missing file. */
	if (d.key_file && access(d.key_file, R_OK) < 0)
		die("cannot read key file %s: %s", d.key_file, strerror(errno));
	d.tty = isatty(STDOUT_FILENO);
	g_demo = &d;
	d.owner = calloc(d.pages, sizeof(*d.owner));
	buf = aligned_alloc(PAGE, d.batch * PAGE);
	expect = aligned_alloc(PAGE, PAGE);
	addrs = calloc(d.batch, sizeof(*addrs));
	idxs = calloc(d.batch, sizeof(*idxs));
	todo = calloc(d.batch, sizeof(*todo));
	ptrs = calloc(d.batch, sizeof(*ptrs));
	results = calloc(d.batch, sizeof(*results));
	if (!d.owner || !buf || !expect || !addrs || !idxs || !todo || !ptrs || !results)
		die("out of memory for a working set of %" PRIu64 " pages", d.pages);

	{
		struct sdrsa_client *c = client(&d, 0);
		uint64_t quota = sdrsa_client_quota_pages(c);
		uint64_t pool = sdrsa_client_pool_pages(c);
		uint64_t nns = quota ? (d.pages + quota - 1) / quota : 1;

		printf("sdrsa demo: memory server %s, pool %" PRIu64 " pages (%.0f MiB), ", d.server,
		       pool, (double)pool * PAGE / MIB);
		if (quota)
			printf("quota per client %" PRIu64 " pages (%.0f MiB)\n", quota,
			       (double)quota * PAGE / MIB);
		else
			printf("no per-client quota\n");
		printf("working set %" PRIu64 " pages (%.1f MiB): %" PRIu64 " client namespace%s "
		       "needed, batches of %zu pages\n", d.pages, (double)d.pages * PAGE / MIB, nns,
		       nns > 1 ? "s" : "", d.batch);
		/* Start from empty namespaces: a previous run may have used --keep. */
		for (unsigned k = 0; k < nns && k < MAX_CLIENTS; k++)
			sdrsa_free_all(client(&d, k), NULL);
	}
	phase_put(&d, buf, addrs, ptrs, results, todo);
	phase_quota_probe(&d, expect);
	phase_get(&d, buf, expect, addrs, ptrs, results, idxs);
	phase_latency(&d, buf, expect);
	if (sdrsa_stats(d.clients[0], &st) < 0)
		die("STATS failed");
	summary(&d, &st);

	ok = d.verified == d.pages && !d.mismatches && !d.errors &&
	     (d.nclients < 2 || d.extra_put_rc == -EDQUOT);
	if (!d.keep) {
		uint64_t total = 0;
		release(&d, &total);
		printf("freed %" PRIu64 " pages on the server (--keep leaves them)\n", total);
	}
	printf("result: %s\n", ok ? "OK, every page came back intact"
				   : "FAILED, see the lines above");
	for (unsigned k = 0; k < d.nclients; k++)
		sdrsa_client_free(d.clients[k]);
	free(d.owner);
	free(buf);
	free(expect);
	free(addrs);
	free(idxs);
	free(todo);
	free(ptrs);
	free(results);
	return ok ? 0 : 1;
}
