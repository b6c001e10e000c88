// SPDX-License-Identifier: MIT
/*
 * Hole punching benchmark (issue 15): the figures of bench/punch.sh's run.
 *
 * bench/punch.sh does the work (namespaces, NAT routers, weftd, dials by
 * key, RTT and throughput) and writes what it measured as tab-separated
 * lines into $BENCH_PUNCH_TSV:
 *   trial PAIR I FIRST_BYTE_MS DIRECT_MS OUTCOME RELAYED_RTT_MS RESOLVE_MS HANDSHAKE_MS
 *   fig ID LABEL VALUE UNIT
 * (bench/punch_trials.py). This harness turns them into one JSON result
 * (bench/benchlib.h): per NAT pair the trials, how many reached the direct
 * path, how many within the goal (two relayed RTTs plus one second
 * from the dial, each trial against its own relayed RTT), the time from the
 * dial to the first byte and to the direct path (median, 90th percentile,
 * worst), and the relayed vs direct RTT and throughput; and prints them side
 * by side.
 *
 *   bench_punch TRIALS BYTES DELAY_MS   (as bench/punch.sh ran)
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "benchlib.h"

static const char same_work[] =
    "relayed and direct figures of a pair come from the same hosts, NATs and weftd processes "
    "in the same run, the same relay host for the circuit; RTT with the same 30 ms one-way "
    "delay on every router uplink (a Python delay line); throughput after the delay lines are "
    "bypassed (no added delay: veths, bridge, nftables NAT routers and, relayed, the relay's "
    "weftd with its default circuit policer), the same BYTES in sink mode on one new QUIC "
    "connection per run, runs alternating relayed and direct, median of each; the direct path "
    "is the 5-tuple the punch opened, the relayed one a circuit while the target's router "
    "drops the dialler's direct packets (checked: the relay carried at least BYTES in each "
    "relayed run and less in each direct one)";

#define MAX_TRIALS 1000

struct pair {
	const char *id, *label;
	int direct_expected;
	double fb[MAX_TRIALS], dm[MAX_TRIALS], rtt[MAX_TRIALS];
	unsigned int n, ndirect, nwithin, nfb, nfailed;
};

static struct pair pairs[] = {
	{ .id = "pp_pp", .label = "port-preserving -> port-preserving", .direct_expected = 1 },
	{ .id = "pub_pp", .label = "public -> port-preserving", .direct_expected = 1 },
	{ .id = "pp_rf", .label = "port-preserving -> fully-random", .direct_expected = 0 },
	{ .id = "rf_rf", .label = "fully-random -> fully-random", .direct_expected = 0 },
	/* Both hosts with global IPv6 behind stateful firewalls (and IPv4
	 * port-preserving NAT): direct counts only on the IPv6 address. */
	{ .id = "v6_v6", .label = "dual-stack -> dual-stack (IPv6, firewalls)", .direct_expected = 1 },
};
#define NPAIRS (sizeof(pairs) / sizeof(pairs[0]))

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile q (0..100) of v[n] (sorted here). */
static double pct(double *v, unsigned int n, double q)
{
	unsigned int k;

	qsort(v, n, sizeof(*v), cmp_d);
	k = (unsigned int)ceil(q / 100.0 * n);
	return v[k ? k - 1 : 0];
}

static struct pair *pair_of(const char *id)
{
	for (unsigned int i = 0; i < NPAIRS; i++)
		if (!strcmp(pairs[i].id, id))
			return &pairs[i];
	return NULL;
}

/* Figures from the script ("fig" lines): ids prefixed "punch.". */
struct extra {
	char id[80];
	double v;
	int have;
};
static struct extra extras[64];
static unsigned int nextras;

static double extra(const char *id, int *have)
{
	for (unsigned int i = 0; i < nextras; i++)
		if (!strcmp(extras[i].id, id)) {
			*have = 1;
			return extras[i].v;
		}
	*have = 0;
	return 0;
}

static int read_tsv(struct bench_result *res, const char *path)
{
	char line[1024], id[96];
	FILE *f = fopen(path, "r");

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		char *sp, *kind = strtok_r(line, "\t\n", &sp);

		if (!kind)
			continue;
		if (!strcmp(kind, "fig")) {
			char *fid = strtok_r(NULL, "\t\n", &sp), *label = strtok_r(NULL, "\t\n", &sp);
			char *val = strtok_r(NULL, "\t\n", &sp), *unit = strtok_r(NULL, "\t\n", &sp);

			if (!fid || !label || !val)
				continue;
			snprintf(id, sizeof(id), "punch.%s", fid);
			if (!bench_result_figure(res, id, label, strtod(val, NULL), unit ? unit : "") &&
			    nextras < sizeof(extras) / sizeof(extras[0])) {
				snprintf(extras[nextras].id, sizeof(extras[0].id), "%s", fid);
				extras[nextras++].v = strtod(val, NULL);
			}
			continue;
		}
		if (strcmp(kind, "trial"))
			continue;
		char *pid = strtok_r(NULL, "\t\n", &sp);
		char *idx = strtok_r(NULL, "\t\n", &sp), *fb = strtok_r(NULL, "\t\n", &sp);
		char *dm = strtok_r(NULL, "\t\n", &sp), *out = strtok_r(NULL, "\t\n", &sp);
		char *rtt = strtok_r(NULL, "\t\n", &sp);
		struct pair *p = pid ? pair_of(pid) : NULL;

		if (!p || !idx || !fb || !dm || !out || !rtt || p->n >= MAX_TRIALS)
			continue;
		p->n++;
		if (strtod(fb, NULL) < 0)
			continue; /* the dial failed: counted, no time */
		p->fb[p->nfb] = strtod(fb, NULL);
		p->rtt[p->nfb++] = strtod(rtt, NULL);
		if (!strcmp(out, "failed"))
			p->nfailed++; /* every attempt failed, reported with both classes */
		if (!strcmp(out, "direct") && strtod(dm, NULL) >= 0) {
			/* The goal per trial: 2 relayed RTTs (its own) + 1 s. */
			if (strtod(dm, NULL) <= 2 * strtod(rtt, NULL) + 1000)
				p->nwithin++;
			p->dm[p->ndirect++] = strtod(dm, NULL);
		}
	}
	fclose(f);
	return 0;
}

static void fig(struct bench_result *res, const struct pair *p, const char *what,
		const char *label, double v, const char *unit)
{
	char id[96], l[256];

	snprintf(id, sizeof(id), "punch.%s.%s", p->id, what);
	snprintf(l, sizeof(l), "%s: %s", p->label, label);
	bench_result_figure(res, id, l, v, unit);
}

int main(int argc, char **argv)
{
	const char *tsv = getenv("BENCH_PUNCH_TSV");
	struct bench_result *res = NULL;
	int trials = argc > 1 ? atoi(argv[1]) : 0;
	char id[96], num[96], den[96], l[256];

	if (!tsv) {
		fprintf(stderr, "bench_punch: run by bench/punch.sh (BENCH_PUNCH_TSV unset)\n");
		return 1;
	}
	if (bench_result_new(&res, "punch", argc, argv))
		return 1;
	bench_result_same_work(res, same_work);
	bench_result_param(res, "trials_per_pair", trials);
	bench_result_param(res, "bytes", argc > 2 ? atof(argv[2]) : 0);
	bench_result_param(res, "one_way_delay_ms", argc > 3 ? atof(argv[3]) : 0);
	bench_result_param(res, "throughput_added_delay_ms", 0);
	if (read_tsv(res, tsv)) {
		fprintf(stderr, "bench_punch: %s: cannot read\n", tsv);
		bench_result_free(res);
		return 1;
	}
	printf("\n| NAT pair (dialler -> target) | direct | within goal | dial -> first byte ms "
	       "p50 / p90 / max | dial -> direct ms p50 / p90 / max | relayed RTT ms p50 | goal ms "
	       "(2 RTT + 1 s) | RTT ms relayed / direct | Mbit/s relayed / direct (no added delay) |\n");
	printf("|---|---|---|---|---|---|---|---|---|\n");
	for (unsigned int i = 0; i < NPAIRS; i++) {
		struct pair *p = &pairs[i];
		double fb50 = 0, fb90 = 0, fbmax = 0, d50 = 0, d90 = 0, dmax = 0, r50 = 0;
		double rr, rd, mr, md;
		int hrr, hrd, hmr, hmd;
		char dcol[96] = "-", rttcol[64] = "-", mbcol[64] = "-";

		if (!p->n) {
			snprintf(l, sizeof(l), "%s: no trial ran (bench/punch.sh said why)", p->id);
			bench_result_note(res, l);
			continue;
		}
		if (p->nfb) {
			fbmax = pct(p->fb, p->nfb, 100);
			fb50 = pct(p->fb, p->nfb, 50);
			fb90 = pct(p->fb, p->nfb, 90);
			r50 = pct(p->rtt, p->nfb, 50);
		}
		if (p->ndirect) {
			dmax = pct(p->dm, p->ndirect, 100);
			d50 = pct(p->dm, p->ndirect, 50);
			d90 = pct(p->dm, p->ndirect, 90);
			snprintf(dcol, sizeof(dcol), "%.0f / %.0f / %.0f", d50, d90, dmax);
		}
		fig(res, p, "trials", "dials by key", p->n, "");
		fig(res, p, "direct", "trials that reached the direct path", p->ndirect, "");
		fig(res, p, "failed", "trials whose punch failed after its attempts (relayed)",
		    p->nfailed, "");
		fig(res, p, "within_goal",
		    "trials direct within 2 relayed RTTs + 1 s of the dial (own RTT)", p->nwithin, "");
		if (p->nfb) {
			fig(res, p, "first_byte_ms_p50", "dial -> first byte, median", fb50, "ms");
			fig(res, p, "first_byte_ms_p90", "dial -> first byte, 90th percentile", fb90,
			    "ms");
			fig(res, p, "first_byte_ms_max", "dial -> first byte, worst", fbmax, "ms");
			fig(res, p, "trial_rtt_ms_p50", "echo RTT of the dial (on the circuit), median",
			    r50, "ms");
		}
		if (p->ndirect) {
			fig(res, p, "to_direct_ms_p50", "dial -> direct path, median", d50, "ms");
			fig(res, p, "to_direct_ms_p90", "dial -> direct path, 90th percentile", d90,
			    "ms");
			fig(res, p, "to_direct_ms_max", "dial -> direct path, worst", dmax, "ms");
		}
		snprintf(id, sizeof(id), "punch.%s.direct_rate", p->id);
		snprintf(num, sizeof(num), "punch.%s.direct", p->id);
		snprintf(den, sizeof(den), "punch.%s.trials", p->id);
		snprintf(l, sizeof(l), "%s: share of trials that reached the direct path%s", p->label,
			 p->direct_expected ? " (goal: all)" : " (none possible)");
		bench_result_ratio(res, id, l, num, den, p->direct_expected ? 1.0 : 0);
		if (p->direct_expected) {
			snprintf(id, sizeof(id), "punch.%s.within_goal_rate", p->id);
			snprintf(num, sizeof(num), "punch.%s.within_goal", p->id);
			snprintf(l, sizeof(l),
				 "%s: share of trials direct within 2 relayed RTTs + 1 s (goal: all)",
				 p->label);
			bench_result_ratio(res, id, l, num, den, 1.0);
		}
		snprintf(id, sizeof(id), "%s.relayed_rtt_ms", p->id);
		rr = extra(id, &hrr);
		snprintf(id, sizeof(id), "%s.direct_rtt_ms", p->id);
		rd = extra(id, &hrd);
		snprintf(id, sizeof(id), "%s.relayed_mbit_s", p->id);
		mr = extra(id, &hmr);
		snprintf(id, sizeof(id), "%s.direct_mbit_s", p->id);
		md = extra(id, &hmd);
		if (hrr && hrd) {
			snprintf(rttcol, sizeof(rttcol), "%.1f / %.1f", rr, rd);
			snprintf(id, sizeof(id), "punch.%s.rtt_relayed_vs_direct", p->id);
			snprintf(num, sizeof(num), "punch.%s.relayed_rtt_ms", p->id);
			snprintf(den, sizeof(den), "punch.%s.direct_rtt_ms", p->id);
			snprintf(l, sizeof(l), "%s: RTT relayed / direct", p->label);
			bench_result_ratio(res, id, l, num, den, 0);
		}
		if (hmr && hmd) {
			snprintf(mbcol, sizeof(mbcol), "%.0f / %.0f", mr, md);
			snprintf(id, sizeof(id), "punch.%s.mbit_direct_vs_relayed", p->id);
			snprintf(num, sizeof(num), "punch.%s.direct_mbit_s", p->id);
			snprintf(den, sizeof(den), "punch.%s.relayed_mbit_s", p->id);
			snprintf(l, sizeof(l), "%s: throughput direct / relayed", p->label);
			bench_result_ratio(res, id, l, num, den, 0);
		}
		printf("| %s | %u/%u (%u failed) | %s | %.0f / %.0f / %.0f | %s | %.0f | %.0f | %s | %s |\n",
		       p->label, p->ndirect, p->n, p->nfailed,
		       p->direct_expected ? (snprintf(l, sizeof(l), "%u/%u", p->nwithin, p->n), l)
					  : "-",
		       fb50, fb90, fbmax, dcol, r50, 2 * r50 + 1000, rttcol, mbcol);
	}
	printf("\n");
	return bench_result_finish(res);
}
