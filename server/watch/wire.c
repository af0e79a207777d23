/*
 * wire.c: the bytes of an event-carrying WatchResponse, built without protobuf-c so that the
 * events of a batch are encoded once and shared by every watcher that receives them.
 *
 * Wire format (protobuf; etcd's field numbers; fields in ascending order as protobuf-c and Go
 * emit them):
 *   0x0a len ResponseHeader          header = 1 (cluster_id 1, member_id 2, revision 3,
 *                                    raft_term 4: varints)
 *   0x10 varint                      watch_id = 2 (int64: two's complement, 10 bytes if < 0;
 *                                    omitted when 0, the proto3 default)
 *   0x38 0x01                        fragment = 7, only on a fragment that is not the last
 *   { 0x5a len Event }*              events = 11; an Event is type = 1 (varint, omitted for
 *                                    PUT), kv = 2 (0x12 len KeyValue), prev_kv = 3 (0x1a len
 *                                    KeyValue); our encoding keeps an event's prev_kv field
 *                                    apart, so one Event serves watchers with and without it.
 * An evlist holds complete `events` fields back to back, with the offset of each, so a
 * response is prefix + a contiguous slice of the list: two parts handed to the stream.
 *
 * Fragments (etcd's sendFragments): a response of two or more events whose size reaches
 * max_response_bytes is cut, for a watcher that asked, into responses each holding events
 * while they stay below the limit (at least one each), fragment = true on all but the last.
 */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "watch_int.h"

#define TAG_HEADER 0x0a
#define TAG_WATCH_ID 0x10
#define TAG_FRAGMENT 0x38
#define TAG_EVENTS 0x5a

size_t wire_varint(uint8_t *out, uint64_t v)
{
    size_t n = 0;

    while (v >= 0x80) {
        out[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    return n;
}

size_t wire_varint_len(uint64_t v)
{
    size_t n = 1;

    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

size_t wire_header(watch_hub *h, int64_t rev, uint8_t out[WATCH_HDR_MAX])
{
    Etcdserverpb__ResponseHeader hd = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    size_t len, n;

    hub_header(h, rev, &hd);
    len = etcdserverpb__response_header__get_packed_size(&hd);
    out[0] = TAG_HEADER;
    n = 1 + wire_varint(out + 1, len);
    return n + etcdserverpb__response_header__pack(&hd, out + n);
}

/* header, watch_id and (for a fragment that is not the last) fragment. */
static size_t prefix(uint8_t out[WATCH_PREFIX_MAX], const uint8_t *hdr, size_t hlen,
                     int64_t id, bool fragment)
{
    size_t n = hlen;

    memcpy(out, hdr, hlen);
    if (id != 0) {
        out[n++] = TAG_WATCH_ID;
        n += wire_varint(out + n, (uint64_t)id);
    }
    if (fragment) {
        out[n++] = TAG_FRAGMENT;
        out[n++] = 1;
    }
    return n;
}

void evlist_reset(struct evlist *l)
{
    l->bytes.off = l->bytes.len = 0;
    l->n = 0;
    bytebuf_trim(&l->bytes, 1u << 20);
}

void evlist_free(struct evlist *l)
{
    bytebuf_free(&l->bytes);
    free(l->offs);
    l->offs = NULL;
    l->n = l->cap = 0;
}

/* Room for one more offset (and the end offset after it). */
static int offs_reserve(struct evlist *l)
{
    uint32_t *o;
    size_t cap;

    if (l->n + 2 <= l->cap)
        return 0;
    cap = l->cap ? l->cap * 2 : 64;
    o = realloc(l->offs, cap * sizeof(*o));
    if (!o)
        return CE_NOMEM;
    l->offs = o;
    l->cap = cap;
    return 0;
}

/* Starts one `events` field of body length len; returns where its body goes, or NULL. */
static uint8_t *field_start(struct evlist *l, size_t len)
{
    size_t at = bytebuf_size(&l->bytes);
    uint8_t *p;

    if (len > UINT32_MAX || at + len + 11 > UINT32_MAX || offs_reserve(l) ||
        bytebuf_reserve(&l->bytes, 1 + 10 + len))
        return NULL;
    p = l->bytes.p + l->bytes.len;
    l->offs[l->n++] = (uint32_t)at;
    p[0] = TAG_EVENTS;
    return p + 1 + wire_varint(p + 1, len);
}

/* Closes the field whose body ends at end. */
static void field_end(struct evlist *l, const uint8_t *end)
{
    l->bytes.len = (size_t)(end - l->bytes.p);
    l->offs[l->n] = (uint32_t)bytebuf_size(&l->bytes);
}

int evlist_add(struct evlist *l, const uint8_t *ev, size_t len, const uint8_t *prev,
               size_t plen)
{
    uint8_t *p = field_start(l, len + plen);

    if (!p)
        return CE_NOMEM;
    memcpy(p, ev, len);
    if (plen)
        memcpy(p + len, prev, plen);
    field_end(l, p + len + plen);
    return 0;
}

int evlist_add_event(struct evlist *l, const Mvccpb__Event *ev)
{
    size_t len = mvccpb__event__get_packed_size(ev);
    uint8_t *p = field_start(l, len);

    if (!p)
        return CE_NOMEM;
    field_end(l, p + mvccpb__event__pack(ev, p));
    return 0;
}

/* One response: prefix + events [from, to) of l. */
static int send_slice(watch_hub *h, watcher *w, const uint8_t *pre, size_t plen,
                      const struct evlist *l, size_t from, size_t to)
{
    ProtobufCBinaryData parts[2] = {
        {plen, (uint8_t *)pre},
        {l->offs[to] - l->offs[from], l->bytes.p + l->bytes.off + l->offs[from]},
    };
    int rc = stream_send_parts(w->st, parts, 2);

    if (rc == 0) {
        h->responses++;
        h->events += to - from;
        w->quiet = false;
    }
    return rc;
}

/* etcd's fragment rule: the next fragment of [from, to) ends where this returns. */
static size_t fragment_end(const struct evlist *l, size_t from, size_t to, size_t size,
                           size_t max)
{
    size_t j = from;

    for (; j < to; j++) {
        size_t ev = l->offs[j + 1] - l->offs[j];
        if (j > from && size + ev >= max)
            break;
        size += ev;
    }
    return j;
}

int wire_send_range(watch_hub *h, watcher *w, const uint8_t *hdr, size_t hlen,
                    const struct evlist *l, size_t from, size_t to)
{
    uint8_t pre[WATCH_PREFIX_MAX];
    size_t max = h->cfg.max_response_bytes;
    size_t plen = prefix(pre, hdr, hlen, w->id, false);
    size_t i = from, j;
    int rc = 0;

    if (from >= to)
        return 0;
    if (!w->fragment || to - from < 2 || plen + l->offs[to] - l->offs[from] < max)
        return send_slice(h, w, pre, plen, l, from, to);
    while (rc == 0 && i < to) {
        plen = prefix(pre, hdr, hlen, w->id, true);
        j = fragment_end(l, i, to, plen, max);
        if (j == to)
            plen = prefix(pre, hdr, hlen, w->id, false);
        rc = send_slice(h, w, pre, plen, l, i, j);
        i = j;
    }
    return rc;
}

int wire_send_events(watch_hub *h, watcher *w, const uint8_t *hdr, size_t hlen,
                     const struct evlist *l)
{
    return wire_send_range(h, w, hdr, hlen, l, 0, l->n);
}
