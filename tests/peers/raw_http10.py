#!/usr/bin/env python3
"""An HTTP/1.0 file server with the framings python's http.server does not send, for
tests/peers.rs. Serves the files under DIR (never outside it) on BIND:PORT:

    python3 tests/peers/raw_http10.py --bind 127.0.0.1 --port PORT --directory DIR

    GET /close/NAME       HTTP/1.0 200, no Content-Length: the body ends when we close.
    GET /keep-alive/NAME  HTTP/1.0 200, Connection: keep-alive and Content-Length, and the
                          connection stays open for the next request (30 s idle at most).
    GET /truncated/NAME   HTTP/1.0 200, Content-Length of the whole file, but only the first
                          half of it (a non-empty file is at least one byte short), then close.
    anything else         HTTP/1.0 404 with a small body, then close.
"""

import argparse
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    server_version = "volley-raw-http10/1"
    # Idle keep-alive connections are closed after this many seconds.
    timeout = 30

    def file(self, name):
        """The bytes of `name` under the served directory, or None."""
        root = os.path.realpath(self.server.directory)
        path = os.path.realpath(os.path.join(root, unquote(name)))
        if not path.startswith(root + os.sep) or not os.path.isfile(path):
            return None
        with open(path, "rb") as f:
            return f.read()

    def do_GET(self):
        mode, _, name = urlsplit(self.path).path.lstrip("/").partition("/")
        data = self.file(name) if mode in ("close", "keep-alive", "truncated") else None
        if data is None:
            body = b"not found\n"
            self.send_response(404)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if mode == "keep-alive":
            # Also clears close_connection: http.server then reads the next request.
            self.send_header("Connection", "keep-alive")
            self.send_header("Content-Length", str(len(data)))
        elif mode == "truncated":
            self.send_header("Content-Length", str(len(data)))
            data = data[: len(data) // 2]
        self.end_headers()
        self.wfile.write(data)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--directory", required=True)
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.bind, args.port), Handler)
    server.daemon_threads = True
    server.directory = args.directory
    print(f"raw_http10 serving {args.directory} on {args.bind}:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
