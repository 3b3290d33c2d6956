/* SPDX-License-Identifier: MIT */
/*
 * Small helpers shared by the agent and the control clients: where the
 * control sockets live, and which VM names are allowed (a name becomes part
 * of file names: RUNDIR/NAME.sock, RUNDIR/NAME.lock, /dev/shm/sdrsa-NAME).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vm/vm_proto.h"

int vm_run_dir(char *buf, size_t len)
{
	const char *env = getenv(VM_ENV_RUN_DIR), *xdg = getenv("XDG_RUNTIME_DIR");
	int n;

	if (env && *env)
		n = snprintf(buf, len, "%s", env);
	else if (geteuid() == 0)
		n = snprintf(buf, len, "/run/sdrsa");
	else if (xdg && *xdg)
		n = snprintf(buf, len, "%s/sdrsa", xdg);
	else
		n = snprintf(buf, len, "/tmp/sdrsa-%u", (unsigned)geteuid());
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int vm_name_ok(const char *name)
{
	size_t n = name ? strlen(name) : 0;

	if (n == 0 || n > 64 || name[0] == '.' || name[0] == '-')
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}
