// SPDX-License-Identifier: MIT
/*
 * Node-key certificates: a self-signed X.509 v3 certificate whose subject
 * key is the node's Ed25519 key, and the check of a peer's certificate
 * (DER well-formed, Ed25519 key, signature over the TBS by that key). No
 * CA: the key is the identity, pinned by the dialer (docs/QUIC.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <nettle/curve25519.h>
#include <nettle/eddsa.h>
#include <sodium.h>

#include "quic/quic_int.h"

/* Certificates are deterministic in the key: fixed activation time, no
 * well-defined expiration (RFC 5280 99991231235959Z), serial from the key.
 * Validity is not what authenticates a node; its key is. */
#define CERT_ACTIVATION ((time_t)1577836800) /* 2020-01-01 */

static int make_keys(const uint8_t *pk, const uint8_t *sk, gnutls_x509_privkey_t *xkey)
{
	gnutls_datum_t x = { (unsigned char *)pk, QUIC_KEY_LEN };
	gnutls_datum_t k = { (unsigned char *)sk, 32 }; /* libsodium sk = seed || pk */
	int rc;

	if (memcmp(sk + 32, pk, QUIC_KEY_LEN) != 0)
		return -EINVAL;
	if (gnutls_x509_privkey_init(xkey) < 0)
		return -ENOMEM;
	rc = gnutls_x509_privkey_import_ecc_raw(*xkey, GNUTLS_ECC_CURVE_ED25519, &x, NULL, &k);
	if (rc < 0) {
		gnutls_x509_privkey_deinit(*xkey);
		*xkey = NULL;
		return -EPROTO;
	}
	return 0;
}

static int make_crt(const uint8_t *pk, gnutls_x509_privkey_t xkey, gnutls_x509_crt_t *out)
{
	gnutls_x509_crt_t crt = NULL;
	gnutls_privkey_t priv = NULL;
	uint8_t serial[16];
	char cn[2 * QUIC_KEY_LEN + 1];
	int rc = -EPROTO;
	size_t i;

	*out = NULL;
	memcpy(serial, pk, sizeof(serial));
	serial[0] &= 0x7f; /* positive INTEGER */
	serial[0] |= 0x01; /* and not zero-led */
	for (i = 0; i < QUIC_KEY_LEN; i++)
		snprintf(cn + 2 * i, 3, "%02x", pk[i]);
	if (gnutls_x509_crt_init(&crt) < 0)
		return -ENOMEM;
	if (gnutls_privkey_init(&priv) < 0) {
		rc = -ENOMEM;
		goto out;
	}
	if (gnutls_privkey_import_x509(priv, xkey, 0) < 0 ||
	    gnutls_x509_crt_set_version(crt, 3) < 0 ||
	    gnutls_x509_crt_set_serial(crt, serial, sizeof(serial)) < 0 ||
	    gnutls_x509_crt_set_activation_time(crt, CERT_ACTIVATION) < 0 ||
	    gnutls_x509_crt_set_expiration_time(crt, GNUTLS_X509_NO_WELL_DEFINED_EXPIRATION) < 0 ||
	    gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn, strlen(cn)) < 0 ||
	    gnutls_x509_crt_set_key(crt, xkey) < 0 ||
	    gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE) < 0 ||
	    gnutls_x509_crt_privkey_sign(crt, crt, priv, GNUTLS_DIG_UNKNOWN, 0) < 0)
		goto out;
	*out = crt;
	crt = NULL;
	rc = 0;
out:
	gnutls_privkey_deinit(priv);
	if (crt)
		gnutls_x509_crt_deinit(crt);
	return rc;
}

/* The node key behind the credentials' private key: GnuTLS calls sign_data
 * for the TLS 1.3 CertificateVerify of every handshake, and libsodium signs
 * in about half of nettle's time (Ed25519 is deterministic: the same
 * signature either way). Freed, wiped, with the credentials. */
struct cert_signer {
	uint8_t sk[crypto_sign_SECRETKEYBYTES];
};

static int signer_sign(gnutls_privkey_t key, gnutls_sign_algorithm_t algo, void *userdata,
		       unsigned int flags, const gnutls_datum_t *data, gnutls_datum_t *sig)
{
	struct cert_signer *s = userdata;

	(void)key;
	(void)flags;
	if (algo != GNUTLS_SIGN_EDDSA_ED25519)
		return GNUTLS_E_UNSUPPORTED_SIGNATURE_ALGORITHM;
	sig->data = gnutls_malloc(crypto_sign_BYTES);
	if (!sig->data)
		return GNUTLS_E_MEMORY_ERROR;
	crypto_sign_detached(sig->data, NULL, data->data, data->size, s->sk);
	sig->size = crypto_sign_BYTES;
	return 0;
}

static void signer_free(gnutls_privkey_t key, void *userdata)
{
	(void)key;
	if (userdata) {
		sodium_memzero(userdata, sizeof(struct cert_signer));
		free(userdata);
	}
}

static int signer_info(gnutls_privkey_t key, unsigned int flags, void *userdata)
{
	(void)key;
	(void)userdata;
	if (flags & GNUTLS_PRIVKEY_INFO_PK_ALGO)
		return GNUTLS_PK_EDDSA_ED25519;
	if (flags & GNUTLS_PRIVKEY_INFO_SIGN_ALGO)
		return GNUTLS_SIGN_EDDSA_ED25519;
	if (flags & GNUTLS_PRIVKEY_INFO_HAVE_SIGN_ALGO)
		return GNUTLS_FLAGS_TO_SIGN_ALGO(flags) == GNUTLS_SIGN_EDDSA_ED25519;
	if (flags & GNUTLS_PRIVKEY_INFO_PK_ALGO_BITS)
		return 256;
	return GNUTLS_E_UNKNOWN_PK_ALGORITHM;
}

int quic_cert_cred_new(gnutls_certificate_credentials_t *out, const uint8_t *pk,
		       const uint8_t *sk)
{
	gnutls_x509_privkey_t xkey = NULL;
	gnutls_x509_crt_t crt = NULL;
	gnutls_certificate_credentials_t cred = NULL;
	gnutls_privkey_t priv = NULL;
	gnutls_pcert_st pcert;
	struct cert_signer *signer = NULL;
	int rc, have_pcert = 0;

	*out = NULL;
	rc = make_keys(pk, sk, &xkey);
	if (rc)
		return rc;
	rc = make_crt(pk, xkey, &crt);
	if (rc)
		goto out;
	rc = -ENOMEM;
	signer = malloc(sizeof(*signer));
	if (!signer || gnutls_privkey_init(&priv) < 0 ||
	    gnutls_certificate_allocate_credentials(&cred) < 0)
		goto out;
	memcpy(signer->sk, sk, sizeof(signer->sk));
	rc = -EPROTO;
	if (gnutls_privkey_import_ext4(priv, signer, signer_sign, NULL, NULL, signer_free,
				       signer_info, GNUTLS_PRIVKEY_IMPORT_AUTO_RELEASE) < 0)
		goto out;
	signer = NULL; /* priv owns it now */
	if (gnutls_pcert_import_x509(&pcert, crt, 0) < 0)
		goto out;
	have_pcert = 1;
	/* On success the credentials own pcert's contents and priv (GnuTLS
	 * checks here that priv signs for the certificate's key); on failure
	 * the caller frees both. */
	if (gnutls_certificate_set_key(cred, NULL, 0, &pcert, 1, priv) < 0)
		goto out;
	have_pcert = 0;
	priv = NULL;
	*out = cred;
	cred = NULL;
	rc = 0;
out:
	if (cred)
		gnutls_certificate_free_credentials(cred);
	if (have_pcert)
		gnutls_pcert_deinit(&pcert);
	gnutls_privkey_deinit(priv);
	signer_free(NULL, signer);
	if (crt)
		gnutls_x509_crt_deinit(crt);
	if (xkey)
		gnutls_x509_privkey_deinit(xkey);
	return rc;
}

int quic_cert_make(const uint8_t *pk, const uint8_t *sk, uint8_t **der, size_t *der_len)
{
	gnutls_x509_privkey_t xkey = NULL;
	gnutls_x509_crt_t crt = NULL;
	gnutls_datum_t d = { NULL, 0 };
	int rc;

	*der = NULL;
	*der_len = 0;
	if (!pk || !sk)
		return -EINVAL;
	rc = make_keys(pk, sk, &xkey);
	if (rc)
		return rc;
	rc = make_crt(pk, xkey, &crt);
	if (rc)
		goto out;
	if (gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, &d) < 0) {
		rc = -EPROTO;
		goto out;
	}
	*der = malloc(d.size);
	if (!*der) {
		rc = -ENOMEM;
		goto out;
	}
	memcpy(*der, d.data, d.size);
	*der_len = d.size;
out:
	gnutls_free(d.data);
	if (crt)
		gnutls_x509_crt_deinit(crt);
	if (xkey)
		gnutls_x509_privkey_deinit(xkey);
	return rc;
}

/* A DER cursor over [p, end): every length checked against what is left. */
struct der {
	const uint8_t *p, *end;
};

/* The next TLV at the cursor: its tag and content (c, clen); the cursor
 * moves past it. Definite, minimally encoded lengths only (DER): one
 * reading of the bytes, the one GnuTLS's DER decoder took before us. */
static int der_next(struct der *d, uint8_t *tag, const uint8_t **c, size_t *clen)
{
	size_t left = (size_t)(d->end - d->p), n, i, l = 0, hlen;

	if (left < 2)
		return -EBADMSG;
	*tag = d->p[0];
	if ((d->p[0] & 0x1f) == 0x1f) /* high tag numbers: none in a certificate */
		return -EBADMSG;
	if (d->p[1] < 0x80) {
		l = d->p[1];
		hlen = 2;
	} else {
		n = d->p[1] & 0x7f;
		if (n == 0 || n > 3 || left < 2 + n || d->p[2] == 0)
			return -EBADMSG;
		for (i = 0; i < n; i++)
			l = (l << 8) | d->p[2 + i];
		if (l < 0x80)
			return -EBADMSG;
		hlen = 2 + n;
	}
	if (l > left - hlen)
		return -EBADMSG;
	*c = d->p + hlen;
	*clen = l;
	d->p += hlen + l;
	return 0;
}

/* The next TLV must have tag want; its content becomes the cursor in. */
static int der_enter(struct der *d, uint8_t want, struct der *in)
{
	const uint8_t *c;
	size_t clen;
	uint8_t tag;

	if (der_next(d, &tag, &c, &clen) || tag != want)
		return -EBADMSG;
	in->p = c;
	in->end = c + clen;
	return 0;
}

/* AlgorithmIdentifier of Ed25519 (RFC 8410): SEQUENCE { OID 1.3.101.112 },
 * no parameters. */
static const uint8_t ed25519_alg[] = { 0x06, 0x03, 0x2b, 0x65, 0x70 };

static int der_is_ed25519_alg(struct der *d)
{
	struct der a;

	if (der_enter(d, 0x30, &a))
		return -EBADMSG;
	if ((size_t)(a.end - a.p) != sizeof(ed25519_alg) ||
	    memcmp(a.p, ed25519_alg, sizeof(ed25519_alg)) != 0)
		return -EKEYREJECTED;
	return 0;
}

/* A BIT STRING of exactly n whole bytes (no unused bits) at the cursor. */
static int der_bits(struct der *d, size_t n, const uint8_t **bits)
{
	const uint8_t *c;
	size_t clen;
	uint8_t tag;

	if (der_next(d, &tag, &c, &clen) || tag != 0x03)
		return -EBADMSG;
	if (clen != n + 1 || c[0] != 0)
		return -EKEYREJECTED;
	*bits = c + 1;
	return 0;
}

int quic_cert_parse(const uint8_t *der, size_t len, struct quic_cert_view *v)
{
	struct der top = { der, der + (der ? len : 0) }, crt, tbs, spki;
	const uint8_t *c;
	size_t clen;
	uint8_t tag;
	int rc, i;

	if (!der || !v || len == 0 || len > 16384)
		return -EBADMSG;
	/* Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm,
	 * signatureValue }, nothing after it. */
	if (der_enter(&top, 0x30, &crt) || top.p != top.end)
		return -EBADMSG;
	v->tbs = crt.p;
	if (der_enter(&crt, 0x30, &tbs))
		return -EBADMSG;
	v->tbs_len = (size_t)(tbs.end - v->tbs);
	/* TBSCertificate: [0] version (optional), serialNumber INTEGER,
	 * signature AlgorithmIdentifier, issuer, validity, subject (three
	 * SEQUENCEs), subjectPublicKeyInfo, then optional fields not read. */
	if (der_next(&tbs, &tag, &c, &clen))
		return -EBADMSG;
	if (tag == 0xa0 && der_next(&tbs, &tag, &c, &clen))
		return -EBADMSG;
	if (tag != 0x02)
		return -EBADMSG;
	rc = der_is_ed25519_alg(&tbs);
	if (rc)
		return rc;
	for (i = 0; i < 3; i++)
		if (der_next(&tbs, &tag, &c, &clen) || tag != 0x30)
			return -EBADMSG;
	/* SubjectPublicKeyInfo ::= SEQUENCE { Ed25519 AlgorithmIdentifier,
	 * BIT STRING of the 32-byte key }, nothing else. */
	if (der_enter(&tbs, 0x30, &spki))
		return -EBADMSG;
	rc = der_is_ed25519_alg(&spki);
	if (!rc)
		rc = der_bits(&spki, QUIC_KEY_LEN, &v->key);
	if (rc)
		return rc;
	if (spki.p != spki.end)
		return -EBADMSG;
	/* signatureAlgorithm Ed25519, signatureValue 64 bytes, nothing after. */
	rc = der_is_ed25519_alg(&crt);
	if (!rc)
		rc = der_bits(&crt, crypto_sign_BYTES, &v->sig);
	if (rc)
		return rc;
	return crt.p == crt.end ? 0 : -EBADMSG;
}

int quic_cert_verify(const uint8_t *der, size_t len, uint8_t *pk_out)
{
	struct quic_cert_view v;
	int rc = quic_cert_parse(der, len, &v);

	if (rc)
		return rc;
	if (crypto_sign_verify_detached(v.sig, v.tbs, v.tbs_len, v.key) != 0)
		return -EKEYREJECTED;
	memcpy(pk_out, v.key, QUIC_KEY_LEN);
	return 0;
}

static int write_file(const char *path, const gnutls_datum_t *d)
{
	int fd, err = 0;
	ssize_t n;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	n = write(fd, d->data, d->size);
	if (n < 0)
		err = -errno;
	else if ((size_t)n != d->size)
		err = -EIO;
	if (close(fd) < 0 && !err)
		err = -errno;
	return err;
}

int quic_cert_write_pem(const uint8_t *pk, const uint8_t *sk, const char *key_path,
			const char *cert_path)
{
	gnutls_x509_privkey_t xkey = NULL;
	gnutls_x509_crt_t crt = NULL;
	gnutls_datum_t k = { NULL, 0 }, c = { NULL, 0 };
	int rc;

	rc = make_keys(pk, sk, &xkey);
	if (rc)
		return rc;
	rc = make_crt(pk, xkey, &crt);
	if (rc)
		goto out;
	if (gnutls_x509_privkey_export2_pkcs8(xkey, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN,
					      &k) < 0 ||
	    gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &c) < 0) {
		rc = -EPROTO;
		goto out;
	}
	rc = write_file(key_path, &k);
	if (!rc)
		rc = write_file(cert_path, &c);
out:
	gnutls_free(k.data);
	gnutls_free(c.data);
	if (crt)
		gnutls_x509_crt_deinit(crt);
	if (xkey)
		gnutls_x509_privkey_deinit(xkey);
	return rc;
}

/* ---- Curve code for GnuTLS ----
 *
 * GnuTLS has no interface to plug public-key code in, and its backend,
 * nettle 3.8 (with GMP), is the slowest part of a handshake: a server's
 * X25519 shared secret and its check of the client's Ed25519
 * CertificateVerify took ~110 us of ~350 us per handshake. libGnuTLS
 * calls these two through libhogweed's dynamic symbols, so a definition in
 * the executable that links this file takes their place (ELF symbol
 * interposition, as a malloc replacement does), here with libsodium's
 * implementations of the same functions: RFC 7748 X25519 (the same
 * clamping, the top bit of the u-coordinate masked, the same output also
 * for small-order points: GnuTLS checks the all-zero secret itself) and
 * RFC 8032 Ed25519 verification (libsodium is stricter: it also refuses
 * small-order keys and non-canonical encodings, which only refuses more).
 * Measured on this machine per call: X25519 42 -> 27 us, Ed25519 verify
 * 67 -> 35 us. test_quic_frame checks that the interposition is in effect
 * and agrees with nettle's own functions. X25519 key generation
 * (curve25519_mul_g) stays nettle's: libsodium 1.0.18's is slower. */
void nettle_curve25519_mul(uint8_t *q, const uint8_t *n, const uint8_t *p)
{
	/* -1 for a small-order p (libsodium may then leave q unwritten) or an
	 * all-zero result: X25519 of a small-order point by a clamped scalar
	 * (a multiple of 8) is the point at infinity, u = 0, what nettle
	 * writes; GnuTLS then refuses the all-zero secret. */
	if (crypto_scalarmult_curve25519(q, n, p) != 0)
		memset(q, 0, 32);
}

int nettle_ed25519_sha512_verify(const uint8_t *pub, size_t length, const uint8_t *msg,
				 const uint8_t *signature)
{
	return crypto_sign_verify_detached(signature, msg, length, pub) == 0;
}
