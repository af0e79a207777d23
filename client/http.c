/*
 * http.c: the client handle and its HTTP transport (libcurl easy interface, one handle reused
 * so the TCP connection stays open between calls).
 *
 * Failover: a call starts at the current endpoint; if the connection cannot be made (refused,
 * unresolvable host, connect timeout) it tries the next one, each at most once, and the first
 * endpoint that answers becomes current. Once a request has been sent it is never retried, so
 * a non-idempotent request is applied at most once by this library.
 *
 * Streams (`/v3/maintenance/snapshot`, `/v3/lease/keepalive`) arrive as a sequence of JSON objects
 * `{"result":{...}}` (or `{"error":{...}}`), curl having removed the chunked framing; split.c
 * cuts them apart as they arrive. Watch streams, which stay open, are driven by watch.c on
 * transfers of their own; the struct and cetcd_http_prepare() are shared with it.
 */
#include "client_internal.h"

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct buf {
    char *p;
    size_t len, cap;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static char *dupstr(const char *s)
{
    return s ? strdup(s) : NULL;
}

int cetcd_endpoint_normalize(const char *ep, bool tls, char *out, size_t outsz)
{
    const char *scheme = tls ? "https://" : "http://";
    int n;

    if (!ep || !*ep)
        return CE_INVAL;
    if (strstr(ep, "://"))
        scheme = "";
    n = snprintf(out, outsz, "%s%s", scheme, ep);
    if (n < 0 || (size_t)n >= outsz)
        return CE_INVAL;
    while (n > 0 && out[n - 1] == '/') /* "http://h:p/" -> "http://h:p" */
        out[--n] = 0;
    return 0;
}

static int copy_endpoints(cetcd_client *c, const struct cetcd_client_opts *o)
{
    bool tls = o->use_tls || o->cacert || o->cert || o->key || o->cacert_pem || o->cert_pem ||
               o->key_pem;
    char url[1024];
    int rc;

    c->endpoints = calloc(o->n_endpoints, sizeof(char *));
    if (!c->endpoints)
        return CE_NOMEM;
    for (size_t i = 0; i < o->n_endpoints; i++) {
        if ((rc = cetcd_endpoint_normalize(o->endpoints[i], tls, url, sizeof(url))))
            return rc;
        c->endpoints[i] = strdup(url);
        c->n_endpoints++;
        if (!c->endpoints[i])
            return CE_NOMEM;
    }
    return 0;
}

int cetcd_client_new(const struct cetcd_client_opts *o, cetcd_client **out)
{
    cetcd_client *c;
    int rc = CE_NOMEM;

    *out = NULL;
    if (!o || !o->n_endpoints || !o->endpoints)
        return CE_INVAL;
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK)
        return CE_IO;
    c = calloc(1, sizeof(*c));
    if (!c)
        return CE_NOMEM;
    c->dial_ms = o->dial_timeout_ms > 0 ? o->dial_timeout_ms : 2000;
    c->cmd_ms = o->command_timeout_ms > 0 ? o->command_timeout_ms : 5000;
    c->insecure = o->insecure_skip_verify;
    c->curl = curl_easy_init();
    if (!c->curl)
        goto out_free_client;
    if ((rc = copy_endpoints(c, o)))
        goto out_free_client;
    rc = CE_NOMEM;
    c->cacert = dupstr(o->cacert);
    c->cert = dupstr(o->cert);
    c->key = dupstr(o->key);
    c->token = dupstr(o->token);
    c->cacert_pem = dupstr(o->cacert_pem);
    c->cert_pem = dupstr(o->cert_pem);
    c->key_pem = dupstr(o->key_pem);
    if ((o->cacert && !c->cacert) || (o->cert && !c->cert) || (o->key && !c->key) ||
        (o->token && !c->token) || (o->cacert_pem && !c->cacert_pem) ||
        (o->cert_pem && !c->cert_pem) || (o->key_pem && !c->key_pem))
        goto out_free_client;
    *out = c;
    return 0;

out_free_client:
    cetcd_client_free(c);
    return rc;
}

void cetcd_client_free(cetcd_client *c)
{
    if (!c)
        return;
    if (c->curl)
        curl_easy_cleanup(c->curl);
    for (size_t i = 0; i < c->n_endpoints; i++)
        free(c->endpoints[i]);
    free(c->endpoints);
    free(c->cacert);
    free(c->cert);
    free(c->key);
    free(c->token);
    free(c->cacert_pem);
    free(c->cert_pem);
    if (c->key_pem)
        OPENSSL_cleanse(c->key_pem, strlen(c->key_pem));
    free(c->key_pem);
    free(c);
}

const char *cetcd_client_token(const cetcd_client *c)
{
    return c->token;
}

const char *cetcd_client_errmsg(const cetcd_client *c)
{
    return c->errmsg;
}

int cetcd_client_grpc_code(const cetcd_client *c)
{
    return c->grpc_code;
}

int cetcd_client_set_token(cetcd_client *c, const char *token)
{
    char *t = dupstr(token);

    if (token && !t)
        return CE_NOMEM;
    free(c->token);
    c->token = t;
    return 0;
}

size_t cetcd_client_endpoint_count(const cetcd_client *c)
{
    return c->n_endpoints;
}

const char *cetcd_client_endpoint(const cetcd_client *c, size_t i)
{
    return i < c->n_endpoints ? c->endpoints[i] : NULL;
}

/* ---------------------------------------------------------------- one request */

static size_t collect(char *data, size_t size, size_t nmemb, void *ud)
{
    struct buf *b = ud;
    size_t n = size * nmemb;

    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            return 0;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = 0;
    return n;
}

static bool is_connect_failure(CURLcode cc, CURL *curl)
{
    double t = 0;

    if (cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST ||
        cc == CURLE_COULDNT_RESOLVE_PROXY)
        return true;
    if (cc != CURLE_OPERATION_TIMEDOUT)
        return false;
    curl_easy_getinfo(curl, CURLINFO_CONNECT_TIME, &t);
    return t == 0; /* timed out before the connection was made */
}

int64_t cetcd_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Appends one header line; false on OOM (the list is then freed and *h is NULL). */
static bool add_header(struct curl_slist **h, const char *line)
{
    struct curl_slist *t = curl_slist_append(*h, line);

    if (!t) {
        curl_slist_free_all(*h);
        *h = NULL;
    } else {
        *h = t;
    }
    return t != NULL;
}

/* A PEM text as a curl blob option (copied by curl). */
static void set_blob(CURL *h, CURLoption opt, char *pem)
{
    struct curl_blob b = {pem, strlen(pem), CURL_BLOB_COPY};

    curl_easy_setopt(h, opt, &b);
}

static void set_tls(cetcd_client *c, CURL *h)
{
    if (c->cacert_pem)
        set_blob(h, CURLOPT_CAINFO_BLOB, c->cacert_pem);
    if (c->cert_pem) {
        set_blob(h, CURLOPT_SSLCERT_BLOB, c->cert_pem);
        curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
    }
    if (c->key_pem) {
        set_blob(h, CURLOPT_SSLKEY_BLOB, c->key_pem);
        curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
    }
    if (c->cacert)
        curl_easy_setopt(h, CURLOPT_CAINFO, c->cacert);
    if (c->cert)
        curl_easy_setopt(h, CURLOPT_SSLCERT, c->cert);
    if (c->key)
        curl_easy_setopt(h, CURLOPT_SSLKEY, c->key);
    if (c->insecure) {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
}

struct curl_slist *cetcd_http_prepare(cetcd_client *c, CURL *h, const char *ep, const char *path,
                                      const char *body, long timeout_ms,
                                      const char *const *extra)
{
    struct curl_slist *hdrs = NULL;
    char url[1200], auth[4096];

    snprintf(url, sizeof(url), "%s%s", ep, path);
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->dial_ms);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    set_tls(c, h);
    if (!add_header(&hdrs, "Content-Type: application/json") || !add_header(&hdrs, "Expect:"))
        return NULL;
    if (c->token) {
        snprintf(auth, sizeof(auth), "Authorization: %s", c->token);
        if (!add_header(&hdrs, auth))
            return NULL;
    }
    for (; extra && *extra; extra++)
        if (!add_header(&hdrs, *extra))
            return NULL;
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    return hdrs;
}

static void set_err(cetcd_client *c, int grpc, const char *fmt, const char *s)
{
    c->grpc_code = grpc;
    snprintf(c->errmsg, sizeof(c->errmsg), fmt, s);
}

struct xfer {
    curl_write_callback write;
    void *ud;
    long timeout_ms;
};

/*
 * Performs the request on one endpoint (ep) or with failover (ep NULL). Returns 0 once an HTTP
 * answer arrived (*status set), CE_UNREACHABLE if no endpoint answered (connect failures on all,
 * or a connection that died before any HTTP status), CE_TIMEOUT, or CE_IO (answer cut short).
 */
static int perform(cetcd_client *c, const char *ep, const char *path, const char *body,
                   const struct xfer *x, long *status, CURLcode *ccode)
{
    size_t tries = ep ? 1 : c->n_endpoints;
    CURLcode cc = CURLE_OK;

    for (size_t i = 0; i < tries; i++) {
        const char *url = ep ? ep : c->endpoints[(c->cur + i) % c->n_endpoints];
        struct curl_slist *h = cetcd_http_prepare(c, c->curl, url, path, body, x->timeout_ms,
                                                  NULL);
        if (!h)
            return CE_NOMEM;
        curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, x->write);
        curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, x->ud);
        cc = curl_easy_perform(c->curl);
        curl_slist_free_all(h);
        *ccode = cc;
        if (cc == CURLE_OK || !is_connect_failure(cc, c->curl)) {
            if (!ep)
                c->cur = (c->cur + i) % c->n_endpoints;
            curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, status);
            if (cc == CURLE_OK || cc == CURLE_WRITE_ERROR)
                return 0;
            set_err(c, 0, "%s", curl_easy_strerror(cc));
            if (cc == CURLE_OPERATION_TIMEDOUT)
                return CE_TIMEOUT;
            return *status ? CE_IO : CE_UNREACHABLE; /* no answer at all, e.g. TLS refused */
        }
    }
    set_err(c, 0, "%s", curl_easy_strerror(cc));
    return CE_UNREACHABLE;
}

static char *print_body(const cJSON *body)
{
    return body ? cJSON_PrintUnformatted(body) : strdup("{}");
}

int cetcd_http_call(cetcd_client *c, const char *endpoint, const char *path, const cJSON *body,
                    cJSON **out)
{
    struct buf b = {0};
    struct xfer x = {collect, &b, c->cmd_ms};
    long status = 0;
    CURLcode cc;
    char *text = print_body(body);
    int rc;

    *out = NULL;
    c->errmsg[0] = 0;
    c->grpc_code = 0;
    if (!text)
        return CE_NOMEM;
    rc = perform(c, endpoint, path, text, &x, &status, &cc);
    free(text);
    if (rc)
        goto out_free_buf;
    if (cc == CURLE_WRITE_ERROR) {
        rc = CE_NOMEM;
        goto out_free_buf;
    }
    if (status != 200) {
        rc = cetcd_codec_error(b.p ? b.p : "", b.len, status, c->errmsg, sizeof(c->errmsg),
                               &c->grpc_code);
        goto out_free_buf;
    }
    *out = cJSON_ParseWithLength(b.p ? b.p : "", b.len);
    if (!*out || !cJSON_IsObject(*out)) {
        cJSON_Delete(*out);
        *out = NULL;
        set_err(c, 0, "%s", "malformed JSON response");
        rc = CE_CORRUPT;
    }
out_free_buf:
    free(b.p);
    return rc;
}

/* ---------------------------------------------------------------- streams */

#define ERR_BODY_MAX 65536 /* kept of a non-200 answer's body */

struct stream {
    cetcd_client *c;
    struct cetcd_splitter split;
    struct buf err; /* a non-200 answer's body (its first ERR_BODY_MAX bytes) */
    cetcd_result_fn fn;
    void *ctx;
    int stop; /* non-zero once fn or an error asked to stop */
};

/* Handles one complete stream object: a result goes to fn; an error ends the stream. */
static int dispatch(void *ud, const char *p, size_t n)
{
    struct stream *s = ud;
    cJSON *j = cJSON_ParseWithLength(p, n);
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(j, "result");
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(j, "error");
    int rc;

    if (!j) {
        set_err(s->c, 0, "%s", "malformed JSON in stream");
        return CE_CORRUPT;
    }
    if (err)
        rc = cetcd_codec_stream_error(err, s->c->errmsg, sizeof(s->c->errmsg), &s->c->grpc_code);
    else
        rc = s->fn(s->ctx, res ? res : j);
    cJSON_Delete(j);
    return rc;
}

static size_t stream_write(char *data, size_t size, size_t nmemb, void *ud)
{
    struct stream *s = ud;
    size_t n = size * nmemb;
    long status = 0;

    curl_easy_getinfo(s->c->curl, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) { /* an error body: kept (bounded) for cetcd_codec_error() */
        size_t room = ERR_BODY_MAX - s->err.len;
        if (collect(data, 1, n < room ? n : room, &s->err) != (n < room ? n : room)) {
            s->stop = CE_NOMEM;
            return 0;
        }
        return n;
    }
    s->stop = cetcd_splitter_feed(&s->split, data, n);
    return s->stop ? 0 : n;
}

int cetcd_http_stream(cetcd_client *c, const char *endpoint, const char *path, const cJSON *body,
                      bool bounded, cetcd_result_fn fn, void *ctx)
{
    struct stream s = {.c = c, .fn = fn, .ctx = ctx};
    struct xfer x = {stream_write, &s, bounded ? c->cmd_ms : 0};
    long status = 0;
    CURLcode cc;
    char *text = print_body(body);
    int rc;

    c->errmsg[0] = 0;
    c->grpc_code = 0;
    if (!text)
        return CE_NOMEM;
    cetcd_splitter_init(&s.split, CETCD_STREAM_MAX_OBJECT, dispatch, &s);
    rc = perform(c, endpoint, path, text, &x, &status, &cc);
    free(text);
    if (rc)
        goto out_free_bufs;
    if (status != 200 && !s.stop) {
        rc = cetcd_codec_error(s.err.p ? s.err.p : "", s.err.len, status, c->errmsg,
                               sizeof(c->errmsg), &c->grpc_code);
        goto out_free_bufs;
    }
    if (s.stop == CE_MSG_TOO_LARGE)
        set_err(c, 0, "%s", ce_strerror(CE_MSG_TOO_LARGE));
    rc = s.stop == 1 ? 0 : s.stop;
out_free_bufs:
    cetcd_splitter_free(&s.split);
    free(s.err.p);
    return rc;
}
