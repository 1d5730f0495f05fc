"""SlackSink against a fake Slack Web API over real HTTP, through the real slack-sdk client."""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from tests.alerting.test_alerts import HOSTILE_COMMENT, HOSTILE_NAME, make_event, render_alert, strings
from tests.conftest import wait_for
from tests.fake_slack import FakeSlack, Scripted
from worker.alerting import Alert, AlertRenderer
from worker.delivery import Outcome, Search, SlackSink
from worker.rules import load_rules

ROOT = Path(__file__).resolve().parents[2]
RENDERER = AlertRenderer(ROOT / "templates")
RULES = load_rules(ROOT / "rules", ROOT / "templates")


@pytest.fixture(scope="module")
def _fake_slack() -> Iterator[FakeSlack]:
    with FakeSlack(token="xoxb-sink-" + uuid.uuid4().hex) as fake:
        yield fake


@pytest.fixture
def slack(_fake_slack: FakeSlack) -> FakeSlack:
    """The fake Slack, as new: every channel exists, nothing posted, nothing scripted."""
    _fake_slack.reset()
    return _fake_slack


@pytest.fixture
def make_sink() -> Iterator[Any]:
    sinks: list[SlackSink] = []

    def make(base_url: str, token: str, **kwargs: Any) -> SlackSink:
        kwargs = {"concurrency": 2, "max_backoff_s": 0.05, "timeout_s": 5} | kwargs
        sink = SlackSink(SecretStr(token), base_url, **kwargs)
        sinks.append(sink)
        return sink

    yield make
    for sink in sinks:
        sink.close()


@pytest.fixture
def sink(slack: FakeSlack, make_sink: Any) -> SlackSink:
    return make_sink(slack.url, slack.token)


@pytest.fixture
def sink_warnings() -> Iterator[list[str]]:
    """The worker's own log lines about Slack (one per failed attempt)."""
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    logger = logging.getLogger("worker.delivery.sinks")
    handler = Collect(logging.WARNING)
    logger.addHandler(handler)
    yield lines
    logger.removeHandler(handler)


def an_alert(channel: str = "#cx-alerts", **event_fields: Any) -> Alert:
    event = make_event(event_id=f"evt-{uuid.uuid4().hex[:8]}", **event_fields)
    return render_alert(RENDERER, RULES, "detractor.slack.j2", event, channel=channel)


def deliver(sink: SlackSink, alert: Alert, abandon: threading.Event | None = None, timeout: float = 15) -> Outcome:
    future: Future[Outcome] = sink.submit(alert, abandon or threading.Event())
    return future.result(timeout=timeout)


def closed_port() -> int:
    """A local port nothing listens on: connections are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_post_is_sent_with_blocks_metadata_and_no_unfurling(slack, sink):
    alert = an_alert()
    outcome = deliver(sink, alert)

    assert outcome.status == "sent"
    assert slack.attempts == 1 and len(slack.messages) == 1
    posted = slack.messages[0]
    assert outcome.ts == posted["ts"] and outcome.ts
    assert outcome.channel == slack.channel_id("#cx-alerts")  # Slack answers with the channel's id, not its name
    assert posted["channel"] == "#cx-alerts"
    assert posted["text"] == alert.text
    assert posted["blocks"] == alert.blocks and len(posted["blocks"]) >= 5
    assert posted["metadata"] == {
        "event_type": "feedback_alert",
        "event_payload": {"event_id": alert.event_id, "task_id": alert.task_id, "rule_id": "nps-detractor", "severity": "high"},
    }
    assert posted["unfurl_links"] is False
    assert posted["unfurl_media"] is False


def test_hostile_alert_reaches_slack_intact_and_escaped(slack, sink):
    alert = an_alert(comment=HOSTILE_COMMENT, customer={"id": "c-1", "name": HOSTILE_NAME, "segment": "<!here>"})
    assert deliver(sink, alert).status == "sent"
    posted = slack.messages[0]
    assert posted["blocks"] == alert.blocks and posted["text"] == alert.text
    for text in strings(posted["text"]) + strings(posted["blocks"]) + strings(posted["metadata"]):
        assert "<" not in text, f"raw '<' posted to Slack: {text!r}"
    assert any("&lt;!channel&gt;" in text and "{{ 7*7 }}" in text for text in strings(posted["blocks"]))


def test_rate_limited_429_waits_retry_after_then_sends(slack, sink):
    slack.fail_next(Scripted(status=429, retry_after=1))
    started = time.monotonic()
    outcome = deliver(sink, an_alert())
    assert outcome.status == "sent"
    assert slack.attempts == 2, "one rate-limited attempt, then the post"
    assert len(slack.messages) == 1 and outcome.ts == slack.messages[0]["ts"]
    assert time.monotonic() - started >= 1.0, "Retry-After: 1 was not honoured"


def test_sustained_rate_limiting_outlasting_slack_sdk_retries_is_still_retried(slack, sink):
    # slack-sdk gives up after 3 retries of a 429; the sink must keep going, not drop the alert.
    slack.fail_next(*[Scripted(status=429, retry_after=0, error="ratelimited")] * 4)
    outcome = deliver(sink, an_alert())
    assert outcome.status == "sent", outcome
    assert slack.attempts == 5 and len(slack.messages) == 1


def test_server_errors_are_retried_until_sent(slack, sink, sink_warnings):
    slack.fail_next(Scripted(status=500), Scripted(status=503), Scripted(status=502))
    outcome = deliver(sink, an_alert())
    assert outcome.status == "sent"
    assert slack.attempts == 4 and len(slack.messages) == 1
    assert outcome.ts == slack.messages[0]["ts"]
    assert any("HTTP 502" in line for line in sink_warnings)


@pytest.mark.parametrize("error", ["ratelimited", "service_unavailable", "internal_error"])
def test_transient_slack_errors_with_http_200_are_retried(slack, sink, error):
    slack.fail_next(Scripted(error=error), Scripted(error=error))
    started = time.monotonic()
    outcome = deliver(sink, an_alert())
    assert outcome.status == "sent"
    assert slack.attempts == 3 and len(slack.messages) == 1
    # The sink was made with max_backoff_s=0.05: no wait may exceed it (the first one included).
    assert time.monotonic() - started < 0.9, "backoff ignored max_backoff_s"


def test_unreachable_slack_is_retried_until_abandoned(make_sink, sink_warnings):
    sink = make_sink(f"http://127.0.0.1:{closed_port()}/api/", "xoxb-unreachable")
    abandon = threading.Event()
    timer = threading.Timer(0.5, abandon.set)  # the partition is revoked half a second in
    timer.start()
    try:
        outcome = deliver(sink, an_alert(), abandon, timeout=15)
    finally:
        timer.cancel()
    assert outcome.status == "abandoned", outcome
    assert abandon.is_set(), "gave up before the worker abandoned the alert"
    assert any("Slack unavailable" in line and "Connection refused" in line for line in sink_warnings), sink_warnings


def test_alert_abandoned_while_queued_is_never_posted(slack, sink):
    abandon = threading.Event()
    abandon.set()
    outcome = deliver(sink, an_alert(), abandon)
    assert outcome.status == "abandoned"
    assert slack.attempts == 0 and slack.messages == []


def test_a_post_waits_while_held_and_goes_out_once_the_hold_ends_or_never_if_abandoned(slack, sink):
    """Held while the worker's group membership is in doubt (its partitions may be another worker's by now)."""
    asked = [0]
    held = threading.Event()
    held.set()

    def hold() -> bool:
        asked[0] += 1
        return held.is_set()

    future = sink.submit(an_alert(), threading.Event(), hold)
    wait_for(lambda: asked[0] >= 3, 10, "the post looking again whether it may go")
    assert not future.done() and slack.attempts == 0
    held.clear()
    assert future.result(timeout=15).status == "sent" and slack.attempts == 1

    abandon = threading.Event()
    held.set()
    future = sink.submit(an_alert(), abandon, hold)
    wait_for(lambda: asked[0] >= 6, 10, "the second post held")
    abandon.set()  # the partition went to another worker
    assert future.result(timeout=15).status == "abandoned" and slack.attempts == 1


@pytest.mark.parametrize("problem", ["channel_not_found", "invalid_auth", "not_in_channel"])
def test_permanent_errors_are_undeliverable_with_the_slack_error(slack, make_sink, problem):
    token, channel = slack.token, "#cx-alerts"
    if problem == "channel_not_found":
        slack.channels = {"#cx-alerts"}
        channel = "#no-such-channel"
    elif problem == "invalid_auth":
        token = "xoxb-revoked-" + uuid.uuid4().hex
    else:
        slack.fail_next(Scripted(error="not_in_channel"))
    sink = make_sink(slack.url, token)

    outcome = deliver(sink, an_alert(channel=channel))
    assert outcome.status == "undeliverable"
    assert problem in outcome.reason
    assert slack.attempts == 1, "a permanent error must not be retried"
    assert slack.messages == []


def test_alerts_are_posted_in_parallel_and_each_settles(slack, make_sink):
    sink = make_sink(slack.url, slack.token, concurrency=4)
    alerts = [an_alert() for _ in range(12)]
    futures = [sink.submit(alert, threading.Event()) for alert in alerts]
    outcomes = [future.result(timeout=15) for future in futures]
    assert [o.status for o in outcomes] == ["sent"] * 12
    assert {m["metadata"]["event_payload"]["event_id"] for m in slack.messages} == {a.event_id for a in alerts}
    assert len({o.ts for o in outcomes}) == 12


def test_a_bug_while_posting_is_not_mistaken_for_an_outage(slack, sink, monkeypatch):
    # Only network failures are retried; a programming error surfaces so the alert is dead-lettered.
    def broken(*args: Any, **kwargs: Any) -> None:
        raise KeyError("blocks")

    monkeypatch.setattr(sink, "_client", lambda: type("C", (), {"chat_postMessage": staticmethod(broken)})())
    future = sink.submit(an_alert(), threading.Event())
    with pytest.raises(KeyError):
        future.result(timeout=5)


def test_retry_after_is_honoured_after_slack_sdk_gives_up(slack, make_sink, sink_warnings):
    # slack-sdk retries a 429 three times itself; the fourth 429 reaches the sink with Retry-After 1.
    slack.fail_next(*[Scripted(status=429, retry_after=0)] * 3, Scripted(status=429, retry_after=1))
    sink = make_sink(slack.url, slack.token, max_backoff_s=0.05)
    assert deliver(sink, an_alert(), timeout=30).status == "sent"
    assert any("HTTP 429 ratelimited" in line and "retried in 1.0s" in line for line in sink_warnings), sink_warnings


def test_find_tells_which_slots_are_in_the_channel_already_at_the_top_or_in_threads(slack, sink):
    """After a crash: which of these messages are in Slack? One search, through history and threads, by metadata."""

    def post(slot: str, thread_ts: str | None = None) -> str:
        alert = an_alert()
        alert.metadata = {"event_type": "feedback_alert", "event_payload": {"slots": [slot]}}
        alert.thread_ts = thread_ts
        return deliver(sink, alert).ts

    parent = post("task-1")
    in_thread = post("task-1/e-2", thread_ts=parent)
    top_level = post("task-9/e-3")  # its parent had not made it then
    digest = post("task-5")
    search = Search(
        "#cx-alerts",
        time.time() - 60,
        slots=frozenset({"task-1", "task-2", "task-5"}),
        threads={parent: frozenset({"task-1/e-2", "task-1/e-4"})},
        orphans={"task-9/e-3": "task-9", "task-1/e-6": "task-1"},
    )
    outcome = sink.find(search, threading.Event()).result(timeout=10)
    assert outcome.status == "found" and outcome.channel == slack.channel_id("#cx-alerts")  # the name was looked up
    assert dict(outcome.found) == {"task-1": parent, "task-5": digest, "task-1/e-2": in_thread, "task-9/e-3": top_level}
    assert len(slack.messages) == 4  # searching posted nothing

    slack.scopes.discard("channels:history")
    refused = sink.find(search, threading.Event()).result(timeout=10)
    assert refused.status == "undeliverable" and "missing_scope" in refused.reason


# -- what /metrics and /readyz learn from the sink --------------------------------------------------


def test_every_slack_call_is_timed_and_its_ending_reported(slack, make_sink):
    calls: list[tuple[str, float, Any]] = []
    sink = make_sink(slack.url, slack.token, observe=lambda method, seconds, call: calls.append((method, seconds, call)))
    slack.fail_next(Scripted(status=503))
    assert deliver(sink, an_alert()).status == "sent"
    assert [(method, call.result) for method, _, call in calls] == [("chat.postMessage", "unavailable"), ("chat.postMessage", "ok")]
    assert calls[0][2].reason.startswith("HTTP 503")
    assert all(0 < seconds < 5 for _, seconds, _ in calls)

    calls.clear()
    slack.channels = {"#cx-alerts"}
    assert deliver(sink, an_alert(channel="#nowhere")).status == "undeliverable"
    assert [(method, call.result, call.reason) for method, _, call in calls] == [("chat.postMessage", "refused", "channel_not_found")]


def test_posts_retried_are_counted_by_channel(slack, sink):
    slack.fail_next(Scripted(status=500), Scripted(error="ratelimited"))
    assert deliver(sink, an_alert(channel="#cx-alerts")).status == "sent"
    assert deliver(sink, an_alert(channel="#cx-leads")).status == "sent"
    assert sink.retries() == {"#cx-alerts": 2}


def test_check_asks_auth_test_and_says_why_slack_is_not_usable(slack, make_sink):
    assert make_sink(slack.url, slack.token).check() is None
    assert slack.calls_to("auth.test"), "the check must really ask Slack"
    revoked = make_sink(slack.url, "xoxb-revoked-" + uuid.uuid4().hex).check()
    assert revoked == "auth.test: invalid_auth"
    down = make_sink(f"http://127.0.0.1:{closed_port()}/api/", "xoxb-unreachable").check()
    assert down is not None and down.startswith("auth.test: URLError") and "refused" in down


@pytest.mark.parametrize("search", [True, False])
def test_a_post_slack_took_but_did_not_answer_in_time_is_looked_for_before_it_is_sent_again(slack, make_sink, search):
    """Slack had the post and answered after the timeout: posting it again would show it twice (found by tests/faults).
    With SLACK_HISTORY_LOOKUP off it is posted again, as before."""
    sink = make_sink(slack.url, slack.token, timeout_s=1, search=search)
    alert = an_alert()
    alert.metadata["event_payload"]["slots"] = [alert.task_id]  # as delivery.py names them
    slack.delay_s = 1.5  # longer than the timeout: the post lands, the answer comes too late

    def answer_promptly_once_it_landed() -> None:
        wait_for(lambda: slack.messages, 10, "the first post to land")
        slack.delay_s = 0

    helper = threading.Thread(target=answer_promptly_once_it_landed)
    helper.start()
    outcome = deliver(sink, alert)
    helper.join()
    assert outcome.status == "sent"
    if search:
        assert len(slack.messages) == 1 and slack.attempts == 1
        assert outcome.ts == slack.messages[0]["ts"]
        assert slack.calls_to("conversations.history")
    else:
        assert len(slack.messages) == 2 and not slack.calls_to("conversations.history")


def test_a_post_refused_before_it_was_sent_is_not_looked_for(slack, sink):
    alert = an_alert()
    alert.metadata["event_payload"]["slots"] = [alert.task_id]
    slack.fail_next(Scripted(status=503))
    assert deliver(sink, alert).status == "sent"
    assert len(slack.messages) == 1 and not slack.calls_to("conversations.history")


# -- one kept-alive connection per sink thread (slackhttp.py) ---------------------------------------


def test_posts_share_one_kept_alive_connection(slack, make_sink):
    sink = make_sink(slack.url, slack.token, concurrency=1)
    assert all(deliver(sink, an_alert()).status == "sent" for _ in range(5))
    assert len(slack.messages) == 5 and slack.http_connections == 1


def test_a_connection_the_server_closed_while_idle_is_replaced_without_a_failed_attempt(slack, make_sink, sink_warnings):
    sink = make_sink(slack.url, slack.token, concurrency=1)
    assert deliver(sink, an_alert()).status == "sent"
    slack.close_idle_connections()  # on loopback the client's end sees the close before the next post
    assert deliver(sink, an_alert()).status == "sent"
    assert (len(slack.messages), slack.attempts, slack.http_connections) == (2, 2, 2)
    assert sink_warnings == [] and sink.retries() == {}


def test_a_server_that_closes_after_each_answer_gets_a_new_connection_each_time(slack, make_sink, sink_warnings):
    slack.keep_alive = False
    sink = make_sink(slack.url, slack.token, concurrency=1)
    assert all(deliver(sink, an_alert()).status == "sent" for _ in range(3))
    assert (len(slack.messages), slack.attempts, slack.http_connections) == (3, 3, 3)
    assert sink_warnings == []


def test_http_errors_on_a_kept_connection_read_as_before(slack, make_sink):
    """A 429 with Retry-After and a 500 are retried; a refusal is final: the kept connection changes none of it."""
    sink = make_sink(slack.url, slack.token, concurrency=1)
    slack.fail_next(Scripted(status=429, retry_after=0), Scripted(status=500))
    assert deliver(sink, an_alert()).status == "sent"
    slack.channels = {"#cx-alerts"}
    refused = deliver(sink, an_alert(channel="#nowhere"))
    assert refused.status == "undeliverable" and "channel_not_found" in refused.reason
    assert slack.attempts == 4 and slack.http_connections <= 2
