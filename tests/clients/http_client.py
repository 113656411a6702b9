#!/usr/bin/env python3
"""A client nobody on this project wrote: Python's http.client, which never
retries a request. Used by the real-process tests as a second opinion beside
the project's own Rust client.

    http_client.py PORT --method POST --path /echo --sizes 10,5120 \
        --requests 100 --threads 4 --seconds 30 [--echo] [--host 127.0.0.1]

Each thread keeps one HTTPConnection (keep-alive) and sends requests in turn
with bodies of the given sizes, until it has sent --requests or --seconds
have passed. http.client reconnects by itself after a response that said
`Connection: close` (a new connection for a new request, never a resend); any
exception is one failed request. With --echo each body is unique and must
come back byte for byte. Prints one JSON line:

    {"sent": N, "ok": N, "failed": N, "close_announced": N,
     "close_by_size": {...}, "pids": [...], "errors": [...]}
"""
import argparse
import http.client
import json
import os
import re
import threading
import time

PID = re.compile(rb"pid[= ](\d+)")


def worker(args, sizes, deadline, stats, lock, index):
    conn = http.client.HTTPConnection(args.host, args.port, timeout=30)
    for n in range(args.requests):
        if time.monotonic() >= deadline:
            break
        size = sizes[n % len(sizes)]
        token = b"%d-%d-" % (index, n)
        body = (token * (size // len(token) + 1))[:size] if size else b""
        if args.echo and size >= len(token):
            body = token + os.urandom(size - len(token)).hex().encode()[: size - len(token)]
        try:
            conn.request(args.method, args.path, body=body if args.method != "GET" else None)
            resp = conn.getresponse()
            data = resp.read()
            closing = (resp.getheader("Connection") or "").lower() == "close"
            with lock:
                stats["sent"] += 1
                if closing:
                    stats["close_announced"] += 1
                    key = str(size)
                    stats["close_by_size"][key] = stats["close_by_size"].get(key, 0) + 1
                if resp.status != args.status:
                    stats["failed"] += 1
                    if len(stats["errors"]) < 20:
                        stats["errors"].append(f"status {resp.status} for {size} B: {data[:80]!r}")
                elif args.echo and data != body:
                    stats["failed"] += 1
                    if len(stats["errors"]) < 20:
                        stats["errors"].append(f"echo of {size} B came back as {len(data)} B")
                else:
                    stats["ok"] += 1
                    m = PID.search(data)
                    if m:
                        stats["pids"].add(int(m.group(1)))
        except Exception as e:  # every error is a failure: no retry
            with lock:
                stats["sent"] += 1
                stats["failed"] += 1
                if len(stats["errors"]) < 20:
                    stats["errors"].append(f"{type(e).__name__}: {e} ({size} B, request {n})")
            conn.close()
            conn = http.client.HTTPConnection(args.host, args.port, timeout=30)
    conn.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("port", type=int)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--method", default="POST")
    p.add_argument("--path", default="/")
    p.add_argument("--sizes", default="10")
    p.add_argument("--requests", type=int, default=100)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--status", type=int, default=200)
    p.add_argument("--echo", action="store_true")
    args = p.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    stats = {"sent": 0, "ok": 0, "failed": 0, "close_announced": 0,
             "close_by_size": {}, "pids": set(), "errors": []}
    lock = threading.Lock()
    deadline = time.monotonic() + args.seconds
    threads = [threading.Thread(target=worker, args=(args, sizes, deadline, stats, lock, i))
               for i in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats["pids"] = sorted(stats["pids"])
    print(json.dumps(stats), flush=True)


if __name__ == "__main__":
    main()
