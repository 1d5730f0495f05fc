"""FakeSlack: a fake Slack workspace answering the Web API over real HTTP, and Socket Mode.

The worker talks to it through the real slack-sdk (`WebClient(base_url=fake.url)`,
`SocketModeClient`), so retries, rate-limit handling, pagination, error parsing and
reconnects are exercised for real. Script failures with `fail_next(...)` (the next request
of any method) or `fail_method(name, ...)`; read what happened from `messages`, `updates`,
`ephemerals`, `views`, `calls` and `acks`. The methods themselves are in methods.py.

Used by the tests and by bench/throughput.py.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fake_slack import payloads
from tests.fake_slack.methods import METHODS, render
from tests.fake_slack.socket_mode import Ack, SocketModeServer

# The bot token's scopes when a test does not take any away (apps.connections.open's
# connections:write belongs to the app-level token, but one set keeps the switch simple):
# every scope of deploy/slack/manifest.yaml (tests/test_manifest.py keeps them the same).
ALL_SCOPES = frozenset(
    {
        "chat:write",
        "channels:history",
        "groups:history",
        "channels:read",
        "groups:read",
        "users:read",
        "usergroups:read",
        "connections:write",
    }
)
#: Scopes of the app-level token: Slack never lists them among the bot token's (x-oauth-scopes).
APP_SCOPES = frozenset({"connections:write"})
CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{8,}")  # channel names are lowercase, so never match
_BASE36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass
class Scripted:
    """One scripted answer: an HTTP status, a Slack error, or both."""

    status: int = 200
    error: str | None = None
    retry_after: int | None = None


@dataclass(frozen=True)
class Call:
    """One Web API request as the fake saw it (the token is never kept)."""

    method: str
    params: dict[str, Any]
    error: str | None  # None when Slack answered ok
    status: int = 200


def channel_id_of(name: str) -> str:
    """A channel's id: "C" + 10 uppercase alphanumerics, derived from the name so that every
    fake (and a restarted one) gives the same id to the same channel."""
    n = int.from_bytes(hashlib.sha256(name.removeprefix("#").encode()).digest()[:8], "big")
    digits = []
    for _ in range(10):
        n, r = divmod(n, 36)
        digits.append(_BASE36[r])
    return "C" + "".join(digits)


@dataclass
class FakeSlack:
    token: str = "xoxb-test-token"
    channels: set[str] | None = None  # None: every channel exists; else names ("#cx-alerts" or "cx-alerts")
    record_requests: bool = True  # False keeps nothing (the benchmark posts hundreds of thousands)
    delay_s: float = 0.0  # answer latency, to keep alerts in flight (kill -9 tests)
    app_token: str = "xapp-1-A0FAKEAPP1-1-test"  # Socket Mode's app-level token
    scopes: set[str] = field(default_factory=lambda: set(ALL_SCOPES))
    trigger_ttl_s: float = 3.0  # Slack's trigger_ids expire after 3 seconds
    team_id: str = "T0001"
    bot_user_id: str = "U0FAKEBOT1"
    bot_id: str = "B0FAKEBOT1"
    app_id: str = "A0FAKEAPP1"
    messages: list[dict[str, Any]] = field(default_factory=list)  # channel: "#name", plus channel_id
    updates: list[dict[str, Any]] = field(default_factory=list)  # every chat.update, in order
    ephemerals: list[dict[str, Any]] = field(default_factory=list)
    views: list[dict[str, Any]] = field(default_factory=list)  # {trigger_id, view (as sent), view_id, user_id, shown}
    responses: list[dict[str, Any]] = field(default_factory=list)  # what was posted to a response_url
    calls: list[Call] = field(default_factory=list)
    attempts: int = 0  # chat.postMessage requests, failed ones included
    http_connections: int = 0  # Web API TCP connections accepted: a client that keeps its connection alive opens one
    keep_alive: bool = True  # False: every answer says `Connection: close`, as a proxy that pools nothing might
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Channels (names, "#x" or "x") the bot was not invited to: is_member false in conversations.info and .list,
    # and chat.postMessage / conversations.history there answer not_in_channel (a bot without chat:write.public).
    not_member: set[str] = field(default_factory=set)
    # The fake's own bookkeeping, kept out of repr() so a failing assertion stays readable.
    _script: deque[Scripted] = field(default_factory=deque, repr=False)
    _method_scripts: dict[str, deque[Scripted]] = field(default_factory=dict, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _server: ThreadingHTTPServer | None = field(default=None, repr=False)
    _socket_mode: SocketModeServer | None = field(default=None, repr=False)
    _channel_names: dict[str, str] = field(default_factory=dict, repr=False)  # id -> "#name"
    _triggers: dict[str, tuple[float, str]] = field(default_factory=dict, repr=False)  # trigger_id -> (issued, user)
    _used_triggers: set[str] = field(default_factory=set, repr=False)
    _last_ts_us: int = field(default=0, repr=False)
    _sockets: list[socket.socket] = field(default_factory=list, repr=False)  # connections, to close them while idle

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/api/"

    # -- scripting and inspection ------------------------------------------------------------------

    def fail_next(self, *answers: Scripted) -> None:
        """The next requests, whatever their method, get these answers."""
        with self._lock:
            self._script.extend(answers)

    def fail_method(self, method: str, *answers: Scripted) -> None:
        """The next requests to `method` get these answers (before any fail_next ones)."""
        with self._lock:
            self._method_scripts.setdefault(method, deque()).extend(answers)

    def clear_failures(self) -> None:
        with self._lock:
            self._script.clear()
            self._method_scripts.clear()

    def calls_to(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def in_channel(self, channel: str) -> list[dict[str, Any]]:
        """Messages posted to a channel, given by name ("#x" or "x") or id."""
        with self._lock:
            key = "channel_id" if CHANNEL_ID.fullmatch(channel) else "channel"
            wanted = channel if key == "channel_id" else "#" + channel.removeprefix("#")
            return [m for m in self.messages if m.get(key) == wanted]

    def known_channels(self) -> list[str]:
        """The names of the channels seen so far (posted to, or asked for by name). Lock held or not: a copy."""
        return list(self._channel_names.values())

    def channel_id(self, name: str) -> str:
        """The id Slack gives the channel `name` ("#cx-alerts" or "cx-alerts")."""
        channel_id = channel_id_of(name)
        with self._lock:
            self._channel_names[channel_id] = "#" + name.removeprefix("#")
        return channel_id

    def is_member(self, name: str) -> bool:
        """Is the bot in the channel `name` ("#x")? Lock held or not: a read."""
        return name not in {"#" + c.removeprefix("#") for c in self.not_member}

    def add_user(self, user_id: str, name: str, team: str = "T0001") -> None:
        """A workspace member users.info knows; `name` is their real name."""
        username = name.lower().replace(" ", ".")
        with self._lock:
            self.users[user_id] = {"id": user_id, "team_id": team, "name": username, "real_name": name}

    def close_idle_connections(self) -> None:
        """Close every client connection from this side, as a server does with connections idle too long."""
        with self._lock:
            for sock in self._sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # already gone

    def reset(self) -> None:
        """As new: every channel exists, every scope granted, nothing posted, nothing scripted."""
        with self._lock:
            self.clear_failures()
            for kept in (self.messages, self.updates, self.ephemerals, self.views, self.responses, self.calls):
                kept.clear()
            self.users.clear()
            self._triggers.clear()
            self._used_triggers.clear()
            self.attempts = 0
            self.http_connections = 0
            self.keep_alive = True
            self.channels = None
            self.not_member.clear()
            self.scopes = set(ALL_SCOPES)
        if self._socket_mode is not None:
            self._socket_mode.reset()

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> FakeSlack:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as Slack: a client may reuse its connection
            disable_nagle_algorithm = True  # headers and body go in two writes; Nagle would hold the body 40 ms

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def setup(self) -> None:
                super().setup()
                with fake._lock:
                    fake.http_connections += 1
                    fake._sockets = [s for s in fake._sockets if s.fileno() != -1] + [self.connection]

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming; slack-sdk GETs the read methods
                self._reply(*fake._answer(self.path, self.headers, b""))

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                self._reply(*fake._answer(self.path, self.headers, self.rfile.read(length)))

            def _reply(self, status: int, headers: dict[str, str], answer: dict[str, Any]) -> None:
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in headers.items():
                    self.send_header(name, value)
                if not fake.keep_alive:
                    self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(payload)

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-slack", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._socket_mode is not None:
            self._socket_mode.stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- Socket Mode -----------------------------------------------------------------------------

    @property
    def socket_mode(self) -> SocketModeServer:
        """The WebSocket server, started on first use (most tests never need it)."""
        with self._lock:
            if self._socket_mode is None:
                self._socket_mode = SocketModeServer(self.app_id)
            return self._socket_mode

    @property
    def connections(self) -> int:
        return 0 if self._socket_mode is None else self._socket_mode.connections

    @property
    def acks(self) -> dict[str, Ack]:
        return {} if self._socket_mode is None else self._socket_mode.acks

    def push_interactive(self, payload: dict[str, Any], accepts_response_payload: bool | None = None, timeout: float = 5.0) -> str:
        """Send an `interactive` envelope to one open connection (in turn); return its envelope_id.

        Slack lets the ack carry a response (response_action) for view_submission and
        block_suggestion; for block_actions and shortcuts it does not."""
        if accepts_response_payload is None:
            accepts_response_payload = payload.get("type") in ("view_submission", "block_suggestion")
        return self.socket_mode.push("interactive", payload, accepts_response_payload, timeout)

    def wait_ack(self, envelope_id: str, timeout: float = 5.0) -> Ack:
        return self.socket_mode.wait_ack(envelope_id, timeout)

    def drop_connections(self) -> int:
        return 0 if self._socket_mode is None else self._socket_mode.drop_connections()

    def request_disconnect(self, reason: str = "refresh_requested") -> int:
        return 0 if self._socket_mode is None else self._socket_mode.request_disconnect(reason)

    # -- interaction payloads -------------------------------------------------------------------

    def new_trigger_id(self, user_id: str = "U0001") -> str:
        """A trigger_id as a user interaction issues it: views.open takes it once, within trigger_ttl_s."""
        trigger_id = f"{int(time.time() * 1000)}.{secrets.randbelow(10**10)}.{secrets.token_hex(16)}"
        with self._lock:
            self._triggers[trigger_id] = (time.monotonic(), user_id)
        return trigger_id

    def _user(self, user_id: str) -> tuple[str, str]:
        known = self.users.get(user_id)
        return (known["name"], known["team_id"]) if known else ("user-" + user_id.lower(), self.team_id)

    def block_actions(
        self,
        channel: str,
        ts: str,
        action_id: str,
        *,
        value: str | None = None,
        selected_options: Sequence[str | tuple[str, str]] | None = None,
        action_type: str | None = None,
        block_id: str = "actions",
        user_id: str = "U0001",
    ) -> dict[str, Any]:
        """`user_id` clicked `action_id` on the message `ts` posted in `channel` (name or id):
        the payload Slack sends, with the message as posted and a fresh trigger_id."""
        with self._lock:
            where = self.resolve(channel)
            message = next((m for m in self.messages if where and m["channel_id"] == where[1] and m["ts"] == ts), None)
            if where is None or message is None:
                raise LookupError(f"no message {ts} in {channel} to click on")
            shown = render(self, message, include_metadata=False)
        username, team = self._user(user_id)
        response_url = f"{self.url.removesuffix('/api/')}/actions/{team}/{secrets.randbelow(10**12)}/{secrets.token_hex(12)}"
        return payloads.block_actions(
            action_id=action_id,
            trigger_id=self.new_trigger_id(user_id),
            response_url=response_url,
            value=value,
            selected_options=selected_options,
            action_type=action_type,
            block_id=block_id,
            user_id=user_id,
            username=username,
            team_id=team,
            api_app_id=self.app_id,
            channel_id=where[1],
            channel_name=where[0].removeprefix("#"),
            message=shown,
        )

    def view_submission(self, view_id: str, values: dict[str, dict[str, Any]], user_id: str = "U0001") -> dict[str, Any]:
        """`user_id` submitted the modal opened with views.open as `view_id`, with these values
        ({block_id: {action_id: text | [option values] | element state}})."""
        with self._lock:
            opened = next((v for v in self.views if v["view_id"] == view_id), None)
        if opened is None:
            raise LookupError(f"no view {view_id} was opened")
        username, team = self._user(user_id)
        return payloads.view_submission(
            view=opened["shown"],
            values=values,
            trigger_id=self.new_trigger_id(user_id),
            user_id=user_id,
            username=username,
            team_id=team,
            api_app_id=self.app_id,
        )

    # -- what the methods share ----------------------------------------------------------------

    def resolve(self, channel: Any, ids_only: bool = False) -> tuple[str, str] | None:
        """("#name", id) of an existing channel given by name or id; None if Slack would say
        channel_not_found. Call with the lock held."""
        if not isinstance(channel, str) or not channel.strip("#"):
            return None
        allowed = None if self.channels is None else {"#" + c.removeprefix("#") for c in self.channels}
        if CHANNEL_ID.fullmatch(channel):
            name = self._channel_names.get(channel)
            if name is None and allowed is not None:
                name = next((n for n in allowed if channel_id_of(n) == channel), None)
            if name is None:
                return None
        elif ids_only:
            return None
        else:
            name = "#" + channel.removeprefix("#")
        if allowed is not None and name not in allowed:
            return None
        return name, self.channel_id(name)

    def next_ts(self) -> str:
        """A message ts: the time, strictly increasing, like Slack's per-channel ids. Lock held."""
        self._last_ts_us = max(time.time_ns() // 1000, self._last_ts_us + 1)
        return f"{self._last_ts_us // 1_000_000}.{self._last_ts_us % 1_000_000:06d}"

    def take_trigger(self, trigger_id: Any) -> tuple[str | None, str | None]:
        """(error, user) for exchanging a trigger_id, as views.open does. Lock held."""
        if not isinstance(trigger_id, str) or trigger_id not in self._triggers:
            return "invalid_trigger_id", None
        if trigger_id in self._used_triggers:
            return "exchanged_trigger_id", None
        issued, user = self._triggers[trigger_id]
        if time.monotonic() - issued > self.trigger_ttl_s:
            return "expired_trigger_id", None
        self._used_triggers.add(trigger_id)
        return None, user

    # -- one request -----------------------------------------------------------------------------

    def _answer(self, target: str, headers: Any, body: bytes) -> tuple[int, dict[str, str], dict[str, Any]]:
        if self.delay_s:
            time.sleep(self.delay_s)  # simulated network latency, not synchronisation
        url = urlsplit(target)
        params = _params(headers.get("Content-Type", ""), body, url.query)
        if url.path.startswith("/actions/"):  # a response_url from a payload: never the real Slack
            with self._lock:
                self.responses.append({"url": url.path, "body": params})
            return 200, {}, {"ok": True}
        method = url.path.rsplit("/", 1)[-1]
        with self._lock:
            if method == "chat.postMessage":
                self.attempts += 1
            queue = self._method_scripts.get(method)
            scripted = queue.popleft() if queue else (self._script.popleft() if self._script else None)
        if scripted is not None and (scripted.status != 200 or scripted.error):
            status, extra, answer = _scripted(scripted)
        else:
            status, extra, answer = self._dispatch(method, headers.get("Authorization"), params)
        if self.record_requests:
            with self._lock:
                self.calls.append(
                    Call(
                        method, {k: v for k, v in params.items() if k != "token"}, None if answer.get("ok") else answer.get("error"), status
                    )
                )
        return status, extra, answer

    def _dispatch(self, method: str, authorization: str | None, params: dict[str, Any]) -> tuple[int, dict[str, str], dict[str, Any]]:
        known = METHODS.get(method)
        if known is None:
            return 200, {}, {"ok": False, "error": "unknown_method", "req_method": method}
        expected = self.app_token if known.token == "app" else self.token
        given = (authorization or "").removeprefix("Bearer ")
        if not given:
            return 200, {}, {"ok": False, "error": "not_authed"}
        if given != expected:
            wrong_kind = given in (self.token, self.app_token)  # a real token of the other kind
            return 200, {}, {"ok": False, "error": "not_allowed_token_type" if wrong_kind else "invalid_auth"}
        # Slack names a bot token's scopes on every answer to it: how a client learns what it was granted.
        # (x-accepted-oauth-scopes: what the method takes.)
        headers = {"x-oauth-scopes": ",".join(sorted(self.scopes - APP_SCOPES))} if known.token == "bot" else {}
        if known.scope is not None:
            headers["x-accepted-oauth-scopes"] = known.scope
        if known.scope is not None and known.scope not in self.scopes:
            missing = {"ok": False, "error": "missing_scope", "needed": known.scope, "provided": ",".join(sorted(self.scopes))}
            return 200, headers, missing
        with self._lock:
            return 200, headers, known.run(self, params)


def _scripted(scripted: Scripted) -> tuple[int, dict[str, str], dict[str, Any]]:
    """A scripted failure; Scripted() with neither status nor error lets the request through."""
    extra = {"Retry-After": str(scripted.retry_after)} if scripted.retry_after is not None and scripted.status != 200 else {}
    default = "ratelimited" if scripted.status == 429 else "internal_error"  # as Slack answers
    return scripted.status, extra, {"ok": False, "error": scripted.error or default}


def _params(content_type: str, body: bytes, query: str) -> dict[str, Any]:
    """slack-sdk sends JSON for chat.* with blocks and views.*, a query string for the GET
    methods (conversations.history, users.info); accept form posts too."""
    params: dict[str, Any] = {k: v[0] for k, v in parse_qs(query).items()}
    if content_type.startswith("application/json"):
        params |= json.loads(body or b"{}")
    elif body:
        params |= {k: v[0] for k, v in parse_qs(body.decode()).items()}
    for key in ("blocks", "metadata", "view"):
        if isinstance(params.get(key), str):
            params[key] = json.loads(params[key])
    return params


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        """A client killed mid-request (kill -9 tests) is not the fake's error; anything else is printed."""
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)
