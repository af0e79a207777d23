/*
 * pki.h: certificates the operator issues from a user's CA (spec.tls.caSecret).
 *
 * pki_issue makes a new P-256 key and an X.509 v3 certificate for it, signed by the CA:
 * subject CN as asked, the SANs given (DNS names; entries that parse as IPv4/IPv6 addresses
 * become IP SANs), basicConstraints CA:FALSE, keyUsage digitalSignature + keyEncipherment,
 * extendedKeyUsage serverAuth and/or clientAuth, subject and authority key identifiers, a
 * random 128-bit serial, valid from one hour before `now` (clock skew) for `days` days. The
 * CA's certificate must be a CA (basicConstraints CA:TRUE) and its key must match it, or the
 * call fails with a message. Input is PEM text (a Secret's data); output PEM text on the heap,
 * the key's zeroed before it is freed by pki_free_key.
 */
#ifndef CETCD_PKI_H
#define CETCD_PKI_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

struct pki_request {
    const char *cn;
    const char *const *sans;  /* n_sans DNS names or IP addresses */
    size_t n_sans;
    bool server, client;      /* extendedKeyUsage */
    int days;
    time_t now;
};

/* 0, or CE_INVAL (bad CA: err says why) / CE_NOMEM / CE_IO (OpenSSL failed). */
int pki_issue(const char *ca_cert_pem, const char *ca_key_pem, const struct pki_request *req,
              char **cert_pem, char **key_pem, char *err, size_t errsz);
void pki_free_key(char *key_pem);

#endif
