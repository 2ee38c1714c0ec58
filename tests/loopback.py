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


class LoopbackService:
    """Lifecycle of a fake service: ``start`` (a :func:`serve` server calling the subclass's
    ``_handle(request_handler, method)``), ``stop``, the context manager, and ``url``."""

    _server: ThreadingHTTPServer | None = None

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:  # pragma: no cover
        raise NotImplementedError

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Any:
        self._server = serve(self._handle)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
