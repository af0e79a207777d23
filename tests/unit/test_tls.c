/*
 * test_tls.c: server/api/tls.c over socketpairs: mutual TLS with the verified client CN,
 * refusals (no client certificate, a certificate from another CA, a server the client does not
 * trust), plaintext detection, self-signed auto-TLS files (made once, reused, loadable), the
 * choice between given files and auto TLS, and unusable files refused at context creation;
 * then the client-port transport on an https:// listener (its loop in a thread, libcurl as the
 * client): the gateway over TLS, rpc_call_tls_cn of the verified client certificate, and the
 * refusals (no certificate, another CA, plaintext) with the listener serving on.
 * Certificates are made here with OpenSSL (an EC P-256 CA and leaves it signs).
 * Run: hack/unit.sh tests/unit/test_tls.c server/api/tls.c server/api/transport*.c
 *      server/api/ws.c server/api/grpcframe.c server/api/gateway/pbjson.c
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <pthread.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "config.h"
#include "err.h"
#include "evloop.h"
#include "kv.pb-c.h"
#include "server/api/rpc.h"
#include "server/api/tls.h"
#include "testfile.h"
#include "tmpdir.h"

struct fx {
    char dir[64];
};

/* ---- certificates ---- */

static char *in_dir(const struct fx *f, const char *name)
{
    static char buf[16][128];
    static int at;
    char *p = buf[at++ % 16];

    snprintf(p, sizeof(buf[0]), "%s/%s", f->dir, name);
    return p;
}

static void add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX v3;
    X509_EXTENSION *ext;

    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, issuer, cert, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    assert_non_null(ext);
    assert_int_equal(X509_add_ext(cert, ext, -1), 1);
    X509_EXTENSION_free(ext);
}

/* A certificate for key with CN cn, signed by (issuer, ikey), or self-signed if issuer NULL. */
static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *ikey, bool ca)
{
    static long serial = 1;
    X509 *c = X509_new();

    assert_non_null(c);
    X509_set_version(c, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(c), serial++);
    X509_gmtime_adj(X509_getm_notBefore(c), -60);
    X509_gmtime_adj(X509_getm_notAfter(c), 3600);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(c), "CN", MBSTRING_ASC,
                               (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(c, X509_get_subject_name(issuer ? issuer : c));
    X509_set_pubkey(c, key);
    if (ca) {
        add_ext(c, issuer ? issuer : c, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(c, issuer ? issuer : c, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        add_ext(c, issuer, NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost");
        add_ext(c, issuer, NID_ext_key_usage, "serverAuth,clientAuth");
    }
    assert_true(X509_sign(c, ikey ? ikey : key, EVP_sha256()) > 0);
    return c;
}

static void write_pem(const char *path, X509 *cert, EVP_PKEY *key)
{
    FILE *fp = fopen(path, "w");

    assert_non_null(fp);
    if (cert)
        assert_int_equal(PEM_write_X509(fp, cert), 1);
    else
        assert_int_equal(PEM_write_PrivateKey(fp, key, NULL, NULL, 0, NULL, NULL), 1);
    fclose(fp);
}

/* ca-<p>.pem, and <leaf>.pem / <leaf>-key.pem signed by it. */
static void make_ca(struct fx *f, const char *p, const char *const *leaves, int n)
{
    char name[64];
    EVP_PKEY *cakey = EVP_EC_gen("P-256");
    X509 *ca = make_cert(cakey, p, NULL, NULL, true);

    snprintf(name, sizeof(name), "ca-%s.pem", p);
    write_pem(in_dir(f, name), ca, NULL);
    for (int i = 0; i < n; i++) {
        EVP_PKEY *k = EVP_EC_gen("P-256");
        X509 *c = make_cert(k, leaves[i], ca, cakey, false);
        snprintf(name, sizeof(name), "%s.pem", leaves[i]);
        write_pem(in_dir(f, name), c, NULL);
        snprintf(name, sizeof(name), "%s-key.pem", leaves[i]);
        write_pem(in_dir(f, name), NULL, k);
        X509_free(c);
        EVP_PKEY_free(k);
    }
    X509_free(ca);
    EVP_PKEY_free(cakey);
}

static int setup(void **state)
{
    static const char *const a_leaves[] = {"server", "alice"};
    static const char *const b_leaves[] = {"mallory"};
    struct fx *f = calloc(1, sizeof(*f));

    strcpy(f->dir, "/tmp/test_tls.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    make_ca(f, "a", a_leaves, 2);
    make_ca(f, "b", b_leaves, 1);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    tmpdir_remove(f->dir);
    free(f);
    return 0;
}

/* ---- a pair of sessions over a socketpair ---- */

struct pair {
    int fd[2];
    tls_ctx *sx, *cx;
    tls_sess *s, *c;
    int src, crc;   /* last handshake results */
};

static void pair_open(struct pair *p, const tls_files *srv, const tls_files *cli)
{
    memset(p, 0, sizeof(*p));
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, p->fd), 0);
    assert_int_equal(tls_ctx_new_server(srv, "client", &p->sx), 0);
    assert_int_equal(tls_ctx_new_client(cli, "client", &p->cx), 0);
    assert_int_equal(tls_sess_new(p->sx, p->fd[0], NULL, &p->s), 0);
    assert_int_equal(tls_sess_new(p->cx, p->fd[1], "127.0.0.1", &p->c), 0);
}

/* Steps both handshakes until neither waits (bounded). */
static void pair_handshake(struct pair *p)
{
    for (int i = 0; i < 100; i++) {
        p->crc = tls_sess_handshake(p->c);
        p->src = tls_sess_handshake(p->s);
        if (p->src != CE_AGAIN && p->crc != CE_AGAIN)
            return;
        if (p->src != CE_AGAIN && p->src != 0)
            return;
        if (p->crc != CE_AGAIN && p->crc != 0)
            return;
    }
    fail_msg("handshake did not finish");
}

static void pair_close(struct pair *p)
{
    tls_sess_free(p->s);
    tls_sess_free(p->c);
    tls_ctx_free(p->sx);
    tls_ctx_free(p->cx);
    close(p->fd[0]);
    close(p->fd[1]);
}

static tls_files server_files(const struct fx *f, bool cca)
{
    tls_files t = {in_dir(f, "server.pem"), in_dir(f, "server-key.pem"), in_dir(f, "ca-a.pem"),
                   cca, false};
    return t;
}

/* Reads what the peer wrote (bounded retries on CE_AGAIN). */
static ssize_t read_some(tls_sess *s, char *buf, size_t len)
{
    ssize_t n = CE_AGAIN;

    for (int i = 0; i < 100 && n == CE_AGAIN; i++)
        n = tls_sess_read(s, buf, len);
    return n;
}

/* The server fails the handshake of cli with CE_IO and names no client. */
static void expect_server_refuses(const tls_files *srv, const tls_files *cli)
{
    struct pair p;

    pair_open(&p, srv, cli);
    pair_handshake(&p);
    assert_int_equal(p.src, CE_IO);
    assert_null(tls_sess_peer_cn(p.s));
    pair_close(&p);
}

static void test_mutual_tls_gives_the_client_cn(void **state)
{
    struct fx *f = *state;
    tls_files srv = server_files(f, true);
    tls_files cli = {in_dir(f, "alice.pem"), in_dir(f, "alice-key.pem"), in_dir(f, "ca-a.pem"),
                     false, false};
    struct pair p;
    char buf[64] = {0};

    pair_open(&p, &srv, &cli);
    pair_handshake(&p);
    assert_int_equal(p.src, 0);
    assert_int_equal(p.crc, 0);
    assert_true(tls_sess_established(p.s));
    assert_string_equal(tls_sess_peer_cn(p.s), "alice");
    assert_string_equal(tls_sess_peer_cn(p.c), "server");
    assert_string_equal(tls_sess_alpn(p.s), "");
    assert_int_equal(tls_sess_write(p.c, "ping", 4), 4);
    assert_int_equal(read_some(p.s, buf, sizeof(buf)), 4);
    assert_memory_equal(buf, "ping", 4);
    assert_int_equal(tls_sess_write(p.s, "pong!", 5), 5);
    assert_int_equal(read_some(p.c, buf, sizeof(buf)), 5);
    assert_memory_equal(buf, "pong!", 5);
    assert_int_equal(tls_sess_pending(p.c), 0);
    /* a close_notify reads as EOF on the other side */
    tls_sess_free(p.c);
    p.c = NULL;
    assert_int_equal(read_some(p.s, buf, sizeof(buf)), 0);
    pair_close(&p);
}

static void test_no_client_ca_no_cn(void **state)
{
    struct fx *f = *state;
    tls_files srv = server_files(f, false);
    tls_files cli = {in_dir(f, "alice.pem"), in_dir(f, "alice-key.pem"), in_dir(f, "ca-a.pem"),
                     false, false};
    struct pair p;

    srv.trusted_ca_file = NULL;
    pair_open(&p, &srv, &cli);
    pair_handshake(&p);
    assert_int_equal(p.src, 0);
    assert_int_equal(p.crc, 0);
    assert_null(tls_sess_peer_cn(p.s));   /* no certificate was asked for */
    pair_close(&p);
}

/* etcd 3.4: a trusted CA alone (no client_cert_auth) already requires a client certificate. */
static void test_trusted_ca_alone_requires_cert(void **state)
{
    struct fx *f = *state;
    tls_files srv = server_files(f, false);
    tls_files cli = {NULL, NULL, in_dir(f, "ca-a.pem"), false, false};
    struct pair p;

    pair_open(&p, &srv, &cli);
    pair_handshake(&p);
    assert_int_equal(p.src, CE_IO);
    pair_close(&p);
}

static void test_refuses_client_without_cert(void **state)
{
    struct fx *f = *state;
    tls_files srv = server_files(f, true);
    tls_files cli = {NULL, NULL, in_dir(f, "ca-a.pem"), false, false};

    expect_server_refuses(&srv, &cli);
}

static void test_refuses_cert_from_another_ca(void **state)
{
    struct fx *f = *state;
    tls_files srv = server_files(f, true);
    tls_files cli = {in_dir(f, "mallory.pem"), in_dir(f, "mallory-key.pem"), in_dir(f, "ca-a.pem"),
                     false, false};

    expect_server_refuses(&srv, &cli);
}

static void test_client_refuses_untrusted_server(void **state)
{
    struct fx *f = *state;
    tls_files srv = server_files(f, false);
    tls_files cli = {NULL, NULL, in_dir(f, "ca-b.pem"), false, false};
    tls_files skip = {NULL, NULL, NULL, false, true};
    struct pair p;

    srv.trusted_ca_file = NULL;   /* no client certificate asked for */
    pair_open(&p, &srv, &cli);
    pair_handshake(&p);
    assert_int_equal(p.crc, CE_IO);
    pair_close(&p);
    pair_open(&p, &srv, &skip);   /* insecure_skip_verify: accepted */
    pair_handshake(&p);
    assert_int_equal(p.crc, 0);
    assert_int_equal(p.src, 0);
    pair_close(&p);
}

static void test_sniff_plaintext(void **state)
{
    int fd[2];

    (void)state;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fd), 0);
    assert_int_equal(tls_sniff_plaintext(fd[0], "client"), CE_AGAIN);
    assert_int_equal(write(fd[1], "\x16\x03\x01", 3), 3);
    assert_int_equal(tls_sniff_plaintext(fd[0], "client"), 0);   /* peeked, not consumed */
    assert_int_equal(tls_sniff_plaintext(fd[0], "client"), 0);
    close(fd[0]);
    close(fd[1]);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fd), 0);
    assert_int_equal(write(fd[1], "GET / HTTP/1.1\r\n", 16), 16);
    assert_int_equal(tls_sniff_plaintext(fd[0], "client"), CE_BAD_PROTO);
    close(fd[1]);
    assert_int_equal(tls_sniff_plaintext(fd[0], "client"), CE_IO);   /* drained, then EOF */
    close(fd[0]);
}

/* The whole file at path as a string; it is not empty. */
static char *slurp(const char *path)
{
    size_t len;
    char *buf = (char *)testfile_read(path, &len);

    assert_true(len > 0);
    return buf;
}

static void test_auto_cert_made_once_and_usable(void **state)
{
    struct fx *f = *state;
    const char *hosts[] = {"127.0.0.1", "localhost"};
    char *cert, *key, *cert2, *key2, *a, *b;
    tls_files srv = {0}, cli = {NULL, NULL, NULL, false, true};
    struct pair p;

    assert_int_equal(tls_auto_cert(in_dir(f, "d/fixtures/client"), hosts, 2, &cert, &key), 0);
    assert_string_equal(cert, in_dir(f, "d/fixtures/client/cert.pem"));
    a = slurp(cert);
    assert_int_equal(tls_auto_cert(in_dir(f, "d/fixtures/client"), hosts, 2, &cert2, &key2), 0);
    b = slurp(cert2);
    assert_string_equal(a, b);   /* reused, not remade */
    srv.cert_file = cert;
    srv.key_file = key;
    pair_open(&p, &srv, &cli);
    pair_handshake(&p);
    assert_int_equal(p.src, 0);
    assert_int_equal(p.crc, 0);
    pair_close(&p);
    free(a);
    free(b);
    free(cert);
    free(key);
    free(cert2);
    free(key2);
}

static void test_setup_from_config(void **state)
{
    struct fx *f = *state;
    const char *urls[] = {"https://127.0.0.1:2379", "https://[::1]:2379"};
    config_tls given = {in_dir(f, "server.pem"), in_dir(f, "server-key.pem"), NULL, false, true};
    config_tls none = {0};
    config_tls autotls = {NULL, NULL, NULL, true, true};
    tls_setup s;
    bool use;

    assert_int_equal(tls_setup_from_config(&none, f->dir, "client", urls, 2, &s, &use), 0);
    assert_false(use);
    tls_setup_fini(&s);
    assert_int_equal(tls_setup_from_config(&given, in_dir(f, "g"), "client", urls, 2, &s, &use),
                     0);
    assert_true(use);
    assert_string_equal(s.files.cert_file, given.cert_file);
    assert_null(s.auto_cert);
    assert_int_equal(access(in_dir(f, "g/fixtures"), F_OK), -1);   /* files win over auto */
    tls_setup_fini(&s);
    assert_int_equal(tls_setup_from_config(&autotls, in_dir(f, "p"), "peer", urls, 2, &s, &use),
                     0);
    assert_true(use);
    assert_string_equal(s.files.cert_file, in_dir(f, "p/fixtures/peer/cert.pem"));
    assert_false(s.files.client_cert_auth);   /* no CA to verify against */
    tls_setup_fini(&s);
}

static void test_bad_files_refused(void **state)
{
    struct fx *f = *state;
    tls_files missing = {in_dir(f, "nope.pem"), in_dir(f, "nope-key.pem"), NULL, false, false};
    tls_files mismatch = {in_dir(f, "server.pem"), in_dir(f, "alice-key.pem"), NULL, false, false};
    tls_files no_ca = {in_dir(f, "server.pem"), in_dir(f, "server-key.pem"), NULL, true, false};
    tls_files no_cert = {NULL, NULL, NULL, false, false};
    tls_ctx *x = NULL;

    assert_int_equal(tls_ctx_new_server(&missing, "client", &x), CE_INVAL);
    assert_int_equal(tls_ctx_new_server(&mismatch, "client", &x), CE_INVAL);
    assert_int_equal(tls_ctx_new_server(&no_ca, "client", &x), CE_INVAL);
    assert_int_equal(tls_ctx_new_server(&no_cert, "client", &x), CE_INVAL);
    assert_null(x);
}

/* ---- the transport over TLS ---- */

/* /test.Tls/Cn: answers a KeyValue whose value is the call's TLS CN ("-" if none). */
static void cn_msg(rpc_call *c, ProtobufCMessage *req)
{
    const char *cn = rpc_call_tls_cn(c);
    Mvccpb__KeyValue kv = MVCCPB__KEY_VALUE__INIT;

    protobuf_c_message_free_unpacked(req, NULL);
    kv.value.data = (uint8_t *)(cn ? cn : "-");
    kv.value.len = strlen(cn ? cn : "-");
    rpc_send(c, &kv.base);
    rpc_finish(c, 0);
}

static const rpc_method cn_methods[] = {
    {"/test.Tls/Cn", "/v3/test/cn", &mvccpb__key_value__descriptor,
     &mvccpb__key_value__descriptor, false, false, cn_msg, NULL, NULL},
    {NULL, NULL, NULL, NULL, false, false, NULL, NULL, NULL},
};

struct tsrv {
    evloop *loop;
    rpc_server *srv;
    pthread_t thread;
    int port;
};

static void *tsrv_run(void *arg)
{
    evloop_run(((struct tsrv *)arg)->loop);
    return NULL;
}

static void tsrv_start(struct tsrv *t, const tls_files *files)
{
    static const char *const urls[] = {"https://127.0.0.1:0"};
    rpc_server_config cfg = {0};

    cfg.listen_urls = urls;
    cfg.nlisten = 1;
    cfg.methods = cn_methods;
    cfg.max_request_bytes = 1 << 20;
    cfg.tls = files;
    assert_int_equal(evloop_new(&t->loop), 0);
    assert_int_equal(rpc_server_new(t->loop, &cfg, &t->srv), 0);
    t->port = rpc_server_port(t->srv, 0);
    assert_int_equal(pthread_create(&t->thread, NULL, tsrv_run, t), 0);
}

static void tsrv_stop(struct tsrv *t)
{
    evloop_stop(t->loop);
    pthread_join(t->thread, NULL);
    rpc_server_free(t->srv);
    evloop_free(t->loop);
}

static size_t take_body(char *p, size_t sz, size_t n, void *u)
{
    char *buf = u;
    size_t have = strlen(buf), add = sz * n;

    if (have + add < 1024) {
        memcpy(buf + have, p, add);
        buf[have + add] = 0;
    }
    return sz * n;
}

/* POST {} to /v3/test/cn; the curl result, the body in body[1024]. */
static CURLcode post_cn(const struct fx *f, int port, const char *scheme, const char *cert,
                        char *body)
{
    char url[128], cf[128], kf[128];
    CURL *c = curl_easy_init();
    CURLcode rc;

    body[0] = 0;
    snprintf(url, sizeof(url), "%s://127.0.0.1:%d/v3/test/cn", scheme, port);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, "{}");
    curl_easy_setopt(c, CURLOPT_CAINFO, in_dir(f, "ca-a.pem"));
    if (cert) {
        snprintf(cf, sizeof(cf), "%s/%s.pem", f->dir, cert);
        snprintf(kf, sizeof(kf), "%s/%s-key.pem", f->dir, cert);
        curl_easy_setopt(c, CURLOPT_SSLCERT, cf);
        curl_easy_setopt(c, CURLOPT_SSLKEY, kf);
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, take_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    rc = curl_easy_perform(c);
    curl_easy_cleanup(c);
    return rc;
}

static void test_transport_over_tls(void **state)
{
    struct fx *f = *state;
    tls_files files = server_files(f, true);
    struct tsrv t;
    char body[1024];

    tsrv_start(&t, &files);
    /* the gateway over TLS (curl offers h2 and http/1.1: http/1.1 is chosen), and the CN */
    assert_int_equal(post_cn(f, t.port, "https", "alice", body), CURLE_OK);
    assert_non_null(strstr(body, "\"value\":\"YWxpY2U=\""));   /* base64("alice") */
    /* refusals; the listener keeps serving */
    assert_int_not_equal(post_cn(f, t.port, "https", NULL, body), CURLE_OK);
    assert_int_not_equal(post_cn(f, t.port, "https", "mallory", body), CURLE_OK);
    assert_int_equal(post_cn(f, t.port, "http", NULL, body), CURLE_GOT_NOTHING);
    assert_int_equal(post_cn(f, t.port, "https", "server", body), CURLE_OK);
    assert_non_null(strstr(body, "\"value\":\"c2VydmVy\""));   /* base64("server") */
    tsrv_stop(&t);
}

static void test_transport_https_needs_tls_config(void **state)
{
    static const char *const urls[] = {"https://127.0.0.1:0"};
    rpc_server_config cfg = {0};
    evloop *loop;
    rpc_server *srv = NULL;

    (void)state;
    cfg.listen_urls = urls;
    cfg.nlisten = 1;
    cfg.methods = cn_methods;
    assert_int_equal(evloop_new(&loop), 0);
    assert_int_equal(rpc_server_new(loop, &cfg, &srv), CE_INVAL);
    assert_null(srv);
    evloop_free(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_mutual_tls_gives_the_client_cn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_client_ca_no_cn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trusted_ca_alone_requires_cert, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_client_without_cert, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_cert_from_another_ca, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_refuses_untrusted_server, setup, teardown),
        cmocka_unit_test(test_sniff_plaintext),
        cmocka_unit_test_setup_teardown(test_auto_cert_made_once_and_usable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_setup_from_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_files_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transport_over_tls, setup, teardown),
        cmocka_unit_test(test_transport_https_needs_tls_config),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
