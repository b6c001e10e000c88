/* SPDX-License-Identifier: MIT */
/* Small helpers shared by every module: time, hex, strict number parsing. */
#ifndef WEFT_UTIL_H
#define WEFT_UTIL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define WEFT_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Monotonic clock in nanoseconds / milliseconds. */
uint64_t util_now_ns(void);
uint64_t util_now_ms(void);
/* The same clock read at the kernel's last tick (CLOCK_MONOTONIC_COARSE:
 * up to one tick, 1-10 ms, behind util_now_ms, never ahead of it), for
 * per-packet stamps that only ms-scale timeouts read: no TSC read, so no
 * pipeline drain on the packet path (4 ns against 17 ns a call idle,
 * far more amid a packet worker's loads). */
uint64_t util_now_ms_coarse(void);
/* Wall clock, seconds since the epoch. */
uint64_t util_wall_s(void);
/* A condition variable whose timed waits run on the monotonic clock (a
 * wall-clock step neither stalls nor hurries them), and the absolute
 * deadline ms from now on that clock for pthread_cond_timedwait. */
int util_cond_init_mono(pthread_cond_t *cond);
void util_deadline_ts(struct timespec *ts, uint64_t ms);

/* Lower-case hex of len bytes into out (2*len+1 bytes, NUL-terminated). */
void util_hex(char *out, const uint8_t *in, size_t len);
/* Value of one hex digit, or -1. */
int util_hex_digit(char c);
/* Parse exactly 2*len hex digits; returns 0 or -EINVAL. */
int util_unhex(uint8_t *out, size_t len, const char *hex);

/* Strict decimal parsers: whole string, no sign games, range checked.
 * Return 0, -EINVAL (not a number) or -ERANGE. */
int util_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);
int util_parse_bool(const char *s, int *out);

/* Parse "HOST:PORT", "[V6]:PORT" or "V4:PORT" numerically (no DNS) into a
 * sockaddr_storage; returns 0 or -EINVAL. */
struct sockaddr_storage;
int util_parse_addr(const char *s, struct sockaddr_storage *ss, unsigned int *sslen);
/* Format an address as "1.2.3.4:5" or "[::1]:5" into buf. */
const char *util_fmt_addr(const struct sockaddr_storage *ss, char *buf, size_t len);
/* The table key of a source address, UTIL_ADDR_KEY_LEN bytes: a family
 * tag (4 or 6), then the address masked to its counted prefix (IPv4 /32,
 * IPv4-mapped IPv6 counted as IPv4; IPv6 the first v6_bits, 0..128), the
 * rest zero. Returns the prefix length, or 0 when ss is neither (key all
 * zero: not to be tracked). Port ignored. */
#define UTIL_ADDR_KEY_LEN 17
unsigned int util_addr_key(const struct sockaddr_storage *ss, unsigned int v6_bits,
			   uint8_t key[UTIL_ADDR_KEY_LEN]);

/* mkdir -p with mode for every created component; returns 0 or -errno. */
int util_mkdir_p(const char *path, unsigned int mode);

/* The free memory at the top of the calling thread's malloc arena handed
 * back to the kernel when the thread ends (util_heap_release_at_exit: for
 * threads that come and go, such as the HTTP servers' thread per
 * connection; cheap after its first call on a thread), or, for the loop of
 * a thread that lives as long as the node, called before it waits, when a
 * minute has passed since this thread last handed it back
 * (util_heap_release_due; now_ms: the monotonic clock, util_now_ms).
 * glibc hands a thread arena's top back only on a free of 64 KiB or more:
 * common/heap_thread.c. */
void util_heap_release_at_exit(void);
void util_heap_release_due(uint64_t now_ms);

#endif
