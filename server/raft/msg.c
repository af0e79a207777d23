/*
 * msg.c: the peer-port wire format of a Raft message. Compact, fixed layout, all integers
 * little endian. The decoder is fully bounds-checked (it is fuzzed): every length is checked
 * against the bytes that remain before it is used, and the whole buffer must be consumed.
 *
 *   offset  size  field
 *   0       1     format version (1)
 *   1       1     type (raft_msg_type, 1..14)
 *   2       1     flags: bit 0 reject, bit 1 transfer; other bits must be 0
 *   3       1     reserved, 0
 *   4       8     to
 *   12      8     from
 *   20      8     term
 *   28      8     log_term
 *   36      8     index
 *   44      8     commit
 *   52      8     reject_hint
 *   60      8     context
 *   68      4     n_entries (only MsgApp and MsgProp may have entries)
 *   72      ...   n_entries times:
 *                   8 term, 8 index, 1 type (0 normal, 1 conf change), 4 len, len data bytes
 *   then, for MsgSnap only (type 9):
 *                   8 snapshot index, 8 snapshot term,
 *                   4 n_voters, n_voters x 8 ids, 4 n_learners, n_learners x 8 ids
 *
 * Decoded memory: one malloc block holds the entries array, the conf arrays and the entry
 * bytes; m->entries points at its start (non-NULL on success even with no entries), and
 * raft_msg_free() releases it. Invariant: a decoded message never points outside that block.
 */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "raft_int.h"

#define MSG_VERSION 1
#define MSG_HEADER 72
#define ENT_HEADER 21
#define MAX_ENTRIES (1u << 24)
#define MAX_IDS (1u << 16)

typedef struct wbuf {
    uint8_t *p;
    size_t off;
} wbuf;

static void put_u8(wbuf *w, uint8_t v)
{
    w->p[w->off++] = v;
}

static void put_u32(wbuf *w, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        w->p[w->off++] = (uint8_t)(v >> (8 * i));
}

static void put_u64(wbuf *w, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        w->p[w->off++] = (uint8_t)(v >> (8 * i));
}

static void put_bytes(wbuf *w, const uint8_t *d, size_t n)
{
    if (n)
        memcpy(w->p + w->off, d, n);
    w->off += n;
}

static void put_ids(wbuf *w, const uint64_t *ids, size_t n)
{
    put_u32(w, (uint32_t)n);
    for (size_t i = 0; i < n; i++)
        put_u64(w, ids[i]);
}

static int encoded_size(const raft_msg *m, size_t *out)
{
    if (m->type < RAFT_MSG_APP || m->type > RAFT_MSG_TYPE_MAX || m->n_entries >= MAX_ENTRIES)
        return CE_INVAL;
    if (m->n_entries && !m->entries)
        return CE_INVAL;
    size_t n = MSG_HEADER;
    for (size_t i = 0; i < m->n_entries; i++) {
        if (m->entries[i].len > UINT32_MAX || (m->entries[i].len && !m->entries[i].data))
            return CE_INVAL;
        n += ENT_HEADER + m->entries[i].len;
    }
    if (m->type == RAFT_MSG_SNAP) {
        const raft_conf_state *c = &m->snapshot.conf;
        if (c->n_voters > MAX_IDS || c->n_learners > MAX_IDS)
            return CE_INVAL;
        n += 24 + 8 * (c->n_voters + c->n_learners);
    }
    *out = n;
    return 0;
}

int raft_msg_encode(const raft_msg *m, uint8_t **buf, size_t *len)
{
    size_t n;
    int rc = encoded_size(m, &n);
    if (rc)
        return rc;
    wbuf w = {malloc(n), 0};
    if (!w.p)
        return CE_NOMEM;
    put_u8(&w, MSG_VERSION);
    put_u8(&w, (uint8_t)m->type);
    put_u8(&w, (uint8_t)((m->reject ? 1 : 0) | (m->transfer ? 2 : 0)));
    put_u8(&w, 0);
    put_u64(&w, m->to);
    put_u64(&w, m->from);
    put_u64(&w, m->term);
    put_u64(&w, m->log_term);
    put_u64(&w, m->index);
    put_u64(&w, m->commit);
    put_u64(&w, m->reject_hint);
    put_u64(&w, m->context);
    put_u32(&w, (uint32_t)m->n_entries);
    for (size_t i = 0; i < m->n_entries; i++) {
        const raft_entry *e = &m->entries[i];
        put_u64(&w, e->term);
        put_u64(&w, e->index);
        put_u8(&w, (uint8_t)e->type);
        put_u32(&w, (uint32_t)e->len);
        put_bytes(&w, e->data, e->len);
    }
    if (m->type == RAFT_MSG_SNAP) {
        put_u64(&w, m->snapshot.index);
        put_u64(&w, m->snapshot.term);
        put_ids(&w, m->snapshot.conf.voters, m->snapshot.conf.n_voters);
        put_ids(&w, m->snapshot.conf.learners, m->snapshot.conf.n_learners);
    }
    *buf = w.p;
    *len = w.off;
    return 0;
}

/* ---- decoding ---- */

typedef struct rbuf {
    const uint8_t *p;
    size_t len;
    size_t off;
} rbuf;

static bool has(const rbuf *r, size_t n)
{
    return r->len - r->off >= n;
}

static uint8_t get_u8(rbuf *r)
{
    return r->p[r->off++];
}

static uint32_t get_u32(rbuf *r)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)r->p[r->off++] << (8 * i);
    return v;
}

static uint64_t get_u64(rbuf *r)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)r->p[r->off++] << (8 * i);
    return v;
}

static int decode_header(rbuf *r, raft_msg *m, uint32_t *n_entries)
{
    if (!has(r, MSG_HEADER))
        return CE_CORRUPT;
    uint8_t version = get_u8(r), type = get_u8(r), flags = get_u8(r), reserved = get_u8(r);
    if (version != MSG_VERSION || type < RAFT_MSG_APP || type > RAFT_MSG_TYPE_MAX ||
        (flags & ~3u) || reserved)
        return CE_CORRUPT;
    m->type = (raft_msg_type)type;
    m->reject = flags & 1;
    m->transfer = (flags & 2) != 0;
    m->to = get_u64(r);
    m->from = get_u64(r);
    m->term = get_u64(r);
    m->log_term = get_u64(r);
    m->index = get_u64(r);
    m->commit = get_u64(r);
    m->reject_hint = get_u64(r);
    m->context = get_u64(r);
    *n_entries = get_u32(r);
    if (*n_entries && m->type != RAFT_MSG_APP && m->type != RAFT_MSG_PROP)
        return CE_CORRUPT;
    return 0;
}

/* First pass: validates entry framing, sums the data bytes. */
static int scan_entries(rbuf *r, uint32_t n, size_t *data_bytes)
{
    /* Each entry takes at least ENT_HEADER bytes: bounds n before trusting it. */
    if (n > (r->len - r->off) / ENT_HEADER)
        return CE_CORRUPT;
    size_t total = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (!has(r, ENT_HEADER))
            return CE_CORRUPT;
        r->off += 16;
        uint8_t type = get_u8(r);
        uint32_t len = get_u32(r);
        if (type > RAFT_ENTRY_CONF_CHANGE || !has(r, len))
            return CE_CORRUPT;
        r->off += len;
        total += len;
    }
    *data_bytes = total;
    return 0;
}

static int scan_ids(rbuf *r, uint32_t *n)
{
    if (!has(r, 4))
        return CE_CORRUPT;
    *n = get_u32(r);
    if (*n > MAX_IDS || !has(r, (size_t)*n * 8))
        return CE_CORRUPT;
    r->off += (size_t)*n * 8;
    return 0;
}

static void fill_entries(rbuf *r, raft_msg *m, uint8_t *data)
{
    for (size_t i = 0; i < m->n_entries; i++) {
        raft_entry *e = &m->entries[i];
        e->term = get_u64(r);
        e->index = get_u64(r);
        e->type = (raft_entry_type)get_u8(r);
        e->len = get_u32(r);
        e->data = e->len ? data : NULL;
        if (e->len)
            memcpy(data, r->p + r->off, e->len);
        r->off += e->len;
        data += e->len;
    }
}

static void fill_ids(rbuf *r, uint64_t *ids)
{
    uint32_t n = get_u32(r);
    for (uint32_t i = 0; i < n; i++)
        ids[i] = get_u64(r);
}

int raft_msg_decode(const uint8_t *buf, size_t len, raft_msg *m)
{
    memset(m, 0, sizeof(*m));
    if (!buf)
        return CE_CORRUPT;
    rbuf r = {buf, len, 0};
    raft_msg h = {0};
    uint32_t n_ent, n_voters = 0, n_learners = 0;
    size_t data_bytes;
    if (decode_header(&r, &h, &n_ent) || scan_entries(&r, n_ent, &data_bytes))
        return CE_CORRUPT;
    size_t ent_end = r.off;
    if (h.type == RAFT_MSG_SNAP) {
        if (!has(&r, 16))
            return CE_CORRUPT;
        r.off += 16;
        if (scan_ids(&r, &n_voters) || scan_ids(&r, &n_learners))
            return CE_CORRUPT;
    }
    if (r.off != len)
        return CE_CORRUPT; /* trailing bytes */
    size_t ids = (size_t)n_voters + n_learners;
    size_t total = n_ent * sizeof(raft_entry) + ids * sizeof(uint64_t) + data_bytes;
    uint8_t *block = malloc(total ? total : 1);
    if (!block)
        return CE_NOMEM;
    *m = h;
    m->entries = (raft_entry *)(void *)block;
    m->n_entries = n_ent;
    uint64_t *idv = (uint64_t *)(void *)(block + n_ent * sizeof(raft_entry));
    r.off = MSG_HEADER;
    fill_entries(&r, m, (uint8_t *)(idv + ids));
    if (h.type == RAFT_MSG_SNAP) {
        r.off = ent_end;
        m->snapshot.index = get_u64(&r);
        m->snapshot.term = get_u64(&r);
        fill_ids(&r, idv);
        fill_ids(&r, idv + n_voters);
        m->snapshot.conf = (raft_conf_state){idv, n_voters, idv + n_voters, n_learners};
    }
    return 0;
}

void raft_msg_free(raft_msg *m)
{
    free(m->entries);
    memset(m, 0, sizeof(*m));
}

const char *raft_msg_type_name(raft_msg_type t)
{
    static const char *const names[] = {
        "MsgUnknown",       "MsgApp",         "MsgAppResp",       "MsgVote",
        "MsgVoteResp",      "MsgPreVote",     "MsgPreVoteResp",   "MsgHeartbeat",
        "MsgHeartbeatResp", "MsgSnap",        "MsgProp",          "MsgReadIndex",
        "MsgReadIndexResp", "MsgTimeoutNow",  "MsgTransferLeader",
    };
    if ((unsigned)t > RAFT_MSG_TYPE_MAX)
        return names[0];
    return names[t];
}
