"""Where rendered alerts go: Slack (chat.postMessage through slack-sdk) or stdout.

A sink returns a Future per alert that resolves to an Outcome:
- sent: Slack accepted it;
- undeliverable: Slack refused it for good (channel_not_found, invalid_auth, ...); the
  worker logs it loudly and sends the rendered alert to the DLQ, so it is never lost;
- abandoned: Slack stayed unavailable until the worker stopped or lost the partition; the
  offset stays uncommitted and the event is processed again later.
Transient failures (connection errors, 429, 5xx) never resolve the future: the alert is
retried with backoff (honouring Retry-After) for as long as it takes. The retries are this
module's, not slack-sdk's, so `abandon` is checked before every attempt: once a partition is
given up, at most one request of it is still on the wire, for at most the HTTP timeout. The
next owner relies on that bound before it searches the channel (delivery.py).

`find` answers the other question exactly-once needs: is a message for this task (or this
answer) already in the channel? (`conversations.history` or `.replies` with their metadata.)
"""

from __future__ import annotations

import json
import logging
import queue
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from http.client import HTTPException
from typing import Any, Literal, Protocol, TextIO

from pydantic import SecretStr
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from .render import Alert

log = logging.getLogger(__name__)

#: Errors Slack returns with HTTP 200 that mean "try again later", not "never".
TRANSIENT_ERRORS = {"ratelimited", "service_unavailable", "fatal_error", "internal_error", "request_timeout"}
#: The metadata event types of the messages the worker posts for matches (render.py), by what a lookup looks for:
#: a task's own message (its alert, or the digest listing it), or an answer's thread reply. A reply names its
#: task too, so a task's lookup must not take a reply for the alert.
EVENT_TYPES = {"task_id": ("feedback_alert", "feedback_alert_digest"), "event_id": ("feedback_alert_reply",)}
FIND_PAGES = 10  # at most this many pages of 200 messages are searched
FIRST_RETRY_S = 0.25  # then doubling up to max_backoff_s: a blip costs little, an outage is not hammered


@dataclass(frozen=True)
class Outcome:
    status: Literal["sent", "undeliverable", "abandoned", "found", "missing"]
    reason: str = ""
    channel: str | None = None
    ts: str | None = None


@dataclass(frozen=True)
class Lookup:
    """Is there a message of ours for `value`: the alert or digest of a task id, or the thread reply of an event id?"""

    channel_id: str
    key: Literal["task_id", "event_id"]
    value: str
    oldest: float  # unix seconds: how far back the channel is searched
    thread_ts: str | None = None  # a reply: search the replies of this thread
    parent_task_id: str | None = None  # a reply whose thread was not known: its task's alert, and the top level

    def parent(self) -> Lookup:
        return Lookup(self.channel_id, "task_id", self.parent_task_id or "", self.oldest)

    def matches(self, message: dict[str, Any]) -> bool:
        metadata = message.get("metadata") or {}
        if metadata.get("event_type") not in EVENT_TYPES[self.key]:
            return False
        payload = metadata.get("event_payload") or {}
        return payload.get(self.key) == self.value or self.value in (payload.get(self.key + "s") or ())


class Sink(Protocol):
    def submit(self, alert: Alert, abandon: threading.Event) -> Future[Outcome]: ...

    def find(self, lookup: Lookup, abandon: threading.Event) -> Future[Outcome]: ...

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
        return _done(Outcome("sent", channel=alert.channel, ts=f"stdout-{id(alert)}"))

    def find(self, lookup: Lookup, abandon: threading.Event) -> Future[Outcome]:
        return _done(Outcome("missing", reason="stdout keeps no history"))

    def close(self) -> None:
        pass


Job = Callable[[WebClient], Outcome]


class SlackSink:
    """Posts alerts (and searches channels) with a small thread pool; one WebClient per thread."""

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
        self._queue: queue.SimpleQueue[tuple[Job, str, threading.Event, Future[Outcome]] | None] = queue.SimpleQueue()
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
            # No retry handlers: every retry is this module's, after an `abandon` check (see above).
            client = WebClient(token=self._token.get_secret_value(), base_url=self._base_url, timeout=self._timeout_s,
                               retry_handlers=[])
            self._local.client = client
        return client

    def submit(self, alert: Alert, abandon: threading.Event) -> Future[Outcome]:
        def post(client: WebClient) -> Outcome:
            channel, thread_ts = thread_of(alert, abandon)
            response = client.chat_postMessage(channel=channel, text=alert.text, blocks=alert.blocks, metadata=alert.metadata,
                                               thread_ts=thread_ts, unfurl_links=False, unfurl_media=False)
            return Outcome("sent", channel=response.get("channel"), ts=response.get("ts"))

        return self._enqueue(post, f"alert for event {alert.event_id} (rule {alert.rule_id})", abandon)

    def find(self, lookup: Lookup, abandon: threading.Event) -> Future[Outcome]:
        def search(client: WebClient) -> Outcome:
            if lookup.thread_ts is not None:
                return _search(client, lookup, lookup.thread_ts)
            if lookup.parent_task_id is not None:  # in the thread of its task's alert, if that made it
                parent = _search(client, lookup.parent(), None)
                if parent.status == "found" and parent.ts:
                    found = _search(client, lookup, parent.ts)
                    if found.status == "found":
                        return found
            return _search(client, lookup, None)  # or at the top level

        return self._enqueue(search, f"search of {lookup.channel_id} for {lookup.key} {lookup.value}", abandon)

    def _enqueue(self, job: Job, what: str, abandon: threading.Event) -> Future[Outcome]:
        future: Future[Outcome] = Future()
        self._queue.put((job, what, abandon, future))
        return future

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            job, what, abandon, future = item
            try:
                future.set_result(self._attempt(job, what, abandon))
            except Exception as err:  # a bug, surfaced to the worker loop as an undeliverable alert
                future.set_exception(err)

    def _attempt(self, job: Job, what: str, abandon: threading.Event) -> Outcome:
        delay = min(FIRST_RETRY_S, self._max_backoff_s)
        while True:
            if abandon.is_set():  # the partition moved to another worker while this was queued or retried
                return Outcome("abandoned", reason="partition revoked or worker stopping")
            try:
                return job(self._client())
            except SlackApiError as err:
                status = err.response.status_code
                error = err.response.get("error") if isinstance(err.response.data, dict) else None
                if not (status == 429 or status >= 500 or error in TRANSIENT_ERRORS):
                    return Outcome("undeliverable", reason=f"Slack refused the {what.split(' ', 1)[0]}: {error or f'HTTP {status}'}")
                reason = f"HTTP {status}" + (f" {error}" if error else "")
                wait = max(delay, _retry_after(err.response.headers))
            except (OSError, HTTPException) as err:  # refused, reset, timeout, DNS, TLS (URLError is an OSError)
                reason = f"{type(err).__name__}: {err}"
                wait = delay
            # Anything else is a bug, not an outage: it propagates and the alert is dead-lettered.
            log.warning("Slack unavailable (%s); %s retried in %.1fs", reason, what, wait)
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


def _search(client: WebClient, lookup: Lookup, thread_ts: str | None) -> Outcome:
    """One place: a thread's replies, or the channel's top level back to `lookup.oldest`."""
    cursor = None
    for _ in range(FIND_PAGES):
        if thread_ts is not None:
            page = client.conversations_replies(channel=lookup.channel_id, ts=thread_ts, cursor=cursor,
                                                include_all_metadata=True, limit=200)
        else:
            page = client.conversations_history(channel=lookup.channel_id, oldest=f"{lookup.oldest:.6f}", cursor=cursor,
                                                include_all_metadata=True, limit=200)
        for message in page.get("messages") or []:
            if lookup.matches(message):
                return Outcome("found", channel=lookup.channel_id, ts=message.get("ts"))
        cursor = (page.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            break
    return Outcome("missing")


def _done(outcome: Outcome) -> Future[Outcome]:
    future: Future[Outcome] = Future()
    future.set_result(outcome)
    return future


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
