#!/usr/bin/env python3
"""Cold-start init time of the Lambda functions, under a local stand-in for the Runtime API.

For each function binary: start it N times with AWS_LAMBDA_RUNTIME_API pointing at a local HTTP
server, and measure from just before the process is spawned to the moment the server receives
its first `GET /2018-06-01/runtime/invocation/next` (the function has read its configuration
and built its SDK clients, and asks for work). The request is never answered: the process is
killed and the next start begins. Prints min/median/max per function, and the sizes of the
binaries. Standard library only.

Usage: bench_cold_start.py --runs 20 NAME=PATH [NAME=PATH ...] [--bootstrap NAME=PATH ...]
"""

from __future__ import annotations

import argparse
import http.server
import os
import pathlib
import signal
import statistics
import subprocess
import sys
import threading
import time

NEXT = "/2018-06-01/runtime/invocation/next"

# What each function reads at start (dummy values: nothing is called before the first event).
COMMON_ENV = {
    "EKS_INTENTS_BUCKET": "eks-intents-bundles",
    "EKS_INTENTS_QUEUE_URL": "http://127.0.0.1:9/123456789012/eks-intents-reconcile.fifo",
    "EKS_INTENTS_PERMISSIONS_BOUNDARY": "arn:aws:iam::123456789012:policy/eks-intents-permissions-boundary",
    "EKS_INTENTS_IAM_PATH": "/eks-intents/",
    "EKS_INTENTS_SYSTEM_ROLE_ARNS": "arn:aws:iam::123456789012:role/eks-intents-reconciler",
    "AWS_REGION": "eu-west-2",
    "AWS_DEFAULT_REGION": "eu-west-2",
    "AWS_ACCESS_KEY_ID": "AKIDBENCHMARK",
    "AWS_SECRET_ACCESS_KEY": "benchmark",
    "AWS_SESSION_TOKEN": "benchmark",
    # What Lambda itself sets for a function.
    "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
    "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/bench",
    "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
    "AWS_LAMBDA_LOG_FORMAT": "JSON",
    "AWS_EXECUTION_ENV": "AWS_Lambda_provided.al2023",
    "LAMBDA_TASK_ROOT": "/var/task",
    "RUST_LOG": "info",
}


class StandIn(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.first_next = threading.Event()
        self.at = 0.0
        self.release = threading.Event()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == NEXT:
            if not self.server.first_next.is_set():
                self.server.at = time.perf_counter()
                self.server.first_next.set()
            # Hold the request until the process is killed: it never gets an event.
            self.server.release.wait(30)
            return
        self.send_error(404)

    def do_POST(self):  # init errors and the like
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        sys.stderr.write(f"runtime API {self.path}: {body[:500]!r}\n")
        self.send_response(202)
        self.end_headers()

    def log_message(self, *args):
        pass


def start_once(server: StandIn, binary: str, env: dict) -> float:
    server.first_next.clear()
    server.release.clear()
    before = time.perf_counter()
    proc = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while not server.first_next.wait(0.01):
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace")
                raise RuntimeError(f"{binary} exited with {proc.returncode} before asking for an event:\n{err[-2000:]}")
            if time.perf_counter() - before > 10:
                raise RuntimeError(f"{binary} did not ask for an event within 10 s")
        return (server.at - before) * 1000.0
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        server.release.set()


def size(path) -> str:
    p = pathlib.Path(path)
    return f"{p.stat().st_size / 1e6:.1f} MB" if p.is_file() else "not built"


def main(argv) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--bootstrap", action="append", default=[], help="NAME=PATH of the arm64 bootstrap, for its size")
    parser.add_argument("binaries", nargs="+", help="NAME=PATH of a host release binary")
    args = parser.parse_intermixed_args(argv[1:])
    bootstraps = dict(b.split("=", 1) for b in args.bootstrap)

    server = StandIn()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    api = f"127.0.0.1:{server.server_address[1]}"
    rows = []
    for spec in args.binaries:
        name, binary = spec.split("=", 1)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **COMMON_ENV,
               "AWS_LAMBDA_RUNTIME_API": api, "AWS_LAMBDA_FUNCTION_NAME": name}
        start_once(server, binary, env)  # warm the page cache; not counted
        times = sorted(start_once(server, binary, env) for _ in range(args.runs))
        rows.append((name, times[0], statistics.median(times), times[-1], size(binary), size(bootstraps.get(name, ""))))
        print(f"{name}: {', '.join(f'{t:.1f}' for t in times)} ms", file=sys.stderr)
    server.shutdown()

    print(f"| function | init min | init median | init max | host binary (x86_64) | bootstrap (arm64) |")
    print(f"|---|---|---|---|---|---|")
    for name, lo, med, hi, host, boot in rows:
        print(f"| `{name}` | {lo:.1f} ms | {med:.1f} ms | {hi:.1f} ms | {host} | {boot} |")
    print(f"({args.runs} starts each after one unmeasured start; process spawn to the first "
          f"GET {NEXT}, on {os.uname().machine}, {os.cpu_count()} cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
