#!/usr/bin/env python3
"""What the circuit breaker saves against an endpoint that answers 503 to everything.

    bench/breaker_failing_endpoint.py build/release/service/callbackd [callbacks] [seconds]

Runs the daemon twice, breaker on (the defaults) and off, each on a fresh data directory with
a short retry schedule (1 s, 2 s, 3 s, 4 s, 5 s: the published one, scaled down 30-120x, so that
a run takes seconds). Posts the callbacks to a loopback receiver answering 503, waits, and
prints the requests that reached the receiver and the deliveries by state. Nothing may be lost:
every callback is pending or dead, and with the breaker on no attempt number is skipped.
"""
import http.server
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

BINARY = sys.argv[1]
CALLBACKS = int(sys.argv[2]) if len(sys.argv) > 2 else 500
SECONDS = float(sys.argv[3]) if len(sys.argv) > 3 else 20


class Failing(http.server.BaseHTTPRequestHandler):
    requests = 0
    lock = threading.Lock()

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with Failing.lock:
            Failing.requests += 1
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def call(base, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method)
    with urllib.request.urlopen(request) as reply:
        return json.loads(reply.read() or b"{}")


def run(breaker_enabled):
    Failing.requests = 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Failing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = "http://127.0.0.1:%d/hook" % server.server_address[1]
    with tempfile.TemporaryDirectory() as data, open(os.path.join(data, "log"), "w+") as log:
        daemon = subprocess.Popen(
            [BINARY, "serve", "--listen=127.0.0.1:0", "--data-dir=" + data + "/d",
             "--allow-networks=127.0.0.0/8", "--retry-schedule=1s,2s,3s,4s,5s",
             "--breaker-enabled=" + ("true" if breaker_enabled else "false")],
            stdout=log, stderr=log)
        try:
            port = None
            for _ in range(500):
                log.seek(0)
                found = re.search(r"event=listening address=[\d.]+:(\d+)", log.read())
                if found:
                    port = found.group(1)
                    break
                time.sleep(0.02)
            base = "http://127.0.0.1:%s" % port
            app = call(base, "POST", "/v1/apps", {"name": "bench"})["app_id"]
            started = time.monotonic()
            for i in range(CALLBACKS):
                call(base, "POST", "/v1/callbacks",
                     {"app_id": app, "callback_url": url, "task_id": "t%d" % i,
                      "status": "failed", "error": "x"})
            time.sleep(max(0.0, SECONDS - (time.monotonic() - started)))
            metrics = urllib.request.urlopen(base + "/metrics").read().decode()
            states = dict(re.findall(r'callbackd_deliveries\{state="(\w+)"\} (\d+)', metrics))
            endpoints = call(base, "GET", "/v1/endpoints")["items"]
        finally:
            daemon.terminate()
            daemon.wait()
            server.shutdown()
    state = endpoints[0]["state"] if endpoints else "-"
    print("breaker %-3s  %d callbacks, %.0f s: %5d requests to the failing endpoint; "
          "pending %s, dead %s; endpoint %s"
          % ("on" if breaker_enabled else "off", CALLBACKS, SECONDS, Failing.requests,
             states.get("pending"), states.get("dead"), state))


run(True)
run(False)
