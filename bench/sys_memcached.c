/* SPDX-License-Identifier: MIT */
/*
 * pagebench: memcached from Debian through libmemcached, as a page store.
 *
 * The server runs as `memcached -p PORT -l 127.0.0.1 -m 1024 -U 0 -t 1`
 * (one worker thread, like memory-server --threads 1 and single-threaded
 * Redis). The client speaks the binary protocol with TCP_NODELAY. Each page
 * is one item, key "pg:<hex address>", value the 4096 bytes.
 *
 * libmemcached has no sliding window, so its pipelining is done the way its
 * API offers, in batches of `depth`:
 *  - gets: memcached_mget() of depth keys (GETKQ... NOOP), then
 *    memcached_fetch_result() until the batch is drained;
 *  - puts: a second handle with BUFFER_REQUESTS and NOREPLY, so depth sets go
 *    out as quiet SETQs in as few writes as the buffer allows, then one
 *    memcached_get() of a tiny key that flushes them and waits for the server
 *    to have processed all of them (replies are in order). A failed SETQ is
 *    not reported by libmemcached here; the bench's final read-back of every
 *    page catches any page that was not stored.
 */
#include <errno.h>
#include <libmemcached/memcached.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pagebench.h"

#define MC_SYNC_KEY "pagebench:sync"

struct mc_client {
	memcached_st *sync; /* latency and pipelined gets: replies on */
	memcached_st *bulk; /* pipelined puts: buffered, quiet */
	memcached_result_st result;
	int have_result;
};

static int mc_start(struct pb_system *s)
{
	/* memcached refuses to run as root without -u */
	const char *const args[] = {"-p", PB_PORT_ARG, "-l", "127.0.0.1", "-m", "1024", "-U", "0",
				    "-t", "1", "-c", "1024", geteuid() == 0 ? "-u" : NULL, "root",
				    NULL};

	return pb_start_peer(s, "memcached", "memcached.log", args);
}

static memcached_st *mc_handle(struct pb_system *s, int bulk)
{
	memcached_st *m = memcached_create(NULL);
	if (!m)
		return NULL;
	uint64_t to = (uint64_t)pb_opts.timeout_ms;
	memcached_behavior_set(m, MEMCACHED_BEHAVIOR_BINARY_PROTOCOL, 1);
	memcached_behavior_set(m, MEMCACHED_BEHAVIOR_TCP_NODELAY, 1);
	memcached_behavior_set(m, MEMCACHED_BEHAVIOR_CONNECT_TIMEOUT, to);
	memcached_behavior_set(m, MEMCACHED_BEHAVIOR_POLL_TIMEOUT, to);
	memcached_behavior_set(m, MEMCACHED_BEHAVIOR_RCV_TIMEOUT, to * 1000);
	memcached_behavior_set(m, MEMCACHED_BEHAVIOR_SND_TIMEOUT, to * 1000);
	if (bulk) {
		memcached_behavior_set(m, MEMCACHED_BEHAVIOR_BUFFER_REQUESTS, 1);
		memcached_behavior_set(m, MEMCACHED_BEHAVIOR_NOREPLY, 1);
	}
	if (memcached_server_add(m, "127.0.0.1", (in_port_t)s->port) != MEMCACHED_SUCCESS) {
		memcached_free(m);
		return NULL;
	}
	return m;
}

static void mc_disconnect(struct pb_system *s)
{
	struct mc_client *c = s->priv;
	if (!c)
		return;
	if (c->have_result)
		memcached_result_free(&c->result);
	if (c->sync)
		memcached_free(c->sync);
	if (c->bulk)
		memcached_free(c->bulk);
	free(c);
	s->priv = NULL;
}

static int mc_connect(struct pb_system *s)
{
	struct mc_client *c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(s->err, sizeof(s->err), "out of memory");
		return -1;
	}
	s->priv = c;
	c->sync = mc_handle(s, 0);
	c->bulk = mc_handle(s, 1);
	if (!c->sync || !c->bulk) {
		snprintf(s->err, sizeof(s->err), "libmemcached: cannot create a handle");
		goto fail;
	}
	if (!memcached_result_create(c->sync, &c->result)) {
		snprintf(s->err, sizeof(s->err), "libmemcached: cannot create a result");
		goto fail;
	}
	c->have_result = 1;
	/* Connects, and stores the key the bulk handle reads to synchronise. */
	memcached_return_t rc =
	    memcached_set(c->sync, MC_SYNC_KEY, strlen(MC_SYNC_KEY), "1", 1, 0, 0);
	if (rc != MEMCACHED_SUCCESS) {
		snprintf(s->err, sizeof(s->err), "memcached set: %s",
			 memcached_last_error_message(c->sync));
		goto fail;
	}
	return 0;
fail:
	mc_disconnect(s);
	return -1;
}

static int mc_get(struct pb_system *s, uint64_t addr, void *page)
{
	struct mc_client *c = s->priv;
	char key[32];
	size_t klen = pb_page_key(addr, key, sizeof(key)), vlen = 0;
	uint32_t flags;
	memcached_return_t rc;
	char *v = memcached_get(c->sync, key, klen, &vlen, &flags, &rc);
	if (!v) {
		snprintf(s->err, sizeof(s->err), "memcached get %s: %s", key,
			 rc == MEMCACHED_NOTFOUND ? "not found" : memcached_strerror(c->sync, rc));
		return -1;
	}
	if (vlen != PB_PAGE) {
		free(v);
		snprintf(s->err, sizeof(s->err), "memcached get %s: %zu bytes", key, vlen);
		return -1;
	}
	memcpy(page, v, PB_PAGE);
	free(v);
	return 0;
}

static int mc_put(struct pb_system *s, uint64_t addr, const void *page)
{
	struct mc_client *c = s->priv;
	char key[32];
	size_t klen = pb_page_key(addr, key, sizeof(key));
	memcached_return_t rc = memcached_set(c->sync, key, klen, page, PB_PAGE, 0, 0);
	if (rc != MEMCACHED_SUCCESS) {
		snprintf(s->err, sizeof(s->err), "memcached set %s: %s", key,
			 memcached_strerror(c->sync, rc));
		return -1;
	}
	return 0;
}

static int mc_pipe_get(struct pb_system *s, struct pb_job *job)
{
	struct mc_client *c = s->priv;
	char keys[PB_MAX_DEPTH][32];
	const char *kp[PB_MAX_DEPTH];
	size_t kl[PB_MAX_DEPTH];
	uint64_t addr_of[PB_MAX_DEPTH];
	uint8_t filled[PB_MAX_DEPTH];

	for (size_t i = 0; i < job->n; i += job->depth) {
		size_t b = job->n - i < job->depth ? job->n - i : job->depth;
		for (size_t k = 0; k < b; k++) {
			addr_of[k] = job->addrs[i + k];
			kl[k] = pb_page_key(addr_of[k], keys[k], sizeof(keys[k]));
			kp[k] = keys[k];
			filled[k] = 0;
		}
		memcached_return_t rc = memcached_mget(c->sync, kp, kl, b);
		if (rc != MEMCACHED_SUCCESS) {
			snprintf(s->err, sizeof(s->err), "memcached mget: %s",
				 memcached_strerror(c->sync, rc));
			return -1;
		}
		memcached_result_st *r;
		while ((r = memcached_fetch_result(c->sync, &c->result, &rc))) {
			const char *key = memcached_result_key_value(r);
			size_t klen = memcached_result_key_length(r);
			size_t k;
			/* Keys may repeat within a batch; fill the first open slot. */
			for (k = 0; k < b; k++)
				if (!filled[k] && kl[k] == klen && !memcmp(kp[k], key, klen))
					break;
			if (k == b) {
				pb_job_error(job, 0, "memcached mget: reply for a key not asked");
				continue;
			}
			filled[k] = 1;
			job->done++;
			if (memcached_result_length(r) != PB_PAGE) {
				pb_job_error(job, addr_of[k], "memcached mget: wrong value size");
				continue;
			}
			memcpy(job->slots[k], memcached_result_value(r), PB_PAGE);
			pb_job_check(job, job->slots[k], addr_of[k]);
		}
		if (rc != MEMCACHED_END && rc != MEMCACHED_SUCCESS && rc != MEMCACHED_NOTFOUND) {
			snprintf(s->err, sizeof(s->err), "memcached fetch: %s",
				 memcached_strerror(c->sync, rc));
			return -1;
		}
		for (size_t k = 0; k < b; k++) {
			if (!filled[k]) {
				job->done++;
				pb_job_error(job, addr_of[k], "memcached mget: not found");
			}
		}
	}
	return 0;
}

static int mc_pipe_put(struct pb_system *s, struct pb_job *job)
{
	struct mc_client *c = s->priv;
	char key[32];

	for (size_t i = 0; i < job->n; i += job->depth) {
		size_t b = job->n - i < job->depth ? job->n - i : job->depth;
		for (size_t k = 0; k < b; k++) {
			uint64_t a = job->addrs[i + k];
			size_t klen = pb_page_key(a, key, sizeof(key));
			pb_job_fill(job, job->slots[k], a);
			memcached_return_t rc = memcached_set(
			    c->bulk, key, klen, (const char *)job->slots[k], PB_PAGE, 0, 0);
			if (rc != MEMCACHED_SUCCESS && rc != MEMCACHED_BUFFERED) {
				snprintf(s->err, sizeof(s->err), "memcached set: %s",
					 memcached_strerror(c->bulk, rc));
				return -1;
			}
		}
		/* Flushes the buffered sets and waits until memcached got past them. */
		size_t vlen;
		uint32_t flags;
		memcached_return_t rc;
		char *v =
		    memcached_get(c->bulk, MC_SYNC_KEY, strlen(MC_SYNC_KEY), &vlen, &flags, &rc);
		if (!v) {
			snprintf(s->err, sizeof(s->err), "memcached sync get: %s",
				 memcached_strerror(c->bulk, rc));
			return -1;
		}
		free(v);
		job->done += b;
	}
	return 0;
}

static int mc_pipeline(struct pb_system *s, struct pb_job *job)
{
	return job->is_put ? mc_pipe_put(s, job) : mc_pipe_get(s, job);
}

const struct pb_sys_ops pb_sys_memcached = {
    .name = "memcached",
    .start = mc_start,
    .connect = mc_connect,
    .get = mc_get,
    .put = mc_put,
    .pipeline = mc_pipeline,
    .disconnect = mc_disconnect,
};
