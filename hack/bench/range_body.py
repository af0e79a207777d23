#!/usr/bin/python3
"""Writes one gRPC-framed etcdserverpb.RangeRequest for h2load: range_body.py OUT KEY SERIALIZABLE

SERIALIZABLE is 0 (linearizable read, the default) or 1 (serializable: the member's local store).
Wire format (gRPC length-prefixed message, then protobuf):
  byte 0      compressed flag = 0
  bytes 1..4  message length, big-endian u32
  message     RangeRequest: field 1 key (tag 0x0a, one-byte length: keys here are < 128 bytes,
              bytes), then, when serializable, field 7 serializable (tag 0x38, varint 1)
h2load sends this same body on every request: every request reads the same single key.
"""
import struct
import sys


def main():
    out, key, serializable = sys.argv[1], sys.argv[2].encode(), sys.argv[3] == '1'
    if len(key) >= 128:
        sys.exit('range_body.py: key must be shorter than 128 bytes')
    msg = b'\x0a' + bytes([len(key)]) + key
    if serializable:
        msg += b'\x38\x01'
    with open(out, 'wb') as f:
        f.write(b'\x00' + struct.pack('>I', len(msg)) + msg)


if __name__ == '__main__':
    main()
