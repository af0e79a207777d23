/*
 * http.c: the Kubernetes client handle and its request layer (libcurl).
 *
 * One exchange = one pooled connection {easy handle, multi handle} taken under the client's
 * lock, driven by this thread alone through curl_multi_perform/curl_multi_poll in 100 ms
 * slices (so a stop flag ends even an idle watch within ~100 ms), then given back so its
 * keep-alive connection serves the next call. Handles are never shared between threads while
 * in use; curl_global_init runs once (pthread_once); CURLOPT_NOSIGNAL is set on every handle.
 * TLS: CA from a file (CAINFO) or bytes (CAINFO_BLOB), client certificate and key from files or
 * bytes (SSLCERT/SSLKEY[_BLOB]), or insecure-skip-tls-verify; auth is a bearer token header.
 * A 2xx body is either collected or, in stream mode, cut into lines handed to the caller's sink
 * as they arrive (a watch is one JSON event per line); a non-2xx body is always collected so
 * api.c can read the Status object. Bodies are capped at K8S_MAX_BODY.
 * The last failure's message is kept per thread (k8s_errmsg).
 */
#include "k8s_int.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define K8S_POOL_MAX 8
#define K8S_MAX_BODY (256u << 20)
#define K8S_SLICE_MS 100

struct conn {
    CURL *easy;
    CURLM *multi;
};

struct k8s_client {
    struct k8s_config cfg;        /* deep copy of the caller's */
    char *auth;                   /* "Authorization: Bearer ..." or NULL */
    struct curl_blob ca, cert, key; /* views of cfg's *_pem (CURL_BLOB_NOCOPY) */
    long connect_ms, request_ms;
    _Atomic(atomic_bool *) stop;
    pthread_mutex_t lock;         /* guards pool/npool */
    struct conn pool[K8S_POOL_MAX];
    size_t npool;
};

static _Thread_local char errmsg[1024];
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

/* ---------------------------------------------------------------- error message */

const char *k8s_errmsg(void)
{
    return errmsg;
}

static void set_errmsg_v(const char *fmt, va_list ap)
{
    vsnprintf(errmsg, sizeof(errmsg), fmt, ap);
}

void k8s_set_errmsg(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    set_errmsg_v(fmt, ap);
    va_end(ap);
}

int k8s_fail(int err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    set_errmsg_v(fmt, ap);
    va_end(ap);
    return err;
}

/* ---------------------------------------------------------------- buffers */

int k8s_buf_add(struct k8s_buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        char *p;

        while (cap < b->len + n + 1)
            cap *= 2;
        if (!(p = realloc(b->p, cap)))
            return CE_NOMEM;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
    return 0;
}

int k8s_buf_adds(struct k8s_buf *b, const char *s)
{
    return k8s_buf_add(b, s, strlen(s));
}

static bool unreserved(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '.' || ch == '_' || ch == '~';
}

int k8s_buf_add_escaped(struct k8s_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    char esc[3] = {'%', 0, 0};
    int rc = 0;

    for (const unsigned char *p = (const unsigned char *)s; *p && !rc; p++) {
        if (unreserved(*p)) {
            rc = k8s_buf_add(b, (const char *)p, 1);
            continue;
        }
        esc[1] = hex[*p >> 4];
        esc[2] = hex[*p & 15];
        rc = k8s_buf_add(b, esc, 3);
    }
    return rc;
}

int k8s_buf_query(struct k8s_buf *b, const char *key, const char *value)
{
    int rc;

    if ((rc = k8s_buf_adds(b, b->len && memchr(b->p, '?', b->len) ? "&" : "?")) ||
        (rc = k8s_buf_adds(b, key)) || (rc = k8s_buf_adds(b, "=")))
        return rc;
    return k8s_buf_add_escaped(b, value);
}

void k8s_buf_free(struct k8s_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* ---------------------------------------------------------------- client handle */

static void curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int dup_field(char **dst, const char *src)
{
    if (!src)
        return 0;
    *dst = strdup(src);
    return *dst ? 0 : CE_NOMEM;
}

static int copy_config(struct k8s_config *d, const struct k8s_config *s)
{
    d->insecure = s->insecure;
    if (dup_field(&d->server, s->server) || dup_field(&d->ca_file, s->ca_file) ||
        dup_field(&d->ca_pem, s->ca_pem) || dup_field(&d->cert_file, s->cert_file) ||
        dup_field(&d->key_file, s->key_file) || dup_field(&d->cert_pem, s->cert_pem) ||
        dup_field(&d->key_pem, s->key_pem) || dup_field(&d->token, s->token) ||
        dup_field(&d->namespace, s->namespace))
        return CE_NOMEM;
    return 0;
}

static void free_config_fields(struct k8s_config *c)
{
    free(c->server);
    free(c->ca_file);
    free(c->ca_pem);
    free(c->cert_file);
    free(c->key_file);
    free(c->cert_pem);
    free(c->key_pem);
    free(c->token);
    free(c->namespace);
}

static void set_blob(struct curl_blob *b, char *pem)
{
    b->data = pem;
    b->len = pem ? strlen(pem) : 0;
    b->flags = CURL_BLOB_NOCOPY;
}

/* The server URL without trailing slashes; CE_K8S_CONFIG when it is not http(s). */
static int check_server(struct k8s_config *cfg)
{
    size_t n;

    if (!cfg->server || (strncmp(cfg->server, "https://", 8) && strncmp(cfg->server, "http://", 7)))
        return k8s_fail(CE_K8S_CONFIG, "kubernetes: server URL \"%s\" is not http(s)://host:port",
                        cfg->server ? cfg->server : "");
    n = strlen(cfg->server);
    while (n > 0 && cfg->server[n - 1] == '/')
        cfg->server[--n] = 0;
    return 0;
}

static int make_auth(k8s_client *c)
{
    if (!c->cfg.token || !*c->cfg.token)
        return 0;
    if (asprintf(&c->auth, "Authorization: Bearer %s", c->cfg.token) < 0) {
        c->auth = NULL;
        return CE_NOMEM;
    }
    return 0;
}

int k8s_client_new(const struct k8s_config *cfg, k8s_client **out)
{
    k8s_client *c;
    int rc;

    *out = NULL;
    if (!cfg)
        return k8s_fail(CE_INVAL, "kubernetes: no configuration");
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK)
        return k8s_fail(CE_IO, "kubernetes: curl_global_init failed");
    if (!(c = calloc(1, sizeof(*c))))
        return CE_NOMEM;
    pthread_mutex_init(&c->lock, NULL);
    c->connect_ms = 5000;
    c->request_ms = 30000;
    if ((rc = copy_config(&c->cfg, cfg)) || (rc = check_server(&c->cfg)) || (rc = make_auth(c)))
        goto out_free_client;
    set_blob(&c->ca, c->cfg.ca_pem);
    set_blob(&c->cert, c->cfg.cert_pem);
    set_blob(&c->key, c->cfg.key_pem);
    *out = c;
    return 0;

out_free_client:
    k8s_client_free(c);
    return rc;
}

void k8s_client_free(k8s_client *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->npool; i++) {
        curl_multi_cleanup(c->pool[i].multi);
        curl_easy_cleanup(c->pool[i].easy);
    }
    pthread_mutex_destroy(&c->lock);
    free_config_fields(&c->cfg);
    free(c->auth);
    free(c);
}

void k8s_client_set_stop(k8s_client *c, atomic_bool *flag)
{
    atomic_store(&c->stop, flag);
}

void k8s_client_set_timeouts(k8s_client *c, long connect_ms, long request_ms)
{
    if (connect_ms > 0)
        c->connect_ms = connect_ms;
    if (request_ms > 0)
        c->request_ms = request_ms;
}

const char *k8s_client_namespace(const k8s_client *c)
{
    return c->cfg.namespace;
}

bool k8s_stop_requested(k8s_client *c, atomic_bool *extra)
{
    atomic_bool *s = atomic_load(&c->stop);

    return (s && atomic_load(s)) || (extra && atomic_load(extra));
}

int k8s_sleep_ms(k8s_client *c, atomic_bool *extra, long ms)
{
    while (ms > 0) {
        long step = ms < 20 ? ms : 20;
        struct timespec ts = {0, step * 1000000L};

        if (k8s_stop_requested(c, extra))
            return CE_STOPPED;
        nanosleep(&ts, NULL);
        ms -= step;
    }
    return k8s_stop_requested(c, extra) ? CE_STOPPED : 0;
}

/* ---------------------------------------------------------------- connection pool */

static int conn_take(k8s_client *c, struct conn *out)
{
    pthread_mutex_lock(&c->lock);
    if (c->npool > 0) {
        *out = c->pool[--c->npool];
        pthread_mutex_unlock(&c->lock);
        curl_easy_reset(out->easy);
        return 0;
    }
    pthread_mutex_unlock(&c->lock);
    out->easy = curl_easy_init();
    out->multi = curl_multi_init();
    if (out->easy && out->multi)
        return 0;
    curl_easy_cleanup(out->easy);
    curl_multi_cleanup(out->multi);
    return k8s_fail(CE_NOMEM, "kubernetes: cannot create a curl handle");
}

/* keep=false after a transfer that was cut off: its connection is not reusable anyway. */
static void conn_give(k8s_client *c, struct conn *h, bool keep)
{
    pthread_mutex_lock(&c->lock);
    if (keep && c->npool < K8S_POOL_MAX) {
        c->pool[c->npool++] = *h;
        h = NULL;
    }
    pthread_mutex_unlock(&c->lock);
    if (h) {
        curl_multi_cleanup(h->multi);
        curl_easy_cleanup(h->easy);
    }
}

/* ---------------------------------------------------------------- body sinks */

static bool status_2xx(struct k8s_call *call)
{
    long st = 0;

    curl_easy_getinfo((CURL *)call->easy, CURLINFO_RESPONSE_CODE, &st);
    return st >= 200 && st < 300;
}

/* Hands every complete line in call->resp to the sink and keeps the incomplete rest. */
static int drain_lines(struct k8s_call *call)
{
    struct k8s_buf *b = &call->resp;
    size_t start = 0;
    char *nl;
    int rc = 0;

    while (!rc && start < b->len && (nl = memchr(b->p + start, '\n', b->len - start))) {
        size_t n = (size_t)(nl - (b->p + start));

        *nl = 0;
        if (n > 0 && b->p[start + n - 1] == '\r')
            b->p[start + --n] = 0;
        if (n > 0)
            rc = call->on_line(call->ud, b->p + start, n);
        start += (size_t)(nl - (b->p + start)) + 1;
    }
    memmove(b->p, b->p + start, b->len - start);
    b->len -= start;
    if (b->p)
        b->p[b->len] = 0;
    return rc;
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *ud)
{
    struct k8s_call *call = ud;
    size_t n = size * nmemb;

    if (call->resp.len + n > K8S_MAX_BODY) {
        call->sink_rc = k8s_fail(CE_MSG_TOO_LARGE, "kubernetes: response larger than %u bytes",
                                 K8S_MAX_BODY);
        return 0;
    }
    if (k8s_buf_add(&call->resp, data, n)) {
        call->sink_rc = CE_NOMEM;
        return 0;
    }
    if (call->on_line && status_2xx(call) && (call->sink_rc = drain_lines(call)))
        return 0;
    return n;
}

/* A stream's last line may lack its '\n'. */
static int flush_last_line(struct k8s_call *call)
{
    if (!call->on_line || call->status < 200 || call->status >= 300 || !call->resp.len)
        return 0;
    if (k8s_buf_add(&call->resp, "\n", 1))
        return CE_NOMEM;
    return drain_lines(call);
}

/* ---------------------------------------------------------------- one exchange */

static void set_tls(k8s_client *c, CURL *h)
{
    if (c->cfg.ca_file)
        curl_easy_setopt(h, CURLOPT_CAINFO, c->cfg.ca_file);
    if (c->cfg.ca_pem)
        curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &c->ca);
    if (c->cfg.cert_file)
        curl_easy_setopt(h, CURLOPT_SSLCERT, c->cfg.cert_file);
    if (c->cfg.cert_pem)
        curl_easy_setopt(h, CURLOPT_SSLCERT_BLOB, &c->cert);
    if (c->cfg.key_file)
        curl_easy_setopt(h, CURLOPT_SSLKEY, c->cfg.key_file);
    if (c->cfg.key_pem)
        curl_easy_setopt(h, CURLOPT_SSLKEY_BLOB, &c->key);
    if (c->cfg.cert_file || c->cfg.cert_pem)
        curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
    if (c->cfg.insecure) {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
}

static struct curl_slist *make_headers(k8s_client *c, const struct k8s_call *call)
{
    struct curl_slist *l = NULL, *n;
    char ct[128];
    const char *hs[4] = {"Accept: application/json", "Expect:", c->auth, NULL};

    if (call->ctype) {
        snprintf(ct, sizeof(ct), "Content-Type: %s", call->ctype);
        hs[3] = ct;
    }
    for (size_t i = 0; i < 4; i++) {
        if (!hs[i])
            continue;
        if (!(n = curl_slist_append(l, hs[i]))) {
            curl_slist_free_all(l);
            return NULL;
        }
        l = n;
    }
    return l;
}

static int set_request(k8s_client *c, CURL *h, struct k8s_call *call, struct k8s_buf *url,
                       struct curl_slist *hdrs)
{
    long tmo = call->timeout_ms ? call->timeout_ms : c->request_ms;

    if (k8s_buf_adds(url, c->cfg.server) || k8s_buf_adds(url, call->path))
        return CE_NOMEM;
    curl_easy_setopt(h, CURLOPT_URL, url->p);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "cetcd-operator");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->connect_ms);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, tmo > 0 ? tmo : 0L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, call);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, call->method);
    if (call->body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)call->body_len);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, call->body);
    }
    set_tls(c, h);
    return 0;
}

/* Runs the transfer in slices; returns the CURLcode, or -1 when a stop flag rose. */
static int run_transfer(k8s_client *c, struct conn *h, atomic_bool *stop)
{
    int running = 1, left;
    CURLMsg *m;
    CURLcode cc = CURLE_OK;

    curl_multi_add_handle(h->multi, h->easy);
    while (running) {
        if (curl_multi_perform(h->multi, &running) != CURLM_OK) {
            cc = CURLE_OUT_OF_MEMORY;
            break;
        }
        if (running && k8s_stop_requested(c, stop)) {
            curl_multi_remove_handle(h->multi, h->easy);
            return -1;
        }
        if (running)
            curl_multi_poll(h->multi, NULL, 0, K8S_SLICE_MS, NULL);
    }
    while ((m = curl_multi_info_read(h->multi, &left)))
        if (m->msg == CURLMSG_DONE)
            cc = m->data.result;
    curl_multi_remove_handle(h->multi, h->easy);
    return (int)cc;
}

static int transfer_result(k8s_client *c, struct k8s_call *call, int cc)
{
    if (cc == -1)
        return k8s_fail(CE_STOPPED, "kubernetes: %s %s: stopped", call->method, call->path);
    if (cc == CURLE_WRITE_ERROR && call->sink_rc)
        return call->sink_rc;
    if (cc != CURLE_OK)
        return k8s_fail(CE_UNREACHABLE, "kubernetes: %s %s%s: %s", call->method, c->cfg.server,
                        call->path, curl_easy_strerror((CURLcode)cc));
    curl_easy_getinfo((CURL *)call->easy, CURLINFO_RESPONSE_CODE, &call->status);
    return flush_last_line(call);
}

int k8s_http_do(k8s_client *c, struct k8s_call *call)
{
    struct k8s_buf url = {0};
    struct curl_slist *hdrs;
    struct conn h;
    int rc, cc;

    call->status = 0;
    call->sink_rc = 0;
    if (k8s_stop_requested(c, call->stop))
        return k8s_fail(CE_STOPPED, "kubernetes: %s %s: stopped", call->method, call->path);
    if ((rc = conn_take(c, &h)))
        return rc;
    if (!(hdrs = make_headers(c, call))) {
        rc = CE_NOMEM;
        goto out_give_conn;
    }
    call->easy = h.easy;
    if ((rc = set_request(c, h.easy, call, &url, hdrs)))
        goto out_free_headers;
    cc = run_transfer(c, &h, call->stop);
    rc = transfer_result(c, call, cc);

out_free_headers:
    curl_slist_free_all(hdrs);
out_give_conn:
    call->easy = NULL;
    k8s_buf_free(&url);
    conn_give(c, &h, rc == 0);
    return rc;
}
