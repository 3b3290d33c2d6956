/* SPDX-License-Identifier: MIT */
/*
 * memory-server SIZE [options]: the sdrsa memory server. A thin main(): it
 * parses options, prints the stdout contract, turns signals into requests and
 * writes log lines; everything else is in src/server (server.h).
 *
 * stdout contract (tests, bench and demo rely on it; each line flushed):
 *     listening on ADDR        one per listener, with the real port
 *     pool ...                 one human summary line
 *     ready
 * Everything else goes to stderr as timestamped log lines.
 *
 * Exit status: 0 after a clean shutdown (SIGTERM, SIGINT), 1 when the server
 * cannot start (pool, keys, sockets), 2 for bad options.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "common/util.h"
#include "server/server.h"

#define PROG "memory-server"

static struct sdrsa_server *g_server;
/* Listener addresses from the command line; --unix ones are allocated. */
static const char **g_listen;
static char **g_unix;
static size_t g_nunix;

/* clang-format off: the help text is laid out as it prints */
static void usage(FILE *f)
{
	fprintf(
	    f,
	    "Usage: " PROG " SIZE [options]\n"
	    "       " PROG " --gen-key NAME\n"
	    "\n"
	    "Serve a pool of SIZE bytes of RAM (K, M, G, T suffixes, powers of 1024) as\n"
	    "4 KiB pages to sdrsa clients. The pool is reserved at start.\n"
	    "\n"
	    "Options:\n"
	    "  -l, --listen HOST:PORT    listen on TCP (repeatable; [V6ADDR]:PORT for IPv6;\n"
	    "                            port 0: any free port). Default 127.0.0.1:%d when\n"
	    "                            neither --listen nor --unix is given\n"
	    "  -u, --unix PATH           listen on a Unix socket (repeatable); a stale socket\n"
	    "                            file is replaced, the file is removed on exit\n"
	    "  -k, --key-file FILE       require clients to prove a pre-shared key; FILE holds\n"
	    "                            'NAME HEX64' lines and must be mode 600. SIGHUP\n"
	    "                            reloads it\n"
	    "      --insecure            without --key-file, accept clients from any address\n"
	    "                            (default: loopback and Unix-socket clients only)\n"
	    "  -t, --threads N           worker threads (default: online CPUs, at most %u)\n"
	    "  -q, --max-client-pages N  quota per client name: N pages, or a size such as 1G\n"
	    "                            (default: none)\n"
	    "      --max-conns N         open connections at most; more are refused with BUSY\n"
	    "                            (default %u)\n"
	    "      --io-timeout DUR      close a connection stuck in the middle of a frame or\n"
	    "                            the handshake, or not reading replies, for DUR\n"
	    "                            (250ms, 10s, 1m; default 10s)\n"
	    "      --busy-poll US        after activity, poll for US microseconds before\n"
	    "                            sleeping: saves a wake-up per request at the cost of\n"
	    "                            CPU (default %u; 0: off)\n"
	    "      --lock                populate and lock the pool in RAM (mlock); needs a\n"
	    "                            large enough RLIMIT_MEMLOCK\n"
	    "      --gen-key NAME        print a new key line 'NAME HEX64' for a key file and\n"
	    "                            exit\n"
	    "      --quiet               log only warnings and errors (no connect lines)\n"
	    "  -h, --help                show this help and exit\n"
	    "  -V, --version             show the version and exit\n"
	    "\n"
	    "Signals: SIGTERM/SIGINT shut down cleanly; SIGUSR1 logs page counts per client;\n"
	    "SIGHUP reloads the key file; SIGUSR2 drains: refuse new pages, exit once the\n"
	    "clients (a pool) have moved theirs away. See memory-server(1), docs/OPERATIONS.md.\n",
	    SDRSA_DEFAULT_PORT, SDRSA_SERVER_MAX_THREADS_DEFAULT, SDRSA_SERVER_MAX_CONNS,
	    SDRSA_SERVER_BUSY_POLL_US);
}
/* clang-format on */

static void __attribute__((noreturn, format(printf, 1, 2))) die_usage(const char *fmt, ...)
{
	va_list ap;

	fputs(PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

static void log_line(void *userdata, int level, const char *msg)
{
	char line[768], ts[32];
	struct timespec now;
	struct tm tm;
	const char *tag = level <= LOG_ERR ? "error: " : level == LOG_WARNING ? "warning: " : "";
	int n;

	(void)userdata;
	clock_gettime(CLOCK_REALTIME, &now);
	localtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	n = snprintf(line, sizeof(line), "%s.%03ld " PROG "[%d]: %s%s\n", ts, now.tv_nsec / 1000000,
		     (int)getpid(), tag, msg);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line)) {
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	/* One write per line, so lines from different threads never mix. */
	(void)!write(STDERR_FILENO, line, (size_t)n);
}

static unsigned long parse_uint(const char *opt, const char *s, unsigned long min,
				unsigned long max)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (!*s || *end || errno || s[0] == '-' || v < min || v > max)
		die_usage("%s '%s': give a whole number from %lu to %lu", opt, s, min, max);
	return v;
}

static uint64_t parse_quota(const char *s)
{
	uint64_t bytes;
	size_t i;

	for (i = 0; s[i] >= '0' && s[i] <= '9'; i++)
		;
	if (i && !s[i])
		return parse_uint("--max-client-pages", s, 1, ~0ul);
	if (sdrsa_parse_size(s, &bytes) || bytes < SDRSA_PAGE_SIZE)
		die_usage("--max-client-pages '%s': give a number of pages or a size of at least "
			  "4K, such as 1G",
			  s);
	return bytes / SDRSA_PAGE_SIZE;
}

static int gen_key(const char *name)
{
	uint8_t key[SDRSA_KEY_SIZE];
	char hex[2 * SDRSA_KEY_SIZE + 1];

	if (!sdrsa_name_valid(name))
		die_usage("--gen-key '%s': a client name is 1-64 characters of A-Z a-z 0-9 . _ -",
			  name);
	if (sodium_init() < 0) {
		fprintf(stderr, PROG ": libsodium failed to initialise\n");
		return 1;
	}
	randombytes_buf(key, sizeof(key));
	sdrsa_hex_encode(key, sizeof(key), hex);
	sodium_memzero(key, sizeof(key));
	printf("%s %s\n", name, hex);
	sodium_memzero(hex, sizeof(hex));
	return fflush(stdout) ? 1 : 0;
}

static void on_stop(int sig)
{
	(void)sig;
	if (g_server)
		sdrsa_server_stop(g_server);
}

static void on_usr1(int sig)
{
	(void)sig;
	if (g_server)
		sdrsa_server_request_dump(g_server);
}

static void on_usr2(int sig)
{
	(void)sig;
	if (g_server)
		sdrsa_server_request_drain(g_server);
}

static void on_hup(int sig)
{
	(void)sig;
	if (g_server)
		sdrsa_server_request_reload(g_server);
}

static void install_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_stop;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = on_usr2;
	sigaction(SIGUSR2, &sa, NULL);
	sa.sa_handler = on_hup;
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
}

enum {
	OPT_INSECURE = 256,
	OPT_MAX_CONNS,
	OPT_IO_TIMEOUT,
	OPT_BUSY_POLL,
	OPT_LOCK,
	OPT_GEN_KEY,
	OPT_QUIET,
};

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"listen", required_argument, NULL, 'l'},
	    {"unix", required_argument, NULL, 'u'},
	    {"key-file", required_argument, NULL, 'k'},
	    {"insecure", no_argument, NULL, OPT_INSECURE},
	    {"threads", required_argument, NULL, 't'},
	    {"max-client-pages", required_argument, NULL, 'q'},
	    {"max-conns", required_argument, NULL, OPT_MAX_CONNS},
	    {"io-timeout", required_argument, NULL, OPT_IO_TIMEOUT},
	    {"busy-poll", required_argument, NULL, OPT_BUSY_POLL},
	    {"lock", no_argument, NULL, OPT_LOCK},
	    {"gen-key", required_argument, NULL, OPT_GEN_KEY},
	    {"quiet", no_argument, NULL, OPT_QUIET},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	struct sdrsa_server_config cfg = {
	    .busy_poll_us = SDRSA_SERVER_BUSY_POLL_US,
	    .log = log_line,
	    .log_level = LOG_INFO,
	};
	char err[512], line[512];
	struct sdrsa_stats st;
	int opt, rc;

	/* Every argument could be a listener; unix paths get a "unix:" prefix. */
	g_listen = calloc((size_t)argc, sizeof(*g_listen));
	g_unix = calloc((size_t)argc, sizeof(*g_unix));
	if (!g_listen || !g_unix)
		return 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":l:u:k:t:q:hV", opts, NULL)) != -1) {
		switch (opt) {
		case 'l':
			g_listen[cfg.nlisten++] = optarg;
			break;
		case 'u': {
			char *a = malloc(strlen(optarg) + 6);

			if (!a)
				return 1;
			if (!*optarg)
				die_usage("--unix needs a path");
			sprintf(a, "unix:%s", optarg);
			g_unix[g_nunix++] = a;
			g_listen[cfg.nlisten++] = a;
			break;
		}
		case 'k':
			cfg.key_file = optarg;
			break;
		case OPT_INSECURE:
			cfg.insecure = 1;
			break;
		case 't':
			cfg.threads = (unsigned)parse_uint("--threads", optarg, 1, 256);
			break;
		case 'q':
			cfg.quota_pages = parse_quota(optarg);
			break;
		case OPT_MAX_CONNS:
			cfg.max_conns = (unsigned)parse_uint("--max-conns", optarg, 1, 1000000);
			break;
		case OPT_IO_TIMEOUT:
			if (sdrsa_parse_duration_ms(optarg, &cfg.io_timeout_ms) ||
			    cfg.io_timeout_ms == 0)
				die_usage(
				    "--io-timeout '%s': give a positive duration such as 250ms, "
				    "10s or 1m",
				    optarg);
			break;
		case OPT_BUSY_POLL:
			cfg.busy_poll_us = (unsigned)parse_uint("--busy-poll", optarg, 0, 1000000);
			break;
		case OPT_LOCK:
			cfg.lock = 1;
			break;
		case OPT_GEN_KEY:
			return gen_key(optarg);
		case OPT_QUIET:
			cfg.log_level = LOG_NOTICE;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf(PROG " (sdrsa) %s\n", sdrsa_server_version());
			return 0;
		case ':':
			die_usage("%s needs a value: see " PROG " --help", argv[optind - 1]);
		default:
			if (optopt)
				die_usage("unknown option -%c: see " PROG " --help", optopt);
			die_usage("unknown option %s: see " PROG " --help", argv[optind - 1]);
		}
	}
	if (optind >= argc)
		die_usage("missing SIZE, the pool size (e.g. " PROG " 4G): see " PROG " --help");
	if (optind + 1 < argc)
		die_usage("unexpected argument '%s' after SIZE: see " PROG " --help",
			  argv[optind + 1]);
	if (sdrsa_parse_size(argv[optind], &cfg.pool_bytes))
		die_usage("SIZE '%s': give a size such as 512M, 4G or 1T", argv[optind]);
	if (cfg.pool_bytes < SDRSA_PAGE_SIZE)
		die_usage("SIZE '%s' is less than one 4 KiB page: give a size such as 512M or 4G",
			  argv[optind]);
	for (size_t i = 0; i < cfg.nlisten; i++)
		if (sdrsa_server_check_address(g_listen[i], err, sizeof(err)))
			die_usage("%s", err);
	cfg.listen = g_listen;

	rc = sdrsa_server_new(&cfg, err, sizeof(err), &g_server);
	if (rc) {
		fprintf(stderr, PROG ": %s\n", err);
		return 1;
	}
	install_signals();
	for (size_t i = 0; i < sdrsa_server_listeners(g_server); i++) {
		sdrsa_server_listener_name(g_server, i, line, sizeof(line));
		printf("listening on %s\n", line);
		fflush(stdout);
	}
	sdrsa_server_describe(g_server, line, sizeof(line));
	printf("%s\n", line);
	fflush(stdout);
	printf("ready\n");
	fflush(stdout);

	rc = sdrsa_server_run(g_server);
	sdrsa_server_stats(g_server, &st);
	snprintf(line, sizeof(line),
		 "shutdown after %.1f s: %llu connections served; %llu gets (%llu misses), %llu "
		 "puts, %llu swaps, %llu frees; refused: %llu pool full, %llu quota, %llu bad "
		 "frames, %llu auth failures; %llu bytes in, %llu bytes out; %llu pages in use",
		 (double)st.uptime_ms / 1000.0, (unsigned long long)sdrsa_server_accepted(g_server),
		 (unsigned long long)st.gets, (unsigned long long)st.misses,
		 (unsigned long long)st.puts, (unsigned long long)st.swaps,
		 (unsigned long long)st.frees, (unsigned long long)st.pool_full,
		 (unsigned long long)st.quota_refused, (unsigned long long)st.bad_frames,
		 (unsigned long long)st.auth_failures, (unsigned long long)st.bytes_in,
		 (unsigned long long)st.bytes_out,
		 (unsigned long long)(st.used_pages + st.zero_pages));
	log_line(NULL, LOG_NOTICE, line);
	sdrsa_server_free(g_server);
	for (size_t i = 0; i < g_nunix; i++)
		free(g_unix[i]);
	free(g_unix);
	free(g_listen);
	return rc ? 1 : 0;
}
