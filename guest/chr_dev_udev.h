/* SPDX-License-Identifier: (GPL-2.0 OR MIT) */
/*
 * chr_dev_udev.h: the interface between the guest kernel module
 * (module/chr_dev_udev.c) and user space (test_chrdev.c). Included by both,
 * so it uses only <linux/ioctl.h> and <linux/types.h>.
 */
#ifndef SDRSA_GUEST_CHR_DEV_UDEV_H
#define SDRSA_GUEST_CHR_DEV_UDEV_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define CHR_DEV_UDEV_PATH "/dev/chr_dev_udev"
#define CHR_DEV_UDEV_SYSFS "/sys/class/sdrsa/chr_dev_udev/phys_addr"
#define CHR_DEV_UDEV_SIZE 4096UL /* the buffer: one x86 page */

/* Read the buffer's guest-physical address into a __u64. */
#define CHR_DEV_UDEV_IOC_PHYS _IOR('s', 1, __u64)

#endif
