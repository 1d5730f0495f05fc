"""One answer's way out of the worker: its task published as JSON, its alert escaped in Slack, a Slack outage that
commits at once and posts on recovery, a permanent Slack error dead-lettered.

In-process (tests/harness.py): the worker as service.py builds it, posting through the real SlackSink to the
fake Slack over HTTP. What needs a process (kill -9, SIGTERM) is tests/e2e/test_delivery.py.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import pytest

from tests.conftest import event_bytes, wait_for
from tests.e2e.test_delivery import _alerted
from tests.fake_slack import FakeSlack, Scripted
from tests.harness import Harness


@pytest.fixture(autouse=True)
def worker_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="worker")


def test_a_slack_outage_commits_the_offset_at_once_and_posts_the_alert_when_slack_recovers(
    start_harness: Callable[..., Harness], fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    """The alert is owed (on record in the state topic) the moment the event is handled: its offset is committed while
    Slack answers 503, 500 and 429 (with Retry-After), and the alert goes out, once, when Slack recovers."""
    fake_slack.fail_next(*[Scripted(status=503)] * 3, Scripted(status=500), Scripted(status=429, retry_after=1), Scripted(status=502))
    worker = start_harness()
    worker.send(event_bytes(event_id="during-outage", score=1), key=b"c-1")
    wait_for(lambda: fake_slack.attempts >= 2, 30, "the first attempts")
    wait_for(lambda: worker.consumer.all_committed("fb"), 20, "the commit while Slack is still failing")
    assert fake_slack.messages == [] or _alerted(fake_slack) == {"during-outage"}

    wait_for(lambda: _alerted(fake_slack) == {"during-outage"}, 60, "the alert once Slack recovers")
    assert len(fake_slack.messages) == 1
    assert fake_slack.attempts == 7
    assert "Slack unavailable" in caplog.text
    assert worker.records(worker.settings.dlq_topic) == []


def test_the_task_is_published_with_its_event_json(start_harness: Callable[..., Harness], fake_slack: FakeSlack) -> None:
    comment = "Tarne hilines — <!channel> {{ 7*7 }}"
    worker = start_harness()
    worker.send(event_bytes(event_id="et-1", score=4, comment=comment), key=b"c-9")
    (task,) = wait_for(lambda: worker.records(worker.settings.followup_topic), 30, "the task")
    assert task["comment"] == comment  # the task carries the customer's words unchanged
    wait_for(lambda: fake_slack.messages, 30, "the alert")
    posted = json.dumps(fake_slack.messages[0])
    assert "<!channel>" not in posted and "&lt;!channel&gt;" in posted and "{{ 7*7 }}" in posted


def test_a_permanent_slack_error_dead_letters_the_rendered_alert(
    start_harness: Callable[..., Harness], fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    fake_slack.channels = {"#cx-retention"}  # #cx-alerts does not exist in this workspace
    worker = start_harness()
    worker.send(event_bytes(event_id="lost-channel", score=2), key=b"c-1")

    dead = wait_for(lambda: worker.records(worker.settings.dlq_topic), 30, "the dead letter")
    assert len(dead) == 1
    letter = dead[0]
    assert letter["type"] == "alert.undeliverable"
    assert "channel_not_found" in letter["error"]
    assert letter["alert"]["channel"] == "#cx-alerts" and letter["alert"]["blocks"]
    assert json.loads(letter["original"])["event_id"] == "lost-channel"
    # The task still opened, the offset moved on, and the failure was logged loudly.
    tasks = wait_for(lambda: worker.records(worker.settings.followup_topic), 30, "the task")
    assert [t["event_id"] for t in tasks] == ["lost-channel"]
    wait_for(lambda: worker.consumer.all_committed("fb"), 20, "the commit")
    assert "ALERT NOT DELIVERED" in caplog.text and "channel_not_found" in caplog.text
    assert worker.thread.is_alive()
