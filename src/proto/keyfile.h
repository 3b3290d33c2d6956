/* SPDX-License-Identifier: MIT */
/*
 * Key files: one client per line, "NAME HEXKEY" (64 hex digits, 32 bytes),
 * '#' starts a comment, blank lines are ignored. The server reads a file with
 * every client it accepts; a client reads a file holding at least its own line.
 * Both refuse a file that group or others can read, as ssh does, because a
 * key that leaked lets its holder read that client's pages.
 */
#ifndef SDRSA_PROTO_KEYFILE_H
#define SDRSA_PROTO_KEYFILE_H

#include <stddef.h>
#include <stdint.h>

#include <sdrsa/protocol.h>

/* Called for each entry; a non-zero return stops parsing and is returned. */
typedef int (*sdrsa_keyfile_cb)(void *userdata, const char *name,
				const uint8_t key[SDRSA_KEY_SIZE]);

/*
 * Parse PATH. Returns 0, the callback's non-zero value, -EPERM (file readable
 * by group/others), -EBADMSG (malformed line; *bad_line gets its number when
 * bad_line is not NULL), or -errno from open/read.
 */
int sdrsa_keyfile_parse(const char *path, sdrsa_keyfile_cb cb, void *userdata, int *bad_line);

#endif
