/* SPDX-License-Identifier: MIT */
/*
 * rsa-app vm NAME --server ADDR --local SIZE|PCT% [options] -- QEMU-COMMAND
 *
 * The VM agent: one process per VM, holding the VM's lock, its control
 * socket, the pager and the connection to the memory server. It starts the
 * guest through a backend (qemu.c; xen.c attaches to a Xen domain instead)
 * and then runs one event loop on one thread:
 *
 *   - faults (the backend's fault_fd): served at once, one batch per turn;
 *   - background work when no fault waits: eviction to the low watermark,
 *     staging, sending watched pages back after their settle time;
 *   - signals (signalfd): SIGCHLD reaps QEMU and ends the loop; SIGTERM,
 *     SIGINT, SIGHUP ask QEMU to stop (SIGKILL 15 s later, or at a second
 *     signal); the agent keeps serving faults until QEMU is gone;
 *   - the control socket RUNDIR/NAME.sock (vm_proto.h): stat and watch
 *     clients, non-blocking, with a bounded output buffer each (a watcher
 *     that does not read loses lines, never stalls the guest);
 *   - --stats-interval lines on stderr.
 *
 * One agent per NAME: RUNDIR/NAME.lock is held with flock() for the agent's
 * life (the kernel drops it when the agent dies, whatever kills it); the
 * second agent is refused before it touches anything. If the agent dies,
 * QEMU's shim kills QEMU (shim.c); if the memory server fails beyond the
 * retry time, the agent kills QEMU itself: the guest never runs on pages it
 * cannot get back.
 *
 * Exit status: QEMU's (128+N when killed by signal N); 1 on errors; 2 on bad
 * usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sdrsa/client.h>
#include <sdrsa/engine.h>

#include "common/util.h"
#include "engine/poolconf.h"
#include "engine/store.h"
#include "vm/pager.h"
#include "vm/vm_agent.h"
#include "vm/vm_cli.h"
#include "vm/vm_proto.h"

#define PROG "rsa-app"
#define MAX_CLIENTS 32
#define OUTBUF (64 * 1024)
#define STOP_GRACE_MS 15000
#define PAGE 4096u

struct client {
	int fd;	      /* -1: free slot */
	char in[512]; /* request bytes not yet a line */
	size_t inlen;
	char *out; /* OUTBUF bytes of replies not yet written */
	size_t outlen;
	int watch_id;	  /* pager watch, or -1 */
	uint64_t dropped; /* watch lines lost to a full buffer */
	int done;	  /* close once out is flushed */
};

struct agent {
	char name[72];
	char dir[PATH_MAX - 80], sock_path[PATH_MAX], lock_path[PATH_MAX];
	int lock_fd, listen_fd, sig_fd;
	struct vm_backend b;
	int have_b;
	struct store *store;
	struct pager *pager;
	const char *server;
	char ns[128];
	uint64_t ram_bytes, budget_pages;
	uint64_t t0_ns;
	struct client cl[MAX_CLIENTS];
	int stopping;	  /* asked QEMU to stop */
	uint64_t kill_at; /* SIGKILL QEMU at this time (ms), 0: not armed */
	int exited;	  /* QEMU was reaped */
	int status;	  /* its wait status */
	int fault_off;	  /* QEMU's memory is gone: stop reading faults */
};

static char g_name[72] = "?";

void vm_say(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, PROG ": vm %s: ", g_name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void rsa_vm_usage(FILE *f)
{
	fprintf(f,
		"Usage: " PROG
		" vm NAME --server ADDR --local SIZE|PCT%% [options] -- QEMU-COMMAND...\n"
		"       " PROG " watch NAME GUEST-PHYS-ADDR [--settle DUR]\n"
		"       " PROG " stat NAME [--json]\n"
		"\n"
		"vm: run QEMU with the guest's RAM on the memory pool: at most --local of it\n"
		"in this host's RAM, the rest on the memory server. Give a plain QEMU command;\n"
		"the agent adds the shared RAM file (-object memory-backend-file,... in\n"
		"/dev/shm/sdrsa-NAME, -machine memory-backend=...) and the shim it needs.\n"
		"\n"
		"  -s, --server ADDR          memory server: HOST:PORT, HOST, unix:PATH; repeat\n"
		"                             it for a pool of servers (docs/POOL.md)\n"
		"      --servers FILE         a pool file ('ADDRESS [weight=N] [key-file=PATH]')\n"
		"      --replicas R           copies of every page in a pool (default 2)\n"
		"  -l, --local SIZE|PCT%%      guest RAM kept local: 128M, 1G, or a percentage\n"
		"                             of the guest's RAM such as 25%%; at least 256K\n"
		"      --name NS              namespace on the server (default vm-NAME)\n"
		"  -k, --key-file FILE        authenticate with NS's key from FILE\n"
		"      --policy clock|fifo|2q eviction: second-chance CLOCK (default), FIFO, or\n"
		"                             2q (scan-resistant; rsa-app run's default)\n"
		"      --staging PCT          part of the budget used for second chances (12)\n"
		"      --prefetch on|off      fetch ahead on sequential remote faults (on)\n"
		"      --stats                print the statistics on stderr at exit\n"
		"      --stats-interval DUR   print a statistics line every DUR (1s, 500ms)\n"
		"      --stats-json FILE      write the statistics as JSON to FILE at exit\n"
		"      --retry DUR            reconnect to the server this long before giving\n"
		"                             up and stopping the guest (10s)\n"
#ifdef SDRSA_HAVE_XEN
		"      --xen DOMAIN           attach to a running Xen domain (id or name)\n"
		"                             instead of starting QEMU (not tested here)\n"
#endif
		"\n"
		"watch: report every read and write of one guest page (the seed's\n"
		"'rsa-app DOMU_NAME MEMORY_ADDRESS'); after each access the page goes to the\n"
		"memory server (upload_some_ram) and comes back on the next (download_more_ram).\n"
		"--settle DUR: how long a page stays after an access before it is sent back\n"
		"(1ms; e.g. 200us, 5ms). Ctrl-C stops watching; the guest runs on.\n"
		"\n"
		"stat: the statistics of a running VM (as 'rsa-app run --stats'); --json.\n"
		"\n"
		"Control sockets live in $SDRSA_RUN_DIR, else /run/sdrsa (root), else\n"
		"$XDG_RUNTIME_DIR/sdrsa. $SDRSA_QEMU_SHIM overrides the shim's path.\n");
}

static int bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, PROG " vm: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (try '" PROG " vm --help')\n");
	return 2;
}

/* ---- the VM's lock and control socket ---- */

/* Returns 0, or 1 after printing (another agent, or an error). */
static int take_lock(struct agent *a)
{
	struct stat s1, s2;
	char buf[32];

	if (mkdir(a->dir, 0700) < 0 && errno != EEXIST) {
		vm_say("cannot create %s: %s (set %s to a writable directory)", a->dir,
		       strerror(errno), VM_ENV_RUN_DIR);
		return 1;
	}
	snprintf(a->lock_path, sizeof(a->lock_path), "%s/%s.lock", a->dir, a->name);
	snprintf(a->sock_path, sizeof(a->sock_path), "%s/%s.sock", a->dir, a->name);
	for (int i = 0; i < 10; i++) {
		a->lock_fd = open(a->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (a->lock_fd < 0) {
			vm_say("cannot open %s: %s", a->lock_path, strerror(errno));
			return 1;
		}
		if (flock(a->lock_fd, LOCK_EX | LOCK_NB) < 0) {
			ssize_t n = pread(a->lock_fd, buf, sizeof(buf) - 1, 0);

			buf[n > 0 ? n : 0] = 0;
			buf[strcspn(buf, "\n")] = 0;
			vm_say("this VM already has an agent (pid %s, lock %s): stop it first, "
			       "or give this VM another name",
			       buf[0] ? buf : "?", a->lock_path);
			close(a->lock_fd);
			a->lock_fd = -1;
			return 1;
		}
		/* The file we locked must still be the one at the path (an agent
		 * that exits unlinks it while holding the lock). */
		if (fstat(a->lock_fd, &s1) == 0 && stat(a->lock_path, &s2) == 0 &&
		    s1.st_ino == s2.st_ino && s1.st_dev == s2.st_dev)
			break;
		close(a->lock_fd);
		a->lock_fd = -1;
	}
	if (a->lock_fd < 0) {
		vm_say("cannot take the lock %s", a->lock_path);
		return 1;
	}
	snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	if (ftruncate(a->lock_fd, 0) < 0 || pwrite(a->lock_fd, buf, strlen(buf), 0) < 0)
		vm_say("cannot write %s: %s", a->lock_path, strerror(errno));
	return 0;
}

static int listen_ctl(struct agent *a)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	mode_t old;

	if (strlen(a->sock_path) >= sizeof(sa.sun_path)) {
		vm_say("the control socket path %s is too long (set %s)", a->sock_path,
		       VM_ENV_RUN_DIR);
		return 1;
	}
	strcpy(sa.sun_path, a->sock_path);
	unlink(a->sock_path); /* stale: we hold the lock */
	a->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (a->listen_fd < 0)
		goto fail;
	old = umask(0077);
	if (bind(a->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		umask(old);
		goto fail;
	}
	umask(old);
	if (listen(a->listen_fd, 16) < 0)
		goto fail;
	return 0;
fail:
	vm_say("cannot listen on %s: %s", a->sock_path, strerror(errno));
	return 1;
}

/* ---- control clients ---- */

static void client_flush(struct client *c)
{
	while (c->outlen) {
		ssize_t n = write(c->fd, c->out, c->outlen);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n < 0 && errno != EAGAIN)
				c->outlen = 0, c->done = 1; /* the peer is gone */
			return;
		}
		memmove(c->out, c->out + n, c->outlen - (size_t)n);
		c->outlen -= (size_t)n;
	}
}

static void client_put(struct client *c, const char *line)
{
	size_t n = strlen(line);
	char note[96];

	if (c->dropped && c->outlen + 96 < OUTBUF) {
		int k = snprintf(note, sizeof(note),
				 "(%llu lines lost: this watcher reads too "
				 "slowly)\n",
				 (unsigned long long)c->dropped);

		memcpy(c->out + c->outlen, note, (size_t)k);
		c->outlen += (size_t)k;
		c->dropped = 0;
	}
	if (c->outlen + n + 1 > OUTBUF) {
		c->dropped++;
		return;
	}
	memcpy(c->out + c->outlen, line, n);
	c->out[c->outlen + n] = '\n';
	c->outlen += n + 1;
	client_flush(c);
}

static void client_putf(struct client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void client_putf(struct client *c, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	client_put(c, line);
}

static void emit_to_client(void *ctx, const char *line)
{
	client_put(ctx, line);
}

static void client_close(struct agent *a, struct client *c)
{
	if (c->fd < 0)
		return;
	if (c->watch_id >= 0 && a->pager)
		pager_watch_remove(a->pager, c->watch_id);
	close(c->fd);
	free(c->out);
	c->out = NULL;
	c->fd = -1;
	c->watch_id = -1;
}

static int format_stats(struct agent *a, int json, char *buf, size_t n)
{
	struct sdrsa_engine_stats s;
	char eng[2048];
	double up = (double)(sdrsa_now_ns() - a->t0_ns) / 1e9;
	int nw = 0;

	for (int i = 0; i < MAX_CLIENTS; i++)
		nw += a->cl[i].fd >= 0 && a->cl[i].watch_id >= 0;
	pager_stats(a->pager, &s);
	sdrsa_engine_format_stats(&s, json, eng, sizeof(eng));
	if (json)
		return snprintf(buf, n,
				"{\"vm\":\"%s\",\"backend\":\"%s\",\"pid\":%d,\"ram_bytes\":%llu,"
				"\"budget_bytes\":%llu,\"server\":\"%s\",\"namespace\":\"%s\","
				"\"uptime_s\":%.3f,\"watches\":%d,\"stats\":%s}",
				a->name, a->b.kind, (int)a->b.pid, (unsigned long long)a->ram_bytes,
				(unsigned long long)a->budget_pages * PAGE, a->server, a->ns, up,
				nw, eng);
	return snprintf(buf, n,
			"vm %s: %s pid %d, guest RAM %llu MiB, local budget %llu MiB (%llu pages), "
			"server %s, namespace %s, up %.1f s, %d watch%s\n%s",
			a->name, a->b.kind, (int)a->b.pid, (unsigned long long)(a->ram_bytes >> 20),
			(unsigned long long)(a->budget_pages * PAGE >> 20),
			(unsigned long long)a->budget_pages, a->server, a->ns, up, nw,
			nw == 1 ? "" : "es", eng);
}

static void do_watch(struct agent *a, struct client *c, const char *args)
{
	unsigned long long gpa, settle = 1000000;
	char ram[160];
	int64_t pg;
	int nw = 0, id;

	if (sscanf(args, "%lli %llu", &gpa, &settle) < 1) {
		client_putf(c, "error bad watch request '%s'", args);
		c->done = 1;
		return;
	}
	a->b.describe_ram(a->b.ctx, ram, sizeof(ram));
	if (gpa & (PAGE - 1)) {
		client_putf(c,
			    "error 0x%llx is not page-aligned: watch takes the address of a "
			    "4096-byte page, here 0x%llx",
			    gpa, gpa & ~(unsigned long long)(PAGE - 1));
		c->done = 1;
		return;
	}
	pg = a->b.gpa_to_page(a->b.ctx, gpa);
	if (pg < 0) {
		client_putf(c, "error 0x%llx is not guest RAM: VM '%s' has %s", gpa, a->name, ram);
		c->done = 1;
		return;
	}
	for (int i = 0; i < MAX_CLIENTS; i++)
		nw += a->cl[i].fd >= 0 && a->cl[i].watch_id >= 0;
	if (nw >= PAGER_MAX_WATCH) {
		client_putf(c, "error VM '%s' has %d watches already; stop one first", a->name, nw);
		c->done = 1;
		return;
	}
	if (settle > 10000000000ULL)
		settle = 10000000000ULL;
	client_putf(c,
		    "ok watching VM '%s' page 0x%llx (guest RAM: %s); the page is sent back "
		    "to the memory server %llu us after each access; Ctrl-C stops",
		    a->name, gpa, ram, settle / 1000);
	id = pager_watch_add(a->pager, (uint64_t)pg, gpa, settle, emit_to_client, c);
	if (id < 0) {
		client_putf(c, "error cannot watch 0x%llx: %s", gpa, strerror(-id));
		c->done = 1;
		return;
	}
	c->watch_id = id;
	vm_say("watching page 0x%llx for a client", gpa);
}

static void do_request(struct agent *a, struct client *c, char *line)
{
	static char buf[8192];

	if (!strcmp(line, "stat") || !strcmp(line, "stat json")) {
		format_stats(a, line[4] != 0, buf, sizeof(buf));
		client_put(c, buf);
		client_put(c, "end");
		c->done = 1;
	} else if (!strncmp(line, "watch ", 6)) {
		do_watch(a, c, line + 6);
	} else {
		client_putf(c, "error unknown request '%.64s'", line);
		c->done = 1;
	}
}

static void client_readable(struct agent *a, struct client *c)
{
	ssize_t n = read(c->fd, c->in + c->inlen, sizeof(c->in) - 1 - c->inlen);
	char *nl;

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		client_close(a, c); /* a watcher's Ctrl-C ends here */
		return;
	}
	if (c->watch_id >= 0 || c->done)
		return; /* one request per connection; ignore the rest */
	c->inlen += (size_t)n;
	c->in[c->inlen] = 0;
	nl = strchr(c->in, '\n');
	if (!nl) {
		if (c->inlen >= sizeof(c->in) - 1) {
			client_put(c, "error request too long");
			c->done = 1;
		}
		return;
	}
	*nl = 0;
	do_request(a, c, c->in);
}

static void accept_client(struct agent *a)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	int fd = accept4(a->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	struct client *c = NULL;

	if (fd < 0)
		return;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0 ||
	    (cr.uid != 0 && cr.uid != geteuid())) {
		close(fd);
		return;
	}
	for (int i = 0; i < MAX_CLIENTS && !c; i++)
		if (a->cl[i].fd < 0)
			c = &a->cl[i];
	if (!c || !(c->out = malloc(OUTBUF))) {
		static const char busy[] = "error the agent has too many clients\n";

		(void)!write(fd, busy, sizeof(busy) - 1);
		close(fd);
		return;
	}
	c->fd = fd;
	c->inlen = c->outlen = 0;
	c->watch_id = -1;
	c->dropped = 0;
	c->done = 0;
}

/* ---- the event loop ---- */

static int reap(struct agent *a)
{
	int st;
	pid_t r;

	if (a->b.pid <= 0 || a->exited)
		return a->exited;
	r = waitpid(a->b.pid, &st, WNOHANG);
	if (r == a->b.pid) {
		a->exited = 1;
		a->status = st;
	}
	return a->exited;
}

static void on_signal(struct agent *a, int sig)
{
	if (sig == SIGCHLD) {
		reap(a);
		return;
	}
	if (!a->stopping) {
		vm_say("got %s: stopping %s (it is killed if still running in %d s)",
		       strsignal(sig), a->b.kind, STOP_GRACE_MS / 1000);
		a->stopping = 1;
		a->kill_at = sdrsa_now_ms() + STOP_GRACE_MS;
		a->b.stop(a->b.ctx);
	} else {
		vm_say("got %s again: killing %s", strsignal(sig), a->b.kind);
		a->b.kill(a->b.ctx);
	}
}

/* Returns 0 when the guest ended, 1 on a fatal error (the guest is killed). */
static int run_loop(struct agent *a, uint64_t interval_ms)
{
	struct pollfd pf[3 + MAX_CLIENTS];
	struct client *pc[3 + MAX_CLIENTS];
	uint64_t next_stats = interval_ms ? sdrsa_now_ms() + interval_ms : 0;
	uint64_t tick_at = a->store->ops->tick ? 0 : UINT64_MAX; /* a pool's background work */
	int more = 0;

	for (;;) {
		int n = 0, timeout = -1, k, r;
		uint64_t now, dl;

		if (a->b.ended && a->b.ended(a->b.ctx))
			return 0;
		if (reap(a))
			return 0;
		pf[n++] =
		    (struct pollfd){.fd = a->fault_off ? -1 : a->b.fault_fd, .events = POLLIN};
		pf[n++] = (struct pollfd){.fd = a->sig_fd, .events = POLLIN};
		pf[n++] = (struct pollfd){.fd = a->listen_fd, .events = POLLIN};
		for (int i = 0; i < MAX_CLIENTS; i++) {
			struct client *c = &a->cl[i];

			if (c->fd < 0)
				continue;
			if (c->done && !c->outlen) {
				client_close(a, c);
				continue;
			}
			pc[n] = c;
			pf[n++] = (struct pollfd){.fd = c->fd,
						  .events = POLLIN | (c->outlen ? POLLOUT : 0)};
		}
		now = sdrsa_now_ns();
		if (more) {
			timeout = 0;
		} else {
			dl = pager_next_deadline(a->pager);
			if (dl != UINT64_MAX)
				timeout = dl <= now ? 0 : (int)((dl - now) / 1000000) + 1;
		}
		if (next_stats) {
			uint64_t ms = sdrsa_now_ms();
			int t = next_stats <= ms ? 0 : (int)(next_stats - ms);

			if (timeout < 0 || t < timeout)
				timeout = t;
		}
		if (a->kill_at) {
			uint64_t ms = sdrsa_now_ms();
			int t = a->kill_at <= ms ? 0 : (int)(a->kill_at - ms);

			if (timeout < 0 || t < timeout)
				timeout = t;
		}
		if (tick_at != UINT64_MAX) {
			uint64_t ms = sdrsa_now_ms();

			if (ms >= tick_at) {
				int t = a->store->ops->tick(a->store);

				tick_at = t < 0 ? UINT64_MAX : ms + (uint64_t)t;
			}
			if (tick_at != UINT64_MAX) {
				int t = tick_at <= ms ? 0 : (int)MIN(tick_at - ms, 60000u);

				if (timeout < 0 || t < timeout)
					timeout = t;
			}
		}
		k = poll(pf, (nfds_t)n, timeout);
		if (k < 0 && errno != EINTR) {
			vm_say("poll: %s", strerror(errno));
			a->b.kill(a->b.ctx);
			return 1;
		}
		if (k > 0 && (pf[0].revents & (POLLIN | POLLERR | POLLHUP))) {
			r = a->b.serve(a->b.ctx, a->pager);
			if (r == -ESRCH) {
				a->fault_off = 1; /* QEMU is exiting; SIGCHLD follows */
			} else if (r < 0) {
				const char *why = pager_why(a->pager);

				vm_say("cannot serve the guest's memory: %s (memory server %s); "
				       "stopping %s now (SIGKILL): the guest must not run without "
				       "its pages",
				       why ? why : strerror(-r), a->server, a->b.kind);
				a->b.kill(a->b.ctx);
				return 1;
			}
		}
		if (k > 0 && (pf[1].revents & POLLIN)) {
			struct signalfd_siginfo si;

			while (read(a->sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
				on_signal(a, (int)si.ssi_signo);
		}
		if (k > 0 && (pf[2].revents & POLLIN))
			accept_client(a);
		for (int i = 3; k > 0 && i < n; i++) {
			if (pf[i].revents & POLLOUT)
				client_flush(pc[i]);
			if (pf[i].revents & (POLLIN | POLLHUP | POLLERR))
				client_readable(a, pc[i]);
		}
		/* Background work only when no fault waits. */
		more = 0;
		if (!(k > 0 && (pf[0].revents & POLLIN)) && !a->fault_off) {
			r = pager_background(a->pager, sdrsa_now_ns());
			if (r == -ESRCH) {
				a->fault_off = 1; /* QEMU is exiting */
				r = 0;
			}
			if (r < 0) {
				vm_say(
				    "cannot evict guest pages: %s (memory server %s); stopping %s "
				    "now (SIGKILL)",
				    strerror(-r), a->server, a->b.kind);
				a->b.kill(a->b.ctx);
				return 1;
			}
			more = r;
		}
		if (next_stats && sdrsa_now_ms() >= next_stats) {
			struct sdrsa_engine_stats s;
			char line[2048];

			pager_stats(a->pager, &s);
			sdrsa_engine_format_stats(&s, 0, line, sizeof(line));
			vm_say("%s", line);
			next_stats = sdrsa_now_ms() + interval_ms;
		}
		if (a->kill_at && sdrsa_now_ms() >= a->kill_at) {
			vm_say("%s did not stop within %d s: killing it", a->b.kind,
			       STOP_GRACE_MS / 1000);
			a->b.kill(a->b.ctx);
			a->kill_at = 0;
		}
	}
}

/* ---- main ---- */

/* --local: SIZE or PCT% of guest RAM. Returns 0 or 2 after printing. */
static int parse_local(const char *s, uint64_t ram, uint64_t *pages)
{
	uint64_t v;
	int r = sdrsa_parse_size_or_pct(s, ram, &v);

	if (r == -EDOM)
		return bad("--local %s: a percentage must be more than 0%% and at most 100%%", s);
	if (r < 0)
		return bad("--local %s: not a size (use a number with K, M, G, or N%% of the "
			   "guest's RAM)",
			   s);
	if (v < 64 * PAGE)
		return bad("--local %s: the budget must be at least 256K (64 pages)", s);
	if (v > ram)
		v = ram;
	*pages = v / PAGE;
	return 0;
}

static void cleanup(struct agent *a)
{
	for (int i = 0; i < MAX_CLIENTS; i++)
		client_close(a, &a->cl[i]);
	if (a->listen_fd >= 0) {
		close(a->listen_fd);
		unlink(a->sock_path);
	}
	if (a->sig_fd >= 0)
		close(a->sig_fd);
	pager_free(a->pager);
	store_free(a->store);
	if (a->have_b && a->b.destroy)
		a->b.destroy(a->b.ctx);
	if (a->lock_fd >= 0) {
		unlink(a->lock_path); /* while holding it: see take_lock */
		close(a->lock_fd);
	}
}

static int write_json(struct agent *a, const char *path)
{
	char buf[8192];
	FILE *f = fopen(path, "w");

	if (!f)
		return -errno;
	format_stats(a, 1, buf, sizeof(buf));
	fprintf(f, "%s\n", buf);
	return fclose(f) == 0 ? 0 : -EIO;
}

/* The pool's warnings (a server down, back, draining) on the agent's stderr. */
static void pool_log(void *ud, int level, const char *msg)
{
	(void)ud;
	if (level <= SDRSA_LOG_WARN)
		vm_say("%s", msg);
}

int rsa_vm_main(int argc, char **argv)
{
	enum {
		O_NAME = 256,
		O_POLICY,
		O_STAGING,
		O_STATS,
		O_INTERVAL,
		O_JSON,
		O_RETRY,
		O_XEN,
		O_PREFETCH,
		O_SERVERS,
		O_REPLICAS
	};
	static const struct option opts[] = {
	    {"server", required_argument, NULL, 's'},
	    {"local", required_argument, NULL, 'l'},
	    {"key-file", required_argument, NULL, 'k'},
	    {"name", required_argument, NULL, O_NAME},
	    {"policy", required_argument, NULL, O_POLICY},
	    {"staging", required_argument, NULL, O_STAGING},
	    {"stats", no_argument, NULL, O_STATS},
	    {"stats-interval", required_argument, NULL, O_INTERVAL},
	    {"stats-json", required_argument, NULL, O_JSON},
	    {"retry", required_argument, NULL, O_RETRY},
	    {"xen", required_argument, NULL, O_XEN},
	    {"prefetch", required_argument, NULL, O_PREFETCH},
	    {"servers", required_argument, NULL, O_SERVERS},
	    {"replicas", required_argument, NULL, O_REPLICAS},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	static struct agent ag;
	struct agent *a = &ag;
	const char *name = NULL, *local = NULL, *keyfile = NULL, *ns = NULL, *json = NULL;
	const char *xen = NULL, *pool_file = NULL;
	/* A pool (docs/POOL.md): several --server, --servers FILE, --replicas. */
	static struct poolconf pool;
	static char pool_desc[64];
	const char *server_args[POOLCONF_MAX];
	size_t nserver_args = 0;
	unsigned long replicas = 0;
	uint64_t interval = 0, retry = 10000, staging = 12;
	int stats = 0, fifo = 0, twoq = 0, prefetch = 1, c, dashdash = 0, rc = 1, r;
	uint8_t key[SDRSA_KEY_SIZE];
	struct qemu_be *q = NULL;
	sigset_t mask;

	memset(a, 0, sizeof(*a));
	a->lock_fd = a->listen_fd = a->sig_fd = -1;
	for (int i = 0; i < MAX_CLIENTS; i++)
		a->cl[i].fd = -1, a->cl[i].watch_id = -1;

	optind = 0;
	opterr = 1;
	for (;;) {
		c = getopt_long(argc, argv, "+s:l:k:h", opts, NULL);
		if (c == -1) {
			if (optind > 0 && optind <= argc && !strcmp(argv[optind - 1], "--")) {
				dashdash = 1;
				break;
			}
			if (optind < argc && !name) {
				name = argv[optind++];
				continue;
			}
			break;
		}
		switch (c) {
		case 's':
			if (nserver_args == POOLCONF_MAX)
				return bad("more than %d servers", POOLCONF_MAX);
			server_args[nserver_args++] = optarg;
			a->server = optarg;
			break;
		case O_SERVERS:
			pool_file = optarg;
			break;
		case O_REPLICAS:
			if (poolconf_parse_replicas(optarg, &replicas) < 0)
				return bad("--replicas %s: a whole number from 1 to %d", optarg,
					   POOLCONF_MAX);
			break;
		case 'l':
			local = optarg;
			break;
		case 'k':
			keyfile = optarg;
			break;
		case O_NAME:
			ns = optarg;
			break;
		case O_POLICY:
			if (strcmp(optarg, "clock") && strcmp(optarg, "fifo") && strcmp(optarg, "2q"))
				return bad("--policy %s: use clock, fifo or 2q", optarg);
			fifo = !strcmp(optarg, "fifo");
			twoq = !strcmp(optarg, "2q");
			break;
		case O_STAGING: {
			char *end;

			staging = strtoull(optarg, &end, 10);
			if (*end || end == optarg || staging > 50)
				return bad("--staging %s: a percentage from 0 to 50", optarg);
			break;
		}
		case O_STATS:
			stats = 1;
			break;
		case O_PREFETCH:
			if (strcmp(optarg, "on") && strcmp(optarg, "off"))
				return bad("--prefetch %s: use on or off", optarg);
			prefetch = !strcmp(optarg, "on");
			break;
		case O_INTERVAL:
			if (sdrsa_parse_duration_ms(optarg, &interval) < 0 || interval == 0)
				return bad("--stats-interval %s: not a duration (e.g. 1s, 500ms)",
					   optarg);
			break;
		case O_JSON:
			json = optarg;
			break;
		case O_RETRY:
			if (sdrsa_parse_duration_ms(optarg, &retry) < 0 || retry == 0)
				return bad("--retry %s: not a duration (e.g. 10s)", optarg);
			break;
		case O_XEN:
#ifdef SDRSA_HAVE_XEN
			xen = optarg;
			break;
#else
			return bad("--xen: this rsa-app was built without the Xen backend "
				   "(meson -Dxen=true)");
#endif
		case 'h':
			rsa_vm_usage(stdout);
			return 0;
		default:
			return 2;
		}
	}
	if (!name)
		return bad("missing the VM's NAME");
	if (!vm_name_ok(name))
		return bad("'%s' is not a usable VM name (1-64 letters, digits, '.', '_', '-')",
			   name);
	snprintf(g_name, sizeof(g_name), "%s", name);
	snprintf(a->name, sizeof(a->name), "%s", name);
	if (!a->server && !pool_file)
		return bad("missing --server ADDR or --servers FILE");
	if (!local)
		return bad("missing --local SIZE|PCT%%");
	if (!xen && (!dashdash || optind >= argc))
		return bad(
		    "no QEMU command: put it after --, e.g. -- qemu-system-x86_64 -m 1G ...");
	if (xen && dashdash && optind < argc)
		return bad("--xen attaches to a running domain: no QEMU command");
	if (ns)
		snprintf(a->ns, sizeof(a->ns), "%s", ns);
	else
		snprintf(a->ns, sizeof(a->ns), "vm-%s", name);
	if (keyfile) {
		r = sdrsa_key_load(keyfile, a->ns, key);
		if (r < 0) {
			vm_say("cannot load the key of '%s' from %s: %s", a->ns, keyfile,
			       strerror(-r));
			return 1;
		}
	}
	if (nserver_args > 1 || pool_file || replicas) {
		char err[512];

		for (size_t i = 0; i < nserver_args; i++)
			if (poolconf_add(&pool, server_args[i], 0, NULL, err, sizeof(err)) < 0)
				return bad("--server: %s", err);
		if (pool_file && poolconf_load(&pool, pool_file, a->ns, err, sizeof(err)) < 0) {
			vm_say("%s", err);
			return 2;
		}
		if (replicas > pool.n)
			return bad("--replicas %lu: the pool has only %zu server%s", replicas, pool.n,
				   pool.n == 1 ? "" : "s");
		snprintf(pool_desc, sizeof(pool_desc), "pool of %zu servers", pool.n);
		a->server = pool_desc;
	}
	if (vm_run_dir(a->dir, sizeof(a->dir)) < 0) {
		vm_say("the control directory name is too long (set %s)", VM_ENV_RUN_DIR);
		return 1;
	}
	if (!xen) {
		rc = qemu_prepare(name, argv + optind, argc - optind, &q, &a->ram_bytes);
		if (rc)
			return rc;
	}
	if (take_lock(a)) {
		qemu_discard(q);
		return 1;
	}
	rc = 1;
	/* Signals go through signalfd from here on; QEMU gets a clean mask. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGQUIT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	a->sig_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (a->sig_fd < 0) {
		vm_say("signalfd: %s", strerror(errno));
		goto out;
	}
#ifdef SDRSA_HAVE_XEN
	if (xen) {
		if (xen_attach(xen, &a->b, &a->ram_bytes))
			goto out;
		a->have_b = 1;
	}
#endif
	r = parse_local(local, a->ram_bytes, &a->budget_pages);
	if (r) {
		rc = r;
		goto out;
	}
	if (a->budget_pages * PAGE > sdrsa_machine_ram())
		vm_say("note: the local budget is more than this machine's RAM");
	{
		struct sdrsa_client_config cc = {.address = a->server,
						 .name = a->ns,
						 .key = keyfile ? key : NULL,
						 .timeout_ms = 5000};
		uint64_t freed = 0;

		if (pool.n) {
			struct sdrsa_pool_server srv[POOLCONF_MAX];

			poolconf_servers(&pool, srv);
			for (size_t i = 0; i < pool.n; i++)
				if (!srv[i].key)
					srv[i].key = cc.key;
			struct store_pool_config pc = {.servers = srv,
						       .n = pool.n,
						       .replicas = (unsigned)replicas,
						       .name = a->ns,
						       .retry_ms = (int)retry,
						       .log = pool_log};

			r = store_pool_new(&pc, &a->store);
		} else {
			r = store_sdrsa_new(&cc, (int)retry, &a->store);
		}
		if (r < 0) {
			vm_say("cannot reach the memory server %s: %s", a->server, strerror(-r));
			goto out;
		}
		/* Pages left by a previous agent of this name are stale. */
		if (a->store->ops->free_all(a->store, &freed) == 0 && freed)
			vm_say("freed %llu pages left on the server by an earlier run",
			       (unsigned long long)freed);
	}
	if (listen_ctl(a))
		goto out;
	if (!xen) {
		if (qemu_launch(q, &a->b))
			goto out;
		q = NULL; /* owned by the backend now */
		a->have_b = 1;
	}
	{
		struct pager_config pc = {
		    .npages = a->b.npages,
		    .budget_pages = a->budget_pages,
		    .staging_pct = (unsigned)staging,
		    .fifo = fifo,
		    .prefetch = prefetch,
		    .twoq = twoq,
		    .store = a->store,
		    .ops = a->b.ops,
		    .be = a->b.ctx,
		};

		r = pager_new(&pc, &a->pager);
		if (r == 0 && a->b.adopt)
			r = a->b.adopt(a->b.ctx, a->pager);
		if (r < 0) {
			vm_say("cannot set up the pager: %s", strerror(-r));
			a->b.kill(a->b.ctx);
			goto out_wait;
		}
	}
	a->t0_ns = sdrsa_now_ns();
	{
		char ram[160];

		a->b.describe_ram(a->b.ctx, ram, sizeof(ram));
		vm_say("%s pid %d, guest RAM %s, local budget %llu MiB, server %s (namespace %s); "
		       "'" PROG " watch %s ADDR', '" PROG " stat %s'",
		       a->b.kind, (int)a->b.pid, ram,
		       (unsigned long long)(a->budget_pages * PAGE >> 20), a->server, a->ns, name,
		       name);
	}
	rc = run_loop(a, interval);

out_wait:
	/* The guest is stopping or was killed: wait for it. */
	if (a->have_b && a->b.pid > 0 && !a->exited) {
		int st;

		if (waitpid(a->b.pid, &st, 0) == a->b.pid) {
			a->exited = 1;
			a->status = st;
		}
	}
	for (int i = 0; i < MAX_CLIENTS; i++) {
		if (a->cl[i].fd >= 0 && a->cl[i].watch_id >= 0) {
			client_put(&a->cl[i], "end the VM stopped");
			client_flush(&a->cl[i]);
		}
	}
	if (a->pager) {
		uint64_t freed = 0;

		if (stats || json) {
			char buf[8192];

			format_stats(a, 0, buf, sizeof(buf));
			if (stats)
				vm_say("stats: %s",
				       strchr(buf, '\n') ? strchr(buf, '\n') + 1 : buf);
			if (json && write_json(a, json) < 0)
				vm_say("cannot write the statistics to %s", json);
		}
		if (a->have_b && a->b.may_free && !a->b.may_free(a->b.ctx))
			vm_say("the guest's pages stay on %s (namespace %s): the guest still needs "
			       "them",
			       a->server, a->ns);
		else if (pager_free_remote(a->pager, &freed) < 0)
			vm_say("could not free the guest's pages on %s", a->server);
	}
	if (rc == 0 && a->exited) {
		if (WIFEXITED(a->status)) {
			rc = WEXITSTATUS(a->status);
		} else if (WIFSIGNALED(a->status)) {
			rc = 128 + WTERMSIG(a->status);
			if (WTERMSIG(a->status) != SIGTERM && WTERMSIG(a->status) != SIGINT)
				vm_say("%s was killed by signal %d (%s)", a->b.kind,
				       WTERMSIG(a->status), strsignal(WTERMSIG(a->status)));
		}
	}
out:
	qemu_discard(q);
	cleanup(a);
	return rc;
}
