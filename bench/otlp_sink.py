#!/usr/bin/env python3
"""An OTLP/HTTP receiver that discards what it is sent, for bench/perf.sh's
export runs: it answers every POST 200 and counts the bytes.
Usage: python3 bench/otlp_sink.py PORT"""
import http.server
import sys


class Sink(http.server.BaseHTTPRequestHandler):
    received = 0

    def do_POST(self):  # noqa: N802 (the stdlib's name)
        length = int(self.headers.get("Content-Length", "0"))
        Sink.received += len(self.rfile.read(length))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
