"""A metric rule's alert is lost to no crash: its firing is recorded with the slot of its alert (worker/metricalerts.py).

While the rule still fires, each snapshot asks whether its alert is in Slack. A crash between
the firing record and the post left the slot without a record: the alert is posted then. A slot
posted (by this process or before a restart) posts nothing again.
"""

from __future__ import annotations

from kafka import TopicPartition

from tests.conftest import wait_for
from tests.harness import NOW, Harness
from worker.delivery import PostState, metric_slot
from worker.loop.metricalerts import MetricAlerts
from worker.metrics import MetricRule, MetricSnapshot

DAY = 24 * 3600


def setup() -> tuple[Harness, MetricRule, MetricSnapshot]:
    harness = Harness()
    worker = harness.worker
    rule = worker.rules.metric_rules[0]
    now = int(NOW.timestamp())
    start = worker.metering.emitter.current_start(DAY, now)
    return harness, rule, worker.metering.emitter.snapshot((DAY, start, rule.condition.dimension_key), False, now)


def post(harness: Harness, alerts: MetricAlerts, rule: MetricRule, snapshot: MetricSnapshot, firing: str, again: bool) -> bool:
    """fire(), then what the worker loop does after each batch: release the posts and apply what Slack answered."""
    worker = harness.worker
    before = len(harness.sink.posted)
    fired = alerts.fire(rule, snapshot, firing, again)
    worker.outbox.release()

    def recorded() -> bool:
        worker.outbox.settle(0.05)
        record = worker.outbox.posts.get(metric_slot(firing))
        return record is not None and record.is_posted

    if len(harness.sink.posted) > before:
        wait_for(recorded, 10, "the posted record")
    return fired


def new_process(harness: Harness) -> MetricAlerts:
    """The alerts side of a worker started again: nothing handled yet, the state topic as it was."""
    worker = harness.worker
    return MetricAlerts(worker.outbox, worker.silences, lambda: worker.renderer, "#cx-leads", worker.stats, worker.clock)


def test_a_firing_posts_its_alert_once_and_asking_again_posts_nothing() -> None:
    harness, rule, snapshot = setup()
    alerts = new_process(harness)
    assert post(harness, alerts, rule, snapshot, "r|@1", again=False)
    assert len(harness.sink.posted) == 1
    assert post(harness, alerts, rule, snapshot, "r|@1", again=True)  # the next snapshot, still firing
    assert post(harness, new_process(harness), rule, snapshot, "r|@1", again=True)  # after a restart: posted
    assert len(harness.sink.posted) == 1


def test_a_crash_between_the_firing_record_and_the_post_does_not_lose_the_alert() -> None:
    harness, rule, snapshot = setup()
    posts = harness.worker.outbox.posts
    assert posts.get(metric_slot("r|@2")) is None  # the firing was recorded; what it owes Slack never was
    assert post(harness, new_process(harness), rule, snapshot, "r|@2", again=True)
    assert len(harness.sink.posted) == 1 and posts.get(metric_slot("r|@2")).state is PostState.POSTED


def test_an_alert_whose_post_was_given_up_is_posted_again_while_the_rule_still_fires() -> None:
    """A post held while the group membership was in doubt is given up with the partitions the worker lost: the
    rule still fires, so the next snapshot posts it (nothing else would: the firing is recorded)."""
    harness, rule, snapshot = setup()
    alerts = new_process(harness)
    worker = harness.worker
    assert alerts.fire(rule, snapshot, "r|@3", again=False)
    worker.outbox.forget([], [worker.outbox.stopping])  # given up before it went out (held while in doubt, then evicted)
    assert harness.sink.posted == [] and worker.outbox.posts.get(metric_slot("r|@3")).is_owed
    assert post(harness, alerts, rule, snapshot, "r|@3", again=True)
    assert len(harness.sink.posted) == 1 and worker.outbox.posts.get(metric_slot("r|@3")).is_posted
    assert post(harness, alerts, rule, snapshot, "r|@3", again=True)
    assert len(harness.sink.posted) == 1


def test_a_rule_firing_longer_than_the_record_retention_is_not_posted_again_after_a_restart() -> None:
    """ALERT_RECORD_RETENTION tombstones old post records; a metric alert's must stay while its rule still fires, or
    the first snapshot after a restart finds no record and posts the alert a second time."""
    harness, rule, snapshot = setup()
    worker = harness.worker
    harness.consumer.assign([TopicPartition("fb", 0)])
    worker.assigned([TopicPartition("fb", 0)])  # the owner of partition 0 expires the records tied to no partition
    state = worker.metering.state
    key = f"{rule.id}|{rule.condition.dimension_key}"
    assert post(harness, new_process(harness), rule, snapshot, "r|@4", again=False)
    state.set_firing(key, True, "r|@4")  # what MetricWatch records with the post
    harness.now = NOW + worker.settings.alert_record_retention * 2
    worker.now = int(harness.now.timestamp())
    worker._next_expiry = 0
    worker._tick()  # the once-a-minute expiry, long after the retention
    assert worker.outbox.posts.get(metric_slot("r|@4")) is not None, "the alert of a rule still firing keeps its record"
    assert post(harness, new_process(harness), rule, snapshot, "r|@4", again=True)  # a restart: the next snapshot
    assert len(harness.sink.posted) == 1
    state.set_firing(key, False)  # the rule recovers: its alert's record expires like any other
    worker._next_expiry = 0
    worker._tick()
    assert worker.outbox.posts.get(metric_slot("r|@4")) is None
