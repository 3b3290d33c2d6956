/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the key file parser (src/proto/keyfile.c): valid files with
 * comments and blank lines, each kind of malformed line reported with its
 * line number, lines longer than the parser's buffer, files readable by group
 * or others refused with -EPERM, and the callback's power to stop the parse.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "proto/keyfile.h"

#define KEY_A "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define KEY_B "FFEEDDCCBBAA99887766554433221100ffeeddccbbaa99887766554433221100"

static char dir[64];
static char path[128];

struct seen {
	int n;
	char names[8][SDRSA_NAME_MAX + 1];
	uint8_t keys[8][SDRSA_KEY_SIZE];
	int stop_at; /* return 42 on this (1-based) call; 0: never */
};

static int collect(void *userdata, const char *name, const uint8_t key[SDRSA_KEY_SIZE])
{
	struct seen *s = userdata;

	assert_true(s->n < 8);
	strcpy(s->names[s->n], name);
	memcpy(s->keys[s->n], key, SDRSA_KEY_SIZE);
	s->n++;
	return s->n == s->stop_at ? 42 : 0;
}

static void write_file(const char *text, mode_t mode)
{
	int fd;

	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static int setup(void **state)
{
	(void)state;
	strcpy(dir, "/tmp/sdrsa-keyfile-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(path, sizeof(path), "%s/keys", dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(path);
	rmdir(dir);
	return 0;
}

static void test_valid(void **state)
{
	struct seen s = { 0 };
	int bad = -1;

	(void)state;
	write_file("# sdrsa keys\n"
		   "\n"
		   "alice " KEY_A "\n"
		   "   \t  \n"
		   "  # indented comment\n"
		   "vm-02.rack_1\t" KEY_B "   # trailing comment\n"
		   "last " KEY_A, /* no final newline */
		   0600);
	assert_int_equal(sdrsa_keyfile_parse(path, collect, &s, &bad), 0);
	assert_int_equal(bad, -1); /* untouched on success */
	assert_int_equal(s.n, 3);
	assert_string_equal(s.names[0], "alice");
	assert_string_equal(s.names[1], "vm-02.rack_1");
	assert_string_equal(s.names[2], "last");
	for (unsigned i = 0; i < SDRSA_KEY_SIZE; i++) {
		assert_int_equal(s.keys[0][i], i);
		assert_int_equal(s.keys[1][i], (uint8_t)(0xff - 0x11 * (i % 16)));
	}
	assert_memory_equal(s.keys[2], s.keys[0], SDRSA_KEY_SIZE);

	/* read-only for the owner is fine too */
	s.n = 0;
	write_file("alice " KEY_A "\n", 0400);
	assert_int_equal(sdrsa_keyfile_parse(path, collect, &s, NULL), 0);
	assert_int_equal(s.n, 1);
}

static void test_empty(void **state)
{
	struct seen s = { 0 };

	(void)state;
	write_file("", 0600);
	assert_int_equal(sdrsa_keyfile_parse(path, collect, &s, NULL), 0);
	assert_int_equal(s.n, 0);
	write_file("# only comments\n\n#\n", 0600);
	assert_int_equal(sdrsa_keyfile_parse(path, collect, &s, NULL), 0);
	assert_int_equal(s.n, 0);
}

static void test_longest_name(void **state)
{
	char text[256], name[SDRSA_NAME_MAX + 2];
	struct seen s = { 0 };
	int bad = 0;

	(void)state;
	memset(name, 'n', SDRSA_NAME_MAX);
	name[SDRSA_NAME_MAX] = '\0';
	snprintf(text, sizeof(text), "%s %s\n", name, KEY_A);
	write_file(text, 0600);
	assert_int_equal(sdrsa_keyfile_parse(path, collect, &s, &bad), 0);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.names[0], name);

	name[SDRSA_NAME_MAX] = 'n';
	name[SDRSA_NAME_MAX + 1] = '\0';
	snprintf(text, sizeof(text), "ok %s\n%s %s\n", KEY_A, name, KEY_A);
	write_file(text, 0600);
	assert_int_equal(sdrsa_keyfile_parse(path, collect, &s, &bad), -EBADMSG);
	assert_int_equal(bad, 2);
}

/* Each malformed line is reported at its number; lines before it were
 * delivered, none after it. */
static void test_malformed(void **state)
{
	static const char *const bad_lines[] = {
		"alice",                                  /* no key */
		"alice 0001020304",                       /* short key */
		"alice " KEY_A "00",                      /* long key */
		"alice " KEY_A " extra",                  /* trailing word */
		"alice 0g0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
		"al/ce " KEY_A,                           /* invalid name */
		"al:ce " KEY_A,
		KEY_A,                                    /* key alone */
		"alice 0x0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
	};
	char text[512];

	(void)state;
	for (size_t i = 0; i < sizeof(bad_lines) / sizeof(bad_lines[0]); i++) {
		struct seen s = { 0 };
		int bad = 0;

		snprintf(text, sizeof(text),
			 "# keys\n"
			 "first " KEY_A "\n"
			 "\n"
			 "%s\n"
			 "after " KEY_B "\n",
			 bad_lines[i]);
		write_file(text, 0600);
		if (sdrsa_keyfile_parse(path, collect, &s, &bad) != -EBADMSG)
			fail_msg("line \"%s\" was accepted", bad_lines[i]);
		assert_int_equal(bad, 4);
		assert_int_equal(s.n, 1);
		assert_string_equal(s.names[0], "first");
		/* the line number is optional */
		assert_int_equal(sdrsa_keyfile_parse(path, collect, &s, NULL), -EBADMSG);
	}
}

/* A line longer than the parser's buffer is one line: a long comment is
 * skipped whole (its tail is not read as a key line) and the numbering of
 * later lines stays right; a long line that is not a comment is malformed. */
static void test_long_lines(void **state)
{
	char text[2048], pad[701];
	struct seen s = { 0 };
	int bad = 0;

	(void)state;
	memset(pad, 'x', sizeof(pad) - 1);
	pad[sizeof(pad) - 1] = '\0';
	/* the tail of the comment, past 511 bytes, looks like a key line */
	snprintf(text, sizeof(text),
		 "#%s mallory " KEY_B "\n"
		 "alice " KEY_A "   # %s\n"
		 "bob " KEY_B "\n",
		 pad, pad);
	write_file(text, 0600);
	assert_int_equal(sdrsa_keyfile_parse(path, collect, &s, &bad), 0);
	assert_int_equal(s.n, 2);
	assert_string_equal(s.names[0], "alice");
	assert_string_equal(s.names[1], "bob");

	s.n = 0;
	snprintf(text, sizeof(text), "alice " KEY_A "\nbob " KEY_B " %s\ncarol " KEY_A "\n", pad);
	write_file(text, 0600);
	assert_int_equal(sdrsa_keyfile_parse(path, collect, &s, &bad), -EBADMSG);
	assert_int_equal(bad, 2);
	assert_int_equal(s.n, 1);
}

static void test_permissions(void **state)
{
	static const mode_t modes[] = { 0644, 0640, 0604, 0660, 0606, 0610, 0601, 0777 };

	(void)state;
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		struct seen s = { 0 };
		int bad = -1;

		write_file("alice " KEY_A "\n", modes[i]);
		if (sdrsa_keyfile_parse(path, collect, &s, &bad) != -EPERM)
			fail_msg("mode %04o was accepted", (unsigned)modes[i]);
		assert_int_equal(s.n, 0);
		assert_int_equal(bad, -1);
	}
}

static void test_missing(void **state)
{
	struct seen s = { 0 };
	char p[200];

	(void)state;
	snprintf(p, sizeof(p), "%s/does-not-exist", dir);
	assert_int_equal(sdrsa_keyfile_parse(p, collect, &s, NULL), -ENOENT);
	/* a directory is not a key file */
	assert_true(sdrsa_keyfile_parse(dir, collect, &s, NULL) < 0);
	assert_int_equal(s.n, 0);
}

static void test_callback_stops(void **state)
{
	struct seen s = { .stop_at = 2 };

	(void)state;
	write_file("a " KEY_A "\nb " KEY_A "\nc " KEY_A "\n", 0600);
	assert_int_equal(sdrsa_keyfile_parse(path, collect, &s, NULL), 42);
	assert_int_equal(s.n, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_valid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_longest_name, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_permissions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_callback_stops, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
