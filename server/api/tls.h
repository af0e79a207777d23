/*
 * tls.h: TLS for cetcd's ports through OpenSSL, on non-blocking sockets of our own epoll loop.
 *
 * A tls_ctx holds one side's certificate, key and trust (etcd's --cert-file, --key-file,
 * --trusted-ca-file, --client-cert-auth, or their --peer-* counterparts). A tls_sess is one
 * connection: the handshake, then reads and writes, each returning at once with CE_AGAIN when
 * the socket is not ready (tls_sess_wants_write says which direction to wait for).
 *
 * Server contexts answer ALPN with "http/1.1" whenever the client offers it (curl, browsers:
 * the JSON gateway is HTTP/1.1), else "h2" if offered (gRPC clients offer only "h2"); no ALPN
 * at all is accepted. With client_cert_auth
 * the client must present a certificate that verifies against trusted_ca_file; a refusal is
 * logged with OpenSSL's reason ("peer did not return a certificate", "unable to get local
 * issuer certificate", ...). tls_sess_peer_cn is the verified client certificate's CN. As in
 * etcd 3.4, a server with a trusted CA file requires client certificates even without
 * client_cert_auth.
 *
 * Invariants: a tls_sess never owns its fd (the connection closes it after tls_sess_free);
 * writes may be retried with a buffer that moved or grew, never with different leading bytes
 * (SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_ENABLE_PARTIAL_WRITE).
 */
#ifndef CETCD_TLS_H
#define CETCD_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct tls_files {
    const char *cert_file;
    const char *key_file;
    const char *trusted_ca_file;   /* NULL: none (server: no client CA; client: system store) */
    bool client_cert_auth;         /* server: require and verify a client certificate (also
                                    * implied by trusted_ca_file, as in etcd 3.4) */
    bool insecure_skip_verify;     /* client: do not verify the server (peer auto-tls) */
} tls_files;

typedef struct tls_ctx tls_ctx;
typedef struct tls_sess tls_sess;

/* what: "client" or "peer", named in log lines. 0, CE_INVAL (files unusable: logged). */
int tls_ctx_new_server(const tls_files *f, const char *what, tls_ctx **out);
int tls_ctx_new_client(const tls_files *f, const char *what, tls_ctx **out);
void tls_ctx_free(tls_ctx *x);

/* Self-signed certificate as etcd's --auto-tls: dir/cert.pem and dir/key.pem (ECDSA P-256,
 * one year, SANs for hosts), made once and reused (dir is created). The two paths are
 * returned malloc'd; the caller frees them. */
int tls_auto_cert(const char *dir, const char *const *hosts, int nhosts, char **cert_path,
                  char **key_path);

/* Server side: the first byte a client sent (peeked, not consumed). CE_AGAIN: none yet;
 * CE_IO: the peer closed; CE_BAD_PROTO: plaintext (not a TLS handshake record), already
 * logged; the caller closes the connection without a word, as etcd 3.4 does. */
int tls_sniff_plaintext(int fd, const char *what);

int tls_sess_new(tls_ctx *x, int fd, const char *server_name, tls_sess **out);
void tls_sess_free(tls_sess *s);   /* sends close_notify if established (best effort) */
/* 0: established; CE_AGAIN: wait (see tls_sess_wants_write); CE_IO: refused (logged). */
int tls_sess_handshake(tls_sess *s);
bool tls_sess_established(const tls_sess *s);
/* >0 bytes read; 0 the peer closed; CE_AGAIN; CE_IO. */
ssize_t tls_sess_read(tls_sess *s, void *buf, size_t len);
/* >0 bytes taken; CE_AGAIN; CE_IO. */
ssize_t tls_sess_write(tls_sess *s, const void *buf, size_t len);
/* The last CE_AGAIN waits for the socket to become writable (else readable). */
bool tls_sess_wants_write(const tls_sess *s);
/* Decrypted bytes buffered inside OpenSSL, not yet returned by tls_sess_read. */
size_t tls_sess_pending(const tls_sess *s);
/* The verified peer certificate's CN, or NULL. Valid until tls_sess_free. */
const char *tls_sess_peer_cn(const tls_sess *s);
/* The ALPN protocol agreed ("h2", "http/1.1") or "" for none. */
const char *tls_sess_alpn(const tls_sess *s);

/* etcd's choice of TLS for one side (what: "client" or "peer") from its configuration:
 * explicit --cert-file/--key-file win; else with auto_tls a self-signed certificate for the
 * hosts of urls under <data_dir>/fixtures/<what> (tls_auto_cert); else no TLS (*use false).
 * out's strings point into cfg and into setup; tls_setup_fini frees setup. */
struct config_tls;
typedef struct tls_setup {
    tls_files files;
    char *auto_cert, *auto_key;
} tls_setup;
int tls_setup_from_config(const struct config_tls *cfg, const char *data_dir, const char *what,
                          const char *const *urls, int nurls, tls_setup *setup, bool *use);
void tls_setup_fini(tls_setup *setup);

#endif
