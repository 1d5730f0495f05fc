"""Digests: a burst of matches becomes a handful of Slack messages that account for every one.

In-process (tests/harness.py): the worker as service.py builds it, posting to the fake Slack over HTTP.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from tests.conftest import event_bytes, wait_for
from tests.fake_slack import FakeSlack
from tests.harness import Harness

GROUPED = """\
rules:
  - id: passive
    description: Passive NPS answer
    when: {survey: nps, score: {gte: 7, lte: 8}}
    severity: low
    alert: {channel: "#cx-low"}
    group: {by: [customer.segment], wait: 1s, interval: 2s, max_items: 20}
"""
PLAIN = """\
rules:
  - id: passive
    description: Passive NPS answer
    when: {survey: nps, score: {gte: 7, lte: 8}}
    severity: low
    alert: {channel: "#cx-low"}
"""


def burst(count: int) -> list[tuple[bytes, bytes]]:
    segments = ["smb", "enterprise"]
    return [
        (
            f"c-{n}".encode(),
            event_bytes(event_id=f"p-{n}", score=7 + n % 2, customer={"id": f"c-{n}", "name": f"Customer {n}", "segment": segments[n % 2]}),
        )
        for n in range(count)
    ]


def send(worker: Harness, answers: list[tuple[bytes, bytes]]) -> None:
    for key, value in answers:
        worker.send(value, key=key)


def _accounted(messages: list[dict]) -> Counter[str]:
    """Every event id a message stands for: a single alert's, or all of a digest's."""
    ids: Counter[str] = Counter()
    for m in messages:
        payload = m["metadata"]["event_payload"]
        ids.update(payload["event_ids"] if m["metadata"]["event_type"] == "feedback_alert_digest" else [payload["event_id"]])
    return ids


def test_a_burst_of_200_grouped_matches_is_a_handful_of_digests_accounting_for_all(
    start_harness: Callable[..., Harness], fake_slack: FakeSlack
) -> None:
    worker = start_harness(GROUPED)
    send(worker, burst(200))
    wait_for(lambda: worker.consumer.all_committed("fb"), 60, "every answer committed")
    # Committed before the digests went out (each answer's line is owed, on record): they follow.
    wait_for(lambda: sum(_accounted(list(fake_slack.messages)).values()) >= 200, 60, "every answer listed in a digest")

    messages = list(fake_slack.messages)
    assert len(messages) <= 6, f"{len(messages)} messages for one burst"
    assert all(m["metadata"]["event_type"] == "feedback_alert_digest" for m in messages)
    assert _accounted(messages) == Counter(f"p-{n}" for n in range(200))  # all 200, none twice
    big = max(messages, key=lambda m: m["metadata"]["event_payload"]["count"])
    listed = [b for b in big["blocks"] if b["type"] == "section" and b["text"]["text"].startswith("• ")]
    assert len(listed) == min(20, big["metadata"]["event_payload"]["count"])
    if big["metadata"]["event_payload"]["count"] > 20:
        assert f"and {big['metadata']['event_payload']['count'] - 20} more" in str(big["blocks"])
    assert {m["metadata"]["event_payload"]["reason"] for m in messages} <= {
        "grouped by customer.segment=smb",
        "grouped by customer.segment=enterprise",
    }
    tasks = worker.records(worker.settings.followup_topic)
    assert len({t["event_id"] for t in tasks}) == 200  # every match still opens its own task


def test_the_channel_rate_limit_turns_a_flood_into_a_summary_that_says_so(
    start_harness: Callable[..., Harness], fake_slack: FakeSlack
) -> None:
    worker = start_harness(PLAIN, channel_rate_limit_per_minute=5)
    send(worker, burst(40))
    wait_for(lambda: worker.consumer.all_committed("fb"), 60, "every answer committed")
    wait_for(lambda: sum(_accounted(list(fake_slack.messages)).values()) >= 40, 60, "the summary, after its wait")

    messages = list(fake_slack.messages)
    singles = [m for m in messages if m["metadata"]["event_type"] == "feedback_alert"]
    summaries = [m for m in messages if m["metadata"]["event_type"] == "feedback_alert_digest"]
    assert len(singles) == 5 and len(summaries) == 1
    assert "rate limit: more than 5 alerts a minute in #cx-low" in summaries[0]["text"]
    assert _accounted(messages) == Counter(f"p-{n}" for n in range(40))
