/*
 * pbutil.h: small helpers over protobuf-c messages, driven by their descriptors.
 */
#ifndef CETCD_PBUTIL_H
#define CETCD_PBUTIL_H

#include <protobuf-c/protobuf-c.h>

/*
 * Drops the unknown fields of msg and of every message inside it. Requests are stripped
 * before they are packed into a Raft entry: protobuf-c keeps some malformed input (field
 * number 0 in a long tag) as an unknown field that it then packs into bytes it refuses to
 * unpack, which would leave an entry in the log that can never be applied.
 */
void pb_strip_unknown(ProtobufCMessage *msg);

#endif
