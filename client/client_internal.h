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

#include "cetcd_client.h"

/* ---- arena ---- */
void *cetcd_mem_alloc(struct cetcd_mem **m, size_t n); /* zeroed; creates *m when NULL */
char *cetcd_mem_dup(struct cetcd_mem **m, const char *s, size_t n); /* copy + NUL */

/* ---- base64 ---- */
size_t cetcd_b64_encoded_len(size_t n);
void cetcd_b64_encode(const void *src, size_t n, char *dst); /* writes encoded_len + NUL */
/* Decodes standard (or URL-safe) base64, padding optional; returns CE_CORRUPT on bad input.
 * dst needs at least n*3/4+3 bytes. */
int cetcd_b64_decode(const char *src, size_t n, char *dst, size_t *outlen);

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
/* CE_* for a gRPC status code when no message matched. */
int cetcd_codec_grpc_to_ce(int grpc_code);

/* ---- transport ---- */
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
