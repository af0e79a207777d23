/*
 * transport_h2.c: gRPC over cleartext HTTP/2 (prior knowledge) on an nghttp2 server session.
 *
 * Wire format of a call (gRPC over HTTP/2 spec):
 *   request  HEADERS :method POST, :path /<service>/<Method>, content-type application/grpc,
 *            metadata (e.g. token); then DATA carrying length-prefixed messages
 *            (grpcframe.h: 1 byte compressed flag, 4 bytes big-endian length, the protobuf);
 *            END_STREAM when the client has nothing more to send.
 *   response HEADERS :status 200, content-type application/grpc; DATA with length-prefixed
 *            messages; trailers HEADERS grpc-status (decimal), grpc-message (percent-encoded:
 *            bytes outside 0x20..0x7e and '%' as %XX) with END_STREAM. An error before any
 *            message is a trailers-only response (one HEADERS with everything, END_STREAM).
 * When we end a stream the client has not half-closed we follow with RST_STREAM(NO_ERROR), as
 * grpc-go does, so the stream closes and on_close runs; except after a unary call's
 * one message: that client half-closes right away (curl with a separate empty DATA frame, and
 * treats a reset there as an error), so we wait for its END_STREAM.
 *
 * Invariants: the session is driven only with mem_recv/mem_send (no socket I/O here); every
 * stream with a call has it as stream user data and the call is released (on_close) from
 * on_stream_close, or from conn_free when the connection dies; response bytes wait in call->out
 * and reach nghttp2 through a data provider that defers when empty, so HTTP/2 flow control
 * holds them until the peer has window. conn->h2_backlog is the sum of every call->out: above
 * TRANSPORT_H2_BACKLOG new streams are refused (RST_STREAM REFUSED_STREAM); the connection is
 * still read, since the peer's WINDOW_UPDATEs are what drains it.
 */
#include "transport_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "grpcframe.h"
#include "log.h"

#define H2_MAX_STREAMS 4096
#define H2_STREAM_WINDOW (1 << 20)
#define H2_CONN_WINDOW (16 << 20)
#define H2_PRODUCE_LIMIT (256u * 1024u)

#define NV(n, v, vl) {(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, (vl), NGHTTP2_NV_FLAG_NO_COPY_NAME}

static nghttp2_session_callbacks *callbacks;

/* ---- responses ---- */

/* Percent-encodes msg for grpc-message into out (size outlen); returns the length. */
static size_t grpc_pct_encode(const char *msg, char *out, size_t outlen)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;

    for (const unsigned char *p = (const unsigned char *)msg; *p && n + 4 < outlen; p++) {
        if (*p < 0x20 || *p > 0x7e || *p == '%') {
            out[n++] = '%';
            out[n++] = hex[*p >> 4];
            out[n++] = hex[*p & 15];
        } else {
            out[n++] = (char)*p;
        }
    }
    out[n] = 0;
    return n;
}

static int submit_trailers(rpc_call *c, bool with_headers, nghttp2_data_provider *prd)
{
    char status[12], msg[1024];
    size_t slen = (size_t)snprintf(status, sizeof(status), "%d", c->grpc_status);
    size_t mlen = grpc_pct_encode(c->grpc_message ? c->grpc_message : "", msg, sizeof(msg));
    nghttp2_nv nva[] = {
        NV(":status", "200", 3),
        NV("content-type", "application/grpc", 16),
        NV("grpc-status", status, slen),
        NV("grpc-message", msg, mlen),
    };
    size_t n = mlen ? 4 : 3;

    c->trailers_sent = true;
    if (with_headers)
        return nghttp2_submit_response(c->conn->h2, c->stream_id, nva, n, prd);
    return nghttp2_submit_trailer(c->conn->h2, c->stream_id, nva + 2, n - 2);
}

static ssize_t data_read(nghttp2_session *s, int32_t stream_id, uint8_t *buf, size_t length,
                         uint32_t *flags, nghttp2_data_source *src, void *user)
{
    rpc_call *c = src->ptr;
    size_t n = bytebuf_size(&c->out);

    (void)s;
    (void)stream_id;
    (void)user;
    if (n > length)
        n = length;
    memcpy(buf, bytebuf_data(&c->out), n);
    bytebuf_consume(&c->out, n);
    c->conn->h2_backlog -= n;
    if (bytebuf_size(&c->out) > 0)
        return (ssize_t)n;
    if (c->finished) {
        *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
        if (submit_trailers(c, false, NULL))
            return NGHTTP2_ERR_CALLBACK_FAILURE;
        return (ssize_t)n;
    }
    if (n > 0)
        return (ssize_t)n;
    c->deferred = true;
    return NGHTTP2_ERR_DEFERRED;
}

static int start_response(rpc_call *c)
{
    nghttp2_nv nva[] = {
        NV(":status", "200", 3),
        NV("content-type", "application/grpc", 16),
    };
    nghttp2_data_provider prd = {.source.ptr = c, .read_callback = data_read};

    c->headers_sent = true;
    return nghttp2_submit_response(c->conn->h2, c->stream_id, nva, 2, &prd) ? CE_IO : 0;
}

static void resume(rpc_call *c)
{
    if (c->deferred) {
        c->deferred = false;
        nghttp2_session_resume_data(c->conn->h2, c->stream_id);
    }
}

/* A frame of n bytes was appended to c->out: account it, and start or resume the stream. */
static int frame_queued(rpc_call *c, size_t n)
{
    c->out.len += n;
    c->conn->h2_backlog += n;
    if (!c->headers_sent)
        return start_response(c);
    resume(c);
    return 0;
}

int h2_send(rpc_call *c, const ProtobufCMessage *msg)
{
    size_t len = protobuf_c_message_get_packed_size(msg);

    if (len > UINT32_MAX || bytebuf_reserve(&c->out, GRPCFRAME_HDR + len))
        return CE_NOMEM;
    grpcframe_header(c->out.p + c->out.len, (uint32_t)len);
    protobuf_c_message_pack(msg, c->out.p + c->out.len + GRPCFRAME_HDR);
    call_count_bytes(c, len, true);
    return frame_queued(c, GRPCFRAME_HDR + len);
}

int h2_send_packed(rpc_call *c, const ProtobufCBinaryData *parts, size_t n)
{
    size_t len = 0;
    uint8_t *p;

    for (size_t i = 0; i < n; i++)
        len += parts[i].len;
    if (len > UINT32_MAX || bytebuf_reserve(&c->out, GRPCFRAME_HDR + len))
        return CE_NOMEM;
    p = c->out.p + c->out.len;
    grpcframe_header(p, (uint32_t)len);
    p += GRPCFRAME_HDR;
    for (size_t i = 0; i < n; i++) {
        if (parts[i].len)
            memcpy(p, parts[i].data, parts[i].len);
        p += parts[i].len;
    }
    call_count_bytes(c, len, true);
    return frame_queued(c, GRPCFRAME_HDR + len);
}

int h2_finish(rpc_call *c, int grpc_code, const char *message)
{
    c->finished = true;
    c->discard_input = true;
    c->grpc_status = grpc_code;
    free(c->grpc_message);
    c->grpc_message = strdup(message ? message : "");
    if (!c->grpc_message)
        return CE_NOMEM;
    if (!c->headers_sent) {
        c->headers_sent = true;
        return submit_trailers(c, true, NULL) ? CE_IO : 0;
    }
    resume(c);
    return 0;
}

static void finish_fmt(rpc_call *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void finish_fmt(rpc_call *c, int code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (!c->finished)
        h2_finish(c, code, msg);
}

/* ---- requests ---- */

/* grpc-go's answers for a path no method serves. */
static void unknown_method(rpc_call *c, const char *path)
{
    const char *slash = path[0] == '/' ? strchr(path + 1, '/') : NULL;

    if (!slash) {
        finish_fmt(c, 12, "malformed method name: \"%s\"", path);
        return;
    }
    if (!server_has_service(c->conn->srv, path + 1, (size_t)(slash - path - 1)))
        finish_fmt(c, 12, "unknown service %.*s", (int)(slash - path - 1), path + 1);
    else
        finish_fmt(c, 12, "unknown method %s for service %.*s", slash + 1,
                   (int)(slash - path - 1), path + 1);
}

static uint32_t declared_len(const uint8_t *p)
{
    return (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
}

/* Frames, unpacks and delivers every complete message in buf; returns bytes used. */
static size_t take_messages(rpc_call *c, const uint8_t *buf, size_t len)
{
    size_t used = 0, off, mlen, consumed;
    uint32_t max = conn_max_msg(c->conn);
    ProtobufCMessage *msg;
    int rc;

    while (!c->finished) {
        rc = grpcframe_parse(buf + used, len - used, max, &off, &mlen, &consumed);
        if (rc == CE_AGAIN)
            break;
        if (rc == CE_REQ_TOO_LARGE) {
            finish_fmt(c, 8, "grpc: received message larger than max (%u vs. %u)",
                       declared_len(buf + used), max);
            return len;
        }
        if (rc == CE_UNSUPPORTED) {
            const char *enc = rpc_call_metadata(c, "grpc-encoding");
            finish_fmt(c, 12, "grpc: Decompressor is not installed for grpc-encoding \"%s\"",
                       enc ? enc : "");
            return len;
        }
        if (rc) {
            finish_fmt(c, 13, "grpc: received unexpected payload format %u", buf[used]);
            return len;
        }
        msg = protobuf_c_message_unpack(c->m->req_desc, NULL, mlen, buf + used + off);
        used += consumed;
        if (!msg) {
            finish_fmt(c, 13, "%s: proto: cannot parse invalid wire-format data",
                       ce_strerror(CE_BAD_PROTO));
            return len;
        }
        c->got_msg = true;
        call_count_bytes(c, mlen, false);
        call_deliver(c, msg);
        if (!c->m->client_stream)
            c->discard_input = true;   /* a unary call takes one message */
    }
    return c->finished ? len : used;
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t stream_id, const uint8_t *data,
                   size_t len, void *user)
{
    rpc_call *c = nghttp2_session_get_stream_user_data(s, stream_id);
    size_t used;

    (void)flags;
    (void)user;
    if (!c || !c->m || c->discard_input || c->finished)
        return 0;
    if (bytebuf_size(&c->in) == 0) {
        used = take_messages(c, data, len);
        if (used < len && !c->discard_input && !c->finished &&
            bytebuf_append(&c->in, data + used, len - used))
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        return 0;
    }
    if (bytebuf_append(&c->in, data, len))
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    used = take_messages(c, bytebuf_data(&c->in), bytebuf_size(&c->in));
    bytebuf_consume(&c->in, used);
    if (c->discard_input || c->finished)
        bytebuf_free(&c->in);
    return 0;
}

static void on_request_headers(rpc_call *c)
{
    const char *path = rpc_call_metadata(c, ":path");

    /* A peer that does not read its answers gets no new calls (grpc-go clients retry a
     * refused stream transparently). */
    if (c->conn->h2_backlog >= TRANSPORT_H2_BACKLOG) {
        c->discard_input = true;
        c->finished = true;
        nghttp2_submit_rst_stream(c->conn->h2, NGHTTP2_FLAG_NONE, c->stream_id,
                                  NGHTTP2_REFUSED_STREAM);
        return;
    }
    c->m = path ? server_find_grpc(c->conn->srv, path, strlen(path)) : NULL;
    if (!c->m)
        unknown_method(c, path ? path : "");
}

static void on_end_stream(rpc_call *c)
{
    if (c->recv_ended)
        return;
    if (c->m && !c->finished && bytebuf_size(&c->in) > 0) {
        finish_fmt(c, 13, "%s: unexpected EOF", ce_strerror(CE_BAD_PROTO));
    } else if (c->m && !c->finished && !c->m->client_stream && !c->discard_input) {
        finish_fmt(c, 13, "%s: EOF", ce_strerror(CE_BAD_PROTO));
    }
    call_recv_end(c);
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *user)
{
    rpc_call *c;

    (void)user;
    if (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA)
        return 0;
    c = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    if (!c)
        return 0;
    if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST)
        on_request_headers(c);
    if (f->hd.flags & NGHTTP2_FLAG_END_STREAM)
        on_end_stream(c);
    return 0;
}

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *user)
{
    rpc_conn *conn = user;
    rpc_call *c;

    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    c = call_new(conn, false);
    if (!c)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    c->stream_id = f->hd.stream_id;
    nghttp2_session_set_stream_user_data(s, f->hd.stream_id, c);
    return 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user)
{
    rpc_call *c = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);

    (void)flags;
    (void)user;
    if (!c || f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    if (c->md_len + namelen + valuelen > TRANSPORT_MAX_HEADER || memchr(value, 0, valuelen))
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    if (call_md_add(c, (const char *)name, namelen, (const char *)value, valuelen))
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    return 0;
}

static int on_frame_send(nghttp2_session *s, const nghttp2_frame *f, void *user)
{
    rpc_call *c;

    (void)user;
    if (!(f->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    c = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    /* A unary client half-closes right after its message: wait for it rather than reset. */
    if (c && !c->recv_ended && !(c->m && !c->m->client_stream && c->got_msg))
        nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_NO_ERROR);
    return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t stream_id, uint32_t error_code,
                           void *user)
{
    rpc_call *c = nghttp2_session_get_stream_user_data(s, stream_id);

    (void)error_code;
    (void)user;
    if (!c)
        return 0;
    nghttp2_session_set_stream_user_data(s, stream_id, NULL);
    c->conn->h2_backlog -= bytebuf_size(&c->out);
    call_release(c);
    return 0;
}

static int make_callbacks(void)
{
    if (callbacks)
        return 0;
    if (nghttp2_session_callbacks_new(&callbacks))
        return CE_NOMEM;
    nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(callbacks, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, on_data);
    nghttp2_session_callbacks_set_on_frame_send_callback(callbacks, on_frame_send);
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, on_stream_close);
    return 0;
}

/* ---- session ---- */

int h2_start(rpc_conn *c)
{
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, H2_MAX_STREAMS},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2_STREAM_WINDOW},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, TRANSPORT_MAX_HEADER},
    };

    nghttp2_option *opt;
    int rc;

    if (make_callbacks() || nghttp2_option_new(&opt))
        return CE_NOMEM;
    /* grpc-go sends the dial target as :authority, e.g. "http://127.0.0.1:2379" when etcdctl
     * is given a URL (endpoint status --cluster does); nghttp2's HTTP-semantics checks reset
     * such streams, Go's server accepts them. gRPC needs none of those checks. */
    nghttp2_option_set_no_http_messaging(opt, 1);
    rc = nghttp2_session_server_new2(&c->h2, callbacks, c, opt);
    nghttp2_option_del(opt);
    if (rc)
        return CE_NOMEM;
    if (nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0])) ||
        nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE, 0, H2_CONN_WINDOW))
        return CE_IO;
    return 0;
}

int h2_recv(rpc_conn *c, const uint8_t *data, size_t len)
{
    ssize_t n = nghttp2_session_mem_recv(c->h2, data, len);

    if (n < 0) {
        log_debug("transport: h2 recv: %s", nghttp2_strerror((int)n));
        return CE_IO;
    }
    return 0;
}

int h2_produce(rpc_conn *c)
{
    const uint8_t *p;
    ssize_t n;

    while (bytebuf_size(&c->out) < H2_PRODUCE_LIMIT) {
        n = nghttp2_session_mem_send(c->h2, &p);
        if (n < 0)
            return CE_IO;
        if (n == 0)
            break;
        if (bytebuf_append(&c->out, p, (size_t)n))
            return CE_NOMEM;
    }
    return 0;
}

bool h2_done(rpc_conn *c)
{
    return !nghttp2_session_want_read(c->h2) && !nghttp2_session_want_write(c->h2);
}

/* Deletes the session without callbacks; conn_free then releases the calls. */
void h2_free(rpc_conn *c)
{
    nghttp2_session_del(c->h2);
    c->h2 = NULL;
}
