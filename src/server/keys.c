/* SPDX-License-Identifier: MIT */
/* Client key table; see keys.h. A plain array: tables hold tens of clients
 * and are searched once per connection. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "proto/keyfile.h"
#include "server/keys.h"

struct key_ent {
	char name[SDRSA_NAME_MAX + 1];
	uint8_t key[SDRSA_KEY_SIZE];
};

struct sdrsa_keys {
	struct key_ent *ents;
	size_t n, cap;
	uint8_t dummy[SDRSA_KEY_SIZE]; /* for unknown names */
};

static int add_key(void *userdata, const char *name, const uint8_t key[SDRSA_KEY_SIZE])
{
	struct sdrsa_keys *k = userdata;

	if (k->n == k->cap) {
		size_t cap = k->cap ? 2 * k->cap : 16;
		struct key_ent *e = calloc(cap, sizeof(*e));

		if (!e)
			return -ENOMEM;
		if (k->n)
			memcpy(e, k->ents, k->n * sizeof(*e));
		sodium_memzero(k->ents, k->cap * sizeof(*e));
		free(k->ents);
		k->ents = e;
		k->cap = cap;
	}
	strcpy(k->ents[k->n].name, name);
	memcpy(k->ents[k->n].key, key, SDRSA_KEY_SIZE);
	k->n++;
	return 0;
}

int sdrsa_keys_load(const char *path, int *bad_line, struct sdrsa_keys **ret)
{
	struct sdrsa_keys *k;
	int rc;

	if (!path || !ret)
		return -EINVAL;
	if (sodium_init() < 0)
		return -EIO;
	k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	randombytes_buf(k->dummy, sizeof(k->dummy));
	rc = sdrsa_keyfile_parse(path, add_key, k, bad_line);
	if (!rc && k->n == 0)
		rc = -ENODATA;
	if (rc) {
		sdrsa_keys_free(k);
		return rc;
	}
	*ret = k;
	return 0;
}

void sdrsa_keys_free(struct sdrsa_keys *k)
{
	if (!k)
		return;
	if (k->ents)
		sodium_memzero(k->ents, k->cap * sizeof(*k->ents));
	free(k->ents);
	sodium_memzero(k, sizeof(*k));
	free(k);
}

size_t sdrsa_keys_count(const struct sdrsa_keys *k)
{
	return k ? k->n : 0;
}

size_t sdrsa_keys_names(const struct sdrsa_keys *k)
{
	size_t names = 0;

	for (size_t i = 0; k && i < k->n; i++) {
		size_t j;

		for (j = 0; j < i; j++)
			if (!strcmp(k->ents[i].name, k->ents[j].name))
				break;
		names += j == i;
	}
	return names;
}

int sdrsa_keys_verify(const struct sdrsa_keys *k, const char *name,
		      const uint8_t client_nonce[SDRSA_NONCE_SIZE],
		      const uint8_t server_nonce[SDRSA_NONCE_SIZE],
		      const uint8_t mac[SDRSA_MAC_SIZE], uint8_t server_mac[SDRSA_MAC_SIZE])
{
	uint8_t expect[SDRSA_MAC_SIZE];
	const struct key_ent *match = NULL;
	int tried = 0, sink = 0;

	if (!k || !name)
		return -EPERM;
	for (size_t i = 0; i < k->n; i++) {
		if (strcmp(k->ents[i].name, name))
			continue;
		tried = 1;
		sdrsa_auth_mac(k->ents[i].key, 0, client_nonce, server_nonce, name, expect);
		if (crypto_verify_32(expect, mac) == 0 && !match)
			match = &k->ents[i];
	}
	if (!tried) {
		/* Same work as a known name with a wrong key. */
		sdrsa_auth_mac(k->dummy, 0, client_nonce, server_nonce, name, expect);
		sink = crypto_verify_32(expect, mac);
	}
	(void)sink;
	sodium_memzero(expect, sizeof(expect));
	if (!match)
		return -EPERM;
	sdrsa_auth_mac(match->key, 1, client_nonce, server_nonce, name, server_mac);
	return 0;
}
