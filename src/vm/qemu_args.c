/* SPDX-License-Identifier: MIT */
/*
 * QEMU command line scanning and rewriting; see qemu_args.h. QEMU option
 * values are comma-separated key=value lists where ",," stands for a comma
 * inside a value; opt_get() undoes that.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vm/qemu_args.h"

#define GIB (1ULL << 30)
#define OUR_ID "sdrsa-ram"

static int fail(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

int qemu_parse_size(const char *s, uint64_t def_unit, uint64_t *out)
{
	char *end;
	unsigned long long v;
	uint64_t mul = def_unit;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	switch (*end) {
	case 0:
		break;
	case 'b':
	case 'B':
		mul = 1;
		end++;
		break;
	case 'k':
	case 'K':
		mul = 1ULL << 10;
		end++;
		break;
	case 'm':
	case 'M':
		mul = 1ULL << 20;
		end++;
		break;
	case 'g':
	case 'G':
		mul = 1ULL << 30;
		end++;
		break;
	case 't':
	case 'T':
		mul = 1ULL << 40;
		end++;
		break;
	default:
		return -EINVAL;
	}
	if (*end || (v && mul > UINT64_MAX / v))
		return -EINVAL;
	*out = v * mul;
	return 0;
}

/* The value of key in a QEMU option list ("a,k=v,b"), unescaping ",,".
 * With key NULL: the first item if it has no '=' (the implied key, e.g. the
 * machine type of -machine). Returns 1 and the value in buf, or 0. */
static int opt_get(const char *list, const char *key, char *buf, size_t len)
{
	const char *p = list;
	int first = 1;

	while (*p) {
		const char *item = p, *eq = NULL;
		size_t o = 0;

		/* Find the end of this item (a single comma; ",," is a literal). */
		while (*p && !(p[0] == ',' && p[1] != ',')) {
			if (p[0] == ',' && p[1] == ',')
				p++;
			else if (*p == '=' && !eq)
				eq = p;
			p++;
		}
		if (key ? (eq && (size_t)(eq - item) == strlen(key) &&
			   !strncmp(item, key, strlen(key)))
			: (first && !eq)) {
			const char *v = key ? eq + 1 : item;

			for (; v < p && o + 1 < len; v++) {
				if (v[0] == ',' && v + 1 < p && v[1] == ',')
					v++;
				buf[o++] = *v;
			}
			buf[o] = 0;
			return 1;
		}
		first = 0;
		if (*p == ',')
			p++;
	}
	return 0;
}

/* "-opt" or "--opt" equals name? */
static int is_opt(const char *a, const char *name)
{
	if (a[0] != '-')
		return 0;
	a += a[1] == '-' ? 2 : 1;
	return !strcmp(a, name);
}

uint64_t vm_low_ram(enum vm_machine m, uint64_t ram)
{
	if (m == VM_MACHINE_Q35)
		return ram >= 0xb0000000ULL ? 0x80000000ULL : ram;
	return ram >= 0xe0000000ULL ? 0xc0000000ULL : ram;
}

int64_t vm_gpa_to_offset(enum vm_machine m, uint64_t ram, uint64_t gpa)
{
	uint64_t low = vm_low_ram(m, ram);

	if (gpa < low)
		return (int64_t)gpa;
	if (gpa >= 4 * GIB && gpa - 4 * GIB < ram - low)
		return (int64_t)(gpa - 4 * GIB + low);
	return -ERANGE;
}

uint64_t vm_offset_to_gpa(enum vm_machine m, uint64_t ram, uint64_t off)
{
	uint64_t low = vm_low_ram(m, ram);

	return off < low ? off : off - low + 4 * GIB;
}

void qemu_plan_free(struct qemu_plan *p)
{
	if (!p)
		return;
	if (p->argv) {
		for (int i = 0; i < p->argc; i++)
			free(p->argv[i]);
		free(p->argv);
	}
	free(p->mem_path);
	memset(p, 0, sizeof(*p));
}

int qemu_plan_make(char *const *argv, int argc, const char *default_path, struct qemu_plan *out,
		   char *err, size_t errlen)
{
	char backend_id[128] = "", type[128] = "", v[4096];
	const char *user_obj = NULL;
	uint64_t ram = 128ULL << 20; /* QEMU's default */
	struct qemu_plan p = {0};
	int i, k, have_m = 0;

	if (argc < 1 || !argv[0] || !*argv[0])
		return fail(err, errlen, "no QEMU command after --");
	/* First pass: machine options (they may come after -object). */
	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;

		if (a[0] != '-')
			continue;
		if (is_opt(a, "machine") || is_opt(a, "M")) {
			if (!val)
				return fail(err, errlen, "%s needs a value", a);
			if (opt_get(val, NULL, v, sizeof(v)) || opt_get(val, "type", v, sizeof(v)))
				snprintf(type, sizeof(type), "%.127s", v);
			if (opt_get(val, "memory-backend", v, sizeof(v)))
				snprintf(backend_id, sizeof(backend_id), "%.127s", v);
			i++;
		}
	}
	if (type[0] && strcmp(type, "help") && strcmp(type, "?")) {
		if (!strncmp(type, "q35", 3) || !strncmp(type, "pc-q35", 6))
			p.machine = VM_MACHINE_Q35;
		else if (!strcmp(type, "pc") || !strncmp(type, "pc-i440fx", 9) ||
			 !strncmp(type, "pc-", 3))
			p.machine = VM_MACHINE_PC;
		else
			return fail(err, errlen,
				    "machine type '%s' is not supported: use pc or q35 (the agent "
				    "maps guest-physical addresses of those two)",
				    type);
	}
	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;

		if (a[0] != '-')
			continue;
		if (is_opt(a, "mem-path") || is_opt(a, "mem-prealloc"))
			return fail(err, errlen,
				    "remove %s: rsa-app vm puts guest RAM in its own "
				    "shared file",
				    a);
		if (is_opt(a, "daemonize"))
			return fail(err, errlen,
				    "remove -daemonize: rsa-app vm stays QEMU's parent "
				    "(run rsa-app vm itself in the background)");
		if (is_opt(a, "numa"))
			return fail(err, errlen,
				    "-numa is not supported by rsa-app vm (one RAM "
				    "backend per guest)");
		if (is_opt(a, "m")) {
			uint64_t mb;

			if (!val)
				return fail(err, errlen, "-m needs a size");
			if (opt_get(val, "maxmem", v, sizeof(v)) ||
			    opt_get(val, "slots", v, sizeof(v)))
				return fail(err, errlen,
					    "-m %s: memory hotplug (slots, maxmem) is not "
					    "supported by rsa-app vm",
					    val);
			if (!opt_get(val, NULL, v, sizeof(v)) &&
			    !opt_get(val, "size", v, sizeof(v)))
				return fail(err, errlen, "-m %s: no size", val);
			if (qemu_parse_size(v, 1ULL << 20, &mb) < 0 || mb < (1ULL << 20))
				return fail(err, errlen, "-m %s: not a size (like 512M or 2G)",
					    val);
			ram = mb;
			have_m = 1;
			i++;
		} else if (is_opt(a, "object")) {
			if (!val)
				return fail(err, errlen, "-object needs a value");
			if (backend_id[0] && opt_get(val, "id", v, sizeof(v)) &&
			    !strcmp(v, backend_id)) {
				char qtype[64] = "";

				if (!opt_get(val, NULL, qtype, sizeof(qtype)))
					opt_get(val, "qom-type", qtype, sizeof(qtype));
				if (strcmp(qtype, "memory-backend-file"))
					return fail(
					    err, errlen,
					    "guest RAM is a %s: rsa-app vm needs a shared file; "
					    "remove that -object and memory-backend= (the agent "
					    "adds its own)",
					    qtype[0] ? qtype : "backend");
				user_obj = val;
			}
			i++;
		}
	}
	if (ram & 4095)
		return fail(err, errlen, "guest RAM must be a whole number of 4 KiB pages");

	if (backend_id[0] && !user_obj)
		return fail(err, errlen,
			    "-machine memory-backend=%s names no -object "
			    "memory-backend-file: remove memory-backend= (the agent adds its own)",
			    backend_id);
	if (user_obj) {
		uint64_t size;

		if (!opt_get(user_obj, "share", v, sizeof(v)) ||
		    (strcmp(v, "on") && strcmp(v, "yes") && strcmp(v, "true")))
			return fail(err, errlen,
				    "the memory-backend-file '%s' needs share=on (or "
				    "remove it and memory-backend=: the agent adds its own)",
				    backend_id);
		if (!opt_get(user_obj, "mem-path", v, sizeof(v)) || !v[0])
			return fail(err, errlen, "the memory-backend-file '%s' has no mem-path",
				    backend_id);
		p.mem_path = strdup(v);
		if (!opt_get(user_obj, "size", v, sizeof(v)) || qemu_parse_size(v, 1, &size) < 0)
			return fail(err, errlen, "the memory-backend-file '%s' has no usable size",
				    backend_id);
		if (have_m && size != ram) {
			free(p.mem_path);
			return fail(err, errlen, "-m and the size of memory-backend '%s' differ",
				    backend_id);
		}
		ram = size;
		p.user_backend = 1;
	} else {
		p.mem_path = strdup(default_path);
	}
	if (!p.mem_path)
		return fail(err, errlen, "out of memory");

	p.argv = calloc((size_t)argc + 5, sizeof(char *));
	if (!p.argv) {
		free(p.mem_path);
		return fail(err, errlen, "out of memory");
	}
	for (k = 0; k < argc; k++) {
		p.argv[k] = strdup(argv[k]);
		p.argc = k + 1;
		if (!p.argv[k])
			goto out_nomem;
	}
	if (!p.user_backend) {
		if (strchr(p.mem_path, ','))
			goto out_comma;
		snprintf(v, sizeof(v),
			 "memory-backend-file,id=" OUR_ID ",size=%llu,mem-path=%s,share=on",
			 (unsigned long long)ram, p.mem_path);
		p.argv[p.argc++] = strdup("-object");
		p.argv[p.argc++] = strdup(v);
		p.argv[p.argc++] = strdup("-machine");
		p.argv[p.argc++] = strdup("memory-backend=" OUR_ID);
		for (k = argc; k < p.argc; k++)
			if (!p.argv[k])
				goto out_nomem;
	}
	p.argv[p.argc] = NULL;
	p.ram_bytes = ram;
	*out = p;
	return 0;

out_comma:
	qemu_plan_free(&p);
	return fail(err, errlen, "the RAM file path must not contain a comma");
out_nomem:
	qemu_plan_free(&p);
	return fail(err, errlen, "out of memory");
}
