"""A threaded HTTP server on 127.0.0.1 (random port) for the fake services of the tests."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def serve(handle: Callable[[BaseHTTPRequestHandler, str], None]) -> ThreadingHTTPServer:
    """Start a daemon-threaded HTTP/1.1 server whose GET, HEAD and POST requests go to
    ``handle(request_handler, method)``; the caller stops it (``shutdown`` +
    ``server_close``)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            handle(self, "GET")

        def do_HEAD(self) -> None:
            handle(self, "HEAD")

        def do_POST(self) -> None:
            handle(self, "POST")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
