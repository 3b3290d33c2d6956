/* SPDX-License-Identifier: MIT */
/*
 * pagebench: redis-server from Debian through hiredis, as a page store.
 *
 * The server runs without persistence (`--save '' --appendonly no`) on
 * 127.0.0.1. Each page is one string, key "pg:<hex address>"; the client
 * uses GET and SET through redisCommandArgv (no format parsing) with
 * TCP_NODELAY. Pipelining is a true sliding window: `depth` commands are
 * appended, and after each reply one more is appended; hiredis sends what
 * accumulated whenever it has to wait for a reply, so requests go out in
 * batches. Replies are in order.
 */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pagebench.h"

static int redis_start(struct pb_system *s)
{
	const char *const args[] = {"--port", PB_PORT_ARG, "--bind", "127.0.0.1", "--save", "",
				    "--appendonly", "no", "--daemonize", "no", "--protected-mode",
				    "no", "--dir", pb_opts.tmpdir, "--logfile", "", NULL};

	return pb_start_peer(s, "redis-server", "redis.log", args);
}

static int redis_connect(struct pb_system *s)
{
	struct timeval tv = {pb_opts.timeout_ms / 1000, (pb_opts.timeout_ms % 1000) * 1000};
	redisContext *c = redisConnectWithTimeout("127.0.0.1", s->port, tv);
	if (!c || c->err) {
		snprintf(s->err, sizeof(s->err), "redis connect 127.0.0.1:%d: %s", s->port,
			 c ? c->errstr : "out of memory");
		if (c)
			redisFree(c);
		return -1;
	}
	redisSetTimeout(c, tv);
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	s->priv = c;
	return 0;
}

static void redis_disconnect(struct pb_system *s)
{
	if (s->priv)
		redisFree(s->priv);
	s->priv = NULL;
}

static int redis_conn_error(struct pb_system *s, const char *what)
{
	redisContext *c = s->priv;
	snprintf(s->err, sizeof(s->err), "redis %s: %s", what, c->err ? c->errstr : "failed");
	return -1;
}

/* Checks a GET reply and copies its page; 0 or -1 with why set. */
static int redis_take_page(redisReply *r, void *page, const char **why)
{
	if (r->type == REDIS_REPLY_NIL) {
		*why = "redis get: not found";
		return -1;
	}
	if (r->type != REDIS_REPLY_STRING || r->len != PB_PAGE) {
		*why = "redis get: unexpected reply";
		return -1;
	}
	memcpy(page, r->str, PB_PAGE);
	return 0;
}

static int redis_get(struct pb_system *s, uint64_t addr, void *page)
{
	redisContext *c = s->priv;
	char key[32];
	size_t klen = pb_page_key(addr, key, sizeof(key));
	const char *argv[2] = {"GET", key};
	size_t lens[2] = {3, klen};
	redisReply *r = redisCommandArgv(c, 2, argv, lens);
	if (!r)
		return redis_conn_error(s, "get");
	const char *why = NULL;
	int ret = redis_take_page(r, page, &why);
	if (ret < 0)
		snprintf(s->err, sizeof(s->err), "%s (%s)", why, key);
	freeReplyObject(r);
	return ret;
}

static int redis_set_ok(const redisReply *r)
{
	return r->type == REDIS_REPLY_STATUS && r->len == 2 && !memcmp(r->str, "OK", 2);
}

static int redis_put(struct pb_system *s, uint64_t addr, const void *page)
{
	redisContext *c = s->priv;
	char key[32];
	size_t klen = pb_page_key(addr, key, sizeof(key));
	const char *argv[3] = {"SET", key, page};
	size_t lens[3] = {3, klen, PB_PAGE};
	redisReply *r = redisCommandArgv(c, 3, argv, lens);
	if (!r)
		return redis_conn_error(s, "set");
	int ok = redis_set_ok(r);
	freeReplyObject(r);
	if (!ok) {
		snprintf(s->err, sizeof(s->err), "redis set %s: unexpected reply", key);
		return -1;
	}
	return 0;
}

static int redis_append(redisContext *c, struct pb_job *job, unsigned slot, uint64_t addr)
{
	char key[32];
	size_t klen = pb_page_key(addr, key, sizeof(key));
	if (job->is_put) {
		pb_job_fill(job, job->slots[slot], addr);
		const char *argv[3] = {"SET", key, (const char *)job->slots[slot]};
		size_t lens[3] = {3, klen, PB_PAGE};
		return redisAppendCommandArgv(c, 3, argv, lens);
	}
	const char *argv[2] = {"GET", key};
	size_t lens[2] = {3, klen};
	return redisAppendCommandArgv(c, 2, argv, lens);
}

static int redis_pipeline(struct pb_system *s, struct pb_job *job)
{
	redisContext *c = s->priv;
	unsigned ring[PB_MAX_DEPTH];
	uint64_t addr_of[PB_MAX_DEPTH];
	unsigned head = 0, inflight = 0, depth = job->depth;
	size_t issued = 0;

	for (unsigned i = 0; i < depth && issued < job->n; i++) {
		addr_of[i] = job->addrs[issued++];
		if (redis_append(c, job, i, addr_of[i]) != REDIS_OK)
			return redis_conn_error(s, "append");
		ring[(head + inflight++) % depth] = i;
	}
	while (inflight > 0) {
		void *rv = NULL;
		if (redisGetReply(c, &rv) != REDIS_OK || !rv)
			return redis_conn_error(s, "pipeline");
		redisReply *r = rv;
		unsigned slot = ring[head];
		head = (head + 1) % depth;
		inflight--;
		job->done++;
		if (job->is_put) {
			if (!redis_set_ok(r))
				pb_job_error(job, addr_of[slot], "redis set: unexpected reply");
		} else {
			const char *why = NULL;
			if (redis_take_page(r, job->slots[slot], &why) < 0)
				pb_job_error(job, addr_of[slot], why);
			else
				pb_job_check(job, job->slots[slot], addr_of[slot]);
		}
		freeReplyObject(r);
		if (issued < job->n) {
			addr_of[slot] = job->addrs[issued++];
			if (redis_append(c, job, slot, addr_of[slot]) != REDIS_OK)
				return redis_conn_error(s, "append");
			ring[(head + inflight++) % depth] = slot;
		}
	}
	return 0;
}

const struct pb_sys_ops pb_sys_redis = {
    .name = "redis",
    .start = redis_start,
    .connect = redis_connect,
    .get = redis_get,
    .put = redis_put,
    .pipeline = redis_pipeline,
    .disconnect = redis_disconnect,
};
