/*
 * watch.c: watch streams over the JSON gateway, any number at once on curl's multi interface,
 * kept going across connection failures as etcd's clientv3 keeps its watches.
 *
 * Wire format (etcd 3.4's gateway, which cetcd serves the same way):
 *   request   POST /v3/watch, body {"create_request":{"key":"<b64>","range_end":"<b64>",
 *             "start_revision":"<n>","progress_notify":true,"filters":["NOPUT","NODELETE"],
 *             "prev_kv":true}} (zero fields left out), headers "hasleader: true" (cetcd) and
 *             "Grpc-Metadata-Hasleader: true" (etcd's grpc-gateway) when require_leader is set.
 *   answer    200 with Transfer-Encoding: chunked; each chunk is one `{"result":<WatchResponse>}`
 *             plus "\n": first {"header":{...},"created":true}, then events, e.g.
 *             {"result":{"header":{...,"revision":"7"},"events":[{"type":"DELETE","kv":{...},
 *             "prev_kv":{...}}]}}; a cancel is {"result":{...,"canceled":true,
 *             "compact_revision":"3"}}. A stream error ends it with `{"error":{"grpc_code":C,
 *             "http_code":H,"message":M,"http_status":S}}`. A refused request is a non-200
 *             answer with a unary error body {"error":M,"message":M,"code":C}.
 *
 * A stream moves OPEN (transfer running) -> WAIT (retry_at set, no transfer) -> OPEN ... and
 * ends in DONE. It goes to WAIT when the transfer fails before any HTTP answer, when a 200
 * answer ends without a cancel, or on an Unavailable/Internal error other than "etcdserver: no
 * leader" (clientv3 retries exactly those); every other error is delivered once as a made-up
 * canceled response (resp.error set) and the stream is DONE. A reopened stream starts at
 * next_rev: the revision after the last event delivered, or after the created header when the
 * watch started at "now", or after a server's progress notification's header; never before the
 * requested start.
 *
 * Invariants: a stream has an easy handle (and is in the multi handle) iff it is OPEN or it is
 * DONE and its transfer has not been reaped yet; fn is never called once a stream is DONE;
 * set->open counts the streams not DONE. Callbacks run inside curl_multi_perform(), where
 * handles may not be removed, so a stream ended there only aborts its transfer (the write
 * callback returns 0) and is reaped afterwards.
 */
#include "client_internal.h"

#include <poll.h>
#include <stdlib.h>
#include <string.h>

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define ERR_BODY_MAX 4096
#define MAX_POLL_FDS 8
#define KEEPALIVE_S 2L /* etcdctl's --keepalive-time: a dead peer is noticed by TCP keepalive */

enum st { ST_OPEN, ST_WAIT, ST_DONE };
enum end { END_NONE = 0, END_RETRY, END_DONE };

struct wstream {
    struct wstream *next;
    cetcd_watchset *set;
    enum st state;
    struct cetcd_watch_req req; /* key and range_end point into keybuf */
    char *keybuf;
    CURL *easy;
    struct curl_slist *hdrs;
    char *body;
    struct cetcd_splitter split;
    char err[ERR_BODY_MAX + 1]; /* a non-200 answer's body (its start) */
    size_t err_len;
    enum end end;       /* why the running transfer was stopped by us */
    int64_t next_rev;   /* where a reopened stream starts (0: req.start_revision) */
    bool created;       /* the created response was delivered */
    size_t ep;          /* endpoint of the running or next transfer */
    int64_t retry_at;
    long backoff_ms;
    cetcd_watch_fn fn;
    void *ctx;
};

struct cetcd_watchset {
    cetcd_client *c;
    CURLM *multi;
    struct wstream *head;
    size_t open;
    int rc;     /* a callback's negative return, handed out by poll */
    bool ended; /* a stream ended during this poll */
};

/* ---------------------------------------------------------------- set and streams */

int cetcd_watchset_new(cetcd_client *c, cetcd_watchset **out)
{
    cetcd_watchset *ws = calloc(1, sizeof(*ws));

    *out = NULL;
    if (!ws)
        return CE_NOMEM;
    ws->c = c;
    ws->multi = curl_multi_init();
    if (!ws->multi) {
        free(ws);
        return CE_NOMEM;
    }
    *out = ws;
    return 0;
}

/* Ends the running transfer, if any (never from inside a curl callback). */
static void detach(struct wstream *s)
{
    if (s->easy) {
        curl_multi_remove_handle(s->set->multi, s->easy);
        curl_easy_cleanup(s->easy);
        s->easy = NULL;
    }
    curl_slist_free_all(s->hdrs);
    s->hdrs = NULL;
    free(s->body);
    s->body = NULL;
    cetcd_splitter_reset(&s->split);
    s->err_len = 0;
    s->end = END_NONE;
}

static void stream_free(struct wstream *s)
{
    detach(s);
    cetcd_splitter_free(&s->split);
    free(s->keybuf);
    free(s);
}

void cetcd_watchset_free(cetcd_watchset *ws)
{
    struct wstream *s, *next;

    if (!ws)
        return;
    for (s = ws->head; s; s = next) {
        next = s->next;
        stream_free(s);
    }
    curl_multi_cleanup(ws->multi);
    free(ws);
}

size_t cetcd_watchset_count(const cetcd_watchset *ws)
{
    return ws->open;
}

/* Marks s over: no more callbacks; its transfer (if any) is reaped later. */
static void finish(struct wstream *s)
{
    if (s->state == ST_DONE)
        return;
    s->state = ST_DONE;
    s->set->open--;
    s->set->ended = true;
}

static int object_fn(void *ctx, const char *p, size_t n);

/* Copies the request's key and range end into one buffer owned by the stream. */
static int copy_req(struct wstream *s, const struct cetcd_watch_req *req)
{
    size_t kl = req->key_len, el = req->range_end ? req->range_end_len : 0;

    s->req = *req;
    s->keybuf = malloc(kl + el + 2);
    if (!s->keybuf)
        return CE_NOMEM;
    if (kl)
        memcpy(s->keybuf, req->key, kl);
    s->keybuf[kl] = 0;
    s->req.key = s->keybuf;
    if (req->range_end) {
        if (el)
            memcpy(s->keybuf + kl + 1, req->range_end, el);
        s->keybuf[kl + 1 + el] = 0;
        s->req.range_end = s->keybuf + kl + 1;
    }
    return 0;
}

int cetcd_watchset_add(cetcd_watchset *ws, const struct cetcd_watch_req *req, cetcd_watch_fn fn,
                       void *ctx)
{
    struct wstream *s = calloc(1, sizeof(*s));

    if (!s)
        return CE_NOMEM;
    if (copy_req(s, req)) {
        free(s);
        return CE_NOMEM;
    }
    s->set = ws;
    s->fn = fn;
    s->ctx = ctx;
    s->ep = ws->c->cur;
    s->state = ST_WAIT; /* opened by the next poll */
    s->retry_at = 0;
    s->backoff_ms = BACKOFF_MIN_MS;
    cetcd_splitter_init(&s->split, CETCD_STREAM_MAX_OBJECT, object_fn, s);
    s->next = ws->head;
    ws->head = s;
    ws->open++;
    return 0;
}

/* ---------------------------------------------------------------- responses */

/* Hands resp to the stream's callback; true if the stream goes on. */
static bool deliver(struct wstream *s, const struct cetcd_watch_resp *resp)
{
    int rc = s->fn(s->ctx, resp);

    if (rc < 0 && !s->set->rc)
        s->set->rc = rc;
    if (rc || resp->canceled) {
        finish(s);
        return false;
    }
    return true;
}

/* Ends s with a made-up canceled response carrying an error retrying cannot cure. */
static void deliver_error(struct wstream *s, int code, const char *msg)
{
    struct cetcd_watch_resp r = {0};

    r.canceled = true;
    r.error = code;
    r.cancel_reason = (char *)msg;
    deliver(s, &r);
    finish(s);
}

/* Unavailable (14) and Internal (13) are retried, except "no leader" (as clientv3 does). */
static bool retryable(int code, int grpc_code, long http_status)
{
    if (code == CE_NO_LEADER)
        return false;
    if (grpc_code)
        return grpc_code == 14 || grpc_code == 13;
    return http_status == 502 || http_status == 503 || http_status == 504;
}

/* Keeps the resume point up to date with what resp tells. */
static void track_revision(struct wstream *s, const struct cetcd_watch_resp *r)
{
    if (r->n_events) {
        s->next_rev = r->events[r->n_events - 1].kv.mod_revision + 1;
    } else if (r->created) {
        if (!s->req.start_revision && !s->next_rev && r->header.revision)
            s->next_rev = r->header.revision + 1;
    } else if (!r->canceled && !r->compact_revision && r->header.revision &&
               r->header.revision + 1 > s->next_rev) {
        s->next_rev = r->header.revision + 1; /* a progress notification */
    }
}

static int on_result(struct wstream *s, const cJSON *res)
{
    struct cetcd_watch_resp r = {0};
    int rc = cetcd_codec_watch_resp(res, &r.mem, &r);
    bool go_on = true;

    if (rc) {
        cetcd_mem_free(r.mem);
        deliver_error(s, rc, rc == CE_NOMEM ? ce_strerror(rc) : "malformed watch response");
        return 1;
    }
    track_revision(s, &r);
    if (r.created && !r.canceled && s->created) {
        cetcd_mem_free(r.mem); /* the reopened stream's created: already told */
        return 0;
    }
    if (r.created) {
        s->created = true;
        s->backoff_ms = BACKOFF_MIN_MS;
    }
    go_on = deliver(s, &r);
    cetcd_mem_free(r.mem);
    return go_on ? 0 : 1;
}

static int on_error(struct wstream *s, const cJSON *err)
{
    char msg[512];
    int grpc = 0, code = cetcd_codec_stream_error(err, msg, sizeof(msg), &grpc);

    if (retryable(code, grpc, 0)) {
        s->end = END_RETRY;
        return 1;
    }
    deliver_error(s, code, msg);
    return 1;
}

/* One complete object of the answer. Non-zero stops reading this transfer. */
static int object_fn(void *ctx, const char *p, size_t n)
{
    struct wstream *s = ctx;
    cJSON *j = cJSON_ParseWithLength(p, n);
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(j, "result");
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(j, "error");
    int rc;

    if (!j) {
        deliver_error(s, CE_CORRUPT, "malformed JSON in watch stream");
        return 1;
    }
    if (err && !cJSON_IsNull(err))
        rc = on_error(s, err);
    else if (cJSON_IsObject(res))
        rc = on_result(s, res);
    else
        rc = 0; /* something else: not ours to read */
    cJSON_Delete(j);
    return rc;
}

static size_t write_fn(char *data, size_t size, size_t nmemb, void *ud)
{
    struct wstream *s = ud;
    size_t n = size * nmemb;
    long status = 0;
    int rc;

    if (s->state == ST_DONE || s->end)
        return 0;
    curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) {
        size_t room = ERR_BODY_MAX - s->err_len, k = n < room ? n : room;
        memcpy(s->err + s->err_len, data, k);
        s->err_len += k;
        return n;
    }
    rc = cetcd_splitter_feed(&s->split, data, n);
    if (rc == CE_MSG_TOO_LARGE || rc == CE_NOMEM)
        deliver_error(s, rc, ce_strerror(rc));
    return rc ? 0 : n;
}

/* ---------------------------------------------------------------- transfers */

static int start_transfer(struct wstream *s)
{
    static const char *const leader_hdrs[] = {"hasleader: true", "Grpc-Metadata-Hasleader: true",
                                              NULL};
    cetcd_client *c = s->set->c;
    int64_t start = s->next_rev > s->req.start_revision ? s->next_rev : s->req.start_revision;
    cJSON *b = cetcd_codec_watch_create(&s->req, start);

    if (!b)
        return CE_NOMEM;
    s->body = cJSON_PrintUnformatted(b);
    cJSON_Delete(b);
    s->easy = curl_easy_init();
    if (!s->body || !s->easy)
        goto out_detach;
    s->hdrs = cetcd_http_prepare(c, s->easy, c->endpoints[s->ep % c->n_endpoints], "/v3/watch",
                                 s->body, 0, s->req.require_leader ? leader_hdrs : NULL);
    if (!s->hdrs)
        goto out_detach;
    curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, write_fn);
    curl_easy_setopt(s->easy, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(s->easy, CURLOPT_PRIVATE, s);
    curl_easy_setopt(s->easy, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(s->easy, CURLOPT_TCP_KEEPIDLE, KEEPALIVE_S);
    curl_easy_setopt(s->easy, CURLOPT_TCP_KEEPINTVL, KEEPALIVE_S);
    if (curl_multi_add_handle(s->set->multi, s->easy) != CURLM_OK) {
        curl_easy_cleanup(s->easy);
        s->easy = NULL;
        goto out_detach;
    }
    s->state = ST_OPEN;
    return 0;

out_detach:
    if (s->easy) {
        curl_easy_cleanup(s->easy);
        s->easy = NULL;
    }
    detach(s);
    return CE_NOMEM;
}

/* Opens again later, on the next endpoint, after the backoff. */
static void schedule_retry(struct wstream *s)
{
    s->state = ST_WAIT;
    s->ep = (s->ep + 1) % s->set->c->n_endpoints;
    s->retry_at = cetcd_now_ms() + s->backoff_ms;
    s->backoff_ms = s->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : s->backoff_ms * 2;
}

/* A refused request (non-200 answer): retried or delivered as the stream's end. */
static void refused(struct wstream *s, long status)
{
    char msg[512];
    int grpc = 0;
    int code = cetcd_codec_error(s->err, s->err_len, status, msg, sizeof(msg), &grpc);

    if (retryable(code, grpc, status)) {
        schedule_retry(s);
        return;
    }
    deliver_error(s, code, msg);
}

/* The transfer of s is over: decide what comes next. */
static void transfer_done(struct wstream *s)
{
    long status = 0;
    enum end end = s->end;

    curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
    s->err[s->err_len] = 0;
    if (s->state == ST_DONE) {
        detach(s);
        return;
    }
    if (status != 0 && status != 200 && end == END_NONE) {
        refused(s, status);
    } else {
        schedule_retry(s); /* END_RETRY, a cut or ended 200 answer, or no answer at all */
    }
    detach(s);
}

static void unlink_done(cetcd_watchset *ws)
{
    struct wstream **pp = &ws->head;

    while (*pp) {
        struct wstream *s = *pp;
        if (s->state == ST_DONE && !s->easy) {
            *pp = s->next;
            stream_free(s);
        } else {
            pp = &s->next;
        }
    }
}

static void reap(cetcd_watchset *ws)
{
    CURLMsg *m;
    int left;

    while ((m = curl_multi_info_read(ws->multi, &left))) {
        char *priv = NULL;
        if (m->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
        if (priv)
            transfer_done((struct wstream *)priv);
    }
    unlink_done(ws);
}

/* Opens the transfers whose backoff is over. */
static int open_due(cetcd_watchset *ws, int64_t now)
{
    int rc;

    for (struct wstream *s = ws->head; s; s = s->next)
        if (s->state == ST_WAIT && s->retry_at <= now && (rc = start_transfer(s)))
            return rc;
    return 0;
}

/* The earliest retry waiting, or -1. */
static int64_t next_retry(const cetcd_watchset *ws)
{
    int64_t next = -1;

    for (const struct wstream *s = ws->head; s; s = s->next)
        if (s->state == ST_WAIT && (next < 0 || s->retry_at < next))
            next = s->retry_at;
    return next;
}

/* Milliseconds to wait: until the deadline or the next retry, whichever is first. */
static int wait_ms(int64_t now, int64_t deadline, int64_t retry)
{
    int64_t until = deadline;

    if (retry >= 0 && (until < 0 || retry < until))
        until = retry;
    if (until < 0)
        return 1000; /* curl_multi_poll needs a bound; the loop simply goes round */
    return until <= now ? 0 : (int)(until - now > 1000 ? 1000 : until - now);
}

/* The first of fds readable, at EOF or failed, else -1. Asked of poll(2) itself: curl's
 * revents leave out POLLHUP, which is all a pipe at EOF may report. */
static int fd_ready(const int *fds, size_t n)
{
    struct pollfd p[MAX_POLL_FDS];

    for (size_t i = 0; i < n; i++)
        p[i] = (struct pollfd){.fd = fds[i], .events = POLLIN};
    if (n == 0 || poll(p, (nfds_t)n, 0) <= 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (p[i].revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL))
            return (int)i;
    return -1;
}

/* One round: open due transfers, move data, reap. */
static int step(cetcd_watchset *ws)
{
    int running, rc;
    CURLMcode mc;

    if ((rc = open_due(ws, cetcd_now_ms())))
        return rc;
    mc = curl_multi_perform(ws->multi, &running);
    if (mc != CURLM_OK)
        return mc == CURLM_OUT_OF_MEMORY ? CE_NOMEM : CE_IO;
    reap(ws);
    return 0;
}

int cetcd_watchset_poll(cetcd_watchset *ws, const int *fds, size_t nfds, long timeout_ms,
                        int *ready)
{
    struct curl_waitfd w[MAX_POLL_FDS];
    int64_t deadline = timeout_ms < 0 ? -1 : cetcd_now_ms() + timeout_ms;
    int rc;

    *ready = -1;
    if (nfds > MAX_POLL_FDS)
        return CE_INVAL;
    ws->rc = 0;
    ws->ended = false;
    for (;;) {
        if ((rc = step(ws)))
            return rc;
        if (ws->rc || ws->ended)
            return ws->rc;
        int64_t now = cetcd_now_ms();
        if (deadline >= 0 && now >= deadline)
            return 0;
        for (size_t i = 0; i < nfds; i++)
            w[i] = (struct curl_waitfd){.fd = fds[i], .events = CURL_WAIT_POLLIN};
        if (curl_multi_poll(ws->multi, w, (unsigned)nfds, wait_ms(now, deadline, next_retry(ws)),
                            NULL) != CURLM_OK)
            return CE_IO;
        if ((*ready = fd_ready(fds, nfds)) >= 0)
            return 0;
    }
}

/* ---------------------------------------------------------------- progress, one-shot */

struct progress {
    struct cetcd_header header;
    int rc;
};

static int progress_result(void *ctx, const cJSON *result)
{
    struct progress *p = ctx;

    p->rc = cetcd_codec_header(result, &p->header);
    return p->rc ? p->rc : 1;
}

int cetcd_watchset_progress(cetcd_watchset *ws)
{
    struct progress p = {.rc = CE_CORRUPT};
    struct cetcd_watch_resp r = {0};
    cJSON *b = cJSON_CreateObject();
    int rc;

    if (!b || !cJSON_AddObjectToObject(b, "progress_request")) {
        cJSON_Delete(b);
        return CE_NOMEM;
    }
    rc = cetcd_http_stream(ws->c, NULL, "/v3/watch", b, true, progress_result, &p);
    cJSON_Delete(b);
    if (rc || (rc = p.rc))
        return rc;
    r.header = p.header;
    r.watch_id = -1;
    r.cancel_reason = "";
    for (struct wstream *s = ws->head; s; s = s->next) {
        if (s->state == ST_DONE || !s->created)
            continue; /* (no resume point from it: events may still be on their way) */
        if (!deliver(s, &r))
            detach(s);
    }
    unlink_done(ws);
    return ws->rc;
}

int cetcd_watch(cetcd_client *c, const struct cetcd_watch_req *req, cetcd_watch_fn fn, void *ctx,
                int stop_fd)
{
    cetcd_watchset *ws;
    int rc, ready = -1;

    if ((rc = cetcd_watchset_new(c, &ws)))
        return rc;
    rc = cetcd_watchset_add(ws, req, fn, ctx);
    while (!rc && cetcd_watchset_count(ws) > 0 && ready < 0)
        rc = cetcd_watchset_poll(ws, &stop_fd, stop_fd >= 0 ? 1 : 0, -1, &ready);
    cetcd_watchset_free(ws);
    return rc;
}
