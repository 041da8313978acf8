#!/usr/bin/env python3
"""Webhook delivery to one local receiver: throughput and latency from commit to delivery.

usage: bench/webhooks.py TECHBANK_BINARY [EVENTS] [RATE]

Starts `techbank serve` on a throwaway embedded cluster (webhooks to private networks allowed, as
for development), a receiver on 127.0.0.1 that answers 204 and notes when each delivery arrived,
one enterprise subscribed to `transfer` events, then posts EVENTS (default 2000) single transfers
from 32 threads, or, with RATE, one every 1/RATE s (to see latency without a queue). Prints events per second as delivered (first to last arrival) and the latency of
each delivery after its event's commit (`data.created_at`): p50, p90, p99, max. Checks that every
transfer arrived once and that every signature verifies (HMAC computed here)."""
import base64
import datetime
import hashlib
import hmac
import http.server
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid

binary = sys.argv[1]
events = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
rate = float(sys.argv[3]) if len(sys.argv) > 3 else None
here = os.path.dirname(os.path.abspath(__file__))
work = tempfile.mkdtemp(prefix="techbank-webhooks-")
os.chmod(work, 0o711)
operator = "tbk_bench_" + uuid.uuid4().hex
arrivals = []
lock = threading.Lock()


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with lock:
            arrivals.append((time.time(), dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
threading.Thread(target=receiver.serve_forever, daemon=True).start()
probe = __import__("socket").socket()
probe.bind(("127.0.0.1", 0))
port = probe.getsockname()[1]
probe.close()
base = f"http://127.0.0.1:{port}"
server = subprocess.Popen([binary, "serve", "--data-dir", work + "/data", "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          env={**os.environ, "TECHBANK_ADMIN_KEY": operator, "TECHBANK_WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true", "LOG_LEVEL": "warning"})
try:
    deadline = time.time() + 120
    while True:
        try:
            urllib.request.urlopen(base + "/readyz", timeout=5).read()
            break
        except OSError:
            if time.time() > deadline or server.poll() is not None:
                sys.exit("bench/webhooks.py: the server did not become ready")
            time.sleep(0.5)

    accounts_file = work + "/accounts.txt"
    key = subprocess.check_output([sys.executable, here + "/http/setup.py", base, operator, "100", "100000000", accounts_file], text=True).strip()
    accounts = open(accounts_file).read().split()

    def call(method, path, body=None):
        request = urllib.request.Request(base + path, method=method, data=json.dumps(body).encode() if body is not None else None,
                                         headers={"Authorization": "Bearer " + key, "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read() or b"null")

    hook = call("POST", "/v1/webhooks", {"url": f"http://127.0.0.1:{receiver.server_port}/hook", "event_types": ["transfer"]})
    secret = base64.b64decode(hook["secret"].removeprefix("whsec_"))
    ids = []

    def post(count):
        for _ in range(count):
            if rate:
                time.sleep(1 / rate)
            debit, credit = random.sample(accounts, 2)
            transfer = call("POST", "/v1/transfers", {"id": str(uuid.uuid4()), "debit_account_id": debit, "credit_account_id": credit,
                                                      "amount": 1, "currency": "CNY"})
            with lock:
                ids.append(transfer["id"])

    writers = 1 if rate else 32
    threads = [threading.Thread(target=post, args=(events // writers + (1 if n < events % writers else 0),)) for n in range(writers)]
    started = time.time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    posted = time.time()
    while time.time() < posted + 120:
        with lock:
            delivered = {json.loads(body)["data"]["subject_id"] for _, _, body in arrivals}
        if delivered >= set(ids):
            break
        time.sleep(0.1)

    with lock:
        received = list(arrivals)
    latencies = []
    for arrived, headers, body in received:
        signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
        expected = "v1," + base64.b64encode(hmac.new(secret, signed, hashlib.sha256).digest()).decode()
        if expected not in headers["webhook-signature"].split():
            sys.exit("bench/webhooks.py: a signature does not verify")
        committed = datetime.datetime.fromisoformat(json.loads(body)["data"]["created_at"].replace("Z", "+00:00")).timestamp()
        latencies.append((arrived - committed) * 1000)
    subjects = [json.loads(body)["data"]["subject_id"] for _, _, body in received]
    missing = set(ids) - set(subjects)
    latencies.sort()

    def percentile(p):
        return latencies[min(len(latencies) - 1, int(len(latencies) * p / 100))]

    first, last = min(a for a, _, _ in received), max(a for a, _, _ in received)
    print(f"webhooks events={len(ids)} delivered={len(received)} missing={len(missing)} duplicates={len(subjects) - len(set(subjects))}"
          f" posting_s={posted - started:.2f} transfers_per_second={len(ids) / (posted - started):.0f}"
          f" delivered_per_second={len(received) / max(last - first, 1e-9):.0f}"
          f" latency_p50_ms={percentile(50):.0f} p90_ms={percentile(90):.0f} p99_ms={percentile(99):.0f} max_ms={latencies[-1]:.0f}")
    sys.exit(1 if missing else 0)
finally:
    server.terminate()
    server.wait(timeout=60)
    receiver.shutdown()
    shutil.rmtree(work, ignore_errors=True)
