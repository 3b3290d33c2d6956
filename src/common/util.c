/* SPDX-License-Identifier: MIT */
/*
 * Implementation of src/common/util.h. Parsers are strict: trailing garbage,
 * negative numbers and overflow are errors, because a size typed by an
 * operator that is read wrongly (e.g. "4g b" as 4 bytes) is worse than a
 * refusal.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"

static int parse_scaled(const char *s, const char *const *units, const uint64_t *scales,
			size_t nunits, uint64_t default_scale, uint64_t *out)
{
	char *end;
	double v;
	uint64_t scale = default_scale;

	if (!s || !*s || isspace((unsigned char)*s) || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || !isfinite(v) || v < 0)
		return -EINVAL;
	if (*end) {
		size_t i;
		for (i = 0; i < nunits; i++)
			if (!strcasecmp(end, units[i]))
				break;
		if (i == nunits)
			return -EINVAL;
		scale = scales[i];
	}
	v *= (double)scale;
	if (v >= 18446744073709551616.0)
		return -ERANGE;
	*out = (uint64_t)v;
	return 0;
}

int sdrsa_parse_size(const char *s, uint64_t *out)
{
	static const char *const units[] = { "b", "k", "kb", "kib", "m", "mb", "mib",
					     "g", "gb", "gib", "t", "tb", "tib" };
	static const uint64_t scales[] = { 1, 1ull << 10, 1ull << 10, 1ull << 10,
					   1ull << 20, 1ull << 20, 1ull << 20, 1ull << 30,
					   1ull << 30, 1ull << 30, 1ull << 40, 1ull << 40,
					   1ull << 40 };

	return parse_scaled(s, units, scales, ARRAY_SIZE(units), 1, out);
}

int sdrsa_parse_duration_ms(const char *s, uint64_t *out)
{
	static const char *const units[] = { "ms", "s", "m", "h" };
	static const uint64_t scales[] = { 1, 1000, 60000, 3600000 };

	return parse_scaled(s, units, scales, ARRAY_SIZE(units), 1000, out);
}

int sdrsa_parse_size_or_pct(const char *s, uint64_t whole, uint64_t *out)
{
	size_t n = s ? strlen(s) : 0;
	char *end;
	double pct;

	if (!n || s[n - 1] != '%')
		return sdrsa_parse_size(s, out);
	errno = 0;
	pct = strtod(s, &end);
	/* !(pct > 0) also refuses "nan%" */
	if (errno || end != s + n - 1 || end == s || !(pct > 0) || pct > 100)
		return -EDOM;
	*out = (uint64_t)((double)whole * pct / 100.0);
	return 0;
}

uint64_t sdrsa_machine_ram(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), page_size = sysconf(_SC_PAGESIZE);

	return pages > 0 && page_size > 0 ? (uint64_t)pages * (uint64_t)page_size : 0;
}

int sdrsa_parse_sockaddr(const char *s, int default_port, struct sockaddr_storage *ss,
			 socklen_t *len)
{
	char host[256];
	const char *port_str = NULL;
	char portbuf[16];
	struct addrinfo hints, *res = NULL;
	int rc;

	if (!s || !*s)
		return -EINVAL;
	if (!strncmp(s, "unix:", 5) || s[0] == '/') {
		struct sockaddr_un *sun = (struct sockaddr_un *)ss;
		const char *path = s[0] == '/' ? s : s + 5;

		if (!*path)
			return -EINVAL;
		if (strlen(path) >= sizeof(sun->sun_path))
			return -ENAMETOOLONG;
		memset(sun, 0, sizeof(*sun));
		sun->sun_family = AF_UNIX;
		strcpy(sun->sun_path, path);
		*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1);
		return 0;
	}
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (!close || (size_t)(close - s - 1) >= sizeof(host))
			return -EINVAL;
		memcpy(host, s + 1, (size_t)(close - s - 1));
		host[close - s - 1] = '\0';
		if (close[1] == ':')
			port_str = close + 2;
		else if (close[1])
			return -EINVAL;
	} else {
		const char *colon = strrchr(s, ':');
		size_t hl = colon ? (size_t)(colon - s) : strlen(s);
		if (colon && strchr(s, ':') != colon)
			return -EINVAL; /* bare IPv6 needs brackets */
		if (hl >= sizeof(host))
			return -EINVAL;
		memcpy(host, s, hl);
		host[hl] = '\0';
		if (colon)
			port_str = colon + 1;
	}
	if (port_str) {
		char *end;
		long p = strtol(port_str, &end, 10);
		if (!*port_str || *end || p < 0 || p > 65535)
			return -EINVAL;
	} else {
		snprintf(portbuf, sizeof(portbuf), "%d", default_port);
		port_str = portbuf;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	rc = getaddrinfo(*host ? host : NULL, port_str, &hints, &res);
	if (rc || !res)
		return -EHOSTUNREACH;
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

void sdrsa_format_sockaddr(const struct sockaddr *sa, socklen_t len, char *buf, size_t n)
{
	char ip[INET6_ADDRSTRLEN];

	if (sa->sa_family == AF_UNIX) {
		const struct sockaddr_un *sun = (const struct sockaddr_un *)sa;
		if (len <= offsetof(struct sockaddr_un, sun_path) || !sun->sun_path[0])
			snprintf(buf, n, "unix:(peer)");
		else
			snprintf(buf, n, "unix:%s", sun->sun_path);
	} else if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
		snprintf(buf, n, "%s:%u", ip, ntohs(sin->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
		snprintf(buf, n, "[%s]:%u", ip, ntohs(sin6->sin6_port));
	} else {
		snprintf(buf, n, "(family %d)", sa->sa_family);
	}
}

int sdrsa_sockaddr_is_local(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_UNIX)
		return 1;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
		return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
		const uint8_t *b = sin6->sin6_addr.s6_addr;
		if (IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr))
			return 1;
		return IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr) && b[12] == 127;
	}
	return 0;
}

void sdrsa_log_to(void (*fn)(void *userdata, int level, const char *msg), void *userdata,
		  int level, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (!fn)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fn(userdata, level, msg);
}

uint64_t sdrsa_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int sdrsa_read_full(int fd, void *buf, size_t n)
{
	uint8_t *p = buf;

	while (n) {
		ssize_t r = read(fd, p, n);
		if (r == 0)
			return -ECONNRESET;
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

int sdrsa_write_full(int fd, const void *buf, size_t n)
{
	const uint8_t *p = buf;

	while (n) {
		ssize_t r = send(fd, p, n, MSG_NOSIGNAL);
		if (r < 0 && errno == ENOTSOCK)
			r = write(fd, p, n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

int sdrsa_hex_decode(const char *hex, uint8_t *out, size_t n)
{
	if (strlen(hex) != 2 * n)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		int v = 0;
		for (int j = 0; j < 2; j++) {
			char c = hex[2 * i + j];
			v <<= 4;
			if (c >= '0' && c <= '9')
				v |= c - '0';
			else if (c >= 'a' && c <= 'f')
				v |= c - 'a' + 10;
			else if (c >= 'A' && c <= 'F')
				v |= c - 'A' + 10;
			else
				return -EINVAL;
		}
		out[i] = (uint8_t)v;
	}
	return 0;
}

void sdrsa_hex_encode(const uint8_t *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}
