"""STATE_TOPIC, and the deployments from before it: METRICS_STATE_TOPIC and the old default keep working."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
import uuid
from collections.abc import Callable

import pytest
from kafka import KafkaConsumer, TopicPartition

from tests.conftest import ROOT, WorkerProcess, all_committed, event_bytes, produce, wait_for
from worker.broker import ensure_topics, state_topic
from worker.config import DEFAULT_STATE_TOPIC, LEGACY_STATE_TOPIC, ConfigError, deprecations, load_settings


def test_the_state_topic_has_an_honest_default_and_no_warning() -> None:
    settings = load_settings(None, environ={})
    assert settings.state_topic == DEFAULT_STATE_TOPIC == "feedback.worker.state"
    assert deprecations(settings) == []


def test_metrics_state_topic_alone_is_used_with_a_deprecation_warning() -> None:
    settings = load_settings(None, environ={"METRICS_STATE_TOPIC": "acme.metrics.state"})
    assert settings.state_topic == "acme.metrics.state"
    [warning] = deprecations(settings)
    assert "METRICS_STATE_TOPIC is deprecated: it is now STATE_TOPIC" in warning and "acme.metrics.state" in warning


def test_both_names_set_to_the_same_topic_is_fine_and_to_different_ones_an_error() -> None:
    same = load_settings(None, environ={"METRICS_STATE_TOPIC": "s", "STATE_TOPIC": "s"})
    assert same.state_topic == "s"
    with pytest.raises(ConfigError) as refused:
        load_settings(None, environ={"METRICS_STATE_TOPIC": "old", "STATE_TOPIC": "new"})
    assert str(refused.value) == (
        "environment variable METRICS_STATE_TOPIC (old) and environment variable STATE_TOPIC (new) differ: "
        "METRICS_STATE_TOPIC is the old name of STATE_TOPIC; set only STATE_TOPIC"
    )


def test_run_refuses_two_different_state_topics_before_connecting() -> None:
    env = {"METRICS_STATE_TOPIC": "old", "STATE_TOPIC": "new", "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9", "PATH": ""}
    result = subprocess.run([sys.executable, "-m", "worker", "run"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "METRICS_STATE_TOPIC is the old name of STATE_TOPIC; set only STATE_TOPIC" in result.stderr


def state_keys(bootstrap: str, topic: str, read_s: float = 2.0) -> list[str]:
    """The keys on the state topic, read for `read_s` (a running worker writes to it all the time)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    keys: list[str] = []
    try:
        consumer.assign([TopicPartition(topic, 0)])
        consumer.seek_to_beginning()
        deadline = time.monotonic() + read_s
        while time.monotonic() < deadline:
            keys += [record.key.decode() for records in consumer.poll(timeout_ms=100).values() for record in records]
        return keys
    finally:
        consumer.close()


def test_a_worker_configured_with_metrics_state_topic_alone_keeps_its_state_there(
    kafka_bootstrap: str, topics: dict[str, str], start_worker: Callable[..., WorkerProcess]
) -> None:
    legacy = f"legacy-state-{uuid.uuid4().hex[:8]}"
    env = {"STATE_TOPIC": "", "METRICS_STATE_TOPIC": legacy}  # an empty variable counts as unset
    worker = start_worker("worker", **env)
    worker.wait_assigned()
    end = produce(kafka_bootstrap, topics["FEEDBACK_TOPIC"], [(b"c-1", event_bytes(score=9))])
    wait_for(lambda: all_committed(kafka_bootstrap, topics, end), 30, "the event to be committed")
    keys = wait_for(lambda: [k for k in state_keys(kafka_bootstrap, legacy) if k.startswith("pane|")], 30, "metric partials")
    assert all(f"|{topics['FEEDBACK_TOPIC']}|" in key for key in keys)
    assert worker.output().count("METRICS_STATE_TOPIC is deprecated") == 1  # one warning, at start-up


def test_a_deployment_on_the_old_default_keeps_its_state_topic(kafka_bootstrap: str, caplog: pytest.LogCaptureFixture) -> None:
    settings = load_settings(None, environ={}, kafka_bootstrap_servers=kafka_bootstrap)
    ensure_topics(settings, [LEGACY_STATE_TOPIC], partitions=1, compacted=[LEGACY_STATE_TOPIC])  # its state from before
    with caplog.at_level(logging.WARNING):
        assert state_topic(settings) == LEGACY_STATE_TOPIC
    assert f"Set STATE_TOPIC={LEGACY_STATE_TOPIC} to keep it" in caplog.text
    explicit = load_settings(None, environ={"STATE_TOPIC": DEFAULT_STATE_TOPIC}, kafka_bootstrap_servers=kafka_bootstrap)
    assert state_topic(explicit) == DEFAULT_STATE_TOPIC  # named on purpose: used as named
    ensure_topics(settings, [DEFAULT_STATE_TOPIC], partitions=1, compacted=[DEFAULT_STATE_TOPIC])
    assert state_topic(settings) == DEFAULT_STATE_TOPIC  # once the new one exists, it wins


class _LosingTopic:
    """A one-partition state topic, in memory, that loses the first `lose` records written (as a topic another
    replica created at the same moment did on Tansu): both the producer and the consumer StateView is given."""

    def __init__(self, lose: int) -> None:
        self.lose, self.records, self.read = lose, [], 0

    def send(self, topic: str, key: bytes, value: bytes | None, partition: int | None = None) -> None:
        if self.lose:
            self.lose -= 1
            return
        self.records.append(type("Record", (), {"key": key, "value": value})())

    def flush(self) -> None: ...
    def assign(self, tps: object) -> None: ...
    def seek_to_beginning(self, *tps: object) -> None: ...

    def poll(self, timeout_ms: int = 0, max_records: int = 0) -> dict:
        batch, self.read = self.records[self.read :], len(self.records)
        return {TopicPartition("state", 0): batch} if batch else {}


def test_a_lost_sync_marker_is_written_again_and_the_sync_completes(monkeypatch: pytest.MonkeyPatch) -> None:
    from worker.stream import state

    monkeypatch.setattr(state, "MARKER_AGAIN_S", 0.2)
    topic = _LosingTopic(lose=1)
    view = state.StateView("state", "feedback", topic, topic)
    started = time.monotonic()
    view.sync(timeout_s=10)
    assert view.synced and time.monotonic() - started < 5
    marker, *tombstones = topic.records  # the second marker came back; then both are tombstoned for compaction
    assert marker.value == b"{}" and [t.value for t in tombstones] == [None, None]
    assert marker.key in {t.key for t in tombstones} and len({t.key for t in tombstones}) == 2
