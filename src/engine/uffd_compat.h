/* SPDX-License-Identifier: MIT */
/*
 * userfaultfd compatibility: the one place where constants newer than the
 * build host's <linux/userfaultfd.h> are defined. Debian 12 ships a header
 * from Linux 6.1; the machines that run sdrsa have Linux 6.18, where
 * UFFDIO_MOVE (6.8), UFFD_FEATURE_WP_UNPOPULATED (6.4), WP_ASYNC (6.7) and
 * UFFDIO_POISON (6.6) exist. Values are copied from the kernel's uapi header
 * and are part of its ABI, so defining them here is safe; the engine still
 * asks the kernel (UFFDIO_API) and refuses to start when a feature it needs
 * is missing.
 *
 * Everything else in the engine includes this header, never
 * <linux/userfaultfd.h> directly.
 */
#ifndef SDRSA_ENGINE_UFFD_COMPAT_H
#define SDRSA_ENGINE_UFFD_COMPAT_H

#include <linux/types.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>

#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef UFFD_FEATURE_POISON
#define UFFD_FEATURE_POISON (1 << 14)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif
#ifndef UFFD_FEATURE_MOVE
#define UFFD_FEATURE_MOVE (1 << 16)
#endif

#ifndef _UFFDIO_MOVE
#define _UFFDIO_MOVE (0x05)
#endif
#ifndef _UFFDIO_POISON
#define _UFFDIO_POISON (0x08)
#endif

#ifndef UFFDIO_MOVE
struct uffdio_move {
	__u64 dst;
	__u64 src;
	__u64 len;
#define UFFDIO_MOVE_MODE_DONTWAKE ((__u64)1 << 0)
#define UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES ((__u64)1 << 1)
	__u64 mode;
	/* Written by the kernel: bytes moved, or -errno. */
	__s64 move;
};
#define UFFDIO_MOVE _IOWR(UFFDIO, _UFFDIO_MOVE, struct uffdio_move)
#endif

#ifndef UFFDIO_POISON
struct uffdio_poison {
	struct uffdio_range range;
#define UFFDIO_POISON_MODE_DONTWAKE ((__u64)1 << 0)
	__u64 mode;
	__s64 updated;
};
#define UFFDIO_POISON _IOWR(UFFDIO, _UFFDIO_POISON, struct uffdio_poison)
#endif

#ifndef UFFDIO_CONTINUE_MODE_WP
#define UFFDIO_CONTINUE_MODE_WP ((__u64)1 << 1)
#endif

#endif
