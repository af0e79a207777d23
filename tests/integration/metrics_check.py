#!/usr/bin/python3
"""metrics_check.py: checks scraped Prometheus /metrics texts against etcd 3.4's metric names,
types and label names, and evaluates the seeds' alert rules (../shared/seeds/002_*, monitoring
chapter) on two rounds of scrapes.

Usage: metrics_check.py [--cluster] [--rtt-optional] DIR_BEFORE DIR_AFTER SECONDS
       metrics_check.py --dashboard DASHBOARD.json SCRAPE_DIR
  DIR_BEFORE, DIR_AFTER hold one file per member (same names), each a /metrics text, scraped
  SECONDS apart. --rtt-optional: a peer round-trip p99 of no observations in the window is
  accepted (etcd 3.4 probes its peers' round trip only every 30 s). Prints TAP-like lines "ok N - ..." / "not ok N - ..." and a last line
  "N passed, M failed"; exits 1 on any failure.

The exposition is parsed strictly: every sample belongs to a family announced by # TYPE before
it; histogram buckets are cumulative and end with le="+Inf" equal to _count. rate() over the
window is (after - before) / SECONDS, increase() is after - before; histogram_quantile follows
Prometheus' linear interpolation inside the bucket; a quantile of no observations is NaN, and
a comparison with NaN is false (the alert does not fire), as in Prometheus.

--dashboard: the Grafana dashboard cannot drift from the server. Every PromQL query of it (panel
targets, and the metric of each label_values() variable query) is read for its metric names,
the label names of its matchers and by/without/on/ignoring clauses, and the labels its legend
shows ({{name}}); each metric must be a family (or a histogram's _bucket/_sum/_count series) in
at least one scrape of SCRAPE_DIR (one /metrics text per member), and each label one that the
query's families carry, or a target label Prometheus adds (job, instance) or le. `up` is
Prometheus' own series. Grafana's variables ($job, $__rate_interval, ...) are left out.
"""
import json
import math
import os
import re
import sys

# name: (type, label names); labels of histograms exclude "le"
EXPECTED = {
    "etcd_server_has_leader": ("gauge", ()),
    "etcd_server_is_leader": ("gauge", ()),
    "etcd_server_is_learner": ("gauge", ()),
    "etcd_server_leader_changes_seen_total": ("counter", ()),
    "etcd_server_proposals_committed_total": ("gauge", ()),
    "etcd_server_proposals_applied_total": ("gauge", ()),
    "etcd_server_proposals_pending": ("gauge", ()),
    "etcd_server_proposals_failed_total": ("counter", ()),
    "etcd_server_quota_backend_bytes": ("gauge", ()),
    "etcd_server_id": ("gauge", ("server_id",)),
    "etcd_server_version": ("gauge", ("server_version",)),
    "etcd_cluster_version": ("gauge", ("cluster_version",)),
    "etcd_server_health_success": ("counter", ()),
    "etcd_server_health_failures": ("counter", ()),
    "etcd_mvcc_db_total_size_in_bytes": ("gauge", ()),
    "etcd_mvcc_db_total_size_in_use_in_bytes": ("gauge", ()),
    "etcd_mvcc_put_total": ("counter", ()),
    "etcd_mvcc_delete_total": ("counter", ()),
    "etcd_mvcc_txn_total": ("counter", ()),
    "etcd_mvcc_range_total": ("counter", ()),
    "etcd_debugging_mvcc_current_revision": ("gauge", ()),
    "etcd_debugging_mvcc_compact_revision": ("gauge", ()),
    "etcd_debugging_mvcc_watch_stream_total": ("gauge", ()),
    "etcd_debugging_mvcc_watcher_total": ("gauge", ()),
    "etcd_debugging_mvcc_slow_watcher_total": ("gauge", ()),
    "etcd_debugging_mvcc_events_total": ("counter", ()),
    "etcd_disk_wal_fsync_duration_seconds": ("histogram", ()),
    "etcd_disk_wal_write_bytes_total": ("gauge", ()),
    "etcd_disk_backend_commit_duration_seconds": ("histogram", ()),
    "etcd_disk_backend_defrag_duration_seconds": ("histogram", ()),
    "etcd_disk_defrag_inflight": ("gauge", ()),
    "etcd_network_client_grpc_received_bytes_total": ("counter", ()),
    "etcd_network_client_grpc_sent_bytes_total": ("counter", ()),
    "grpc_server_handled_total": ("counter", ("grpc_code", "grpc_method", "grpc_service", "grpc_type")),
    "grpc_server_started_total": ("counter", ("grpc_method", "grpc_service", "grpc_type")),
    "grpc_server_msg_received_total": ("counter", ("grpc_method", "grpc_service", "grpc_type")),
    "grpc_server_msg_sent_total": ("counter", ("grpc_method", "grpc_service", "grpc_type")),
    "process_resident_memory_bytes": ("gauge", ()),
    "process_virtual_memory_bytes": ("gauge", ()),
    "process_cpu_seconds_total": ("counter", ()),
    "process_open_fds": ("gauge", ()),
    "process_max_fds": ("gauge", ()),
    "process_start_time_seconds": ("gauge", ()),
    "os_fd_used": ("gauge", ()),
    "os_fd_limit": ("gauge", ()),
}
CLUSTER_ONLY = {
    "etcd_network_peer_round_trip_time_seconds": ("histogram", ("To",)),
    "etcd_network_peer_sent_bytes_total": ("counter", ("To",)),
    "etcd_network_peer_received_bytes_total": ("counter", ("From",)),
    "etcd_network_active_peers": ("gauge", ("Local", "Remote")),
}

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(?:,|$)')


class Family:
    def __init__(self, name, typ):
        self.name, self.type, self.samples = name, typ, []   # samples: (suffix, labels, value)


def parse_labels(text):
    labels, pos = {}, 0
    while text and pos < len(text):
        m = LABEL.match(text, pos)
        if not m:
            raise ValueError("bad labels: %r" % text)
        labels[m.group(1)] = m.group(2)
        pos = m.end()
    return labels


def parse(text):
    fams, errors = {}, []
    for ln in text.splitlines():
        if not ln or ln.startswith("# HELP"):
            continue
        if ln.startswith("# TYPE"):
            _, _, name, typ = ln.split(" ", 3)
            if name in fams:
                errors.append("family %s announced twice" % name)
            fams[name] = Family(name, typ)
            continue
        if ln.startswith("#"):
            continue
        m = SAMPLE.match(ln)
        if not m:
            errors.append("bad line: %r" % ln)
            continue
        name, labels, value = m.group(1), parse_labels(m.group(2) or ""), float(m.group(3))
        fam = None
        for suffix in ("", "_bucket", "_sum", "_count"):
            base = name[:len(name) - len(suffix)] if suffix and name.endswith(suffix) else name
            if (suffix == "" or name.endswith(suffix)) and base in fams:
                fam, sfx = fams[base], suffix
                break
        if fam is None:
            errors.append("sample %s before its # TYPE" % name)
            continue
        fam.samples.append((sfx, labels, value))
    return fams, errors


def series_key(labels):
    return tuple(sorted((k, v) for k, v in labels.items() if k != "le"))


def histograms(fam):
    """{series key: {"buckets": [(le, count)], "count": c, "sum": s}}"""
    out = {}
    for sfx, labels, value in fam.samples:
        h = out.setdefault(series_key(labels), {"buckets": [], "count": None, "sum": None})
        if sfx == "_bucket":
            h["buckets"].append((float(labels["le"]), value))
        elif sfx == "_count":
            h["count"] = value
        elif sfx == "_sum":
            h["sum"] = value
    return out


def histogram_problem(fam):
    for key, h in histograms(fam).items():
        b = h["buckets"]
        if not b or b[-1][0] != math.inf:
            return "%s%s: no +Inf bucket" % (fam.name, key)
        if any(b[i][0] >= b[i + 1][0] or b[i][1] > b[i + 1][1] for i in range(len(b) - 1)):
            return "%s%s: buckets not increasing/cumulative" % (fam.name, key)
        if h["count"] != b[-1][1] or h["sum"] is None:
            return "%s%s: _count %s != +Inf %s or no _sum" % (fam.name, key, h["count"], b[-1][1])
    return None


def quantile(q, buckets):
    """Prometheus' histogram_quantile on (le, rate) pairs sorted by le."""
    if not buckets or buckets[-1][1] <= 0:
        return math.nan
    rank = q * buckets[-1][1]
    prev_le, prev_c = 0.0, 0.0
    for le, c in buckets:
        if c >= rank:
            if le == math.inf:
                return prev_le
            if c == prev_c:
                return le
            return prev_le + (le - prev_le) * (rank - prev_c) / (c - prev_c)
        prev_le, prev_c = le, c
    return math.nan


def rate_quantile(q, before, after, secs):
    """{series: p-quantile} of rate(histogram_bucket[window])."""
    hb, ha = histograms(before), histograms(after)
    out = {}
    for key, h in ha.items():
        old = dict(hb.get(key, {"buckets": []})["buckets"])
        rates = [(le, (c - old.get(le, 0.0)) / secs) for le, c in h["buckets"]]
        out[key] = quantile(q, rates)
    return out


def scalar(fams, name):
    fam = fams.get(name)
    return fam.samples[0][2] if fam and fam.samples else math.nan


class Report:
    def __init__(self):
        self.n = self.passed = self.failed = 0

    def check(self, ok, name, detail=""):
        self.n += 1
        if ok:
            self.passed += 1
            print("ok %d - %s" % (self.n, name))
        else:
            self.failed += 1
            print("not ok %d - %s" % (self.n, name))
            if detail:
                print("#   " + str(detail).replace("\n", "\n#   "))


def check_families(rep, member, fams, errors, expected):
    rep.check(not errors, "%s: the exposition parses strictly" % member, "\n".join(errors[:5]))
    for name, (typ, labels) in sorted(expected.items()):
        fam = fams.get(name)
        if fam is None:
            rep.check(False, "%s: %s present" % (member, name))
            continue
        names = {tuple(sorted(k for k in l if k != "le")) for _, l, _ in fam.samples}
        problem = None
        if fam.type != typ:
            problem = "type %s, etcd's is %s" % (fam.type, typ)
        elif not fam.samples and name not in CLUSTER_ONLY:
            problem = "no samples"
        elif names and names != {tuple(sorted(labels))}:
            problem = "label names %s, etcd's are %s" % (sorted(names), sorted(labels))
        elif typ == "histogram":
            problem = histogram_problem(fam)
        rep.check(problem is None, "%s: %s %s%s" % (member, name, typ, list(labels) if labels else ""),
                  problem)


def alerts(rep, before, after, secs, cluster, rtt_optional):
    """The seeds' six alert rules and the dashboard's leader panel, over all members."""
    members = sorted(after)
    fire = {}
    fire["EtcdNoLeader"] = [m for m in members if scalar(after[m], "etcd_server_has_leader") == 0]
    fire["EtcdHighNumberOfLeaderChanges"] = [
        m for m in members if scalar(after[m], "etcd_server_leader_changes_seen_total")
        - scalar(before[m], "etcd_server_leader_changes_seen_total") > 3]
    fire["EtcdDatabaseQuotaNearlyFull"] = [
        m for m in members if scalar(after[m], "etcd_mvcc_db_total_size_in_bytes")
        / scalar(after[m], "etcd_server_quota_backend_bytes") > 0.8]
    fire["EtcdHighProposalFailures"] = [
        m for m in members if scalar(after[m], "etcd_server_proposals_failed_total")
        - scalar(before[m], "etcd_server_proposals_failed_total") > 5]
    for alert, fam, limit in (("EtcdHighFsyncDurations", "etcd_disk_wal_fsync_duration_seconds", 0.5),
                              ("EtcdHighPeerRTT", "etcd_network_peer_round_trip_time_seconds", 0.15)):
        if fam == "etcd_network_peer_round_trip_time_seconds" and not cluster:
            continue
        qs = {}
        for m in members:
            if fam in after[m] and fam in before[m]:
                for key, v in rate_quantile(0.99, before[m][fam], after[m][fam], secs).items():
                    qs[(m, key)] = v
        evaluable = {k: v for k, v in qs.items() if not math.isnan(v)}
        optional = rtt_optional and alert == "EtcdHighPeerRTT"
        rep.check(bool(evaluable) or (optional and bool(qs)), "%s: p99 of rate(%s_bucket) is evaluable on some member" % (alert, fam),
                  "series: %s" % qs)
        fire[alert] = ["%s %s=%.4f" % (m, dict(k), v) for (m, k), v in evaluable.items() if v > limit]
    for alert in sorted(fire):
        rep.check(not fire[alert], "alert %s does not fire on a healthy idle cluster" % alert,
                  "firing: %s" % fire[alert])
    leaders = [scalar(after[m], "etcd_server_is_leader") for m in members]
    rep.check(max(leaders) == 1 and sum(leaders) == 1,
              "dashboard max(etcd_server_is_leader) = 1, exactly one leader", leaders)


def load(d):
    out = {}
    for f in sorted(os.listdir(d)):
        with open(os.path.join(d, f)) as fh:
            out[f] = parse(fh.read())
    return out


PROMQL_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
                   "unless", "bool", "offset", "inf", "nan"}
PROMETHEUS_SERIES = {"up"}      # made by Prometheus, not by the target
TARGET_LABELS = {"job", "instance", "le"}


def promql_names(expr):
    """(metric names, label names) an expression uses (see --dashboard)."""
    labels = set()
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)                  # string literals
    for block in re.findall(r"\{([^}]*)\}", e):                     # label matchers
        labels |= set(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", block))
    e = re.sub(r"\{[^}]*\}", " ", e)
    for _, block in re.findall(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", e):
        labels |= {x.strip() for x in block.split(",") if x.strip()}
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)                                  # range selectors
    e = re.sub(r"\$[a-zA-Z_][a-zA-Z0-9_]*", " ", e)                      # Grafana variables
    metrics = set()
    for m in re.finditer(r"(?<![a-zA-Z0-9_:.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", e):
        if m.group(2) or m.group(1).lower() in PROMQL_KEYWORDS:
            continue                                                  # a function or a keyword
        metrics.add(m.group(1))
    return metrics, labels


def dashboard_queries(d):
    """[(where, expr, legend)] of every panel target and variable query."""
    out = []

    def panels(ps):
        for p in ps:
            yield p
            yield from panels(p.get("panels", []))
    for p in panels(d.get("panels", [])):
        for t in p.get("targets", []):
            if t.get("expr"):
                out.append(("panel %r" % p.get("title"), t["expr"], t.get("legendFormat", "")))
    for v in (d.get("templating") or {}).get("list", []):
        q = v.get("query")
        q = q.get("query", "") if isinstance(q, dict) else q or ""
        m = re.match(r"\s*label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*$", q)
        if v.get("type") == "query":
            out.append(("variable %s" % v.get("name"), m.group(1) if m else q, "{{%s}}" % m.group(2) if m else ""))
    return out


def family_of(fams, name):
    """The family a series name belongs to in one scrape, or None."""
    if name in fams:
        return fams[name]
    for sfx in ("_bucket", "_sum", "_count"):
        base = name[:-len(sfx)]
        if name.endswith(sfx) and base in fams and fams[base].type in ("histogram", "summary"):
            return fams[base]
    return None


def check_dashboard(rep, path, scrape_dir):
    with open(path) as f:
        d = json.load(f)
    scrapes = load(scrape_dir)
    for m, (_, errors) in sorted(scrapes.items()):
        rep.check(not errors, "%s: the exposition parses strictly" % m, "\n".join(errors[:5]))
    queries = dashboard_queries(d)
    rep.check(len(queries) > 10, "%s: %d queries found" % (path, len(queries)))
    for where, expr, legend in queries:
        metrics, labels = promql_names(expr)
        labels |= set(re.findall(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}", legend))
        problems, have = [], set(TARGET_LABELS)
        for name in sorted(metrics - PROMETHEUS_SERIES):
            fams = [f for f in (family_of(s[0], name) for s in scrapes.values()) if f is not None]
            if not fams:
                problems.append("%s: in no scrape" % name)
            for f in fams:
                for _, lab, _ in f.samples:
                    have |= set(lab)
        if metrics & PROMETHEUS_SERIES:
            have = None                                               # up: any target label
        if have is not None and labels - have:
            problems.append("labels %s on none of %s" % (sorted(labels - have), sorted(metrics)))
        rep.check(metrics and not problems, "dashboard %s: %s" % (where, ", ".join(sorted(metrics))),
                  "; ".join(problems) + "\nquery: " + expr)


def main(argv):
    if argv[:1] == ["--dashboard"]:
        if len(argv) != 3:
            print(__doc__)
            return 2
        rep = Report()
        check_dashboard(rep, argv[1], argv[2])
        print("%d passed, %d failed" % (rep.passed, rep.failed))
        return 1 if rep.failed else 0
    cluster, rtt_optional = "--cluster" in argv, "--rtt-optional" in argv
    args = [a for a in argv if a not in ("--cluster", "--rtt-optional")]
    if len(args) != 3:
        print(__doc__)
        return 2
    before, after, secs = load(args[0]), load(args[1]), float(args[2])
    rep = Report()
    expected = dict(EXPECTED, **(CLUSTER_ONLY if cluster else {}))
    for m in sorted(after):
        check_families(rep, m, after[m][0], after[m][1], expected)
    alerts(rep, {m: v[0] for m, v in before.items()}, {m: v[0] for m, v in after.items()}, secs, cluster, rtt_optional)
    print("%d passed, %d failed" % (rep.passed, rep.failed))
    return 1 if rep.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
