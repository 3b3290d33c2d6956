// SPDX-License-Identifier: MIT
/*
 * Test helper: print how many pages namespace NAME holds on the memory
 * server at ADDR (one number on stdout). Used by test_rsa_app.sh to check
 * that a program's pages are freed at exit. Exit 0, or 1 with a message.
 *
 * Usage: t_nspages ADDR NAME
 */
#include <stdio.h>
#include <string.h>

#include <sdrsa/client.h>

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: t_nspages ADDR NAME\n");
		return 1;
	}
	struct sdrsa_client_config cc = {.address = argv[1], .name = argv[2], .timeout_ms = 3000};
	struct sdrsa_client *c;
	int r = sdrsa_client_connect(&cc, &c);
	if (r < 0) {
		fprintf(stderr, "t_nspages: connect %s: %s\n", argv[1], strerror(-r));
		return 1;
	}
	struct sdrsa_stats s;
	r = sdrsa_stats(c, &s);
	sdrsa_client_free(c);
	if (r < 0) {
		fprintf(stderr, "t_nspages: stats: %s\n", strerror(-r));
		return 1;
	}
	printf("%llu\n", (unsigned long long)s.ns_pages);
	return 0;
}
