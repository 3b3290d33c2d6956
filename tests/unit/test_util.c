/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of src/common/util.c: size and duration parsing (units, bad
 * units, signs, overflow), a size or a percentage (--local), the machine's
 * RAM, socket address parsing and formatting (IPv4, [IPv6]:port, Unix
 * paths, bad ports), the loopback test, hex helpers and the full-buffer I/O
 * helpers.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/sysinfo.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/hist.h"
#include "common/util.h"

#define SENTINEL 0x5a5a5a5a5a5a5a5aull

static void size_ok(const char *s, uint64_t want)
{
	uint64_t v = SENTINEL;
	int rc = sdrsa_parse_size(s, &v);

	if (rc != 0 || v != want)
		fail_msg("parse_size(\"%s\") = %d, %llu; want 0, %llu", s, rc,
			 (unsigned long long)v, (unsigned long long)want);
}

static void size_bad(const char *s, int want_rc)
{
	uint64_t v = SENTINEL;
	int rc = sdrsa_parse_size(s, &v);

	if (rc != want_rc)
		fail_msg("parse_size(\"%s\") = %d; want %d", s ? s : "(null)", rc, want_rc);
	if (v != SENTINEL)
		fail_msg("parse_size(\"%s\") wrote its output on error", s ? s : "(null)");
}

static void test_parse_size(void **state)
{
	(void)state;
	size_ok("0", 0);
	size_ok("1", 1);
	size_ok("4096", 4096);
	size_ok("4096B", 4096);
	size_ok("4K", 4096);
	size_ok("4k", 4096);
	size_ok("4KB", 4096);
	size_ok("4KiB", 4096);
	size_ok("4kib", 4096);
	size_ok("512M", 512ull << 20);
	size_ok("512MiB", 512ull << 20);
	size_ok("4G", 4ull << 30);
	size_ok("4GB", 4ull << 30);
	size_ok("1T", 1ull << 40);
	size_ok("100T", 100ull << 40);
	size_ok("1.5G", 3ull << 29);
	size_ok("0.5K", 512);
	size_ok("16777215T", (16777215ull) << 40); /* largest whole T below 2^64 */
}

static void test_parse_size_bad(void **state)
{
	(void)state;
	size_bad(NULL, -EINVAL);
	size_bad("", -EINVAL);
	size_bad("abc", -EINVAL);
	size_bad("G", -EINVAL);
	size_bad("4X", -EINVAL);
	size_bad("4P", -EINVAL);
	size_bad("4GG", -EINVAL);
	size_bad("4 G", -EINVAL);
	size_bad(" 4G", -EINVAL);
	size_bad("4G ", -EINVAL);
	size_bad("4g b", -EINVAL);
	size_bad("4Gi", -EINVAL);
	size_bad("-1", -EINVAL);
	size_bad("-4G", -EINVAL);
	size_bad("-0", -EINVAL);
	size_bad("+4G", -EINVAL);
	size_bad("nan", -EINVAL);
	size_bad("inf", -EINVAL);
	size_bad("1e400", -EINVAL);
	/* overflow */
	size_bad("16777216T", -ERANGE); /* exactly 2^64 */
	size_bad("18446744073709551616", -ERANGE);
	size_bad("99999999999999999999", -ERANGE);
	size_bad("99999999T", -ERANGE);
	size_bad("1e19K", -ERANGE);
}

static void size_pct(const char *s, uint64_t whole, int want_rc, uint64_t want)
{
	uint64_t v = SENTINEL;
	int rc = sdrsa_parse_size_or_pct(s, whole, &v);

	if (rc != want_rc || (rc == 0 && v != want))
		fail_msg("parse_size_or_pct(\"%s\", %llu) = %d, %llu; want %d, %llu",
			 s ? s : "(null)", (unsigned long long)whole, rc, (unsigned long long)v,
			 want_rc, (unsigned long long)want);
	if (rc != 0 && v != SENTINEL)
		fail_msg("parse_size_or_pct(\"%s\") wrote its output on error", s ? s : "(null)");
}

/* rsa-app run --local and rsa-app vm --local: a size, or a share of the
 * machine's or the guest's RAM. */
static void test_parse_size_or_pct(void **state)
{
	const uint64_t ram = 8ull << 30;

	(void)state;
	size_pct("256M", ram, 0, 256ull << 20);
	size_pct("16G", ram, 0, 16ull << 30); /* a size is not capped here */
	size_pct("25%", ram, 0, 2ull << 30);
	size_pct("100%", ram, 0, ram);
	size_pct("12.5%", ram, 0, 1ull << 30);
	size_pct("0.001%", 1000000, 0, 10);
	size_pct("50%", 3, 0, 1); /* rounded down */
	size_pct("1e1%", ram, 0, ram / 10);
	/* a percentage out of range or malformed */
	size_pct("0%", ram, -EDOM, 0);
	size_pct("-5%", ram, -EDOM, 0);
	size_pct("100.5%", ram, -EDOM, 0);
	size_pct("101%", ram, -EDOM, 0);
	size_pct("%", ram, -EDOM, 0);
	size_pct("25 %", ram, -EDOM, 0);
	size_pct("25%%", ram, -EDOM, 0);
	size_pct("x%", ram, -EDOM, 0);
	size_pct("nan%", ram, -EDOM, 0);
	size_pct("inf%", ram, -EDOM, 0);
	size_pct("1e999%", ram, -EDOM, 0);
	/* not a size: the errors of sdrsa_parse_size */
	size_pct("25", ram, 0, 25);
	size_pct("abc", ram, -EINVAL, 0);
	size_pct("", ram, -EINVAL, 0);
	size_pct(NULL, ram, -EINVAL, 0);
	size_pct("25%x", ram, -EINVAL, 0);
	size_pct("16777216T", ram, -ERANGE, 0);
}

/* The RAM sysinfo() reports (what rsa-app used to ask), to the page. */
static void test_machine_ram(void **state)
{
	struct sysinfo si;
	uint64_t ram = sdrsa_machine_ram(), page = (uint64_t)sysconf(_SC_PAGESIZE), want;

	(void)state;
	assert_int_equal(sysinfo(&si), 0);
	want = (uint64_t)si.totalram * si.mem_unit;
	if (ram > want || want - ram >= page)
		fail_msg("machine RAM %llu, sysinfo says %llu", (unsigned long long)ram,
			 (unsigned long long)want);
}

static void dur_ok(const char *s, uint64_t want)
{
	uint64_t v = SENTINEL;
	int rc = sdrsa_parse_duration_ms(s, &v);

	if (rc != 0 || v != want)
		fail_msg("parse_duration(\"%s\") = %d, %llu; want 0, %llu", s, rc,
			 (unsigned long long)v, (unsigned long long)want);
}

static void dur_bad(const char *s)
{
	uint64_t v = SENTINEL;
	int rc = sdrsa_parse_duration_ms(s, &v);

	if (rc >= 0)
		fail_msg("parse_duration(\"%s\") accepted", s ? s : "(null)");
	if (v != SENTINEL)
		fail_msg("parse_duration(\"%s\") wrote its output on error", s ? s : "(null)");
}

static void test_parse_duration(void **state)
{
	(void)state;
	dur_ok("250ms", 250);
	dur_ok("2s", 2000);
	dur_ok("1.5s", 1500);
	dur_ok("1m", 60000);
	dur_ok("1h", 3600000);
	dur_ok("3", 3000); /* bare number: seconds */
	dur_ok("0", 0);
	dur_ok("0.25", 250);
	dur_bad(NULL);
	dur_bad("");
	dur_bad("s");
	dur_bad("ms");
	dur_bad("5x");
	dur_bad("5 s");
	dur_bad("5sec");
	dur_bad("-1s");
	dur_bad("-1");
	dur_bad("+1s");
	dur_bad("1e30h");
}

/* ---- socket addresses ---- */

static void addr_ok(const char *s, int family, const char *ip, int port)
{
	struct sockaddr_storage ss;
	socklen_t len = 0;
	char buf[INET6_ADDRSTRLEN];
	int rc;

	memset(&ss, 0, sizeof(ss));
	rc = sdrsa_parse_sockaddr(s, 2223, &ss, &len);
	if (rc)
		fail_msg("parse_sockaddr(\"%s\") = %d", s, rc);
	assert_int_equal(ss.ss_family, family);
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
		assert_int_equal(len, sizeof(*sin));
		inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf));
		assert_string_equal(buf, ip);
		assert_int_equal(ntohs(sin->sin_port), port);
	} else if (family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
		assert_int_equal(len, sizeof(*sin6));
		inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof(buf));
		assert_string_equal(buf, ip);
		assert_int_equal(ntohs(sin6->sin6_port), port);
	} else {
		struct sockaddr_un *sun = (struct sockaddr_un *)&ss;
		assert_string_equal(sun->sun_path, ip);
		assert_int_equal(len, offsetof(struct sockaddr_un, sun_path) + strlen(ip) + 1);
	}
}

static void addr_bad(const char *s, int want_rc)
{
	struct sockaddr_storage ss;
	socklen_t len = 0;
	int rc = sdrsa_parse_sockaddr(s, 2223, &ss, &len);

	if (rc != want_rc)
		fail_msg("parse_sockaddr(\"%s\") = %d; want %d", s ? s : "(null)", rc, want_rc);
}

static void test_parse_sockaddr(void **state)
{
	char longpath[300];

	(void)state;
	addr_ok("127.0.0.1:8080", AF_INET, "127.0.0.1", 8080);
	addr_ok("127.0.0.1", AF_INET, "127.0.0.1", 2223);
	addr_ok("10.1.2.3:1", AF_INET, "10.1.2.3", 1);
	addr_ok("0.0.0.0:65535", AF_INET, "0.0.0.0", 65535);
	addr_ok("[::1]:443", AF_INET6, "::1", 443);
	addr_ok("[::1]", AF_INET6, "::1", 2223);
	addr_ok("[fe80::1:2]:9", AF_INET6, "fe80::1:2", 9);
	addr_ok("[::ffff:127.0.0.1]:7", AF_INET6, "::ffff:127.0.0.1", 7);
	addr_ok("unix:/tmp/sdrsa.sock", AF_UNIX, "/tmp/sdrsa.sock", 0);
	addr_ok("/run/sdrsa/mem.sock", AF_UNIX, "/run/sdrsa/mem.sock", 0);
	addr_ok("unix:relative.sock", AF_UNIX, "relative.sock", 0);
	addr_ok("127.0.0.1:0", AF_INET, "127.0.0.1", 0); /* listener: any free port */

	/* bad ports */
	addr_bad("127.0.0.1:65536", -EINVAL);
	addr_bad("127.0.0.1:99999999999", -EINVAL);
	addr_bad("127.0.0.1:-1", -EINVAL);
	addr_bad("127.0.0.1:abc", -EINVAL);
	addr_bad("127.0.0.1:80x", -EINVAL);
	addr_bad("127.0.0.1:", -EINVAL);
	addr_bad("[::1]:", -EINVAL);
	addr_bad("[::1]:70000", -EINVAL);
	/* bad forms */
	addr_bad(NULL, -EINVAL);
	addr_bad("", -EINVAL);
	addr_bad("unix:", -EINVAL);
	addr_bad("::1", -EINVAL); /* IPv6 needs brackets */
	addr_bad("::1:80", -EINVAL);
	addr_bad("[::1", -EINVAL);
	addr_bad("[::1]80", -EINVAL);
	addr_bad("[::1]x:80", -EINVAL);
	/* path longer than sun_path */
	memset(longpath, 'p', sizeof(longpath));
	memcpy(longpath, "unix:/", 6);
	longpath[sizeof(longpath) - 1] = '\0';
	addr_bad(longpath, -ENAMETOOLONG);
	addr_bad(longpath + 5, -ENAMETOOLONG);
}

static void fmt_roundtrip(const char *s, const char *want)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char buf[200];

	assert_int_equal(sdrsa_parse_sockaddr(s, 2223, &ss, &len), 0);
	sdrsa_format_sockaddr((struct sockaddr *)&ss, len, buf, sizeof(buf));
	assert_string_equal(buf, want);
}

static void test_format_sockaddr(void **state)
{
	struct sockaddr_un sun;
	char buf[16];

	(void)state;
	fmt_roundtrip("127.0.0.1:80", "127.0.0.1:80");
	fmt_roundtrip("127.0.0.1", "127.0.0.1:2223");
	fmt_roundtrip("[::1]:443", "[::1]:443");
	fmt_roundtrip("unix:/tmp/x.sock", "unix:/tmp/x.sock");
	fmt_roundtrip("/tmp/x.sock", "unix:/tmp/x.sock");
	/* an unnamed Unix peer */
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	sdrsa_format_sockaddr((struct sockaddr *)&sun, sizeof(sa_family_t), buf, sizeof(buf));
	assert_string_equal(buf, "unix:(peer)");
	/* truncation stays NUL-terminated */
	{
		struct sockaddr_storage ss;
		socklen_t len;
		char small[6];
		assert_int_equal(sdrsa_parse_sockaddr("127.0.0.1:80", 0, &ss, &len), 0);
		sdrsa_format_sockaddr((struct sockaddr *)&ss, len, small, sizeof(small));
		assert_int_equal(strlen(small), sizeof(small) - 1);
	}
}

static int is_local(const char *s)
{
	struct sockaddr_storage ss;
	socklen_t len;

	assert_int_equal(sdrsa_parse_sockaddr(s, 1, &ss, &len), 0);
	return sdrsa_sockaddr_is_local((struct sockaddr *)&ss);
}

static void test_is_local(void **state)
{
	struct sockaddr sa;

	(void)state;
	assert_true(is_local("127.0.0.1:1"));
	assert_true(is_local("127.1.2.3:1"));
	assert_true(is_local("127.255.255.254:1"));
	assert_true(is_local("[::1]:1"));
	assert_true(is_local("[::ffff:127.0.0.1]:1"));
	assert_true(is_local("[::ffff:127.9.9.9]:1"));
	assert_true(is_local("unix:/tmp/s"));
	assert_true(is_local("localhost:1")); /* /etc/hosts, no DNS */
	assert_false(is_local("0.0.0.0:1"));
	assert_false(is_local("10.0.0.1:1"));
	assert_false(is_local("128.0.0.1:1"));
	assert_false(is_local("126.255.255.255:1"));
	assert_false(is_local("192.168.1.1:1"));
	assert_false(is_local("[::]:1"));
	assert_false(is_local("[::2]:1"));
	assert_false(is_local("[::ffff:10.0.0.1]:1"));
	assert_false(is_local("[2001:db8::1]:1"));
	assert_false(is_local("[::127.0.0.1]:1")); /* v4-compatible, not mapped */
	memset(&sa, 0, sizeof(sa));
	sa.sa_family = AF_PACKET;
	assert_false(sdrsa_sockaddr_is_local(&sa));
}

/* ---- hex ---- */

static void test_hex(void **state)
{
	uint8_t in[32], out[32];
	char hex[65];

	(void)state;
	for (int i = 0; i < 32; i++)
		in[i] = (uint8_t)(i * 9 + 250);
	sdrsa_hex_encode(in, sizeof(in), hex);
	assert_int_equal(strlen(hex), 64);
	for (int i = 0; i < 64; i++)
		assert_true((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f'));
	assert_int_equal(sdrsa_hex_decode(hex, out, sizeof(out)), 0);
	assert_memory_equal(in, out, sizeof(in));

	assert_int_equal(sdrsa_hex_decode("00ff7FaB", out, 4), 0);
	assert_int_equal(out[0], 0x00);
	assert_int_equal(out[1], 0xff);
	assert_int_equal(out[2], 0x7f);
	assert_int_equal(out[3], 0xab);
	assert_int_equal(sdrsa_hex_decode("00ff7Fa", out, 4), -EINVAL);
	assert_int_equal(sdrsa_hex_decode("00ff7FaB0", out, 4), -EINVAL);
	assert_int_equal(sdrsa_hex_decode("00ff7FaG", out, 4), -EINVAL);
	assert_int_equal(sdrsa_hex_decode("0xff7Fab", out, 4), -EINVAL);
	assert_int_equal(sdrsa_hex_decode(" 0ff7Fab", out, 4), -EINVAL);
	assert_int_equal(sdrsa_hex_decode("", out, 0), 0);
}

/* ---- I/O helpers ---- */

static void test_io_full(void **state)
{
	int sv[2], p[2];
	uint8_t buf[100000], back[100000];

	(void)state;
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i ^ (i >> 8));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	/* small chunks through a socket: write in a child-free way by
	 * interleaving within the socket buffer */
	assert_int_equal(sdrsa_write_full(sv[0], buf, 1000), 0);
	assert_int_equal(sdrsa_read_full(sv[1], back, 1000), 0);
	assert_memory_equal(buf, back, 1000);
	/* EOF in the middle of a read */
	assert_int_equal(sdrsa_write_full(sv[0], buf, 10), 0);
	close(sv[0]);
	assert_int_equal(sdrsa_read_full(sv[1], back, 20), -ECONNRESET);
	/* writing to a closed peer fails without SIGPIPE */
	assert_int_equal(sdrsa_write_full(sv[1], buf, 10) < 0, 1);
	close(sv[1]);

	/* a pipe is not a socket: the helper falls back to write() */
	assert_int_equal(pipe(p), 0);
	assert_int_equal(sdrsa_write_full(p[1], buf, 4096), 0);
	assert_int_equal(sdrsa_read_full(p[0], back, 4096), 0);
	assert_memory_equal(buf, back, 4096);
	close(p[1]);
	assert_int_equal(sdrsa_read_full(p[0], back, 1), -ECONNRESET);
	close(p[0]);
	assert_int_equal(sdrsa_read_full(p[0], back, 1), -EBADF);
}

static void test_now(void **state)
{
	uint64_t a, b;

	(void)state;
	a = sdrsa_now_ns();
	usleep(2000);
	b = sdrsa_now_ns();
	assert_true(b > a);
	assert_true(b - a >= 2000000u);
	assert_true(sdrsa_now_ms() >= a / 1000000u);
}

/* The latency histogram used by the engine and the VM agent: exact below 8,
 * within its 12.5 % bucket width above, never above the true maximum. */
static void test_hist(void **state)
{
	static struct sdrsa_hist h;

	(void)state;
	memset(&h, 0, sizeof(h));
	assert_int_equal(sdrsa_hist_pct(&h, 50), 0);
	for (uint64_t v = 1; v <= 1000; v++)
		sdrsa_hist_add(&h, v * 1000);
	assert_int_equal(h.n, 1000);
	assert_int_equal(h.max, 1000000);
	for (int pct = 10; pct <= 90; pct += 10) {
		uint64_t got = sdrsa_hist_pct(&h, pct), want = (uint64_t)pct * 10 * 1000;
		if (got > want || got < want - want / 8)
			fail_msg("p%d = %llu, want within 12.5%% below %llu", pct,
				 (unsigned long long)got, (unsigned long long)want);
	}
	assert_true(sdrsa_hist_pct(&h, 100) <= h.max);
	memset(&h, 0, sizeof(h));
	for (uint64_t v = 0; v < 8; v++)
		sdrsa_hist_add(&h, v);
	assert_int_equal(sdrsa_hist_pct(&h, 0), 0);
	assert_int_equal(sdrsa_hist_pct(&h, 99), 7);
	sdrsa_hist_add(&h, UINT64_MAX);
	assert_int_equal(h.max, UINT64_MAX);
	assert_true(sdrsa_hist_idx(UINT64_MAX) < SDRSA_HIST_BUCKETS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_size),
		cmocka_unit_test(test_parse_size_bad),
		cmocka_unit_test(test_parse_size_or_pct),
		cmocka_unit_test(test_machine_ram),
		cmocka_unit_test(test_parse_duration),
		cmocka_unit_test(test_hist),
		cmocka_unit_test(test_parse_sockaddr),
		cmocka_unit_test(test_format_sockaddr),
		cmocka_unit_test(test_is_local),
		cmocka_unit_test(test_hex),
		cmocka_unit_test(test_io_full),
		cmocka_unit_test(test_now),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
