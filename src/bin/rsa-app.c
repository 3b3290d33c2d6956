/* SPDX-License-Identifier: MIT */
/*
 * rsa-app: the sdrsa application. Subcommands:
 *   run   [options] -- PROGRAM [ARGS...]   (this file)
 *   vm    NAME [options] -- QEMU...        a guest's RAM on the pool (src/vm)
 *   watch NAME GUEST-PHYS-ADDR             the seed's watch mode (src/vm)
 *   stat  NAME                             statistics of a running VM (src/vm)
 *   pool  status|drain ...                 a pool of servers (rsa-pool.c)
 *
 * rsa-app run [options] -- PROGRAM [ARGS...]: run an unmodified program with
 * its large anonymous memory managed by the sdrsa paging engine, at most
 * --local of it in this host's RAM and the rest on a memory server.
 *
 * A thin main(): it checks the options and that the server answers (so that
 * a mistake is one line before the program starts, not a crash inside it),
 * then starts PROGRAM with libsdrsa-preload.so and SDRSA_* variables (the
 * engine runs inside the program: see docs/ENGINE.md), waits for it, frees
 * the program's pages on the server (also after a crash), and exits with the
 * program's status (128+N when killed by signal N).
 *
 * Exit status: the program's; 2 for bad options; 1 when the server cannot be
 * reached or the engine cannot start; 127 when PROGRAM cannot be run.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sdrsa/client.h>

#include "bin/rsa_sim.h"
#include "common/util.h"
#include "engine/store.h"
#include "engine/poolconf.h"
#include "rsa-pool.h"
#include "vm/vm_cli.h"

#define PROG "rsa-app"

#ifndef SDRSA_PRELOAD_INSTALLED
#define SDRSA_PRELOAD_INSTALLED "/usr/local/lib/sdrsa/libsdrsa-preload.so"
#endif

static pid_t g_child;

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: " PROG " run --server ADDR --local SIZE|PCT%% [options] -- PROGRAM [ARGS...]\n"
		"\n"
		"Run PROGRAM with at most SIZE of its large anonymous memory in local RAM;\n"
		"the rest lives on the memory server at ADDR and comes back when touched.\n"
		"\n"
		"Options:\n"
		"  -s, --server ADDR         memory server: HOST:PORT, HOST, unix:PATH; repeat\n"
		"                            it for a pool of servers (docs/POOL.md); with\n"
		"                            --backend memcached a memcached HOST:PORT, repeated\n"
		"                            for each server of the fleet\n"
		"      --servers FILE        a pool file: one server per line, 'ADDRESS\n"
		"                            [weight=N] [key-file=PATH]', # comments\n"
		"      --replicas R          a pool keeps every page on R servers (default 2\n"
		"                            with two servers or more, else 1); a dead server's\n"
		"                            pages are read from their other copies and copied\n"
		"                            again in the background\n"
		"      --backend KIND        where pages go: sdrsa (memory servers, default) or\n"
		"                            memcached (an existing fleet: no quotas, no client\n"
		"                            authentication; a page memcached evicted or lost\n"
		"                            stops the program; docs/MEMCACHED.md)\n"
		"  -l, --local SIZE|PCT%%     local budget: 256M, 2G, or a percentage of this\n"
		"                            machine's RAM such as 25%%; at least 256K\n"
		"  -t, --threshold SIZE      manage mappings and malloc blocks of at least SIZE\n"
		"                            (default 1M; 64K for programs with their own\n"
		"                            allocator, such as redis-server's jemalloc)\n"
		"      --prefetch KIND       fetch ahead on sequential or strided faults:\n"
		"                            stride (default; on is the same): the majority\n"
		"                            stride of recent faults per mapping, depth\n"
		"                            adapted to use; stream: the first detector;\n"
		"                            off\n"
		"      --policy KIND         eviction: 2q (default: scan-resistant, pages seen\n"
		"                            reused are protected), clock (second-chance\n"
		"                            CLOCK) or fifo (fault order, the baseline)\n"
		"      --trace FILE          record the program's page faults into FILE, for\n"
		"                            rsa-app sim (format: docs/ENGINE.md)\n"
		"      --stats               print a summary on stderr at exit\n"
		"      --stats-interval DUR  print a live line every DUR (e.g. 1s, 500ms)\n"
		"      --stats-json FILE     write the summary as JSON to FILE at exit\n"
		"      --name NAME           namespace on the server (default rsa-HOST-PID)\n"
		"  -k, --key-file FILE       authenticate with NAME's key from FILE\n"
		"      --retry DUR           reconnect for this long before giving up (10s)\n"
		"      --timeout DUR         wait this long for the server's answer before\n"
		"                            reconnecting (5s; in a pool 1s, then the server\n"
		"                            is taken as down); a stalled server stops the\n"
		"                            program within about 2 x --timeout + --retry\n"
		"  -h, --help                show this help\n"
		"\n"
		"Environment: SDRSA_PRELOAD overrides the path of libsdrsa-preload.so.\n"
		"\n"
		"Usage: " PROG " pool status [FILE] [--server ADDR]... [--name NAME] [-k KEYFILE]\n"
		"       " PROG " pool drain ADDR [--pid PID] [--timeout DUR]\n"
		"Each server of a pool: up/down, pages, free, latency; drain (on the server's\n"
		"host) moves a server's pages to the others before it stops (docs/POOL.md).\n");
}

static int bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, PROG ": ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, " (try '" PROG " --help')\n");
	va_end(ap);
	return 2;
}

/* Parse SIZE or PCT% (of this machine's RAM). Returns 0 or an exit status
 * after printing. */
static int parse_local(const char *s, uint64_t *out)
{
	uint64_t ram = sdrsa_machine_ram();
	uint64_t v;
	int r = sdrsa_parse_size_or_pct(s, ram, &v);
	if (r == -EDOM)
		return bad("--local %s: a percentage must be more than 0%% and at most 100%%", s);
	if (r == -ERANGE)
		return bad("--local %s: too large", s);
	if (r < 0)
		return bad("--local %s: not a size (use a number with K, M, G or T, or N%%)", s);
	if (v == 0)
		return bad("--local %s: the budget must be more than zero", s);
	if (v < 64 * 4096)
		return bad("--local %s: the budget must be at least 256K (64 pages)", s);
	if (ram && v > ram) {
		return bad("--local %s: larger than this machine's memory (%.1f GiB)", s,
			   (double)ram / (1024.0 * 1024.0 * 1024.0));
	}
	*out = v;
	return 0;
}

static int find_preload(char *buf, size_t n)
{
	const char *env = getenv("SDRSA_PRELOAD");
	if (env && *env) {
		snprintf(buf, n, "%s", env);
		return access(buf, R_OK) == 0 ? 0 : -1;
	}
	char exe[PATH_MAX];
	ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (len > 0) {
		exe[len] = 0;
		char *slash = strrchr(exe, '/');
		if (slash) {
			/* Build tree: rsa-app is in src/bin, the library in
			 * src/engine. Installed: SDRSA_PRELOAD_INSTALLED. */
			*slash = 0;
			if (snprintf(buf, n, "%.*s/../engine/libsdrsa-preload.so", (int)(n - 40),
				     exe) < (int)n &&
			    access(buf, R_OK) == 0)
				return 0;
		}
	}
	snprintf(buf, n, "%s", SDRSA_PRELOAD_INSTALLED);
	return access(buf, R_OK) == 0 ? 0 : -1;
}

static void forward(int sig)
{
	if (g_child > 0)
		kill(g_child, sig);
}

static void set_env_u64(const char *name, uint64_t v)
{
	char buf[32];
	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
	setenv(name, buf, 1);
}

int main(int argc, char **argv)
{
	enum { O_PREFETCH = 256, O_POLICY, O_STATS, O_INTERVAL, O_JSON, O_NAME, O_RETRY, O_TIMEOUT,
	       O_BACKEND, O_SERVERS, O_REPLICAS, O_TRACE };
	static const struct option opts[] = {
		{"server", required_argument, NULL, 's'},
		{"local", required_argument, NULL, 'l'},
		{"threshold", required_argument, NULL, 't'},
		{"prefetch", required_argument, NULL, O_PREFETCH},
		{"policy", required_argument, NULL, O_POLICY},
		{"stats", no_argument, NULL, O_STATS},
		{"stats-interval", required_argument, NULL, O_INTERVAL},
		{"stats-json", required_argument, NULL, O_JSON},
		{"name", required_argument, NULL, O_NAME},
		{"key-file", required_argument, NULL, 'k'},
		{"retry", required_argument, NULL, O_RETRY},
		{"timeout", required_argument, NULL, O_TIMEOUT},
		{"backend", required_argument, NULL, O_BACKEND},
		{"servers", required_argument, NULL, O_SERVERS},
		{"replicas", required_argument, NULL, O_REPLICAS},
		{"trace", required_argument, NULL, O_TRACE},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		usage(stdout);
		fputc('\n', stdout);
		rsa_vm_usage(stdout);
		fputc('\n', stdout);
		rsa_sim_usage(stdout);
		return 0;
	}
	if (argc >= 2 && !strcmp(argv[1], "vm"))
		return rsa_vm_main(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "watch"))
		return rsa_watch_main(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "stat"))
		return rsa_stat_main(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "pool"))
		return rsa_pool_main(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "sim"))
		return rsa_sim_main(argc - 1, argv + 1);
	if (argc < 2 || strcmp(argv[1], "run") != 0) {
		if (argc < 2)
			return bad("missing command: %s", "use run, vm, watch, stat, pool or sim");
		return bad("unknown command '%s' (use run, vm, watch, stat, pool or sim)", argv[1]);
	}
	const char *server = NULL, *local = NULL, *json = NULL, *name = NULL, *keyfile = NULL;
	const char *policy = "2q", *prefetch = "stride", *trace = NULL;
	uint64_t threshold = 1u << 20, interval = 0, retry = 10000, budget = 0, timeout = 5000;
	int stats = 0, c, timeout_set = 0, memcached = 0;
	const char *server_args[POOLCONF_MAX + 1], *pool_files[8];
	size_t nserver_args = 0, npool_files = 0;
	unsigned long replicas = 0;
	/* --backend memcached: every --server, joined as "H:P,H:P" */
	char mcservers[4096] = "";
	optind = 2;
	while ((c = getopt_long(argc, argv, "+s:l:t:k:h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			if (nserver_args == POOLCONF_MAX)
				return bad("more than %d servers", POOLCONF_MAX);
			server_args[nserver_args++] = optarg;
			server = optarg;
			if (strchr(optarg, ','))
				return bad("--server %s: one address per --server", optarg);
			break;
		case O_BACKEND:
			if (strcmp(optarg, "sdrsa") && strcmp(optarg, "memcached"))
				return bad("--backend %s: use sdrsa or memcached", optarg);
			memcached = !strcmp(optarg, "memcached");
			break;
		case O_SERVERS:
			if (npool_files == ARRAY_SIZE(pool_files))
				return bad("--servers given more than %zu times", ARRAY_SIZE(pool_files));
			pool_files[npool_files++] = optarg;
			break;
		case O_REPLICAS:
			if (poolconf_parse_replicas(optarg, &replicas) < 0)
				return bad("--replicas %s: a whole number from 1 to %d", optarg,
					   POOLCONF_MAX);
			break;
		case 'l':
			local = optarg;
			break;
		case 't':
			if (sdrsa_parse_size(optarg, &threshold) < 0 || threshold < 4096)
				return bad("--threshold %s: not a size of at least 4K", optarg);
			break;
		case O_PREFETCH:
			if (strcmp(optarg, "on") && strcmp(optarg, "off") && strcmp(optarg, "stride") &&
			    strcmp(optarg, "stream"))
				return bad("--prefetch %s: use stride, stream, off (or on)", optarg);
			prefetch = strcmp(optarg, "on") ? optarg : "stride";
			break;
		case O_POLICY:
			if (strcmp(optarg, "2q") && strcmp(optarg, "clock") && strcmp(optarg, "fifo"))
				return bad("--policy %s: use 2q, clock or fifo", optarg);
			policy = optarg;
			break;
		case O_TRACE:
			trace = optarg;
			break;
		case O_STATS:
			stats = 1;
			break;
		case O_INTERVAL:
			if (sdrsa_parse_duration_ms(optarg, &interval) < 0 || interval == 0)
				return bad("--stats-interval %s: not a duration (e.g. 1s, 500ms)",
					   optarg);
			break;
		case O_JSON:
			json = optarg;
			break;
		case O_NAME:
			name = optarg;
			break;
		case 'k':
			keyfile = optarg;
			break;
		case O_RETRY:
			if (sdrsa_parse_duration_ms(optarg, &retry) < 0 || retry == 0)
				return bad("--retry %s: not a duration (e.g. 10s)", optarg);
			break;
		case O_TIMEOUT:
			if (sdrsa_parse_duration_ms(optarg, &timeout) < 0 || timeout == 0 ||
			    timeout > 600000)
				return bad("--timeout %s: not a duration of at most 10m (e.g. 5s)",
					   optarg);
			timeout_set = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			return 2;
		}
	}
	if (!server && !npool_files)
		return bad("missing %s", "--server ADDR or --servers FILE");
	if (memcached) {
		if (npool_files || replicas)
			return bad("--servers and --replicas are for memory servers (%s)",
				   "memcached spreads pages over its fleet itself");
		for (size_t i = 0; i < nserver_args; i++) {
			if (strlen(mcservers) + strlen(server_args[i]) + 2 > sizeof(mcservers))
				return bad("--server: too many servers (%zu)", nserver_args);
			if (i)
				strcat(mcservers, ",");
			strcat(mcservers, server_args[i]);
		}
		server = mcservers;
		for (char *a = mcservers; *a;) {
			size_t n = strcspn(a, ",");
			char *colon = memrchr(a, ':', n), *end = NULL;
			unsigned long port = colon ? strtoul(colon + 1, &end, 10) : 0;
			if (!colon || colon == a || end != a + n || !port || port > 65535)
				return bad("--server %.*s: a memcached is HOST:PORT", (int)n, a);
			a += n + (a[n] == ',');
		}
		if (keyfile)
			return bad("--key-file: memcached has no client keys (%s)",
				   "use it with memory servers");
		/* The name prefixes memcached keys: no spaces, controls, at most
		 * 182 bytes (store_memcached.c). */
		for (const char *p = name ? name : ""; *p; p++)
			if ((unsigned char)*p <= ' ' || *p == 0x7f)
				return bad("--name: no spaces or control characters (%s)",
					   "it prefixes memcached keys");
		if (name && strlen(name) > 182)
			return bad("--name: at most 182 bytes (%s)", "it prefixes memcached keys");
	}
	if (!local)
		return bad("missing %s", "--local SIZE");
	int r = parse_local(local, &budget);
	if (r)
		return r;
	if (optind >= argc)
		return bad("no program to run: %s", "put it after --");
	if (trace) {
		/* A trace that cannot be written: say so before the program runs. */
		int tfd = open(trace, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (tfd < 0) {
			fprintf(stderr, PROG ": cannot write the trace %s: %s\n", trace,
				strerror(errno));
			return 2;
		}
		close(tfd);
	}

	char defname[64];
	if (!name) {
		char host[24] = "host";
		(void)gethostname(host, sizeof(host) - 1);
		host[sizeof(host) - 1] = 0;
		for (char *p = host; *p; p++)
			if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			      (*p >= '0' && *p <= '9') || *p == '-' || *p == '.'))
				*p = '-';
		snprintf(defname, sizeof(defname), "rsa-%s-%d", host, (int)getpid());
		name = defname;
	}
	uint8_t key[SDRSA_KEY_SIZE];
	char keyhex[2 * SDRSA_KEY_SIZE + 1];
	if (keyfile) {
		r = sdrsa_key_load(keyfile, name, key);
		if (r < 0) {
			fprintf(stderr, PROG ": cannot load the key of '%s' from %s: %s\n", name,
				keyfile, strerror(-r));
			return 1;
		}
		sdrsa_hex_encode(key, sizeof(key), keyhex);
	}

	/* A pool: more than one server, a pool file or --replicas. */
	static struct poolconf pool;
	int is_pool = !memcached && (nserver_args > 1 || npool_files || replicas > 0);
	char poolerr[512];
	for (size_t i = 0; is_pool && i < nserver_args; i++)
		if (poolconf_add(&pool, server_args[i], 0, NULL, poolerr, sizeof(poolerr)) < 0)
			return bad("--server: %s", poolerr);
	for (size_t i = 0; i < npool_files; i++) {
		r = poolconf_load(&pool, pool_files[i], name, poolerr, sizeof(poolerr));
		if (r < 0) {
			fprintf(stderr, PROG ": %s\n", poolerr);
			return r == -EINVAL || r == -EEXIST || r == -E2BIG ? 2 : 1;
		}
	}
	if (is_pool) {
		unsigned rep = replicas ? (unsigned)replicas : pool.n >= 2 ? 2 : 1;
		if (rep > pool.n)
			return bad("--replicas %u: the pool has only %zu server%s", rep, pool.n,
				   pool.n == 1 ? "" : "s");
		r = rsa_pool_check(&pool, name, keyfile ? key : NULL, rep);
		if (r)
			return r;
	}

	char preload[PATH_MAX];
	if (find_preload(preload, sizeof(preload)) < 0) {
		fprintf(stderr, PROG ": cannot find libsdrsa-preload.so (looked at %s); set "
				"SDRSA_PRELOAD\n",
			preload);
		return 1;
	}
	int ufd = (int)syscall(SYS_userfaultfd, O_CLOEXEC);
	if (ufd < 0) {
		fprintf(stderr, PROG ": userfaultfd is not available (%s); run as root or set "
				"vm.unprivileged_userfaultfd=1\n",
			strerror(errno));
		return 1;
	}
	close(ufd);

	/* The servers must answer before the program starts. */
	if (memcached) {
		char why[256];
		r = store_memcached_check(server, 3000, 1, why, sizeof(why));
		if (r < 0) {
			fprintf(stderr, PROG ": %s: %s\n",
				r == -EMSGSIZE ? "cannot use memcached" : "cannot reach memcached",
				why);
			return 1;
		}
	}
	struct sdrsa_client_config cc = {
		.address = server,
		.name = name,
		.key = keyfile ? key : NULL,
		.timeout_ms = 3000,
	};
	struct sdrsa_client *cl = NULL;
	r = memcached || is_pool ? 0 : sdrsa_client_connect(&cc, &cl);
	if (r < 0) {
		fprintf(stderr, PROG ": cannot reach memory server %s: %s\n", server, strerror(-r));
		return 1;
	}
	if (!is_pool)
		sdrsa_client_free(cl);

	fflush(NULL);
	g_child = fork();
	if (g_child < 0) {
		fprintf(stderr, PROG ": fork: %s\n", strerror(errno));
		return 1;
	}
	if (g_child == 0) {
		set_env_u64("SDRSA_STATS_PID", (uint64_t)getpid());
		if (is_pool) {
			char *enc = poolconf_encode(&pool);
			if (!enc) {
				fprintf(stderr, PROG ": out of memory\n");
				_exit(1);
			}
			setenv("SDRSA_POOL", enc, 1);
			if (replicas)
				set_env_u64("SDRSA_REPLICAS", replicas);
			setenv("SDRSA_SERVER", "pool", 1);
		} else {
			setenv("SDRSA_SERVER", server, 1);
		}
		setenv("SDRSA_NAME", name, 1);
		set_env_u64("SDRSA_LOCAL", budget);
		set_env_u64("SDRSA_THRESHOLD", threshold);
		setenv("SDRSA_PREFETCH", prefetch, 1);
		if (trace)
			setenv("SDRSA_TRACE", trace, 1);
		setenv("SDRSA_POLICY", policy, 1);
		set_env_u64("SDRSA_RETRY_MS", retry);
		if (!is_pool || timeout_set)
			set_env_u64("SDRSA_TIMEOUT_MS", timeout);
		/* rsa-app frees the namespace once the program is gone (on
		 * memcached through the key ranges the engines record there). */
		setenv("SDRSA_FREE_AT_EXIT", "0", 1);
		if (memcached)
			setenv("SDRSA_BACKEND", "memcached", 1);
		if (stats)
			setenv("SDRSA_STATS", "1", 1);
		if (interval)
			set_env_u64("SDRSA_STATS_INTERVAL_MS", interval);
		if (json)
			setenv("SDRSA_STATS_JSON", json, 1);
		if (keyfile)
			setenv("SDRSA_KEY", keyhex, 1);
		const char *old = getenv("LD_PRELOAD");
		if (old && *old) {
			size_t n = strlen(preload) + strlen(old) + 2;
			char *both = malloc(n);
			if (both) {
				snprintf(both, n, "%s:%s", preload, old);
				setenv("LD_PRELOAD", both, 1);
			}
		} else {
			setenv("LD_PRELOAD", preload, 1);
		}
		execvp(argv[optind], &argv[optind]);
		fprintf(stderr, PROG ": cannot run %s: %s\n", argv[optind], strerror(errno));
		_exit(127);
	}
	struct sigaction sa = {.sa_handler = forward};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGQUIT, &sa, NULL);
	int status;
	while (waitpid(g_child, &status, 0) < 0)
		if (errno != EINTR) {
			fprintf(stderr, PROG ": waitpid: %s\n", strerror(errno));
			return 1;
		}

	/* The program is gone: free whatever it left on the server(s). */
	cc.timeout_ms = 2000;
	if (memcached) {
		/* Every server must answer first: libmemcached can trip on one
		 * that stops answering in the middle of buffered deletes. */
		uint64_t deleted = 0;
		char why[256];
		if (store_memcached_check(server, 1000, 0, why, sizeof(why)) < 0)
			fprintf(stderr, PROG ": could not free the program's pages: %s\n", why);
		else if (store_memcached_free_namespace(server, name, 2000, &deleted) < 0)
			fprintf(stderr, PROG ": could not free the program's pages on memcached %s\n",
				server);
	} else if (is_pool) {
		rsa_pool_free_all(&pool, name, keyfile ? key : NULL);
	} else if (sdrsa_client_connect(&cc, &cl) == 0) {
		uint64_t freed = 0;
		if (sdrsa_free_all(cl, &freed) < 0)
			fprintf(stderr, PROG ": could not free the program's pages on %s\n", server);
		sdrsa_client_free(cl);
	} else {
		fprintf(stderr, PROG ": could not reach %s to free the program's pages\n", server);
	}
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status)) {
		int sig = WTERMSIG(status);
		if (sig != SIGINT && sig != SIGTERM && sig != SIGPIPE)
			fprintf(stderr, PROG ": %s killed by signal %d (%s)\n", argv[optind], sig,
				strsignal(sig));
		return 128 + sig;
	}
	return 1;
}
