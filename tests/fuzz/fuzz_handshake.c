/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the handshake and stats payload decoders and the name
 * check. Input: one selector byte, then the payload. Whatever decodes must
 * re-encode to the same bytes (HELLO, CHALLENGE, WELCOME, and STATS when it
 * carries exactly the fields this version knows), and a decoded name is
 * always valid.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sdrsa/protocol.h>

#define FUZZ_ASSERT(c)                                                             \
	do {                                                                       \
		if (!(c))                                                          \
			abort();                                                   \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int name_chars_ok(const char *s)
{
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '.' || *s == '_' || *s == '-'))
			return 0;
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t out[SDRSA_STATS_SIZE + SDRSA_HELLO_MAX + 64];
	const uint8_t *in;
	uint8_t *copy;
	size_t n;

	if (size < 1)
		return 0;
	in = data + 1;
	n = size - 1;
	/* an exact-size heap copy: reads past the end are caught */
	copy = malloc(n ? n : 1);
	if (!copy)
		return 0;
	memcpy(copy, in, n);

	switch (data[0] % 5) {
	case 0: {
		struct sdrsa_hello m;
		if (sdrsa_hello_decode(copy, n, &m) == 0) {
			uint8_t mac[SDRSA_MAC_SIZE], key[SDRSA_KEY_SIZE] = { 1 };
			FUZZ_ASSERT(sdrsa_name_valid(m.name));
			FUZZ_ASSERT(strlen(m.name) >= 1 && strlen(m.name) <= SDRSA_NAME_MAX);
			FUZZ_ASSERT(name_chars_ok(m.name));
			FUZZ_ASSERT(sdrsa_hello_encode(&m, out) == n);
			FUZZ_ASSERT(!memcmp(out, copy, n));
			sdrsa_auth_mac(key, 0, m.nonce, m.nonce, m.name, mac);
		}
		break;
	}
	case 1: {
		struct sdrsa_challenge ch;
		if (sdrsa_challenge_decode(copy, n, &ch) == 0) {
			FUZZ_ASSERT(sdrsa_challenge_encode(&ch, out) == n);
			FUZZ_ASSERT(!memcmp(out, copy, n));
		}
		break;
	}
	case 2: {
		struct sdrsa_welcome w;
		if (sdrsa_welcome_decode(copy, n, &w) == 0) {
			FUZZ_ASSERT(sdrsa_welcome_encode(&w, out) == n);
			FUZZ_ASSERT(!memcmp(out, copy, n));
		}
		break;
	}
	case 3: {
		struct sdrsa_stats s, s2;
		if (sdrsa_stats_decode(copy, n, &s) == 0) {
			size_t k = sdrsa_stats_encode(&s, out);
			FUZZ_ASSERT(k == SDRSA_STATS_SIZE);
			FUZZ_ASSERT(sdrsa_stats_decode(out, k, &s2) == 0);
			FUZZ_ASSERT(!memcmp(&s, &s2, sizeof(s)));
			if (n == SDRSA_STATS_SIZE)
				FUZZ_ASSERT(!memcmp(out, copy, n));
		}
		break;
	}
	default: {
		char name[256];
		size_t k = n < sizeof(name) - 1 ? n : sizeof(name) - 1;
		memcpy(name, copy, k);
		name[k] = '\0';
		if (sdrsa_name_valid(name)) {
			FUZZ_ASSERT(strlen(name) >= 1 && strlen(name) <= SDRSA_NAME_MAX);
			FUZZ_ASSERT(name_chars_ok(name));
		}
		break;
	}
	}
	free(copy);
	return 0;
}
