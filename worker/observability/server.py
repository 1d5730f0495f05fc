"""The HTTP side: /metrics, /healthz and /readyz on HTTP_PORT, from the standard library's http.server.

A daemon thread serves; each request gets its own thread (ThreadingHTTPServer), so a slow
scrape never delays a probe. Nothing here touches Kafka: the answers are read from the
worker's flags and counters (health.py, metrics.py).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

log = logging.getLogger(__name__)

Probe = Callable[[], tuple[bool, dict[str, Any]]]


class HttpServer:
    def __init__(self, port: int, registry: CollectorRegistry, live: Probe, ready: Probe, host: str = "") -> None:
        handler = _handler(registry, {"/healthz": live, "/readyz": ready})
        self._server = ThreadingHTTPServer((host, port), handler)  # OSError: the port is taken
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> HttpServer:
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()


def _handler(registry: CollectorRegistry, probes: dict[str, Probe]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "feedback-worker"

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            path = urlsplit(self.path).path
            try:
                if path == "/metrics":
                    encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
                    self._send(200, content_type, encoder(registry))
                elif path in probes:
                    ok, body = probes[path]()
                    self._send(200 if ok else 503, "application/json", json.dumps(body).encode())
                else:
                    self._send(404, "text/plain; charset=utf-8", b"not found: try /metrics, /healthz or /readyz\n")
            except Exception:  # a bug in a probe or the collector: say so, keep serving
                log.exception("error answering %s", path)
                self._send(500, "text/plain; charset=utf-8", b"internal error; see the worker's log\n")

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - probes every few seconds would flood the log
            pass

    return Handler
