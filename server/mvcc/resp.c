/*
 * resp.c: builders for the heap-owned messages the store hands out (responses, key-values,
 * events). Invariant: every pointer inside a built message (sub-messages, repeated arrays,
 * bytes) comes from malloc, so protobuf_c_message_free_unpacked(msg, NULL) frees it whole;
 * zero-length bytes are stored as {0, NULL}.
 */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "mvcc_int.h"

int mvcc__bytes_dup(ProtobufCBinaryData *dst, const void *src, size_t len)
{
    dst->len = 0;
    dst->data = NULL;
    if (len == 0)
        return 0;
    dst->data = malloc(len);
    if (!dst->data)
        return CE_NOMEM;
    memcpy(dst->data, src, len);
    dst->len = len;
    return 0;
}

Mvccpb__KeyValue *mvcc__kv_new(const void *key, size_t klen, const void *val, size_t vlen)
{
    Mvccpb__KeyValue *kv = malloc(sizeof(*kv));

    if (!kv)
        return NULL;
    mvccpb__key_value__init(kv);
    if (mvcc__bytes_dup(&kv->key, key, klen) || mvcc__bytes_dup(&kv->value, val, vlen)) {
        protobuf_c_message_free_unpacked(&kv->base, NULL);
        return NULL;
    }
    return kv;
}

Etcdserverpb__ResponseHeader *mvcc__header_new(int64_t rev)
{
    Etcdserverpb__ResponseHeader *h = malloc(sizeof(*h));

    if (!h)
        return NULL;
    etcdserverpb__response_header__init(h);
    h->revision = rev;
    return h;
}
