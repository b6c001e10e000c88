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

int quic_cert_cred_new(gnutls_certificate_credentials_t *out, const uint8_t *pk,
		       const uint8_t *sk)
{
	gnutls_x509_privkey_t xkey = NULL;
	gnutls_x509_crt_t crt = NULL;
	gnutls_certificate_credentials_t cred = NULL;
	int rc;

	*out = NULL;
	rc = make_keys(pk, sk, &xkey);
	if (rc)
		return rc;
	rc = make_crt(pk, xkey, &crt);
	if (rc)
		goto out;
	if (gnutls_certificate_allocate_credentials(&cred) < 0) {
		rc = -ENOMEM;
		goto out;
	}
	if (gnutls_certificate_set_x509_key(cred, &crt, 1, xkey) < 0) {
		gnutls_certificate_free_credentials(cred);
		rc = -EPROTO;
		goto out;
	}
	*out = cred;
	rc = 0;
out:
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

/* DER TLV header at buf[0..len): tag, content length, header length. */
static int der_hdr(const uint8_t *buf, size_t len, uint8_t *tag, size_t *clen, size_t *hlen)
{
	size_t n, i, l = 0;

	if (len < 2)
		return -EBADMSG;
	*tag = buf[0];
	if (buf[1] < 0x80) {
		*clen = buf[1];
		*hlen = 2;
	} else {
		n = buf[1] & 0x7f;
		if (n == 0 || n > 4 || len < 2 + n)
			return -EBADMSG;
		for (i = 0; i < n; i++)
			l = (l << 8) | buf[2 + i];
		*clen = l;
		*hlen = 2 + n;
	}
	if (*clen > len - *hlen)
		return -EBADMSG;
	return 0;
}

int quic_cert_verify(const uint8_t *der, size_t len, uint8_t *pk_out)
{
	gnutls_x509_crt_t crt = NULL;
	gnutls_datum_t d = { (unsigned char *)der, (unsigned int)len };
	gnutls_datum_t x = { NULL, 0 };
	gnutls_ecc_curve_t curve = GNUTLS_ECC_CURVE_INVALID;
	uint8_t tag, sig[128];
	size_t clen, hlen, tclen, thlen, siglen = sizeof(sig);
	const uint8_t *tbs;
	int rc = -EBADMSG;

	if (!der || len == 0 || len > 16384)
		return -EBADMSG;
	/* Certificate ::= SEQUENCE { tbsCertificate SEQUENCE, ... } */
	if (der_hdr(der, len, &tag, &clen, &hlen) || tag != 0x30 || hlen + clen != len)
		return -EBADMSG;
	tbs = der + hlen;
	if (der_hdr(tbs, clen, &tag, &tclen, &thlen) || tag != 0x30)
		return -EBADMSG;
	if (gnutls_x509_crt_init(&crt) < 0)
		return -ENOMEM;
	if (gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_DER) < 0)
		goto out;
	rc = -EKEYREJECTED;
	if (gnutls_x509_crt_get_pk_algorithm(crt, NULL) != GNUTLS_PK_EDDSA_ED25519 ||
	    gnutls_x509_crt_get_signature_algorithm(crt) != GNUTLS_SIGN_EDDSA_ED25519)
		goto out;
	if (gnutls_x509_crt_get_pk_ecc_raw(crt, &curve, &x, NULL) < 0 ||
	    curve != GNUTLS_ECC_CURVE_ED25519 || x.size != QUIC_KEY_LEN)
		goto out;
	if (gnutls_x509_crt_get_signature(crt, (char *)sig, &siglen) < 0 ||
	    siglen != crypto_sign_BYTES)
		goto out;
	if (crypto_sign_verify_detached(sig, tbs, thlen + tclen, x.data) != 0)
		goto out;
	memcpy(pk_out, x.data, QUIC_KEY_LEN);
	rc = 0;
out:
	gnutls_free(x.data);
	gnutls_x509_crt_deinit(crt);
	return rc;
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
