"""Where rendered alerts go: Slack (chat.postMessage through slack-sdk); without a token, stdout (stdout.py).

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

A post sent in full that got no answer (the timeout ran out, the connection dropped while
waiting) may be in Slack all the same: Slack had it and never answered. Before it is posted
again, the channel (or thread) is searched for a message naming its slots, like after a crash
(tests/faults found the duplicates a stalled Slack made without this).

`find` answers the other question exactly-once needs: which of these slots (delivery.py) are
already in the channel? (`conversations.history` and `.replies`, with their metadata.)

For /metrics and /readyz (observability/): every Slack API call is timed and its result
reported to `observe` (method, seconds, Call), posts retried are counted by channel, and
`check()` asks `auth.test` whether Slack is reachable with this token.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from http.client import HTTPException
from typing import Any, Literal, Protocol
from urllib.error import URLError

from pydantic import SecretStr
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from ..alerting import Alert, is_card, with_card
from .slackhttp import KeepAliveWebClient

log = logging.getLogger(__name__)

#: Errors Slack returns with HTTP 200 that mean "try again later", not "never".
TRANSIENT_ERRORS = {"ratelimited", "service_unavailable", "fatal_error", "internal_error", "request_timeout"}
CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{6,}$")
FIND_PAGES = 10  # at most this many pages of 200 messages are searched
BASES_KEPT = 2000  # alerts whose text and blocks are kept for card updates (else fetched once from the history)
FIRST_RETRY_S = 0.25  # then doubling up to max_backoff_s: a blip costs little, an outage is not hammered
HOLD_CHECK_S = 0.1  # how often a post held while the group membership is in doubt looks again
UNANSWERED_MARGIN_S = 60  # a post that got no answer is looked for this far before it was sent (clocks differ)


@dataclass(frozen=True)
class Outcome:
    status: Literal["sent", "undeliverable", "abandoned", "found", "missing"]
    reason: str = ""
    channel: str | None = None
    ts: str | None = None
    found: Mapping[str, str] = field(default_factory=dict)  # a search: slot -> ts of the message that fills it


@dataclass(frozen=True)
class Search:
    """Which of these slots are already in the channel? (Every message the worker posts names its slots in its
    metadata, see delivery.py.) One search covers every slot of a channel that a crash left in doubt."""

    channel: str  # an id, or a name (resolved with conversations.list)
    oldest: float  # unix seconds: how far back the channel is searched
    slots: frozenset[str] = frozenset()  # top-level messages: alerts, digests
    threads: Mapping[str, frozenset[str]] = field(default_factory=dict)  # thread ts -> reply slots in it
    orphans: Mapping[str, str] = field(default_factory=dict)  # reply slot -> its task's slot: its thread was not known


def slots_of(message: dict[str, Any]) -> list[str]:
    metadata = message.get("metadata") or {}
    return list(((metadata.get("event_payload") or {}).get("slots")) or ())


@dataclass(frozen=True)
class Call:
    """How one Slack API call ended: ok; refused (Slack answered no: a bad channel, a bad token); or unavailable
    (no answer, a 5xx, a transient error: retried). `reason` is short and never holds the token."""

    result: Literal["ok", "refused", "unavailable"]
    reason: str = ""


#: Told of every Slack API call: its method (e.g. "chat.postMessage"), how long it took in seconds, how it ended.
Observe = Callable[[str, float, Call], None]


def _ignore(method: str, seconds: float, call: Call) -> None:
    pass


class _TimedClient(KeepAliveWebClient):
    """slack-sdk's WebClient (over a kept-alive connection: slackhttp.py), with each API call timed and its ending reported (every method goes through api_call)."""

    def __init__(self, observe: Observe, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._observe = observe

    def api_call(self, api_method: str, **kwargs: Any) -> Any:
        started = time.perf_counter()
        call = Call("ok")
        try:
            return super().api_call(api_method, **kwargs)
        except SlackApiError as err:
            call = _classify(err)
            raise
        except (OSError, HTTPException) as err:
            call = Call("unavailable", type(err).__name__)
            raise
        finally:
            self._observe(api_method, time.perf_counter() - started, call)


def _classify(err: SlackApiError) -> Call:
    status = err.response.status_code
    error = err.response.get("error") if isinstance(err.response.data, dict) else None
    transient = status == 429 or status >= 500 or error in TRANSIENT_ERRORS
    reason = error if status == 200 and error else f"HTTP {status}" + (f" {error}" if error else "")
    return Call("unavailable" if transient else "refused", reason)


#: True while posts must wait: the worker's group membership is in doubt (delivery.py, rule 4).
InDoubt = Callable[[], bool]


class Sink(Protocol):
    def submit(self, alert: Alert, abandon: threading.Event, hold: InDoubt | None = None) -> Future[Outcome]: ...

    def find(self, search: Search, abandon: threading.Event) -> Future[Outcome]: ...

    def update_card(self, channel: str, ts: str, card: list[dict[str, Any]], abandon: threading.Event) -> Future[Outcome]: ...

    def close(self) -> None: ...


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
        observe: Observe | None = None,
        search: bool = True,
    ) -> None:
        self._token = token
        self._search = search  # SLACK_HISTORY_LOOKUP: a post that got no answer is looked for before it is sent again
        self._observe = observe or _ignore
        self.retried: Counter[str] = Counter()  # channel -> post attempts retried after a transient failure (/metrics)
        self._retried_lock = threading.Lock()  # the sink's threads all count
        self._base_url = base_url
        self._timeout_s = timeout_s
        self._max_backoff_s = max_backoff_s
        self._local = threading.local()
        self._channel_ids: dict[str, str] = {}  # channel name -> id, for searches
        self._bases: dict[tuple[str, str], tuple[str, list[dict[str, Any]]]] = {}  # (channel, ts) -> an alert's text and blocks
        # Daemon threads, not a ThreadPoolExecutor: a post stuck retrying an unreachable Slack
        # must not hold the process open after SIGTERM (its offset is uncommitted anyway).
        self._queue: queue.SimpleQueue[tuple[Job, str, str | None, threading.Event, InDoubt | None, Future[Outcome]] | None] = (
            queue.SimpleQueue()
        )
        self._threads = [threading.Thread(target=self._work, name=f"slack-{i}", daemon=True) for i in range(concurrency)]
        for thread in self._threads:
            thread.start()

    def __repr__(self) -> str:
        return f"SlackSink(base_url={self._base_url!r}, token=SecretStr('**********'))"

    def _client(self) -> WebClient:
        client = getattr(self._local, "client", None)
        if client is None:
            # No retry handlers: every retry is this module's, after an `abandon` check (see above).
            client = _TimedClient(
                self._observe, token=self._token.get_secret_value(), base_url=self._base_url, timeout=self._timeout_s, retry_handlers=[]
            )
            self._local.client = client
        return client

    def submit(self, alert: Alert, abandon: threading.Event, hold: InDoubt | None = None) -> Future[Outcome]:
        """Post `alert`; before each attempt, wait while `hold()` (a retry or a queued post must not go out
        while another worker may have taken its partition over)."""
        slots = slots_of({"metadata": alert.metadata}) if self._search else []
        unanswered: list[float] = []  # when a post went out in full and got no answer

        def post(client: WebClient) -> Outcome:
            channel, thread_ts = thread_of(alert, abandon)
            if unanswered:
                found = self._already_posted(client, channel, thread_ts, unanswered[0], slots)
                if found is not None:
                    return Outcome("sent", channel=found[0], ts=found[1])
            started = time.time()
            try:
                response = client.chat_postMessage(
                    channel=channel,
                    text=alert.text,
                    blocks=alert.blocks,
                    metadata=alert.metadata,
                    thread_ts=thread_ts,
                    unfurl_links=False,
                    unfurl_media=False,
                )
            except (OSError, HTTPException) as err:
                # urllib wraps what fails before the request is sent in URLError; anything else came after it was sent.
                if slots and not unanswered and not isinstance(err, URLError):
                    unanswered.append(started)
                raise
            return Outcome("sent", channel=response.get("channel"), ts=response.get("ts"))

        return self._enqueue(post, f"alert for event {alert.event_id} (rule {alert.rule_id})", abandon, alert.channel, hold)

    def find(self, search: Search, abandon: threading.Event) -> Future[Outcome]:
        def job(client: WebClient) -> Outcome:
            channel = self._channel_id(client, search.channel)
            if channel is None:
                return Outcome("undeliverable", reason=f"channel {search.channel} not found")
            wanted = set(search.slots) | set(search.orphans) | set(search.orphans.values())
            top = _scan(client, channel, None, search.oldest, wanted)
            found = {slot: ts for slot, ts in top.items() if slot in search.slots or slot in search.orphans}
            threads = {ts: set(slots) for ts, slots in search.threads.items()}
            for reply, parent in search.orphans.items():  # under its task's alert, if that made it
                if reply not in found and parent in top:
                    threads.setdefault(top[parent], set()).add(reply)
            for thread_ts, slots in threads.items():
                found |= _scan(client, channel, thread_ts, search.oldest, slots)
            return Outcome("found", channel=channel, found=found)

        return self._enqueue(
            job,
            f"search of {search.channel} for {len(search.slots) + len(search.orphans) + sum(map(len, search.threads.values()))} posts",
            abandon,
        )

    def update_card(self, channel: str, ts: str, card: list[dict[str, Any]], abandon: threading.Event) -> Future[Outcome]:
        """The alert `ts` with its task card replaced (chat.update): what the template rendered stays as it was."""

        def job(client: WebClient) -> Outcome:
            base = self._bases.get((channel, ts))
            if base is None:  # the message as posted, once: by another replica, or before a restart
                page = client.conversations_history(channel=channel, latest=ts, inclusive=True, limit=1)
                message = next((m for m in page.get("messages") or [] if m.get("ts") == ts), None)
                if message is None:
                    return Outcome("undeliverable", reason=f"message {ts} not found in {channel}")
                base = (message.get("text") or "", [b for b in message.get("blocks") or [] if not is_card(b)])
                self._bases[(channel, ts)] = base
                while len(self._bases) > BASES_KEPT:
                    self._bases.pop(next(iter(self._bases)))
            client.chat_update(channel=channel, ts=ts, text=base[0], blocks=with_card(base[1], card))
            return Outcome("sent", channel=channel, ts=ts)

        return self._enqueue(job, f"card update of {ts} in {channel}", abandon)

    def _already_posted(
        self, client: WebClient, channel: str, thread_ts: str | None, since: float, slots: list[str]
    ) -> tuple[str, str] | None:
        """(channel id, ts) of the message a post that got no answer left in Slack after all, if it is there."""
        try:
            channel_id = self._channel_id(client, channel)
            found = _scan(client, channel_id, thread_ts, since - UNANSWERED_MARGIN_S, {slots[0]}) if channel_id else {}
        except SlackApiError as err:
            error = err.response.get("error") if isinstance(err.response.data, dict) else None
            if err.response.status_code == 429 or err.response.status_code >= 500 or error in TRANSIENT_ERRORS:
                raise  # retried: still in doubt
            log.warning("cannot search %s for a post Slack did not answer (%s): posting it again", channel, error)
            return None
        if slots[0] in found:
            log.info("%s reached Slack though it was not answered (%s, ts %s): not posted again", slots[0], channel_id, found[slots[0]])
            return channel_id or channel, found[slots[0]]
        return None

    def _channel_id(self, client: WebClient, channel: str) -> str | None:
        """History is searched by channel id; a name is looked up once (conversations.list, channels:read)."""
        if CHANNEL_ID.match(channel):
            return channel
        name = channel.removeprefix("#")
        if name not in self._channel_ids:
            cursor = None
            while True:
                page = client.conversations_list(types="public_channel,private_channel", limit=1000, cursor=cursor, exclude_archived=True)
                for known in page.get("channels") or []:
                    self._channel_ids[known.get("name")] = known.get("id")
                cursor = (page.get("response_metadata") or {}).get("next_cursor")
                if not cursor:
                    break
        return self._channel_ids.get(name)

    def retries(self) -> dict[str, int]:
        """channel -> post attempts retried so far (a copy: the sink's threads keep counting)."""
        with self._retried_lock:
            return dict(self.retried)

    def check(self) -> str | None:
        """Is Slack reachable with this token? One `auth.test`, no retry: None if so, else why not (/readyz)."""
        try:
            self._client().auth_test()
        except SlackApiError as err:
            return f"auth.test: {_classify(err).reason}"
        except (OSError, HTTPException) as err:
            return f"auth.test: {type(err).__name__}: {err}"
        return None

    def _enqueue(
        self, job: Job, what: str, abandon: threading.Event, channel: str | None = None, hold: InDoubt | None = None
    ) -> Future[Outcome]:
        future: Future[Outcome] = Future()
        self._queue.put((job, what, channel, abandon, hold, future))
        return future

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            job, what, channel, abandon, hold, future = item
            try:
                future.set_result(self._attempt(job, what, abandon, channel, hold))
            except Exception as err:  # a bug, surfaced to the worker loop as an undeliverable alert
                future.set_exception(err)
        client = getattr(self._local, "client", None)
        if client is not None:
            client.close()

    def _attempt(self, job: Job, what: str, abandon: threading.Event, channel: str | None = None, hold: InDoubt | None = None) -> Outcome:
        delay = min(FIRST_RETRY_S, self._max_backoff_s)
        while True:
            while hold is not None and hold() and not abandon.is_set():  # each attempt waits out a hold
                abandon.wait(HOLD_CHECK_S)
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
            if channel is not None:
                with self._retried_lock:
                    self.retried[channel] += 1
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


def _scan(client: WebClient, channel: str, thread_ts: str | None, oldest: float, wanted: set[str]) -> dict[str, str]:
    """slot -> ts of the messages naming `wanted` slots: in a thread's replies, or the channel's top level back to `oldest`."""
    found: dict[str, str] = {}
    cursor = None
    for _ in range(FIND_PAGES):
        if thread_ts is not None:
            page = client.conversations_replies(channel=channel, ts=thread_ts, cursor=cursor, include_all_metadata=True, limit=200)
        else:
            page = client.conversations_history(
                channel=channel, oldest=f"{oldest:.6f}", cursor=cursor, include_all_metadata=True, limit=200
            )
        for message in page.get("messages") or []:
            for slot in slots_of(message):
                if slot in wanted:
                    found.setdefault(slot, message.get("ts"))
        cursor = (page.get("response_metadata") or {}).get("next_cursor")
        if not cursor or len(found) == len(wanted):
            break
    return found


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


def outcome_of(future: Future[Outcome]) -> Outcome:
    if future.cancelled():
        return Outcome("abandoned", reason="cancelled")
    error = future.exception()
    if error is not None:  # a bug, not Slack being down: dead-letter rather than block the partition
        return Outcome("undeliverable", reason=f"internal error while posting: {error!r}")
    return future.result()
