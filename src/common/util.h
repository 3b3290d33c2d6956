/* SPDX-License-Identifier: MIT */
/*
 * Small helpers shared by every layer: parsing of user-facing values (sizes,
 * durations, socket addresses), monotonic time, and full-buffer I/O on
 * blocking descriptors. No global state; nothing here prints.
 */
#ifndef SDRSA_COMMON_UTIL_H
#define SDRSA_COMMON_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* "4G", "512M", "4096", "1.5G" (K/M/G/T, powers of 1024, optional trailing
 * "B" or "iB"). Returns 0, -EINVAL (syntax or unknown unit) or -ERANGE. */
int sdrsa_parse_size(const char *s, uint64_t *out);

/* "250ms", "2s", "1m", or a bare number of seconds. Result in ms. */
int sdrsa_parse_duration_ms(const char *s, uint64_t *out);

/* A size as sdrsa_parse_size, or "PCT%" of whole: a percentage more than 0
 * and at most 100 ("25%", "12.5%"), rounded down to bytes. Returns 0,
 * -EDOM (a malformed or out-of-range percentage), -EINVAL (not a size) or
 * -ERANGE (a size too large); *out is written only on success. */
int sdrsa_parse_size_or_pct(const char *s, uint64_t whole, uint64_t *out);

/* This machine's physical RAM in bytes, or 0 when it cannot be told. */
uint64_t sdrsa_machine_ram(void);

/* Resolve "HOST:PORT", "HOST", "[V6]:PORT", "unix:PATH" or "/PATH" into a
 * sockaddr. default_port applies when no port is given; port 0 is accepted
 * (a listener asks for any free port). Returns 0 or
 * -EINVAL / -ENAMETOOLONG / -EHOSTUNREACH (name did not resolve). */
int sdrsa_parse_sockaddr(const char *s, int default_port, struct sockaddr_storage *ss,
			 socklen_t *len);
/* Format a sockaddr as "1.2.3.4:5", "[::1]:5" or "unix:/path". */
void sdrsa_format_sockaddr(const struct sockaddr *sa, socklen_t len, char *buf, size_t n);
/* True for 127.0.0.0/8, ::1, ::ffff:127.x and Unix sockets. */
int sdrsa_sockaddr_is_local(const struct sockaddr *sa);

uint64_t sdrsa_now_ns(void);
/* Format a message (at most 511 bytes) and hand it to a log callback of the
 * public API (sdrsa_log_fn); nothing happens when fn is NULL. The engine, the
 * pool store and the client library log through it. */
void sdrsa_log_to(void (*fn)(void *userdata, int level, const char *msg), void *userdata,
		  int level, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* splitmix64 (Steele, Lea, Flood): the next number of a fast, seedable
 * pseudo-random sequence kept in *state. Reproducible workloads of the demo,
 * the benchmarks and the trace generator draw from it, so that the same
 * seed gives the same pages everywhere. */
static inline uint64_t sdrsa_splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* MurmurHash3's 64-bit finaliser: spreads the bits of x over the result
 * (hash tables, placement, reproducible pseudo-random page contents). */
static inline uint64_t sdrsa_mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

static inline uint64_t sdrsa_now_ms(void)
{
	return sdrsa_now_ns() / 1000000u;
}

/* Read or write exactly n bytes on a blocking fd, retrying on EINTR.
 * Returns 0, -ECONNRESET on EOF, or -errno. */
int sdrsa_read_full(int fd, void *buf, size_t n);
int sdrsa_write_full(int fd, const void *buf, size_t n);

/* Hex helpers for keys. Return 0 or -EINVAL. */
int sdrsa_hex_decode(const char *hex, uint8_t *out, size_t n);
void sdrsa_hex_encode(const uint8_t *in, size_t n, char *out);

#endif
