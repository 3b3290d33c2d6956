// SPDX-License-Identifier: MIT
/*
 * In-memory page store, for the engine's unit tests only (tests/engine): a
 * chained hash of key -> malloc'd page. Not used by rsa-app or the preload
 * library. It can simulate a dead server (store_mem_fail_after), a full one
 * (store_mem_set_capacity) and one that serves an older version of a page
 * (store_mem_serve_old: a put delivered late, a replica that missed a write).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine/store.h"

#define PAGE 4096u

struct mem_ent {
	struct mem_ent *next;
	uint64_t key;
	unsigned char *old; /* the version before the last put (store_mem_serve_old) */
	unsigned char data[PAGE];
};

struct store_mem {
	struct store base;
	struct mem_ent **buckets;
	size_t nbuckets; /* power of two */
	size_t count;
	uint64_t ops;        /* operations done */
	uint64_t fail_after; /* 0: never */
	size_t capacity;     /* 0: no limit */
	int keep_old;        /* puts keep the version they replace */
	uint64_t serve_old;  /* gets left that serve an older version (each once) */
	int old_ahead;       /* only to pages after the first of a get_stream */
};

static size_t bucket_of(const struct store_mem *m, uint64_t key)
{
	return (size_t)((key >> 12) * 0x9E3779B97F4A7C15ull >> 20) & (m->nbuckets - 1);
}

static struct mem_ent **find(struct store_mem *m, uint64_t key)
{
	struct mem_ent **pp = &m->buckets[bucket_of(m, key)];
	while (*pp && (*pp)->key != key)
		pp = &(*pp)->next;
	return pp;
}

static int fail_now(struct store_mem *m)
{
	if (m->fail_after && m->ops >= m->fail_after)
		return -ECONNRESET;
	m->ops++;
	return 0;
}

static int mem_get(struct store *s, const uint64_t *keys, void *const *pages, size_t n,
		   int stream)
{
	struct store_mem *m = (struct store_mem *)s;
	int r = fail_now(m);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		struct mem_ent *e = *find(m, keys[i]);
		if (!e)
			return -ENOENT;
		if (m->serve_old && e->old && (!m->old_ahead || (stream && i > 0))) {
			/* The old version, once: then it is forgotten. */
			memcpy(pages[i], e->old, PAGE);
			free(e->old);
			e->old = NULL;
			m->serve_old--;
			s->bytes_recv += PAGE;
			continue;
		}
		memcpy(pages[i], e->data, PAGE);
		s->bytes_recv += PAGE;
	}
	return 0;
}

static int mem_get_many(struct store *s, const uint64_t *keys, void *const *pages, size_t n)
{
	return mem_get(s, keys, pages, n, 0);
}

static int mem_get_stream(struct store *s, const uint64_t *keys, void *const *pages, size_t n,
			  void (*arrived)(void *ctx, const size_t *idx, size_t k), void *ctx,
			  uint64_t *csums)
{
	(void)csums; /* gives none */
	int r = mem_get(s, keys, pages, n, 1);
	if (r < 0)
		return r;
	size_t idx[64];
	for (size_t base = 0; base < n; base += 64) {
		size_t k = n - base < 64 ? n - base : 64;
		for (size_t i = 0; i < k; i++)
			idx[i] = base + i;
		arrived(ctx, idx, k);
	}
	return 0;
}

static int mem_put_many(struct store *s, const uint64_t *keys, const void *const *pages, size_t n,
			int *results)
{
	struct store_mem *m = (struct store_mem *)s;
	int r = fail_now(m), first = 0;
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		struct mem_ent **pp = find(m, keys[i]);
		if (results)
			results[i] = 0;
		if (!*pp && m->capacity && m->count >= m->capacity) {
			if (results)
				results[i] = -ENOSPC;
			if (!first)
				first = -ENOSPC;
			continue;
		}
		if (!*pp) {
			struct mem_ent *e = malloc(sizeof(*e));
			if (!e)
				return -ENOMEM;
			e->key = keys[i];
			e->next = NULL;
			e->old = NULL;
			*pp = e;
			m->count++;
		} else if (m->keep_old) {
			if (!(*pp)->old && !((*pp)->old = malloc(PAGE)))
				return -ENOMEM;
			memcpy((*pp)->old, (*pp)->data, PAGE);
		}
		memcpy((*pp)->data, pages[i], PAGE);
		s->bytes_sent += PAGE;
	}
	return first;
}

static int mem_free_keys(struct store *s, const uint64_t *keys, size_t n)
{
	struct store_mem *m = (struct store_mem *)s;
	int r = fail_now(m);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		struct mem_ent **pp = find(m, keys[i]);
		if (*pp) {
			struct mem_ent *e = *pp;
			*pp = e->next;
			free(e->old);
			free(e);
			m->count--;
		}
	}
	return 0;
}

static int mem_free_all(struct store *s, uint64_t *freed)
{
	struct store_mem *m = (struct store_mem *)s;
	int r = fail_now(m);
	if (r < 0)
		return r;
	uint64_t n = 0;
	for (size_t b = 0; b < m->nbuckets; b++) {
		while (m->buckets[b]) {
			struct mem_ent *e = m->buckets[b];
			m->buckets[b] = e->next;
			free(e->old);
			free(e);
			n++;
		}
	}
	m->count = 0;
	if (freed)
		*freed = n;
	return 0;
}

static void mem_destroy(struct store *s)
{
	struct store_mem *m = (struct store_mem *)s;
	m->fail_after = 0;
	mem_free_all(s, NULL);
	free(m->buckets);
	free(m);
}

static void mem_fork_child(struct store *s)
{
	(void)s; /* the child's copy of the map holds what the parent stored */
}

static const struct store_ops mem_ops = {
	.get_many = mem_get_many,
	.get_stream = mem_get_stream,
	.put_many = mem_put_many,
	.free_keys = mem_free_keys,
	.free_all = mem_free_all,
	.destroy = mem_destroy,
	.fork_child = mem_fork_child,
};

int store_mem_new(struct store **ret)
{
	struct store_mem *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->nbuckets = 1u << 16;
	m->buckets = calloc(m->nbuckets, sizeof(*m->buckets));
	if (!m->buckets) {
		free(m);
		return -ENOMEM;
	}
	m->base.ops = &mem_ops;
	*ret = &m->base;
	return 0;
}

void store_mem_fail_after(struct store *s, uint64_t ops)
{
	struct store_mem *m = (struct store_mem *)s;
	m->fail_after = ops ? m->ops + ops : 0;
}

void store_mem_set_capacity(struct store *s, size_t pages)
{
	((struct store_mem *)s)->capacity = pages;
}

size_t store_mem_count(const struct store *s)
{
	return ((const struct store_mem *)s)->count;
}

void store_mem_keep_old(struct store *s, int on)
{
	((struct store_mem *)s)->keep_old = on;
}

void store_mem_serve_old(struct store *s, uint64_t n, int ahead)
{
	((struct store_mem *)s)->serve_old = n;
	((struct store_mem *)s)->old_ahead = ahead;
}
