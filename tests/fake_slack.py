"""A local fake of the Slack Web API, answering like Slack does, over real HTTP.

The worker talks to it through the real slack-sdk `WebClient(base_url=...)`, so retries,
rate-limit handling and error parsing are exercised for real. Script failures with
`fail_next(...)`; read what was posted from `messages`.

Used by the tests and by bench/throughput.py.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs


@dataclass
class Scripted:
    """One scripted answer: an HTTP status, a Slack error, or both."""

    status: int = 200
    error: str | None = None
    retry_after: int | None = None


@dataclass
class FakeSlack:
    token: str = "xoxb-test-token"
    channels: set[str] | None = None  # None: every channel exists
    record_requests: bool = True
    delay_s: float = 0.0  # answer latency, to keep alerts in flight (kill -9 tests)
    messages: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 0
    _script: deque[Scripted] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/api/"

    def fail_next(self, *answers: Scripted) -> None:
        with self._lock:
            self._script.extend(answers)

    def clear_failures(self) -> None:
        with self._lock:
            self._script.clear()

    def reset(self) -> None:
        """As new: every channel exists, nothing posted, nothing scripted."""
        with self._lock:
            self._script.clear()
            self.messages.clear()
            self.attempts = 0
            self.channels = None

    def start(self) -> FakeSlack:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                status, headers, answer = fake._answer(self.path, self.headers, body)
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-slack", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- Slack's behaviour -----------------------------------------------------------------

    def _answer(self, path: str, headers: Any, body: bytes) -> tuple[int, dict[str, str], dict[str, Any]]:
        if self.delay_s:
            time.sleep(self.delay_s)  # simulated network latency, not synchronisation
        with self._lock:
            self.attempts += 1
            scripted = self._script.popleft() if self._script else None
        if scripted is not None and scripted.status != 200:
            extra = {"Retry-After": str(scripted.retry_after)} if scripted.retry_after is not None else {}
            default = "ratelimited" if scripted.status == 429 else "internal_error"  # as Slack answers
            return scripted.status, extra, {"ok": False, "error": scripted.error or default}
        if scripted is not None and scripted.error:
            return 200, {}, {"ok": False, "error": scripted.error}
        if not path.endswith("/chat.postMessage"):
            return 200, {}, {"ok": False, "error": "unknown_method"}
        if headers.get("Authorization") != f"Bearer {self.token}":
            return 200, {}, {"ok": False, "error": "invalid_auth"}
        params = _params(headers.get("Content-Type", ""), body)
        channel = params.get("channel")
        if not channel:
            return 200, {}, {"ok": False, "error": "channel_not_found"}
        if self.channels is not None and channel not in self.channels:
            return 200, {}, {"ok": False, "error": "channel_not_found"}
        if not params.get("text") and not params.get("blocks"):
            return 200, {}, {"ok": False, "error": "no_text"}
        ts = f"{time.time():.6f}"
        if self.record_requests:
            with self._lock:
                self.messages.append(params | {"ts": ts})
        return 200, {}, {"ok": True, "channel": channel, "ts": ts, "message": {"text": params.get("text")}}

    def in_channel(self, channel: str) -> list[dict[str, Any]]:
        with self._lock:
            return [m for m in self.messages if m.get("channel") == channel]


def _params(content_type: str, body: bytes) -> dict[str, Any]:
    """slack-sdk sends JSON for chat.postMessage with blocks; accept form posts too."""
    if content_type.startswith("application/json"):
        params = json.loads(body or b"{}")
    else:
        params = {k: v[0] for k, v in parse_qs(body.decode()).items()}
    for key in ("blocks", "metadata"):
        if isinstance(params.get(key), str):
            params[key] = json.loads(params[key])
    return params
