#!/usr/bin/python3
"""Maintenance.Snapshot client for snapshot_save.sh: fetches a snapshot and checks the stream.

usage: snapshot_client.py MODE PORT OUT [--pause-after N --pause-file F] [--stop-after N]
                                          [--token T]
MODE grpc     the gRPC stream (etcd's stubs from python3-etcd3)
     gateway  POST /v3/maintenance/snapshot, one {"result":{...}} JSON line per message

The blobs of all messages are written to OUT (the snapshot file: database, then its SHA-256).
Checks, as etcd 3.4 streams (each failure is printed and makes the exit status 1):
  - every data message but the last carries 32768 bytes, the last 1..32768;
  - remaining_bytes = total - bytes received so far, so the last data message says 0;
  - one final message: remaining_bytes 0, blob = the 32-byte SHA-256 of the data blobs;
  - the header is on every message or on none (etcd 3.4: none); when present its revision is
    the same on all of them.
On success prints one JSON line: {"messages":N,"size":DB_BYTES,"revision":R|null}.
--pause-after N: after N messages, create --pause-file and wait until it is deleted (bounded,
  60 s), then go on: a client that stops reading while the server has more to send.
--stop-after N: after N messages, drop the stream (cancel the call / close the socket), print
  {"stopped":N} and exit 0: a client that goes away mid-stream.
--token T: send an auth token (gRPC metadata "token", gateway header "Authorization"); an error
  answer is printed as {"error":MESSAGE,"code":GRPC_CODE} with exit status 2.
"""
import argparse
import base64
import hashlib
import http.client
import json
import os
import sys
import time

CHUNK = 32768


class Checker:
    def __init__(self, out):
        self.out = out
        self.msgs = []      # (remaining, blob_len, revision or None)
        self.sha = hashlib.sha256()
        self.data = 0
        self.last_blob = b""
        self.errors = []

    def add(self, remaining, blob, revision):
        if self.msgs:
            # the previous message was a data message
            self.sha.update(self.last_blob)
            self.data += len(self.last_blob)
        self.msgs.append((remaining, len(blob), revision))
        self.last_blob = blob
        self.out.write(blob)

    def finish(self):
        m = self.msgs
        if len(m) < 2:
            self.errors.append("only %d messages" % len(m))
            return
        total = self.data
        sent = 0
        for i, (rem, n, _) in enumerate(m[:-1]):
            sent += n
            if i < len(m) - 2 and n != CHUNK:
                self.errors.append("data message %d has %d bytes, not %d" % (i, n, CHUNK))
            if not 1 <= n <= CHUNK:
                self.errors.append("data message %d has %d bytes" % (i, n))
            if rem != total - sent:
                self.errors.append("data message %d: remaining_bytes %d, expected %d"
                                   % (i, rem, total - sent))
                break
        rem, n, _ = m[-1]
        if rem != 0 or self.last_blob != self.sha.digest():
            self.errors.append("final message: remaining_bytes %d, blob %s is not the sha256 %s"
                               % (rem, self.last_blob.hex(), self.sha.hexdigest()))
        revs = {r for (_, _, r) in m}
        if len(revs) != 1:
            self.errors.append("headers differ or are missing on some messages: %s"
                               % sorted(revs, key=str))

    def summary(self):
        return {"messages": len(self.msgs), "size": self.data, "revision": self.msgs[-1][2]}


def pause(args, count):
    if args.pause_after is not None and count == args.pause_after:
        open(args.pause_file, "w").close()
        deadline = time.time() + 60
        while os.path.exists(args.pause_file) and time.time() < deadline:
            time.sleep(0.02)


def run_grpc(args, chk):
    import grpc
    from etcd3.etcdrpc import rpc_pb2, rpc_pb2_grpc
    ch = grpc.insecure_channel("127.0.0.1:%d" % args.port,
                               options=[("grpc.max_receive_message_length", 8 << 20)])
    md = [("token", args.token)] if args.token else None
    call = rpc_pb2_grpc.MaintenanceStub(ch).Snapshot(rpc_pb2.SnapshotRequest(), timeout=120,
                                                     metadata=md)
    try:
        for r in call:
            rev = r.header.revision if r.HasField("header") else None
            chk.add(r.remaining_bytes, r.blob, rev)
            if args.stop_after is not None and len(chk.msgs) == args.stop_after:
                call.cancel()
                ch.close()
                return "stopped"
            pause(args, len(chk.msgs))
    except grpc.RpcError as e:
        print(json.dumps({"error": e.details(), "code": e.code().value[0]}))
        return "error"
    finally:
        ch.close()
    return "done"


def read_line(resp):
    line = resp.readline()
    return line if line.strip() else (None if not line else b"")


def run_gateway(args, chk):
    c = http.client.HTTPConnection("127.0.0.1", args.port, timeout=120)
    hdrs = {"Content-Type": "application/json"}
    if args.token:
        hdrs["Authorization"] = args.token
    c.request("POST", "/v3/maintenance/snapshot", "{}", hdrs)
    resp = c.getresponse()
    if resp.status != 200:
        raw = resp.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = {"message": raw.decode(errors="replace"), "code": None}
        err = body.get("error")
        if isinstance(err, dict):   # a stream's error object
            body = {"message": err.get("message"), "code": err.get("grpc_code")}
        print(json.dumps({"error": body.get("message"), "code": body.get("code"),
                          "status": resp.status}))
        return "error"
    while True:
        line = resp.readline()
        if not line:
            break
        if not line.strip():
            continue
        obj = json.loads(line)
        if "error" in obj:
            print(json.dumps({"error": obj["error"].get("message"),
                              "code": obj["error"].get("grpc_code")}))
            return "error"
        r = obj["result"]
        rev = int(r["header"].get("revision", 0)) if "header" in r else None
        chk.add(int(r.get("remaining_bytes", "0")), base64.b64decode(r.get("blob", "")), rev)
        if args.stop_after is not None and len(chk.msgs) == args.stop_after:
            c.sock.close()
            return "stopped"
        pause(args, len(chk.msgs))
    return "done"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["grpc", "gateway"])
    ap.add_argument("port", type=int)
    ap.add_argument("out")
    ap.add_argument("--pause-after", type=int)
    ap.add_argument("--pause-file")
    ap.add_argument("--stop-after", type=int)
    ap.add_argument("--token")
    args = ap.parse_args()
    with open(args.out, "wb") as f:
        chk = Checker(f)
        how = (run_grpc if args.mode == "grpc" else run_gateway)(args, chk)
    if how == "error":
        return 2
    if how == "stopped":
        print(json.dumps({"stopped": len(chk.msgs)}))
        return 0
    chk.finish()
    if chk.errors:
        for e in chk.errors:
            print("stream check: " + e)
        return 1
    print(json.dumps(chk.summary()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
