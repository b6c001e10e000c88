// SPDX-License-Identifier: MIT
/*
 * gcm micro benchmark (issue 29, "the crypto"): the cost of sealing and
 * opening one QUIC packet's payload with AES-128-GCM, weft's
 * userspace/quic/gcm.c at each width this CPU runs against GnuTLS's
 * gnutls_aead_cipher_encrypt / _decrypt (what ngtcp2's GnuTLS backend
 * calls for every packet, and what weft called before).
 * Same work: same key, nonce, 22-byte header as AAD and payload sizes
 * (1,420 bytes: a 1,472-byte datagram's payload after a short header; 8,924:
 * a 9,000-byte MTU's), out of place, one thread, CPU time of this thread;
 * the sides alternate round by round and the best round of each counts.
 * Usage: bench_gcm [ROUNDS]   (default 7)
 */
#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "benchlib.h"
#include "quic/gcm.h"

#define AAD_LEN 22
#define ITERS 200000

static const size_t sizes[] = {1420, 8924};

static void fill(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 131 + 7);
}

/* ns per call: op 0 seal, 1 open; impl QUIC_GCM_NONE: GnuTLS. */
static double run(enum quic_gcm_impl impl, int op, const uint8_t *key, size_t len, uint8_t *pt,
		  uint8_t *ct, uint8_t *out, int *err)
{
	uint8_t nonce[QUIC_GCM_NONCE_LEN] = {1, 2, 3}, aad[AAD_LEN];
	gnutls_datum_t kd = {(unsigned char *)key, 16};
	gnutls_aead_cipher_hd_t hd = NULL;
	struct quic_gcm_key *k = NULL;
	double t;
	long i;
	int iters = (int)(ITERS * 1420 / len);

	fill(aad, sizeof(aad));
	if (impl == QUIC_GCM_NONE) {
		if (gnutls_aead_cipher_init(&hd, GNUTLS_CIPHER_AES_128_GCM, &kd) < 0) {
			*err = 1;
			return 0;
		}
	} else if (quic_gcm_key_new(&k, key, 16, impl)) {
		*err = 1;
		return 0;
	}
	t = bench_thread_cpu_s();
	for (i = 0; i < iters; i++) {
		size_t ol = len + 16;

		if (!op) /* a packet number's worth of change; open: the sealed one */
			nonce[11] = (uint8_t)i;
		if (impl == QUIC_GCM_NONE)
			*err |= op ? gnutls_aead_cipher_decrypt(hd, nonce, 12, aad, AAD_LEN, 16, ct,
								len + 16, out, &ol) != 0
				   : gnutls_aead_cipher_encrypt(hd, nonce, 12, aad, AAD_LEN, 16, pt,
								len, out, &ol) != 0;
		else if (op)
			*err |= quic_gcm_open(k, out, nonce, aad, AAD_LEN, ct, len + 16) != 0;
		else
			quic_gcm_seal(k, out, nonce, aad, AAD_LEN, pt, len);
	}
	t = bench_thread_cpu_s() - t;
	quic_gcm_key_free(k);
	if (hd)
		gnutls_aead_cipher_deinit(hd);
	return t / iters * 1e9;
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 7, err = 0, nimpl = 0;
	enum quic_gcm_impl best = quic_gcm_impl_best(), impls[4];
	double ns[2][4][2]; /* size, impl, op */
	struct bench_result *res = NULL;
	uint8_t key[16], *pt, *ct, *out;
	static const char *const opname[2] = {"seal", "open"};

	if (rounds < 1)
		return 2;
	impls[nimpl++] = QUIC_GCM_NONE;
	for (enum quic_gcm_impl i = QUIC_GCM_AESNI; i <= best; i++)
		impls[nimpl++] = i;
	fill(key, sizeof(key));
	pt = malloc(9000);
	ct = malloc(9000 + 16);
	out = malloc(9000 + 16);
	if (!pt || !ct || !out)
		return 1;
	for (size_t s = 0; s < 2; s++)
		for (int i = 0; i < nimpl; i++)
			ns[s][i][0] = ns[s][i][1] = -1;
	for (size_t s = 0; s < 2; s++) {
		uint8_t nonce[QUIC_GCM_NONCE_LEN] = {1, 2, 3}, aad[AAD_LEN];
		gnutls_datum_t kd = {key, 16};
		gnutls_aead_cipher_hd_t hd;
		size_t ol = sizes[s] + 16;

		fill(pt, sizes[s]);
		fill(aad, sizeof(aad));
		nonce[11] = 0;
		if (gnutls_aead_cipher_init(&hd, GNUTLS_CIPHER_AES_128_GCM, &kd) < 0)
			return 1;
		gnutls_aead_cipher_encrypt(hd, nonce, 12, aad, AAD_LEN, 16, pt, sizes[s], ct, &ol);
		gnutls_aead_cipher_deinit(hd);
		for (int r = 0; r < rounds; r++)
			for (int i = 0; i < nimpl; i++)
				for (int op = 0; op < 2; op++) {
					double v =
					    run(impls[i], op, key, sizes[s], pt, ct, out, &err);

					if (ns[s][i][op] < 0 || v < ns[s][i][op])
						ns[s][i][op] = v;
				}
	}
	if (err) {
		fprintf(stderr, "bench_gcm: a seal or open failed\n");
		return 1;
	}
	printf(
	    "AES-128-GCM per packet (ns, best of %d rounds, CPU time; %s is this CPU's widest)\n",
	    rounds, quic_gcm_impl_name(best));
	printf("%-8s %-5s %10s", "bytes", "op", "gnutls");
	for (int i = 1; i < nimpl; i++)
		printf(" %10s", quic_gcm_impl_name(impls[i]));
	printf(" %14s\n", "gnutls/widest");
	for (size_t s = 0; s < 2; s++)
		for (int op = 0; op < 2; op++) {
			printf("%-8zu %-5s %10.1f", sizes[s], opname[op], ns[s][0][op]);
			for (int i = 1; i < nimpl; i++)
				printf(" %10.1f", ns[s][i][op]);
			printf(" %13.2fx\n", ns[s][0][op] / ns[s][nimpl - 1][op]);
		}
	if (bench_result_new(&res, "gcm", argc, argv) == 0) {
		bench_result_param(res, "rounds", rounds);
		bench_result_param(res, "aad_bytes", AAD_LEN);
		bench_result_same_work(res, "same key, nonces, AAD and payloads; one thread; "
					    "CPU time; best of alternated rounds");
		bench_result_note(res, quic_gcm_impl_name(best));
		for (size_t s = 0; s < 2; s++)
			for (int op = 0; op < 2; op++) {
				char id[64], lbl[96], a[64], b[64];

				for (int i = 0; i < nimpl; i++) {
					const char *n = i ? quic_gcm_impl_name(impls[i]) : "gnutls";

					snprintf(id, sizeof(id), "%s_%s_%zu_ns", n, opname[op],
						 sizes[s]);
					snprintf(lbl, sizeof(lbl), "%s %s, %zu bytes", n,
						 opname[op], sizes[s]);
					bench_result_figure(res, id, lbl, ns[s][i][op],
							    "ns/packet");
				}
				snprintf(a, sizeof(a), "gnutls_%s_%zu_ns", opname[op], sizes[s]);
				snprintf(b, sizeof(b), "%s_%s_%zu_ns", quic_gcm_impl_name(best),
					 opname[op], sizes[s]);
				snprintf(id, sizeof(id), "speedup_%s_%zu", opname[op], sizes[s]);
				snprintf(lbl, sizeof(lbl), "GnuTLS time / weft's widest, %s %zu B",
					 opname[op], sizes[s]);
				if (nimpl > 1)
					bench_result_ratio(res, id, lbl, a, b, 0);
			}
		bench_result_write(res, NULL, 0);
		bench_result_free(res);
	}
	free(pt);
	free(ct);
	free(out);
	return 0;
}
