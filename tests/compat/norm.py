#!/usr/bin/python3
"""Normalises etcdctl output so that two servers' outputs can be compared byte for byte.

Reads stdin, writes stdout. Only what legitimately differs between implementations (or between two
clusters of the same implementation) is masked, and a mask only applies when the value has the
expected form (a masked number must be a number), so garbage still shows up as a difference:

  --port P=NAME        replace ":P" (a port number) by ":<NAME>" everywhere
  --mask-col COL       in ASCII tables, mask the cells of column COL (header text, e.g. "DB SIZE")
  --mask-key KEY       in JSON lines (any depth), mask the value of KEY

Always applied:
  - tables are re-drawn with cells stripped and separators shortened (column widths depend on
    the masked values);
  - etcdctl's client-side retry warnings ({"level":"warn",...} lines, with timestamps and random
    UUIDs) are reduced to `WARN <error>` (keeps the gRPC code and message);
  - "took = <duration>" in endpoint health text output;
  - -w fields lines "ClusterID" / "MemberID" / "RaftTerm" / "ID" / "Leader" : <number>.
"""
import argparse
import json
import re
import sys

NUM = re.compile(r'^-?\d+$')
DUR = re.compile(r'^\d+(\.\d+)?(ns|µs|us|ms|s|m|h)([0-9.]+(ns|µs|us|ms|s))*$')
SIZE = re.compile(r'^\d+(\.\d+)? ?(B|kB|MB|GB)$')
VER = re.compile(r'^\d+\.\d+\.\d+')


def mask_value(v):
    """Masks one scalar by its form; unknown forms are left as they are."""
    if isinstance(v, bool):
        return v
    if isinstance(v, int):
        return '<N>'
    s = str(v).strip()
    if s == '':
        return s
    if NUM.match(s):
        return '<N>'
    if SIZE.match(s):
        return '<SIZE>'
    if DUR.match(s):
        return '<DUR>'
    if VER.match(s):
        return '<VERSION>'
    return s


def mask_json(obj, keys):
    if isinstance(obj, dict):
        return {k: (mask_value(v) if k in keys and not isinstance(v, (dict, list))
                    else mask_json(v, keys)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [mask_json(v, keys) for v in obj]
    return obj


def table_line(line, state, cols):
    if re.match(r'^\+[-+]+\+$', line):
        state['sep'] += 1
        return '+--+'
    cells = [c.strip() for c in line.strip().strip('|').split('|')]
    if state['header'] is None:
        state['header'] = cells
        return '| ' + ' | '.join(cells) + ' |'
    out = []
    for i, c in enumerate(cells):
        name = state['header'][i] if i < len(state['header']) else ''
        out.append(mask_value(c) if name in cols else c)
    return '| ' + ' | '.join(out) + ' |'


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--port', action='append', default=[])
    ap.add_argument('--mask-col', action='append', default=[])
    ap.add_argument('--mask-key', action='append', default=[])
    a = ap.parse_args()
    ports = [p.split('=', 1) for p in a.port]
    state = {'header': None, 'sep': 0}
    for raw in sys.stdin.read().splitlines():
        line = raw
        for p, name in ports:
            line = re.sub(r':%s\b' % re.escape(p), ':<%s>' % name, line)
        if line.startswith('{"level":'):
            try:
                line = 'WARN ' + json.loads(line).get('error', '?')
            except ValueError:
                pass
            print(line)
            continue
        if line.startswith('+') or line.startswith('|'):
            print(table_line(line, state, set(a.mask_col)))
            continue
        state = {'header': None, 'sep': 0}
        line = re.sub(r'took = \S+', 'took = <DUR>', line)
        line = re.sub(r'^"(ClusterID|MemberID|RaftTerm|ID|Leader)" : \d+$', r'"\1" : <ID>', line)
        if line[:1] in '{[':
            try:
                line = json.dumps(mask_json(json.loads(line), set(a.mask_key)),
                                  separators=(',', ':'), ensure_ascii=False)
            except ValueError:
                pass
        print(line)


if __name__ == '__main__':
    main()
