/*
 * test_pki.c: certificates issued from a CA (controller/pki.c), checked with OpenSSL's own
 * verifier, not with the code under test: the chain verifies against the CA for the purpose
 * each profile gives (a server certificate for TLS servers and clients, a client certificate
 * for clients only), the host names match the SANs (wildcards included), the key matches the
 * certificate, the validity is as asked, serials differ; a CA that is not a CA, a key that is
 * not the CA's and text that is not PEM are refused with a message saying which.
 * Fixtures (tests/unit/data/pki/, test-only keys made with the openssl CLI): ca.crt/ca.key, a
 * P-256 CA; notca.crt/other.key, a self-signed certificate with CA:FALSE.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "err.h"
#include "pki.h"
#include "testfile.h"

struct fx {
    char *ca_crt, *ca_key, *notca_crt, *other_key;
};

static char *fixture(const char *name)
{
    char rel[64];
    size_t n;

    snprintf(rel, sizeof(rel), "pki/%s", name);
    return (char *)testfile_read_data(rel, &n);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));

    f->ca_crt = fixture("ca.crt");
    f->ca_key = fixture("ca.key");
    f->notca_crt = fixture("notca.crt");
    f->other_key = fixture("other.key");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    free(f->ca_crt);
    free(f->ca_key);
    free(f->notca_crt);
    free(f->other_key);
    free(f);
    return 0;
}

static X509 *pem_cert(const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);

    BIO_free(b);
    assert_non_null(x);
    return x;
}

static EVP_PKEY *pem_key(const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);

    BIO_free(b);
    assert_non_null(k);
    return k;
}

/* X509_verify_cert of leaf against the CA alone, for an SSL purpose; 1 when it verifies. */
static int verify(const char *ca_pem, X509 *leaf, int purpose)
{
    X509_STORE *st = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    X509 *ca = pem_cert(ca_pem);
    int ok;

    X509_STORE_add_cert(st, ca);
    X509_STORE_CTX_init(ctx, st, leaf, NULL);
    X509_STORE_CTX_set_purpose(ctx, purpose);
    ok = X509_verify_cert(ctx);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(st);
    X509_free(ca);
    return ok;
}

static void issue(struct fx *f, const struct pki_request *r, char **cert, char **key)
{
    char err[160];
    int rc = pki_issue(f->ca_crt, f->ca_key, r, cert, key, err, sizeof(err));

    if (rc)
        fail_msg("pki_issue: %d %s", rc, err);
}

static const char *const server_sans[] = {"*.c1-peer.ns.svc", "c1.ns.svc", "localhost",
                                          "127.0.0.1"};

static void test_server_certificate(void **state)
{
    struct fx *f = *state;
    time_t now = time(NULL);
    struct pki_request r = {"c1", server_sans, 4, true, true, 365, now};
    char *cert, *key;
    X509 *x;
    EVP_PKEY *k;
    int day, sec;

    issue(f, &r, &cert, &key);
    x = pem_cert(cert);
    k = pem_key(key);
    assert_int_equal(X509_check_private_key(x, k), 1);
    assert_int_equal(verify(f->ca_crt, x, X509_PURPOSE_SSL_SERVER), 1);
    assert_int_equal(verify(f->ca_crt, x, X509_PURPOSE_SSL_CLIENT), 1);
    assert_int_equal(X509_check_host(x, "c1-2.c1-peer.ns.svc", 0, 0, NULL), 1);
    assert_int_equal(X509_check_host(x, "c1.ns.svc", 0, 0, NULL), 1);
    assert_int_equal(X509_check_host(x, "c2-0.c2-peer.ns.svc", 0, 0, NULL), 0);
    assert_int_equal(X509_check_ip_asc(x, "127.0.0.1", 0), 1);
    assert_int_equal(X509_check_ca(x), 0);
    /* valid from an hour ago for 365 days */
    assert_int_equal(ASN1_TIME_diff(&day, &sec, X509_get0_notBefore(x), X509_get0_notAfter(x)), 1);
    assert_int_equal(day, 365);
    assert_int_equal(sec, 3600);
    X509_free(x);
    EVP_PKEY_free(k);
    free(cert);
    pki_free_key(key);
}

static void test_client_certificate(void **state)
{
    struct fx *f = *state;
    struct pki_request r = {"root", NULL, 0, false, true, 30, time(NULL)};
    char *cert, *key, cn[64];
    X509 *x;

    issue(f, &r, &cert, &key);
    x = pem_cert(cert);
    assert_int_equal(verify(f->ca_crt, x, X509_PURPOSE_SSL_CLIENT), 1);
    assert_int_not_equal(verify(f->ca_crt, x, X509_PURPOSE_SSL_SERVER), 1);
    X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn));
    assert_string_equal(cn, "root");
    X509_free(x);
    free(cert);
    pki_free_key(key);
}

static void test_serials_differ(void **state)
{
    struct fx *f = *state;
    struct pki_request r = {"root", NULL, 0, false, true, 30, time(NULL)};
    char *c1, *k1, *c2, *k2;
    X509 *x1, *x2;

    issue(f, &r, &c1, &k1);
    issue(f, &r, &c2, &k2);
    x1 = pem_cert(c1);
    x2 = pem_cert(c2);
    assert_int_not_equal(ASN1_INTEGER_cmp(X509_get0_serialNumber(x1), X509_get0_serialNumber(x2)), 0);
    assert_string_not_equal(k1, k2);
    X509_free(x1);
    X509_free(x2);
    free(c1);
    free(c2);
    pki_free_key(k1);
    pki_free_key(k2);
}

static void expect_refusal(const char *ca, const char *key, const struct pki_request *r,
                           const char *needle)
{
    char *cert = (char *)1, *k = (char *)1, err[160] = "";

    assert_int_equal(pki_issue(ca, key, r, &cert, &k, err, sizeof(err)), CE_INVAL);
    if (!strstr(err, needle))
        fail_msg("message \"%s\", expected \"%s\"", err, needle);
    assert_null(cert);
    assert_null(k);
}

static void test_refusals(void **state)
{
    struct fx *f = *state;
    struct pki_request r = {"x", NULL, 0, true, false, 1, time(NULL)};
    struct pki_request bad = {"", NULL, 0, true, false, 1, time(NULL)};
    const char *const comma[] = {"a,b"};
    struct pki_request sans = {"x", comma, 1, true, false, 1, time(NULL)};
    char *cert, *key, err[160];

    expect_refusal(f->notca_crt, f->other_key, &r, "not a CA certificate");
    expect_refusal(f->ca_crt, f->other_key, &r, "does not match");
    expect_refusal("garbage", f->ca_key, &r, "not a PEM certificate");
    expect_refusal(f->ca_crt, "garbage", &r, "not a PEM private key");
    expect_refusal(f->ca_crt, f->ca_key, &bad, "needs a CN");
    /* a SAN that would smuggle another entry into the extension text */
    assert_int_not_equal(pki_issue(f->ca_crt, f->ca_key, &sans, &cert, &key, err, sizeof(err)), 0);
    assert_null(cert);
    assert_null(key);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_server_certificate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_certificate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_serials_differ, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
