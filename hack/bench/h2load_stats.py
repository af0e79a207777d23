#!/usr/bin/python3
"""Summarises an h2load run: h2load_stats.py H2LOAD_STDOUT LOG_FILE -> "RPS P99_MS OK FAILED"

RPS is h2load's own "finished in ..., X req/s"; p99 comes from --log-file (tab-separated:
start time in us since the epoch, HTTP status, request duration in us), since h2load prints
no percentiles. OK / FAILED: h2load's succeeded and failed+errored+timeout counts.
"""
import re
import sys


def main():
    text = open(sys.argv[1]).read()
    m = re.search(r'finished in [\d.]+\w*, ([\d.]+) req/s', text)
    rps = float(m.group(1)) if m else 0.0
    m = re.search(r'requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, '
                  r'(\d+) errored, (\d+) timeout', text)
    ok, bad = (int(m.group(1)), sum(int(x) for x in m.groups()[1:])) if m else (0, -1)
    durs = []
    with open(sys.argv[2]) as f:
        for line in f:
            parts = line.split('\t')
            if len(parts) >= 3:
                durs.append(int(parts[2]))
    durs.sort()
    p99 = durs[min(len(durs) - 1, int(len(durs) * 0.99))] / 1000.0 if durs else 0.0
    print('%.1f %.2f %d %d' % (rps, p99, ok, bad))


if __name__ == '__main__':
    main()
