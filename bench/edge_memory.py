#!/usr/bin/env python3
"""Resident memory of the daemon through a stream of hostile JSON bodies.

Starts the callbackd binary on a free loopback port, posts deeply nested and very wide
bodies from several connections at once, and prints VmRSS / VmHWM (from /proc/<pid>/status)
before, after the burst, and after it settles. A figure, not a test: the daemon should stay
well under 64 MiB at the default limits.

usage: bench/edge_memory.py [BINARY] [REQUESTS] [BODY_BYTES] [MAX_BODY_BYTES]
       e.g. bench/edge_memory.py build/release/service/callbackd 49 4194304 4MiB
"""
import concurrent.futures
import http.client
import re
import subprocess
import sys
import tempfile
import time


def vm(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) / 1024
    return fields


def wait_port(log_path, process):
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with open(log_path) as log:
            match = re.search(r"event=listening address=[^ ]*:(\d+)", log.read())
        if match:
            return int(match.group(1))
        if process.poll() is not None:
            sys.exit("daemon exited: " + open(log_path).read())
        time.sleep(0.01)
    sys.exit("daemon never listened")


def post(port, body):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("POST", "/v1/callbacks", body,
                           {"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, response.read()[:120]
    except OSError as error:
        return None, str(error).encode()
    finally:
        connection.close()


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "build/release/service/callbackd"
    requests = int(sys.argv[2]) if len(sys.argv) > 2 else 49
    body_bytes = int(sys.argv[3]) if len(sys.argv) > 3 else 1 << 20
    max_body = sys.argv[4] if len(sys.argv) > 4 else "1MiB"
    bodies = {
        "nested": b"[" * (body_bytes - 1),
        "wide": b"[" + b"1," * ((body_bytes - 3) // 2) + b"1]",
        "keys": b"{" + b",".join(b'"k%d":0' % i for i in range(body_bytes // 12)) + b"}",
    }
    with tempfile.TemporaryDirectory() as data:
        log_path = data + "/daemon.log"
        with open(log_path, "w") as log:
            process = subprocess.Popen(
                [binary, "serve", "--listen=127.0.0.1:0", f"--data-dir={data}/d",
                 f"--max-body-bytes={max_body}"], stdout=log, stderr=log)
        try:
            port = wait_port(log_path, process)
            print(f"start          {vm(process.pid)}")
            for name, body in bodies.items():
                body = body[: body_bytes]
                with concurrent.futures.ThreadPoolExecutor(16) as pool:
                    answers = list(pool.map(lambda _: post(port, body), range(requests)))
                statuses = sorted({a[0] for a in answers}, key=str)
                print(f"{name:7} x{requests} {vm(process.pid)} statuses={statuses} "
                      f"e.g. {answers[0][1][:100]!r}")
            time.sleep(1)
            print(f"settled        {vm(process.pid)}")
        finally:
            process.terminate()
            process.wait()


if __name__ == "__main__":
    main()
