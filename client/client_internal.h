/*
 * client_internal.h: pieces of the client library shared between its files and its unit tests:
 * the response arena, the JSON codec (request builders, response decoders, error mapping) and
 * the HTTP transport. Not part of the public API; the operator and CLI use cetcd_client.h.
 *
 * Codec invariants: builders return a new cJSON object (caller deletes) or NULL on OOM; bytes are
 * standard base64, int64/uint64 decimal strings, zero values omitted, enums by name, field names
 * as in etcd's rpc.proto. Decoders accept int64 either as a JSON string or number, allocate only
 * from the arena passed in, and return 0 or CE_CORRUPT / CE_NOMEM.
 */
#ifndef CETCD_CLIENT_INTERNAL_H
#define CETCD_CLIENT_INTERNAL_H

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "cetcd_client.h"
#include "base64.h"

/* ---- the client handle (http.c owns it; watch.c opens its own transfers from it) ---- */
struct cetcd_client {
    CURL *curl;          /* reused by the one-request calls so the connection stays open */
    char **endpoints;    /* normalized URLs */
    size_t n_endpoints, cur; /* cur: the endpoint that answered last */
    long dial_ms, cmd_ms;
    char *cacert, *cert, *key, *token;
    char *cacert_pem, *cert_pem, *key_pem;
    bool insecure;
    int grpc_code;
    char errmsg[512];
};

/* ---- arena ---- */
void *cetcd_mem_alloc(struct cetcd_mem **m, size_t n); /* zeroed; creates *m when NULL */
char *cetcd_mem_dup(struct cetcd_mem **m, const char *s, size_t n); /* copy + NUL */

/* ---- base64: common/base64.h ---- */

/* ---- request builders ---- */
cJSON *cetcd_codec_range_req(const struct cetcd_range_req *r);
cJSON *cetcd_codec_put_req(const struct cetcd_put_req *r);
cJSON *cetcd_codec_delete_req(const struct cetcd_delete_req *r);
cJSON *cetcd_codec_txn_req(const struct cetcd_txn_req *r);
/* Adds name: "<decimal>" when v != 0. Returns false on OOM. */
bool cetcd_codec_add_i64(cJSON *o, const char *name, int64_t v);
bool cetcd_codec_add_u64(cJSON *o, const char *name, uint64_t v);
bool cetcd_codec_add_bytes(cJSON *o, const char *name, const char *p, size_t n);

/* ---- response decoders ---- */
int cetcd_codec_header(const cJSON *resp, struct cetcd_header *h);
int cetcd_codec_i64(const cJSON *o, const char *name, int64_t *v);   /* absent = 0 */
int cetcd_codec_u64(const cJSON *o, const char *name, uint64_t *v);  /* absent = 0 */
int cetcd_codec_bytes(const cJSON *o, const char *name, struct cetcd_mem **m, char **p, size_t *n);
int cetcd_codec_range_resp(const cJSON *j, struct cetcd_mem **m, struct cetcd_range_resp *out);
int cetcd_codec_put_resp(const cJSON *j, struct cetcd_mem **m, struct cetcd_put_resp *out);
int cetcd_codec_delete_resp(const cJSON *j, struct cetcd_mem **m, struct cetcd_delete_resp *out);
int cetcd_codec_txn_resp(const cJSON *j, struct cetcd_mem **m, struct cetcd_txn_resp *out);
int cetcd_codec_member_resp(const cJSON *j, struct cetcd_mem **m, struct cetcd_member_resp *out);
int cetcd_codec_status_resp(const cJSON *j, struct cetcd_mem **m, struct cetcd_status_resp *out);
int cetcd_codec_alarm_resp(const cJSON *j, struct cetcd_mem **m, struct cetcd_alarm_resp *out);
int cetcd_codec_lease_ttl_resp(const cJSON *j, struct cetcd_mem **m,
                               struct cetcd_lease_ttl_resp *out);

/*
 * Maps an error body `{"error":..,"message":..,"code":N}` (or anything else with an HTTP status)
 * to a CE_* code: first the CE whose etcd message equals the server's message, else one chosen
 * from the gRPC code, else from the HTTP status. Copies the message into msg (truncated).
 */
int cetcd_codec_error(const char *body, size_t len, long http_status, char *msg, size_t msgsz,
                      int *grpc_code);
/* The same for the error object of a stream chunk, `{"error":{"grpc_code":C,"http_code":H,
 * "message":M,...}}` (err is the value of "error"; a bare string is the message). */
int cetcd_codec_stream_error(const cJSON *err, char *msg, size_t msgsz, int *grpc_code);
/* CE_* for a gRPC status code when no message matched. */
int cetcd_codec_grpc_to_ce(int grpc_code);

/* ---- stream splitter (split.c) ---- */
/* Gets one complete top-level JSON object (not NUL-terminated); non-zero stops the feed. */
typedef int (*cetcd_object_fn)(void *ctx, const char *obj, size_t len);
struct cetcd_splitter {
    char *buf;         /* the bytes of an object cut by a piece boundary, so far */
    size_t len, cap, max;
    int depth;
    bool in_str, esc;
    cetcd_object_fn fn;
    void *ctx;
};
/* max bounds one object's size (bytes buffered for an object split across pieces). */
void cetcd_splitter_init(struct cetcd_splitter *s, size_t max, cetcd_object_fn fn, void *ctx);
/* Scans n more bytes, calling fn for each object completed; returns 0, fn's non-zero value,
 * CE_MSG_TOO_LARGE or CE_NOMEM. After a non-zero return, reset before feeding again. */
int cetcd_splitter_feed(struct cetcd_splitter *s, const char *p, size_t n);
bool cetcd_splitter_pending(const struct cetcd_splitter *s); /* inside an unfinished object */
void cetcd_splitter_reset(struct cetcd_splitter *s);         /* forgets any partial object */
void cetcd_splitter_free(struct cetcd_splitter *s);

/* Largest stream message accepted (one `{"result":...}` object, as JSON text). */
#define CETCD_STREAM_MAX_OBJECT ((size_t)64 << 20)

/* ---- watch codec (codec.c) ---- */
/* {"create_request":{...}} for req, starting at start_revision (overrides req's when > 0). */
cJSON *cetcd_codec_watch_create(const struct cetcd_watch_req *req, int64_t start_revision);
int cetcd_codec_watch_resp(const cJSON *j, struct cetcd_mem **m, struct cetcd_watch_resp *out);

/* ---- transport ---- */
/* Resets h and sets URL (url + path), POST body, headers (JSON, auth token, extra lines), the
 * dial timeout, timeout_ms (0 = none) and TLS from c. Returns the header list to free after
 * the transfer, or NULL on OOM. */
struct curl_slist *cetcd_http_prepare(cetcd_client *c, CURL *h, const char *url,
                                      const char *path, const char *body, long timeout_ms,
                                      const char *const *extra_headers);
/* Monotonic milliseconds. */
int64_t cetcd_now_ms(void);
/* POSTs body to path; on 200 parses the JSON answer into *out (caller deletes). endpoint NULL:
 * the current endpoint with failover; else exactly that one. */
int cetcd_http_call(cetcd_client *c, const char *endpoint, const char *path, const cJSON *body,
                    cJSON **out);
/* POSTs body to a streaming path and feeds every `{"result":{...}}` object to fn until the
 * stream ends or fn returns non-zero (which is returned, 1 meaning "stop, success"). bounded:
 * the command timeout applies (keepalive-once); otherwise only the dial timeout (snapshot). */
typedef int (*cetcd_result_fn)(void *ctx, const cJSON *result);
int cetcd_http_stream(cetcd_client *c, const char *endpoint, const char *path, const cJSON *body,
                      bool bounded, cetcd_result_fn fn, void *ctx);

#endif
