/*
 * names.c: the names and URLs of the objects and members of one EtcdCluster.
 *
 * For cluster C in namespace N (docs: /tmp/op/design.md, "Names"):
 *   pod / member name   C-<i>
 *   PVC                 data-C-<i>           (StatefulSet claim template `data`)
 *   headless Service    C-peer
 *   membership map      C-members
 *   peer URL            http://C-<i>.C-peer.N.svc:2380   (https:// with spec.tls)
 *   client URL          http://C-<i>.C-peer.N.svc:2379   (https:// with spec.tls)
 *   issued TLS Secrets  C-server-tls, C-peer-tls, C-client-tls (spec.tls.caSecret)
 *   cluster token       C-<first 8 characters of the EtcdCluster's uid>
 * Every function writes into the caller's buffer with snprintf and returns it; a buffer too
 * small gives a truncated (still NUL-terminated) name, so callers use buffers of at least
 * EC_NAME_MAX bytes. ec_ordinal_of_peer_url is the exact inverse of ec_peer_url: it accepts
 * only the URL that ec_peer_url would write for some ordinal, so a member of another cluster
 * (or a URL with a different port, namespace or spelling) is never mistaken for one of ours.
 */
#include <stdio.h>
#include <string.h>

#include "resources/resources.h"

#define PEER_PORT 2380
#define CLIENT_PORT 2379
#define MAX_ORDINAL 9999 /* far above any size the CRD allows; bounds the parse below */

const char *ec_pod_name(const struct ec_spec *s, int ordinal, char *buf, size_t n)
{
    snprintf(buf, n, "%s-%d", s->name, ordinal);
    return buf;
}

static const char *member_url(const struct ec_spec *s, int ordinal, int port, char *buf,
                              size_t n)
{
    snprintf(buf, n, "%s://%s-%d.%s-peer.%s.svc:%d", ec_scheme(s), s->name, ordinal, s->name,
             s->ns, port);
    return buf;
}

const char *ec_scheme(const struct ec_spec *s)
{
    return s->tls.enabled ? "https" : "http";
}

const char *ec_peer_url(const struct ec_spec *s, int ordinal, char *buf, size_t n)
{
    return member_url(s, ordinal, PEER_PORT, buf, n);
}

const char *ec_client_url(const struct ec_spec *s, int ordinal, char *buf, size_t n)
{
    return member_url(s, ordinal, CLIENT_PORT, buf, n);
}

const char *ec_pvc_name(const struct ec_spec *s, int ordinal, char *buf, size_t n)
{
    snprintf(buf, n, "data-%s-%d", s->name, ordinal);
    return buf;
}

const char *ec_configmap_name(const struct ec_spec *s, char *buf, size_t n)
{
    snprintf(buf, n, "%s-members", s->name);
    return buf;
}

const char *ec_headless_name(const struct ec_spec *s, char *buf, size_t n)
{
    snprintf(buf, n, "%s-peer", s->name);
    return buf;
}

const char *ec_cluster_token(const struct ec_spec *s, char *buf, size_t n)
{
    const char *uid = s->uid ? s->uid : "";

    snprintf(buf, n, "%s-%.8s", s->name, uid);
    return buf;
}

/* Reads a decimal ordinal without sign or leading zeros at *p; -1 if there is none. */
static int parse_ordinal(const char **p)
{
    const char *c = *p;
    int v = 0;

    if (*c < '0' || *c > '9')
        return -1;
    if (*c == '0' && c[1] >= '0' && c[1] <= '9')
        return -1;
    while (*c >= '0' && *c <= '9') {
        v = v * 10 + (*c - '0');
        if (v > MAX_ORDINAL)
            return -1;
        c++;
    }
    *p = c;
    return v;
}

static bool skip_prefix(const char **p, const char *prefix)
{
    size_t n = strlen(prefix);

    if (strncmp(*p, prefix, n) != 0)
        return false;
    *p += n;
    return true;
}

int ec_ordinal_of_peer_url(const struct ec_spec *s, const char *url)
{
    char tail[512];
    const char *p = url;
    int ordinal;

    if (!url || !s->name || !s->ns)
        return -1;
    if (!skip_prefix(&p, ec_scheme(s)) || !skip_prefix(&p, "://") || !skip_prefix(&p, s->name) ||
        !skip_prefix(&p, "-"))
        return -1;
    ordinal = parse_ordinal(&p);
    if (ordinal < 0)
        return -1;
    snprintf(tail, sizeof(tail), ".%s-peer.%s.svc:%d", s->name, s->ns, PEER_PORT);
    return strcmp(p, tail) == 0 ? ordinal : -1;
}

const char *ec_selector_string(const struct ec_spec *s, char *buf, size_t n)
{
    snprintf(buf, n, "cls=%s,app.kubernetes.io/instance=%s", s->name, s->name);
    return buf;
}
