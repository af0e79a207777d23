#!/usr/bin/python3
"""JSON shape comparator for the gateway suite.

The shape of a JSON document is the set of its field paths, each with the JSON type of its value
(object, array, string, number, bool, null); values themselves are masked. Array elements share
the path `parent[]`, so an array contributes the union of its elements' shapes. An int64 encoded
as a string (grpc-gateway's convention) has type string; as a bare number, type number: the
comparison therefore also checks the encoding.

  jshape.py FILE                 print the shape, one `path<TAB>type` per line, sorted
  jshape.py REF SUT [--superset] compare: identical shapes (or, with --superset, SUT may add
                                 paths); prints `- path type` (missing in SUT) and `+ path type`
                                 (extra in SUT); exit 1 on any difference, 2 on unparsable input.
"""
import json
import sys


def jtype(v):
    if isinstance(v, bool):
        return 'bool'
    if v is None:
        return 'null'
    if isinstance(v, (int, float)):
        return 'number'
    if isinstance(v, str):
        return 'string'
    if isinstance(v, list):
        return 'array'
    return 'object'


def shape(v, path='$', out=None):
    out = set() if out is None else out
    out.add((path, jtype(v)))
    if isinstance(v, dict):
        for k, sub in v.items():
            shape(sub, path + '.' + k, out)
    elif isinstance(v, list):
        for sub in v:
            shape(sub, path + '[]', out)
    return out


def load(path):
    with open(path, 'rb') as f:
        data = f.read()
    try:
        return json.loads(data)
    except ValueError as e:
        sys.stderr.write('%s: not JSON (%s): %r\n' % (path, e, data[:200]))
        sys.exit(2)


def main(argv):
    if len(argv) == 2:
        for p, t in sorted(shape(load(argv[1]))):
            print('%s\t%s' % (p, t))
        return 0
    ref, sut = shape(load(argv[1])), shape(load(argv[2]))
    superset = '--superset' in argv[3:]
    missing = sorted(ref - sut)
    extra = [] if superset else sorted(sut - ref)
    for p, t in missing:
        print('- %s %s' % (p, t))
    for p, t in extra:
        print('+ %s %s' % (p, t))
    return 1 if missing or extra else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
