/* SPDX-License-Identifier: MIT */
/*
 * The pool's server list: repeatable --server options and the pool file
 * (`rsa-app run --servers FILE`, `rsa-app pool status FILE`), and its form
 * in the SDRSA_POOL variable that rsa-app hands to the preload library.
 *
 * Pool file, one server per line ('#' starts a comment, blank lines are
 * ignored):
 *
 *     ADDRESS [weight=N] [key-file=PATH]
 *
 * ADDRESS as for --server (HOST:PORT, HOST, [V6]:PORT, unix:PATH); weight a
 * whole number from 1 to 1000000 (default: the server's free capacity);
 * key-file a key file holding the client name's key for that server
 * (default: the key of --key-file, if any). A bad line is an error naming
 * the file and line. docs/POOL.md has examples.
 */
#ifndef SDRSA_ENGINE_POOLCONF_H
#define SDRSA_ENGINE_POOLCONF_H

#include <stddef.h>
#include <stdint.h>

#include <sdrsa/engine.h>

#define POOLCONF_MAX 32 /* STORE_POOL_MAX */
#define POOLCONF_ADDR_MAX 256

struct poolconf {
	size_t n;
	char addr[POOLCONF_MAX][POOLCONF_ADDR_MAX];
	unsigned weight[POOLCONF_MAX];     /* 0: by free capacity */
	int has_key[POOLCONF_MAX];
	uint8_t key[POOLCONF_MAX][SDRSA_KEY_SIZE];
};

/* Add one server. Returns 0, -E2BIG (more than POOLCONF_MAX), -EEXIST
 * (listed twice), -EINVAL (not an address); err gets a one-line reason. */
int poolconf_add(struct poolconf *c, const char *addr, unsigned weight, const uint8_t *key,
		 char *err, size_t nerr);
/* Read a pool file; `name` is the client name whose keys key-file= lines
 * load. Returns 0 or -errno with err = "FILE line N: what is wrong". */
int poolconf_load(struct poolconf *c, const char *path, const char *name, char *err, size_t nerr);
/* --replicas R: a whole number from 1 to POOLCONF_MAX. Returns 0 or -EINVAL. */
int poolconf_parse_replicas(const char *s, unsigned long *out);
/* The engine's view: fills srv[0..n) pointing into c. */
void poolconf_servers(const struct poolconf *c, struct sdrsa_pool_server *srv);
/* SDRSA_POOL: "ADDR WEIGHT KEYHEX-or-'-'" lines. encode returns a malloc'd
 * string or NULL; decode returns 0 or -EINVAL. */
char *poolconf_encode(const struct poolconf *c);
int poolconf_decode(struct poolconf *c, const char *s);

#endif
