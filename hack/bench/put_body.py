#!/usr/bin/python3
"""Writes one gRPC-framed etcdserverpb.PutRequest for h2load: put_body.py OUT KEY VALUE_SIZE

Wire format (gRPC length-prefixed message, then protobuf):
  byte 0      compressed flag = 0
  bytes 1..4  message length, big-endian u32
  message     PutRequest: field 1 key (tag 0x0a, varint length, bytes),
                          field 2 value (tag 0x12, varint length, bytes)
h2load sends this same body on every request, so every put hits the same key (a new revision
each time): that measures the write path, not key-space growth.
"""
import struct
import sys


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7f
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(tag, data):
    return bytes([tag]) + varint(len(data)) + data


def main():
    out, key, size = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3])
    msg = field(0x0a, key) + field(0x12, b'v' * size)
    with open(out, 'wb') as f:
        f.write(b'\x00' + struct.pack('>I', len(msg)) + msg)


if __name__ == '__main__':
    main()
