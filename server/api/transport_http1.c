/*
 * transport_http1.c: HTTP/1.1 on the client port: a request parser and etcd's JSON gateway.
 *
 * Requests (RFC 9112): "METHOD SP target SP HTTP/1.x CRLF", header lines "Name: value CRLF",
 * an empty line; the head may not exceed TRANSPORT_MAX_HEADER (64 KiB; else 431 and close).
 * Bodies: Content-Length, or Transfer-Encoding: chunked ("hex[;ext] CRLF data CRLF" ... "0 CRLF"
 * trailer lines, CRLF). Keep-alive is the default for HTTP/1.1 (Connection: close ends it);
 * HTTP/1.0 closes unless "Connection: keep-alive". Pipelined requests are answered in order:
 * each request is an rpc_call on the connection's list and responses leave in list order.
 *
 * Gateway mapping (as etcd 3.4's grpc-gateway v1):
 *   POST /v3/<svc>/<method> (or /v3beta/...) -> the rpc_method whose http_path matches; the body
 *   is the request message as JSON (empty = empty message; client-streaming methods take each
 *   JSON value of the body as one message). Unary answer: 200, application/json, the response
 *   as JSON. Errors: {"error":M,"message":M,"code":C} with C the gRPC code and the HTTP status
 *   grpc-gateway maps it to. Server streams: 200, Transfer-Encoding: chunked, one chunk
 *   `{"result":<json>}\n` per message; an error ends the stream with the chunk
 *   `{"error":{"grpc_code":C,"http_code":H,"message":M,"http_status":"<text>"}}\n`, then "0";
 *   an error before the first message answers status H instead of 200, the chunk without "\n".
 *   A message larger than max_request_bytes + 512 KiB: 429, code 8, grpc-go's text.
 *   Other /v3/ paths: 404 "Not Found\n"; another method on a gateway path: 405.
 *   GET (and HEAD) of other paths go to cfg->http_get; 0 from it -> 404 "404 page not found\n";
 *   another method on a path it serves: 405. A handler may defer its answer (RPC_HTTP_LATER,
 *   then rpc_http_answer): the call stays unanswered in its place on the connection's list,
 *   so pipelined requests behind it still answer in order.
 *   A WebSocket upgrade on a gateway path goes to transport_ws.c (checked there, then handed
 *   to libwebsockets); Upgrade headers on other paths are ignored, as etcd ignores them.
 *
 * Invariants: requests are parsed only while fewer than TRANSPORT_H1_INFLIGHT are unanswered
 * and less than TRANSPORT_OUT_HIGH of answers is unsent; a call's response bytes collect in
 * call->resp until all calls before it are emitted. A request (head and body) must arrive
 * within TRANSPORT_REQ_TIMEOUT_MS of its first byte (slow senders are dropped).
 */
#include "transport_int.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "err.h"
#include "evloop.h"
#include "server/api/gateway/pbjson.h"

#define CHUNK_LINE_MAX 1024

/* ---- responses ---- */

static int http_status_of(int grpc_code)
{
    switch (grpc_code) {
    case 0: return 200;
    case 1: return 408;   /* Canceled */
    case 3: return 400;   /* InvalidArgument */
    case 4: return 504;   /* DeadlineExceeded */
    case 5: return 404;   /* NotFound */
    case 6: return 409;   /* AlreadyExists */
    case 7: return 403;   /* PermissionDenied */
    case 8: return 429;   /* ResourceExhausted */
    case 9: return 412;   /* FailedPrecondition (grpc-gateway v1, as etcd 3.4 answers) */
    case 10: return 409;  /* Aborted */
    case 11: return 400;  /* OutOfRange */
    case 12: return 501;  /* Unimplemented */
    case 14: return 503;  /* Unavailable */
    case 16: return 401;  /* Unauthenticated */
    default: return 500;  /* Unknown, Internal, DataLoss */
    }
}

static const char *reason_of(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 412: return "Precondition Failed";
    case 413: return "Request Entity Too Large";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return status >= 500 ? "Internal Server Error" : "Unknown";
    }
}

static int json_escape(bytebuf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";

    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[6] = {'\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 15]};
        int rc;
        if (*p == '"' || *p == '\\')
            rc = bytebuf_append(b, (const char[]){'\\', (char)*p}, 2);
        else if (*p < 0x20)
            rc = bytebuf_append(b, esc, 6);
        else
            rc = bytebuf_append(b, p, 1);
        if (rc)
            return rc;
    }
    return 0;
}

int h1_reply(rpc_call *c, int status, const char *extra, const char *ctype, const void *body,
             size_t len)
{
    int rc = bytebuf_printf(&c->resp, "HTTP/1.1 %d %s\r\n%sContent-Type: %s\r\n"
                         "Content-Length: %zu\r\n%s\r\n", status, reason_of(status), extra,
                         ctype, len, c->keep_alive ? "" : "Connection: close\r\n");
    if (!rc)
        rc = bytebuf_append(&c->resp, body, len);
    c->done = true;
    c->finished = true;
    return rc;
}

/* A complete response with a body; marks the call done. */
static int reply(rpc_call *c, int status, const char *ctype, const void *body, size_t len)
{
    return h1_reply(c, status, "", ctype, body, len);
}

static int reply_text(rpc_call *c, int status, const char *text)
{
    return reply(c, status, "text/plain; charset=utf-8", text, strlen(text));
}

/* {"error":M,"message":M,"code":C}: grpc-gateway's error body. */
int h1_error_json(bytebuf *b, int grpc_code, const char *message)
{
    int rc = bytebuf_append(b, "{\"error\":\"", 10);

    rc = rc ? rc : json_escape(b, message);
    rc = rc ? rc : bytebuf_append(b, "\",\"message\":\"", 13);
    rc = rc ? rc : json_escape(b, message);
    return rc ? rc : bytebuf_printf(b, "\",\"code\":%d}", grpc_code);
}

static int reply_error(rpc_call *c, int status, int grpc_code, const char *message)
{
    bytebuf b = {0};
    int rc = h1_error_json(&b, grpc_code, message);

    rc = rc ? rc : reply(c, status, "application/json", bytebuf_data(&b), bytebuf_size(&b));
    bytebuf_free(&b);
    return rc;
}

static int start_chunked(rpc_call *c)
{
    if (c->resp_started)
        return 0;
    c->resp_started = true;
    return bytebuf_printf(&c->resp, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n");
}

/* One chunk: prefix + json + suffix. */
static int put_chunk(rpc_call *c, const char *prefix, const char *json, size_t len,
                     const char *suffix)
{
    size_t total = strlen(prefix) + len + strlen(suffix);
    int rc = bytebuf_printf(&c->resp, "%zx\r\n%s", total, prefix);

    rc = rc ? rc : bytebuf_append(&c->resp, json, len);
    rc = rc ? rc : bytebuf_printf(&c->resp, "%s\r\n", suffix);
    return rc;
}

int h1_send(rpc_call *c, const ProtobufCMessage *msg)
{
    size_t len;
    char *json = pbjson_encode(msg, &len);
    int rc;

    if (!json)
        return CE_NOMEM;
    if (c->m->server_stream) {
        rc = start_chunked(c);
        rc = rc ? rc : put_chunk(c, "{\"result\":", json, len, "}\n");
    } else {
        c->out.off = c->out.len = 0;   /* a unary call answers once: keep the last */
        rc = bytebuf_append(&c->out, json, len);
    }
    free(json);
    return rc;
}

/* {"error":{"grpc_code":C,"http_code":H,"message":M,"http_status":S}}: how grpc-gateway ends
 * a server stream with an error. */
int h1_stream_error_json(bytebuf *b, int grpc_code, const char *message)
{
    int status = http_status_of(grpc_code);
    int rc = bytebuf_printf(b, "{\"error\":{\"grpc_code\":%d,\"http_code\":%d,\"message\":\"",
                         grpc_code, status);

    rc = rc ? rc : json_escape(b, message);
    return rc ? rc : bytebuf_printf(b, "\",\"http_status\":\"%s\"}}", reason_of(status));
}

static int stream_error(rpc_call *c, int grpc_code, const char *message)
{
    bytebuf b = {0};
    int rc = h1_stream_error_json(&b, grpc_code, message);

    rc = rc ? rc : put_chunk(c, "", (const char *)bytebuf_data(&b), bytebuf_size(&b), "\n");
    bytebuf_free(&b);
    return rc;
}

/* An error before a server stream's first message: grpc-gateway answers the status of the code,
 * still chunked, with the error object alone (no newline), as etcd 3.4 does. */
static int stream_refused(rpc_call *c, int grpc_code, const char *message)
{
    int status = http_status_of(grpc_code);
    bytebuf b = {0};
    int rc = h1_stream_error_json(&b, grpc_code, message);

    c->resp_started = true;
    c->done = true;
    rc = rc ? rc : bytebuf_printf(&c->resp, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                                  "Transfer-Encoding: chunked\r\n\r\n", status, reason_of(status));
    rc = rc ? rc : put_chunk(c, "", (const char *)bytebuf_data(&b), bytebuf_size(&b), "");
    rc = rc ? rc : bytebuf_append(&c->resp, "0\r\n\r\n", 5);
    bytebuf_free(&b);
    return rc;
}

int h1_finish(rpc_call *c, int grpc_code, const char *message)
{
    int rc;

    c->finished = true;
    if (c->m && c->m->server_stream && grpc_code && !c->resp_started)
        return stream_refused(c, grpc_code, message);
    if (c->m && c->m->server_stream) {
        rc = start_chunked(c);
        if (!rc && grpc_code)
            rc = stream_error(c, grpc_code, message);
        rc = rc ? rc : bytebuf_append(&c->resp, "0\r\n\r\n", 5);
        c->done = true;
        return rc;
    }
    if (grpc_code)
        return reply_error(c, http_status_of(grpc_code), grpc_code, message);
    if (bytebuf_size(&c->out) == 0)
        return reply(c, 200, "application/json", "{}", 2);
    rc = reply(c, 200, "application/json", bytebuf_data(&c->out), bytebuf_size(&c->out));
    bytebuf_free(&c->out);
    return rc;
}

void h1_emit(rpc_conn *conn)
{
    rpc_call *c;

    while ((c = conn->calls)) {
        if (bytebuf_size(&c->resp)) {
            if (bytebuf_size(&conn->out) == 0 && conn->out.cap <= c->resp.cap) {
                bytebuf t = conn->out;
                conn->out = c->resp;
                c->resp = t;
            } else if (bytebuf_append(&conn->out, bytebuf_data(&c->resp), bytebuf_size(&c->resp))) {
                conn->h1.stopped = true;
                conn->close_after_flush = true;
            }
            c->resp.off = c->resp.len = 0;
        }
        if (!c->done || c == conn->h1.cur)
            break;
        conn->h1.inflight--;
        if (c->keep_alive) {
            call_release(c);
            continue;
        }
        /* the last response on this connection: nothing after it is answered */
        conn->h1.stopped = true;
        conn->close_after_flush = true;
        while (conn->calls)
            call_release(conn->calls);
    }
}

size_t h1_backlog(const rpc_conn *conn)
{
    size_t n = bytebuf_size(&conn->out);

    for (const rpc_call *c = conn->calls; c; c = c->next)
        n += bytebuf_size(&c->resp);
    return n;
}

/* On the client's EOF (a half-close or a full close, which look alike) unary requests are
 * still answered, but server streams (watches) end at once, as Go's server cancels them. */
void h1_peer_eof(rpc_conn *conn)
{
    for (rpc_call *c = conn->calls; c; c = c->next) {
        if (c->m && c->m->server_stream && !c->done) {
            c->finished = true;
            c->done = true;
        }
    }
}

/* ---- the gateway ---- */

static bool is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

/* The extent of the next JSON value in s[*pos..len): a brace/bracket-balanced object or array
 * (strings skipped), or a scalar up to whitespace. false at the end. */
static bool next_value(const char *s, size_t len, size_t *pos, size_t *start, size_t *end)
{
    size_t i = *pos;
    int depth = 0;
    bool in_str = false;

    while (i < len && is_space(s[i]))
        i++;
    if (i >= len)
        return false;
    *start = i;
    for (; i < len; i++) {
        char ch = s[i];
        if (in_str) {
            if (ch == '\\')
                i++;
            else if (ch == '"')
                in_str = false;
        } else if (ch == '"') {
            in_str = true;
        } else if (ch == '{' || ch == '[') {
            depth++;
        } else if (ch == '}' || ch == ']') {
            if (--depth <= 0) {
                i++;
                break;
            }
        } else if (depth == 0 && is_space(ch)) {
            break;
        }
    }
    *end = i > len ? len : i;
    *pos = *end;
    return true;
}

/* Decodes one JSON value into a request and hands it over. 0, or the call was finished. */
static int gateway_message(rpc_call *c, const char *json, size_t len)
{
    char err[256];
    ProtobufCMessage *msg = NULL;
    uint32_t max = conn_max_msg(c->conn);
    size_t packed;

    if (pbjson_decode(c->m->req_desc, json, len, &msg, err, sizeof(err))) {
        if (c->m->client_stream)   /* etcd 3.4 answers a stream's bad body this way */
            reply_error(c, 500, 2, err);
        else
            reply_error(c, 400, 3, err);
        return CE_BAD_JSON;
    }
    packed = protobuf_c_message_get_packed_size(msg);
    if (packed > max) {
        char text[128];
        snprintf(text, sizeof(text), "grpc: received message larger than max (%zu vs. %u)",
                 packed, max);
        protobuf_c_message_free_unpacked(msg, NULL);
        reply_error(c, 429, 8, text);
        return CE_REQ_TOO_LARGE;
    }
    call_deliver(c, msg);
    return 0;
}

static void gateway_call(rpc_call *c, const rpc_method *m, const char *body, size_t len)
{
    size_t pos = 0, start, end;

    c->m = m;
    if (!m->client_stream) {
        gateway_message(c, body, len);
        return;
    }
    while (!c->finished && next_value(body, len, &pos, &start, &end))
        if (gateway_message(c, body + start, end - start))
            return;
    if (pos == 0 && !c->finished)   /* empty body: one empty message */
        gateway_message(c, "", 0);
    call_recv_end(c);
}

/* The answer of a GET route: its body, or none for a HEAD. */
static void get_reply(rpc_call *c, rpc_http_reply *r)
{
    reply(c, r->status, r->content_type ? r->content_type : "text/plain; charset=utf-8", r->body,
          c->get_head ? 0 : r->len);
    free(r->body);
    r->body = NULL;
}

static void get_route(rpc_call *c, const char *path, bool head)
{
    const rpc_server_config *cfg = conn_config(c->conn);
    rpc_http_reply r = {0};
    int status;

    c->get_head = head;
    c->get_pending = true;   /* before the handler runs: it may answer or defer */
    status = cfg->http_get ? cfg->http_get(cfg->ctx, c, path, &r) : 0;
    if (status == RPC_HTTP_LATER)
        return;
    c->get_pending = false;
    if (status == 0) {
        free(r.body);
        reply_text(c, 404, "404 page not found\n");
        return;
    }
    r.status = status;
    get_reply(c, &r);
}

int rpc_http_answer(rpc_call *c, rpc_http_reply *r)
{
    if (!c->get_pending || c->conn->dead) {
        c->get_pending = false;
        free(r->body);
        r->body = NULL;
        return CE_STOPPED;
    }
    c->get_pending = false;
    get_reply(c, r);
    conn_mark_dirty(c->conn);
    return 0;
}

/* Whether a GET route serves path (to answer another method with 405, as Go's mux does). */
static bool get_exists(rpc_call *c, const char *path)
{
    const rpc_server_config *cfg = conn_config(c->conn);
    rpc_http_reply r = {0};
    int status = cfg->http_get ? cfg->http_get(cfg->ctx, NULL, path, &r) : 0;

    free(r.body);
    return status != 0;
}

static bool is_gateway_path(const char *path)
{
    return strncmp(path, "/v3/", 4) == 0 || strncmp(path, "/v3beta/", 8) == 0;
}

/* Routes a complete request (head in metadata, body given). */
static void dispatch(rpc_call *c, const char *body, size_t len)
{
    const char *method = rpc_call_metadata(c, ":method");
    const char *target = rpc_call_metadata(c, ":path");
    char path[1024];
    size_t plen = strcspn(target, "?#");
    const rpc_method *m;

    if (plen >= sizeof(path)) {
        reply_text(c, 404, "404 page not found\n");
        return;
    }
    memcpy(path, target, plen);
    path[plen] = 0;
    if (is_gateway_path(path) && wsgw_is_upgrade(c)) {
        wsgw_upgrade(c, method);
        return;
    }
    m = server_find_http(c->conn->srv, path, plen);
    if (m && strcmp(method, "POST") == 0)
        gateway_call(c, m, body, len);
    else if (m)
        reply_text(c, 405, "Method Not Allowed\n");
    else if (is_gateway_path(path))
        reply_text(c, 404, "Not Found\n");
    else if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0)
        get_route(c, path, method[0] == 'H');
    else if (get_exists(c, path))
        reply_text(c, 405, "Method Not Allowed\n");
    else
        reply_text(c, 404, "404 page not found\n");
}

/* ---- the parser ---- */

/* Ends parsing with an error response as the last one on the connection. */
static void parse_error(rpc_conn *conn, int status, const char *text)
{
    rpc_call *c = conn->h1.cur;

    if (!c) {
        c = call_new(conn, true);
        if (!c) {
            conn->h1.stopped = true;
            conn->close_after_flush = true;
            return;
        }
        conn->h1.inflight++;
    }
    conn->h1.cur = NULL;
    c->keep_alive = false;
    if (!c->finished) {
        c->finished = true;
        bytebuf_free(&c->resp);
        reply_text(c, status, text);
    }
    c->done = true;
    conn->h1.stopped = true;
}

static bool token_eq(const char *a, size_t alen, const char *b)
{
    return strlen(b) == alen && strncasecmp(a, b, alen) == 0;
}

/* Lower-cased header names and values into the call's metadata, plus what framing needs. */
static int parse_headers(rpc_call *c, const char *p, const char *end, bool *chunked,
                         bool *has_cl, bool *expect)
{
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *colon, *v, *ve;
        if (!eol)
            eol = end;
        ve = eol > p && eol[-1] == '\r' ? eol - 1 : eol;
        if (ve == p) {   /* the empty line ending the head */
            p = eol + 1;
            continue;
        }
        colon = memchr(p, ':', (size_t)(ve - p));
        if (!colon || colon == p)
            return CE_INVAL;
        v = colon + 1;
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        if (call_md_add(c, p, (size_t)(colon - p), v, (size_t)(ve - v)))
            return CE_NOMEM;
        if (token_eq(p, (size_t)(colon - p), "content-length")) {
            char *e;
            unsigned long long n;
            if (*has_cl || v == ve || *v < '0' || *v > '9')
                return CE_INVAL;
            n = strtoull(v, &e, 10);
            if (e != ve)
                return CE_INVAL;
            c->content_length = n;
            *has_cl = true;
        } else if (token_eq(p, (size_t)(colon - p), "transfer-encoding")) {
            if (!token_eq(v, (size_t)(ve - v), "chunked"))
                return CE_UNSUPPORTED;
            *chunked = true;
        } else if (token_eq(p, (size_t)(colon - p), "connection")) {
            if (token_eq(v, (size_t)(ve - v), "close"))
                c->keep_alive = false;
            else if (token_eq(v, (size_t)(ve - v), "keep-alive"))
                c->keep_alive = true;
        } else if (token_eq(p, (size_t)(colon - p), "expect")) {
            *expect = token_eq(v, (size_t)(ve - v), "100-continue");
        }
        p = eol + 1;
    }
    return 0;
}

size_t h1_body_limit(const rpc_conn *conn)
{
    /* JSON carries bytes as base64 (4/3) plus syntax: allow twice the message limit. */
    return 2 * (size_t)conn_max_msg(conn) + 4096;
}

/* Parses the head in p[0..len) (ending with the empty line) into a new call. */
static int parse_head(rpc_conn *conn, const char *p, size_t len)
{
    const char *end = p + len, *line_end = memchr(p, '\n', len), *sp1, *sp2;
    bool chunked = false, has_cl = false, expect = false;
    rpc_call *c;
    int rc;

    sp1 = memchr(p, ' ', (size_t)(line_end - p));
    sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(line_end - sp1 - 1)) : NULL;
    if (!sp1 || !sp2 || sp1 == p || sp2 == sp1 + 1 || sp1[1] != '/' ||
        line_end - sp2 < 9 || memcmp(sp2 + 1, "HTTP/1.", 7) != 0)
        return CE_INVAL;
    c = call_new(conn, true);
    if (!c)
        return CE_NOMEM;
    conn->h1.inflight++;
    conn->h1.cur = c;
    c->keep_alive = sp2[9] != '0';
    if (call_md_add(c, ":method", 7, p, (size_t)(sp1 - p)) ||
        call_md_add(c, ":path", 5, sp1 + 1, (size_t)(sp2 - sp1 - 1)))
        return CE_NOMEM;
    rc = parse_headers(c, line_end + 1, end, &chunked, &has_cl, &expect);
    if (rc)
        return rc;
    if (chunked && has_cl)
        return CE_INVAL;
    if (has_cl && c->content_length > h1_body_limit(conn))
        return CE_REQ_TOO_LARGE;
    conn->h1.state = chunked ? H1_CHUNK_SIZE : H1_BODY_CL;
    conn->h1.remaining = chunked ? 0 : (size_t)c->content_length;
    /* in c->resp, so that it leaves after the answers to earlier requests */
    if (expect && (chunked || c->content_length > 0) &&
        bytebuf_append(&c->resp, "HTTP/1.1 100 Continue\r\n\r\n", 25))
        return CE_NOMEM;
    return 0;
}

static void complete(rpc_conn *conn, const char *body, size_t len)
{
    rpc_call *c = conn->h1.cur;

    conn->h1.cur = NULL;
    conn->h1.state = H1_HEAD;
    conn->h1.started_ms = 0;
    dispatch(c, body, len);
    if (!c->keep_alive)
        conn->h1.stopped = true;
}

/* Finds the end of the head ("\r\n\r\n" or "\n\n"); returns its length or 0. */
static size_t find_head(rpc_conn *conn)
{
    const char *p = (const char *)bytebuf_data(&conn->in);
    size_t n = bytebuf_size(&conn->in);
    size_t i = conn->h1.scanned > 3 ? conn->h1.scanned - 3 : 0;

    for (; i < n; i++) {
        if (p[i] != '\n')
            continue;
        if (i >= 1 && p[i - 1] == '\n')
            return i + 1;
        if (i >= 2 && p[i - 1] == '\r' && p[i - 2] == '\n')
            return i + 1;
    }
    conn->h1.scanned = n;
    return 0;
}

static int step_head(rpc_conn *conn)
{
    size_t hlen;
    int rc;

    while (bytebuf_size(&conn->in) > 0 && (conn->in.p[conn->in.off] == '\r' ||
                                        conn->in.p[conn->in.off] == '\n'))
        bytebuf_consume(&conn->in, 1);
    if (bytebuf_size(&conn->in) > 0 && conn->h1.started_ms == 0)
        conn->h1.started_ms = evloop_now_ms();
    hlen = find_head(conn);
    if (!hlen) {
        if (bytebuf_size(&conn->in) > TRANSPORT_MAX_HEADER)
            parse_error(conn, 431, "431 Request Header Fields Too Large");
        return CE_AGAIN;
    }
    conn->h1.scanned = 0;
    if (hlen > TRANSPORT_MAX_HEADER) {
        parse_error(conn, 431, "431 Request Header Fields Too Large");
        return CE_AGAIN;
    }
    /* NUL is never valid in a head; refusing it keeps metadata strings whole */
    if (memchr(bytebuf_data(&conn->in), 0, hlen))
        rc = CE_INVAL;
    else
        rc = parse_head(conn, (const char *)bytebuf_data(&conn->in), hlen);
    bytebuf_consume(&conn->in, hlen);
    if (rc == CE_REQ_TOO_LARGE) {
        char text[128];
        rpc_call *c = conn->h1.cur;
        snprintf(text, sizeof(text), "grpc: received message larger than max (%llu vs. %u)",
                 (unsigned long long)c->content_length, conn_max_msg(conn));
        c->keep_alive = false;
        conn->h1.cur = NULL;
        conn->h1.stopped = true;
        reply_error(c, 429, 8, text);
        return CE_AGAIN;
    }
    if (rc) {
        parse_error(conn, rc == CE_UNSUPPORTED ? 501 : 400,
                    rc == CE_UNSUPPORTED ? "501 Not Implemented" : "400 Bad Request");
        return CE_AGAIN;
    }
    return 0;
}

static int step_chunk_size(rpc_conn *conn)
{
    const char *p = (const char *)bytebuf_data(&conn->in);
    size_t n = bytebuf_size(&conn->in);
    const char *eol = memchr(p, '\n', n);
    unsigned long long size = 0;
    size_t i = 0;
    int digits = 0;

    if (!eol) {
        if (n > CHUNK_LINE_MAX)
            parse_error(conn, 400, "400 Bad Request");
        return CE_AGAIN;
    }
    for (; p + i < eol && digits < 16; i++, digits++) {
        char ch = p[i];
        int v = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
              : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
        if (v < 0)
            break;
        size = size * 16 + (unsigned)v;
    }
    if (digits == 0 || (p[i] != ';' && p[i] != '\r' && p[i] != '\n' && p[i] != ' ')) {
        parse_error(conn, 400, "400 Bad Request");
        return CE_AGAIN;
    }
    bytebuf_consume(&conn->in, (size_t)(eol - p) + 1);
    if (size > h1_body_limit(conn) ||
        bytebuf_size(&conn->h1.cur->in) + size > h1_body_limit(conn)) {
        parse_error(conn, 413, "413 Request Entity Too Large");
        return CE_AGAIN;
    }
    conn->h1.remaining = (size_t)size;
    conn->h1.state = size ? H1_CHUNK_DATA : H1_TRAILER;
    return 0;
}

static int step_chunk_tail(rpc_conn *conn)
{
    const char *p = (const char *)bytebuf_data(&conn->in);
    size_t n = bytebuf_size(&conn->in);
    const char *eol = memchr(p, '\n', n);
    rpc_call *c = conn->h1.cur;

    if (!eol) {
        if (n > CHUNK_LINE_MAX)
            parse_error(conn, 400, "400 Bad Request");
        return CE_AGAIN;
    }
    bytebuf_consume(&conn->in, (size_t)(eol - p) + 1);
    if (conn->h1.state == H1_CHUNK_CRLF) {
        if (eol - p > 1 || (eol - p == 1 && p[0] != '\r')) {
            parse_error(conn, 400, "400 Bad Request");
            return CE_AGAIN;
        }
        conn->h1.state = H1_CHUNK_SIZE;
        return 0;
    }
    if (eol - p <= 1) {   /* the empty line ending the trailers */
        complete(conn, (const char *)bytebuf_data(&c->in), bytebuf_size(&c->in));
        bytebuf_free(&c->in);
    }
    return 0;
}

/* A request head arrived without its whole body: acknowledge at once. A client that writes
 * the head and the body separately without TCP_NODELAY (Patroni's urllib3 set-up replaces the
 * socket options) holds the body back (Nagle) until our delayed ACK, about 40 ms later. */
static void quick_ack(int fd)
{
    int one = 1;

    (void)setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
}

static int step(rpc_conn *conn)
{
    struct h1_parser *h = &conn->h1;
    size_t n = bytebuf_size(&conn->in), take;

    switch (h->state) {
    case H1_HEAD:
        return step_head(conn);
    case H1_BODY_CL:
        if (n < h->remaining)
            return CE_AGAIN;
        take = h->remaining;
        complete(conn, (const char *)bytebuf_data(&conn->in), take);
        bytebuf_consume(&conn->in, take);
        return 0;
    case H1_CHUNK_SIZE:
        return step_chunk_size(conn);
    case H1_CHUNK_DATA:
        if (n == 0)
            return CE_AGAIN;
        take = n < h->remaining ? n : h->remaining;
        if (bytebuf_append(&h->cur->in, bytebuf_data(&conn->in), take))
            return CE_NOMEM;
        bytebuf_consume(&conn->in, take);
        h->remaining -= take;
        if (h->remaining == 0)
            h->state = H1_CHUNK_CRLF;
        return 0;
    case H1_CHUNK_CRLF:
    case H1_TRAILER:
        return step_chunk_tail(conn);
    }
    return CE_INVAL;
}

int h1_process(rpc_conn *conn)
{
    int rc = 0;

    /* A new request is taken only while fewer than TRANSPORT_H1_INFLIGHT are unanswered and
     * less than TRANSPORT_OUT_HIGH of answers wait for a peer that may not be reading. */
    while (!conn->h1.stopped && !conn->dead && !conn->upgrade &&
           (conn->h1.state != H1_HEAD || (conn->h1.inflight < TRANSPORT_H1_INFLIGHT &&
                                         h1_backlog(conn) < TRANSPORT_OUT_HIGH))) {
        rc = step(conn);
        if (rc)
            break;
    }
    conn->h1.blocked = !rc && !conn->h1.stopped && !conn->upgrade &&
                       bytebuf_size(&conn->in) > 0;
    if (rc == CE_AGAIN && conn->h1.state != H1_HEAD)
        quick_ack(conn->fd);
    if (conn->h1.stopped)
        bytebuf_free(&conn->in);
    return rc == CE_NOMEM ? rc : 0;
}
