#!/usr/bin/env python3
"""What the daemon does when it runs out of file descriptors.

Starts the callbackd binary with RLIMIT_NOFILE lowered (as `ulimit -n 256` would), opens more
connections than it can accept, holds them for a while, and prints the log lines and bytes
written and the CPU time used meanwhile; then closes them and times how long until /healthz
answers again. A figure, not a test.

usage: bench/accept_spin.py [BINARY] [SECONDS] [NOFILE] [CONNECTIONS]
       e.g. bench/accept_spin.py build/release/service/callbackd 20 256 400
"""
import os
import re
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "build/release/service/callbackd"
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 20
    nofile = int(sys.argv[3]) if len(sys.argv) > 3 else 256
    connections = int(sys.argv[4]) if len(sys.argv) > 4 else 400
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, connections + 100), hard))
    with tempfile.TemporaryDirectory() as data:
        log_path = data + "/daemon.log"
        with open(log_path, "w") as log:
            process = subprocess.Popen(
                [binary, "serve", "--listen=127.0.0.1:0", f"--data-dir={data}/d"],
                stdout=log, stderr=log,
                preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile)))
        try:
            port = None
            deadline = time.monotonic() + 15
            while port is None and time.monotonic() < deadline:
                match = re.search(r"event=listening address=[^ ]*:(\d+)", open(log_path).read())
                port = int(match.group(1)) if match else None
                time.sleep(0.01)
            held = [socket.create_connection(("127.0.0.1", port)) for _ in range(connections)]
            log_start = os.path.getsize(log_path)
            cpu_start = cpu_seconds(process.pid)
            time.sleep(seconds)
            text = open(log_path, errors="replace").read()[log_start:]
            print(f"{connections} connections held {seconds:.0f} s with nofile={nofile}: "
                  f"{text.count('event=accept_failed')} accept_failed lines, "
                  f"{os.path.getsize(log_path) - log_start} log bytes, "
                  f"{cpu_seconds(process.pid) - cpu_start:.2f} s CPU")
            for connection in held:
                connection.close()
            started = time.monotonic()
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                        break
                except OSError:
                    if time.monotonic() - started > 30:
                        print("/healthz never answered")
                        return
            print(f"/healthz answered {time.monotonic() - started:.2f} s after closing them")
        finally:
            process.kill()
            process.wait()


if __name__ == "__main__":
    main()
