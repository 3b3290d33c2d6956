// SPDX-License-Identifier: MIT
/*
 * Pool file and SDRSA_POOL parsing (poolconf.h). Pure parsing plus the key
 * file read of key-file= lines; nothing prints.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sdrsa/client.h>

#include "common/util.h"
#include "engine/poolconf.h"

static int fail(char *err, size_t nerr, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t nerr, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (err && nerr)
		vsnprintf(err, nerr, fmt, ap);
	va_end(ap);
	return rc;
}

int poolconf_add(struct poolconf *c, const char *addr, unsigned weight, const uint8_t *key,
		 char *err, size_t nerr)
{
	struct sockaddr_storage ss;
	socklen_t len;
	if (strlen(addr) >= POOLCONF_ADDR_MAX)
		return fail(err, nerr, -EINVAL, "server address '%.40s...' is too long", addr);
	int r = sdrsa_parse_sockaddr(addr, SDRSA_DEFAULT_PORT, &ss, &len);
	if (r == -EINVAL || r == -ENAMETOOLONG)
		return fail(err, nerr, -EINVAL,
			    "'%s' is not a server address (HOST:PORT, HOST, [V6]:PORT, unix:PATH)",
			    addr);
	for (size_t i = 0; i < c->n; i++)
		if (!strcmp(c->addr[i], addr))
			return fail(err, nerr, -EEXIST, "server %s is listed twice", addr);
	if (c->n == POOLCONF_MAX)
		return fail(err, nerr, -E2BIG, "more than %d servers", POOLCONF_MAX);
	snprintf(c->addr[c->n], POOLCONF_ADDR_MAX, "%s", addr);
	c->weight[c->n] = weight;
	c->has_key[c->n] = key != NULL;
	if (key)
		memcpy(c->key[c->n], key, SDRSA_KEY_SIZE);
	c->n++;
	return 0;
}

static int parse_weight(const char *v, unsigned *out)
{
	char *end;
	errno = 0;
	unsigned long w = strtoul(v, &end, 10);
	if (errno || end == v || *end || *v == '-' || w < 1 || w > 1000000)
		return -EINVAL;
	*out = (unsigned)w;
	return 0;
}

int poolconf_load(struct poolconf *c, const char *path, const char *name, char *err, size_t nerr)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return fail(err, nerr, -errno, "%s: %s", path, strerror(errno));
	char line[1024];
	int lineno = 0, rc = 0;
	size_t before = c->n;
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		if (!strchr(line, '\n') && !feof(f)) {
			rc = fail(err, nerr, -EINVAL, "%s line %d: longer than %zu characters", path,
				  lineno, sizeof(line) - 2);
			break;
		}
		char *hash = strchr(line, '#');
		if (hash)
			*hash = 0;
		char *save = NULL, *addr = strtok_r(line, " \t\r\n", &save);
		if (!addr)
			continue;
		unsigned weight = 0;
		uint8_t key[SDRSA_KEY_SIZE];
		int has_key = 0;
		char *tok;
		while (!rc && (tok = strtok_r(NULL, " \t\r\n", &save))) {
			if (!strncmp(tok, "weight=", 7)) {
				if (parse_weight(tok + 7, &weight) < 0)
					rc = fail(err, nerr, -EINVAL,
						  "%s line %d: weight '%s' is not a whole number "
						  "from 1 to 1000000",
						  path, lineno, tok + 7);
			} else if (!strncmp(tok, "key-file=", 9) && tok[9]) {
				int kr = sdrsa_key_load(tok + 9, name, key);
				if (kr < 0)
					rc = fail(err, nerr, kr,
						  "%s line %d: cannot load the key of '%s' from %s: %s",
						  path, lineno, name, tok + 9, strerror(-kr));
				has_key = 1;
			} else {
				rc = fail(err, nerr, -EINVAL,
					  "%s line %d: unknown field '%s' (a line is ADDRESS "
					  "[weight=N] [key-file=PATH])",
					  path, lineno, tok);
			}
		}
		if (rc)
			break;
		char why[300];
		int ar = poolconf_add(c, addr, weight, has_key ? key : NULL, why, sizeof(why));
		if (ar < 0) {
			rc = fail(err, nerr, ar, "%s line %d: %s", path, lineno, why);
			break;
		}
	}
	if (!rc && ferror(f))
		rc = fail(err, nerr, -EIO, "%s: read error", path);
	fclose(f);
	if (!rc && c->n == before)
		rc = fail(err, nerr, -EINVAL, "%s: no server listed", path);
	return rc;
}

int poolconf_parse_replicas(const char *s, unsigned long *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || *end || end == s || v < 1 || v > POOLCONF_MAX)
		return -EINVAL;
	*out = v;
	return 0;
}

void poolconf_servers(const struct poolconf *c, struct sdrsa_pool_server *srv)
{
	for (size_t i = 0; i < c->n; i++)
		srv[i] = (struct sdrsa_pool_server){
			.address = c->addr[i],
			.weight = c->weight[i],
			.key = c->has_key[i] ? c->key[i] : NULL,
		};
}

char *poolconf_encode(const struct poolconf *c)
{
	size_t cap = c->n * (POOLCONF_ADDR_MAX + 16 + 2 * SDRSA_KEY_SIZE) + 1, o = 0;
	char *s = malloc(cap);
	if (!s)
		return NULL;
	s[0] = 0;
	for (size_t i = 0; i < c->n; i++) {
		char hex[2 * SDRSA_KEY_SIZE + 1] = "-";
		if (c->has_key[i])
			sdrsa_hex_encode(c->key[i], SDRSA_KEY_SIZE, hex);
		o += (size_t)snprintf(s + o, cap - o, "%s %u %s\n", c->addr[i], c->weight[i], hex);
	}
	return s;
}

int poolconf_decode(struct poolconf *c, const char *s)
{
	memset(c, 0, sizeof(*c));
	while (*s) {
		const char *nl = strchr(s, '\n');
		size_t len = nl ? (size_t)(nl - s) : strlen(s);
		char line[POOLCONF_ADDR_MAX + 100], addr[POOLCONF_ADDR_MAX], hex[80];
		unsigned w;
		if (len >= sizeof(line))
			return -EINVAL;
		memcpy(line, s, len);
		line[len] = 0;
		s += len + (nl ? 1 : 0);
		if (!len)
			continue;
		if (sscanf(line, "%255s %u %79s", addr, &w, hex) != 3)
			return -EINVAL;
		uint8_t key[SDRSA_KEY_SIZE];
		int has_key = strcmp(hex, "-") != 0;
		if (has_key && sdrsa_hex_decode(hex, key, sizeof(key)) < 0)
			return -EINVAL;
		if (poolconf_add(c, addr, w, has_key ? key : NULL, NULL, 0) < 0)
			return -EINVAL;
	}
	return c->n ? 0 : -EINVAL;
}
