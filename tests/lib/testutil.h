/* SPDX-License-Identifier: MIT */
/* Helpers for cmocka unit tests: temporary directories, file writes. */
#ifndef WEFT_TESTUTIL_H
#define WEFT_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

/* mkdtemp under $TMPDIR (or /tmp); returns a malloc'd path. */
/* The section of docs/PROTOCOL.md that starts with the heading SECTION, up
 * to the next "## " heading, with spaces, tabs and newlines removed (so a
 * test can look for a vector's hex wrapped over lines); malloc'd, or NULL
 * when the file or the section is not there. $TOP names the checkout. */
char *tu_protocol_section(const char *section);
char *tu_tmpdir(void);
/* rm -rf path (no shell); NULL-safe; frees path. */
void tu_rmrf_free(char *path);
/* Write len bytes to dir/name with mode; returns 0 or -errno. */
int tu_write(const char *dir, const char *name, const void *buf, size_t len, unsigned int mode);
/* Deterministic bytes from a seed (xorshift64*), for reproducible tests. */
void tu_fill(uint8_t *buf, size_t len, uint64_t seed);
/* Nonzero when running as root (privileged tests skip otherwise). */
int tu_is_root(void);
/* A UDP port free on 127.0.0.1 right now (bound, read, released), or -1. */
int tu_free_udp_port(void);

#endif
