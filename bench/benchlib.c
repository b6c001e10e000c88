// SPDX-License-Identifier: MIT
/* benchlib: pinning, threaded NAPI, CPU accounting, JSON results (benchlib.h). */
#include "benchlib.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#define BENCH_SCHEMA "weft-bench/1"

struct bench_result {
	json_t *root;
	json_t *params, *figures, *ratios, *notes;
	json_t *by_id; /* figure id -> value, for ratios */
	char name[64];
	char started[32];
};

double bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int bench_pin(int cpu)
{
	cpu_set_t s;

	if (cpu < 0 || cpu >= CPU_SETSIZE)
		return -EINVAL;
	CPU_ZERO(&s);
	CPU_SET(cpu, &s);
	return -pthread_setaffinity_np(pthread_self(), sizeof(s), &s);
}

int bench_pin_napi(const char *ifname, int cpu)
{
	char prefix[64], path[64], comm[64];
	struct dirent *de;
	cpu_set_t s;
	int n = 0;
	DIR *d;

	if (!ifname || cpu < 0 || cpu >= CPU_SETSIZE ||
	    (size_t)snprintf(prefix, sizeof(prefix), "napi/%s-", ifname) >= sizeof(prefix))
		return -EINVAL;
	d = opendir("/proc");
	if (!d)
		return -errno;
	CPU_ZERO(&s);
	CPU_SET(cpu, &s);
	while ((de = readdir(d))) {
		int pid = atoi(de->d_name);
		FILE *f;

		if (pid <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/comm", pid);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(comm, sizeof(comm), f) && !strncmp(comm, prefix, strlen(prefix)) &&
		    sched_setaffinity(pid, sizeof(s), &s) == 0)
			n++;
		fclose(f);
	}
	closedir(d);
	return n;
}

static int safe_name(const char *s)
{
	if (!s || !*s || strlen(s) > 63)
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '_' && *s != '.' && *s != '-')
			return 0;
	return 1;
}

int bench_napi_threaded(const char *netns, const char *dev)
{
	char cmd[256];

	if (!safe_name(dev) || (netns && !safe_name(netns)))
		return -EINVAL;
	/* sysfs shows the namespace it was mounted in: "ip netns exec" mounts
	 * the target namespace's sysfs for the command it runs. */
	if (netns)
		snprintf(cmd, sizeof(cmd),
			 "ip netns exec %s sh -c 'echo 1 > /sys/class/net/%s/threaded'", netns,
			 dev);
	else
		snprintf(cmd, sizeof(cmd), "sh -c 'echo 1 > /sys/class/net/%s/threaded'", dev);
	return system(cmd) == 0 ? 0 : -EIO;
}

int bench_cpu_snap(struct bench_cpu *c)
{
	char line[512];
	FILE *f = fopen("/proc/stat", "r");

	memset(c, 0, sizeof(*c));
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long v[8] = {0}, t = 0;
		int cpu, i;

		if (sscanf(line, "cpu%d %llu %llu %llu %llu %llu %llu %llu %llu", &cpu, &v[0],
			   &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) < 9 ||
		    cpu < 0 || cpu >= BENCH_MAX_CPUS)
			continue;
		for (i = 0; i < 8; i++)
			t += v[i];
		c->total[cpu] = t;
		c->busy[cpu] = t - v[3] - v[4];
		if (cpu + 1 > c->ncpu)
			c->ncpu = cpu + 1;
	}
	fclose(f);
	return 0;
}

double bench_cpu_busy(const struct bench_cpu *a, const struct bench_cpu *b, int cpu)
{
	unsigned long long t;

	if (cpu < 0 || cpu >= BENCH_MAX_CPUS || b->total[cpu] <= a->total[cpu] ||
	    b->busy[cpu] < a->busy[cpu])
		return 0;
	t = b->total[cpu] - a->total[cpu];
	return 100.0 * (double)(b->busy[cpu] - a->busy[cpu]) / (double)t;
}

/* ---- results ---- */

/* UTC now, ISO 8601 ("2026-11-22T19:05:00Z") or compact for file names. */
static void utc_now(char *buf, size_t n, int compact)
{
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	if (compact)
		strftime(buf, n, "%Y%m%dT%H%M%SZ", &tm);
	else
		strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* First line of a command's output, trailing newline removed; "" if none. */
static void first_line(const char *cmd, char *buf, size_t n)
{
	FILE *p = popen(cmd, "r");

	buf[0] = 0;
	if (!p)
		return;
	if (!fgets(buf, (int)n, p))
		buf[0] = 0;
	pclose(p);
	buf[strcspn(buf, "\n")] = 0;
}

static void exe_dir(char *buf, size_t n)
{
	ssize_t len = readlink("/proc/self/exe", buf, n - 1);
	char *slash;

	if (len <= 0) {
		snprintf(buf, n, ".");
		return;
	}
	buf[len] = 0;
	slash = strrchr(buf, '/');
	if (slash)
		*slash = 0;
}

static void commit_of_run(char *buf, size_t n)
{
	const char *env = getenv("WEFT_BENCH_COMMIT");
	char dir[PATH_MAX], cmd[PATH_MAX + 96];

	if (env && *env) {
		snprintf(buf, n, "%s", env);
		return;
	}
	exe_dir(dir, sizeof(dir));
	if (!strchr(dir, '\'')) {
		snprintf(cmd, sizeof(cmd),
			 "git -C '%s' describe --always --dirty --abbrev=12 2>/dev/null", dir);
		first_line(cmd, buf, n);
	} else {
		buf[0] = 0;
	}
	if (!buf[0])
		snprintf(buf, n, "unknown");
}

static void cpu_model(char *buf, size_t n)
{
	char line[512];
	FILE *f = fopen("/proc/cpuinfo", "r");

	snprintf(buf, n, "unknown");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':');

		if (strncmp(line, "model name", 10) || !colon)
			continue;
		colon++;
		while (*colon == ' ' || *colon == '\t')
			colon++;
		colon[strcspn(colon, "\n")] = 0;
		snprintf(buf, n, "%s", colon);
		break;
	}
	fclose(f);
}

static int valid_id(const char *id)
{
	if (!id || !*id || strlen(id) > 63)
		return 0;
	for (; *id; id++)
		if (!islower((unsigned char)*id) && !isdigit((unsigned char)*id) && *id != '_' &&
		    *id != '.')
			return 0;
	return 1;
}

int bench_result_new(struct bench_result **out, const char *name, int argc, char **argv)
{
	struct bench_result *r;
	char buf[512], cmd[4096] = "";
	struct utsname u;
	size_t used = 0;
	int i;

	*out = NULL;
	if (!valid_id(name) || strlen(name) >= sizeof(r->name))
		return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	snprintf(r->name, sizeof(r->name), "%s", name);
	utc_now(r->started, sizeof(r->started), 0);
	for (i = 0; i < argc && used < sizeof(cmd); i++)
		used +=
		    (size_t)snprintf(cmd + used, sizeof(cmd) - used, "%s%s", i ? " " : "", argv[i]);
	r->root = json_object();
	r->params = json_object();
	r->figures = json_array();
	r->ratios = json_array();
	r->notes = json_array();
	r->by_id = json_object();
	if (!r->root || !r->params || !r->figures || !r->ratios || !r->notes || !r->by_id) {
		bench_result_free(r);
		return -ENOMEM;
	}
	json_object_set_new(r->root, "schema", json_string(BENCH_SCHEMA));
	json_object_set_new(r->root, "harness", json_string(name));
	json_object_set_new(r->root, "command", json_string(cmd));
	commit_of_run(buf, sizeof(buf));
	json_object_set_new(r->root, "commit", json_string(buf));
	if (uname(&u) == 0) {
		snprintf(buf, sizeof(buf), "%s %s", u.release, u.machine);
		json_object_set_new(r->root, "kernel", json_string(buf));
	}
	cpu_model(buf, sizeof(buf));
	json_object_set_new(r->root, "cpu_model", json_string(buf));
	json_object_set_new(r->root, "cpus", json_integer(sysconf(_SC_NPROCESSORS_ONLN)));
	json_object_set_new(r->root, "started", json_string(r->started));
	json_object_set(r->root, "params", r->params);
	json_object_set(r->root, "figures", r->figures);
	json_object_set(r->root, "ratios", r->ratios);
	json_object_set(r->root, "notes", r->notes);
	*out = r;
	return 0;
}

void bench_result_free(struct bench_result *r)
{
	if (!r)
		return;
	json_decref(r->root);
	json_decref(r->params);
	json_decref(r->figures);
	json_decref(r->ratios);
	json_decref(r->notes);
	json_decref(r->by_id);
	free(r);
}

int bench_result_param(struct bench_result *r, const char *key, double value)
{
	if (!valid_id(key) || !isfinite(value))
		return -EINVAL;
	if (json_object_size(r->params) >= BENCH_MAX_ITEMS)
		return -ENOSPC;
	return json_object_set_new(r->params, key, json_real(value)) ? -ENOMEM : 0;
}

int bench_result_figure(struct bench_result *r, const char *id, const char *label, double value,
			const char *unit)
{
	json_t *f;

	if (!valid_id(id) || !label || !unit || !isfinite(value) || json_object_get(r->by_id, id))
		return -EINVAL;
	if (json_array_size(r->figures) >= BENCH_MAX_ITEMS)
		return -ENOSPC;
	f = json_pack("{s:s, s:s, s:f, s:s}", "id", id, "label", label, "value", value, "unit",
		      unit);
	if (!f || json_array_append_new(r->figures, f) ||
	    json_object_set_new(r->by_id, id, json_real(value)))
		return -ENOMEM;
	return 0;
}

int bench_result_ratio(struct bench_result *r, const char *id, const char *label, const char *num,
		       const char *den, double goal)
{
	json_t *n, *d, *o;
	double v;

	if (!valid_id(id) || !label || !num || !den || !isfinite(goal) || goal < 0)
		return -EINVAL;
	if (json_array_size(r->ratios) >= BENCH_MAX_ITEMS)
		return -ENOSPC;
	n = json_object_get(r->by_id, num);
	d = json_object_get(r->by_id, den);
	if (!n || !d)
		return -ENOENT;
	if (json_real_value(d) == 0)
		return -EDOM;
	v = json_real_value(n) / json_real_value(d);
	o = json_pack("{s:s, s:s, s:f, s:s, s:s}", "id", id, "label", label, "value", v, "num", num,
		      "den", den);
	if (!o)
		return -ENOMEM;
	if (goal > 0)
		json_object_set_new(o, "goal", json_real(goal));
	return json_array_append_new(r->ratios, o) ? -ENOMEM : 0;
}

int bench_result_note(struct bench_result *r, const char *text)
{
	if (!text)
		return -EINVAL;
	if (json_array_size(r->notes) >= BENCH_MAX_ITEMS)
		return -ENOSPC;
	return json_array_append_new(r->notes, json_string(text)) ? -ENOMEM : 0;
}

static int mkdirs(const char *dir)
{
	char tmp[PATH_MAX], *p;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s", dir) >= sizeof(tmp))
		return -ENAMETOOLONG;
	for (p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(tmp, 0755) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, 0755) && errno != EEXIST)
		return -errno;
	return 0;
}

int bench_result_write(struct bench_result *r, char *path, size_t pathlen)
{
	const char *env = getenv("WEFT_BENCH_DIR");
	char dir[PATH_MAX], file[PATH_MAX + 128], tmp[PATH_MAX + 140], stamp[32], fin[32];
	int err;

	if (env && *env) {
		snprintf(dir, sizeof(dir), "%s", env);
	} else {
		exe_dir(dir, sizeof(dir));
		if (strlen(dir) + sizeof("/results") > sizeof(dir))
			return -ENAMETOOLONG;
		strcat(dir, "/results");
	}
	err = mkdirs(dir);
	if (err)
		return err;
	utc_now(fin, sizeof(fin), 0);
	json_object_set_new(r->root, "finished", json_string(fin));
	utc_now(stamp, sizeof(stamp), 1);
	snprintf(file, sizeof(file), "%s/%s-%s-%d.json", dir, r->name, stamp, (int)getpid());
	snprintf(tmp, sizeof(tmp), "%s.tmp", file);
	/* Written whole, then renamed: a report never reads half a result. */
	if (json_dump_file(r->root, tmp, JSON_INDENT(1) | JSON_SORT_KEYS | JSON_REAL_PRECISION(10)))
		return -EIO;
	if (rename(tmp, file)) {
		err = -errno;
		unlink(tmp);
		return err;
	}
	if (path && pathlen)
		snprintf(path, pathlen, "%s", file);
	return 0;
}
