"""Where rendered alerts go: Slack (chat.postMessage through slack-sdk) or stdout.

A sink returns a Future per alert that resolves to an Outcome:
- sent: Slack accepted it;
- undeliverable: Slack refused it for good (channel_not_found, invalid_auth, ...); the
  worker logs it loudly and sends the rendered alert to the DLQ, so it is never lost;
- abandoned: Slack stayed unavailable until the worker stopped or lost the partition; the
  offset stays uncommitted and the event is processed again later.
Transient failures (connection errors, 429, 5xx) never resolve the future: the alert is
retried with backoff, first by slack-sdk's retry handlers, then here, for as long as it takes.
"""

from __future__ import annotations

import json
import logging
import queue
import sys
import threading
from concurrent.futures import Future
from http.client import HTTPException
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TextIO

from pydantic import SecretStr
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

from .render import Alert

log = logging.getLogger(__name__)

#: Errors Slack returns with HTTP 200 that mean "try again later", not "never".
TRANSIENT_ERRORS = {"ratelimited", "service_unavailable", "fatal_error", "internal_error", "request_timeout"}


@dataclass(frozen=True)
class Outcome:
    status: Literal["sent", "undeliverable", "abandoned"]
    reason: str = ""
    channel: str | None = None
    ts: str | None = None


class Sink(Protocol):
    def submit(self, alert: Alert, abandon: threading.Event) -> Future[Outcome]: ...

    def close(self) -> None: ...


class StdoutSink:
    """Without SLACK_BOT_TOKEN: print the alert as it would be posted, immediately."""

    def __init__(self, stream: TextIO | None = None, show_blocks: bool = False) -> None:
        self.stream = stream or sys.stdout
        self.show_blocks = show_blocks
        self._lock = threading.Lock()

    def submit(self, alert: Alert, abandon: threading.Event) -> Future[Outcome]:
        kind = "reply" if alert.thread_ts or alert.parent is not None else "alert"
        lines = [f"[{kind} → {alert.channel}] {alert.text}"]
        if self.show_blocks:
            lines.append(json.dumps({"blocks": alert.blocks, "metadata": alert.metadata}, ensure_ascii=False))
        with self._lock:
            print("\n".join(lines), file=self.stream, flush=True)
        future: Future[Outcome] = Future()
        future.set_result(Outcome("sent", channel=alert.channel, ts=f"stdout-{id(future)}"))
        return future

    def close(self) -> None:
        pass


class SlackSink:
    """Posts alerts with a small thread pool; one WebClient per thread."""

    def __init__(
        self,
        token: SecretStr,
        base_url: str = "https://slack.com/api/",
        concurrency: int = 4,
        max_backoff_s: float = 60.0,
        timeout_s: int = 10,
    ) -> None:
        self._token = token
        self._base_url = base_url
        self._timeout_s = timeout_s
        self._max_backoff_s = max_backoff_s
        self._local = threading.local()
        # Daemon threads, not a ThreadPoolExecutor: a post stuck retrying an unreachable Slack
        # must not hold the process open after SIGTERM (its offset is uncommitted anyway).
        self._queue: queue.SimpleQueue[tuple[Alert, threading.Event, Future[Outcome]] | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._work, name=f"slack-{i}", daemon=True) for i in range(concurrency)
        ]
        for thread in self._threads:
            thread.start()

    def __repr__(self) -> str:
        return f"SlackSink(base_url={self._base_url!r}, token=SecretStr('**********'))"

    def _client(self) -> WebClient:
        client = getattr(self._local, "client", None)
        if client is None:
            client = WebClient(
                token=self._token.get_secret_value(),
                base_url=self._base_url,
                timeout=self._timeout_s,
                retry_handlers=[
                    ConnectionErrorRetryHandler(max_retry_count=2),
                    RateLimitErrorRetryHandler(max_retry_count=3),  # honours Retry-After
                    ServerErrorRetryHandler(max_retry_count=2),
                ],
            )
            self._local.client = client
        return client

    def submit(self, alert: Alert, abandon: threading.Event) -> Future[Outcome]:
        future: Future[Outcome] = Future()
        self._queue.put((alert, abandon, future))
        return future

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            alert, abandon, future = item
            try:
                future.set_result(self._deliver(alert, abandon))
            except Exception as err:  # a bug, surfaced to the worker loop as an undeliverable alert
                future.set_exception(err)

    def _deliver(self, alert: Alert, abandon: threading.Event) -> Outcome:
        delay = min(1.0, self._max_backoff_s)
        channel, thread_ts = thread_of(alert, abandon)
        while True:
            if abandon.is_set():  # the partition moved to another worker while this alert was queued
                return Outcome("abandoned", reason="partition revoked or worker stopping")
            try:
                response = self._client().chat_postMessage(
                    channel=channel,
                    text=alert.text,
                    blocks=alert.blocks,
                    metadata=alert.metadata,
                    thread_ts=thread_ts,
                    unfurl_links=False,
                    unfurl_media=False,
                )
                return Outcome("sent", channel=response.get("channel"), ts=response.get("ts"))
            except SlackApiError as err:
                status = err.response.status_code
                error = err.response.get("error") if isinstance(err.response.data, dict) else None
                if not (status == 429 or status >= 500 or error in TRANSIENT_ERRORS):
                    return Outcome("undeliverable", reason=f"Slack refused the alert: {error or f'HTTP {status}'}")
                reason = f"HTTP {status}" + (f" {error}" if error else "")
                wait = max(delay, _retry_after(err.response.headers))
            except (OSError, HTTPException) as err:  # refused, reset, timeout, DNS, TLS (URLError is an OSError)
                reason = f"{type(err).__name__}: {err}"
                wait = delay
            # Anything else is a bug, not an outage: it propagates and the alert is dead-lettered.
            log.warning(
                "Slack unavailable (%s); alert for event %s (rule %s) retried in %.1fs",
                reason, alert.event_id, alert.rule_id, wait,
            )
            abandon.wait(wait)
            delay = min(delay * 2, self._max_backoff_s)

    def close(self) -> None:
        for _ in self._threads:
            self._queue.put(None)


def thread_of(alert: Alert, abandon: threading.Event) -> tuple[str, str | None]:
    """Where a reply goes: under its parent once that is posted; top-level if the parent never made it."""
    if alert.thread_ts is not None or alert.parent is None:
        return alert.channel, alert.thread_ts
    while not alert.parent.done() and not abandon.is_set():
        abandon.wait(0.05)  # the parent was queued first, so it is being posted by now
    if alert.parent.done() and not alert.parent.cancelled() and alert.parent.exception() is None:
        outcome = alert.parent.result()
        if outcome.status == "sent" and outcome.ts:
            return outcome.channel or alert.channel, outcome.ts
    return alert.channel, None


def _retry_after(headers: Any) -> float:
    """Slack's Retry-After (seconds) when it sent one, else 0."""
    for name, value in (headers or {}).items():
        if name.lower() == "retry-after":
            value = value[0] if isinstance(value, list) else value
            try:
                return min(float(value), 600.0)
            except (TypeError, ValueError):
                return 0.0
    return 0.0
