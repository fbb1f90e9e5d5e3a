"""A fault-injecting HTTP proxy between Lifeboat and the local S3 server, for reliability tests.

    python fault_proxy.py --upstream http://127.0.0.1:PORT --port P --rate 0.1 --seed 7 \
        --faults slowdown,internal,reset,lost,slow

Each request is forwarded unchanged, except that with probability RATE one fault (the kinds of
--faults in turn, so a handful of faults covers every kind) is injected instead:
  slowdown  503 SlowDown, request not forwarded
  internal  500 InternalError, request not forwarded
  reset     connection reset before any response, request not forwarded
  lost      request forwarded and applied, then the connection is reset (the answer is lost)
  slow      request forwarded after a 1.5 s delay (not an error)
A CopyObject with If-None-Match: * onto an existing key gets 412, as on S3 (moto ignores it).
GET /__proxy/stats returns the counts; POST /__proxy/rate?value=R changes the rate;
POST /__proxy/fail?next=N injects a fault into each of the next N requests, whatever the rate.
Runs until killed; the tests that start it stop it.
"""

import argparse
import http.client
import json
import random
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

ERRORS = {
    "slowdown": (503, "SlowDown", "Please reduce your request rate."),
    "internal": (500, "InternalError", "We encountered an internal error. Please try again."),
}
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"}


class State:
    def __init__(self, rate, seed, faults):
        self.rate = rate
        self.random = random.Random(seed)
        self.faults = faults
        self.injected = 0
        self.fail_next = 0
        self.lock = threading.Lock()
        self.counts = {"requests": 0, **{f: 0 for f in faults}}

    def draw(self, op=None):
        with self.lock:
            self.counts["requests"] += 1
            if op:
                self.counts[op] = self.counts.get(op, 0) + 1
            forced = self.fail_next > 0
            self.fail_next -= forced
            if self.faults and (forced or self.random.random() < self.rate):
                # The kinds take turns, so that a handful of faults covers every kind.
                fault = self.faults[self.injected % len(self.faults)]
                self.injected += 1
                self.counts[fault] += 1
                return fault
            return None


def make_handler(upstream, state):
    target = urlparse(upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def read_body(self):
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        break
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                return b"".join(chunks)
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def reset(self):
            # RST instead of FIN: the client sees "connection reset by peer".
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()

        def control(self):
            url = urlparse(self.path)
            if url.path == "/__proxy/rate":
                state.rate = float(parse_qs(url.query)["value"][0])
            if url.path == "/__proxy/fail":
                state.fail_next = int(parse_qs(url.query)["next"][0])
            body = json.dumps({**state.counts, "rate": state.rate}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def error(self, status, code, message):
            xml = (
                f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
                f"<Message>{message}</Message><RequestId>lifeboat-proxy</RequestId></Error>"
            ).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(xml)))
            self.end_headers()
            self.wfile.write(xml)

        def copy_target_exists(self):
            """S3 honours If-None-Match on CopyObject; moto ignores it. The proxy answers for
            it, so retried copies behave here as they do on S3."""

            if self.command != "PUT" or "x-amz-copy-source" not in self.headers:
                return False
            if self.headers.get("If-None-Match") != "*" or "uploadId=" in self.path:
                return False
            conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
            # The local server checks no signature, but treats a request without one as
            # anonymous (and refuses it): any well-formed Authorization header will do.
            auth = self.headers.get("Authorization") or ""
            conn.request("HEAD", self.path.split("?")[0], headers={"Authorization": auth})
            status = conn.getresponse().status
            conn.close()
            return status == 200

        def forward(self, body):
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                headers["Content-Length"] = str(len(body))
            conn = http.client.HTTPConnection(target.hostname, target.port, timeout=120)
            conn.request(self.command, self.path, body=body or None, headers=headers)
            response = conn.getresponse()
            data = response.read()
            conn.close()
            return response, data

        def handle_any(self):
            if self.path.startswith("/__proxy/"):
                return self.control()
            body = self.read_body()
            # Requests by S3 operation too ("op:GET", "op:LIST", "op:HEAD", "op:PUT", ...).
            query = urlparse(self.path).query
            op = "LIST" if self.command == "GET" and "list-type" in query else self.command
            fault = state.draw("op:" + op)
            if fault in ERRORS:
                return self.error(*ERRORS[fault])
            if fault == "reset":
                return self.reset()
            if fault == "slow":
                time.sleep(1.5)
            if self.copy_target_exists():
                return self.error(412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold")
            response, data = self.forward(body)
            if fault == "lost":
                return self.reset()
            self.send_response(response.status, response.reason)
            for key, value in response.getheaders():
                if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                    self.send_header(key, value)
            # A HEAD answer carries the object's length, not that of its (empty) body.
            length = response.getheader("Content-Length") if self.command == "HEAD" else None
            self.send_header("Content-Length", length or str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any

    return Handler


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rate", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--faults", default="slowdown,internal,reset,lost,slow")
    args = parser.parse_args()
    faults = [f for f in args.faults.split(",") if f]
    unknown = set(faults) - set(ERRORS) - {"reset", "lost", "slow"}
    if unknown:
        parser.error(f"unknown faults: {', '.join(sorted(unknown))}")
    state = State(args.rate, args.seed, faults)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(args.upstream, state))
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
