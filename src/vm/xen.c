/* SPDX-License-Identifier: MIT */
/*
 * The Xen backend of the VM agent: `rsa-app vm NAME --xen DOMAIN ...`
 * attaches to a running Xen domain (the seed's DomU, from Dom0) and puts its
 * memory under the same pager, watch mode and control socket as the QEMU
 * backend. Built with `meson -Dxen=true` against Debian's libxen-dev.
 *
 * NOT EXERCISED: Xen cannot run on the machines that build and test sdrsa,
 * so this file is compiled by CI and never run. Everything that is not
 * Xen-specific (page states, eviction, watch, statistics, the control
 * socket) is the tested code of pager.c and agent.c; this file only maps the
 * pager's six page operations and its fault feed onto libxenctrl:
 *
 *   faults     xc_monitor_enable() gives the vm_event ring; a mem_access
 *              violation (VM_EVENT_REASON_MEM_ACCESS) with R or W in its
 *              flags is a read or write fault on gfn; the vCPU stays paused
 *              until our response is put on the ring (after pager_fault)
 *   install    xc_domain_populate_physmap_exact() gives the gfn a frame
 *              again, xenforeignmemory_map() + memcpy fills it, and
 *              xc_set_mem_access() leaves it rx (clean: the next write
 *              traps) or rwx
 *   protect    xc_set_mem_access(XENMEM_access_rx)
 *   unprotect  xc_set_mem_access(XENMEM_access_rwx)
 *   read       xenforeignmemory_map(PROT_READ) + memcpy
 *   drop       xc_set_mem_access(XENMEM_access_n) so that any access traps,
 *              then xc_domain_decrease_reservation_exact() frees the frame
 *   wake       nothing: the ring response resumes the vCPU
 *
 * Assumptions that only a real Xen can confirm (written down so that the
 * first person with Xen checks them): an access to a gfn whose frame was
 * released with access n raises a mem_access event before the p2m type is
 * looked at (Xen's hvm_hap_nested_page_fault checks mem_access first when
 * access is in use); and the domain's memory is all populated when we
 * attach, so every page starts local and dirty (pager_adopt) and the budget
 * is reached by evicting. xc_mem_paging_* (Xen's own paging ring) would be
 * the alternative if the first assumption fails.
 *
 * On SIGTERM the agent brings every page back (pager_restore_all), turns
 * mem_access off and detaches: the domain runs on with all its memory. If a
 * page cannot be served, the domain is paused (not destroyed): nothing runs
 * on a missing page, and an operator can decide.
 */
#define __XEN_TOOLS__ 1
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <xenctrl.h>
#include <xenevtchn.h>
#include <xenforeignmemory.h>
#include <xenstore.h>
#include <xen/vm_event.h>

#include "vm/vm_agent.h"

#define PAGE 4096u

struct xen_be {
	xc_interface *xch;
	xenforeignmemory_handle *fmem;
	xenevtchn_handle *xce;
	uint32_t domid;
	evtchn_port_t port; /* our end of the ring's event channel */
	void *ring_page;
	vm_event_back_ring_t ring;
	uint64_t npages;    /* max gpfn + 1 */
	uint8_t *populated; /* per gfn: it has a frame (ours to know) */
	int monitoring;
	int detached; /* stop() is done: the agent may exit */
	int restored; /* every page is back in the domain */
};

static struct pager *g_pager; /* for stop(): set by adopt() */

static int set_access(struct xen_be *x, uint64_t pg, uint64_t n, xenmem_access_t a)
{
	return xc_set_mem_access(x->xch, x->domid, a, pg, (uint32_t)n) < 0 ? -errno : 0;
}

static int x_install(void *ctx, uint64_t pg, const void *data, int wp)
{
	struct xen_be *x = ctx;
	xen_pfn_t gfn = pg;
	int err = 0;
	void *m;

	if (x->populated[pg])
		return -EEXIST; /* never overwrite a frame the guest has */
	if (xc_domain_populate_physmap_exact(x->xch, x->domid, 1, 0, 0, &gfn) < 0)
		return -errno;
	x->populated[pg] = 1;
	m = xenforeignmemory_map(x->fmem, x->domid, PROT_READ | PROT_WRITE, 1, &gfn, &err);
	if (!m || err)
		return m ? (xenforeignmemory_unmap(x->fmem, m, 1), err < 0 ? err : -EIO) : -errno;
	memcpy(m, data, PAGE);
	xenforeignmemory_unmap(x->fmem, m, 1);
	return set_access(x, pg, 1, wp ? XENMEM_access_rx : XENMEM_access_rwx);
}

static int x_protect(void *ctx, uint64_t pg, uint64_t n)
{
	return set_access(ctx, pg, n, XENMEM_access_rx);
}

static int x_unprotect(void *ctx, uint64_t pg)
{
	return set_access(ctx, pg, 1, XENMEM_access_rwx);
}

static int x_read(void *ctx, uint64_t pg, void *buf)
{
	struct xen_be *x = ctx;
	xen_pfn_t gfn = pg;
	int err = 0;
	void *m = xenforeignmemory_map(x->fmem, x->domid, PROT_READ, 1, &gfn, &err);

	if (!m || err)
		return m ? (xenforeignmemory_unmap(x->fmem, m, 1), err < 0 ? err : -EIO) : -errno;
	memcpy(buf, m, PAGE);
	xenforeignmemory_unmap(x->fmem, m, 1);
	return 0;
}

static int x_drop(void *ctx, uint64_t pg, uint64_t n)
{
	struct xen_be *x = ctx;
	int r = set_access(x, pg, n, XENMEM_access_n);

	for (uint64_t i = 0; r == 0 && i < n; i++) {
		xen_pfn_t gfn = pg + i;

		if (xc_domain_decrease_reservation_exact(x->xch, x->domid, 1, 0, &gfn) < 0)
			r = -errno;
		else
			x->populated[pg + i] = 0;
	}
	return r;
}

static int x_wake(void *ctx, uint64_t pg)
{
	(void)ctx;
	(void)pg;
	return 0; /* the ring response resumes the vCPU */
}

static const struct pager_ops xen_ops = {
    .install = x_install,
    .protect = x_protect,
    .unprotect = x_unprotect,
    .read = x_read,
    .drop = x_drop,
    .wake = x_wake,
};

/* Take every request off the ring, serve it, answer it. */
static int x_serve(void *ctx, struct pager *p)
{
	struct xen_be *x = ctx;
	int served = 0, r = 0;
	xenevtchn_port_or_error_t port = xenevtchn_pending(x->xce);

	if (port < 0)
		return -errno;
	if (xenevtchn_unmask(x->xce, (evtchn_port_t)port) < 0)
		return -errno;
	while (RING_HAS_UNCONSUMED_REQUESTS(&x->ring)) {
		vm_event_request_t req;
		vm_event_response_t rsp;

		memcpy(&req, RING_GET_REQUEST(&x->ring, x->ring.req_cons), sizeof(req));
		x->ring.req_cons++;
		x->ring.sring->req_event = x->ring.req_cons + 1;
		if (req.version == VM_EVENT_INTERFACE_VERSION &&
		    req.reason == VM_EVENT_REASON_MEM_ACCESS && r == 0) {
			uint32_t f = req.u.mem_access.flags;

			/* Xen cannot tell a write to a protected page from one to
			 * a dropped page: PAGER_WP covers both. */
			r = pager_fault(p, req.u.mem_access.gfn,
					f & MEM_ACCESS_W ? PAGER_WP : PAGER_READ);
			served++;
		}
		memset(&rsp, 0, sizeof(rsp));
		rsp.version = VM_EVENT_INTERFACE_VERSION;
		rsp.vcpu_id = req.vcpu_id;
		rsp.flags = req.flags & VM_EVENT_FLAG_VCPU_PAUSED; /* unpause it */
		rsp.reason = req.reason;
		if (r < 0)
			break; /* leave the vCPU paused: the page cannot be served */
		memcpy(RING_GET_RESPONSE(&x->ring, x->ring.rsp_prod_pvt), &rsp, sizeof(rsp));
		x->ring.rsp_prod_pvt++;
		RING_PUSH_RESPONSES(&x->ring);
	}
	xenevtchn_notify(x->xce, x->port);
	return r < 0 ? r : served;
}

static int64_t x_gpa_to_page(void *ctx, uint64_t gpa)
{
	struct xen_be *x = ctx;

	return gpa / PAGE < x->npages ? (int64_t)(gpa / PAGE) : -ERANGE;
}

static void x_describe(void *ctx, char *buf, size_t len)
{
	struct xen_be *x = ctx;

	snprintf(buf, len, "frames 0x0-0x%llx (Xen domain %u)",
		 (unsigned long long)(x->npages * PAGE - 1), x->domid);
}

/* Every frame that maps is guest RAM we now manage, local and dirty. */
static int x_adopt(void *ctx, struct pager *p)
{
	struct xen_be *x = ctx;

	g_pager = p;
	enum { CH = 256 };
	xen_pfn_t gfn[CH];
	int err[CH];

	for (uint64_t base = 0; base < x->npages; base += CH) {
		size_t n = x->npages - base < CH ? (size_t)(x->npages - base) : CH;
		void *m;

		for (size_t i = 0; i < n; i++)
			gfn[i] = base + i;
		m = xenforeignmemory_map(x->fmem, x->domid, PROT_READ, n, gfn, err);
		if (!m)
			continue;
		xenforeignmemory_unmap(x->fmem, m, n);
		for (size_t i = 0; i < n; i++) {
			int r = err[i] ? 0 : pager_adopt(p, base + i);

			if (r < 0)
				return r;
			x->populated[base + i] = !err[i];
		}
	}
	return 0;
}

static void x_kill(void *ctx)
{
	struct xen_be *x = ctx;

	xc_domain_pause(x->xch, x->domid);
	vm_say("Xen domain %u paused: its memory can no longer be served", x->domid);
}

static void detach(struct xen_be *x)
{
	if (x->monitoring) {
		set_access(x, 0, x->npages, XENMEM_access_rwx);
		xc_monitor_disable(x->xch, x->domid);
		x->monitoring = 0;
	}
}

static void x_stop(void *ctx)
{
	struct xen_be *x = ctx;

	/* Bring everything home, then let the domain run on its own. */
	xc_domain_pause(x->xch, x->domid);
	if (g_pager && pager_restore_all(g_pager) < 0) {
		vm_say("could not bring every page of domain %u back: it stays paused", x->domid);
		x->detached = 1;
		return;
	}
	detach(x);
	xc_domain_unpause(x->xch, x->domid);
	x->restored = 1;
	x->detached = 1;
}

static int domain_gone(struct xen_be *x)
{
	xc_dominfo_t info;

	return xc_domain_getinfo(x->xch, x->domid, 1, &info) != 1 || info.domid != x->domid ||
	       info.dying;
}

static int x_ended(void *ctx)
{
	struct xen_be *x = ctx;

	return x->detached || domain_gone(x);
}

static int x_may_free(void *ctx)
{
	struct xen_be *x = ctx;

	return x->restored || domain_gone(x);
}

static void x_destroy(void *ctx)
{
	struct xen_be *x = ctx;

	if (!x)
		return;
	detach(x);
	if (x->xce) {
		if (x->port)
			xenevtchn_unbind(x->xce, x->port);
		xenevtchn_close(x->xce);
	}
	if (x->ring_page)
		munmap(x->ring_page, XC_PAGE_SIZE);
	if (x->fmem)
		xenforeignmemory_close(x->fmem);
	if (x->xch)
		xc_interface_close(x->xch);
	free(x->populated);
	free(x);
}

/* DOMAIN: a domain id, or a name looked up in xenstore. */
static int find_domain(const char *s, uint32_t *out)
{
	char *end, path[64];
	unsigned long v = strtoul(s, &end, 10);
	struct xs_handle *xs;
	char **dirs;
	unsigned int n;
	int found = -1;

	if (*s && !*end) {
		*out = (uint32_t)v;
		return 0;
	}
	xs = xs_open(XS_OPEN_READONLY);
	if (!xs)
		return -errno;
	dirs = xs_directory(xs, XBT_NULL, "/local/domain", &n);
	for (unsigned int i = 0; dirs && i < n && found < 0; i++) {
		unsigned int len;
		char *name;

		snprintf(path, sizeof(path), "/local/domain/%s/name", dirs[i]);
		name = xs_read(xs, XBT_NULL, path, &len);
		if (name && !strcmp(name, s))
			found = atoi(dirs[i]);
		free(name);
	}
	free(dirs);
	xs_close(xs);
	if (found < 0)
		return -ENOENT;
	*out = (uint32_t)found;
	return 0;
}

int xen_attach(const char *domain, struct vm_backend *out, uint64_t *ram_bytes)
{
	struct xen_be *x = calloc(1, sizeof(*x));
	xen_pfn_t maxpfn = 0;
	uint32_t remote_port = 0;
	int r;

	if (!x)
		return 1;
	r = find_domain(domain, &x->domid);
	if (r < 0) {
		vm_say("no Xen domain '%s' (%s); 'xl list' shows them", domain, strerror(-r));
		goto fail;
	}
	x->xch = xc_interface_open(NULL, NULL, 0);
	x->fmem = xenforeignmemory_open(NULL, 0);
	x->xce = xenevtchn_open(NULL, 0);
	if (!x->xch || !x->fmem || !x->xce) {
		vm_say("cannot open the Xen control interfaces: %s (run in Dom0 as root)",
		       strerror(errno));
		goto fail;
	}
	if (xc_domain_maximum_gpfn(x->xch, x->domid, &maxpfn) < 0) {
		vm_say("cannot read the memory size of domain %u: %s", x->domid, strerror(errno));
		goto fail;
	}
	x->npages = (uint64_t)maxpfn + 1;
	x->populated = calloc(x->npages, 1);
	if (!x->populated) {
		vm_say("out of memory");
		goto fail;
	}
	x->ring_page = xc_monitor_enable(x->xch, x->domid, &remote_port);
	if (!x->ring_page) {
		vm_say("cannot enable memory events on domain %u: %s (is another monitor, such as "
		       "LibVMI, attached?)",
		       x->domid, strerror(errno));
		goto fail;
	}
	x->monitoring = 1;
	r = xenevtchn_bind_interdomain(x->xce, x->domid, remote_port);
	if (r < 0) {
		vm_say("cannot bind the event channel of domain %u: %s", x->domid, strerror(errno));
		goto fail;
	}
	x->port = (evtchn_port_t)r;
	SHARED_RING_INIT((vm_event_sring_t *)x->ring_page);
	BACK_RING_INIT(&x->ring, (vm_event_sring_t *)x->ring_page, XC_PAGE_SIZE);
	*ram_bytes = x->npages * PAGE;
	*out = (struct vm_backend){
	    .kind = "Xen domain",
	    .ops = &xen_ops,
	    .ctx = x,
	    .npages = x->npages,
	    .fault_fd = xenevtchn_fd(x->xce),
	    .pid = -1,
	    .serve = x_serve,
	    .gpa_to_page = x_gpa_to_page,
	    .describe_ram = x_describe,
	    .adopt = x_adopt,
	    .kill = x_kill,
	    .stop = x_stop,
	    .ended = x_ended,
	    .may_free = x_may_free,
	    .destroy = x_destroy,
	};
	return 0;
fail:
	x_destroy(x);
	return 1;
}
