/*
 * watch_int.h: what the files of server/watch/ share (not for other modules).
 *
 *   hub.c      the hub: lifecycle, store feed, dispatch of a committed batch, sync states
 *   catchup.c  unsynced watchers reading history; compaction cancels; progress rounds
 *   match.c    groups (one per key range), classes (one per prev_kv/filter choice in a
 *              group) and matching an event to the classes that want it
 *   stream.c   streams, their watch IDs, the requests and the control responses
 *   wire.c     the WatchResponse bytes: prefixes, events, fragments
 *
 * Structure: a group holds the watchers of one key range (key alone, [key, end), or every
 * key >= key), whatever their options; a class is the watchers of a group that receive
 * byte-identical events (same prev_kv, NOPUT, NODELETE). Matching is per group and the
 * events of a batch are encoded once per class, then sent to each of its synced watchers
 * with only the response prefix (header, watch_id) differing.
 *
 * Invariants:
 *   - a synced watcher is on its class's synced list and has been sent every event up to
 *     hub->rev; an unsynced one is on the hub's unsynced list with next_rev the first
 *     revision it has not been sent; a dead one is on no list and has no class;
 *   - hub->feeding == (hub->nsynced > 0): the store keeps events only while someone is fed,
 *     and hub->rev is the store's revision whenever the feed is set up;
 *   - during a batch (between the first event and batch done) no watcher changes state.
 */
#ifndef CETCD_WATCH_INT_H
#define CETCD_WATCH_INT_H

#include "bytebuf.h"
#include "watch.h"

#define WATCH_DEFAULT_MAX_RESPONSE (1572864u + 524288u)
#define WATCH_DEFAULT_PROGRESS_MS (10u * 60u * 1000u)
#define WATCH_DEFAULT_SLOW_BYTES (1u << 20)
#define WATCH_SYNC_MS 100          /* catch-up timer while some watcher is unsynced */
#define WATCH_SYNC_BUSY_MS 10      /* ... while one of them is making progress */
#define WATCH_HDR_MAX 64           /* a packed header field: tag, length, four varints */
#define WATCH_PREFIX_MAX (WATCH_HDR_MAX + 16)
/* A batch's events for one watcher go out in one response up to this size; beyond it they are
 * cut between revisions (etcd sends one response per revision: a client's receive limit
 * must not see a batch where etcd would have sent several small responses). */
#define WATCH_GROUP_MAX (1u << 20)

/* etcd's cancel reasons (mvcc/watcher.go) */
#define WATCH_REASON_DUP_ID "mvcc: duplicate watch ID provided on the WatchStream"
#define WATCH_REASON_EMPTY_RANGE "mvcc: watcher range is empty"

/* Class variant bits. */
#define WV_PREV 1u
#define WV_NOPUT 2u
#define WV_NODELETE 4u

enum wstate { W_SYNCED, W_UNSYNCED, W_DEAD };
enum gkind { G_KEY, G_RANGE, G_FROM };

typedef struct wgroup wgroup;
typedef struct wclass wclass;
typedef struct watcher watcher;

struct watcher {
    watch_stream *st;
    int64_t id;
    wclass *cls;                  /* NULL once dead */
    enum wstate state;
    int64_t next_rev;             /* unsynced: first revision not sent yet */
    bool fragment;
    bool progress;                /* progress_notify asked */
    bool quiet;                   /* progress: nothing sent since the last round */
    watcher *next, *prev;         /* class synced list or hub unsynced list */
    watcher *pnext, *pprev;       /* hub progress list */
};

struct wclass {
    wgroup *g;
    unsigned variant;
    size_t refs;                  /* watchers of this class, any state but dead */
    watcher *synced;
    size_t nsynced;
    uint32_t *evs;                /* the batch's events for this class: indices in hub->bevs */
    size_t nevs, capevs;
    bool dirty;                   /* on the hub's dirty list */
    bool lost;                    /* some event of the batch could not be kept for it */
    wclass *dnext;
    wclass *next;                 /* in its group */
};

struct wgroup {
    enum gkind kind;
    ProtobufCBinaryData key, end; /* owned copies; end empty unless G_RANGE */
    uint64_t hash;                /* G_KEY: hash of key */
    wclass *classes;
    wgroup *next, *prev;          /* hash chain (G_KEY) or range list */
};

/* One event of the batch being collected, encoded at most once in each form. */
struct bev {
    int64_t rev;
    uint32_t off, len;            /* Event without prev_kv, in hub->arena */
    uint32_t poff, plen;          /* its prev_kv field (tag, length, KeyValue), plen 0 = none */
    bool encoded, pencoded;
    bool is_delete;
};

/* Events [from, to) of the class being sent, as one response with its header at rev. */
struct piece {
    size_t from, to;
    uint8_t hdr[WATCH_HDR_MAX];
    size_t hlen;
};

/* A list of encoded events (each a complete `events` field) and where each starts. */
struct evlist {
    bytebuf bytes;
    uint32_t *offs;               /* offs[i] = start of event i; offs[n] = end */
    size_t n, cap;
};

struct watch_stream {
    watch_hub *hub;
    watch_stream_ops ops;
    void *ctx;
    int64_t next_id;              /* etcd's AutoWatchID counter */
    watcher **slots;              /* open addressing by id; NULL = empty */
    size_t nslots, nids;
    bool broken;                  /* a send failed: the stream is going away */
    watch_stream *next, *prev;
};

struct watch_hub {
    watch_hub_config cfg;
    mvcc *store;
    bool feeding;
    int64_t rev;
    /* matching */
    wgroup **kb;                  /* G_KEY groups, hashed */
    size_t nkb, nkeys;
    wgroup *ranges;               /* G_RANGE and G_FROM groups */
    /* the batch being collected */
    struct bev *bevs;
    size_t nbevs, capbevs;
    bytebuf arena;
    wclass *dirty;
    int64_t batch_first;          /* revision of the batch's first event; 0 = no batch */
    struct piece *pieces;         /* one class's events cut into responses */
    size_t npieces, cappieces;
    struct evlist scratch;        /* one class's events, or one catch-up chunk */
    /* states */
    size_t nwatchers, nsynced, nunsynced;
    watcher *uhead, *utail;       /* unsynced, in catch-up order */
    watcher *progress;
    watch_stream *streams;
    size_t nstreams;
    ev_timer sync_timer, progress_timer;
    uint64_t responses, events;
};

/* hub.c */
void hub_feed_update(watch_hub *h);
void hub_make_unsynced(watch_hub *h, watcher *w, int64_t next_rev);
void hub_make_synced(watch_hub *h, watcher *w);
void hub_schedule_sync(watch_hub *h, uint64_t after_ms);
/* Adds a new watcher (already in its class) to the hub in its first state. */
void hub_watcher_add(watch_hub *h, watcher *w, int64_t start_rev);
/* Takes a watcher out of every hub list and its class (watcher memory stays the caller's). */
void hub_watcher_remove(watch_hub *h, watcher *w);
/* An unsynced watcher becomes dead: off every list but progress, no class, ID still taken. */
void hub_watcher_kill(watch_hub *h, watcher *w);
/* Moves an unsynced watcher to the end of the catch-up order. */
void hub_unsynced_rotate(watch_hub *h, watcher *w);
void hub_header(watch_hub *h, int64_t rev, Etcdserverpb__ResponseHeader *hd);

/* match.c */
int match_class_get(watch_hub *h, const ProtobufCBinaryData *key,
                    const ProtobufCBinaryData *end, enum gkind kind, unsigned variant,
                    wclass **out);
void match_class_put(watch_hub *h, wclass *c);
/* Calls fn for every class of every group whose range holds key. */
void match_key(watch_hub *h, const ProtobufCBinaryData *key,
               void (*fn)(watch_hub *h, wclass *c, void *arg), void *arg);
void match_free_all(watch_hub *h);

/* catchup.c */
void catchup_pass(watch_hub *h);
void catchup_progress_round(watch_hub *h);
/* Sends w its compaction cancel and makes it dead. */
void catchup_cancel_compacted(watch_hub *h, watcher *w, int64_t compact_rev);

/* stream.c */
/* Sends packed parts to the stream's peer; a failure marks the stream broken. 0 or CE_*. */
int stream_send_parts(watch_stream *s, const ProtobufCBinaryData *parts, size_t n);
int stream_send_msg(watch_stream *s, const Etcdserverpb__WatchResponse *r);
bool stream_slow(const watch_stream *s);

/* wire.c */
size_t wire_varint(uint8_t *out, uint64_t v);
size_t wire_varint_len(uint64_t v);
/* The packed `header` field (tag 1, length, ResponseHeader) for revision rev. */
size_t wire_header(watch_hub *h, int64_t rev, uint8_t out[WATCH_HDR_MAX]);
void evlist_reset(struct evlist *l);
void evlist_free(struct evlist *l);
/* Appends one `events` field made of an Event's bytes and, optionally, a prev_kv field. */
int evlist_add(struct evlist *l, const uint8_t *ev, size_t len, const uint8_t *prev,
               size_t plen);
/* Appends the `events` field of ev (prev_kv included if present). */
int evlist_add_event(struct evlist *l, const Mvccpb__Event *ev);
/* Sends w the events [from, to) of l in one response, or fragments as etcd when w asked
 * for them. */
int wire_send_range(watch_hub *h, watcher *w, const uint8_t *hdr, size_t hlen,
                    const struct evlist *l, size_t from, size_t to);
/* The same for every event of l. */
int wire_send_events(watch_hub *h, watcher *w, const uint8_t *hdr, size_t hlen,
                     const struct evlist *l);

#endif
