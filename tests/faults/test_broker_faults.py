"""Broker faults: the broker unreachable mid-stream, and one worker's network stalled while the group rebalances.

Every client reaches the broker through the fault proxy (conftest.py). In each test every event is
processed (all offsets committed), every matching answer reaches Slack exactly once (alone, as a
thread reply or in a digest), no worker exits, and a worker waiting on the fault stays under
MAX_CPU of one core (it neither crashes nor spins).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import WorkerProcess, all_committed, wait_for
from tests.e2e.test_exactly_once import all_in_slack, appearances, assert_exactly_once, burst
from tests.fake_slack import FakeSlack
from tests.faults.conftest import CpuMeter, Stream, hold
from tests.faults.proxy import FaultProxy, remote_ports
from worker.broker import EmbeddedBroker

pytestmark = pytest.mark.slow

MAX_CPU = 0.20  # of one core, while a worker waits on a fault
SETTINGS = {"SLACK_CONCURRENCY": "8", "SLACK_TIMEOUT_SECONDS": "3"}


def alive(*workers: WorkerProcess) -> None:
    for worker in workers:
        assert worker.process is not None and worker.process.poll() is None, f"{worker.stdout_path.stem} exited:\n{worker.output()[-3000:]}"


def test_broker_unreachable_for_30s_in_the_middle_of_a_stream(
    proxied_broker: tuple[EmbeddedBroker, FaultProxy],
    broker_proxy: FaultProxy,
    kafka_bootstrap: str,
    topics: dict[str, str],
    fake_slack: FakeSlack,
    start_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    rules, messages, matching = burst(tmp_path, 1600, seed=31)
    worker = start_worker("worker", RULES_PATH=str(rules), **SETTINGS)
    worker.wait_assigned()
    assert worker.process is not None
    ports = remote_ports(worker.process.pid)
    assert broker_proxy.port in ports and proxied_broker[0].port not in ports, f"the worker bypasses the proxy: {ports}"
    stream = Stream(kafka_bootstrap, topics["FEEDBACK_TOPIC"], messages, rate=40).start()  # 40 s of events
    wait_for(lambda: len(fake_slack.messages) >= 40, 60, "the first alerts of the stream")

    cpu = CpuMeter(worker.process.pid)
    posted = len(fake_slack.messages)
    broker_proxy.drop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", broker_proxy.port), timeout=2)
    hold(30, worker)
    share = cpu.share()
    during = len(fake_slack.messages) - posted
    broker_proxy.heal()
    healed = time.monotonic()
    wait_for(lambda: len(fake_slack.messages) > posted + during, 60, "a post after the outage")
    print(
        f"\nbroker unreachable 30 s: worker CPU {share:.1%} of a core; {during} posts landed during the outage; "
        f"{stream.sent} of {len(messages)} events sent by its end; the first post {time.monotonic() - healed:.1f} s "
        f"after the broker came back"
    )

    end = stream.end()
    wait_for(
        lambda: all_committed(kafka_bootstrap, topics, end) and all_in_slack(fake_slack, matching),
        120,
        "every offset committed after the outage and every answer in Slack",
    )
    alive(worker)
    assert share < MAX_CPU, f"the worker used {share:.0%} of a core while the broker was unreachable"
    assert_exactly_once(appearances(fake_slack), matching, fake_slack)


def test_one_worker_network_stalled_while_a_third_joins_the_group(
    broker_proxy: FaultProxy,
    kafka_bootstrap: str,
    topics: dict[str, str],
    fake_slack: FakeSlack,
    start_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    rules, messages, matching = burst(tmp_path, 1600, seed=32)
    fake_slack.delay_s = 0.02  # posts in flight when the stall begins
    stalled, peer = start_worker("stalled", RULES_PATH=str(rules), **SETTINGS), start_worker("peer", RULES_PATH=str(rules), **SETTINGS)
    stalled.wait_assigned()
    peer.wait_assigned()
    assert stalled.process is not None
    stream = Stream(kafka_bootstrap, topics["FEEDBACK_TOPIC"], messages, rate=40).start()
    wait_for(lambda: len(fake_slack.messages) >= 40, 60, "the first alerts of the stream")

    cpu = CpuMeter(stalled.process.pid)
    broker_proxy.stall(pids={stalled.process.pid})
    joining = start_worker("joining", RULES_PATH=str(rules), **SETTINGS)
    joining.wait_assigned(timeout=60)  # the group rebalanced without the stalled worker
    hold(10, stalled, peer, joining)  # and goes on without it for a while
    share = cpu.share()
    broker_proxy.heal()
    print(f"\nworker network stalled {cpu.elapsed():.0f} s during a rebalance: stalled worker's CPU {share:.1%} of a core")

    end = stream.end()
    wait_for(
        lambda: all_committed(kafka_bootstrap, topics, end) and all_in_slack(fake_slack, matching),
        120,
        "every offset committed after the stall and every answer in Slack",
    )
    alive(stalled, peer, joining)
    assert share < MAX_CPU, f"the stalled worker used {share:.0%} of a core while its network was stalled"
    assert_exactly_once(appearances(fake_slack), matching, fake_slack)
