/*
 * grpcframe.h: the 5-byte length prefix of gRPC messages (gRPC over HTTP/2 "Length-Prefixed-
 * Message"). A request body is a sequence of frames:
 *   byte 0     compressed flag: 0 = plain; 1 = compressed with the grpc-encoding (we accept none)
 *   bytes 1-4  message length, unsigned 32-bit big-endian
 *   bytes 5-   the protobuf message, exactly that many bytes
 */
#ifndef CETCD_GRPCFRAME_H
#define CETCD_GRPCFRAME_H

#include <stddef.h>
#include <stdint.h>

#define GRPCFRAME_HDR 5

/* Parses the frame at the start of buf[0..len). On 0 the message is buf[*msg_off ..
   *msg_off + *msg_len) and the frame takes *consumed bytes. Errors:
   CE_AGAIN         incomplete: *consumed is the whole frame's size once the header is in
                    (so the caller knows how much to wait for), else 0;
   CE_REQ_TOO_LARGE the declared length exceeds max_msg (known from the header alone);
   CE_UNSUPPORTED   the compressed flag is set;
   CE_BAD_PROTO     a flag byte other than 0 or 1.
   Output parameters are only written as described. */
int grpcframe_parse(const uint8_t *buf, size_t len, uint32_t max_msg, size_t *msg_off,
                    size_t *msg_len, size_t *consumed);

/* Writes the 5-byte prefix of an uncompressed message of msg_len bytes into hdr. */
void grpcframe_header(uint8_t hdr[GRPCFRAME_HDR], uint32_t msg_len);

#endif
