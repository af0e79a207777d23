/*
 * fuzz_pbjson.c: the gateway's JSON decoder and encoder on arbitrary input.
 * Input: byte 0 picks the message type (fuzz_messages.h), the rest is the JSON body.
 * Checks beyond "no crash, no leak": an accepted body re-encodes to JSON that decodes again
 * to the same protobuf bytes and re-encodes to the same text (the codec is a fixed point
 * after one pass); a rejected body leaves *out NULL and a NUL-terminated message.
 */
// FUZZ_SOURCES: server/api/gateway/pbjson.c
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_messages.h"
#include "server/api/gateway/pbjson.h"

static uint8_t *pack(const ProtobufCMessage *m, size_t *n)
{
    *n = protobuf_c_message_get_packed_size(m);
    uint8_t *b = malloc(*n ? *n : 1);
    if (!b)
        abort();
    if (protobuf_c_message_pack(m, b) != *n)
        abort();
    return b;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const ProtobufCMessageDescriptor *desc = fuzz_messages[data[0] % FUZZ_N_MESSAGES];
    const char *json = (const char *)data + 1;
    size_t len = size - 1;
    char err[128];
    ProtobufCMessage *m = (ProtobufCMessage *)&err;
    if (pbjson_decode(desc, json, len, &m, err, sizeof err) != 0) {
        if (m != NULL || memchr(err, '\0', sizeof err) == NULL || err[0] == '\0')
            abort();
        return 0;
    }
    size_t n1, n2, p1n, p2n;
    char *j1 = pbjson_encode(m, &n1);
    ProtobufCMessage *m2 = NULL;
    if (!j1 || pbjson_decode(desc, j1, n1, &m2, err, sizeof err) != 0)
        abort();
    char *j2 = pbjson_encode(m2, &n2);
    if (!j2)
        abort();
    uint8_t *p1 = pack(m, &p1n), *p2 = pack(m2, &p2n);
    /* strings holding \u0000 are cut at the NUL by protobuf-c, so compare from pass two */
    ProtobufCMessage *m3 = NULL;
    if (pbjson_decode(desc, j2, n2, &m3, err, sizeof err) != 0)
        abort();
    size_t p3n;
    uint8_t *p3 = pack(m3, &p3n);
    if (n1 != n2 || memcmp(j1, j2, n1) != 0 || p2n != p3n || memcmp(p2, p3, p2n) != 0)
        abort();
    (void)p1;
    free(p1);
    free(p2);
    free(p3);
    free(j1);
    free(j2);
    protobuf_c_message_free_unpacked(m3, NULL);
    protobuf_c_message_free_unpacked(m2, NULL);
    protobuf_c_message_free_unpacked(m, NULL);
    return 0;
}
