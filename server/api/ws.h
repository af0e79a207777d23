/*
 * ws.h: the WebSocket bridge of the client port: libwebsockets running in a thread of its own,
 * exchanging whole messages with the main event loop through locked queues.
 *
 * libwebsockets (lws) carries the WebSocket protocol (handshake, framing, masking, ping/pong,
 * close frames). It cannot run on our epoll loop (its foreign-loop support is libuv/libev/glib
 * only), so it gets one service thread per bridge. The transport hands over an accepted socket
 * whose HTTP/1.1 upgrade request it has already read and validated, together with that request
 * head (and any bytes that followed it); lws adopts the socket as if it had read them itself.
 *
 * Threads: every function here is called on the main loop's thread; the callbacks in
 * ws_bridge_ops run there too (from an eventfd watcher on the loop). lws and its callbacks run
 * only on the bridge thread. The two meet in one mutex-protected area per bridge: per socket an
 * outbound queue (main -> lws) and an inbound queue (lws -> main). The main side wakes lws with
 * lws_cancel_service(); lws wakes the main side by writing the eventfd.
 *
 * Ownership: a ws_sock is referenced by both sides. The main side drops its reference with
 * ws_sock_close() (after which it never touches the socket again and gets no more callbacks);
 * the lws side drops its own when the connection is destroyed. The last one frees it.
 *
 * Limits: a message larger than max_msg closes the connection with 1009 (message too big).
 * lws stops reading a socket while WS_IN_HIGH bytes of its messages wait for the main side or
 * WS_OUT_HIGH bytes of its output wait for the client; ws_sock_pending() tells the main side
 * how much output waits, so a producer can hold back (etcd's slow watchers).
 */
#ifndef CETCD_WS_H
#define CETCD_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "evloop.h"

#define WS_IN_HIGH (1u << 20)    /* received bytes waiting for the main loop: stop reading */
#define WS_OUT_HIGH (1u << 20)   /* bytes waiting for the client: stop reading its requests */

typedef struct ws_bridge ws_bridge;
typedef struct ws_sock ws_sock;
typedef struct ws_msg ws_msg;

typedef struct ws_bridge_ops {
    /* One complete message (text or binary) from the client; data is valid during the call. */
    void (*on_message)(void *user, const uint8_t *data, size_t len);
    /* The connection is gone (peer closed, error, or lws refused the handshake). The main
     * side still calls ws_sock_close() to drop its reference. */
    void (*on_closed)(void *user);
} ws_bridge_ops;

/* Starts lws and its thread. max_msg bounds one client message. 0 or CE_*. */
int ws_bridge_new(evloop *loop, const ws_bridge_ops *ops, size_t max_msg, ws_bridge **out);
/* Stops the thread (joining it) and frees everything. Every socket must have been closed
 * with ws_sock_close() before; connections still open on the lws side are dropped. */
void ws_bridge_free(ws_bridge *b);

/* Hands fd (an accepted, non-blocking socket) to lws with the bytes already read from it
 * (the upgrade request head, then anything after it). Takes fd in every case (closes it on
 * error). user is passed to the callbacks. 0 or CE_NOMEM. */
int ws_sock_open(ws_bridge *b, int fd, const void *head, size_t len, void *user, ws_sock **out);

/* An outbound text message of len bytes whose payload the caller fills before sending. */
ws_msg *ws_msg_new(size_t len);
uint8_t *ws_msg_data(ws_msg *m);
void ws_msg_free(ws_msg *m);
/* Queues m (taken in every case) as one text message. */
void ws_sock_send(ws_sock *s, ws_msg *m);
/* Output bytes queued and not yet handed to the socket. */
size_t ws_sock_pending(const ws_sock *s);
/* Drops the main side's reference. flush: send what is queued, then close the TCP
 * connection without a close frame (as etcd's gateway does when a call ends); else close at
 * once. No callback for this socket follows. */
void ws_sock_close(ws_sock *s, bool flush);

#endif
