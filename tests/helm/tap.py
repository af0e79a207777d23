"""tap.py: the TAP-style reporter the chart checks share: `ok N - name` / `not ok N - name`
with the detail indented under a failure, and the closing `N passed, M failed` line that
tests/run.sh and the suite scripts count. Numbering starts at $T_NUM_START (default 0), so
several scripts of one suite can number on from each other."""
import os
import sys

N = {"n": int(os.environ.get("T_NUM_START", "0")), "pass": 0, "fail": 0}


def report(name, ok, detail=""):
    N["n"] += 1
    if ok:
        N["pass"] += 1
        print("ok %d - %s" % (N["n"], name))
    else:
        N["fail"] += 1
        print("not ok %d - %s" % (N["n"], name))
        for line in str(detail).splitlines():
            print("#   " + line)
    return ok


def finish():
    """Prints the count line and exits 1 if anything failed."""
    print("%d passed, %d failed" % (N["pass"], N["fail"]))
    sys.exit(1 if N["fail"] else 0)
