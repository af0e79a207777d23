/*
 * pki.c: issuing a certificate from the user's CA with OpenSSL (see pki.h for the profile).
 *
 * Invariants: nothing is written anywhere but the returned strings; every OpenSSL object is
 * freed on every path; a private key's PEM text is cleansed before it is freed; a CA that is
 * not a CA, or whose key does not match its certificate, is refused before anything is made.
 */
#include "pki.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "err.h"

#define SERIAL_BYTES 16
#define SKEW_SECONDS 3600
#define SAN_TEXT_MAX 4096

struct ca {
    X509 *cert;
    EVP_PKEY *key;
};

static int failf(char *err, size_t n, int rc, const char *msg)
{
    if (err && n)
        snprintf(err, n, "%s", msg);
    return rc;
}

static void ca_free(struct ca *ca)
{
    X509_free(ca->cert);
    EVP_PKEY_free(ca->key);
}

static int ca_load(const char *cert_pem, const char *key_pem, struct ca *ca, char *err, size_t n)
{
    BIO *b = BIO_new_mem_buf(cert_pem, -1);

    ca->cert = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    b = BIO_new_mem_buf(key_pem, -1);
    ca->key = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    if (!ca->cert)
        return failf(err, n, CE_INVAL, "the CA's tls.crt is not a PEM certificate");
    if (!ca->key)
        return failf(err, n, CE_INVAL, "the CA's tls.key is not a PEM private key");
    if (X509_check_ca(ca->cert) != 1)
        return failf(err, n, CE_INVAL, "the CA's tls.crt is not a CA certificate (CA:TRUE)");
    if (X509_check_private_key(ca->cert, ca->key) != 1)
        return failf(err, n, CE_INVAL, "the CA's tls.key does not match its tls.crt");
    return 0;
}

/* A positive random serial of SERIAL_BYTES bytes. */
static int set_serial(X509 *x)
{
    unsigned char raw[SERIAL_BYTES];
    BIGNUM *bn;
    int ok;

    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return CE_IO;
    raw[0] &= 0x7f;
    raw[0] |= 0x01; /* never zero, never negative */
    bn = BN_bin2bn(raw, sizeof(raw), NULL);
    ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
    BN_free(bn);
    return ok ? 0 : CE_IO;
}

static bool is_ip(const char *s)
{
    unsigned char buf[16];

    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* "DNS:a,IP:1.2.3.4,..." into out. */
static int san_text(const struct pki_request *r, char *out, size_t n)
{
    size_t at = 0;

    out[0] = '\0';
    for (size_t i = 0; i < r->n_sans; i++) {
        int w = snprintf(out + at, n - at, "%s%s:%s", i ? "," : "",
                         is_ip(r->sans[i]) ? "IP" : "DNS", r->sans[i]);
        if (w < 0 || (size_t)w >= n - at || strchr(r->sans[i], ','))
            return CE_INVAL;
        at += (size_t)w;
    }
    return 0;
}

static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    int ok = e && X509_add_ext(x, e, -1) == 1;

    X509_EXTENSION_free(e);
    return ok ? 0 : CE_IO;
}

static int add_extensions(X509 *x, const struct ca *ca, const struct pki_request *r)
{
    const char *eku = r->server && r->client ? "serverAuth,clientAuth"
                      : r->server            ? "serverAuth"
                                             : "clientAuth";
    char sans[SAN_TEXT_MAX];
    X509V3_CTX ctx;
    int rc;

    X509V3_set_ctx(&ctx, ca->cert, x, NULL, NULL, 0);
    if ((rc = add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE")) ||
        (rc = add_ext(x, &ctx, NID_key_usage, "critical,digitalSignature,keyEncipherment")) ||
        (rc = add_ext(x, &ctx, NID_ext_key_usage, eku)) ||
        (rc = add_ext(x, &ctx, NID_subject_key_identifier, "hash")) ||
        (rc = add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always")))
        return rc;
    if (!r->n_sans)
        return 0;
    if ((rc = san_text(r, sans, sizeof(sans))))
        return rc;
    return add_ext(x, &ctx, NID_subject_alt_name, sans);
}

static int set_names_and_times(X509 *x, const struct ca *ca, const struct pki_request *r)
{
    X509_NAME *subj = X509_get_subject_name(x);
    time_t now = r->now;

    if (X509_set_version(x, 2) != 1 ||
        X509_set_issuer_name(x, X509_get_subject_name(ca->cert)) != 1 ||
        X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_UTF8, (const unsigned char *)r->cn, -1,
                                   -1, 0) != 1 ||
        !X509_time_adj(X509_getm_notBefore(x), -SKEW_SECONDS, &now) ||
        !X509_time_adj_ex(X509_getm_notAfter(x), r->days, 0, &now))
        return CE_IO;
    return 0;
}

/* PEM text of a certificate or a private key (key != NULL), on the heap. */
static int to_pem(X509 *x, EVP_PKEY *key, char **out)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *data;
    long len;
    int ok;

    if (!b)
        return CE_NOMEM;
    ok = key ? PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL)
             : PEM_write_bio_X509(b, x);
    len = BIO_get_mem_data(b, &data);
    *out = ok && len > 0 ? malloc((size_t)len + 1) : NULL;
    if (*out) {
        memcpy(*out, data, (size_t)len);
        (*out)[len] = '\0';
    }
    if (key && len > 0)
        OPENSSL_cleanse(data, (size_t)len);
    BIO_free(b);
    return *out ? 0 : CE_NOMEM;
}

static int make_cert(const struct ca *ca, const struct pki_request *r, EVP_PKEY *key,
                     char **cert_pem)
{
    X509 *x = X509_new();
    int rc = CE_NOMEM;

    if (!x)
        return rc;
    if ((rc = set_serial(x)) || (rc = set_names_and_times(x, ca, r)))
        goto out_free_x509;
    rc = CE_IO;
    if (X509_set_pubkey(x, key) != 1)
        goto out_free_x509;
    if ((rc = add_extensions(x, ca, r)))
        goto out_free_x509;
    rc = CE_IO;
    if (X509_sign(x, ca->key, EVP_sha256()) <= 0)
        goto out_free_x509;
    rc = to_pem(x, NULL, cert_pem);
out_free_x509:
    X509_free(x);
    return rc;
}

int pki_issue(const char *ca_cert_pem, const char *ca_key_pem, const struct pki_request *req,
              char **cert_pem, char **key_pem, char *err, size_t errsz)
{
    struct ca ca = {0};
    EVP_PKEY *key = NULL;
    int rc;

    *cert_pem = *key_pem = NULL;
    if (!req->cn || !req->cn[0] || req->days <= 0 || (!req->server && !req->client))
        return failf(err, errsz, CE_INVAL, "a certificate needs a CN, a validity and a usage");
    if ((rc = ca_load(ca_cert_pem, ca_key_pem, &ca, err, errsz)))
        goto out_free_ca;
    rc = CE_IO;
    if (!(key = EVP_EC_gen("P-256")))
        goto out_free_ca;
    if ((rc = make_cert(&ca, req, key, cert_pem)))
        goto out_free_key;
    if ((rc = to_pem(NULL, key, key_pem))) {
        free(*cert_pem);
        *cert_pem = NULL;
    }
out_free_key:
    EVP_PKEY_free(key);
out_free_ca:
    ca_free(&ca);
    if (rc && rc != CE_INVAL)
        failf(err, errsz, rc, "OpenSSL could not make the certificate");
    return rc;
}

void pki_free_key(char *key_pem)
{
    if (!key_pem)
        return;
    OPENSSL_cleanse(key_pem, strlen(key_pem));
    free(key_pem);
}
