#!/usr/bin/env bash
# cetcdctl.sh: runs the same etcdctl commands with Debian's etcdctl 3.4 and with cetcdctl
# against one server and diffs stdout, stderr (minus etcdctl's zap log lines) and exit codes.
#
#   tests/compat/cetcdctl.sh ENDPOINT [CETCDCTL]      e.g. 127.0.0.1:2379 bin/cetcdctl
#
# Every case has a setup (run with etcdctl, output discarded) that puts the key space into the
# same state before each tool runs, so only revisions, lease IDs and timings differ; those are
# masked. The server's keys are all deleted by the setups: use a scratch server.
# Streaming cases (watch, lease keep-alive; function tw) run the tool in the background with a
# fifo as its stdin, act on the server while it runs, wait (bounded polling, never a blind
# sleep) for the output they expect, and end it by its PID, by closing its stdin, or let it end.
# Snapshots: `snapshot status` of a real etcd 3.4 snapshot (tests/unit/data/snapshot/etcd34.db)
# is compared in every format; cetcd's own extensions, which etcdctl has not (refusing a truncated
# or altered file, the backup mode `save --dir --prefix --retention --result-file`), are checked
# by own_snapshot_checks against expectations instead (function ok), on either server.
# Exit status: 0 if every case matched, 1 otherwise. CASE=<substring> runs matching cases only.
set -uo pipefail

EP=${1:?usage: $0 ENDPOINT [CETCDCTL]}
CET=${2:-bin/cetcdctl}
REF="etcdctl --endpoints=$EP"
export ETCDCTL_API=3
TMP=$(mktemp -d)
# a streaming case still running when the script is stopped (its subshell acting on the server,
# its tool) is ended too
trap 'kill_stream; rm -rf "$TMP"' EXIT
kill_stream() {
    local f
    for f in "$TMP/stream.sh.pid" "$TMP/stream.pid"; do
        [ -f "$f" ] && kill -KILL "$(cat "$f")" 2>/dev/null
    done
    true
}
pass=0
fail=0

reset_keys() {
    $REF alarm disarm >/dev/null
    $REF del "" --from-key >/dev/null
    for l in $($REF lease list | tail -n +2); do $REF lease revoke "$l" >/dev/null; done
    $REF put k1 v1 >/dev/null
    $REF put k2 v2 >/dev/null
    $REF put k3 v3 >/dev/null
    $REF put other o >/dev/null
}

# mask MODE < in > out: MODE is "" (ids, revisions), "digits" (also every digit) or "loose"
# (also squeeze runs of spaces and dashes, for tables with timing columns).
mask() {
    local s='s/"(revision|create_revision|mod_revision|raftIndex|raftAppliedIndex|dbSize|dbSizeInUse|ID|id|lease|ttl|compact_revision|hash|CompactRevision)":-?[0-9]+/"\1":N/g
s/lease [0-9a-f]{16}/lease L/g
s/^[0-9a-f]{16}$/L/
s/"took":"[^"]*"/"took":"T"/g
s/took = [0-9.]+[µmn]?s/took = T/g
s/remaining\([0-9]+s\)/remaining(Ns)/g
s/compacted revision [0-9]+/compacted revision N/g
s/progress notify: [0-9]+/progress notify: N/
s/^(cetcdctl|etcdctl) /ctl /
s/"cetcdctl"/"etcdctl"/g
s/\x27cetcdctl --help\x27/\x27etcdctl --help\x27/g'
    case $1 in
    digits) s="$s
s/[0-9]/N/g" ;;
    loose) s="$s
s/[0-9.]+[µmn]?s/T/g
s/ +/ /g
s/-+/-/g" ;;
    esac
    sed -E "$s"
}

run_tool() { # TOOL SETUP CMD OUTPREFIX
    local tool=$1 setup=$2 cmd=$3 out=$4
    reset_keys
    (
        CTL="$tool --endpoints=$EP"
        eval "$setup" >/dev/null 2>&1
        eval "$cmd"
    ) >"$out.stdout" 2>"$out.stderr" </dev/null
    echo "rc=$?" >>"$out.stdout"
    grep -v '^{"level"' "$out.stderr" >"$out.stderr2" || true
}

# ---- streaming cases
# tw NAME MASK SETUP CMD ACTIONS END [FILTER]
#   SETUP    etcdctl commands run first (they may set R, a revision to watch from, or L, a lease)
#   CMD      the tool's command line, one simple command (it is exec'd, so that its PID is the
#            tool's: set variables with `env V=x $CTL ...`); its stdin is the fifo `send LINE`
#            writes to
#   ACTIONS  run while it runs: etcdctl commands, `send`, `await_out ERE [N]` (waits until N
#            lines of its stdout+stderr match), `mark KEY` (for a watch from "now": puts KEY until
#            the watch shows it, so the watch is known to be established; the marker events are
#            then cut from the output with FILTER `unmark KEY`)
#   END      kill (SIGTERM to its PID), eof (close its stdin) or exit (it ends by itself)
#   FILTER   applied to its stdout before the comparison (default: cat)
# Every wait is bounded (10 s); a timeout is written into the compared output, so it fails.
send() { printf '%s\n' "$1" >&7; }
await_out() {
    local n=${2:-1}
    for _ in $(seq 200); do
        [ "$(cat "$OUT.stdout" "$OUT.stderr" 2>/dev/null | grep -cE -- "$1")" -ge "$n" ] && return 0
        sleep 0.05
    done
    echo "await_out: timed out waiting for $n x '$1'" >>"$OUT.harness"
    return 1
}
mark() {
    local b64
    b64=$(printf %s "$1" | base64)
    for _ in $(seq 10); do
        $REF put "$1" m >/dev/null
        for _ in $(seq 20); do
            grep -qxF -- "$1" "$OUT.stdout" 2>/dev/null && return 0
            grep -qF -- "\"$b64\"" "$OUT.stdout" 2>/dev/null && return 0
            sleep 0.05
        done
    done
    echo "mark: $1 never shown" >>"$OUT.harness"
    return 1
}
# unmark KEY: drops the watch responses about KEY (simple: PUT, [KEY, value,] KEY, value;
# json: the response's line)
unmark() {
    local b64
    b64=$(printf %s "$1" | base64)
    awk -v k="$1" -v b="\"$b64\"" '
        index($0, b) { next }
        skip > 0 { skip--; next }
        again && $0 == k { skip = 1; again = 0; next }
        { again = 0 }
        $0 == k && n > 0 && line[n] == "PUT" { n--; skip = 1; again = 1; next }
        { line[++n] = $0 }
        END { for (i = 1; i <= n; i++) print line[i] }'
}

run_stream() { # TOOL SETUP CMD ACTIONS END FILTER OUTPREFIX
    local tool=$1 setup=$2 cmd=$3 actions=$4 end=$5 filter=$6 out=$7
    reset_keys
    rm -f "$TMP/in" "$out".*
    : >"$out.harness"
    mkfifo "$TMP/in"
    (
        echo "$BASHPID" >"$TMP/stream.sh.pid"
        exec 7<>"$TMP/in"
        CTL="$tool --endpoints=$EP"
        OUT=$out
        eval "$setup" >/dev/null 2>&1
        eval "exec $cmd" <"$TMP/in" >"$out.stdout" 2>"$out.stderr" 7>&- &
        pid=$! # the tool's own PID: the background shell became it (exec)
        echo "$pid" >"$TMP/stream.pid"
        eval "$actions" >/dev/null
        case $end in
        kill) kill -TERM "$pid" 2>/dev/null ;;
        eof) exec 7>&- ;;
        esac
        for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
        if kill -0 "$pid" 2>/dev/null; then
            echo "still running after 10 s: killed" >>"$out.harness"
            kill -KILL "$pid"
        fi
        wait "$pid"
        echo "rc=$?" >"$out.rc"
        rm -f "$TMP/stream.pid" "$TMP/stream.sh.pid"
    )
    eval "${filter:-cat}" <"$out.stdout" >"$out.filtered"
    cat "$out.rc" >>"$out.filtered"
    grep -v '^{"level"' "$out.stderr" >"$out.stderr2" || true
    cat "$out.harness" >>"$out.stderr2"
    mv "$out.filtered" "$out.stdout"
}

tw() { # NAME MASK SETUP CMD ACTIONS END [FILTER]
    local name=$1 m=$2 setup=$3 cmd=$4 actions=$5 end=$6 filter=${7:-}
    [ -n "${CASE:-}" ] && [[ $name != *"$CASE"* ]] && return
    run_stream etcdctl "$setup" "$cmd" "$actions" "$end" "$filter" "$TMP/ref"
    run_stream "$CET" "$setup" "$cmd" "$actions" "$end" "$filter" "$TMP/new"
    compare "$name" "$m" "$cmd"
}

# The revision of the last change (after reset_keys: the put of "other").
cur_rev() { $REF get other -w json | sed 's/.*"revision":\([0-9]*\).*/\1/'; }

# Features later issues deliver. Each is probed once against the server under test; a case that
# needs one the server does not have yet is reported as skipped, with the issue that brings it,
# and runs by itself as soon as the feature is there. A server answering anything but
# "unimplemented" has the feature, and then its cases must match etcdctl exactly.
declare -A PENDING=()
probe() { # FEATURE REASON CMD...
    local f=$1 why=$2 out; shift 2
    out=$("$@" 2>&1)
    if grep -qiE 'Unimplemented|unknown service|unknown method|Not Implemented' <<<"$out"; then
        PENDING[$f]=$why
    fi
}
feature_of() {
    case $1 in
        *-bad | put-bad-lease | member-add-noargs) ;;   # refused by the CLI itself
        member-remove* | member-promote* | member-add* | member-update*) echo member ;;
        move-leader-self) echo moveleader ;;
        snapshot*) echo snapshot ;;
    esac
}
skipped=0

t() { # NAME MASK SETUP CMD
    local name=$1 m=$2 setup=$3 cmd=$4 f
    [ -n "${CASE:-}" ] && [[ $name != *"$CASE"* ]] && return
    f=$(feature_of "$name")
    if [ -n "$f" ] && [ -n "${PENDING[$f]:-}" ]; then
        skipped=$((skipped + 1))
        echo "SKIP: $name: the server does not serve ${PENDING[$f]} yet"
        return
    fi
    run_tool etcdctl "$setup" "$cmd" "$TMP/ref"
    run_tool "$CET" "$setup" "$cmd" "$TMP/new"
    compare "$name" "$m" "$cmd"
}

compare() { # NAME MASK CMD: the two runs' outputs, masked
    cat "$TMP/ref.stdout" "$TMP/ref.stderr2" | mask "$2" >"$TMP/ref.all"
    cat "$TMP/new.stdout" "$TMP/new.stderr2" | mask "$2" >"$TMP/new.all"
    if cmp -s "$TMP/ref.all" "$TMP/new.all"; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
        echo "FAIL: $1: $3"
        diff -u "$TMP/ref.all" "$TMP/new.all" | sed 's/^/    /' | head -40
    fi
}

# shellcheck disable=SC2034 # used by the cases' commands (eval'd)
FIXTURE=$(cd "$(dirname "$0")/../unit/data/snapshot" && pwd)/etcd34.db

# ok NAME CONDITION...: one own check (not a comparison with etcdctl)
ok() {
    local name=$1
    shift
    if "$@"; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
        echo "FAIL: $name"
        [ -f "$TMP/own.out" ] && sed 's/^/    /' "$TMP/own.out" | head -20
    fi
}
PYJ=/usr/bin/python3

# file_ok FILE: whole pages plus a trailing sha256 of everything before it
file_ok() {
    $PYJ - "$1" <<'PY'
import hashlib, sys
d = open(sys.argv[1], 'rb').read()
sys.exit(0 if len(d) % 512 == 32 and hashlib.sha256(d[:-32]).digest() == d[-32:] else 1)
PY
}

# result_ok LINE DIR PREFIX: the backup result line names an existing file in DIR, and every
# field agrees with the file (revision in its name and from status, size, sha256, time)
result_ok() {
    $PYJ - "$1" "$2" "$3" "$CET" <<'PY'
import hashlib, json, os, re, subprocess, sys
line, d, prefix, cet = sys.argv[1:5]
r = json.loads(line)
m = re.fullmatch(re.escape(prefix) + r'-(\d{8})T(\d{6})Z-r(\d+)\.db', r['file'])
assert m, r
data = open(os.path.join(d, r['file']), 'rb').read()
assert r['size'] == len(data), (r['size'], len(data))
assert r['sha256'] == data[-32:].hex() == hashlib.sha256(data[:-32]).hexdigest()
assert int(m.group(3)) == r['revision'], r
st = json.loads(subprocess.run([cet, 'snapshot', 'status', os.path.join(d, r['file']), '-w', 'json'],
                               capture_output=True, text=True, check=True).stdout)
assert st['revision'] == r['revision'], (st, r)
t = m.group(1) + m.group(2)
assert r['time'] == '%s-%s-%sT%s:%s:%sZ' % (t[0:4], t[4:6], t[6:8], t[8:10], t[10:12], t[12:14]), r
assert isinstance(r['deleted'], list)
PY
}

own_snapshot_checks() {
    [ -n "${CASE:-}" ] && [[ snapshot-own != *"$CASE"* ]] && return
    if [ -n "${PENDING[snapshot]:-}" ]; then
        skipped=$((skipped + 1))
        echo "SKIP: snapshot-own: the server does not serve ${PENDING[snapshot]} yet"
        return
    fi
    local C="$CET --endpoints=$EP" d=$TMP/own rev st line n f
    local -a lines=()
    rm -rf "$d"
    mkdir -p "$d/bk"
    reset_keys
    # save: a verified file whose status revision is the server's
    $C snapshot save "$d/s.db" >"$TMP/own.out" 2>&1
    ok snapshot-own-save-exit test "$?" = 0
    ok snapshot-own-save file_ok "$d/s.db"
    ok snapshot-own-nopart test ! -e "$d/s.db.part"
    rev=$(cur_rev)
    st=$($C snapshot status "$d/s.db" -w json 2>"$TMP/own.out")
    ok snapshot-own-status-exit test "$?" = 0 -a ! -s "$TMP/own.out"
    ok snapshot-own-status-rev test "$($PYJ -c 'import json,sys; print(json.loads(sys.argv[1])["revision"])' "$st" 2>/dev/null)" = "$rev"
    ok snapshot-own-status-keys test "$($PYJ -c 'import json,sys; print(json.loads(sys.argv[1])["totalKey"] > 0)' "$st" 2>/dev/null)" = True
    # a truncated file and one with a flipped byte are refused, saying so
    head -c 10000 "$d/s.db" >"$d/trunc.db"
    $C snapshot status "$d/trunc.db" >"$TMP/own.out" 2>&1
    ok snapshot-own-truncated test "$?" = 1 -a -n "$(grep 'Error: snapshot file is truncated' "$TMP/own.out")"
    cp "$d/s.db" "$d/flip.db"
    printf '\x5a' | dd of="$d/flip.db" bs=1 seek=6000 conv=notrunc 2>/dev/null
    cmp -s "$d/s.db" "$d/flip.db" && printf '\xa5' | dd of="$d/flip.db" bs=1 seek=6000 conv=notrunc 2>/dev/null
    $C snapshot status "$d/flip.db" >"$TMP/own.out" 2>&1
    ok snapshot-own-flipped test "$?" = 1 -a -n "$(grep 'Error: snapshot file is corrupt: sha256 checksum mismatch' "$TMP/own.out")"
    # backup mode: three backups, retention 2, foreign files untouched
    touch "$d/bk/c1-notes.txt" "$d/bk/c10-20200101T000000Z-r5.db" "$d/bk/c1-20200101T000000Z-r5.db.bak" \
        "$d/bk/c1-2020010T1000000Z-r5.db"
    for i in 1 2 3; do
        $REF put "backup$i" "v$i" >/dev/null
        line=$($C snapshot save --dir "$d/bk" --prefix c1 --retention 2 --result-file "$d/result" 2>"$TMP/own.out")
        ok "snapshot-own-backup-$i-exit" test "$?" = 0 -a ! -s "$TMP/own.out"
        ok "snapshot-own-backup-$i" result_ok "$line" "$d/bk" c1
        ok "snapshot-own-backup-$i-resultfile" test "$line" = "$(cat "$d/result")"
        lines+=("$line")
    done
    n=0
    for f in "$d"/bk/c1-*; do
        [[ ${f##*/} =~ ^c1-[0-9]{8}T[0-9]{6}Z-r[0-9]+\.db$ ]] && n=$((n + 1))
    done
    ok snapshot-own-retention test "$n" = 2
    ok snapshot-own-retention-deleted $PYJ -c '
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
assert a["deleted"] == [] and b["deleted"] == [json.loads(sys.argv[3])["file"]], (a, b)' "${lines[1]}" "${lines[2]}" "${lines[0]}"
    ok snapshot-own-foreign-kept test -e "$d/bk/c1-notes.txt" -a -e "$d/bk/c10-20200101T000000Z-r5.db" \
        -a -e "$d/bk/c1-20200101T000000Z-r5.db.bak" -a -e "$d/bk/c1-2020010T1000000Z-r5.db"
    ok snapshot-own-backup-nopart test -z "$(find "$d/bk" -name '*.part')"
    # failures: {"error":...} in the result file, the message on stderr, non-zero exit, no .part
    $CET --endpoints=127.0.0.1:1 --dial-timeout=1s snapshot save --dir "$d/bk" --prefix c1 \
        --result-file "$d/result" >"$TMP/own.out" 2>&1
    ok snapshot-own-fail-exit test "$?" != 0
    ok snapshot-own-fail-stderr grep -q '^Error: ' "$TMP/own.out"
    ok snapshot-own-fail-result $PYJ -c 'import json,sys; r=json.load(open(sys.argv[1])); assert list(r)==["error"] and r["error"]' "$d/result"
    ok snapshot-own-fail-nopart test -z "$(find "$d/bk" -name '*.part')"
    $C snapshot save --dir "$d/nodir" --prefix c1 --result-file "$d/result" >"$TMP/own.out" 2>&1
    ok snapshot-own-fail-nodir test "$?" != 0 -a -n "$(grep 'could not open' "$d/result")"
    $C snapshot save --dir "$d/bk" --prefix c1 --retention x --result-file "$d/result" >"$TMP/own.out" 2>&1
    ok snapshot-own-fail-args test "$?" = 128 -a -n "$(grep retention "$d/result")"
    $C snapshot save --dir "$d/bk" --result-file "$d/result" >"$TMP/own.out" 2>&1
    ok snapshot-own-fail-noprefix test "$?" = 128 -a -n "$(grep prefix "$d/result")"
    rm -f "$TMP/own.out"
}

command -v etcdctl >/dev/null || { echo "etcdctl not found"; exit 2; }
[ -x "$CET" ] || { echo "$CET not executable"; exit 2; }
$REF endpoint health >/dev/null 2>&1 || { echo "no server at $EP"; exit 2; }
probe member "membership changes (issue 3)" $REF member remove 1234
probe moveleader "leader transfer (issue 3)" $REF move-leader 1
probe snapshot "snapshots (issue 7)" $REF snapshot save "$TMP/probe.db"

# ---- put
t put-simple "" "" '$CTL put k1 new'
t put-prev "" "" '$CTL put k1 new --prev-kv'
t put-prev-json "" "" '$CTL put k1 new --prev-kv -w json'
t put-new-prev "" "" '$CTL put fresh x --prev-kv'
t put-stdin "" "" 'printf "line one\n" | $CTL put k1 && $CTL get k1 | od -c'
t put-ignore-value "" "" '$CTL put k1 --ignore-value && $CTL get k1'
t put-ignore-value-missing "" "" '$CTL put nokey --ignore-value'
t put-lease "" 'L=$($REF lease grant 100 | cut -d" " -f2)' '$CTL put k1 lv --lease=$L && $CTL get k1 -w json'
t put-bad-lease "" "" '$CTL put k1 v --lease=zz'
t put-noargs "" "" '$CTL put'
t put-special "" "" '$CTL put "a<b>&\"c" "é\ttab" -w json && $CTL get "a<b>&\"c" -w json'
# ---- get
t get-simple "" "" '$CTL get k1'
t get-json "" "" '$CTL get k1 -w json'
t get-missing-json "" "" '$CTL get nokey -w json'
t get-missing "" "" '$CTL get nokey'
t get-prefix "" "" '$CTL get k --prefix'
t get-prefix-json "" "" '$CTL get k --prefix -w json'
t get-range "" "" '$CTL get k1 k3'
t get-from-key "" "" '$CTL get k2 --from-key'
t get-all "" "" '$CTL get "" --prefix --keys-only'
t get-keys-only "" "" '$CTL get k --prefix --keys-only'
t get-value-only "" "" '$CTL get k --prefix --print-value-only'
t get-limit "" "" '$CTL get k --prefix --limit=2 -w json'
t get-sort "" "" '$CTL get k --prefix --sort-by=VALUE --order=DESCEND'
t get-sort-modify "" "" '$CTL get "" --from-key --sort-by=modify --order=descend'
t get-serializable "" "" '$CTL get k1 --consistency=s'
t get-bad-consistency "" "" '$CTL get k1 --consistency=x'
t get-bad-sort "" "" '$CTL get k1 --sort-by=FOO'
t get-bad-order "" "" '$CTL get k1 --order=UP'
t get-rev "" 'R=$($REF put k1 changed -w json | sed "s/.*\"revision\":\([0-9]*\).*/\1/"); $REF put k1 later' '$CTL get k1 --rev=$R'
t get-future-rev "" "" '$CTL get k1 --rev=99999999'
t get-hex "" "" '$CTL get k1 --hex'
t get-noargs "" "" '$CTL get'
t get-prefix-fromkey "" "" '$CTL get k --prefix --from-key'
t get-prefix-2args "" "" '$CTL get k z --prefix'
t get-table "" "" '$CTL get k1 -w table'
t get-bad-format "" "" '$CTL get k1 -w bogus'
t get-env "" "" 'ETCDCTL_ENDPOINTS=$EP ${CTL%% *} get k1'
t get-http-ep "" "" '${CTL%% *} --endpoints=http://$EP get k1'
# ---- del
t del-one "" "" '$CTL del k1'
t del-missing "" "" '$CTL del nokey'
t del-prev "" "" '$CTL del k1 --prev-kv'
t del-prefix-json "" "" '$CTL del k --prefix --prev-kv -w json'
t del-range "" "" '$CTL del k1 k3'
t del-from-key "" "" '$CTL del k2 --from-key'
t del-noargs "" "" '$CTL del'
# ---- txn
t txn-success "" "" 'printf "mod(\"k1\") > \"0\"\n\nput k2 new\nget k1\n\nput k3 v3\n\n" | $CTL txn'
t txn-failure-json "" "" 'printf "value(\"k1\") = \"zz\"\n\nput k2 v2\n\nget k1\ndel k2\n\n" | $CTL txn -w json'
t txn-interactive "" "" 'printf "val(\"k1\") = \"v1\"\nver(\"k1\") = \"1\"\nc(\"k1\") > \"0\"\nm(\"k1\") != \"0\"\n\nput k2 x --prev-kv\nget k --prefix --keys-only\n\n\n" | $CTL txn -i'
t txn-empty "" "" 'printf "\n\n\n" | $CTL txn'
t txn-no-compare-json "" "" 'printf "\nget k1\ndel k3 --prev-kv\n\n\n" | $CTL txn -w json'
t txn-dup "" "" 'printf "\nput k2 a\ndel k2\n\n\n" | $CTL txn'
t txn-bad-request "" "" 'printf "mod(\"k1\") > \"0\"\n\nfoo k\n\n\n" | $CTL txn'
t txn-eof "" "" '$CTL txn </dev/null'
t txn-eof-partial "" "" 'printf "mod(\"k1\") > \"0\"\n\nput k2 v2\n" | $CTL txn'
t txn-quoted "" "" 'printf "value(\"k1\") = \"v1\"\n\nput \"sp ace\" \"a b\"\nget \"sp ace\"\n\n\n" | $CTL txn'
# ---- fields format (revisions masked)
t fields-get digits "" '$CTL get k --prefix -w fields'
t fields-put digits "" '$CTL put k1 nv --prev-kv -w fields'
t fields-del digits "" '$CTL del k --prefix --prev-kv -w fields'
t fields-txn digits "" 'printf "mod(\"k1\") > \"0\"\n\nput k2 v2\nget k1\ndel k3\n\n\n" | $CTL txn -w fields'
t fields-quote digits "" '$CTL put q "$(printf "a\"b\\\\c\001\tü\xff")" && $CTL get q -w fields'
t fields-lease-grant digits "" '$CTL lease grant 100 -w fields'
t fields-lease-ttl digits 'L=$($REF lease grant 200 | cut -d" " -f2); $REF put k1 v --lease=$L' '$CTL lease timetolive $L --keys -w fields; $CTL lease keep-alive --once $L -w fields; $CTL lease list -w fields; $CTL lease revoke $L -w fields'
t fields-member-list digits "" '$CTL member list -w fields'
t fields-endpoint-status digits "" '$CTL endpoint status -w fields'
t fields-endpoint-health loose "" '$CTL endpoint health -w fields'
# ---- compaction
t compaction "" 'R=$($REF put k9 x -w json | sed "s/.*\"revision\":\([0-9]*\).*/\1/")' '$CTL compaction $R'
t compaction-physical "" 'R=$($REF put k9 x -w json | sed "s/.*\"revision\":\([0-9]*\).*/\1/")' '$CTL compaction $R --physical'
t compaction-future "" "" '$CTL compaction 99999999'
t compaction-compacted "" 'R=$($REF put k9 x -w json | sed "s/.*\"revision\":\([0-9]*\).*/\1/"); $REF compaction $R' '$CTL compaction 1'
t compaction-bad "" "" '$CTL compaction abc'
# ---- lease
t lease-grant "" "" '$CTL lease grant 100'
t lease-grant-json "" "" '$CTL lease grant 100 -w json'
t lease-grant-bad "" "" '$CTL lease grant x'
t lease-ttl "" 'L=$($REF lease grant 200 | cut -d" " -f2); $REF put k1 v --lease=$L; $REF put k2 v --lease=$L' '$CTL lease timetolive $L'
t lease-ttl-keys "" 'L=$($REF lease grant 200 | cut -d" " -f2); $REF put k1 v --lease=$L' '$CTL lease timetolive $L --keys'
# (etcd returns attached keys in map order, so only one key where the order would show)
t lease-ttl-keys-json "" 'L=$($REF lease grant 200 | cut -d" " -f2); $REF put k1 v --lease=$L' '$CTL lease timetolive $L --keys -w json'
t lease-ttl-json "" 'L=$($REF lease grant 200 | cut -d" " -f2)' '$CTL lease timetolive $L -w json'
t lease-ttl-expired "" "" '$CTL lease timetolive 1234 && $CTL lease timetolive 1234 -w json'
t lease-list "" '$REF lease grant 100; $REF lease grant 100' '$CTL lease list | awk "NR == 1"'
t lease-list-empty-json "" "" '$CTL lease list -w json'
t lease-keepalive "" 'L=$($REF lease grant 200 | cut -d" " -f2)' '$CTL lease keep-alive --once $L && $CTL lease keep-alive --once $L -w json'
t lease-keepalive-missing "" "" '$CTL lease keep-alive --once 1234'
t lease-revoke "" 'L=$($REF lease grant 200 | cut -d" " -f2)' '$CTL lease revoke $L'
t lease-revoke-json "" 'L=$($REF lease grant 200 | cut -d" " -f2)' '$CTL lease revoke $L -w json'
t lease-revoke-missing "" "" '$CTL lease revoke 1234'
t lease-revoke-bad "" "" '$CTL lease revoke zz'
t put-lease-empty "" "" '$CTL put k1 v --lease='
t put-lease-missing "" "" '$CTL put k1 v --lease=1234'
t lease-grant-table "" "" '$CTL lease grant 100 -w table; $REF lease list | awk "NR == 1"'
t lease-revoke-table "" 'L=$($REF lease grant 200 | cut -d" " -f2)' '$CTL lease revoke $L -w table; $REF lease list | awk "NR == 1"'
t lease-ttl-table "" 'L=$($REF lease grant 200 | cut -d" " -f2)' '$CTL lease timetolive $L -w table'
t lease-list-table "" '$REF lease grant 100' '$CTL lease list -w table'
t lease-keepalive-once-table "" 'L=$($REF lease grant 200 | cut -d" " -f2)' '$CTL lease keep-alive --once $L -w table; $CTL lease keep-alive --once 1234 -w table'
t lease-keepalive-table "" 'L=$($REF lease grant 200 | cut -d" " -f2)' '$CTL lease keep-alive $L -w table'
t lease-keepalive-gone "" "" '$CTL lease keep-alive 1234; $CTL lease keep-alive 1234 -w json; $CTL lease keep-alive 1234 -w fields; $CTL lease keep-alive 1234 -w table'
t lease-keepalive-noargs "" "" '$CTL lease keep-alive'
t lease-keepalive-unreachable "" "" '${CTL%% *} --endpoints=127.0.0.1:1 --dial-timeout=1s lease keep-alive 1234'
# renewals every TTL/3 until the lease is revoked (uniq: a slow machine may fit in one more)
tw lease-keepalive-stream "" 'L=$($REF lease grant 2 | cut -d" " -f2)' '$CTL lease keep-alive $L' 'await_out keepalived 2; $REF lease revoke $L' exit uniq
tw lease-keepalive-stream-json "" 'L=$($REF lease grant 2 | cut -d" " -f2)' '$CTL lease keep-alive $L -w json' 'await_out TTL 2; $REF lease revoke $L' exit uniq
tw lease-keepalive-stream-fields digits 'L=$($REF lease grant 2 | cut -d" " -f2)' '$CTL lease keep-alive $L -w fields' 'await_out TTL 2; $REF lease revoke $L' exit 'awk "NR <= 6"'
tw lease-keepalive-stream-kill "" 'L=$($REF lease grant 2 | cut -d" " -f2)' '$CTL lease keep-alive $L' 'await_out keepalived 1' kill 'head -1'
# ---- watch: arguments
t watch-noargs "" "" '$CTL watch'
t watch-prefix-range "" "" '$CTL watch k1 k3 --prefix'
t watch-separator "" "" '$CTL watch k1 --'
t watch-separator-nokey "" "" '$CTL watch -- echo hi'
t watch-env-conflict "" "" 'ETCDCTL_WATCH_KEY=k1 $CTL watch k1'
t watch-env-conflict-exec "" "" 'ETCDCTL_WATCH_KEY=k1 $CTL watch k1 -- echo hi'
t watch-env-range-only "" "" 'ETCDCTL_WATCH_RANGE_END="k 3" $CTL watch k1'
t watch-env-prefix-range "" "" 'ETCDCTL_WATCH_KEY=k1 ETCDCTL_WATCH_RANGE_END=k3 $CTL watch --prefix'
t watch-table-noargs "" "" '$CTL watch -w table'
t watch-empty-range "" "" '$CTL watch k3 k1; $CTL watch k3 k1 -w json; $CTL watch k3 k1 -w fields'
# ---- watch: history from --rev (the events are made before the watch starts: one response)
EV='R=$(($(cur_rev) + 1)); $REF put k1 "new v"; $REF put k2 "two\"q"; $REF del k1; $REF put kx "é"; $REF put kend x'
tw watch-rev "" "$EV" '$CTL watch k --prefix --rev=$R' 'await_out "^kend$"' kill
tw watch-rev-json "" "$EV" '$CTL watch k --prefix --rev=$R -w json' 'await_out "a2VuZA=="' kill
tw watch-rev-fields digits "$EV" '$CTL watch k --prefix --rev=$R -w fields' 'await_out "\"kend\""' kill
tw watch-prev-kv "" "$EV" '$CTL watch k --prefix --rev=$R --prev-kv' 'await_out "^kend$"' kill
tw watch-prev-kv-json "" "$EV" '$CTL watch k --prefix --rev=$R --prev-kv -w json' 'await_out "a2VuZA=="' kill
tw watch-prev-kv-fields digits "$EV" '$CTL watch k --prefix --rev=$R --prev-kv -w fields' 'await_out "\"kend\""' kill
tw watch-hex "" "$EV" '$CTL watch k --prefix --rev=$R --prev-kv --hex' 'await_out "^.x6b.x65.x6e.x64$"' kill
tw watch-one-key "" "$EV; $REF put k1 last" '$CTL watch k1 --rev=$R' 'await_out "^last$"' kill
tw watch-range "" "$EV; $REF put k1 last" '$CTL watch k1 k3 --rev=$R' 'await_out "^last$"' kill
tw watch-env "" "$EV; $REF put k1 last" 'env ETCDCTL_WATCH_KEY=k1 ETCDCTL_WATCH_RANGE_END=k3 $CTL watch --rev=$R' 'await_out "^last$"' kill
tw watch-table "" "$EV" '$CTL watch k --prefix --rev=$R -w table' '' exit
# ---- watch: live events from "now" (a marker put shows the watch is established)
LIVE='mark kmark; $REF put k1 live; $REF del k2; $REF put k1 again; $REF put kend x'
tw watch-live "" "" '$CTL watch k --prefix' "$LIVE"'; await_out "^kend$"' kill 'unmark kmark'
tw watch-live-prev-kv "" "" '$CTL watch k --prefix --prev-kv' "$LIVE"'; await_out "^kend$"' kill 'unmark kmark'
tw watch-live-json "" "" '$CTL watch k --prefix -w json' "$LIVE"'; await_out "a2VuZA=="' kill 'unmark kmark'
# ---- watch: canceled by the server (a compacted start revision): etcdctl's message and exit 5
CMP='R=$(cur_rev); $REF put k1 a; $REF put k1 b; $REF compaction $(cur_rev)'
tw watch-compacted "" "$CMP" '$CTL watch k1 --rev=$R' '' exit
tw watch-compacted-json "" "$CMP" '$CTL watch k1 --rev=$R -w json' '' exit
tw watch-compacted-fields digits "$CMP" '$CTL watch k1 --rev=$R -w fields' '' exit
# ---- watch: exec-command per event, ETCD_WATCH_* in its environment
EXE='sh -c "echo \"\$ETCD_WATCH_REVISION \$ETCD_WATCH_EVENT_TYPE \$ETCD_WATCH_KEY \$ETCD_WATCH_VALUE\""'
tw watch-exec digits "$EV" '$CTL watch k --prefix --rev=$R -- '"$EXE" 'await_out "\"kend\" \"x\"$"' kill
tw watch-exec-env digits "$EV" 'env ETCDCTL_WATCH_KEY=k ETCD_WATCH_KEY=stale $CTL watch --prefix --rev=$R -- '"$EXE" 'await_out "\"kend\" \"x\"$"' kill
tw watch-exec-fail "" "$EV" '$CTL watch k1 --rev=$R -- sh -c "exit 3"' '' exit
tw watch-exec-missing "" "$EV" '$CTL watch k1 --rev=$R -- no-such-command-x a' '' exit
tw watch-exec-signal "" "$EV" '$CTL watch k1 --rev=$R -- sh -c "kill -9 \$\$"' '' exit
# ---- watch -i: request lines on stdin, ended by its EOF (exit 3)
tw watch-interactive "" "$EV" '$CTL watch -i' 'send "watch k1 --rev=$R"; await_out "^new v$"; send ""; send "foo bar"; send "watch"; send "watch k1 k3 --prefix"; await_out "mutually exclusive"; send "watch --prefix k --rev $R --prev-kv -- echo \"a  b\""; await_out "^a  b$" 5; send progress; await_out "progress notify" 2' eof
tw watch-i-json "" "$EV" '$CTL watch -i -w json' 'send "watch kend --rev=$R"; await_out a2VuZA==; send "progress"; await_out "progress notify"' eof
tw watch-i-env "" "$EV" 'env ETCDCTL_WATCH_KEY=kend $CTL watch -i' 'send "watch --rev=$R"; await_out "^x$"; send "watch k1"' exit
tw watch-i-eof "" "" '$CTL watch -i' '' eof
tw watch-i-empty-range "" "$EV" '$CTL watch -i' 'send "watch k3 k1"; await_out "range is empty"; send "watch kend --rev=$R"; await_out "^x$"' eof
tw watch-i-bad-rev "" "" '$CTL watch -i' 'send "watch --rev=abc k1"' exit
tw watch-i-bad-flag "" "" '$CTL watch -i' 'send "watch --bogus k1"' exit
tw watch-i-separator "" "" '$CTL watch -i' 'send "watch k1 --"' exit
tw watch-i-noargs "" "" '$CTL watch -i' 'send "watch --prefix"' exit
# ---- cluster
t member-list "" "" '$CTL member list'
t member-list-json "" "" '$CTL member list -w json'
t member-list-table "" "" '$CTL member list -w table'
t member-remove-missing "" "" '$CTL member remove 1234'
t member-promote-missing "" "" '$CTL member promote 1234'
t member-add-noargs "" "" '$CTL member add'
t endpoint-status digits "" '$CTL endpoint status'
t endpoint-status-json digits "" '$CTL endpoint status -w json'
t endpoint-status-table digits "" '$CTL endpoint status -w table'
t endpoint-status-cluster digits "" '$CTL endpoint status --cluster'
t endpoint-health loose "" '$CTL endpoint health'
t endpoint-health-json loose "" '$CTL endpoint health -w json'
t endpoint-health-table loose "" '$CTL endpoint health -w table'
t alarm-list "" "" '$CTL alarm list && $CTL alarm list -w json'
t alarm-disarm "" "" '$CTL alarm disarm && $CTL alarm disarm -w json'
t alarm-table "" "" '$CTL alarm list -w table'
t alarm-active loose 'curl -s http://$EP/v3/maintenance/alarm -d "{\"action\":\"ACTIVATE\",\"memberID\":\"$($REF endpoint status -w json | sed "s/.*\"member_id\":\([0-9]*\).*/\1/")\",\"alarm\":\"NOSPACE\"}"' '$CTL alarm list; $CTL alarm list -w json; $CTL endpoint health; $CTL put x y; $CTL alarm disarm; $CTL alarm list'
t defrag "" "" '$CTL defrag'
t move-leader-self digits "" '$CTL move-leader 1'
t move-leader-bad "" "" '$CTL move-leader zz'
t snapshot "" "" '$CTL snapshot save $TMP/snap.db | sed "s|$TMP|TMP|"; test -s $TMP/snap.db'
t snapshot-save-noargs "" "" '$CTL snapshot save'
t snapshot-save-multi "" "" '${CTL%% *} --endpoints=$EP,$EP snapshot save $TMP/multi.db; ls $TMP/multi.db* 2>&1 | sed "s|$TMP|TMP|"'
t snapshot-save-badpath "" "" '$CTL snapshot save $TMP/nodir/x.db 2>&1 | sed "s|$TMP|TMP|g"; ls $TMP/nodir 2>&1 | sed "s|$TMP|TMP|g"'
# status of a real etcd 3.4 snapshot (the unit tests' fixture): etcd's own numbers, every format
t snapshot-status "" "" '$CTL snapshot status $FIXTURE'
t snapshot-status-json "" "" '$CTL snapshot status $FIXTURE -w json'
t snapshot-status-table "" "" '$CTL snapshot status $FIXTURE -w table'
t snapshot-status-fields "" "" '$CTL snapshot status $FIXTURE -w fields'
t snapshot-status-missing "" "" '$CTL snapshot status $TMP/nofile.db 2>&1 | sed "s|$TMP|TMP|g"'
t snapshot-status-noargs "" "" '$CTL snapshot status; $CTL snapshot status a b'
t unknown-command "" "" '$CTL nosuchcmd'
t unreachable "" "" '${CTL%% *} --endpoints=127.0.0.1:1 --dial-timeout=1s --command-timeout=1s get k1'

# ---- cetcd's own snapshot checks (no etcdctl counterpart: refusals and the backup mode)
own_snapshot_checks

[ "$skipped" -gt 0 ] && echo "# $skipped case(s) skipped until the server has: ${PENDING[*]}"
echo "cetcdctl compat: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
