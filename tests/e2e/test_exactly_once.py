"""Every alert exactly once: twenty kill -9s under a burst, or rebalances between two replicas, post nothing twice.

The alerts, thread replies and digests each stand for answers; across everything the fake
Slack received, every matching answer must appear exactly once. Slack answers slowly and
eight posts run in parallel, so every kill lands with several posts in flight.
"""

from __future__ import annotations

import random
import signal
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import WorkerProcess, all_committed, produce, wait_for
from tests.fake_slack import FakeSlack
from worker.demo import FeedbackGenerator
from worker.events import FeedbackEvent
from worker.rules import load_rules

pytestmark = pytest.mark.slow

#: A plain alert, a throttled one (later answers become thread replies) and a grouped one (digests).
RULES = """
rules:
  - id: detractor
    when: {survey: nps, score: {lte: 6}}
    alert: {channel: "#cx-alerts"}
    throttle: {key: customer.id, window: 1h}
  - id: low-csat
    when: {survey: csat, score: {lte: 2}}
    alert: {channel: "#cx-csat"}
    group: {by: [customer.segment], wait: 1s, interval: 1s, max_items: 100}
  - id: high-effort
    when: {survey: ces, score: {gte: 4}}
    alert: {channel: "#cx-effort"}
"""
FAST = {"SLACK_CONCURRENCY": "8", "SLACK_TIMEOUT_SECONDS": "2"}  # a lost post is looked up in Slack 7 s later


def burst(tmp_path: Path, count: int, seed: int) -> tuple[Path, list[tuple[bytes, bytes]], set[str]]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    messages = list(FeedbackGenerator(seed=seed, customers=200).stream(count))
    loaded = load_rules(rules)
    matching = {e.event_id for e in (FeedbackEvent.model_validate_json(v) for _, v in messages) if loaded.evaluate(e)}
    return rules, messages, matching


def appearances(slack: FakeSlack) -> Counter[str]:
    """How often each answer appears in Slack: alone, as a thread reply, or listed in a digest."""
    seen: Counter[str] = Counter()
    for message in list(slack.messages):
        metadata = message.get("metadata") or {}
        payload = metadata.get("event_payload") or {}
        if metadata.get("event_type") in ("feedback_alert", "feedback_alert_reply"):
            seen[payload["event_id"]] += 1
        elif metadata.get("event_type") == "feedback_alert_digest":
            seen.update(payload["event_ids"])
    return seen


def all_in_slack(slack: FakeSlack, matching: set[str]) -> bool:
    """Every matching answer has reached Slack (an offset is committed once its alert is owed, before Slack has it)."""
    return set(appearances(slack)) >= matching


def where(slack: FakeSlack, event_id: str) -> list[str]:
    """Each message an answer appears in: its kind, channel, ts (and thread), slots."""
    found = []
    for message in list(slack.messages):
        metadata = message.get("metadata") or {}
        payload = metadata.get("event_payload") or {}
        if event_id == payload.get("event_id") or event_id in payload.get("event_ids", ()):
            found.append(
                f"{metadata.get('event_type')} in {message['channel']} ts {message['ts']}"
                f"{' thread ' + str(message['thread_ts']) if message.get('thread_ts') else ''} slots {payload.get('slots')}"
            )
    return found


def assert_exactly_once(seen: Counter[str], matching: set[str], slack: FakeSlack | None = None) -> None:
    """Every matching answer in Slack once; given `slack`, a failure lists where the first few doubles appeared."""
    missing, unexpected = sorted(matching - set(seen)), sorted(set(seen) - matching)
    assert (missing, unexpected) == ([], []), f"{len(missing)} answers never reached Slack, {len(unexpected)} should not have"
    twice = {event: n for event, n in seen.items() if n > 1}
    shown = "".join(f"\n  {event}: " + "; ".join(where(slack, event)) for event in sorted(twice)[:10]) if slack else ""
    assert twice == {}, f"{len(twice)} of {len(matching)} answers reached Slack more than once{shown}"


def kill_burst(
    bootstrap: str,
    topics: dict[str, str],
    slack: FakeSlack,
    start: Callable[..., WorkerProcess],
    folder: Path,
    kills: int = 20,
    seed: int = 21,
    **env: str,
) -> tuple[Counter[str], set[str]]:
    """A burst of alerts, a worker killed with kill -9 at `kills` random moments and restarted each time; then
    how often each answer reached Slack, and the answers that should have. Shared with bench/exactly_once.py."""
    rules, messages, matching = burst(folder, 3200, seed=seed)  # long enough for 20 kills now that no restart stalls
    assert len(matching) > 400
    slack.delay_s = 0.03  # keeps posts in flight when a kill lands
    end = produce(bootstrap, topics["FEEDBACK_TOPIC"], messages)
    rng = random.Random(seed)

    def over() -> bool:
        return all_committed(bootstrap, topics, end) and all_in_slack(slack, matching)

    done = 0
    while done < kills and not over():
        worker = start(f"worker-{done}", RULES_PATH=str(rules), **FAST, **env)
        target = len(slack.messages) + rng.randint(1, 12)  # a random moment of the burst
        try:
            wait_for(lambda target=target: len(slack.messages) >= target or over(), 90, f"posts after restart {done}")
        except AssertionError as stuck:  # what the worker was doing says why (CI keeps only this output)
            raise AssertionError(
                f"{stuck}; {len(slack.messages)} messages in Slack; the worker's log ends:\n{worker.output()[-4000:]}"
            ) from None
        worker.kill9()
        done += 1
    assert done == kills, f"the burst was over after {done} kills: make it longer"
    start("last", RULES_PATH=str(rules), **FAST, **env)
    wait_for(over, 180, "every offset committed and every answer in Slack after the last restart")
    return appearances(slack), matching


def test_twenty_kills_under_a_burst_post_every_alert_exactly_once(
    kafka_bootstrap: str, topics: dict[str, str], fake_slack: FakeSlack, start_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    assert_exactly_once(*kill_burst(kafka_bootstrap, topics, fake_slack, start_worker, tmp_path), fake_slack)


def test_rebalances_between_two_replicas_post_every_alert_exactly_once(
    kafka_bootstrap: str, topics: dict[str, str], fake_slack: FakeSlack, start_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    rules, messages, matching = burst(tmp_path, 1500, seed=22)
    fake_slack.delay_s = 0.03
    end = produce(kafka_bootstrap, topics["FEEDBACK_TOPIC"], messages)
    replicas = [start_worker("replica-0", RULES_PATH=str(rules), **FAST), start_worker("replica-1", RULES_PATH=str(rules), **FAST)]
    for replica in replicas:
        replica.wait_assigned()
    rng = random.Random(6)
    for n in range(2, 10):  # stop one replica gracefully and start another: each is a rebalance while posts fly
        target = len(fake_slack.messages) + rng.randint(5, 25)
        wait_for(lambda target=target: len(fake_slack.messages) >= target or all_in_slack(fake_slack, matching), 90, "posts")
        leaving = replicas.pop(rng.randrange(len(replicas)))
        leaving.signal(signal.SIGTERM)
        assert leaving.wait(timeout=30) == 0
        replicas.append(start_worker(f"replica-{n}", RULES_PATH=str(rules), **FAST))
        replicas[-1].wait_assigned()  # a member of the group, handling SIGTERM, before it may be the one to leave
    wait_for(
        lambda: all_committed(kafka_bootstrap, topics, end) and all_in_slack(fake_slack, matching),
        180,
        "every offset committed and every answer in Slack",
    )

    assert_exactly_once(appearances(fake_slack), matching, fake_slack)
