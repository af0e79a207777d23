/*
 * wire.c: the peer-port wire format (cetcd-to-cetcd, TCP), its byte buffers and URL parsing.
 * All integers are little endian.
 *
 * FRAME (every byte on a peer connection belongs to one):
 *     offset  size  field
 *     0       4     N: payload length (<= 4096 until the handshake is done, then <= 64 MiB)
 *     4       1     type (below)
 *     5       4     CRC-32C of the type byte followed by the N payload bytes
 *     9       N     payload
 * A frame with a length over the limit, a bad CRC, an unknown or unexpected type, or a payload
 * that does not decode closes the connection (with a log line); it never crashes anything.
 *
 * PAYLOADS by type:
 *  1 HELLO (dialer -> acceptor, first frame of every connection), 32 bytes:
 *     0 4 magic "CEPT" | 4 2 protocol version (1) | 6 1 kind: 1 raft stream, 2 snapshot,
 *     3 member-list request | 7 1 reserved, 0 | 8 8 sender member id | 16 8 intended
 *     recipient member id | 24 8 cluster id (0 = not known).
 *     A member-list request has sender and recipient 0.
 *  2 HELLO_OK (acceptor -> dialer), 24 bytes:
 *     0 4 magic "CEPT" | 4 2 version | 6 2 reserved, 0 | 8 8 acceptor's member id |
 *     16 8 acceptor's cluster id.
 *  3 ERROR (acceptor -> dialer, then the acceptor closes), 20 + T bytes:
 *     0 4 code (1 version, 2 cluster id mismatch, 3 wrong recipient, 4 unknown sender, 5 busy,
 *     6 member list unavailable, 7 protocol) | 4 8 acceptor's member id | 12 8 acceptor's
 *     cluster id | 20 T UTF-8 text (T <= 256).
 *  4 REMOVED (acceptor -> dialer: "you were removed from the cluster"), 8 bytes:
 *     0 8 acceptor's member id.
 *  5 MSG (stream dialer -> acceptor): one Raft message in the encoding of server/raft/msg.c.
 *  6 SNAP_HEADER (snapshot dialer, first frame after HELLO_OK), 12 + E + M bytes:
 *     0 8 data length L | 8 4 E | 12 E extra (the member list JSON) | 12+E M the MsgSnap in
 *     the msg.c encoding.
 *  7 SNAP_CHUNK: 1..1 MiB data bytes, in order; their lengths add up to L.
 *  8 SNAP_END, 12 bytes: 0 8 L | 8 4 CRC-32C of the L data bytes.
 *  9 SNAP_ACK (snapshot acceptor -> dialer, after the file is fsynced and handed over):
 *     0 1 status (0 stored, 1 failed) | 1 T text.
 * 10 MEMBERS (acceptor -> member-list requester, then close), 8 + J bytes:
 *     0 8 cluster id | 8 J the member list JSON.
 *
 * HANDSHAKE RULES (acceptor): version != 1 -> ERROR 1; the cluster ids differ and neither is
 * 0 -> ERROR 2; recipient != our member id -> ERROR 3; sender in our removed set -> REMOVED;
 * sender not a known peer -> ERROR 4 (the dialer retries with backoff; it may be a member
 * whose addition is not applied here yet); otherwise HELLO_OK, and the connection carries
 * MSG frames (stream) or one snapshot (SNAP_HEADER, SNAP_CHUNK..., SNAP_END; answered by
 * SNAP_ACK). A member-list request (kind 3, ids 0) is answered by MEMBERS or ERROR 6.
 * The dialer sends nothing after HELLO until HELLO_OK arrives.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "crc32c.h"
#include "err.h"
#include "lebytes.h"
#include "log.h"
#include "peer_int.h"

#define ERROR_TEXT_MAX 256

/* ---- frames ---- */

uint8_t *frame_reserve(bytebuf *b, size_t max)
{
    if (bytebuf_reserve(b, FRAME_HDR + max))
        return NULL;
    return b->p + b->len + FRAME_HDR;
}

void frame_commit(bytebuf *b, uint8_t type, size_t n)
{
    uint8_t *h = b->p + b->len;
    uint32_t crc = crc32c(0, &type, 1);

    crc = crc32c(crc, h + FRAME_HDR, n);
    le_put32(h, (uint32_t)n);
    h[4] = type;
    le_put32(h + 5, crc);
    b->len += FRAME_HDR + n;
}

int frame_put(bytebuf *b, uint8_t type, const void *a, size_t an, const void *c, size_t cn)
{
    uint8_t *p = frame_reserve(b, an + cn);

    if (!p)
        return CE_NOMEM;
    if (an)
        memcpy(p, a, an);
    if (cn)
        memcpy(p + an, c, cn);
    frame_commit(b, type, an + cn);
    return 0;
}

int frame_parse(const uint8_t *p, size_t avail, size_t max, frame *f, size_t *need)
{
    uint32_t n, crc;

    if (avail < FRAME_HDR) {
        *need = FRAME_HDR;
        return 0;
    }
    n = le_get32(p);
    if (n > max)
        return CE_CORRUPT;
    if (avail - FRAME_HDR < n) {
        *need = FRAME_HDR + (size_t)n;
        return 0;
    }
    crc = crc32c(0, p + 4, 1);
    crc = crc32c(crc, p + FRAME_HDR, n);
    if (crc != le_get32(p + 5))
        return CE_CORRUPT;
    f->type = p[4];
    f->data = p + FRAME_HDR;
    f->len = n;
    *need = FRAME_HDR;
    return 1;
}

/* ---- handshake and error payloads ---- */

void hello_encode(uint8_t out[HELLO_LEN], const hello *h)
{
    memcpy(out, PEER_MAGIC, 4);
    out[4] = (uint8_t)h->version;
    out[5] = (uint8_t)(h->version >> 8);
    out[6] = h->kind;
    out[7] = 0;
    le_put64(out + 8, h->from);
    le_put64(out + 16, h->to);
    le_put64(out + 24, h->cluster);
}

int hello_decode(const uint8_t *p, size_t len, hello *h)
{
    if (len != HELLO_LEN || memcmp(p, PEER_MAGIC, 4) || p[7])
        return CE_CORRUPT;
    h->version = (uint16_t)(p[4] | p[5] << 8);
    h->kind = p[6];
    h->from = le_get64(p + 8);
    h->to = le_get64(p + 16);
    h->cluster = le_get64(p + 24);
    return 0;
}

void hello_ok_encode(uint8_t out[HELLO_OK_LEN], uint64_t id, uint64_t cluster)
{
    memcpy(out, PEER_MAGIC, 4);
    out[4] = PEER_VERSION & 0xff;
    out[5] = PEER_VERSION >> 8;
    out[6] = out[7] = 0;
    le_put64(out + 8, id);
    le_put64(out + 16, cluster);
}

int hello_ok_decode(const uint8_t *p, size_t len, uint64_t *id, uint64_t *cluster)
{
    if (len != HELLO_OK_LEN || memcmp(p, PEER_MAGIC, 4) || p[4] != PEER_VERSION || p[5] ||
        p[6] || p[7])
        return CE_CORRUPT;
    *id = le_get64(p + 8);
    *cluster = le_get64(p + 16);
    return 0;
}

int error_put(bytebuf *b, uint32_t code, uint64_t id, uint64_t cluster, const char *text)
{
    uint8_t fixed[ERROR_FIXED];
    size_t tl = strlen(text);

    le_put32(fixed, code);
    le_put64(fixed + 4, id);
    le_put64(fixed + 12, cluster);
    return frame_put(b, FR_ERROR, fixed, sizeof(fixed), text,
                     tl > ERROR_TEXT_MAX ? ERROR_TEXT_MAX : tl);
}

int error_decode(const uint8_t *p, size_t len, uint32_t *code, uint64_t *id, uint64_t *cluster,
                 char *buf, size_t buflen)
{
    size_t tl;

    if (len < ERROR_FIXED || buflen == 0)
        return CE_CORRUPT;
    *code = le_get32(p);
    *id = le_get64(p + 4);
    *cluster = le_get64(p + 12);
    tl = len - ERROR_FIXED;
    if (tl >= buflen)
        tl = buflen - 1;
    for (size_t i = 0; i < tl; i++) /* keep log lines printable */
        buf[i] = (p[ERROR_FIXED + i] >= 0x20 && p[ERROR_FIXED + i] < 0x7f)
                     ? (char)p[ERROR_FIXED + i] : '?';
    buf[tl] = 0;
    return 0;
}

const char *peer_error_name(uint32_t code)
{
    static const char *const names[] = {
        "unknown error",          "protocol version mismatch", "cluster ID mismatch",
        "wrong recipient",        "unknown sender",            "busy",
        "member list unavailable", "protocol error",
    };

    return code < sizeof(names) / sizeof(names[0]) ? names[code] : names[0];
}

/* ---- URLs and sockets ---- */

static int copy_part(char *dst, size_t dstlen, const char *src, size_t n)
{
    if (n == 0 || n >= dstlen)
        return CE_INVAL;
    memcpy(dst, src, n);
    dst[n] = 0;
    return 0;
}

int url_parse(const char *url, char *host, size_t hostlen, char *port, size_t portlen)
{
    const char *p, *end, *colon;

    if (!url)
        return CE_INVAL;
    if (strncmp(url, "https://", 8) == 0)
        p = url + 8;
    else if (strncmp(url, "http://", 7) == 0)
        p = url + 7;
    else
        return CE_INVAL;
    end = p + strcspn(p, "/?#");
    if (*p == '[') {
        const char *rb = memchr(p, ']', (size_t)(end - p));
        if (!rb || rb + 1 >= end || rb[1] != ':' || copy_part(host, hostlen, p + 1,
                                                               (size_t)(rb - p - 1)))
            return CE_INVAL;
        colon = rb + 1;
    } else {
        colon = memchr(p, ':', (size_t)(end - p));
        if (!colon || copy_part(host, hostlen, p, (size_t)(colon - p)))
            return CE_INVAL;
    }
    if (copy_part(port, portlen, colon + 1, (size_t)(end - colon - 1)))
        return CE_INVAL;
    for (const char *q = port; *q; q++)
        if (*q < '0' || *q > '9')
            return CE_INVAL;
    if (strtoul(port, NULL, 10) > 65535)
        return CE_INVAL;
    return 0;
}

bool url_is_tls(const char *url)
{
    return url && strncmp(url, "https://", 8) == 0;
}

int socket_for(const struct addrinfo *ai)
{
    return socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
}

void tcp_tune(int fd, unsigned user_timeout_ms)
{
    int one = 1, idle = 5, intvl = 1, cnt = 3;

    /* Best effort: a failure here leaves a working, if slower to notice death, socket. */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    (void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
    if (user_timeout_ms)
        (void)setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms,
                         sizeof(user_timeout_ms));
}
