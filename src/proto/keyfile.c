/* SPDX-License-Identifier: MIT */
/* Key file parser; format and rationale in keyfile.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto/keyfile.h"
#include "common/util.h"

int sdrsa_keyfile_parse(const char *path, sdrsa_keyfile_cb cb, void *userdata, int *bad_line)
{
	char line[512];
	struct stat st;
	int lineno = 0, rc = 0;
	FILE *f;

	f = fopen(path, "re");
	if (!f)
		return -errno;
	if (fstat(fileno(f), &st) < 0) {
		rc = -errno;
		goto out;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		rc = -EPERM;
		goto out;
	}
	/* fgets() writes the last byte only when it filled the buffer. */
	while ((line[sizeof(line) - 1] = 'x', fgets(line, sizeof(line), f))) {
		char name[SDRSA_NAME_MAX + 2], hex[2 * SDRSA_KEY_SIZE + 2], extra[2];
		uint8_t key[SDRSA_KEY_SIZE];
		char *hash = strchr(line, '#');
		int n, too_long = 0;

		lineno++;
		if (!line[sizeof(line) - 1] && line[sizeof(line) - 2] != '\n') {
			/* Longer than the buffer: skip the rest of it, so that it
			 * is not read as a line of its own. Only a comment may
			 * run on that long. */
			int ch;

			while ((ch = fgetc(f)) != EOF && ch != '\n')
				;
			too_long = !hash;
		}
		if (hash)
			*hash = '\0';
		n = sscanf(line, "%65s %65s %1s", name, hex, extra);
		if (n <= 0 && !too_long)
			continue;
		if (n != 2 || too_long || !sdrsa_name_valid(name) ||
		    sdrsa_hex_decode(hex, key, sizeof(key))) {
			if (bad_line)
				*bad_line = lineno;
			rc = -EBADMSG;
			goto out;
		}
		rc = cb(userdata, name, key);
		if (rc)
			goto out;
	}
	if (ferror(f))
		rc = -EIO;
out:
	fclose(f);
	return rc;
}
