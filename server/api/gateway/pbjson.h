/*
 * pbjson.h: JSON <-> protobuf-c codec of the HTTP/JSON gateway (/v3/...).
 *
 * Speaks the dialect of etcd 3.4's grpc-gateway (golang/protobuf jsonpb with OrigName, unknown
 * fields allowed): output field names are the .proto names, int64/uint64 as decimal strings,
 * bytes as padded standard base64, enums by name, proto3 zero values omitted. Input accepts
 * proto names and lowerCamelCase names, numbers or strings for 64-bit integers, enum names or
 * numbers, base64 standard or URL-safe with or without padding. Error texts are Go's own
 * ("invalid character 'x' looking for beginning of value", ...), so the transport can put them
 * verbatim in {"error":...,"message":...,"code":3} with HTTP 400, as etcd does.
 * The codec works on any descriptor, so it covers rpc.proto, kv.proto, auth.proto, health.proto.
 */
#ifndef CETCD_PBJSON_H
#define CETCD_PBJSON_H

#include <stddef.h>
#include <protobuf-c/protobuf-c.h>

/* Message nesting accepted by the decoder (JSON nesting of skipped values may go to 10000). */
#define PBJSON_MAX_DEPTH 64

/* Decodes JSON text into a new message of type desc. Returns 0, CE_BAD_JSON with Go's message
   in err (NUL-terminated, truncated to errlen; err may be NULL), or CE_NOMEM. An empty or
   all-whitespace body, or `null`, decodes to an empty message (etcd does the same). Only the
   first JSON value is read; bytes after it are ignored (etcd's json.Decoder does the same).
   On success *out is freed with protobuf_c_message_free_unpacked(*out, NULL); on error *out
   is NULL. */
int pbjson_decode(const ProtobufCMessageDescriptor *desc, const char *json, size_t len,
                  ProtobufCMessage **out, char *err, size_t errlen);

/* Encodes msg as JSON the way etcd 3.4's gateway does; returns a malloc'd NUL-terminated
   string (its length in *len, len may be NULL) or NULL on out-of-memory. */
char *pbjson_encode(const ProtobufCMessage *msg, size_t *len);

#endif
