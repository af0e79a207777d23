/*
 * watch.h: the watch hub, etcd's Watch service without its transport.
 *
 * One hub per server. It is fed by the store's event feed (mvcc_set_event_feed): after each
 * committed batch it gets the batch's events in revision order, then a "batch done" call, at
 * which it sends every interested watcher one response holding its events of the batch. Each
 * Watch call is a watch_stream carrying any number of watchers (etcd's watch IDs); the hub
 * answers a stream through two callbacks (send a packed WatchResponse, ask how many response
 * bytes are still queued), so it never sees a socket and is tested without one.
 *
 * etcd 3.4's behaviour, as observed with a real client:
 *   - create: {created, watch_id, header.revision = current}; ID 0 = the next free ID of the
 *     stream; a taken ID or key >= range_end (range_end not empty or "\0") answers
 *     {created, canceled, watch_id -1, cancel_reason} with etcd's texts; range_end "\0" means
 *     every key >= key; start_revision 0 = from the next change, else inclusive (history);
 *   - cancel: {watch_id, canceled, header.revision = current}; an unknown ID gets no answer;
 *   - progress request: {header.revision = current, watch_id -1};
 *   - progress_notify: every progress interval, {watch_id, header.revision = current} to each
 *     such watcher that is synced and got no events in the interval;
 *   - a watcher whose next revision is compacted: {watch_id, canceled, compact_revision},
 *     header without revision; its ID stays taken until the client cancels it;
 *   - a response above max_response_bytes with two or more events is split, for a watcher
 *     that asked for fragments, into responses with fragment = true on all but the last.
 *
 * Invariants (each watcher): events reach it in revision order, each exactly once, never one
 * older than one already sent. A watcher is synced (fed straight from the batch), unsynced
 * (it remembers next_rev, the first revision it has not been sent, and a catch-up pass reads
 * history from there in bounded chunks until it reaches the store's revision) or dead
 * (compacted away). A synced watcher whose stream has more than slow_bytes queued becomes
 * unsynced instead of being sent to: slow readers never hold up writers or other watchers.
 *
 * Threading: everything runs on the loop's thread (the store's writer thread).
 */
#ifndef CETCD_WATCH_H
#define CETCD_WATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "evloop.h"
#include "mvcc/mvcc.h"
#include "rpc.pb-c.h"

typedef struct watch_hub watch_hub;
typedef struct watch_stream watch_stream;

typedef struct watch_hub_config {
    evloop *loop;                 /* catch-up and progress timers; NULL = none (tests drive
                                     watch_hub_sync / watch_hub_progress themselves) */
    uint32_t max_response_bytes;  /* fragment threshold; 0 = etcd's 1.5 MiB + 512 KiB */
    uint64_t progress_interval_ms; /* progress_notify period; 0 = etcd's 10 minutes */
    size_t slow_bytes;            /* queued bytes that make a stream slow; 0 = 1 MiB */
    /* Fills cluster_id, member_id and raft_term of a response header (the hub sets the
     * revision). NULL leaves them 0. */
    void (*fill_header)(void *arg, Etcdserverpb__ResponseHeader *h);
    void *header_arg;
} watch_hub_config;

int watch_hub_new(const watch_hub_config *cfg, watch_hub **out);
/* Every stream must have been freed. Leaves the store without a feed. */
void watch_hub_free(watch_hub *h);
/* The store to watch, at start and whenever a new one replaced it (node_set_store_listener):
 * the feed moves to it and every watcher catches up from its next revision there. The
 * previous store may already be closed: it is not touched. */
void watch_hub_set_store(watch_hub *h, mvcc *store);

/* One catch-up pass over the unsynced watchers (the timer's work; bounded). */
void watch_hub_sync(watch_hub *h);
/* One progress_notify round (the timer's work). */
void watch_hub_progress(watch_hub *h);

typedef struct watch_hub_stats {
    size_t streams, watchers, synced, unsynced;
    uint64_t responses, events;   /* sent so far (event responses; events in them) */
} watch_hub_stats;
void watch_hub_get_stats(const watch_hub *h, watch_hub_stats *st);

/* How the hub answers one stream. */
typedef struct watch_stream_ops {
    /* Sends one WatchResponse given packed: the concatenation of parts[0..n). 0, or CE_* =
     * the stream is gone (nothing more is sent to it). */
    int (*send)(void *ctx, const ProtobufCBinaryData *parts, size_t n);
    /* Response bytes queued and not yet taken by the peer. */
    size_t (*pending)(void *ctx);
} watch_stream_ops;

int watch_stream_new(watch_hub *h, const watch_stream_ops *ops, void *ctx,
                     watch_stream **out);
/* Ends every watcher of the stream (no responses). */
void watch_stream_free(watch_stream *s);
/* Handles one WatchRequest (create, cancel, progress; anything else is ignored, as etcd
 * does). 0, or CE_* when the stream cannot go on (out of memory, or gone). */
int watch_stream_request(watch_stream *s, const Etcdserverpb__WatchRequest *req);
/* Answers a create the service refused (e.g. an invalid auth token) as etcd does: created
 * and canceled at once, with reason. 0 or CE_*. */
int watch_stream_refuse(watch_stream *s, int64_t watch_id, const char *reason);

#endif
