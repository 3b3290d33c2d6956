// SPDX-License-Identifier: MIT
/*
 * The memcached page store on its own, against a real fleet (started by
 * test_memcached.sh): pages back by content, an item evicted behind the
 * store's back (a miss is -EIO with the reason, and freeing it is no error
 * and does not confuse the next requests), an item overwritten with other
 * bytes (-EIO, "damaged"), keys reused after a free, a fork child reading on
 * its own connection, free_all leaving no item of ours.
 *
 * Usage: test_store_memcached HOST:PORT,...   Exit 0 pass, 1 fail.
 */
#include <errno.h>
#include <libmemcached/memcached.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/store.h"

#define PG 4096
#define N 256

static int failed;
#define CHECK(c)                                                                    \
	do {                                                                        \
		if (!(c)) {                                                         \
			fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #c); \
			failed = 1;                                                 \
			return 1;                                                   \
		}                                                                   \
	} while (0)

static unsigned char pages[N][PG], got[N][PG];
static uint64_t keys[N];
static char ns[64];

static void fill(unsigned i, unsigned version)
{
	for (unsigned j = 0; j < PG; j++)
		pages[i][j] = (unsigned char)(i * 31 + j * 7 + version);
}

static size_t item_key(uint64_t key, char *out, size_t n)
{
	return (size_t)snprintf(out, n, "%s:%llx", ns, (unsigned long long)key);
}

/* How many of our keys the fleet holds, seen by another client. */
static int held(memcached_st *other)
{
	char kt[N][128];
	const char *kp[N];
	size_t kl[N];
	for (int i = 0; i < N; i++) {
		kl[i] = item_key(keys[i], kt[i], sizeof(kt[i]));
		kp[i] = kt[i];
	}
	if (memcached_mget(other, kp, kl, N) != MEMCACHED_SUCCESS)
		return -1;
	int n = 0;
	memcached_return_t rc;
	memcached_result_st *r;
	while ((r = memcached_fetch_result(other, NULL, &rc))) {
		n++;
		memcached_result_free(r);
	}
	return n;
}

static int get_range(struct store *s, unsigned from, unsigned to)
{
	void *dst[N];
	for (unsigned i = from; i < to; i++)
		dst[i - from] = got[i];
	return s->ops->get_many(s, keys + from, dst, to - from);
}

static int run(const char *fleet)
{
	snprintf(ns, sizeof(ns), "stest-%d", (int)getpid());
	struct store *s;
	CHECK(store_memcached_new(fleet, ns, 2000, 1000, &s) == 0);
	memcached_st *other = memcached_create(NULL);
	memcached_behavior_set(other, MEMCACHED_BEHAVIOR_BINARY_PROTOCOL, 1);
	memcached_behavior_set(other, MEMCACHED_BEHAVIOR_DISTRIBUTION,
			       MEMCACHED_DISTRIBUTION_CONSISTENT_KETAMA);
	memcached_server_st *list = memcached_servers_parse(fleet);
	CHECK(list && memcached_server_push(other, list) == MEMCACHED_SUCCESS);
	memcached_server_list_free(list);

	const void *src[N];
	int res[N];
	for (unsigned i = 0; i < N; i++) {
		keys[i] = ((uint64_t)getpid() << 42) | ((uint64_t)(i + 1) << 12);
		fill(i, 0);
		src[i] = pages[i];
	}
	CHECK(s->ops->put_many(s, keys, src, N, res) == 0);
	for (unsigned i = 0; i < N; i++)
		CHECK(res[i] == 0);
	CHECK(held(other) == N);
	CHECK(get_range(s, 0, N) == 0);
	CHECK(memcmp(got, pages, sizeof(got)) == 0);

	/* memcached evicts keys 0..127 (as its LRU would). */
	for (unsigned i = 0; i < 128; i++) {
		char k[128];
		CHECK(memcached_delete(other, k, item_key(keys[i], k, sizeof(k)), 0) ==
		      MEMCACHED_SUCCESS);
	}
	/* A miss: -EIO with the reason, never zeros. */
	memset(got, 0xAA, sizeof(got));
	CHECK(get_range(s, 100, 101) == -EIO);
	CHECK(s->why && strstr(s->why, "is missing on memcached"));
	/* Freeing evicted keys is no error and leaves the connection sane. */
	CHECK(s->ops->free_keys(s, keys, 128) == 0);
	CHECK(get_range(s, 128, N) == 0);
	CHECK(memcmp(got[128], pages[128], (N - 128) * PG) == 0);
	/* Keys reused after the free: the new content, stored and read back. */
	for (unsigned i = 0; i < 64; i++)
		fill(i, 1);
	CHECK(s->ops->put_many(s, keys, src, 64, res) == 0);
	CHECK(get_range(s, 0, 64) == 0);
	CHECK(memcmp(got, pages, 64 * PG) == 0);

	/* Someone else overwrites an item with bytes of the right size. */
	{
		char k[128], junk[4120];
		memset(junk, 0x5A, sizeof(junk));
		CHECK(memcached_set(other, k, item_key(keys[200], k, sizeof(k)), junk,
				    sizeof(junk), 0, 0) == MEMCACHED_SUCCESS);
		CHECK(get_range(s, 200, 201) == -EIO);
		CHECK(s->why && strstr(s->why, "damaged"));
		fill(200, 2);
		CHECK(s->ops->put_many(s, keys + 200, src + 200, 1, res) == 0 && res[0] == 0);
	}

	/* A fork child reads the parent's pages over its own connection. */
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		s->ops->fork_child(s);
		int ok = get_range(s, 0, 64) == 0 && memcmp(got, pages, 64 * PG) == 0 &&
			 get_range(s, 128, N) == 0 &&
			 memcmp(got[128], pages[128], (N - 128) * PG) == 0;
		_exit(ok ? 0 : 3);
	}
	int st;
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	/* The parent's connection still works after the child used its own. */
	CHECK(get_range(s, 128, N) == 0);
	CHECK(memcmp(got[128], pages[128], (N - 128) * PG) == 0);

	uint64_t freed = 0;
	CHECK(s->ops->free_all(s, &freed) == 0);
	CHECK(freed == 64 + 128); /* 0..63 again, and 128..255 */
	CHECK(held(other) == 0);
	store_free(s);
	memcached_free(other);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: test_store_memcached HOST:PORT,...\n");
		return 2;
	}
	run(argv[1]);
	if (!failed)
		fprintf(stderr, "store_memcached: all checks passed\n");
	return failed;
}
