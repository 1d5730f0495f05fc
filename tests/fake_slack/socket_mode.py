"""The Socket Mode side of the fake: a local WebSocket server speaking Slack's envelope protocol.

Slack's side of Socket Mode, as slack-sdk's clients expect it: a URL from apps.connections.open
carries a one-time ticket; on connect the server says `hello`; envelopes go out spread over the
open connections; the app acks each one with `{"envelope_id": ..., "payload": ...}`; a
`disconnect` message asks the app to reconnect. Built on `websockets`' threaded server so
tests can push and wait without an event loop.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.sync.server import ServerConnection, serve

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ack:
    """What the app answered to one envelope, and how long it took (Slack allows 3 s)."""

    envelope_id: str
    payload: dict[str, Any] | None
    elapsed_s: float | None  # None for an ack of an envelope this server never sent


class SocketModeServer:
    """Envelopes out, acks in, over every connection the app opened."""

    def __init__(self, app_id: str) -> None:
        self.app_id = app_id
        self.acks: dict[str, Ack] = {}
        self._cond = threading.Condition()
        self._open: list[ServerConnection] = []
        self._tickets: set[str] = set()
        self._sent_at: dict[str, float] = {}
        self._turn = 0
        # close_timeout: slack-sdk's built-in client drops the TCP connection instead of
        # answering a close frame; do not wait the default 10 s for it.
        self._server = serve(self._handle, "127.0.0.1", 0, process_request=self._check_ticket, close_timeout=1)
        self.port = self._server.socket.getsockname()[1]
        threading.Thread(target=self._server.serve_forever, name="fake-slack-socket-mode", daemon=True).start()

    def new_url(self) -> str:
        """What apps.connections.open answers: this server, with a ticket good for one connection."""
        ticket = uuid.uuid4().hex
        with self._cond:
            self._tickets.add(ticket)
        return f"ws://127.0.0.1:{self.port}/link/?ticket={ticket}&app_id={self.app_id}"

    @property
    def connections(self) -> int:
        with self._cond:
            return len(self._open)

    def push(self, kind: str, payload: dict[str, Any], accepts_response_payload: bool, timeout: float = 5.0) -> str:
        """Send one envelope to one open connection, taking them in turn; return its envelope_id.

        Waits up to `timeout` for a connection (the app may be reconnecting)."""
        envelope_id = str(uuid.uuid4())
        text = json.dumps(
            {"envelope_id": envelope_id, "type": kind, "accepts_response_payload": accepts_response_payload, "payload": payload}
        )
        deadline = time.monotonic() + timeout
        while True:
            with self._cond:
                if not self._cond.wait_for(lambda: self._open, max(0.0, deadline - time.monotonic())):
                    raise TimeoutError(f"no Socket Mode connection open within {timeout}s to push a {kind} envelope to")
                connection = self._open[self._turn % len(self._open)]
                self._turn += 1
                self._sent_at[envelope_id] = time.monotonic()
            try:
                connection.send(text)
                return envelope_id
            except ConnectionClosed:  # closed under us: Slack would use another connection
                self._forget(connection)

    def wait_ack(self, envelope_id: str, timeout: float = 5.0) -> Ack:
        with self._cond:
            if not self._cond.wait_for(lambda: envelope_id in self.acks, timeout):
                raise TimeoutError(f"no ack for envelope {envelope_id} within {timeout}s")
            return self.acks[envelope_id]

    def request_disconnect(self, reason: str = "refresh_requested") -> int:
        """Ask every connection to reconnect, as Slack does before recycling a server."""
        message = json.dumps({"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-fake"}})
        with self._cond:
            targets = list(self._open)
        for connection in targets:
            try:
                connection.send(message)
            except ConnectionClosed:
                pass
        return len(targets)

    def drop_connections(self, timeout: float = 5.0) -> int:
        """Close every open socket (code 1001, going away); return once they are all gone."""
        with self._cond:
            victims = list(self._open)
        for connection in victims:
            connection.close(code=1001, reason="fake Slack dropped the connection")
        with self._cond:
            if not self._cond.wait_for(lambda: not any(c in self._open for c in victims), timeout):
                raise TimeoutError(f"connections still open {timeout}s after closing them")
        return len(victims)

    def reset(self) -> None:
        with self._cond:
            self.acks.clear()
            self._sent_at.clear()

    def stop(self) -> None:
        self._server.shutdown()

    # -- per connection --------------------------------------------------------------------------

    def _check_ticket(self, connection: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        if url.path.rstrip("/") != "/link":
            return connection.respond(404, "Not Found\n")
        ticket = parse_qs(url.query).get("ticket", [""])[0]
        with self._cond:
            if ticket not in self._tickets:
                return connection.respond(401, "invalid or already used ticket\n")
            self._tickets.discard(ticket)
        return None

    def _handle(self, connection: ServerConnection) -> None:
        with self._cond:
            count = len(self._open) + 1
        hello = {
            "type": "hello",
            "num_connections": count,
            "debug_info": {"host": "applink-fake", "build_number": 1, "approximate_connection_time": 18060},
            "connection_info": {"app_id": self.app_id},
        }
        try:
            connection.send(json.dumps(hello))
            with self._cond:  # only now may envelopes go to it: hello comes first
                self._open.append(connection)
                self._cond.notify_all()
            for raw in connection:
                self._received(raw)
        except ConnectionClosed:
            pass
        finally:
            self._forget(connection)

    def _forget(self, connection: ServerConnection) -> None:
        with self._cond:
            if connection in self._open:
                self._open.remove(connection)
            self._cond.notify_all()

    def _received(self, raw: str | bytes) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            log.warning("fake Slack: a Socket Mode message that is not JSON: %.80r", raw)
            return
        if not isinstance(message, dict) or "envelope_id" not in message:
            return
        envelope_id = str(message["envelope_id"])
        with self._cond:
            if envelope_id in self.acks:
                return  # Slack takes the first ack
            sent = self._sent_at.get(envelope_id)
            elapsed = None if sent is None else time.monotonic() - sent
            self.acks[envelope_id] = Ack(envelope_id, message.get("payload"), elapsed)
            self._cond.notify_all()
