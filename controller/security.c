/*
 * security.c: spec.tls and spec.auth in a reconcile pass.
 *
 * TLS: with spec.tls.caSecret, the Secrets C-server-tls, C-peer-tls and C-client-tls are
 * issued from the CA (pki.c, profiles in resources/tls.c) when missing, never replaced (a
 * present Secret is the user's or an earlier pass's). Either way the client Secret's ca.crt,
 * tls.crt and tls.key become the operator's credentials for every call to the members
 * (op_cetcd_client), and the pods and backup Jobs mount the Secrets (resources/).
 *
 * Auth: once the cluster has converged, the operator makes sure root exists with the password
 * of spec.auth.rootSecret and the root role, then enables authentication; it never disables it.
 * With issued certificates the client certificate's CN is root, which client-cert-auth takes
 * as the user, so no token is needed, and a password changed in the Secret is set on the
 * cluster (`user passwd`), the Secret being the source of truth. Otherwise calls carry a token
 * for root, cached per cluster (by uid) for TOKEN_REUSE_MS, below etcd's default token TTL
 * (300 s), so a pass does not pay a password hash on the server for every client it makes; a
 * token a member no longer knows (observe.c sees "invalid auth token") is dropped at once.
 * While the cluster is paused nothing is issued.
 *
 * The condition Secured (status.c) reports the outcome; its messages hold no volatile values.
 */
#include "operator.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base64.h"
#include "err.h"
#include "pki.h"
#include "runtime/olog.h"

#define TOKEN_REUSE_MS 60000
#define TOKEN_SLOTS 64

/* ---- the condition ---- */

static void sec_set(struct op_security *sec, bool ok, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void sec_set(struct op_security *sec, bool ok, const char *reason, const char *fmt, ...)
{
    va_list ap;

    sec->ok = ok;
    sec->reason = reason;
    va_start(ap, fmt);
    vsnprintf(sec->message, sizeof(sec->message), fmt, ap);
    va_end(ap);
}

/* ---- tokens ---- */

static struct token_slot {
    char uid[64];
    char *token;
    long long at_ms;
} tokens[TOKEN_SLOTS];
static pthread_mutex_t tokens_mu = PTHREAD_MUTEX_INITIALIZER;

static long long mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The slot of uid, else an empty or the oldest one (cleared); under tokens_mu. */
static struct token_slot *token_slot(const char *uid, bool take)
{
    struct token_slot *victim = &tokens[0];

    for (int i = 0; i < TOKEN_SLOTS; i++) {
        if (!strcmp(tokens[i].uid, uid))
            return &tokens[i];
        if (!tokens[i].token || tokens[i].at_ms < victim->at_ms)
            victim = &tokens[i];
    }
    if (!take)
        return NULL;
    free(victim->token);
    memset(victim, 0, sizeof(*victim));
    snprintf(victim->uid, sizeof(victim->uid), "%s", uid);
    return victim;
}

/* A copy of uid's token if it is fresh, else NULL. */
static char *token_get(const char *uid)
{
    struct token_slot *t;
    char *copy = NULL;

    pthread_mutex_lock(&tokens_mu);
    t = token_slot(uid, false);
    if (t && t->token && mono_ms() - t->at_ms < TOKEN_REUSE_MS)
        copy = strdup(t->token);
    pthread_mutex_unlock(&tokens_mu);
    return copy;
}

static void token_put(const char *uid, const char *token)
{
    struct token_slot *t;

    pthread_mutex_lock(&tokens_mu);
    t = token_slot(uid, true);
    free(t->token);
    t->token = token ? strdup(token) : NULL;
    t->at_ms = mono_ms();
    pthread_mutex_unlock(&tokens_mu);
}

void op_token_forget(const struct ec_spec *s)
{
    pthread_mutex_lock(&tokens_mu);
    struct token_slot *t = token_slot(s->uid, false);
    if (t) {
        free(t->token);
        t->token = NULL;
    }
    pthread_mutex_unlock(&tokens_mu);
}

static bool errmsg_is(const cetcd_client *c, int code)
{
    return strstr(cetcd_client_errmsg(c), ce_strerror(code)) != NULL;
}

/* Authenticates c as root and caches the token: 0, or the call's error (message in c). */
static int authenticate(const struct ec_spec *s, const struct op_observed *o, cetcd_client *c)
{
    int rc = cetcd_authenticate(c, EC_ROOT_USER, o->sec.password);

    if (rc == 0)
        token_put(s->uid, cetcd_client_token(c));
    return rc;
}

/* Calls need root's token: auth asked for, and no issued certificate (CN root) standing in. */
static bool needs_token(const struct ec_spec *s, const struct op_observed *o)
{
    return o->sec.password && !s->tls.ca_secret;
}

int op_cetcd_client(const struct ec_spec *s, const struct op_observed *o, int n,
                    cetcd_client **out)
{
    char urls[PLAN_MAX][256], *tok;
    const char *eps[PLAN_MAX];
    int rc;

    if (n > PLAN_MAX)
        n = PLAN_MAX;
    for (int i = 0; i < n; i++)
        eps[i] = ec_client_url(s, i, urls[i], sizeof urls[i]);
    struct cetcd_client_opts opts = {.endpoints = eps, .n_endpoints = (size_t)n,
                                     .dial_timeout_ms = 1000, .command_timeout_ms = 5000,
                                     .cacert_pem = o->sec.ca, .cert_pem = o->sec.cert,
                                     .key_pem = o->sec.key};
    if ((rc = cetcd_client_new(&opts, out)) || !needs_token(s, o))
        return rc;
    if ((tok = token_get(s->uid))) {
        rc = cetcd_client_set_token(*out, tok);
        free(tok);
        return rc;
    }
    authenticate(s, o, *out); /* before auth is enabled this fails, and no token is needed */
    return 0;
}

/* ---- Secrets ---- */

/* The condition for a failed GET of Secret name (rc from k8s_get); rc returned. */
static int secret_failed(const struct ec_spec *s, const char *field, const char *name,
                         struct op_security *sec, int rc)
{
    if (rc == CE_NOTFOUND)
        sec_set(sec, false, "SecretMissing", "%s: Secret %s not found in namespace %s", field,
                name, s->ns);
    else if (rc)
        sec_set(sec, false, "SecretUnreadable", "%s: Secret %s: %s", field, name,
                k8s_errmsg());
    return rc;
}

static int secret_get(struct op *op, const struct ec_spec *s, const char *field,
                      const char *name, struct op_security *sec, cJSON **out)
{
    return secret_failed(s, field, name, sec, k8s_get(op->k8s, &K8S_SECRETS, s->ns, name, out));
}

/* data[key] decoded: 0, or CE_INVAL with the condition saying which key is missing or bad. */
static int secret_text(const cJSON *secret, const char *field, const char *key,
                       struct op_security *sec, char **out)
{
    const char *b = k8s_str(secret, "data", key, NULL);
    int rc = b ? cetcd_b64_decode_text(b, out) : CE_NOTFOUND;

    if (rc == 0 && !(*out)[0]) {
        free(*out);
        *out = NULL;
        rc = CE_NOTFOUND;
    }
    if (rc && rc != CE_NOMEM)
        sec_set(sec, false, "SecretInvalid", "%s: Secret %s has no valid data key %s", field,
                k8s_str(secret, "metadata", "name", NULL), key);
    return rc == CE_NOMEM ? rc : rc ? CE_INVAL : 0;
}

static int issue_one(struct op *op, const struct ec_spec *s, struct op_observed *o,
                     enum ec_tls_kind k, const char *ca_crt, const char *ca_key)
{
    struct ec_tls_profile p;
    const char *sans[EC_TLS_MAX_SANS];
    char *cert, *key, err[160];
    cJSON *obj;
    int rc;

    ec_tls_profile(s, k, &p);
    for (size_t i = 0; i < p.n_sans; i++)
        sans[i] = p.sans[i];
    struct pki_request r = {p.cn, sans, p.n_sans, p.server, p.client, p.days, time(NULL)};
    if ((rc = pki_issue(ca_crt, ca_key, &r, &cert, &key, err, sizeof(err)))) {
        sec_set(&o->sec, false, "CertificateIssueFailed", "spec.tls.caSecret %s: %s",
                s->tls.ca_secret, err);
        return rc;
    }
    obj = ec_build_tls_secret(s, k, ca_crt, cert, key);
    rc = obj ? k8s_create(op->k8s, &K8S_SECRETS, s->ns, obj, NULL) : CE_NOMEM;
    if (rc == 0) {
        olog(OLOG_INFO, "certificate issued", "cluster", s->name, "namespace", s->ns, "secret",
             ec_tls_secret_name(s, k), NULL);
        snprintf(err, sizeof(err), "issued the %s certificate into Secret %s",
                 ec_tls_kind_name(k), ec_tls_secret_name(s, k));
        k8s_event(op->k8s, o->cluster, "Normal", "CertificateIssued", err, OP_COMPONENT);
    } else if (rc != CE_EXISTS) {
        sec_set(&o->sec, false, "SecretUnwritable", "Secret %s: %s", ec_tls_secret_name(s, k),
                k8s_errmsg());
    }
    cJSON_Delete(obj);
    free(cert);
    pki_free_key(key);
    return rc == CE_EXISTS ? 0 : rc;
}

/* The kinds whose Secret is missing, as a bit set; CE_* when one cannot be read. */
static int missing_kinds(struct op *op, const struct ec_spec *s, struct op_observed *o,
                         unsigned *mask)
{
    cJSON *obj = NULL;
    int rc;

    *mask = 0;
    for (int k = 0; k < EC_TLS_KINDS; k++) {
        rc = k8s_get(op->k8s, &K8S_SECRETS, s->ns, ec_tls_secret_name(s, k), &obj);
        cJSON_Delete(obj);
        obj = NULL;
        if (rc == CE_NOTFOUND)
            *mask |= 1u << k;
        else if (rc)
            return secret_failed(s, "spec.tls", ec_tls_secret_name(s, k), &o->sec, rc);
    }
    return 0;
}

static int issue_missing(struct op *op, const struct ec_spec *s, struct op_observed *o)
{
    const char *f = "spec.tls.caSecret";
    char *crt = NULL, *key = NULL;
    cJSON *ca = NULL;
    unsigned mask;
    int rc;

    if ((rc = missing_kinds(op, s, o, &mask)) || !mask)
        return rc;
    if ((rc = secret_get(op, s, f, s->tls.ca_secret, &o->sec, &ca)))
        return rc;
    if ((rc = secret_text(ca, f, "tls.crt", &o->sec, &crt)) ||
        (rc = secret_text(ca, f, "tls.key", &o->sec, &key)))
        goto out_free;
    for (int k = 0; rc == 0 && k < EC_TLS_KINDS; k++)
        if (mask & (1u << k))
            rc = issue_one(op, s, o, k, crt, key);
out_free:
    free(crt);
    pki_free_key(key);
    cJSON_Delete(ca);
    return rc;
}

static int load_client(struct op *op, const struct ec_spec *s, struct op_observed *o)
{
    const char *f = s->tls.ca_secret ? "spec.tls (issued)" : "spec.tls.clientSecret";
    cJSON *sec = NULL;
    int rc;

    if ((rc = secret_get(op, s, f, s->tls.client_secret, &o->sec, &sec)))
        return rc;
    if (!(rc = secret_text(sec, f, "ca.crt", &o->sec, &o->sec.ca)) &&
        !(rc = secret_text(sec, f, "tls.crt", &o->sec, &o->sec.cert)))
        rc = secret_text(sec, f, "tls.key", &o->sec, &o->sec.key);
    cJSON_Delete(sec);
    return rc;
}

static int load_password(struct op *op, const struct ec_spec *s, struct op_observed *o)
{
    cJSON *sec = NULL;
    int rc;

    if ((rc = secret_get(op, s, "spec.auth.rootSecret", s->auth.root_secret, &o->sec, &sec)))
        return rc;
    rc = secret_text(sec, "spec.auth.rootSecret", EC_ROOT_PASSWORD_KEY, &o->sec,
                     &o->sec.password);
    cJSON_Delete(sec);
    return rc;
}

int op_security_prepare(struct op *op, const struct ec_spec *s, struct op_observed *o)
{
    int rc;

    if (s->tls.enabled) {
        if ((s->tls.ca_secret && !s->paused && (rc = issue_missing(op, s, o))) ||
            (rc = load_client(op, s, o)))
            return rc;
        sec_set(&o->sec, true, "TLSEnabled",
                "client and peer traffic use TLS with client certificates (Secrets %s, %s, %s)",
                s->tls.server_secret, s->tls.peer_secret, s->tls.client_secret);
    }
    if (s->auth.root_secret && (rc = load_password(op, s, o)))
        return rc;
    return 0;
}

/* ---- enabling authentication ---- */

static int enable_auth(cetcd_client *c, const char *password)
{
    int rc = cetcd_user_add(c, EC_ROOT_USER, password, false);

    if (rc && errmsg_is(c, CE_USER_EXISTS))
        rc = cetcd_user_passwd(c, EC_ROOT_USER, password);
    if (rc)
        return rc;
    if ((rc = cetcd_role_add(c, EC_ROOT_USER)) && !errmsg_is(c, CE_ROLE_EXISTS))
        return rc;
    if ((rc = cetcd_user_grant_role(c, EC_ROOT_USER, EC_ROOT_USER)))
        return rc;
    return cetcd_auth_enable(c);
}

static void auth_on(const struct ec_spec *s, struct op_observed *o)
{
    sec_set(&o->sec, true, s->tls.enabled ? "TLSAndAuthEnabled" : "AuthEnabled",
            "%sauthentication is enabled; root's password is in Secret %s",
            s->tls.enabled ? "client and peer traffic use TLS with client certificates; " : "",
            s->auth.root_secret);
}

/* Authentication is off: turn it on once the cluster has converged. */
static void auth_off(struct op *op, const struct ec_spec *s, struct op_observed *o,
                     const struct plan_step *st, cetcd_client *c)
{
    if (st->action != PLAN_NONE) {
        sec_set(&o->sec, false, "AuthPending",
                "authentication is enabled once every member has joined");
        return;
    }
    if (enable_auth(c, o->sec.password)) {
        sec_set(&o->sec, false, "AuthEnableFailed", "enabling authentication: %s",
                cetcd_client_errmsg(c));
        return;
    }
    olog(OLOG_INFO, "authentication enabled", "cluster", s->name, "namespace", s->ns, NULL);
    k8s_event(op->k8s, o->cluster, "Normal", "AuthEnabled",
              "root created with the password of spec.auth.rootSecret; authentication enabled",
              OP_COMPONENT);
    authenticate(s, o, c);
    auth_on(s, o);
}

/* root's password differs from the Secret's: set it when the certificate makes us root. */
static void auth_mismatch(struct op *op, const struct ec_spec *s, struct op_observed *o,
                          cetcd_client *c)
{
    if (s->tls.ca_secret && cetcd_user_passwd(c, EC_ROOT_USER, o->sec.password) == 0) {
        k8s_event(op->k8s, o->cluster, "Normal", "RootPasswordSet",
                  "root's password set to the one in spec.auth.rootSecret", OP_COMPONENT);
        authenticate(s, o, c);
        auth_on(s, o);
        return;
    }
    sec_set(&o->sec, false, "RootPasswordMismatch",
            "root's password in the cluster is not the one in Secret %s: put the cluster's "
            "password in the Secret, or change root's with `etcdctl user passwd root`",
            s->auth.root_secret);
}

void op_auth_ensure(struct op *op, const struct ec_spec *s, struct op_observed *o,
                    const struct plan_step *st)
{
    int n = op_endpoint_count(o);
    cetcd_client *c = NULL;
    char *tok;

    if (!s->auth.root_secret || !o->sec.password || s->paused || n == 0)
        return;
    if ((tok = token_get(s->uid))) { /* authenticated within TOKEN_REUSE_MS: enabled */
        free(tok);
        auth_on(s, o);
        o->sec.auth_known = true;
        return;
    }
    if (op_cetcd_client(s, o, n, &c))
        return;
    o->sec.auth_known = true;
    cetcd_client_set_token(c, NULL);
    if (authenticate(s, o, c) == 0)
        auth_on(s, o);
    else if (errmsg_is(c, CE_AUTH_NOT_ENABLED))
        auth_off(op, s, o, st, c);
    else if (errmsg_is(c, CE_AUTH_FAILED))
        auth_mismatch(op, s, o, c);
    else
        sec_set(&o->sec, false, "AuthUnknown",
                "cannot reach the members to tell whether authentication is on");
    cetcd_client_free(c);
}

void op_security_clear(struct op_security *sec)
{
    free(sec->ca);
    free(sec->cert);
    pki_free_key(sec->key);
    pki_free_key(sec->password);
    memset(sec, 0, sizeof(*sec));
}
