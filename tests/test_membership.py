"""Membership.in_doubt: half a session without an answer from the group coordinator (alerting/delivery.py, rule 4)."""

from __future__ import annotations

import math
import time
from types import SimpleNamespace

from worker.rebalance import Membership


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
