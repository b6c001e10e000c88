// SPDX-License-Identifier: MIT
/*
 * LD_PRELOAD shim for tests: the process's wall clock (CLOCK_REALTIME and
 * its coarse variant, gettimeofday, time) shifted by the number of seconds
 * in the file $WALLCLOCK_SHIFT_FILE (read again at each call: a test steps
 * the clock by rewriting it); the monotonic and boot clocks, and the
 * kernel's own timers, untouched. What the process sees is a wall clock
 * stepped without the host's changing (test_fault_clock). A timed wait on
 * a CLOCK_REALTIME deadline computed from the shifted clock is off by the
 * shift, as one in progress when a real clock steps.
 * Built by the test that uses it (gcc -shared -fPIC ... -ldl); here, not in
 * tests/lib/ or tests/tools/, whose sources the Makefile links into every
 * test program or builds as one.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

static long shift_s(void)
{
	const char *p = getenv("WALLCLOCK_SHIFT_FILE");
	long s = 0;
	FILE *f;

	if (!p || !(f = fopen(p, "re")))
		return 0;
	if (fscanf(f, "%ld", &s) != 1)
		s = 0;
	fclose(f);
	return s;
}

int clock_gettime(clockid_t id, struct timespec *ts)
{
	static int (*real)(clockid_t, struct timespec *);
	int rc;

	if (!real)
		real = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
	rc = real(id, ts);
	if (!rc && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE))
		ts->tv_sec += shift_s();
	return rc;
}

int gettimeofday(struct timeval *tv, void *tz)
{
	struct timespec ts;

	(void)tz;
	if (clock_gettime(CLOCK_REALTIME, &ts))
		return -1;
	tv->tv_sec = ts.tv_sec;
	tv->tv_usec = ts.tv_nsec / 1000;
	return 0;
}

time_t time(time_t *t)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	if (t)
		*t = ts.tv_sec;
	return ts.tv_sec;
}
