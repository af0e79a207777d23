/*
 * tls.c: what the operator issues for spec.tls.caSecret, as pure data: which names each
 * certificate covers, and the Secret that carries one.
 *
 * For cluster C in namespace N:
 *   server (C-server-tls)  serverAuth+clientAuth, CN C; SANs *.C-peer.N.svc and its
 *                          .cluster.local form (every member's client URL), C, C.N, C.N.svc,
 *                          C.N.svc.cluster.local (the client Service), localhost, 127.0.0.1
 *   peer (C-peer-tls)      serverAuth+clientAuth (peers dial each other), CN C-peer; SANs
 *                          *.C-peer.N.svc and its .cluster.local form
 *   client (C-client-tls)  clientAuth only, CN root: with client-cert-auth the server takes
 *                          the CN as the user, so the operator and the backup Jobs act as root
 * Every Secret is type kubernetes.io/tls with tls.crt, tls.key and ca.crt (the issuing CA's
 * certificate), owned by the EtcdCluster (deleted with it), labelled like the other objects.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "resources/build_int.h"

#define SAN_LEN EC_NAME_MAX

static const char *const kinds[EC_TLS_KINDS] = {"server", "peer", "client"};

const char *ec_tls_kind_name(enum ec_tls_kind k)
{
    return kinds[k];
}

const char *ec_tls_secret_name(const struct ec_spec *s, enum ec_tls_kind k)
{
    return k == EC_TLS_SERVER ? s->tls.server_secret
           : k == EC_TLS_PEER ? s->tls.peer_secret
                              : s->tls.client_secret;
}

static void add_san(struct ec_tls_profile *p, const char *fmt, const char *a, const char *b)
{
    if (p->n_sans < EC_TLS_MAX_SANS)
        snprintf(p->sans[p->n_sans++], sizeof(p->sans[0]), fmt, a, b);
}

void ec_tls_profile(const struct ec_spec *s, enum ec_tls_kind k, struct ec_tls_profile *p)
{
    memset(p, 0, sizeof(*p));
    p->server = k != EC_TLS_CLIENT;
    p->client = true;
    p->days = EC_TLS_DAYS;
    if (k == EC_TLS_CLIENT) {
        snprintf(p->cn, sizeof(p->cn), "%s", EC_ROOT_USER);
        return;
    }
    snprintf(p->cn, sizeof(p->cn), k == EC_TLS_SERVER ? "%s" : "%s-peer", s->name);
    add_san(p, "*.%s-peer.%s.svc", s->name, s->ns);
    add_san(p, "*.%s-peer.%s.svc.cluster.local", s->name, s->ns);
    if (k == EC_TLS_PEER)
        return;
    add_san(p, "%s%s", s->name, "");
    add_san(p, "%s.%s", s->name, s->ns);
    add_san(p, "%s.%s.svc", s->name, s->ns);
    add_san(p, "%s.%s.svc.cluster.local", s->name, s->ns);
    add_san(p, "%s%s", "localhost", "");
    add_san(p, "%s%s", "127.0.0.1", "");
}

static void put_b64(cJSON *data, const char *key, const char *text, bool *ok)
{
    size_t n = strlen(text);
    char *b = malloc(cetcd_b64_encoded_len(n) + 1);

    if (!b) {
        *ok = false;
        return;
    }
    cetcd_b64_encode(text, n, b);
    rb_str(data, key, b, ok);
    free(b);
}

cJSON *ec_build_tls_secret(const struct ec_spec *s, enum ec_tls_kind k, const char *ca_pem,
                           const char *cert_pem, const char *key_pem)
{
    bool ok = true;
    cJSON *o = rb_new_owned(s, "v1", "Secret", ec_tls_secret_name(s, k), &ok), *data;

    rb_str(o, "type", "kubernetes.io/tls", &ok);
    data = rb_obj(o, "data", &ok);
    put_b64(data, "ca.crt", ca_pem, &ok);
    put_b64(data, "tls.crt", cert_pem, &ok);
    put_b64(data, "tls.key", key_pem, &ok);
    return rb_finish(o, ok);
}
