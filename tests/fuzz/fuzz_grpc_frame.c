/*
 * fuzz_grpc_frame.c: the gRPC request path before any handler runs, on arbitrary bytes.
 * Input: byte 0 picks the message type (fuzz_messages.h); the rest is an HTTP/2 DATA byte
 * stream, split into length-prefixed frames by grpcframe_parse (limit 1.5 MiB, etcd's
 * default request size); each complete frame is unpacked with protobuf-c as that type, and
 * an unpacked message is packed again and encoded as gateway JSON. Checks: a parsed frame
 * lies inside the buffer, consumption always advances, re-packing is stable.
 * Known protobuf-c 1.4.1 quirk, excluded from the stability check: a tag of field number 0
 * written in more than one byte (81 00) is accepted and kept as an unknown field, re-packed
 * as 01, and that output is then refused by protobuf-c itself. Whoever re-packs client
 * messages (into the Raft log) must drop unknown fields first.
 */
// FUZZ_SOURCES: server/api/grpcframe.c server/api/gateway/pbjson.c
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "fuzz_messages.h"
#include "server/api/gateway/pbjson.h"
#include "server/api/grpcframe.h"

#define MAX_MSG (3u * 512 * 1024)

/* True when m or a message inside it keeps an unknown field with field number 0. */
static bool has_tag0_unknown(const ProtobufCMessage *m)
{
    for (unsigned i = 0; i < m->n_unknown_fields; i++)
        if (m->unknown_fields[i].tag == 0)
            return true;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        const char *base = (const char *)m;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + f->quantifier_offset);
            ProtobufCMessage *const *arr = *(ProtobufCMessage *const *const *)(base + f->offset);
            for (size_t k = 0; k < n; k++)
                if (has_tag0_unknown(arr[k]))
                    return true;
            continue;
        }
        if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            *(const uint32_t *)(base + f->quantifier_offset) != f->id)
            continue;
        const ProtobufCMessage *sub = *(ProtobufCMessage *const *)(base + f->offset);
        if (sub && has_tag0_unknown(sub))
            return true;
    }
    return false;
}

static void check_message(const ProtobufCMessageDescriptor *desc, const uint8_t *buf, size_t len)
{
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, len, buf);
    if (!m)
        return;
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *out = malloc(n ? n : 1);
    if (!out || protobuf_c_message_pack(m, out) != n)
        abort();
    ProtobufCMessage *again = protobuf_c_message_unpack(desc, NULL, n, out);
    if (!again && !has_tag0_unknown(m))
        abort();
    if (again && protobuf_c_message_get_packed_size(again) != n)
        abort();
    size_t jn;
    char *json = pbjson_encode(m, &jn);
    if (!json || strlen(json) != jn)
        abort();
    free(json);
    if (again)
        protobuf_c_message_free_unpacked(again, NULL);
    protobuf_c_message_free_unpacked(m, NULL);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const ProtobufCMessageDescriptor *desc = fuzz_messages[data[0] % FUZZ_N_MESSAGES];
    const uint8_t *p = data + 1;
    size_t left = size - 1;
    for (;;) {
        size_t off = 0, len = 0, used = 0;
        int rc = grpcframe_parse(p, left, MAX_MSG, &off, &len, &used);
        if (rc == CE_AGAIN) {
            if (used != 0 && (used <= left || used < GRPCFRAME_HDR))
                abort();
            break;
        }
        if (rc != 0) {
            if (rc != CE_REQ_TOO_LARGE && rc != CE_UNSUPPORTED && rc != CE_BAD_PROTO)
                abort();
            break;
        }
        if (off != GRPCFRAME_HDR || len > MAX_MSG || used != off + len || used > left)
            abort();
        check_message(desc, p + off, len);
        p += used;
        left -= used;
    }
    return 0;
}
