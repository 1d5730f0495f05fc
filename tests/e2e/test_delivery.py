"""At-least-once delivery: kill -9, SIGTERM and Slack outages lose nothing (what needs no process fault: tests/delivery/test_alert_path.py)."""

from __future__ import annotations

import signal
import time

from tests.conftest import all_committed, event_bytes, produce, read_topic, wait_for
from tests.fake_slack import Scripted
from worker.demo import FeedbackGenerator


def _alerted(fake_slack) -> set[str]:
    return {m["metadata"]["event_payload"]["event_id"] for m in list(fake_slack.messages)}


def test_kill_9_mid_stream_and_restart_loses_nothing(kafka_bootstrap, topics, fake_slack, start_worker):
    from worker.events import FeedbackEvent
    from worker.rules import load_rules

    messages = list(FeedbackGenerator(seed=11).stream(600, malformed_every=50))
    rules = load_rules("rules")
    expected_alerts = set()
    for _, value in messages:
        try:
            event = FeedbackEvent.model_validate_json(value)
        except ValueError:
            continue
        if rules.evaluate(event):
            expected_alerts.add(event.event_id)
    malformed = sum(1 for key, _ in messages if key.startswith(b"bad-"))
    assert len(expected_alerts) > 80

    fake_slack.delay_s = 0.02  # keep alerts in flight so the kill lands mid-stream
    end = produce(kafka_bootstrap, topics["FEEDBACK_TOPIC"], messages)
    first = start_worker("first", SLACK_CONCURRENCY="2")
    wait_for(lambda: len(fake_slack.messages) >= 20, 60, "the first alerts")
    first.kill9()
    posted_before_kill = len(_alerted(fake_slack))
    assert posted_before_kill < len(expected_alerts), "the kill should land before the work is done"

    fake_slack.delay_s = 0.0
    start_worker("second")
    wait_for(lambda: all_committed(kafka_bootstrap, topics, end), 90, "every offset committed after the restart")

    # Every alert was posted (at least once: owed ones by the second worker, which may follow the commit), every task
    # opened, every malformed message dead-lettered.
    wait_for(lambda: _alerted(fake_slack) >= expected_alerts, 60, "every alert, the owed ones posted by the second worker")
    assert _alerted(fake_slack) == expected_alerts
    tasks = read_topic(kafka_bootstrap, topics["FOLLOWUP_TOPIC"], expect=len(expected_alerts), timeout=30)
    assert {t["event_id"] for t in tasks} == expected_alerts
    dead = read_topic(kafka_bootstrap, topics["DLQ_TOPIC"], expect=malformed, timeout=30)
    assert all(d["type"] == "feedback.invalid" for d in dead)
    assert len({(d["source"]["partition"], d["source"]["offset"]) for d in dead}) == malformed


def test_sigterm_finishes_in_hand_work_commits_and_exits_0(kafka_bootstrap, topics, fake_slack, start_worker):
    events = [(b"c-1", event_bytes(event_id=f"d-{i}", score=i % 7)) for i in range(30)]
    end = produce(kafka_bootstrap, topics["FEEDBACK_TOPIC"], events)
    worker = start_worker()
    wait_for(lambda: len(fake_slack.messages) == 30, 60, "all 30 alerts")

    started = time.monotonic()
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=15) == 0
    assert time.monotonic() - started < 8, "SIGTERM should exit within a few seconds"
    assert all_committed(kafka_bootstrap, topics, end)
    assert "stopped:" in worker.output()


def test_sigterm_during_an_outage_commits_and_the_next_worker_posts_what_is_owed(kafka_bootstrap, topics, fake_slack, start_worker):
    fake_slack.fail_next(*[Scripted(status=503)] * 1000)
    end = produce(kafka_bootstrap, topics["FEEDBACK_TOPIC"], [(b"c-1", event_bytes(event_id="held", score=0))])
    worker = start_worker()
    wait_for(lambda: fake_slack.attempts >= 3, 60, "retries against the failing Slack")

    started = time.monotonic()
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == 0
    assert time.monotonic() - started < 10
    assert all_committed(kafka_bootstrap, topics, end), "the alert is owed, on record: its event is done"
    assert "not yet answered" in worker.output()
    assert fake_slack.messages == []

    fake_slack.clear_failures()
    start_worker("restarted", SLACK_TIMEOUT_SECONDS="2")  # the owed post is looked for once older than one request can take
    wait_for(lambda: _alerted(fake_slack) == {"held"}, 60, "the owed alert posted by the next worker")
    assert len(fake_slack.messages) == 1
