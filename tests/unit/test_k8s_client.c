/*
 * test_k8s_client.c: the Kubernetes client (controller/k8s/) against a scripted API server.
 *
 * The fake server is a thread on 127.0.0.1 (port 0) speaking just enough HTTP/1.1: it records
 * every request (method, target, headers, body, time) and answers each from a script, in order
 * (or from a route function once the script is used up), one request per connection
 * ("Connection: close"). An answer is a body with Content-Length, or a chunked stream whose
 * chunks may cut lines anywhere, then either the final chunk, an open stream held until the
 * client goes or the server stops, or nothing at all (a stalled server). The Status bodies are
 * the ones kube-lite (hack/kube-lite) answered with, recorded by hand.
 * Checked: method, path, query (labelSelector escaping, watch=1, resourceVersion,
 * allowWatchBookmarks), headers (Authorization Bearer, Content-Type JSON vs merge patch), bodies,
 * the status subresource, delete preconditions, the Event object, the error mapping (404, 409
 * AlreadyExists vs Conflict, 410, 401/403, 400/422 with the Status message in k8s_errmsg, 500,
 * unreachable, non-JSON), the stop flag ending a stalled call, concurrent callers with their
 * own error messages, and an informer through list, a watch (ADDED/MODIFIED/DELETED/BOOKMARK,
 * lines split across chunks), a clean end resumed from the last resourceVersion, 410 Gone and
 * an ERROR event each answered by a relist (with the right notifications), a server restart
 * (reconnect and relist) and the backoff's exponential growth. Waits are on conditions with
 * bounded timeouts, never fixed sleeps.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "k8s/k8s.h"

/* ---------------------------------------------------------------- recorded answers (kube-lite) */

#define ST_404 "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\"," \
    "\"message\":\"configmaps \\\"nope\\\" not found\",\"reason\":\"NotFound\",\"code\":404," \
    "\"details\":{\"name\":\"nope\",\"group\":\"\",\"kind\":\"configmaps\"}}"
#define ST_EXISTS "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\"," \
    "\"message\":\"configmaps \\\"cm1\\\" already exists\",\"reason\":\"AlreadyExists\",\"code\":409," \
    "\"details\":{\"name\":\"cm1\",\"group\":\"\",\"kind\":\"configmaps\"}}"
#define ST_CONFLICT "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\"," \
    "\"message\":\"Operation cannot be fulfilled on configmaps \\\"cm1\\\": the object has been " \
    "modified; please apply your changes to the latest version and try again\",\"reason\":" \
    "\"Conflict\",\"code\":409,\"details\":{\"name\":\"cm1\",\"group\":\"\",\"kind\":\"configmaps\"}}"
#define ST_INVALID "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\"," \
    "\"message\":\"ConfigMap \\\"Bad_Name\\\" is invalid: metadata.name: Invalid value: " \
    "\\\"Bad_Name\\\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric " \
    "characters, '-' or '.', and must start and end with an alphanumeric character\",\"reason\":" \
    "\"Invalid\",\"code\":422,\"details\":{\"name\":\"Bad_Name\",\"kind\":\"ConfigMap\"}}"
#define INVALID_MSG "ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": " \
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or " \
    "'.', and must start and end with an alphanumeric character"
#define ST_GONE "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\"," \
    "\"message\":\"too old resource version: 15 (40)\",\"reason\":\"Expired\",\"code\":410}"
#define ST_FORBIDDEN "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\"," \
    "\"message\":\"pods is forbidden: User \\\"x\\\" cannot list resource \\\"pods\\\"\"," \
    "\"reason\":\"Forbidden\",\"code\":403}"
#define CM1 "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"cm1\",\"labels\":" \
    "{\"app\":\"x\"},\"namespace\":\"default\",\"uid\":\"263d65a6-a7bf-4662-9271-83bac103d1ab\"," \
    "\"creationTimestamp\":\"2026-11-21T02:23:59Z\",\"generation\":1,\"resourceVersion\":\"9\"}," \
    "\"data\":{\"a\":\"1\"}}"

/* ---------------------------------------------------------------- the fake API server */

struct canned {
    int status;
    const char *body;          /* answered with Content-Length */
    const char *const *chunks; /* or a chunked stream (NULL-terminated list) */
    bool hold;                 /* after the chunks: keep the stream open */
    bool stall;                /* answer nothing, keep the connection open */
};

struct req {
    char method[16];
    char target[2048];
    char headers[4096];
    char body[8192];
};

struct fake {
    int lfd, port;
    pthread_t th;
    atomic_bool stop;
    bool slam; /* accept and close at once */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    const struct canned *script;
    size_t nscript, next;
    const struct canned *(*route)(const struct req *);
    struct req reqs[64];
    size_t nreq;
    double accept_ms[16];
    size_t naccept;
};

static struct fake F = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
static const struct canned NO_SCRIPT = {503, "{\"kind\":\"Status\",\"code\":503,\"message\":\"no script\"}"};

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Waits on cv (mu held) for a signal or 20 ms, whichever comes first. */
static void wait_tick(pthread_cond_t *cv, pthread_mutex_t *mu)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 20 * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(cv, mu, &ts);
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

static bool read_request(int fd, struct req *r)
{
    char buf[16384];
    size_t len = 0, want;
    char *eoh = NULL, *cl;

    memset(r, 0, sizeof(*r));
    while (!eoh) {
        ssize_t n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);

        if (n <= 0)
            return false;
        len += (size_t)n;
        buf[len] = 0;
        eoh = strstr(buf, "\r\n\r\n");
    }
    sscanf(buf, "%15s %2047s", r->method, r->target);
    snprintf(r->headers, sizeof(r->headers), "%.*s", (int)(eoh - buf), buf);
    cl = strcasestr(r->headers, "\r\ncontent-length:");
    want = cl ? strtoul(cl + 17, NULL, 10) : 0;
    eoh += 4;
    while ((size_t)(buf + len - eoh) < want && len < sizeof(buf) - 1) {
        ssize_t n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);

        if (n <= 0)
            return false;
        len += (size_t)n;
        buf[len] = 0;
    }
    snprintf(r->body, sizeof(r->body), "%.*s", (int)want, eoh);
    return true;
}

/* Keeps the connection until the client closes it or the server stops. */
static void hold(struct fake *f, int fd)
{
    char b[256];

    while (!atomic_load(&f->stop)) {
        struct pollfd p = {fd, POLLIN, 0};

        if (poll(&p, 1, 20) > 0 && recv(fd, b, sizeof(b), 0) <= 0)
            return;
    }
}

static void respond(struct fake *f, int fd, const struct canned *a)
{
    char h[256];

    if (a->stall) {
        hold(f, fd);
        return;
    }
    if (!a->chunks) {
        int n = snprintf(h, sizeof(h), "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
                         "Content-Length: %zu\r\nConnection: close\r\n\r\n", a->status, strlen(a->body));
        write_all(fd, h, (size_t)n);
        write_all(fd, a->body, strlen(a->body));
        return;
    }
    snprintf(h, sizeof(h), "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
             "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n", a->status);
    write_all(fd, h, strlen(h));
    for (const char *const *c = a->chunks; *c; c++) {
        int n = snprintf(h, sizeof(h), "%zx\r\n", strlen(*c));
        write_all(fd, h, (size_t)n);
        write_all(fd, *c, strlen(*c));
        write_all(fd, "\r\n", 2);
    }
    if (a->hold)
        hold(f, fd); /* then closed without the last chunk: the client sees a cut stream */
    else
        write_all(fd, "0\r\n\r\n", 5);
}

static const struct canned *next_answer(struct fake *f, const struct req *r)
{
    if (f->next < f->nscript)
        return &f->script[f->next++];
    return f->route ? f->route(r) : &NO_SCRIPT;
}

static void serve_one(struct fake *f, int fd)
{
    struct req r;
    const struct canned *a;
    struct timeval tv = {5, 0};

    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (!read_request(fd, &r))
        return;
    pthread_mutex_lock(&f->mu);
    if (f->nreq < sizeof(f->reqs) / sizeof(f->reqs[0]))
        f->reqs[f->nreq++] = r;
    a = next_answer(f, &r);
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    respond(f, fd, a);
}

static void note_accept(struct fake *f)
{
    pthread_mutex_lock(&f->mu);
    if (f->naccept < sizeof(f->accept_ms) / sizeof(f->accept_ms[0]))
        f->accept_ms[f->naccept++] = now_ms();
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

static void *serve(void *arg)
{
    struct fake *f = arg;

    while (!atomic_load(&f->stop)) {
        struct pollfd p = {f->lfd, POLLIN, 0};
        int fd;

        if (poll(&p, 1, 20) <= 0 || (fd = accept(f->lfd, NULL, NULL)) < 0)
            continue;
        note_accept(f);
        if (!f->slam)
            serve_one(f, fd);
        close(fd);
    }
    return NULL;
}

/* Starts serving the script on port (0 = any free port), keeping what was recorded so far. */
static void fake_start(struct fake *f, int port, const struct canned *script, size_t n)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    socklen_t al = sizeof(a);
    int one = 1;

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(f->lfd >= 0);
    setsockopt(f->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    assert_int_equal(bind(f->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(f->lfd, 64), 0);
    getsockname(f->lfd, (struct sockaddr *)&a, &al);
    f->port = ntohs(a.sin_port);
    pthread_mutex_lock(&f->mu);
    f->script = script;
    f->nscript = n;
    f->next = 0;
    pthread_mutex_unlock(&f->mu);
    atomic_store(&f->stop, false);
    assert_int_equal(pthread_create(&f->th, NULL, serve, f), 0);
}

static void fake_stop(struct fake *f)
{
    atomic_store(&f->stop, true);
    pthread_join(f->th, NULL);
    close(f->lfd);
}

static void fake_reset(struct fake *f)
{
    f->nreq = f->naccept = 0;
    f->route = NULL;
    f->slam = false;
}

/* Waits (at most ms) until the server has recorded n requests. */
static bool fake_wait(struct fake *f, size_t n, int ms)
{
    double end = now_ms() + ms;
    bool ok;

    pthread_mutex_lock(&f->mu);
    while (f->nreq < n && now_ms() < end) {
        wait_tick(&f->cv, &f->mu);
    }
    ok = f->nreq >= n;
    pthread_mutex_unlock(&f->mu);
    return ok;
}

static bool fake_wait_accepts(struct fake *f, size_t n, int ms)
{
    double end = now_ms() + ms;

    while (now_ms() < end) {
        pthread_mutex_lock(&f->mu);
        bool ok = f->naccept >= n;
        pthread_mutex_unlock(&f->mu);
        if (ok)
            return true;
        fake_wait(f, 1000, 20); /* a bounded condition wait, woken by every accept */
    }
    return false;
}

static const struct req *req_at(size_t i)
{
    assert_true(i < F.nreq);
    return &F.reqs[i];
}

/* The value of header name (case-insensitive) in r, or "" */
static const char *header(const struct req *r, const char *name)
{
    static _Thread_local char v[512];
    char pat[64];
    const char *p, *e;

    snprintf(pat, sizeof(pat), "\r\n%s:", name);
    v[0] = 0;
    if (!(p = strcasestr(r->headers, pat)))
        return v;
    p += strlen(pat);
    while (*p == ' ')
        p++;
    e = strstr(p, "\r\n");
    snprintf(v, sizeof(v), "%.*s", (int)(e ? e - p : (long)strlen(p)), p);
    return v;
}

/* The raw value of query parameter key in r's target, or NULL. */
static const char *query(const struct req *r, const char *key)
{
    static _Thread_local char v[512];
    const char *q = strchr(r->target, '?');
    size_t kl = strlen(key);

    while (q && *q) {
        q++;
        if (!strncmp(q, key, kl) && q[kl] == '=') {
            const char *e = strchr(q + kl + 1, '&');
            snprintf(v, sizeof(v), "%.*s", (int)(e ? e - (q + kl + 1) : (long)strlen(q + kl + 1)),
                     q + kl + 1);
            return v;
        }
        q = strchr(q, '&');
    }
    return NULL;
}

static void assert_path(const struct req *r, const char *method, const char *path)
{
    size_t n = strcspn(r->target, "?");

    assert_string_equal(r->method, method);
    if (strlen(path) != n || strncmp(r->target, path, n))
        fail_msg("path %s, want %s", r->target, path);
}

/* ---------------------------------------------------------------- fixtures */

static k8s_client *client_for(int port)
{
    char url[64];
    struct k8s_config cfg = {.server = url, .token = "tok-123"};
    k8s_client *c;

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
    assert_int_equal(k8s_client_new(&cfg, &c), 0);
    k8s_client_set_timeouts(c, 2000, 5000);
    return c;
}

static k8s_client *start(const struct canned *script, size_t n)
{
    fake_reset(&F);
    fake_start(&F, 0, script, n);
    return client_for(F.port);
}

static void finish(k8s_client *c)
{
    k8s_client_free(c);
    fake_stop(&F);
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

static cJSON *parse(const char *s)
{
    cJSON *j = cJSON_Parse(s);

    assert_non_null(j);
    return j;
}

static const char *jstr(const cJSON *o, const char *a, const char *b)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, a);

    if (b)
        x = cJSON_GetObjectItemCaseSensitive(x, b);
    return cJSON_GetStringValue(x) ? cJSON_GetStringValue(x) : "(none)";
}

/* ---------------------------------------------------------------- verbs */

static void test_get_paths_and_headers(void **state)
{
    static const struct k8s_res nodes = {"v1", "nodes", "Node", false};
    const struct canned s[] = {{200, CM1}, {200, "{\"kind\":\"StatefulSet\"}"}, {200, "{}"}};
    k8s_client *c = start(s, N(s));
    cJSON *o;

    (void)state;
    assert_int_equal(k8s_get(c, &K8S_CONFIGMAPS, "default", "cm1", &o), 0);
    assert_string_equal(jstr(o, "metadata", "uid"), "263d65a6-a7bf-4662-9271-83bac103d1ab");
    assert_string_equal(k8s_errmsg(), "");
    cJSON_Delete(o);
    assert_int_equal(k8s_get(c, &K8S_STATEFULSETS, "ns-1", "web", NULL), 0);
    assert_int_equal(k8s_get(c, &nodes, "ignored", "n1", NULL), 0);
    assert_true(fake_wait(&F, 3, 1000));
    assert_path(req_at(0), "GET", "/api/v1/namespaces/default/configmaps/cm1");
    assert_string_equal(header(req_at(0), "Authorization"), "Bearer tok-123");
    assert_string_equal(header(req_at(0), "Accept"), "application/json");
    assert_string_equal(header(req_at(0), "Content-Type"), "");
    assert_path(req_at(1), "GET", "/apis/apps/v1/namespaces/ns-1/statefulsets/web");
    assert_path(req_at(2), "GET", "/api/v1/nodes/n1"); /* cluster-scoped: no namespace */
    /* no name, or no namespace for a namespaced resource: refused before any request */
    assert_int_equal(k8s_get(c, &K8S_PODS, NULL, "p", &o), CE_INVAL);
    assert_null(o);
    assert_int_equal(k8s_get(c, &K8S_PODS, "ns", NULL, NULL), CE_INVAL);
    assert_int_equal(F.nreq, 3);
    finish(c);
}

static void test_list_selector_and_kinds(void **state)
{
    const struct canned s[] = {
        {200, "{\"kind\":\"PodList\",\"apiVersion\":\"v1\",\"metadata\":{\"resourceVersion\":\"77\"},"
              "\"items\":[{\"metadata\":{\"name\":\"a\",\"namespace\":\"n\"}},"
              "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"b\"}}]}"},
        {200, "{\"kind\":\"PodList\",\"items\":[]}"},
        {200, "{\"kind\":\"PodList\"}"}};
    k8s_client *c = start(s, N(s));
    cJSON *l;

    (void)state;
    assert_int_equal(k8s_list(c, &K8S_PODS, "n", "app=x,tier!=db,env in (a,b)", &l), 0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(l, "items")), 2);
    assert_string_equal(jstr(cJSON_GetArrayItem(cJSON_GetObjectItem(l, "items"), 0), "kind", NULL), "Pod");
    assert_string_equal(jstr(cJSON_GetArrayItem(cJSON_GetObjectItem(l, "items"), 0), "apiVersion", NULL), "v1");
    assert_string_equal(jstr(l, "metadata", "resourceVersion"), "77");
    cJSON_Delete(l);
    assert_int_equal(k8s_list(c, &K8S_PODS, NULL, NULL, NULL), 0);
    assert_int_equal(k8s_list(c, &K8S_PODS, NULL, NULL, &l), CE_K8S_HTTP); /* no items */
    assert_null(l);
    assert_true(fake_wait(&F, 3, 1000));
    assert_path(req_at(0), "GET", "/api/v1/namespaces/n/pods");
    assert_string_equal(query(req_at(0), "labelSelector"),
                        "app%3Dx%2Ctier%21%3Ddb%2Cenv%20in%20%28a%2Cb%29");
    assert_string_equal(req_at(1)->target, "/api/v1/pods"); /* all namespaces, no query */
    finish(c);
}

static void test_writes(void **state)
{
    const struct canned s[] = {{201, CM1}, {201, CM1}, {200, CM1}, {200, CM1}, {200, "{}"}, {200, "{}"}};
    k8s_client *c = start(s, N(s));
    cJSON *obj = parse("{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"cm1\","
                       "\"namespace\":\"other\",\"resourceVersion\":\"9\"},\"data\":{\"a\":\"1\"}}");
    cJSON *patch = parse("{\"data\":{\"b\":null}}");
    cJSON *st = parse("{\"status\":{\"phase\":\"Running\"}}");
    cJSON *out;

    (void)state;
    assert_int_equal(k8s_create(c, &K8S_CONFIGMAPS, "default", obj, &out), 0);
    assert_string_equal(jstr(out, "metadata", "resourceVersion"), "9");
    cJSON_Delete(out);
    assert_int_equal(k8s_create(c, &K8S_CONFIGMAPS, NULL, obj, NULL), 0); /* ns from metadata */
    assert_int_equal(k8s_update(c, &K8S_CONFIGMAPS, "default", "cm1", obj, NULL), 0);
    assert_int_equal(k8s_patch(c, &K8S_CONFIGMAPS, "default", "cm1", patch, NULL), 0);
    assert_int_equal(k8s_update_status(c, &K8S_ETCDCLUSTERS, "db", "c1", st, NULL), 0);
    assert_int_equal(k8s_patch_status(c, &K8S_ETCDCLUSTERS, "db", "c1", st, NULL), 0);
    assert_true(fake_wait(&F, 6, 1000));

    assert_path(req_at(0), "POST", "/api/v1/namespaces/default/configmaps");
    assert_string_equal(header(req_at(0), "Content-Type"), "application/json");
    char *text = cJSON_PrintUnformatted(obj);
    assert_string_equal(req_at(0)->body, text);
    free(text);
    assert_path(req_at(1), "POST", "/api/v1/namespaces/other/configmaps");
    assert_path(req_at(2), "PUT", "/api/v1/namespaces/default/configmaps/cm1");
    assert_string_equal(header(req_at(2), "Content-Type"), "application/json");
    assert_non_null(strstr(req_at(2)->body, "\"resourceVersion\":\"9\""));
    assert_path(req_at(3), "PATCH", "/api/v1/namespaces/default/configmaps/cm1");
    assert_string_equal(header(req_at(3), "Content-Type"), "application/merge-patch+json");
    assert_string_equal(req_at(3)->body, "{\"data\":{\"b\":null}}");
    assert_path(req_at(4), "PUT", "/apis/cetcd.io/v1alpha1/namespaces/db/etcdclusters/c1/status");
    assert_string_equal(header(req_at(4), "Content-Type"), "application/json");
    assert_path(req_at(5), "PATCH", "/apis/cetcd.io/v1alpha1/namespaces/db/etcdclusters/c1/status");
    assert_string_equal(header(req_at(5), "Content-Type"), "application/merge-patch+json");
    assert_string_equal(req_at(5)->body, "{\"status\":{\"phase\":\"Running\"}}");
    cJSON_Delete(obj);
    cJSON_Delete(patch);
    cJSON_Delete(st);
    finish(c);
}

static void test_delete(void **state)
{
    const struct canned s[] = {{200, "{\"kind\":\"Status\",\"status\":\"Success\"}"}, {202, CM1},
                               {404, ST_404}};
    k8s_client *c = start(s, N(s));

    (void)state;
    assert_int_equal(k8s_delete(c, &K8S_PVCS, "db", "data-c-2", "uid-7"), 0);
    assert_int_equal(k8s_delete(c, &K8S_PODS, "db", "c-2", NULL), 0);
    assert_int_equal(k8s_delete(c, &K8S_PODS, "db", "nope", NULL), CE_NOTFOUND);
    assert_string_equal(k8s_errmsg(), "configmaps \"nope\" not found");
    assert_true(fake_wait(&F, 3, 1000));
    assert_path(req_at(0), "DELETE", "/api/v1/namespaces/db/persistentvolumeclaims/data-c-2");
    assert_string_equal(header(req_at(0), "Content-Type"), "application/json");
    assert_string_equal(req_at(0)->body, "{\"kind\":\"DeleteOptions\",\"apiVersion\":\"v1\","
                                         "\"preconditions\":{\"uid\":\"uid-7\"}}");
    assert_path(req_at(1), "DELETE", "/api/v1/namespaces/db/pods/c-2");
    assert_string_equal(req_at(1)->body, "");
    finish(c);
}

static void test_error_mapping(void **state)
{
    const struct canned s[] = {
        {404, ST_404}, {409, ST_EXISTS}, {409, ST_CONFLICT}, {410, ST_GONE}, {422, ST_INVALID},
        {403, ST_FORBIDDEN}, {401, "Unauthorized"}, {400, "{\"kind\":\"Status\",\"code\":400,"
        "\"reason\":\"BadRequest\",\"message\":\"bad body\"}"}, {500, "<html>oops</html>"},
        {200, "not json"}, {200, CM1}};
    k8s_client *c = start(s, N(s));
    cJSON *obj = parse(CM1), *out = obj;

    (void)state;
    assert_int_equal(k8s_get(c, &K8S_CONFIGMAPS, "default", "nope", &out), CE_NOTFOUND);
    assert_null(out);
    assert_string_equal(k8s_errmsg(), "configmaps \"nope\" not found");
    assert_int_equal(k8s_create(c, &K8S_CONFIGMAPS, "default", obj, NULL), CE_EXISTS);
    assert_string_equal(k8s_errmsg(), "configmaps \"cm1\" already exists");
    assert_int_equal(k8s_update(c, &K8S_CONFIGMAPS, "default", "cm1", obj, NULL), CE_K8S_CONFLICT);
    assert_non_null(strstr(k8s_errmsg(), "the object has been modified"));
    assert_int_equal(k8s_list(c, &K8S_CONFIGMAPS, "default", NULL, NULL), CE_K8S_GONE);
    assert_string_equal(k8s_errmsg(), "too old resource version: 15 (40)");
    assert_int_equal(k8s_create(c, &K8S_CONFIGMAPS, "default", obj, NULL), CE_K8S_INVALID);
    assert_string_equal(k8s_errmsg(), INVALID_MSG);
    assert_int_equal(k8s_list(c, &K8S_PODS, NULL, NULL, NULL), CE_K8S_FORBIDDEN);
    assert_non_null(strstr(k8s_errmsg(), "cannot list resource"));
    assert_int_equal(k8s_list(c, &K8S_PODS, NULL, NULL, NULL), CE_K8S_FORBIDDEN);
    assert_string_equal(k8s_errmsg(), "kubernetes: HTTP 401: Unauthorized");
    assert_int_equal(k8s_patch(c, &K8S_PODS, "a", "b", obj, NULL), CE_K8S_INVALID);
    assert_string_equal(k8s_errmsg(), "bad body");
    assert_int_equal(k8s_get(c, &K8S_PODS, "a", "b", NULL), CE_K8S_HTTP);
    assert_string_equal(k8s_errmsg(), "kubernetes: HTTP 500: <html>oops</html>");
    assert_int_equal(k8s_get(c, &K8S_PODS, "a", "b", &out), CE_K8S_HTTP);
    assert_non_null(strstr(k8s_errmsg(), "not JSON"));
    assert_int_equal(k8s_get(c, &K8S_PODS, "a", "b", NULL), 0);
    assert_string_equal(k8s_errmsg(), ""); /* a success clears the message */
    cJSON_Delete(obj);
    finish(c);
}

static void test_unreachable(void **state)
{
    k8s_client *c;
    int port;

    (void)state;
    fake_reset(&F);
    fake_start(&F, 0, NULL, 0);
    port = F.port;
    fake_stop(&F); /* nothing listens there any more */
    c = client_for(port);
    assert_int_equal(k8s_get(c, &K8S_PODS, "a", "b", NULL), CE_UNREACHABLE);
    assert_non_null(strstr(k8s_errmsg(), "127.0.0.1"));
    k8s_client_free(c);
}

static void test_event_shape(void **state)
{
    static const struct k8s_res nodes = {"v1", "nodes", "Node", false};
    const struct canned s[] = {{201, "{}"}, {201, "{}"}};
    k8s_client *c = start(s, N(s));
    cJSON *pod = parse("{\"apiVersion\":\"cetcd.io/v1alpha1\",\"kind\":\"EtcdCluster\",\"metadata\":"
                       "{\"name\":\"c1\",\"namespace\":\"db\",\"uid\":\"u-1\",\"resourceVersion\":\"42\"}}");
    cJSON *node = parse("{\"kind\":\"Node\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"n1\"}}");
    cJSON *ev, *io;

    (void)state;
    (void)nodes;
    assert_int_equal(k8s_event(c, pod, "Warning", "QuorumLost", "2 of 3 members down", "cetcd-operator"), 0);
    assert_int_equal(k8s_event(c, node, "Normal", "Seen", "hello", NULL), 0);
    assert_true(fake_wait(&F, 2, 1000));
    assert_path(req_at(0), "POST", "/api/v1/namespaces/db/events");
    ev = parse(req_at(0)->body);
    assert_string_equal(jstr(ev, "apiVersion", NULL), "v1");
    assert_string_equal(jstr(ev, "kind", NULL), "Event");
    assert_int_equal(strncmp(jstr(ev, "metadata", "name"), "c1.", 3), 0);
    assert_int_equal(strlen(jstr(ev, "metadata", "name")), 3 + 16);
    assert_string_equal(jstr(ev, "metadata", "namespace"), "db");
    io = cJSON_GetObjectItem(ev, "involvedObject");
    assert_string_equal(jstr(io, "apiVersion", NULL), "cetcd.io/v1alpha1");
    assert_string_equal(jstr(io, "kind", NULL), "EtcdCluster");
    assert_string_equal(jstr(io, "name", NULL), "c1");
    assert_string_equal(jstr(io, "namespace", NULL), "db");
    assert_string_equal(jstr(io, "uid", NULL), "u-1");
    assert_string_equal(jstr(io, "resourceVersion", NULL), "42");
    assert_string_equal(jstr(ev, "type", NULL), "Warning");
    assert_string_equal(jstr(ev, "reason", NULL), "QuorumLost");
    assert_string_equal(jstr(ev, "message", NULL), "2 of 3 members down");
    assert_string_equal(jstr(ev, "source", "component"), "cetcd-operator");
    assert_string_equal(jstr(ev, "reportingComponent", NULL), "cetcd-operator");
    assert_int_equal(cJSON_GetObjectItem(ev, "count")->valueint, 1);
    assert_int_equal(strlen(jstr(ev, "firstTimestamp", NULL)), 20); /* 2026-01-02T03:04:05Z */
    assert_string_equal(jstr(ev, "firstTimestamp", NULL), jstr(ev, "lastTimestamp", NULL));
    cJSON_Delete(ev);
    assert_path(req_at(1), "POST", "/api/v1/namespaces/default/events"); /* cluster-scoped */
    assert_int_equal(k8s_event(c, NULL, "Normal", "r", "m", NULL), CE_INVAL);
    cJSON_Delete(pod);
    cJSON_Delete(node);
    finish(c);
}

/* ---------------------------------------------------------------- stop flag, threads */

struct stopper {
    atomic_bool *flag;
};

static void *raise_after_request(void *arg)
{
    struct stopper *s = arg;

    fake_wait(&F, 1, 5000);
    atomic_store(s->flag, true);
    return NULL;
}

static void test_stop_flag(void **state)
{
    const struct canned s[] = {{.stall = true}};
    k8s_client *c = start(s, N(s));
    atomic_bool flag = false;
    struct stopper st = {&flag};
    pthread_t th;
    double t0;

    (void)state;
    k8s_client_set_stop(c, &flag);
    pthread_create(&th, NULL, raise_after_request, &st);
    t0 = now_ms();
    assert_int_equal(k8s_get(c, &K8S_PODS, "a", "b", NULL), CE_STOPPED);
    assert_true(now_ms() - t0 < 3000); /* well before the 5 s request timeout */
    pthread_join(th, NULL);
    assert_int_equal(k8s_get(c, &K8S_PODS, "a", "b", NULL), CE_STOPPED); /* no request at all */
    assert_int_equal(F.nreq, 1);
    finish(c);
}

static const struct canned *route_missing(const struct req *r)
{
    static const struct canned ok = {200, CM1}, missing = {404, ST_404};

    return strstr(r->target, "missing") ? &missing : &ok;
}

struct worker {
    k8s_client *c;
    int id, failures;
};

static void *worker_run(void *arg)
{
    struct worker *w = arg;

    for (int i = 0; i < 15; i++) {
        bool miss = (i + w->id) % 2;
        cJSON *o = NULL;
        int rc = k8s_get(w->c, &K8S_CONFIGMAPS, "default", miss ? "missing" : "cm1", &o);

        if (miss ? (rc != CE_NOTFOUND || strcmp(k8s_errmsg(), "configmaps \"nope\" not found"))
                 : (rc != 0 || !o || strcmp(k8s_errmsg(), "")))
            w->failures++;
        cJSON_Delete(o);
    }
    return NULL;
}

static void test_concurrent_callers(void **state)
{
    k8s_client *c = start(NULL, 0);
    struct worker w[4];
    pthread_t th[4];

    (void)state;
    F.route = route_missing;
    for (int i = 0; i < 4; i++) {
        w[i] = (struct worker){c, i, 0};
        pthread_create(&th[i], NULL, worker_run, &w[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].failures, 0);
    }
    assert_int_equal(F.nreq, 60);
    finish(c);
}

/* ---------------------------------------------------------------- informer */

struct notes {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char log[64][96];
    size_t n;
    k8s_informer *inf;
    bool inconsistent; /* the cache did not show the notified change */
};

static struct notes NT = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void on_change(void *ctx, const cJSON *obj, bool deleted)
{
    struct notes *nt = ctx;
    const char *ns = jstr(obj, "metadata", "namespace"), *name = jstr(obj, "metadata", "name");
    cJSON *cached = k8s_informer_get(nt->inf, strcmp(ns, "(none)") ? ns : "", name);

    if (deleted ? cached != NULL
                : (!cached || strcmp(jstr(cached, "metadata", "resourceVersion"),
                                     jstr(obj, "metadata", "resourceVersion"))))
        nt->inconsistent = true;
    if (!deleted && strcmp(jstr(obj, "kind", NULL), "ConfigMap"))
        nt->inconsistent = true;
    cJSON_Delete(cached);
    pthread_mutex_lock(&nt->mu);
    if (nt->n < 64)
        snprintf(nt->log[nt->n++], sizeof(nt->log[0]), "%s %s/%s %s", deleted ? "DEL" : "SET", ns,
                 name, jstr(obj, "metadata", "resourceVersion"));
    pthread_cond_broadcast(&nt->cv);
    pthread_mutex_unlock(&nt->mu);
}

static bool notes_wait(size_t n, int ms)
{
    double end = now_ms() + ms;
    bool ok;

    pthread_mutex_lock(&NT.mu);
    while (NT.n < n && now_ms() < end) {
        wait_tick(&NT.cv, &NT.mu);
    }
    ok = NT.n >= n;
    pthread_mutex_unlock(&NT.mu);
    return ok;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* The notes [from, from+n) are, in some order, exactly the n expected strings. */
static void assert_notes(size_t from, size_t n, ...)
{
    char got[16][96], want[16][96];
    va_list ap;

    assert_true(notes_wait(from + n, 5000));
    va_start(ap, n);
    for (size_t i = 0; i < n; i++) {
        snprintf(want[i], sizeof(want[i]), "%s", va_arg(ap, const char *));
        snprintf(got[i], sizeof(got[i]), "%s", NT.log[from + i]);
    }
    va_end(ap);
    qsort(got, n, sizeof(got[0]), cmp_str);
    qsort(want, n, sizeof(want[0]), cmp_str);
    for (size_t i = 0; i < n; i++)
        if (strcmp(got[i], want[i]))
            fail_msg("note %zu: got \"%s\", want \"%s\"", from + i, got[i], want[i]);
}

#define OBJ(ns, name, rv, extra) "{\"metadata\":{\"name\":\"" name "\",\"namespace\":\"" ns "\"," \
    "\"resourceVersion\":\"" rv "\",\"labels\":{\"tier\":\"a\"" extra "}}}"
#define EV(type, ns, name, rv) "{\"type\":\"" type "\",\"object\":{\"kind\":\"ConfigMap\"," \
    "\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"" name "\",\"namespace\":\"" ns "\"," \
    "\"resourceVersion\":\"" rv "\",\"labels\":{\"tier\":\"a\"}}}}\n"
#define LIST(rv, items) "{\"kind\":\"ConfigMapList\",\"apiVersion\":\"v1\",\"metadata\":" \
    "{\"resourceVersion\":\"" rv "\"},\"items\":[" items "]}"

static const char *const WATCH1[] = {
    EV("ADDED", "default", "c", "11") EV("MODIFIED", "default", "a", "12"),
    "{\"type\":\"DELETED\",\"object\":{\"metadata\":{\"name\":\"b\",\"namespace\":\"ns2\",\"resourceV",
    "ersion\":\"13\"}}}\n",
    "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"ConfigMap\",\"apiVersion\":\"v1\",\"metadata\":"
    "{\"resourceVersion\":\"15\"}}}\n",
    NULL};
static const char *const WATCH3[] = {
    EV("ADDED", "default", "e", "21"),
    "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\","
    "\"message\":\"too old resource version: 21 (25)\",\"reason\":\"Expired\",\"code\":410}}\n",
    NULL};
static const char *const NOTHING[] = {NULL};

static void check_watch_query(const struct req *r, const char *rv)
{
    assert_path(r, "GET", "/api/v1/configmaps");
    assert_string_equal(query(r, "watch"), "1");
    assert_string_equal(query(r, "allowWatchBookmarks"), "true");
    assert_string_equal(query(r, "resourceVersion"), rv);
    assert_string_equal(query(r, "labelSelector"), "tier%20in%20%28a%2Cb%29");
    assert_non_null(query(r, "timeoutSeconds"));
}

static void check_cache(k8s_informer *inf)
{
    cJSON *all = k8s_informer_list(inf, NULL, NULL, NULL), *one;
    cJSON *some = k8s_informer_list(inf, "default", "x", "1");

    assert_int_equal(cJSON_GetArraySize(all), 3); /* a, d, e */
    assert_int_equal(cJSON_GetArraySize(some), 1);
    assert_string_equal(jstr(cJSON_GetArrayItem(some, 0), "metadata", "name"), "d");
    cJSON_Delete(all);
    cJSON_Delete(some);
    some = k8s_informer_list(inf, "default", "x", NULL); /* label present, any value */
    assert_int_equal(cJSON_GetArraySize(some), 1);
    cJSON_Delete(some);
    one = k8s_informer_get(inf, "default", "a");
    assert_string_equal(jstr(one, "metadata", "resourceVersion"), "12");
    assert_string_equal(jstr(one, "kind", NULL), "ConfigMap");
    cJSON_ReplaceItemInObject(one, "kind", cJSON_CreateString("Changed")); /* a deep copy */
    cJSON_Delete(one);
    one = k8s_informer_get(inf, "default", "a");
    assert_string_equal(jstr(one, "kind", NULL), "ConfigMap");
    cJSON_Delete(one);
    assert_null(k8s_informer_get(inf, "default", "c"));
    assert_null(k8s_informer_get(inf, "ns2", "b"));
}

static void test_informer(void **state)
{
    const struct canned s1[] = {
        {200, LIST("10", OBJ("default", "a", "5", "") "," OBJ("ns2", "b", "7", ""))},
        {200, .chunks = WATCH1},                 /* ends cleanly: resumed from 15 */
        {410, ST_GONE},                          /* relist */
        {200, LIST("20", OBJ("default", "a", "12", "") "," OBJ("default", "d", "18", ",\"x\":\"1\""))},
        {200, .chunks = WATCH3},                 /* an event, then ERROR 410: relist at once */
        {200, LIST("30", OBJ("default", "a", "12", "") "," OBJ("default", "d", "18", ",\"x\":\"1\"")
                   "," OBJ("default", "e", "21", ""))},
        {200, .chunks = NOTHING, .hold = true}};
    const struct canned s2[] = {{200, LIST("40", OBJ("default", "a", "12", ""))},
                                {200, .chunks = NOTHING, .hold = true}};
    k8s_client *c = start(s1, N(s1));
    k8s_informer *inf;
    int port = F.port;

    (void)state;
    NT.n = 0;
    NT.inconsistent = false;
    assert_int_equal(k8s_informer_new(c, &K8S_CONFIGMAPS, NULL, "tier in (a,b)", on_change, &NT, &inf), 0);
    NT.inf = inf;
    assert_false(k8s_informer_synced(inf));
    assert_null(k8s_informer_get(inf, "default", "a"));
    assert_int_equal(k8s_informer_start(inf), 0);
    assert_int_equal(k8s_informer_start(inf), CE_INVAL);

    assert_notes(0, 2, "SET default/a 5", "SET ns2/b 7");
    assert_true(k8s_informer_wait_synced(inf, 5000)); /* set once the first list's notifications are delivered */
    assert_notes(2, 3, "SET default/c 11", "SET default/a 12", "DEL ns2/b 13");
    assert_notes(5, 2, "SET default/d 18", "DEL default/c 11"); /* relist after 410 */
    assert_notes(7, 1, "SET default/e 21");
    assert_true(fake_wait(&F, 7, 5000));
    assert_path(req_at(0), "GET", "/api/v1/configmaps");
    assert_string_equal(query(req_at(0), "labelSelector"), "tier%20in%20%28a%2Cb%29");
    assert_null(query(req_at(0), "watch"));
    check_watch_query(req_at(1), "10");
    check_watch_query(req_at(2), "15");
    assert_null(query(req_at(3), "watch"));
    check_watch_query(req_at(4), "20");
    assert_null(query(req_at(5), "watch"));
    check_watch_query(req_at(6), "30");
    pthread_mutex_lock(&NT.mu);
    assert_int_equal(NT.n, 8); /* the third list changed nothing: no notification */
    pthread_mutex_unlock(&NT.mu);
    check_cache(inf);

    /* the API server goes away (cutting the watch) and comes back on the same port */
    fake_stop(&F);
    fake_start(&F, port, s2, N(s2));
    assert_notes(8, 2, "DEL default/d 18", "DEL default/e 21");
    assert_true(fake_wait(&F, 9, 5000));
    assert_null(query(req_at(7), "watch")); /* reconnects by relisting */
    check_watch_query(req_at(8), "40");
    assert_false(NT.inconsistent);

    k8s_informer_free(inf); /* ends the held watch promptly */
    finish(c);
}

static void test_informer_backoff(void **state)
{
    k8s_client *c = start(NULL, 0);
    k8s_informer *inf;
    double d[4];

    (void)state;
    F.slam = true; /* every connection is cut at once: the list keeps failing */
    assert_int_equal(k8s_informer_new(c, &K8S_PODS, "ns", NULL, NULL, NULL, &inf), 0);
    assert_int_equal(k8s_informer_start(inf), 0);
    assert_true(fake_wait_accepts(&F, 5, 8000));
    k8s_informer_free(inf);
    for (int i = 0; i < 4; i++)
        d[i] = F.accept_ms[i + 1] - F.accept_ms[i];
    print_message("# backoff intervals: %.0f %.0f %.0f %.0f ms\n", d[0], d[1], d[2], d[3]);
    /* 200 ms doubling, jittered +-25%, never below 200 ms */
    assert_true(d[0] >= 190 && d[0] < 700);
    assert_true(d[1] >= 290 && d[1] < 1000);
    assert_true(d[2] >= 590 && d[2] < 1600);
    assert_true(d[3] >= 1190 && d[3] < 2800);
    finish(c);
}

static void test_informer_free_unstarted(void **state)
{
    k8s_client *c = start(NULL, 0);
    k8s_informer *inf;
    cJSON *l;

    (void)state;
    assert_int_equal(k8s_informer_new(c, &K8S_PODS, NULL, NULL, NULL, NULL, &inf), 0);
    l = k8s_informer_list(inf, NULL, NULL, NULL);
    assert_int_equal(cJSON_GetArraySize(l), 0);
    cJSON_Delete(l);
    k8s_informer_free(inf);
    finish(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_paths_and_headers),
        cmocka_unit_test(test_list_selector_and_kinds),
        cmocka_unit_test(test_writes),
        cmocka_unit_test(test_delete),
        cmocka_unit_test(test_error_mapping),
        cmocka_unit_test(test_unreachable),
        cmocka_unit_test(test_event_shape),
        cmocka_unit_test(test_stop_flag),
        cmocka_unit_test(test_concurrent_callers),
        cmocka_unit_test(test_informer),
        cmocka_unit_test(test_informer_backoff),
        cmocka_unit_test(test_informer_free_unstarted),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
