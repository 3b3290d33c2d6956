/* SPDX-License-Identifier: MIT */
/*
 * Server side of the handshake: the table of client keys read from the key
 * file (format in src/proto/keyfile.h) and the check of a client's proof.
 *
 * A name may appear on several lines: each of its keys is accepted. That is
 * how keys are rotated without a restart (add the new key, SIGHUP, move the
 * client over, remove the old key, SIGHUP); a restart would lose every page.
 *
 * A key table is immutable once loaded, so any number of threads may verify
 * against it at once; the server swaps whole tables on reload (server.c).
 */
#ifndef SDRSA_SERVER_KEYS_H
#define SDRSA_SERVER_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include <sdrsa/protocol.h>

struct sdrsa_keys;

/*
 * Load a key file. Returns 0, -EPERM (readable by group or others),
 * -EBADMSG (malformed line; *bad_line gets its number), -ENODATA (no key in
 * the file), -ENOMEM or -errno of open/read.
 */
int sdrsa_keys_load(const char *path, int *bad_line, struct sdrsa_keys **ret);
/* Wipes the keys from memory; accepts NULL. */
void sdrsa_keys_free(struct sdrsa_keys *k);
/* Lines (keys) and distinct names in the table. */
size_t sdrsa_keys_count(const struct sdrsa_keys *k);
size_t sdrsa_keys_names(const struct sdrsa_keys *k);

/*
 * Check a client's AUTH proof for `name` over both nonces. On success write
 * the server's proof (made with the key that matched) to server_mac and
 * return 0; otherwise return -EPERM. An unknown name costs the same HMAC and
 * comparison as a known one with a wrong key, so timing does not tell an
 * attacker which names exist.
 */
int sdrsa_keys_verify(const struct sdrsa_keys *k, const char *name,
		      const uint8_t client_nonce[SDRSA_NONCE_SIZE],
		      const uint8_t server_nonce[SDRSA_NONCE_SIZE],
		      const uint8_t mac[SDRSA_MAC_SIZE], uint8_t server_mac[SDRSA_MAC_SIZE]);

#endif
