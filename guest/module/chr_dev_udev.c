// SPDX-License-Identifier: GPL-2.0
/*
 * chr_dev_udev: the seed's character-device kernel module, run inside the
 * QEMU guest. It allocates one page (4 KiB) of kernel memory, prints the
 * page's guest-physical address, and gives user space single reads and
 * writes of that page through /dev/chr_dev_udev. The host side (rsa-app
 * watch NAME ADDR) watches exactly this guest-physical page from outside.
 *
 * Interface (the test program guest/test_chrdev.c and the host tests rely on
 * it; see guest/chr_dev_udev.h):
 *   dmesg      "chr_dev_udev: buffer virt=0x... phys=0x... size=4096"
 *   /dev/chr_dev_udev        read/write/lseek, bounded to the page; a read
 *                            or write past the end returns 0 / -ENOSPC
 *   ioctl CHR_DEV_UDEV_IOC_PHYS  the page's physical address (u64)
 *   /sys/class/sdrsa/chr_dev_udev/phys_addr   the same, "0x%llx\n"
 *
 * The device node is created by the module itself (class_create and
 * device_create; devtmpfs or udev makes /dev/chr_dev_udev). The page is
 * allocated at load and freed at unload, so its address is stable for the
 * module's lifetime. One mutex serialises all access to the page, so a read
 * never sees half of a concurrent write from another file.
 *
 * Kernel API note: class_create() takes (owner, name) up to 6.3 and (name)
 * from 6.4 on; both are handled below. The guest kernel is Debian 12's 6.1.
 */
#include <linux/cdev.h>
#include <linux/device.h>
#include <linux/fs.h>
#include <linux/gfp.h>
#include <linux/io.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/uaccess.h>
#include <linux/version.h>

#include "chr_dev_udev.h"

#define DRV_NAME "chr_dev_udev"
#define CLASS_NAME "sdrsa"

static unsigned long buf_addr;  /* kernel virtual address of the page */
static phys_addr_t buf_phys;    /* its guest-physical address */
static DEFINE_MUTEX(buf_lock);  /* serialises every access to the page */
static dev_t devno;             /* our major:minor */
static struct cdev cdev;
static struct class *cls;
static struct device *dev;

static ssize_t chr_read(struct file *f, char __user *ubuf, size_t len, loff_t *off)
{
	ssize_t ret;

	if (*off < 0)
		return -EINVAL;
	if (*off >= CHR_DEV_UDEV_SIZE)
		return 0;
	if (len > CHR_DEV_UDEV_SIZE - *off)
		len = CHR_DEV_UDEV_SIZE - *off;
	mutex_lock(&buf_lock);
	if (copy_to_user(ubuf, (void *)(buf_addr + *off), len)) {
		ret = -EFAULT;
	} else {
		*off += len;
		ret = len;
	}
	mutex_unlock(&buf_lock);
	return ret;
}

static ssize_t chr_write(struct file *f, const char __user *ubuf, size_t len, loff_t *off)
{
	ssize_t ret;

	if (*off < 0)
		return -EINVAL;
	if (*off >= CHR_DEV_UDEV_SIZE)
		return len ? -ENOSPC : 0;
	if (len > CHR_DEV_UDEV_SIZE - *off)
		len = CHR_DEV_UDEV_SIZE - *off;
	mutex_lock(&buf_lock);
	if (copy_from_user((void *)(buf_addr + *off), ubuf, len)) {
		ret = -EFAULT;
	} else {
		*off += len;
		ret = len;
	}
	mutex_unlock(&buf_lock);
	return ret;
}

static loff_t chr_llseek(struct file *f, loff_t off, int whence)
{
	/* Bounded to [0, size]; SEEK_END is relative to the page's end. */
	return fixed_size_llseek(f, off, whence, CHR_DEV_UDEV_SIZE);
}

static long chr_ioctl(struct file *f, unsigned int cmd, unsigned long arg)
{
	__u64 phys = buf_phys;

	switch (cmd) {
	case CHR_DEV_UDEV_IOC_PHYS:
		return copy_to_user((void __user *)arg, &phys, sizeof(phys)) ? -EFAULT : 0;
	default:
		return -ENOTTY;
	}
}

static const struct file_operations chr_fops = {
	.owner = THIS_MODULE,
	.read = chr_read,
	.write = chr_write,
	.llseek = chr_llseek,
	.unlocked_ioctl = chr_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
};

static ssize_t phys_addr_show(struct device *d, struct device_attribute *attr, char *out)
{
	return sysfs_emit(out, "0x%llx\n", (unsigned long long)buf_phys);
}
static DEVICE_ATTR_RO(phys_addr);

static struct attribute *chr_attrs[] = {
	&dev_attr_phys_addr.attr,
	NULL,
};
ATTRIBUTE_GROUPS(chr);

static int __init chr_init(void)
{
	int ret;

	buf_addr = __get_free_page(GFP_KERNEL | __GFP_ZERO);
	if (!buf_addr)
		return -ENOMEM;
	buf_phys = virt_to_phys((void *)buf_addr);

	ret = alloc_chrdev_region(&devno, 0, 1, DRV_NAME);
	if (ret)
		goto out_page;
	cdev_init(&cdev, &chr_fops);
	cdev.owner = THIS_MODULE;
	ret = cdev_add(&cdev, devno, 1);
	if (ret)
		goto out_region;
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 4, 0)
	cls = class_create(CLASS_NAME);
#else
	cls = class_create(THIS_MODULE, CLASS_NAME);
#endif
	if (IS_ERR(cls)) {
		ret = PTR_ERR(cls);
		goto out_cdev;
	}
	dev = device_create_with_groups(cls, NULL, devno, NULL, chr_groups, DRV_NAME);
	if (IS_ERR(dev)) {
		ret = PTR_ERR(dev);
		goto out_class;
	}
	pr_info(DRV_NAME ": buffer virt=0x%lx phys=0x%llx size=%lu dev=%u:%u\n", buf_addr,
		(unsigned long long)buf_phys, CHR_DEV_UDEV_SIZE, MAJOR(devno), MINOR(devno));
	return 0;

out_class:
	class_destroy(cls);
out_cdev:
	cdev_del(&cdev);
out_region:
	unregister_chrdev_region(devno, 1);
out_page:
	free_page(buf_addr);
	pr_err(DRV_NAME ": cannot load: error %d\n", ret);
	return ret;
}

static void __exit chr_exit(void)
{
	device_destroy(cls, devno);
	class_destroy(cls);
	cdev_del(&cdev);
	unregister_chrdev_region(devno, 1);
	free_page(buf_addr);
	pr_info(DRV_NAME ": unloaded, page 0x%llx freed\n", (unsigned long long)buf_phys);
}

module_init(chr_init);
module_exit(chr_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("sdrsa: one kernel page behind a character device (the seed's test module)");
MODULE_AUTHOR("sdrsa");
