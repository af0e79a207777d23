/*
 * peer.h: the member-to-member transport of the peer port (2380): Raft messages, snapshot
 * streaming, and the member-list request of a joining member. cetcd-to-cetcd only (it does not
 * speak etcd's rafthttp); the wire format is documented byte by byte at the top of wire.c.
 *
 * Connections. For messages we dial ONE outbound TCP connection per peer and send everything
 * addressed to it on that connection; a peer's messages to us arrive on the connection IT
 * dialed. Each connection starts with a handshake (our id, the intended recipient's id, the
 * cluster id) that the acceptor checks: a cluster-id or recipient mismatch is refused with an
 * error frame, a sender the acceptor removed gets a REMOVED frame (our on_removed runs), an
 * unknown sender (maybe a member whose addition is not applied there yet) is refused and
 * retried. A connection that fails is redialed after a backoff (50 ms doubling to 1 s, reset
 * by a completed handshake), cycling through the peer's URLs. A snapshot goes on its own
 * connection so heartbeats never wait behind it.
 *
 * Batching. peer_send() only encodes the message into the connection's output buffer; the
 * buffers are written out (one send() per peer for everything queued in a loop iteration) by
 * peer_flush(), which the node should call at the end of its flush hook, and, as a safety net,
 * by a 0 ms timer that runs after the iteration's I/O callbacks. (A timer rather than a flush
 * hook of our own: evloop cannot remove a flush hook, and a transport may be freed before its
 * loop.)
 *
 * Handler rule: handlers run only from the loop's callbacks, never from inside a peer_* call.
 * A handler may call peer_send, peer_send_snapshot, peer_add, peer_remove and the accessors,
 * but must not call peer_free. After peer_free no handler is called.
 *
 * Threads: a transport belongs to its loop's thread. Host names in peer URLs are resolved on a
 * short-lived helper thread (never blocking the loop); numeric addresses are used directly.
 */
#ifndef CETCD_PEER_H
#define CETCD_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "evloop.h"
#include "raft/raft.h"

typedef struct peer_transport peer_transport;

typedef struct peer_handlers {
    void *ctx;
    /* A Raft message from a known peer, addressed to us (m->to == member_id, m->from == the
     * sender of the handshake). Decoded; valid during the call only. */
    void (*on_msg)(void *ctx, const raft_msg *m);
    /* A snapshot arrived completely and its file was fsynced (the directory entry was not:
     * the handler renames the file and syncs the directory). `m` is its MsgSnap, `extra` the
     * side payload the sender attached, `path` a file in snap_dir holding the data; the handler
     * owns the file from now on (renames or unlinks it). NULL handler: the file is unlinked. */
    void (*on_snapshot)(void *ctx, const raft_msg *m, const uint8_t *extra, size_t extra_len,
                        const char *path);
    /* A snapshot accepted by peer_send_snapshot finished: ok = the receiver stored it and
     * acknowledged; false on any failure or timeout. Called exactly once per accepted send
     * (unless peer_free comes first). The node calls raft_report_snapshot. */
    void (*on_snapshot_sent)(void *ctx, uint64_t to, bool ok);
    /* Messages to `id` were dropped (disconnected, queue full, or a connection with queued
     * messages was lost). At most once per peer per loop iteration. The node calls
     * raft_report_unreachable. */
    void (*on_unreachable)(void *ctx, uint64_t id);
    /* A peer told us we were removed from the cluster. Called once per transport. */
    void (*on_removed)(void *ctx);
    /* A joining member asks for the member list: fill *json (malloc'd, NUL-terminated; the
     * transport frees it) and return 0, or return CE_* to refuse. NULL: always refused. */
    int (*members_json)(void *ctx, char **json);
} peer_handlers;

typedef struct peer_config {
    uint64_t member_id;                /* != 0 */
    uint64_t cluster_id;               /* 0 = not known yet (accepts any; see wire.c) */
    const char *const *listen_urls;    /* "http://host:port"; port 0 = any free port */
    int nlisten;                       /* 0..PEER_MAX_LISTEN; 0 = dial only */
    const char *snap_dir;              /* existing directory for incoming snapshot files
                                        * (NULL: incoming snapshots are refused) */
    peer_handlers h;
    /* Peer TLS (--peer-cert-file etc., api/tls.h): tls_server for https:// listen URLs,
     * tls_client for dialing https:// peer URLs; NULL: an https:// URL is refused. Read
     * during peer_new only. */
    const struct tls_files *tls_server;
    const struct tls_files *tls_client;
} peer_config;

#define PEER_MAX_LISTEN 8
#define PEER_QUEUE_MSGS 4096           /* per peer: messages queued and not yet written */
#define PEER_QUEUE_BYTES (64u << 20)   /* per peer: bytes queued and not yet written */

/* Binds and listens on every listen URL (host names resolved here, blocking: call before the
 * loop runs). https:// URLs without cfg->tls_server are refused with CE_UNSUPPORTED; bad TLS
 * files and malformed URLs CE_INVAL; bind failures CE_IO etc. (each logged). */
int peer_new(evloop *loop, const peer_config *cfg, peer_transport **out);
/* Closes every connection and listener; pending snapshot sends end without callbacks. */
void peer_free(peer_transport *t);

/* The port listener i (in listen_urls order) is bound to, or -1. */
int peer_listen_port(const peer_transport *t, int i);

/* Adds a peer and starts dialing it, or replaces the URLs of a known one (redialing if its
 * connection uses a URL no longer listed). Clears `id` from the removed set. Our own id is
 * ignored (0). CE_INVAL for id 0, no URLs or a malformed URL; CE_UNSUPPORTED for an https://
 * URL without tls_client (logged). */
int peer_add(peer_transport *t, uint64_t id, const char *const *urls, int nurls);
/* Forgets a peer: drops its queue and connections (in and out; its snapshot sends report
 * false) and remembers the id as removed: its future handshakes get a REMOVED frame. */
void peer_remove(peer_transport *t, uint64_t id);
/* Sets the cluster id sent in (and checked against) future handshakes. */
void peer_set_cluster_id(peer_transport *t, uint64_t cluster_id);

/* Queues m for m->to. 0 = queued; CE_NOTFOUND = `to` unknown or removed (dropped, logged at
 * most once a minute); CE_AGAIN = dropped because the peer is unreachable or its queue is
 * full (on_unreachable follows); CE_INVAL = unencodable message. Never blocks. */
int peer_send(peer_transport *t, const raft_msg *m);
/* Writes out what peer_send queued (as far as the sockets take it; the rest goes when they
 * are writable). Cheap when nothing is queued. Calls no handler. */
void peer_flush(peer_transport *t);

/* Streams a snapshot to m->to on a connection of its own: the MsgSnap, `extra` (copied), then
 * `len` bytes read from data_fd's current position. The transport owns data_fd from the call
 * on, even on error, and closes it. 0 = accepted, on_snapshot_sent reports the end;
 * CE_NOTFOUND (unknown peer), CE_INVAL (not a MsgSnap, or too large an extra), CE_NOMEM:
 * on_snapshot_sent is not called. */
int peer_send_snapshot(peer_transport *t, const raft_msg *m, const uint8_t *extra,
                       size_t extra_len, int data_fd, uint64_t len);

/* Our connection to id has completed its handshake and is up now. */
bool peer_is_active(const peer_transport *t, uint64_t id);
/* Per-peer traffic for /metrics: up to max entries into out, their number returned. */
typedef struct peer_stats {
    uint64_t id;
    uint64_t sent_bytes, recv_bytes;   /* since the peer was added */
    bool active;                       /* its stream connection is up */
} peer_stats;
size_t peer_get_stats(const peer_transport *t, peer_stats *out, size_t max);
/* evloop_now_ms() when that connection came up; 0 if not active. */
uint64_t peer_active_since_ms(const peer_transport *t, uint64_t id);

/* Blocking (start-up of a member joining an existing cluster, before the loop runs): connects
 * to a peer URL and asks for the member list; *json malloc'd (NUL-terminated), *cluster_id
 * set. 0; CE_TIMEOUT when timeout_ms passed; CE_UNREACHABLE (refused, closed, or the peer
 * declined); CE_CORRUPT (bad answer); CE_INVAL / CE_UNSUPPORTED (bad or https URL). */
int peer_fetch_members(const char *url, int timeout_ms, char **json, uint64_t *cluster_id);
/* The same over TLS for an https:// URL (tls: the client side files, as tls_client above;
 * NULL: https:// is CE_UNSUPPORTED). */
int peer_fetch_members_tls(const char *url, const struct tls_files *tls, int timeout_ms,
                           char **json, uint64_t *cluster_id);

#endif
