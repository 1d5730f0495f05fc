"""Membership.in_doubt: half a session without an answer from the group coordinator (delivery/outbox.py, rule 5).

And the kafka-python private attributes it and the rebalance listener read (stream/membership.py PRIVATE_ATTRIBUTES): present on a
real consumer of the installed version, a warning or a refusal when missing."""

from __future__ import annotations

import inspect
import logging
import math
import threading
import time
import tomllib
from pathlib import Path
from types import SimpleNamespace

import kafka
import pytest
from packaging.requirements import Requirement

from tests.conftest import produce, wait_for
from worker.stream.membership import (
    PRIVATE_ATTRIBUTES,
    SUPPORTED_KAFKA_PYTHON,
    Membership,
    check_kafka_internals,
    missing_private_attributes,
)


def consumer(session_ms: int = 6000) -> SimpleNamespace:
    heartbeat = SimpleNamespace(config={"session_timeout_ms": session_ms}, last_receive=-math.inf)
    return SimpleNamespace(_coordinator=SimpleNamespace(heartbeat=heartbeat))


def test_in_doubt_after_half_a_session_without_an_answered_heartbeat() -> None:
    fake = consumer()
    membership = Membership(fake)
    assert not membership.in_doubt(), "before any answer there is nothing to doubt"
    fake._coordinator.heartbeat.last_receive = time.monotonic() - 2.9
    assert not membership.in_doubt()
    fake._coordinator.heartbeat.last_receive = time.monotonic() - 3.1
    assert membership.in_doubt()


def test_an_assignment_is_an_answer_too() -> None:
    """No heartbeats run during a rebalance: just after a join the last one is old, yet the membership is new."""
    fake = consumer()
    fake._coordinator.heartbeat.last_receive = time.monotonic() - 10
    membership = Membership(fake)
    assert membership.in_doubt()
    membership.joined()
    assert not membership.in_doubt()


def test_without_kafka_pythons_heartbeat_never_in_doubt() -> None:
    assert not Membership(SimpleNamespace()).in_doubt()


def real_consumer() -> kafka.KafkaConsumer:
    """A real KafkaConsumer that connects to nothing: api_version given, so the constructor does not probe a broker.
    Built on a thread so a kafka-python that did connect in its constructor fails the test instead of hanging it."""
    built: list[kafka.KafkaConsumer] = []
    thread = threading.Thread(
        target=lambda: built.append(kafka.KafkaConsumer(bootstrap_servers="127.0.0.1:1", api_version=(2, 5), group_id="g")), daemon=True
    )
    thread.start()
    thread.join(timeout=20)
    assert built, "KafkaConsumer() did not return without a broker within 20 s (does it connect in the constructor now?)"
    return built[0]


def test_a_real_consumer_has_every_private_attribute_the_worker_reads() -> None:
    consumer = real_consumer()
    try:
        assert missing_private_attributes(consumer) == []
        check_kafka_internals(consumer)  # does not raise
        heartbeat = consumer._coordinator.heartbeat
        assert isinstance(heartbeat.last_receive, float)
        assert isinstance(heartbeat.config["session_timeout_ms"], int)
        assert callable(consumer._net.sleep)
        assert inspect.iscoroutinefunction(consumer._coordinator._commit_offsets_sync_async)
        assert Membership(consumer)._limit_s == heartbeat.config["session_timeout_ms"] / 2000
    finally:
        consumer.close()


def test_the_attributes_are_checked_by_kind_too() -> None:
    fake = consumer()
    fake._coordinator.heartbeat.last_receive = "never"
    assert missing_private_attributes(fake) == [
        "_coordinator.heartbeat.last_receive",
        "_net.sleep",
        "_coordinator._commit_offsets_sync_async",
    ]
    fake._coordinator.heartbeat.config = {}
    assert "_coordinator.heartbeat.config['session_timeout_ms']" in missing_private_attributes(fake)


def test_without_the_heartbeat_one_warning_says_which_protection_is_off(caplog: pytest.LogCaptureFixture) -> None:
    fake = SimpleNamespace(_coordinator=SimpleNamespace())
    with caplog.at_level(logging.WARNING, logger="worker"):
        membership = Membership(fake)
    assert not membership.in_doubt()
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    message = record.getMessage()
    assert "_coordinator.heartbeat.last_receive" in message
    assert "posts are not held while the group membership is in doubt" in message
    assert "an evicted worker may post what its partitions' new owner posts too" in message
    assert f"kafka-python {kafka.__version__} is installed" in message and SUPPORTED_KAFKA_PYTHON in message


def test_with_the_heartbeat_no_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="worker"):
        Membership(consumer())
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_without_the_io_loop_the_worker_refuses_to_start() -> None:
    fake = consumer()
    fake._coordinator._commit_offsets_sync_async = _commit
    with pytest.raises(RuntimeError) as refused:
        check_kafka_internals(fake)
    message = str(refused.value)
    assert "lacks _net.sleep " in message and "_commit_offsets_sync_async" not in message
    assert f"kafka-python {kafka.__version__} is installed" in message and SUPPORTED_KAFKA_PYTHON in message
    fake._net = SimpleNamespace(sleep=lambda delay: None)
    check_kafka_internals(fake)  # now complete: does not raise


def test_the_membership_attributes_alone_do_not_refuse_start_up() -> None:
    fake = SimpleNamespace(_net=SimpleNamespace(sleep=lambda delay: None), _coordinator=SimpleNamespace(_commit_offsets_sync_async=_commit))
    check_kafka_internals(fake)
    assert missing_private_attributes(fake) == [a.path for a in PRIVATE_ATTRIBUTES if not a.required]


def test_pyproject_pins_kafka_python_to_the_supported_range() -> None:
    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"]
    [pin] = [r for r in map(Requirement, project["dependencies"]) if r.name == "kafka-python"]
    assert pin.specifier == Requirement(f"kafka-python{SUPPORTED_KAFKA_PYTHON}").specifier
    assert pin.specifier.contains(kafka.__version__), "the installed kafka-python is outside the supported range"


async def _commit(offsets: object) -> None: ...


def test_records_fetched_while_in_doubt_are_not_handled_but_fetched_again(
    kafka_bootstrap: str, topics: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """A worker perhaps evicted (its network stalled) must not decide about records another worker now owns: the batch
    is put back, and the same records come again once the coordinator has answered."""
    topic = topics["FEEDBACK_TOPIC"]
    end = produce(kafka_bootstrap, topic, [(b"c-1", b"answer %d" % i) for i in range(5)])
    (partition,) = end
    reader = kafka.KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=topics["CONSUMER_GROUP"], enable_auto_commit=False)
    try:
        tp = kafka.TopicPartition(topic, partition)
        reader.assign([tp])
        reader.seek(tp, 0)
        membership = Membership(reader)
        first = wait_for(lambda: reader.poll(timeout_ms=200), 20, "the first fetch")
        reader._coordinator.heartbeat.last_receive = time.monotonic() - 60  # no answer for more than half a session (45 s)
        with caplog.at_level(logging.WARNING, logger="worker"):
            assert membership.screen(first) == {}, "handed to the loop while in doubt"
            assert membership.screen({}) == {}
        assert membership.put_back == 5
        assert [r.message for r in caplog.records].count(caplog.records[0].message) == 1
        assert "not handling fetched records" in caplog.text

        reader._coordinator.heartbeat.last_receive = time.monotonic()  # the coordinator answered: still a member
        again = wait_for(lambda: reader.poll(timeout_ms=200), 20, "the records fetched again")
        assert membership.screen(again) == again
        assert [r.value for r in again[tp]] == [b"answer %d" % i for i in range(5)]
    finally:
        reader.close()
