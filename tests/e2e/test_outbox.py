"""Slack never holds the stream back (the outbox, worker/delivery/outbox.py), seen from outside a real worker.

An alert's offset is released once its OWED record is in Kafka, not when Slack answers: a Slack
outage stops neither commits nor tasks, and what is owed is delivered once after it, by whichever
worker owns the partition then. A burst into one rate-limited channel does not hold back an alert
for another channel.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Callable

import pytest

from tests.conftest import (
    WorkerProcess,
    all_committed,
    committed,
    event_bytes,
    produce,
    read_topic,
    wait_for,
)
from tests.e2e.test_exactly_once import appearances
from tests.fake_slack import FakeSlack, Scripted

DETRACTOR_CHANNEL = "#cx-alerts"  # the shipped rules' nps-detractor
EFFORT_CHANNEL = "#cx-effort"  # the shipped rules' high-effort (CES 4-5), for a small customer
OUTAGE = [Scripted(status=503)] * 100_000  # far more than the retries (4 posts at a time, with backoff) use up
FAST = {"SLACK_TIMEOUT_SECONDS": "2"}  # a new owner looks up what a dead one owed 7 s after it was owed, not 15 s


def detractor(i: int) -> tuple[bytes, bytes]:
    """An NPS detractor of a customer of its own (none joins another's task as a reply); small, so only nps-detractor matches."""
    customer = {"id": f"c-{i}", "name": f"Customer {i}", "segment": "smb", "monthly_value": 100.0}
    return customer["id"].encode(), event_bytes(event_id=f"d-{i}", score=i % 7, customer=customer)


def promoter(i: int) -> tuple[bytes, bytes]:
    """Score 10, no comment: no rule matches."""
    customer = {"id": f"p-{i}", "name": f"Promoter {i}", "segment": "smb", "monthly_value": 100.0}
    return customer["id"].encode(), event_bytes(event_id=f"p-{i}", score=10, customer=customer)


def stop(worker: WorkerProcess) -> None:
    """SIGTERM and wait for the exit: nothing more reaches Slack from it after this."""
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0, worker.output()[-3000:]


@pytest.mark.broker
def test_a_slack_outage_stops_nothing_and_every_owed_alert_is_delivered_once_after_it(
    kafka_bootstrap: str, topics: dict[str, str], fake_slack: FakeSlack, start_worker: Callable[..., WorkerProcess]
) -> None:
    detractors = [detractor(i) for i in range(150)]
    expected = {f"d-{i}" for i in range(150)}
    fake_slack.fail_method("chat.postMessage", *OUTAGE)  # Slack down: every post answered 503
    end = produce(kafka_bootstrap, topics["FEEDBACK_TOPIC"], detractors + [promoter(i) for i in range(300)])
    assert len(end) == 3 and sum(end.values()) == 450, end

    first = start_worker("first", CHANNEL_RATE_LIMIT_PER_MINUTE="0", **FAST)
    started = time.monotonic()
    # Slack is down, yet every offset is committed and every task published.
    wait_for(lambda: all_committed(kafka_bootstrap, topics, end), 60, "every offset committed while Slack is down")
    print(f"\nall 450 offsets committed {time.monotonic() - started:.1f}s after the worker started, Slack down")
    tasks = read_topic(kafka_bootstrap, topics["FOLLOWUP_TOPIC"], expect=150, timeout=30)
    opened = Counter(t["event_id"] for t in tasks if t["type"] == "followup.opened")
    assert set(opened) == expected and set(opened.values()) == {1}, f"{len(opened)} tasks opened, {len(tasks)} records"
    wait_for(lambda: fake_slack.attempts >= 4, 30, "the worker trying to post during the outage")
    assert fake_slack.messages == [], "no alert can have reached a Slack that answers 503"
    assert "Slack unavailable" in first.output()

    # The worker dies during the outage; a new one owns the partitions and what they owe.
    first.kill9()
    assert fake_slack.messages == []
    attempts_at_kill = fake_slack.attempts
    second = start_worker("second", CHANNEL_RATE_LIMIT_PER_MINUTE="0", **FAST)
    wait_for(lambda: fake_slack.attempts > attempts_at_kill, 60, "the second worker posting what the first owed (still 503)")
    assert fake_slack.messages == []
    assert all_committed(kafka_bootstrap, topics, end)

    fake_slack.clear_failures()  # Slack is back
    recovered = time.monotonic()
    wait_for(lambda: set(appearances(fake_slack)) >= expected, 60, "every owed alert in Slack after the outage")
    print(f"every owed alert in Slack {time.monotonic() - recovered:.1f}s after Slack recovered")
    stop(second)  # nothing more can reach Slack: the count is final

    seen = appearances(fake_slack)
    assert set(seen) == expected, f"unexpected in Slack: {sorted(set(seen) - expected)[:10]}"
    twice = {event: n for event, n in seen.items() if n > 1}
    assert twice == {}, f"{len(twice)} of 150 alerts reached Slack more than once: {sorted(twice.items())[:10]}"
    assert {m["channel"] for m in fake_slack.messages} == {DETRACTOR_CHANNEL}


@pytest.mark.broker
def test_a_burst_into_one_channel_does_not_hold_back_another_channel(
    kafka_bootstrap: str, topics: dict[str, str], fake_slack: FakeSlack, start_worker: Callable[..., WorkerProcess]
) -> None:
    # 1,500: a worker whose offsets waited for the rate-limit summary went at ~100 events/s (bench/outbox.py), so
    # it could not commit them all before the first summary, due 10 s after the burst began; this one can, at ~1,000/s.
    burst = [detractor(i) for i in range(1500)]
    expected = {f"d-{i}" for i in range(1500)}
    worker = start_worker("worker", CHANNEL_RATE_LIMIT_PER_MINUTE="20")  # the default rate limit (the fixture turns it off)
    worker.wait_assigned()

    started = time.monotonic()
    end = produce(kafka_bootstrap, topics["FEEDBACK_TOPIC"], burst)
    # One high-effort CES answer from a small customer, after the burst: the shipped rules send it to #cx-effort.
    vip_sent = time.monotonic()
    vip_end = produce(
        kafka_bootstrap,
        topics["FEEDBACK_TOPIC"],
        [
            (
                b"c-effort",
                event_bytes(
                    event_id="effort-1",
                    survey="ces",
                    score=5,
                    comment="Too many steps",
                    customer={"id": "c-effort", "name": "Effort Ltd", "segment": "smb", "monthly_value": 100.0},
                ),
            )
        ],
    )
    for partition, offset in vip_end.items():
        end[partition] = max(end.get(partition, 0), offset)
    assert len(end) == 3

    effort = wait_for(lambda: fake_slack.in_channel(EFFORT_CHANNEL), 30, f"the alert in {EFFORT_CHANNEL}")
    latency = time.monotonic() - vip_sent
    print(
        f"\n{EFFORT_CHANNEL} alert in Slack {latency:.2f}s after it was produced "
        f"(behind a burst of 1,500 into {DETRACTOR_CHANNEL}; {len(fake_slack.in_channel(DETRACTOR_CHANNEL))} messages there so far)"
    )
    assert [m["metadata"]["event_payload"]["event_id"] for m in effort] == ["effort-1"]
    assert latency < 10, f"the {EFFORT_CHANNEL} alert took {latency:.1f}s: held back by the burst into {DETRACTOR_CHANNEL}"

    # Every offset committed well before a worker waiting on the rate-limit summaries could.
    wait_for(lambda: all_committed(kafka_bootstrap, topics, end), 60, "every offset committed during the burst")
    print(f"all 1,501 offsets committed {time.monotonic() - started:.1f}s after the burst began")
    # The point: the rate-limit summary that lists most of them waits 10 s before it goes out; the offsets did not wait for it.
    assert not [m for m in fake_slack.messages if m["metadata"]["event_type"] == "feedback_alert_digest"], (
        "the rate-limit summary was posted before every offset was committed: were the offsets waiting for it?"
    )

    # Every detractor is in Slack once: alone (the first 20 a minute) or listed in a rate-limit summary.
    wait_for(lambda: set(appearances(fake_slack)) >= expected | {"effort-1"}, 60, "every detractor in Slack")
    stop(worker)
    seen = appearances(fake_slack)
    assert set(seen) == expected | {"effort-1"}, f"unexpected in Slack: {sorted(set(seen) - expected - {'effort-1'})[:10]}"
    twice = {event: n for event, n in seen.items() if n > 1}
    assert twice == {}, f"{len(twice)} detractors reached Slack more than once: {sorted(twice.items())[:10]}"
    alone = [m for m in fake_slack.in_channel(DETRACTOR_CHANNEL) if m["metadata"]["event_type"] == "feedback_alert"]
    summaries = [m for m in fake_slack.in_channel(DETRACTOR_CHANNEL) if m["metadata"]["event_type"] == "feedback_alert_digest"]
    print(f"{DETRACTOR_CHANNEL}: {len(alone)} alerts alone, {len(summaries)} rate-limit summaries")
    assert summaries and len(alone) <= 40, (len(alone), len(summaries))
    assert sum(committed(kafka_bootstrap, topics["CONSUMER_GROUP"], topics["FEEDBACK_TOPIC"]).values()) == 1501
