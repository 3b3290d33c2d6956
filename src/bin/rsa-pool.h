/* SPDX-License-Identifier: MIT */
/* rsa-app's pool commands and the pool checks of `rsa-app run` (rsa-pool.c). */
#ifndef SDRSA_BIN_RSA_POOL_H
#define SDRSA_BIN_RSA_POOL_H

#include <stdint.h>

#include "engine/poolconf.h"

/* `rsa-app pool status|drain ...`; argv[0] is "pool". Returns the exit status. */
int rsa_pool_main(int argc, char **argv);
/* Before `run`: every server is tried; at least `replicas` must answer.
 * Prints what is wrong; returns 0 or the exit status (1). */
int rsa_pool_check(const struct poolconf *pool, const char *name, const uint8_t *key,
		   unsigned replicas);
/* After `run`: free the namespace on every server that answers. */
void rsa_pool_free_all(const struct poolconf *pool, const char *name, const uint8_t *key);

#endif
