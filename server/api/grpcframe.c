/*
 * grpcframe.c: parses and writes the 5-byte gRPC message prefix (format in grpcframe.h).
 * Pure functions over caller buffers; no allocation. Invariant: a successful parse never
 * reports a message reaching past len, whatever the declared length.
 */
#include "server/api/grpcframe.h"

#include "common/err.h"

int grpcframe_parse(const uint8_t *buf, size_t len, uint32_t max_msg, size_t *msg_off,
                    size_t *msg_len, size_t *consumed)
{
    *consumed = 0;
    if (len < GRPCFRAME_HDR)
        return CE_AGAIN;
    if (buf[0] > 1)
        return CE_BAD_PROTO;
    if (buf[0] == 1)
        return CE_UNSUPPORTED;
    uint32_t n = (uint32_t)buf[1] << 24 | (uint32_t)buf[2] << 16 | (uint32_t)buf[3] << 8 | buf[4];
    if (n > max_msg)
        return CE_REQ_TOO_LARGE;
    size_t total = (size_t)GRPCFRAME_HDR + n;
    *consumed = total;
    if (len < total)
        return CE_AGAIN;
    *msg_off = GRPCFRAME_HDR;
    *msg_len = n;
    return 0;
}

void grpcframe_header(uint8_t hdr[GRPCFRAME_HDR], uint32_t msg_len)
{
    hdr[0] = 0;
    hdr[1] = (uint8_t)(msg_len >> 24);
    hdr[2] = (uint8_t)(msg_len >> 16);
    hdr[3] = (uint8_t)(msg_len >> 8);
    hdr[4] = (uint8_t)msg_len;
}
