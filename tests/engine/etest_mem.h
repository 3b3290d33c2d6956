/* SPDX-License-Identifier: MIT */
/*
 * etest_mem: an engine on the in-memory store (src/engine/store_mem.c), for
 * the tests of the engine alone.
 */
#ifndef SDRSA_TEST_ETEST_MEM_H
#define SDRSA_TEST_ETEST_MEM_H

#include "engine/engine_internal.h"
#include "engine/store.h"
#include "etest.h"

/* An engine of cfg on a new in-memory store, which goes into *sp (sp may be
 * NULL). A userfaultfd without a feature the engine needs: t_skip_status. */
static inline struct sdrsa_engine *t_engine_mem(const struct sdrsa_engine_config *cfg,
						struct store **sp)
{
	struct store *s;
	struct sdrsa_engine *e;
	CHECK(store_mem_new(&s) == 0);
	int r = engine_new_with_store(cfg, s, &e);
	if (r == -ENOSYS || r == -EPERM) {
		fprintf(stderr, "skip: userfaultfd: %s\n", strerror(-r));
		exit(t_skip_status());
	}
	CHECK(r == 0);
	if (sp)
		*sp = s;
	return e;
}

#endif
