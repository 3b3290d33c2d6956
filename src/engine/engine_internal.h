/* SPDX-License-Identifier: MIT */
/*
 * Engine internals shared with the preload library and the engine's tests.
 */
#ifndef SDRSA_ENGINE_INTERNAL_H
#define SDRSA_ENGINE_INTERNAL_H

#include <sys/types.h>

#include <sdrsa/engine.h>

#include "engine/store.h"

/*
 * Set in threads that run engine code (the handler thread, and any thread
 * while inside an engine call made by the preload library): memory those
 * threads allocate must never be managed, or the engine would fault on its
 * own memory and wait for itself. The preload hooks check it.
 */
extern __thread int sdrsa_engine_internal __attribute__((tls_model("initial-exec")));

/* As sdrsa_engine_new(), with a given store (ownership passes to the engine,
 * also on failure). cfg->server is ignored. Used by tests with store_mem. */
int engine_new_with_store(const struct sdrsa_engine_config *cfg, struct store *store,
			  struct sdrsa_engine **ret);

/* fork(): every engine handles it through pthread_atfork handlers it
 * registers once (see engine.c): the parent keeps the pages the child may
 * read on the server, the child gets a small engine of its own that reads
 * them on demand. sdrsa_engine_forked() (engine.h) tells the engines the
 * child's pid; the preload library's fork() wrapper calls it. */
/* Is this a fork child's engine (which manages no new memory)? */
int engine_is_child(const struct sdrsa_engine *e);
/* Is addr a page the child of a fork cannot see (for a SIGSEGV message)? */
int engine_is_lost_in_child(struct sdrsa_engine *e, uintptr_t addr);

/* Print msg on stderr and kill the process with SIGBUS (the default of
 * cfg->fatal). */
void engine_default_fatal(void *userdata, const char *msg);

/* The process is exiting: free every page stored on the server, stop
 * evicting; pages held only remotely can no longer be read (a touch from the
 * calling thread is fatal, other threads are left blocked until the process
 * ends). Returns the number of pages freed. */
uint64_t engine_release_at_exit(struct sdrsa_engine *e);
/* Finish the fault trace (cfg.trace_path): flush it, write its record count.
 * Returns 0 or -errno; later faults are not recorded. */
int engine_trace_close(struct sdrsa_engine *e);
/* UFFDIO_MOVEs that moved more pages than the kernel reported (counted
 * from the page table; see move_checked in engine.c). For tests. */
uint64_t engine_moves_misreported(struct sdrsa_engine *e);
/* Pages held locally: resident, staged, and the staging slots of refilled
 * pages not dropped yet (all counted against the budget). For tests. */
uint64_t engine_local_pages(struct sdrsa_engine *e);
/* The userfaultfd of the program's memory, for tests that act on it. */
int engine_uffd(const struct sdrsa_engine *e);
/* Pages fetched ahead that were installed by UFFDIO_MOVE (*moved) and, of
 * those, found written when they left the mapping (*raced: see
 * verify_moved in engine.c). For tests. */
void engine_movein_counts(struct sdrsa_engine *e, uint64_t *moved, uint64_t *raced);
/* Tests: spares that spares_check found without a page and did not use. */
uint64_t engine_spare_holes(struct sdrsa_engine *e);
/* Tests: the store key of a page held only remotely (0), else -ENOENT; so
 * that a test can change the server's copy behind the engine's back. */
int engine_page_key(struct sdrsa_engine *e, uintptr_t addr, uint64_t *key);

#endif
