/*
 * transport_ws.c: WebSockets on the client port, with the semantics of etcd 3.4's gateway
 * (grpc-gateway behind tmc/grpc-websocket-proxy), on the main loop's side of the bridge (ws.c).
 *
 * A GET on a gateway path (/v3/..., /v3beta/...) whose Connection header lists "upgrade" and
 * whose Upgrade header lists "websocket" (tokens, any case) is a WebSocket request. Checked
 * here as gorilla/websocket 1.4 does, with its answers (text/plain, "Sec-Websocket-Version:
 * 13", the connection kept): another method -> 405 "Method Not Allowed"; no "13" in
 * Sec-WebSocket-Version -> 400 "Bad Request"; an empty Sec-WebSocket-Key -> 400. We also
 * refuse (400) a key of 128 bytes or more or with bytes outside 0x21-0x7e, which lws cannot
 * take. Upgrade headers on other paths are ignored (the request is served as usual).
 *
 * Hand-off: parsing stops after the upgrade request; once every earlier response on the
 * connection has been sent, the socket leaves our loop (rpc_conn becomes PROTO_WS) and goes to
 * the bridge with a head we write ourselves, so lws sees nothing we did not check:
 *   "GET / HTTP/1.1\r\nHost: cetcd\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
 *   "Sec-WebSocket-Key: <key>\r\nSec-WebSocket-Version: 13\r\n"
 *   ["Sec-WebSocket-Protocol: Bearer\r\n" when the client's header starts with "Bearer"]
 *   "\r\n", then any bytes the client sent after its request.
 * The upgrade request's rpc_call lives on as the WebSocket's call, with gateway metadata as the
 * proxy builds it: only "authorization", from Sec-WebSocket-Protocol ("Bearer, X" gives
 * "Bearer X"; any other value gives "") and then from a "token" cookie ("Bearer <value>").
 * The request's own Authorization header is not forwarded (etcd does not either).
 *
 * Messages (each check below was made against etcd 3.4.23):
 *   - client -> server: every message (text or binary) is appended, plus "\n", to one JSON
 *     stream, read value by value as Go's json.Decoder does: several values in one message
 *     are several requests, one value may span messages, whitespace-only messages are nothing.
 *   - the first value fails to decode: {"error":E,"message":E,"code":C} (C = 2 for a
 *     client-streaming method, 3 for a unary one), then the connection closes. A later one:
 *     no answer, the stream stops reading (on_recv_end: LeaseKeepAlive ends, Watch stays open
 *     and keeps sending events).
 *   - a request over max_request_bytes + 512 KiB: server streams end with the stream error
 *     below (code 8, "grpc: received message larger than max (N vs. M)"); unary calls answer
 *     the unary error with code 8.
 *   - server -> client, streams: one text message {"result":<response>} per rpc_send; an
 *     error ends with {"error":{"grpc_code":C,"http_code":H,"message":M,"http_status":S}}.
 *   - unary methods take the first value only and answer the bare response JSON (or the unary
 *     error); a path with no method answers "Not Found".
 *   - when the call ends, the TCP connection is closed without a close frame (the proxy just
 *     closes its socket); a client's close frame is answered with its status code (lws).
 * Limits: the JSON stream may hold at most h1_body_limit() bytes of an unfinished value
 * (else the connection is dropped); output waiting for a client that does not read is
 * reported by rpc_call_pending, reading stops above WS_OUT_HIGH of it, and a call that queues
 * more than TRANSPORT_WS_OUT_MAX is dropped.
 * Deliberate differences: bytes sent before the 101 are kept as WebSocket data (gorilla closes
 * the connection if they arrive with the request); messages over h1_body_limit() get close
 * status 1009 (etcd reads any size); lws echoes a close frame's reason text too.
 */
#include "transport_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "err.h"
#include "log.h"
#include "server/api/gateway/pbjson.h"
#include "server/api/ws.h"

#define WS_KEY_MAX 127

/* ---- the upgrade request ---- */

static bool is_tchar_space(char ch)
{
    return ch == ' ' || ch == '\t';
}

/* Whether a comma-separated header value lists token (case-insensitive). */
static bool list_has(const char *v, const char *token)
{
    size_t tl = strlen(token);

    while (*v) {
        size_t n;
        while (*v == ',' || is_tchar_space(*v))
            v++;
        n = strcspn(v, ",");
        while (n > 0 && is_tchar_space(v[n - 1]))
            n--;
        if (n == tl && strncasecmp(v, token, tl) == 0)
            return true;
        v += strcspn(v, ",");
    }
    return false;
}

/* Whether any header `name` (there may be several lines) lists token. */
static bool header_has(const rpc_call *c, const char *name, const char *token)
{
    size_t i = 0;

    while (i < c->md_len) {
        const char *n = c->md + i;
        const char *v = n + strlen(n) + 1;
        if (strcmp(n, name) == 0 && list_has(v, token))
            return true;
        i = (size_t)(v - c->md) + strlen(v) + 1;
    }
    return false;
}

bool wsgw_is_upgrade(const rpc_call *c)
{
    return header_has(c, "connection", "upgrade") && header_has(c, "upgrade", "websocket");
}

static bool key_ok(const char *key)
{
    size_t n = strlen(key);

    if (n == 0 || n > WS_KEY_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (key[i] < 0x21 || key[i] > 0x7e)
            return false;
    return true;
}

static void refuse(rpc_call *c, int status, const char *text)
{
    h1_reply(c, status, "Sec-Websocket-Version: 13\r\nX-Content-Type-Options: nosniff\r\n",
             "text/plain; charset=utf-8", text, strlen(text));
}

void wsgw_upgrade(rpc_call *c, const char *method)
{
    const char *key = rpc_call_metadata(c, "sec-websocket-key");

    if (strcmp(method, "GET") != 0) {
        refuse(c, 405, "Method Not Allowed\n");
        return;
    }
    if (!header_has(c, "sec-websocket-version", "13") || !key || !key_ok(key)) {
        refuse(c, 400, "Bad Request\n");
        return;
    }
    /* The call waits, unanswered, at the end of the connection's list: no request after it
     * is parsed, and the bytes that follow it are the client's first WebSocket frames. */
    c->keep_alive = true;
    c->conn->upgrade = true;
}

bool wsgw_ready(const rpc_conn *conn)
{
    return conn->upgrade && conn->calls && conn->calls == conn->calls_tail &&
           conn->calls != conn->h1.cur && bytebuf_size(&conn->out) == 0;
}

/* The head lws parses: only what we checked. */
static int lws_head(const rpc_call *c, bytebuf *b)
{
    const char *proto = rpc_call_metadata(c, "sec-websocket-protocol");

    return bytebuf_printf(b, "GET / HTTP/1.1\r\nHost: cetcd\r\nUpgrade: websocket\r\n"
                             "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                             "Sec-WebSocket-Version: 13\r\n%s\r\n",
                          rpc_call_metadata(c, "sec-websocket-key"),
                          proto && strncmp(proto, "Bearer", 6) == 0
                              ? "Sec-WebSocket-Protocol: Bearer\r\n" : "");
}

/* The value of cookie `token` as Go's http.Request.Cookie finds it, or NULL. */
static bool token_cookie(const rpc_call *c, const char **val, size_t *len)
{
    const char *h = rpc_call_metadata(c, "cookie");

    while (h && *h) {
        size_t n = strcspn(h, ";");
        const char *p = h;
        while (n > 0 && is_tchar_space(*p)) {
            p++;
            n--;
        }
        while (n > 0 && is_tchar_space(p[n - 1]))
            n--;
        if (n >= 6 && strncmp(p, "token=", 6) == 0) {
            const char *v = p + 6;
            size_t vl = n - 6;
            if (vl >= 2 && v[0] == '"' && v[vl - 1] == '"') {
                v++;
                vl -= 2;
            }
            for (size_t i = 0; i < vl; i++)
                if ((unsigned char)v[i] < 0x21 || v[i] == '"' || v[i] == ',' ||
                    v[i] == ';' || v[i] == '\\' || (unsigned char)v[i] >= 0x7f)
                    return false;
            *val = v;
            *len = vl;
            return true;
        }
        h += strcspn(h, ";");
        if (*h)
            h++;
    }
    return false;
}

/* The metadata grpc-websocket-proxy gives the inner request, into tmp. */
static int proxy_metadata(const rpc_call *c, const char *path, rpc_call *tmp)
{
    const char *proto = rpc_call_metadata(c, "sec-websocket-protocol");
    const char *tok;
    size_t toklen;
    int rc = call_md_add(tmp, ":method", 7, "POST", 4);

    rc = rc ? rc : call_md_add(tmp, ":path", 5, path, strlen(path));
    if (!rc && token_cookie(c, &tok, &toklen)) {
        char *v = malloc(toklen + 8);
        if (!v)
            return CE_NOMEM;
        memcpy(v, "Bearer ", 7);
        memcpy(v + 7, tok, toklen);
        rc = call_md_add(tmp, "authorization", 13, v, toklen + 7);
        free(v);
    } else if (!rc && proto && *proto) {
        const char *after = strstr(proto, "Bearer,");
        char v[1024];
        int n = 0;
        if (after) {
            after += 7;
            while (*after == ' ')
                after++;
            n = snprintf(v, sizeof(v), "Bearer %s", after);
            while (n > 7 && v[n - 1] == ' ')
                n--;
        }
        if (n < 0 || (size_t)n >= sizeof(v))
            n = 0;
        rc = call_md_add(tmp, "authorization", 13, v, (size_t)n);
    }
    return rc;
}

/* Turns the upgrade request's call into the WebSocket's call. */
static int become_ws_call(rpc_call *c)
{
    const char *target = rpc_call_metadata(c, ":path");
    char path[1024];
    size_t plen = strcspn(target, "?#");
    rpc_call tmp = {0};
    int rc;

    if (plen >= sizeof(path))
        plen = sizeof(path) - 1;
    memcpy(path, target, plen);
    path[plen] = 0;
    rc = proxy_metadata(c, path, &tmp);
    if (rc) {
        free(tmp.md);
        return rc;
    }
    free(c->md);
    c->md = tmp.md;
    c->md_len = tmp.md_len;
    c->md_cap = tmp.md_cap;
    c->m = server_find_http(c->conn->srv, path, plen);
    c->done = false;
    bytebuf_free(&c->resp);
    bytebuf_free(&c->in);
    return 0;
}

static int queue_text(rpc_call *c, const char *pre, const void *body, size_t len,
                      const char *post)
{
    size_t a = strlen(pre), z = strlen(post);
    ws_msg *m = ws_msg_new(a + len + z);
    uint8_t *p;

    if (!m)
        return CE_NOMEM;
    p = ws_msg_data(m);
    memcpy(p, pre, a);
    if (len)
        memcpy(p + a, body, len);
    memcpy(p + a + len, post, z);
    ws_sock_send(c->conn->ws, m);
    return 0;
}

int wsgw_handoff(rpc_conn *conn)
{
    rpc_call *c = conn->calls;
    ws_bridge *b = server_ws_bridge(conn->srv);
    bytebuf head = {0};
    int fd, rc;

    if (!b)
        return CE_NOMEM;
    rc = lws_head(c, &head);
    rc = rc ? rc : bytebuf_append(&head, bytebuf_data(&conn->in), bytebuf_size(&conn->in));
    rc = rc ? rc : become_ws_call(c);
    if (rc) {
        bytebuf_free(&head);
        return rc;
    }
    bytebuf_free(&conn->in);
    conn->upgrade = false;
    fd = conn_detach_fd(conn);
    if (conn->tls && conn_tls_relay(conn, &fd))
        return CE_NOMEM;
    rc = ws_sock_open(b, fd, bytebuf_data(&head), bytebuf_size(&head), conn, &conn->ws);
    bytebuf_free(&head);
    if (rc)
        return rc;
    if (!c->m) {
        c->finished = true;
        return queue_text(c, "Not Found", "", 0, "");
    }
    return 0;
}

/* ---- messages from the client ---- */

static bool is_ws(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

/* The end of the JSON value starting at s[i] (not whitespace): an object or array at its
 * balancing bracket, a string at its closing quote, any other token at the next whitespace
 * or structural character. *complete is false when s ends first. Only the extent is found
 * here; pbjson_decode judges the syntax. */
static size_t value_end(const char *s, size_t n, size_t i, bool *complete)
{
    size_t start = i;
    int depth = 0;
    bool in_str = false;

    *complete = true;
    if (s[i] != '{' && s[i] != '[' && s[i] != '"') {
        while (i < n && !is_ws(s[i]) && !strchr("{}[]\",:", s[i]))
            i++;
        *complete = i < n;
        return i > start ? i : start + 1;
    }
    for (; i < n; i++) {
        char ch = s[i];
        if (in_str) {
            if (ch == '\\') {
                i++;
            } else if (ch == '"') {
                in_str = false;
                if (depth == 0)
                    return i + 1;
            }
        } else if (ch == '"') {
            in_str = true;
        } else if (ch == '{' || ch == '[') {
            depth++;
        } else if ((ch == '}' || ch == ']') && --depth <= 0) {
            return i + 1;
        }
    }
    *complete = false;
    return n;
}

static void input_failed(rpc_call *c, const char *err)
{
    bytebuf b = {0};

    if (c->got_msg) {   /* a later value: the proxy's reader stops; the stream stays */
        c->discard_input = true;
        call_recv_end(c);
        return;
    }
    c->finished = true;
    if (h1_error_json(&b, c->m->client_stream ? 2 : 3, err) == 0)
        queue_text(c, "", bytebuf_data(&b), bytebuf_size(&b), "");
    bytebuf_free(&b);
}

/* grpc-go refuses a message over max_request_bytes + 512 KiB. */
static bool too_large(rpc_call *c, ProtobufCMessage *msg)
{
    size_t packed = protobuf_c_message_get_packed_size(msg);
    uint32_t max = conn_max_msg(c->conn);
    char text[128];

    if (packed <= max)
        return false;
    protobuf_c_message_free_unpacked(msg, NULL);
    snprintf(text, sizeof(text), "grpc: received message larger than max (%zu vs. %u)",
             packed, max);
    wsgw_finish(c, 8, text);
    return true;
}

/* Decodes and delivers every complete value of the call's JSON stream. */
static void take_values(rpc_call *c)
{
    while (!c->finished && !c->discard_input && !c->conn->dead) {
        const char *p = (const char *)bytebuf_data(&c->in);
        size_t n = bytebuf_size(&c->in), start = 0, end;
        ProtobufCMessage *msg;
        char err[256];
        bool complete;
        int rc;

        while (start < n && is_ws(p[start]))
            start++;
        bytebuf_consume(&c->in, start);
        if (start == n)
            break;
        p += start;
        n -= start;
        end = value_end(p, n, 0, &complete);
        rc = pbjson_decode(c->m->req_desc, p, n, &msg, err, sizeof(err));
        if (rc == CE_BAD_JSON && !complete && strcmp(err, "unexpected EOF") == 0) {
            if (n > h1_body_limit(c->conn))
                c->conn->dead = true;
            break;
        }
        if (rc) {
            if (rc == CE_NOMEM)
                c->conn->dead = true;
            else
                input_failed(c, err);
            break;
        }
        bytebuf_consume(&c->in, complete ? end : n);
        if (too_large(c, msg))
            break;
        c->got_msg = true;
        if (!c->m->client_stream)   /* a unary handler reads one value */
            c->discard_input = true;
        call_deliver(c, msg);
    }
    if (bytebuf_size(&c->in) == 0)
        bytebuf_free(&c->in);
}

static void on_ws_message(void *user, const uint8_t *data, size_t len)
{
    rpc_conn *conn = user;
    rpc_call *c = conn->calls;

    if (!c || !c->m || c->finished || c->discard_input || conn->dead)
        return;
    if (bytebuf_append(&c->in, data, len) || bytebuf_append(&c->in, "\n", 1))
        conn->dead = true;
    else
        take_values(c);
    conn_mark_dirty(conn);
}

static void on_ws_closed(void *user)
{
    rpc_conn *conn = user;

    conn->ws_gone = true;
    conn->dead = true;
    conn_mark_dirty(conn);
}

const ws_bridge_ops wsgw_ops = {on_ws_message, on_ws_closed};

/* ---- answers ---- */

int wsgw_send(rpc_call *c, const ProtobufCMessage *msg)
{
    size_t len;
    char *json = pbjson_encode(msg, &len);
    int rc = 0;

    if (!json)
        return CE_NOMEM;
    if (c->m->server_stream) {
        rc = queue_text(c, "{\"result\":", json, len, "}");
    } else {
        c->out.off = c->out.len = 0;   /* a unary call answers once: keep the last */
        rc = bytebuf_append(&c->out, json, len);
    }
    free(json);
    if (ws_sock_pending(c->conn->ws) > TRANSPORT_WS_OUT_MAX) {
        log_warn("transport: WebSocket client reads nothing, %zu bytes queued: dropped",
                 ws_sock_pending(c->conn->ws));
        c->conn->dead = true;
        return CE_STOPPED;
    }
    return rc;
}

int wsgw_finish(rpc_call *c, int grpc_code, const char *message)
{
    bytebuf b = {0};
    int rc;

    c->finished = true;
    if (c->m->server_stream) {
        if (!grpc_code)
            return 0;
        rc = h1_stream_error_json(&b, grpc_code, message);
    } else if (grpc_code) {
        rc = h1_error_json(&b, grpc_code, message);
    } else {
        rc = bytebuf_size(&c->out) ? bytebuf_append(&b, bytebuf_data(&c->out),
                                                    bytebuf_size(&c->out))
                                   : bytebuf_append(&b, "{}", 2);
        bytebuf_free(&c->out);
    }
    rc = rc ? rc : queue_text(c, "", bytebuf_data(&b), bytebuf_size(&b), "");
    bytebuf_free(&b);
    return rc;
}

size_t wsgw_pending(const rpc_call *c)
{
    return c->conn->ws ? ws_sock_pending(c->conn->ws) : 0;
}

/* ---- the connection ---- */

bool wsgw_conn_done(const rpc_conn *conn)
{
    return conn->dead || !conn->calls || conn->calls->finished;
}

/* From conn_free: a call that ended sends what it queued; anything else is cut. */
void wsgw_conn_release(rpc_conn *conn)
{
    bool flush = !conn->ws_gone && !conn->dead && conn->calls && conn->calls->finished;

    if (!conn->ws)
        return;
    ws_sock_close(conn->ws, flush);
    conn->ws = NULL;
}
