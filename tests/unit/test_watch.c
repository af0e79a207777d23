/*
 * test_watch.c: unit tests of the watch hub (server/watch/) on a real store (server/mvcc/) in
 * a fresh mkdtemp directory, with fake streams instead of the transport: a fake records every
 * response it is sent (unpacked) and reports a queued-byte count the test sets, which is how a
 * slow reader is simulated. The hub runs without an event loop: the tests call
 * watch_hub_sync / watch_hub_progress where the timers would.
 *
 * Covered: key matching (single key, range, prefix, "\0" from-key, everything), NOPUT /
 * NODELETE, prev_kv, grouping of a batch into one response, revision order, history replay
 * from start_revision (inclusive) and from the future, exactly-once delivery across
 * synced -> unsynced -> synced under a slow reader (randomized; replay with WATCH_SEED=<seed>),
 * compaction cancels, fragments, IDs (auto, client-chosen, duplicates), cancel, progress,
 * a store replaced under the hub, failed sends, and 1,000 watchers on one prefix.
 * Build alone: hack/unit.sh tests/unit/test_watch.c server/watch/[a-z]*.c server/mvcc/[a-z]*.c
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "server/mvcc/mvcc.h"
#include "server/watch/watch.h"
#include "tmpdir.h"

/* ---- fake streams ---- */

typedef struct fake {
    watch_stream *s;
    Etcdserverpb__WatchResponse **r;   /* every response, unpacked */
    size_t n, cap;
    size_t pending;                    /* what the stream reports as queued */
    size_t grow;                       /* added to pending by each send (a reader that stalls) */
    bool fail;                         /* sends fail (the call went away) */
    bool count_only;                   /* keep nothing, count events (bench) */
    uint64_t events;
    int64_t cur_id;                    /* count_only: watch_id of the response being read */
    int64_t last_rev[128];             /* count_only: last mod_revision per watch_id */
    bool disorder;                     /* count_only: a watcher's revision did not increase */
} fake;

static uint8_t *concat(const ProtobufCBinaryData *parts, size_t n, size_t *len)
{
    uint8_t *buf;

    *len = 0;
    for (size_t i = 0; i < n; i++)
        *len += parts[i].len;
    buf = malloc(*len ? *len : 1);
    assert_non_null(buf);
    for (size_t i = 0, at = 0; i < n; at += parts[i].len, i++)
        memcpy(buf + at, parts[i].data, parts[i].len);
    return buf;
}

static uint64_t rd_varint(const uint8_t **p, const uint8_t *end)
{
    uint64_t v = 0;

    for (int shift = 0; *p < end && shift < 64; shift += 7) {
        uint8_t b = *(*p)++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            break;
    }
    return v;
}

/* Calls fn(arg, field, value) for each varint field and fn(arg, field, 0) with *sub set for
 * each length-delimited one of the protobuf message b[0..len). */
static void scan_fields(const uint8_t *b, size_t len,
                        void (*fn)(void *arg, unsigned field, uint64_t v, const uint8_t *sub,
                                   size_t sublen),
                        void *arg)
{
    const uint8_t *p = b, *end = b + len;

    while (p < end) {
        uint64_t key = rd_varint(&p, end), l;
        switch (key & 7) {
        case 0:
            fn(arg, (unsigned)(key >> 3), rd_varint(&p, end), NULL, 0);
            break;
        case 2:
            l = rd_varint(&p, end);
            assert_true(l <= (uint64_t)(end - p));
            fn(arg, (unsigned)(key >> 3), 0, p, (size_t)l);
            p += l;
            break;
        default:
            fail_msg("unexpected wire type %u", (unsigned)(key & 7));
        }
    }
}

static void kv_field(void *arg, unsigned field, uint64_t v, const uint8_t *sub, size_t len)
{
    (void)sub, (void)len;
    if (field == 3)                            /* KeyValue.mod_revision */
        *(int64_t *)arg = (int64_t)v;
}

static void event_field(void *arg, unsigned field, uint64_t v, const uint8_t *sub, size_t len)
{
    (void)v;
    if (field == 2)                            /* Event.kv */
        scan_fields(sub, len, kv_field, arg);
}

static void response_field(void *arg, unsigned field, uint64_t v, const uint8_t *sub,
                           size_t len)
{
    struct fake *f = arg;
    int64_t rev = 0;

    if (field == 2)                            /* WatchResponse.watch_id */
        f->cur_id = (int64_t)v;
    if (field != 11)                           /* WatchResponse.events */
        return;
    assert_true(f->cur_id >= 0 && f->cur_id < 128);
    scan_fields(sub, len, event_field, &rev);
    if (rev <= f->last_rev[f->cur_id])
        f->disorder = true;
    f->last_rev[f->cur_id] = rev;
    f->events++;
}

static int fake_send(void *ctx, const ProtobufCBinaryData *parts, size_t n)
{
    fake *f = ctx;
    size_t len;
    uint8_t *buf;
    Etcdserverpb__WatchResponse *r;

    if (f->fail)
        return CE_STOPPED;
    f->pending += f->grow;
    if (f->count_only) {
        buf = concat(parts, n, &len);
        f->cur_id = 0;                         /* watch_id 0 is left out of the bytes */
        scan_fields(buf, len, response_field, f);
        free(buf);
        return 0;
    }
    buf = concat(parts, n, &len);
    r = etcdserverpb__watch_response__unpack(NULL, len, buf);
    free(buf);
    assert_non_null(r);
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 16;
        f->r = realloc(f->r, f->cap * sizeof(*f->r));
        assert_non_null(f->r);
    }
    f->r[f->n++] = r;
    return 0;
}

static size_t fake_pending(void *ctx)
{
    return ((fake *)ctx)->pending;
}

static const watch_stream_ops fake_ops = {fake_send, fake_pending};

static void fake_clear(fake *f)
{
    for (size_t i = 0; i < f->n; i++)
        protobuf_c_message_free_unpacked(&f->r[i]->base, NULL);
    f->n = 0;
}

/* ---- fixture ---- */

#define MAX_FAKES 16

typedef struct fx {
    char dir[64];
    mvcc *m;
    uint64_t ci;
    watch_hub *h;
    fake fk[MAX_FAKES];
    int nfk;
} fx;

static mvcc *open_at(const char *dir)
{
    mvcc_options o = {.dir = dir, .no_sync = true};
    mvcc *m = NULL;

    assert_int_equal(mvcc_open(&o, &m), 0);
    return m;
}

static void fill(void *arg, Etcdserverpb__ResponseHeader *h)
{
    (void)arg;
    h->cluster_id = 11;
    h->member_id = 22;
    h->raft_term = 3;
}

static void hub_open(fx *f, uint32_t max_response)
{
    watch_hub_config c = {.max_response_bytes = max_response, .fill_header = fill};

    assert_int_equal(watch_hub_new(&c, &f->h), 0);
    watch_hub_set_store(f->h, f->m);
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));

    strcpy(f->dir, "/tmp/test_watch.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->m = open_at(f->dir);
    hub_open(f, 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    watch_hub_stats st;

    for (int i = 0; i < f->nfk; i++) {
        watch_stream_free(f->fk[i].s);
        fake_clear(&f->fk[i]);
        free(f->fk[i].r);
    }
    watch_hub_get_stats(f->h, &st);
    assert_int_equal(st.watchers, 0);
    assert_int_equal(st.streams, 0);
    watch_hub_free(f->h);
    mvcc_close(f->m);
    tmpdir_remove(f->dir);
    free(f);
    return 0;
}

static fake *stream(fx *f)
{
    fake *k = &f->fk[f->nfk++];

    assert_true(f->nfk <= MAX_FAKES);
    assert_int_equal(watch_stream_new(f->h, &fake_ops, k, &k->s), 0);
    return k;
}

/* ---- store helpers ---- */

static ProtobufCBinaryData B(const char *s)
{
    return (ProtobufCBinaryData){s ? strlen(s) : 0, (uint8_t *)s};
}

static const uint8_t ZERO_BYTE[1] = {0};
#define FROMKEY ((const char *)ZERO_BYTE)  /* range_end "\0" */

static ProtobufCBinaryData E(const char *s)
{
    if (s == FROMKEY)
        return (ProtobufCBinaryData){1, (uint8_t *)ZERO_BYTE};
    return B(s);
}

static void begin(fx *f)
{
    assert_int_equal(mvcc_begin(f->m), 0);
}

static void commit(fx *f)
{
    assert_int_equal(mvcc_commit(f->m, ++f->ci, 1), 0);
}

static void put_in(fx *f, const char *k, const char *v)
{
    Etcdserverpb__PutRequest r = ETCDSERVERPB__PUT_REQUEST__INIT;

    r.key = B(k);
    r.value = B(v);
    assert_int_equal(mvcc_put(f->m, &r, NULL), 0);
}

static void del_in(fx *f, const char *k, const char *end)
{
    Etcdserverpb__DeleteRangeRequest r = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;

    r.key = B(k);
    r.range_end = B(end);
    assert_int_equal(mvcc_delete(f->m, &r, NULL), 0);
}

static int64_t put(fx *f, const char *k, const char *v)
{
    begin(f);
    put_in(f, k, v);
    commit(f);
    return mvcc_rev(f->m);
}

static int64_t del(fx *f, const char *k, const char *end)
{
    begin(f);
    del_in(f, k, end);
    commit(f);
    return mvcc_rev(f->m);
}

static void compact(fx *f, int64_t rev)
{
    begin(f);
    assert_int_equal(mvcc_compact(f->m, rev), 0);
    commit(f);
}

/* ---- request helpers ---- */

enum { O_PREV = 1, O_NOPUT = 2, O_NODEL = 4, O_FRAG = 8, O_PROGRESS = 16 };

static void create(fake *k, const char *key, const char *end, int64_t start, unsigned opts,
                   int64_t id)
{
    Etcdserverpb__WatchRequest r = ETCDSERVERPB__WATCH_REQUEST__INIT;
    Etcdserverpb__WatchCreateRequest c = ETCDSERVERPB__WATCH_CREATE_REQUEST__INIT;
    Etcdserverpb__WatchCreateRequest__FilterType ft[2];

    c.key = B(key);
    c.range_end = E(end);
    c.start_revision = start;
    c.prev_kv = opts & O_PREV;
    c.fragment = opts & O_FRAG;
    c.progress_notify = opts & O_PROGRESS;
    c.watch_id = id;
    if (opts & O_NOPUT)
        ft[c.n_filters++] = ETCDSERVERPB__WATCH_CREATE_REQUEST__FILTER_TYPE__NOPUT;
    if (opts & O_NODEL)
        ft[c.n_filters++] = ETCDSERVERPB__WATCH_CREATE_REQUEST__FILTER_TYPE__NODELETE;
    c.filters = ft;
    r.request_union_case = ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST;
    r.create_request = &c;
    assert_int_equal(watch_stream_request(k->s, &r), 0);
}

static void cancel(fake *k, int64_t id)
{
    Etcdserverpb__WatchRequest r = ETCDSERVERPB__WATCH_REQUEST__INIT;
    Etcdserverpb__WatchCancelRequest c = ETCDSERVERPB__WATCH_CANCEL_REQUEST__INIT;

    c.watch_id = id;
    r.request_union_case = ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CANCEL_REQUEST;
    r.cancel_request = &c;
    assert_int_equal(watch_stream_request(k->s, &r), 0);
}

/* "key@rev" (PUT) / "-key@rev" (DELETE), with "(prev)" when prev_kv is set, for every event
 * sent to watcher id, in order. */
static void events_of(const fake *k, int64_t id, char *out, size_t cap)
{
    size_t n = 0;

    out[0] = 0;
    for (size_t i = 0; i < k->n; i++) {
        const Etcdserverpb__WatchResponse *r = k->r[i];
        if (r->watch_id != id)
            continue;
        for (size_t j = 0; j < r->n_events; j++) {
            const Mvccpb__Event *e = r->events[j];
            const Mvccpb__KeyValue *p = e->prev_kv;
            int w = snprintf(out + n, cap - n, "%s%.*s@%lld%s%.*s%s ",
                             e->type == MVCCPB__EVENT__EVENT_TYPE__DELETE ? "-" : "",
                             (int)e->kv->key.len, (const char *)e->kv->key.data,
                             (long long)e->kv->mod_revision, p ? "(" : "",
                             p ? (int)p->value.len : 0, p ? (const char *)p->value.data : "",
                             p ? ")" : "");
            assert_true(w > 0 && (size_t)w < cap - n);
            n += (size_t)w;
        }
    }
}

static size_t count_for(const fake *k, int64_t id)
{
    size_t n = 0;

    for (size_t i = 0; i < k->n; i++)
        n += k->r[i]->watch_id == id;
    return n;
}

static void sync_all(fx *f)
{
    watch_hub_stats st;

    for (int i = 0; i < 1000; i++) {
        watch_hub_get_stats(f->h, &st);
        if (!st.unsynced)
            return;
        watch_hub_sync(f->h);
    }
    fail_msg("watchers never caught up");
}

/* ---- tests ---- */

static void test_created_and_ids(void **state)
{
    fx *f = *state;
    fake *k = stream(f);
    Etcdserverpb__WatchResponse *r;

    put(f, "a", "1");
    create(k, "a", NULL, 0, 0, 0);
    create(k, "a", NULL, 0, 0, 7);
    create(k, "a", NULL, 0, 0, 0);
    create(k, "a", NULL, 0, 0, 7);            /* duplicate */
    create(k, "b", "a", 0, 0, 0);             /* empty range */
    create(k, "a", "a", 0, 0, 0);             /* empty range too */
    create(k, "a", NULL, 0, 0, 2);
    create(k, "a", NULL, 0, 0, 0);            /* skips 2, which is taken */
    create(k, "a", NULL, 0, 0, -5);           /* negative client IDs are accepted */
    assert_int_equal(k->n, 9);
    r = k->r[0];
    assert_true(r->created);
    assert_false(r->canceled);
    assert_int_equal(r->watch_id, 0);
    assert_int_equal(r->header->revision, 2);
    assert_int_equal(r->header->cluster_id, 11);
    assert_int_equal(r->header->member_id, 22);
    assert_int_equal(r->header->raft_term, 3);
    assert_int_equal(k->r[1]->watch_id, 7);
    assert_int_equal(k->r[2]->watch_id, 1);
    r = k->r[3];
    assert_true(r->created && r->canceled);
    assert_int_equal(r->watch_id, -1);
    assert_string_equal(r->cancel_reason, "mvcc: duplicate watch ID provided on the WatchStream");
    assert_string_equal(k->r[4]->cancel_reason, "mvcc: watcher range is empty");
    assert_int_equal(k->r[4]->watch_id, -1);
    assert_string_equal(k->r[5]->cancel_reason, "mvcc: watcher range is empty");
    assert_int_equal(k->r[6]->watch_id, 2);
    assert_int_equal(k->r[7]->watch_id, 3);
    assert_int_equal(k->r[8]->watch_id, -5);
    assert_true(k->r[8]->created && !k->r[8]->canceled);
}

static void test_matching(void **state)
{
    fx *f = *state;
    fake *k = stream(f);
    char got[512];

    create(k, "ab", NULL, 0, 0, 1);            /* the key alone */
    create(k, "a", "b", 0, 0, 2);              /* the prefix "a" */
    create(k, "ab", "b", 0, 0, 3);             /* [ab, b) */
    create(k, "b", FROMKEY, 0, 0, 4);          /* every key >= b */
    create(k, "\0", FROMKEY, 0, 0, 5);          /* every key (etcdctl --prefix "") */
    create(k, "", FROMKEY, 0, 0, 6);
    put(f, "a", "1");                          /* 2 */
    put(f, "ab", "1");                         /* 3 */
    put(f, "abc", "1");                        /* 4 */
    put(f, "b", "1");                          /* 5 */
    put(f, "c", "1");                          /* 6 */
    put(f, "ab\xff", "1");                     /* 7 */
    del(f, "ab", NULL);                        /* 8 */
    events_of(k, 1, got, sizeof(got));
    assert_string_equal(got, "ab@3 -ab@8 ");
    events_of(k, 2, got, sizeof(got));
    assert_string_equal(got, "a@2 ab@3 abc@4 ab\xff@7 -ab@8 ");
    events_of(k, 3, got, sizeof(got));
    assert_string_equal(got, "ab@3 abc@4 ab\xff@7 -ab@8 ");
    events_of(k, 4, got, sizeof(got));
    assert_string_equal(got, "b@5 c@6 ");
    events_of(k, 5, got, sizeof(got));
    assert_string_equal(got, "a@2 ab@3 abc@4 b@5 c@6 ab\xff@7 -ab@8 ");
    events_of(k, 6, got, sizeof(got));
    assert_string_equal(got, "a@2 ab@3 abc@4 b@5 c@6 ab\xff@7 -ab@8 ");
}

static void test_filters_and_prev(void **state)
{
    fx *f = *state;
    fake *k = stream(f);
    char got[512];

    put(f, "k", "old");                        /* 2 */
    create(k, "k", NULL, 0, O_NOPUT, 1);
    create(k, "k", NULL, 0, O_NODEL, 2);
    create(k, "k", NULL, 0, O_PREV, 3);
    create(k, "k", NULL, 0, O_PREV | O_NODEL, 4);
    create(k, "k", NULL, 0, O_NOPUT | O_NODEL, 5);
    create(k, "k", NULL, 0, 0, 6);
    put(f, "k", "new");                        /* 3 */
    del(f, "k", NULL);                         /* 4 */
    put(f, "k", "again");                      /* 5: a create, no prev */
    events_of(k, 1, got, sizeof(got));
    assert_string_equal(got, "-k@4 ");
    events_of(k, 2, got, sizeof(got));
    assert_string_equal(got, "k@3 k@5 ");
    events_of(k, 3, got, sizeof(got));
    assert_string_equal(got, "k@3(old) -k@4(new) k@5 ");
    events_of(k, 4, got, sizeof(got));
    assert_string_equal(got, "k@3(old) k@5 ");
    assert_int_equal(count_for(k, 5), 1);      /* the created response only */
    events_of(k, 6, got, sizeof(got));
    assert_string_equal(got, "k@3 -k@4 k@5 ");
    /* a DELETE's kv carries only key and mod_revision, as etcd's */
    for (size_t i = 0; i < k->n; i++)
        for (size_t j = 0; j < k->r[i]->n_events; j++)
            if (k->r[i]->events[j]->type == MVCCPB__EVENT__EVENT_TYPE__DELETE) {
                assert_int_equal(k->r[i]->events[j]->kv->version, 0);
                assert_int_equal(k->r[i]->events[j]->kv->value.len, 0);
            }
}

/* One batch spanning several revisions: one response per watcher, events in revision order,
 * header at the batch's last revision. */
static void test_batch_one_response(void **state)
{
    fx *f = *state;
    fake *k = stream(f);
    char got[256];

    create(k, "a", "z", 0, 0, 1);
    create(k, "b", NULL, 0, 0, 2);
    begin(f);
    put_in(f, "a", "1");                       /* 2 */
    put_in(f, "x", "1");                       /* 3 (not "b") */
    put_in(f, "b", "1");                       /* 4 */
    del_in(f, "a", "c");                       /* 5: a and b, in key order */
    commit(f);
    assert_int_equal(k->n, 4);
    assert_int_equal(k->r[2]->header->revision, 5);
    assert_int_equal(k->r[3]->header->revision, 5);
    events_of(k, 1, got, sizeof(got));
    assert_string_equal(got, "a@2 x@3 b@4 -a@5 -b@5 ");
    events_of(k, 2, got, sizeof(got));
    assert_string_equal(got, "b@4 -b@5 ");
    assert_int_equal(count_for(k, 1), 2);
    assert_int_equal(count_for(k, 2), 2);
}

static void test_history_and_future(void **state)
{
    fx *f = *state;
    fake *k = stream(f);
    char got[256];

    put(f, "a", "1");                          /* 2 */
    put(f, "a", "2");                          /* 3 */
    put(f, "b", "1");                          /* 4 */
    create(k, "a", "c", 3, O_PREV, 1);         /* inclusive: from 3 */
    create(k, "a", "c", 7, 0, 2);              /* from the future */
    create(k, "a", "c", 5, 0, 3);              /* the next revision: synced at once */
    assert_int_equal(k->n, 3);                 /* only the created ones so far */
    watch_hub_sync(f->h);
    events_of(k, 1, got, sizeof(got));
    assert_string_equal(got, "a@3(1) b@4 ");
    assert_int_equal(k->r[3]->header->revision, 4);
    put(f, "a", "3");                          /* 5 */
    put(f, "b", "2");                          /* 6 */
    watch_hub_sync(f->h);
    put(f, "a", "4");                          /* 7 */
    put(f, "b", "3");                          /* 8 */
    sync_all(f);
    events_of(k, 1, got, sizeof(got));
    assert_string_equal(got, "a@3(1) b@4 a@5(2) b@6(1) a@7(3) b@8(2) ");
    events_of(k, 2, got, sizeof(got));
    assert_string_equal(got, "a@7 b@8 ");
    events_of(k, 3, got, sizeof(got));
    assert_string_equal(got, "a@5 b@6 a@7 b@8 ");
}

/* A watcher whose stream stops reading leaves the feed, and gets every event once, in order,
 * when it reads again; writes never wait for it. */
static void test_slow_reader(void **state)
{
    fx *f = *state;
    fake *slow = stream(f), *fast = stream(f);
    watch_hub_stats st;
    char got[1024], want[1024];
    size_t n = 0;

    create(slow, "k", "l", 0, 0, 1);
    create(fast, "k", "l", 0, 0, 1);
    put(f, "k1", "v");                          /* 2: both get it */
    slow->pending = 10u << 20;
    put(f, "k2", "v");                          /* 3: slow leaves the feed */
    watch_hub_get_stats(f->h, &st);
    assert_int_equal(st.synced, 1);
    assert_int_equal(st.unsynced, 1);
    for (int i = 0; i < 5; i++) {
        put(f, "k3", "v");                      /* 4..8 */
        watch_hub_sync(f->h);                   /* still slow: nothing read */
    }
    assert_int_equal(slow->n, 2);               /* created + k1 */
    slow->pending = 0;
    watch_hub_sync(f->h);
    watch_hub_get_stats(f->h, &st);
    assert_int_equal(st.synced, 2);
    put(f, "k4", "v");                          /* 9: fed again */
    events_of(slow, 1, got, sizeof(got));
    events_of(fast, 1, want, sizeof(want));
    assert_string_equal(got, want);
    for (int r = 2; r <= 9; r++)
        n += (size_t)snprintf(want + n, sizeof(want) - n, "k%d@%d ",
                              r == 2 ? 1 : r == 3 ? 2 : r == 9 ? 4 : 3, r);
    assert_string_equal(got, want);
}

/* ---- randomized: exactly once, in order, under slow readers ---- */

#define RK 6
static const char *rkeys[RK] = {"a", "ab", "b", "ba", "c", "d"};

typedef struct model_ev {
    int64_t rev;
    int key;
    bool del;
    int prev;                      /* value number before, -1 = none */
    int val;
} model_ev;

typedef struct rwatch {
    fake *k;
    int64_t id;
    const char *key, *end;
    int64_t start;                 /* first revision wanted */
    unsigned opts;
} rwatch;

static bool rin(const rwatch *w, const char *key)
{
    if (!w->end)
        return strcmp(key, w->key) == 0;
    if (strcmp(key, w->key) < 0)
        return false;
    return w->end == FROMKEY || strcmp(key, w->end) < 0;
}

static void expect_for(const rwatch *w, const model_ev *ev, size_t nev, char *out, size_t cap)
{
    size_t n = 0;

    out[0] = 0;
    for (size_t i = 0; i < nev; i++) {
        const model_ev *e = &ev[i];
        if (e->rev < w->start || !rin(w, rkeys[e->key]) ||
            (e->del && (w->opts & O_NODEL)) || (!e->del && (w->opts & O_NOPUT)))
            continue;
        if ((w->opts & O_PREV) && e->prev >= 0)
            n += (size_t)snprintf(out + n, cap - n, "%s%s@%lld(%d) ", e->del ? "-" : "",
                                  rkeys[e->key], (long long)e->rev, e->prev);
        else
            n += (size_t)snprintf(out + n, cap - n, "%s%s@%lld ", e->del ? "-" : "",
                                  rkeys[e->key], (long long)e->rev);
        assert_true(n < cap);
    }
}

static void test_random_exactly_once(void **state)
{
    fx *f = *state;
    const char *env = getenv("WATCH_SEED");
    unsigned seed = env ? (unsigned)strtoul(env, NULL, 10) : (unsigned)time(NULL);
    static const char *ends[] = {NULL, "b", "c", NULL, FROMKEY};
    model_ev *ev = calloc(4096, sizeof(*ev));
    int val[RK];
    rwatch w[24];
    size_t nev = 0, nw = 0, cap = 1 << 16;
    fake *ks[4];
    char *got = malloc(cap), *want = malloc(cap);
    char vbuf[16];

    printf("# test_random_exactly_once seed %u (replay: WATCH_SEED=%u)\n", seed, seed);
    srand(seed);
    for (int i = 0; i < RK; i++)
        val[i] = -1;
    for (int i = 0; i < 4; i++)
        ks[i] = stream(f);
    for (int round = 0; round < 400; round++) {
        int a = rand() % 10;
        if (a < 5) {                                  /* a batch of 1..4 writes */
            int nops = 1 + rand() % 4;
            begin(f);
            for (int o = 0; o < nops; o++) {
                int key = rand() % RK;
                model_ev *e = &ev[nev];
                e->rev = mvcc_rev(f->m) + 1 + o;
                e->key = key;
                e->prev = val[key];
                if (val[key] >= 0 && rand() % 3 == 0) {
                    del_in(f, rkeys[key], NULL);
                    e->del = true;
                    val[key] = -1;
                } else {
                    e->val = round * 10 + o;
                    snprintf(vbuf, sizeof(vbuf), "%d", e->val);
                    put_in(f, rkeys[key], vbuf);
                    val[key] = e->val;
                }
                nev++;
            }
            commit(f);
        } else if (a < 7) {                           /* a reader stops or resumes */
            fake *k = ks[rand() % 4];
            k->pending = k->pending ? 0 : 5u << 20;
        } else if (a < 9) {
            watch_hub_sync(f->h);
        } else if (nw < 24) {                         /* a new watcher */
            rwatch *x = &w[nw];
            int cur = (int)mvcc_rev(f->m);
            x->k = ks[rand() % 4];
            x->id = 100 + (int64_t)nw;
            x->key = rkeys[rand() % RK];
            x->end = ends[rand() % 5];
            if (x->end && x->end != FROMKEY && strcmp(x->key, x->end) >= 0)
                x->end = FROMKEY;
            x->opts = (unsigned)(rand() % 8);            /* prev, noput, nodel */
            x->start = rand() % 3 == 0 ? 1 + rand() % cur : 0;
            create(x->k, x->key, x->end, x->start, x->opts, x->id);
            if (!x->start)
                x->start = cur + 1;
            nw++;
        }
    }
    for (int i = 0; i < 4; i++)
        ks[i]->pending = 0;
    sync_all(f);
    for (size_t i = 0; i < nw; i++) {
        events_of(w[i].k, w[i].id, got, cap);
        expect_for(&w[i], ev, nev, want, cap);
        if (strcmp(got, want))
            fail_msg("seed %u watcher %zu (%s..%s opts %u from %lld):\n got  %s\n want %s",
                     seed, i, w[i].key, w[i].end == FROMKEY ? "\\0" : w[i].end ? w[i].end : "",
                     w[i].opts, (long long)w[i].start, got, want);
    }
    free(got);
    free(want);
    free(ev);
}

/* ---- compaction ---- */

/* Before any compaction etcd's compaction point is -1: start -1 reads everything, -5 is
 * "compacted" with compact_revision -1. */
static void test_negative_start(void **state)
{
    fx *f = *state;
    fake *k = stream(f);
    char got[64];

    put(f, "a", "1");                          /* 2 */
    create(k, "a", NULL, -1, 0, 1);
    create(k, "a", NULL, -5, 0, 2);
    watch_hub_sync(f->h);
    events_of(k, 1, got, sizeof(got));
    assert_string_equal(got, "a@2 ");
    assert_int_equal(k->n, 4);
    assert_int_equal(k->r[3]->watch_id, 2);
    assert_true(k->r[3]->canceled);
    assert_int_equal(k->r[3]->compact_revision, -1);
}

static void test_compacted(void **state)
{
    fx *f = *state;
    fake *k = stream(f);
    Etcdserverpb__WatchResponse *r;
    watch_hub_stats st;

    put(f, "a", "1");                          /* 2 */
    put(f, "a", "2");                          /* 3 */
    put(f, "a", "3");                          /* 4 */
    compact(f, 3);
    create(k, "a", NULL, 2, 0, 1);             /* below the compaction point */
    create(k, "a", NULL, 3, 0, 2);             /* at it: fine, as etcd */
    watch_hub_sync(f->h);
    assert_int_equal(k->n, 4);
    r = k->r[2];
    assert_int_equal(r->watch_id, 1);
    assert_true(r->canceled);
    assert_false(r->created);
    assert_int_equal(r->compact_revision, 3);
    assert_int_equal(r->header->revision, 0);  /* etcd leaves it out */
    assert_int_equal(r->header->cluster_id, 11);
    assert_int_equal(k->r[3]->watch_id, 2);
    assert_int_equal(k->r[3]->n_events, 2);
    /* the dead watcher keeps its ID until canceled */
    create(k, "a", NULL, 0, 0, 1);
    assert_int_equal(k->r[4]->watch_id, -1);
    cancel(k, 1);
    assert_int_equal(k->r[5]->watch_id, 1);
    assert_true(k->r[5]->canceled);
    /* a slow watcher whose next revision gets compacted is canceled too */
    k->pending = 5u << 20;
    put(f, "a", "4");                          /* 5: watcher 2 leaves the feed at 5 */
    put(f, "a", "5");                          /* 6 */
    compact(f, 6);
    k->pending = 0;
    watch_hub_sync(f->h);
    r = k->r[k->n - 1];
    assert_int_equal(r->watch_id, 2);
    assert_true(r->canceled);
    assert_int_equal(r->compact_revision, 6);
    watch_hub_get_stats(f->h, &st);
    assert_int_equal(st.synced + st.unsynced, 0);
    assert_int_equal(st.watchers, 1);          /* dead, ID kept */
}

/* ---- fragments ---- */

static void put_big(fx *f, const char *k, size_t len)
{
    char *v = malloc(len + 1);

    memset(v, 'x', len);
    v[len] = 0;
    put_in(f, k, v);
    free(v);
}

static void test_fragments(void **state)
{
    fx *f = *state;
    fake *k;
    size_t total = 0, frags = 0;

    watch_hub_free(f->h);
    hub_open(f, 1000);
    k = stream(f);
    create(k, "f", "g", 0, O_FRAG, 1);
    create(k, "f", "g", 0, 0, 2);
    begin(f);
    for (int i = 0; i < 6; i++) {
        char key[16];
        snprintf(key, sizeof(key), "f%d", i);
        put_big(f, key, 300);
    }
    commit(f);
    for (size_t i = 2; i < k->n; i++) {
        Etcdserverpb__WatchResponse *r = k->r[i];
        size_t sz = etcdserverpb__watch_response__get_packed_size(r);
        if (r->watch_id == 2) {
            assert_int_equal(r->n_events, 6);
            assert_false(r->fragment);
            continue;
        }
        total += r->n_events;
        frags++;
        assert_true(r->n_events >= 1);
        assert_true(sz < 1000 || r->n_events == 1);
        assert_int_equal(r->fragment, total < 6);   /* all but the last */
        assert_int_equal(r->header->revision, 7);
    }
    assert_int_equal(total, 6);
    assert_int_equal(frags, 2);                /* three events of ~330 bytes stay below 1000 */
    /* a single event larger than the limit is sent whole */
    begin(f);
    put_big(f, "f9", 3000);
    commit(f);
    for (size_t i = k->n - 2; i < k->n; i++) {
        assert_int_equal(k->r[i]->n_events, 1);
        assert_false(k->r[i]->fragment);
    }
}

/* A batch larger than WATCH_GROUP_MAX goes out in several responses, cut between revisions,
 * each with the header of its last revision; a reader that stalls between them gets the rest
 * from history, exactly once. */
static void test_batch_pieces(void **state)
{
    fx *f = *state;
    fake *k = stream(f), *stall = stream(f);
    char key[16];
    size_t n = 0;

    create(k, "p", "q", 0, 0, 1);
    create(stall, "p", "q", 0, 0, 1);
    stall->grow = 5u << 20;                     /* slow after its first response */
    begin(f);
    for (int i = 0; i < 5; i++) {               /* 2..6, 300 KB each */
        snprintf(key, sizeof(key), "p%d", i);
        put_big(f, key, 300000);
    }
    commit(f);
    assert_int_equal(k->n, 3);
    assert_int_equal(k->r[1]->n_events, 3);     /* 900 KB, a fourth would pass 1 MiB */
    assert_int_equal(k->r[1]->header->revision, 4);
    assert_int_equal(k->r[2]->n_events, 2);
    assert_int_equal(k->r[2]->header->revision, 6);
    assert_int_equal(stall->n, 2);              /* created + the first piece */
    stall->grow = 0;
    stall->pending = 0;
    sync_all(f);
    for (size_t i = 1; i < stall->n; i++)
        for (size_t j = 0; j < stall->r[i]->n_events; j++)
            assert_int_equal(stall->r[i]->events[j]->kv->mod_revision, (int64_t)(2 + n++));
    assert_int_equal(n, 5);
}

/* ---- cancel and progress ---- */

static void test_cancel_progress(void **state)
{
    fx *f = *state;
    fake *k = stream(f);
    Etcdserverpb__WatchRequest r = ETCDSERVERPB__WATCH_REQUEST__INIT;
    Etcdserverpb__WatchProgressRequest p = ETCDSERVERPB__WATCH_PROGRESS_REQUEST__INIT;
    size_t n;

    create(k, "a", NULL, 0, O_PROGRESS, 1);
    create(k, "b", NULL, 0, 0, 2);
    create(k, "c", NULL, 0, O_PROGRESS, 3);
    put(f, "x", "1");                          /* 2 */
    cancel(k, 99);                             /* unknown: no answer */
    assert_int_equal(k->n, 3);
    r.request_union_case = ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_PROGRESS_REQUEST;
    r.progress_request = &p;
    assert_int_equal(watch_stream_request(k->s, &r), 0);
    assert_int_equal(k->n, 4);
    assert_int_equal(k->r[3]->watch_id, -1);
    assert_int_equal(k->r[3]->header->revision, 2);
    /* a request with nothing in it is ignored */
    r.request_union_case = ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION__NOT_SET;
    assert_int_equal(watch_stream_request(k->s, &r), 0);
    assert_int_equal(k->n, 4);
    /* a round: 1 and 3 are quiet and asked for progress */
    watch_hub_progress(f->h);
    assert_int_equal(k->n, 6);
    assert_int_equal(count_for(k, 1), 2);
    assert_int_equal(count_for(k, 3), 2);
    assert_int_equal(k->r[5]->n_events, 0);
    assert_int_equal(k->r[5]->header->revision, 2);
    /* an event for 1 in the interval: only 3 gets a progress response */
    put(f, "a", "1");                          /* 3 */
    n = k->n;
    watch_hub_progress(f->h);
    assert_int_equal(k->n, n + 1);
    assert_int_equal(k->r[n]->watch_id, 3);
    assert_int_equal(k->r[n]->header->revision, 3);
    watch_hub_progress(f->h);
    assert_int_equal(k->n, n + 3);
    /* cancel */
    cancel(k, 1);
    assert_true(k->r[k->n - 1]->canceled);
    assert_int_equal(k->r[k->n - 1]->watch_id, 1);
    assert_int_equal(k->r[k->n - 1]->header->revision, 3);
    n = k->n;
    put(f, "a", "2");
    assert_int_equal(k->n, n);                 /* nothing for the canceled one */
}

/* ---- the store replaced (a snapshot from the leader) ---- */

static void test_store_replaced(void **state)
{
    fx *f = *state;
    fake *k = stream(f);
    char dir2[64], path[128], got[256];
    mvcc *old = f->m;
    int fd;

    create(k, "a", "b", 0, 0, 1);
    put(f, "a1", "1");                         /* 2 */
    strcpy(dir2, "/tmp/test_watch.XXXXXX");
    assert_non_null(mkdtemp(dir2));
    snprintf(path, sizeof(path), "%s/data.mdb", dir2);
    fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(mvcc_snapshot_fd(old, fd), 0);
    close(fd);
    f->m = open_at(dir2);
    put(f, "a2", "1");                         /* 3, only in the new store */
    put(f, "b", "1");                          /* 4 */
    watch_hub_set_store(f->h, f->m);
    mvcc_close(old);                           /* the hub must not touch it any more */
    sync_all(f);
    put(f, "a3", "1");                         /* 5: fed from the new store */
    events_of(k, 1, got, sizeof(got));
    assert_string_equal(got, "a1@2 a2@3 a3@5 ");
    tmpdir_remove(f->dir);
    strcpy(f->dir, dir2);
}

/* ---- broken streams and freeing ---- */

static void test_broken_and_free(void **state)
{
    fx *f = *state;
    fake *a = stream(f), *b = stream(f);
    watch_hub_stats st;
    size_t n;

    create(a, "k", NULL, 0, 0, 1);
    create(a, "k", NULL, 1, 0, 2);             /* unsynced */
    create(b, "k", NULL, 0, O_PREV, 1);
    a->fail = true;
    put(f, "k", "1");
    put(f, "k", "2");
    watch_hub_sync(f->h);
    assert_int_equal(b->n, 3);
    n = a->n;
    put(f, "k", "3");
    assert_int_equal(a->n, n);
    assert_int_equal(
        watch_stream_request(a->s, &(Etcdserverpb__WatchRequest)ETCDSERVERPB__WATCH_REQUEST__INIT),
        CE_STOPPED);
    watch_stream_free(a->s);
    a->s = NULL;
    watch_hub_get_stats(f->h, &st);
    assert_int_equal(st.streams, 1);
    assert_int_equal(st.watchers, 1);
    watch_stream_free(b->s);
    b->s = NULL;
    watch_hub_get_stats(f->h, &st);
    assert_int_equal(st.watchers + st.synced + st.unsynced + st.streams, 0);
    put(f, "k", "4");                          /* no feed, nothing to do */
}

/* ---- many watchers on one prefix ---- */

static void test_many_watchers(void **state)
{
    fx *f = *state;
    enum { STREAMS = 10, PER = 100, PUTS = 2000, BATCH = 50 };
    fake *k[STREAMS];
    watch_hub_stats st;
    struct timespec t0, t1;
    char key[32];

    for (int s = 0; s < STREAMS; s++) {
        k[s] = stream(f);
        k[s]->count_only = true;
        for (int i = 0; i < PER; i++)
            create(k[s], "p/", "p0", 0, 0, 0);
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < PUTS; i += BATCH) {
        begin(f);
        for (int j = 0; j < BATCH; j++) {
            snprintf(key, sizeof(key), "p/%06d", i + j);
            put_in(f, key, "value");
        }
        commit(f);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    watch_hub_get_stats(f->h, &st);
    assert_int_equal(st.events, (uint64_t)STREAMS * PER * PUTS);
    assert_int_equal(st.responses, (uint64_t)STREAMS * PER * (PUTS / BATCH));
    for (int s = 0; s < STREAMS; s++) {
        assert_int_equal(k[s]->events, (uint64_t)PER * PUTS);
        assert_false(k[s]->disorder);
    }
    printf("# %d watchers x %d puts: %.0f ms (timing indicative only)\n",
           STREAMS * PER, PUTS,
           (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
}

#define T(x) cmocka_unit_test_setup_teardown(x, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_created_and_ids),
        T(test_matching),
        T(test_filters_and_prev),
        T(test_batch_one_response),
        T(test_history_and_future),
        T(test_slow_reader),
        T(test_random_exactly_once),
        T(test_negative_start),
        T(test_compacted),
        T(test_fragments),
        T(test_batch_pieces),
        T(test_cancel_progress),
        T(test_store_replaced),
        T(test_broken_and_free),
        T(test_many_watchers),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
