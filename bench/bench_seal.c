// SPDX-License-Identifier: MIT
/*
 * seal micro benchmark (issue 28): wrap and unwrap of a content key for
 * SEAL_MAX_RECIPIENTS recipients, a group record sealed and opened for as
 * many members (the cost of a rotation), and segment encryption and
 * decryption throughput. One thread, CPU time of this thread.
 * Same work: every figure is the seal core alone on in-memory buffers,
 * no I/O; recipients and members are fixed keys made before timing.
 * Usage: bench_seal [ROUNDS]   (default 5: the best round is reported)
 */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "benchlib.h"
#include "weft/seal.h"

#define N SEAL_MAX_RECIPIENTS

static uint8_t ed_pk[N][32], ed_sk[N][64], x_pk[N][32], x_sk[N][32];
static uint8_t entries[N * SEAL_ENTRY_LEN], rec[SEAL_GROUP_MAX_LEN];

static double best(double a, double b)
{
	return a < 0 || b < a ? b : a;
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 5;
	double t_wrap = -1, t_unwrap = -1, t_gseal = -1, t_gopen = -1, t_enc = -1, t_dec = -1;
	uint8_t ck[32], epk[32], got[32], seed[32], gid[32], ik[32], owner_sk[64], owner_pk[32];
	struct seal_group_record r;
	struct bench_result *res = NULL;
	uint8_t *plain, *cipher;
	size_t len;
	int err = 0;

	if (sodium_init() < 0 || rounds < 1)
		return 2;
	for (unsigned int i = 0; i < N; i++) {
		randombytes_buf(seed, 32);
		crypto_sign_seed_keypair(ed_pk[i], ed_sk[i], seed);
		if (seal_x25519_from_ed25519_pk(ed_pk[i], x_pk[i]) ||
		    seal_x25519_from_ed25519_sk(ed_sk[i], x_sk[i]))
			return 1;
	}
	crypto_sign_keypair(owner_pk, owner_sk);
	seal_content_key_new(ck);
	seal_content_key_new(seed);
	randombytes_buf(gid, 32);
	plain = malloc(SEAL_SEG_PLAIN);
	cipher = malloc(SEAL_SEG_LEN);
	if (!plain || !cipher)
		return 1;
	randombytes_buf(plain, SEAL_SEG_PLAIN);
	seal_item_key(ck, 0, ik);
	for (int k = 0; k < rounds; k++) {
		double t = bench_thread_cpu_s();

		err |= seal_wrap(ck, (const uint8_t(*)[32])x_pk, N, epk, entries);
		t_wrap = best(t_wrap, bench_thread_cpu_s() - t);
		/* every recipient opens: the whole audience's cost */
		t = bench_thread_cpu_s();
		for (unsigned int i = 0; i < N; i++)
			err |= seal_unwrap(x_sk[i], x_pk[i], epk, entries, N, got);
		t_unwrap = best(t_unwrap, (bench_thread_cpu_s() - t) / N);
		t = bench_thread_cpu_s();
		err |= seal_group_seal(owner_sk, gid, seed, 1, (const uint8_t(*)[32])ed_pk, N, rec,
				       sizeof(rec), &len);
		t_gseal = best(t_gseal, bench_thread_cpu_s() - t);
		t = bench_thread_cpu_s();
		err |= seal_group_decode(&r, rec, len, owner_pk);
		err |= seal_group_open(&r, ed_sk[N - 1], got);
		t_gopen = best(t_gopen, bench_thread_cpu_s() - t);
		t = bench_thread_cpu_s();
		for (int j = 0; j < 64; j++)
			err |= seal_seg_encrypt(ik, 64ull * SEAL_SEG_PLAIN, (uint64_t)j, j == 63,
						plain, SEAL_SEG_PLAIN, cipher);
		t_enc = best(t_enc, bench_thread_cpu_s() - t);
		t = bench_thread_cpu_s();
		for (int j = 0; j < 64; j++)
			err |= seal_seg_decrypt(ik, 64ull * SEAL_SEG_PLAIN, 63, 1, cipher,
						SEAL_SEG_LEN, plain);
		t_dec = best(t_dec, bench_thread_cpu_s() - t);
	}
	/* the decrypt loop opens the last segment again and again: it must */
	if (err) {
		fprintf(stderr, "bench_seal: a seal call failed\n");
		return 1;
	}
	printf("%-44s %12s\n", "seal (best of rounds, CPU time)", "value");
	printf("%-44s %9.2f ms\n", "wrap for 500 recipients", t_wrap * 1e3);
	printf("%-44s %9.1f us\n", "unwrap, one recipient among 500", t_unwrap * 1e6);
	printf("%-44s %9u B\n", "wrapped keys in the manifest (epk + 500)",
	       (unsigned)(32 + N * SEAL_ENTRY_LEN));
	printf("%-44s %9.2f ms\n", "group record for 500 members (rotation)", t_gseal * 1e3);
	printf("%-44s %9.1f us\n", "group record verified and opened", t_gopen * 1e6);
	printf("%-44s %9zu B\n", "group record size, 500 members", len);
	printf("%-44s %9.0f MiB/s\n", "segment encryption (16 MiB)", 16.0 / t_enc);
	printf("%-44s %9.0f MiB/s\n", "segment decryption (16 MiB)", 16.0 / t_dec);
	if (bench_result_new(&res, "seal", argc, argv) == 0) {
		bench_result_param(res, "recipients", N);
		bench_result_param(res, "rounds", rounds);
		bench_result_same_work(res, "the seal core alone on in-memory buffers, no I/O");
		bench_result_figure(res, "wrap_500_ms", "wrap for 500 recipients", t_wrap * 1e3,
				    "ms");
		bench_result_figure(res, "unwrap_us", "unwrap among 500", t_unwrap * 1e6, "us");
		bench_result_figure(res, "wrap_500_bytes", "wrapped keys, 500 recipients",
				    32 + N * SEAL_ENTRY_LEN, "B");
		bench_result_figure(res, "group_seal_500_ms", "group record, 500 members",
				    t_gseal * 1e3, "ms");
		bench_result_figure(res, "group_open_us", "group record verified and opened",
				    t_gopen * 1e6, "us");
		bench_result_figure(res, "seg_enc_mibs", "segment encryption", 16.0 / t_enc,
				    "MiB/s");
		bench_result_figure(res, "seg_dec_mibs", "segment decryption", 16.0 / t_dec,
				    "MiB/s");
		bench_result_write(res, NULL, 0);
		bench_result_free(res);
	}
	free(plain);
	free(cipher);
	return 0;
}
