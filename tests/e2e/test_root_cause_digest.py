"""The root-cause digest on the broker: two replicas, one digest per period, the keeper killed between periods.

The expected figures come from the lifecycle records themselves (which period each resolution
fell in, by its `at`), not from the worker's own state.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

from tests.conftest import WorkerProcess, event_bytes, produce, read_topic, wait_for
from tests.fake_slack import FakeSlack
from worker.tasks import task_id_for

EVERY_S = 15
CONFIG = f"""
root_causes: [shipping-delay, billing-error, product-defect, other]
root_cause_digest: {{channel: "#cx-leads", every: {EVERY_S}s}}
"""
API = {"source": "api", "id": "zendesk", "name": "Zendesk"}


def digests(fake_slack: FakeSlack) -> list[dict[str, Any]]:
    return [
        m["metadata"]["event_payload"] for m in fake_slack.in_channel("#cx-leads") if m["metadata"]["event_type"] == "feedback_root_causes"
    ]


def period_end(at: str) -> float:
    moment = datetime.fromisoformat(at).timestamp()
    return (moment // EVERY_S + 1) * EVERY_S


def next_period(margin: float = 1.0) -> None:
    """Wait for the start of a period (plus a margin), so a batch of resolutions falls in one period."""
    now = time.time()
    wait_until = (now // EVERY_S + 1) * EVERY_S + margin
    wait_for(lambda: time.time() >= wait_until, EVERY_S + 5, "the next period")


def test_each_period_is_posted_once_by_two_replicas_with_its_top_causes_and_changes(
    kafka_bootstrap: str,
    topics: dict[str, str],
    fake_slack: FakeSlack,
    start_replicas: Callable[..., list[WorkerProcess]],
) -> None:
    replicas = start_replicas(CONFIG)
    keeper = wait_for(lambda: next((r for r in replicas if "keeping the tasks" in r.output()), None), 60, "a keeper")

    def resolve_batch(prefix: str, causes: list[str]) -> list[str]:
        tasks = [task_id_for(f"{prefix}-{n}") for n in range(len(causes))]
        produce(
            kafka_bootstrap,
            topics["FEEDBACK_TOPIC"],
            [
                (
                    f"c-{prefix}-{n}".encode(),
                    event_bytes(
                        event_id=f"{prefix}-{n}",
                        score=2,
                        comment=f"{cause} hurt us",
                        customer={"id": f"c-{prefix}-{n}", "monthly_value": 100.0 * (n + 1)},
                    ),
                )
                for n, cause in enumerate(causes)
            ],
        )
        wait_for(
            lambda: (
                {
                    r["task_id"]
                    for r in read_topic(kafka_bootstrap, topics["FOLLOWUP_TOPIC"], 0, timeout=1)
                    if r["type"] == "followup.opened"
                }
                >= set(tasks)
            ),
            60,
            f"{prefix} tasks opened",
        )
        next_period()
        produce(
            kafka_bootstrap,
            topics["TASK_ACTIONS_TOPIC"],
            [
                (
                    task.encode(),
                    json.dumps({"action": "resolve", "task_id": task, "actor": API, "root_cause": cause, "resolution": "fixed"}).encode(),
                )
                for task, cause in zip(tasks, causes, strict=True)
            ],
        )
        wait_for(
            lambda: (
                {
                    r["task_id"]
                    for r in read_topic(kafka_bootstrap, topics["FOLLOWUP_TOPIC"], 0, timeout=1)
                    if r["type"] == "followup.resolved"
                }
                >= set(tasks)
            ),
            30,
            f"{prefix} tasks resolved",
        )
        return tasks

    resolve_batch("a", ["shipping-delay", "shipping-delay", "billing-error"])
    first_end = period_end(
        max(r["at"] for r in read_topic(kafka_bootstrap, topics["FOLLOWUP_TOPIC"], 0, timeout=1) if r["type"] == "followup.resolved")
    )
    wait_for(
        lambda: any(datetime.fromisoformat(d["period_end"]).timestamp() == first_end for d in digests(fake_slack)),
        EVERY_S + 30,
        "the first period's digest",
    )
    keeper.kill9()  # the other replica keeps the tasks now: it must not post that period again
    survivor = next(r for r in replicas if r is not keeper)
    wait_for(lambda: "keeping the tasks" in survivor.output(), 60, "the survivor keeps the tasks")
    resolve_batch("b", ["shipping-delay", "product-defect"])
    resolved = [r for r in read_topic(kafka_bootstrap, topics["FOLLOWUP_TOPIC"], 0, timeout=1) if r["type"] == "followup.resolved"]
    last_end = period_end(max(r["at"] for r in resolved))
    wait_for(
        lambda: any(datetime.fromisoformat(d["period_end"]).timestamp() == last_end for d in digests(fake_slack)),
        EVERY_S + 60,
        "the last period's digest",
    )
    posted = digests(fake_slack)
    ends = Counter(datetime.fromisoformat(d["period_end"]).timestamp() for d in posted)
    assert all(n == 1 for n in ends.values()), f"a period posted twice: {ends}"
    # Independently: the causes of the resolutions that fell in each period, by their records' `at`.
    by_period: dict[float, Counter[str]] = {}
    for record in {r["id"]: r for r in resolved}.values():
        by_period.setdefault(period_end(record["at"]), Counter())[record["root_cause"]] += 1
    for digest in posted:
        end = datetime.fromisoformat(digest["period_end"]).timestamp()
        expected = by_period.get(end, Counter())
        assert digest["causes"] == dict(expected), digest
        before = by_period.get(end - EVERY_S, Counter())
        assert digest["causes_before"] == {cause: before[cause] for cause in expected}, digest
        assert digest["tasks"] == sum(expected.values())
    assert first_end in ends and last_end in ends and first_end != last_end
    assert sum(sum(c.values()) for c in by_period.values()) == 5
