"""A replay from further back than ALERT_RECORD_RETENTION opens no task and posts nothing.

The records that say an answer was handled (its task, what was posted for it) are kept that long.
A consumer group reset to the earliest offset, or a backfill of old answers, would otherwise open
every old detractor's task again and alert the team a second time about answers long dealt with.
"""

from __future__ import annotations

import json
from datetime import timedelta

from kafka import TopicPartition

from tests.conftest import wait_for
from tests.harness import NOW, Harness

FB = TopicPartition("fb", 0)


def detractor(event_id: str, age: timedelta) -> bytes:
    return json.dumps(
        {
            "event_id": event_id,
            "occurred_at": (NOW - age).isoformat(),
            "survey": "nps",
            "score": 1,
            "customer": {"id": f"c-{event_id}", "segment": "smb", "monthly_value": 100.0},
        }
    ).encode()


def test_an_answer_older_than_the_record_retention_opens_no_task_and_posts_nothing() -> None:
    harness = Harness()
    retention = harness.settings.alert_record_retention
    harness.consumer.append("fb", None, detractor("old", retention + timedelta(hours=1)), 0)
    harness.consumer.append("fb", None, detractor("recent", retention - timedelta(hours=1)), 0)
    harness.start([FB, TopicPartition("actions", 0)])
    worker = harness.worker
    wait_for(lambda: harness.consumer.committed.get(FB) == 2, 10, "both answers handled and committed")
    wait_for(lambda: len(harness.sink.posted) == 1 and worker.cases.by_id, 10, "the recent answer's task and alert")
    harness.finish()
    assert [case.event_id for case in worker.cases.by_id.values()] == ["recent"], "the old answer opened no task"
    assert harness.sink.posted == ["#cx-alerts"] and worker.stats.too_old == 1
    scraped = harness.scrape()
    assert scraped[("feedback_worker_matches_too_old_total", ())] == 1.0
