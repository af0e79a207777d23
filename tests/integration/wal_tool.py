#!/usr/bin/python3
"""Damages a cetcd WAL segment on purpose, for wal_corruption.sh.

  wal_tool.py flip SEGMENT     flip one byte inside an entry record in the first half
  wal_tool.py tear SEGMENT N   cut the file N bytes before the end of its last valid record

Both walk the records as documented at the top of server/wal/wal.c: every record is u32 LE
payload length, u8 type (1..5; 3 is an entry), 3 zero bytes, two u32 CRCs, the payload, zero
padding to a multiple of 8. The walk stops at the first thing that is not a record (for instance
a zero-filled, preallocated tail), so "the end of the last valid record" is where real data ends.
flip picks the middle one of the entry records that start after the first 64 bytes and end in
the first half of the file, and flips the middle byte of its payload (covered by the record CRC;
padding is not, so it is avoided); without such a record, offset max(64, size / 4).
tear truncates the file to (end of last record - N), so the last record is cut mid-way (and any
zero tail after it goes too). Each prints the offset it used.
"""
import os
import struct
import sys


def walk(data):
    """Returns [(offset, type, payload_len)] of the leading valid-looking records."""
    size, off, recs = len(data), 0, []
    while off + 16 <= size:
        ln, typ = struct.unpack_from('<IB', data, off)
        if typ not in (1, 2, 3, 4, 5) or data[off + 5:off + 8] != b'\0\0\0' \
                or off + 16 + ln > size:
            break
        recs.append((off, typ, ln))
        off += 16 + ((ln + 7) & ~7)
    return recs


def flip(path):
    with open(path, 'rb') as f:
        data = bytearray(f.read())
    half = len(data) // 2
    recs = walk(data)
    end = recs[-1][0] + 16 + recs[-1][2] if recs else len(data)
    half = min(half, end // 2)
    entries = [(o, ln) for o, t, ln in recs if t == 3 and o >= 64 and o + 16 + ln <= half]
    if entries:
        rec, ln = entries[len(entries) // 2]
        target = rec + 16 + ln // 2
    else:
        target = max(64, len(data) // 4)
    data[target] ^= 0x5a
    with open(path, 'r+b') as f:
        f.write(data)
    return target


def tear(path, n):
    with open(path, 'rb') as f:
        data = f.read()
    recs = walk(data)
    if not recs:
        raise SystemExit('%s: no records' % path)
    off, _, ln = recs[-1]
    cut = off + 16 + ln - n
    os.truncate(path, cut)
    return cut


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == 'flip':
        print(flip(sys.argv[2]))
    elif len(sys.argv) >= 4 and sys.argv[1] == 'tear':
        print(tear(sys.argv[2], int(sys.argv[3])))
    else:
        raise SystemExit(__doc__)


if __name__ == '__main__':
    main()
