"""Fixtures for the fault tests: a broker that every client reaches through a fault proxy, and one in front of Slack.

Kafka clients learn the broker's address from metadata (its advertised listener), so a proxy in
front of the bootstrap address alone would be bypassed after the first metadata response. This
folder's broker advertises the proxy's port instead: every connection of every client (the
workers', the tests' producers and probes) goes through it. It replaces the session broker for
the tests here (`kafka_bootstrap`), and is healed after each test.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from kafka import KafkaProducer

from tests.conftest import WorkerProcess
from tests.fake_slack import FakeSlack
from tests.faults.proxy import FaultProxy, cpu_seconds
from worker.broker import EmbeddedBroker
from worker.broker.embedded import free_port


@pytest.fixture(scope="package")
def proxied_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EmbeddedBroker, FaultProxy]]:
    port = free_port()
    with FaultProxy(port) as proxy:
        broker = EmbeddedBroker(port=port, advertised_port=proxy.port, log_path=tmp_path_factory.mktemp("broker") / "tansu.log")
        with broker:
            yield broker, proxy


@pytest.fixture
def broker_proxy(proxied_broker: tuple[EmbeddedBroker, FaultProxy]) -> Iterator[FaultProxy]:
    proxy = proxied_broker[1]
    yield proxy
    proxy.heal()  # a failed test never leaves the next one a broken network


@pytest.fixture
def kafka_bootstrap(broker_proxy: FaultProxy) -> str:
    return broker_proxy.address


@pytest.fixture
def slack_proxy(fake_slack: FakeSlack) -> Iterator[FaultProxy]:
    """A proxy in front of the fake Slack: give the worker SLACK_API_URL=slack_url(proxy)."""
    upstream = int(fake_slack.url.split(":")[2].split("/")[0])
    with FaultProxy(upstream) as proxy:
        yield proxy


def slack_url(proxy: FaultProxy) -> str:
    return f"http://{proxy.address}/api/"


def hold(seconds: float, *workers: WorkerProcess) -> None:
    """Keep a fault on for `seconds` (its duration, not a synchronisation), checking every half second
    that no worker died meanwhile."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        for worker in workers:
            assert worker.process is not None and worker.process.poll() is None, (
                f"{worker.stdout_path.stem} exited during the fault:\n{worker.output()[-3000:]}"
            )
        time.sleep(min(0.5, left))


class CpuMeter:
    """The share of one core a process used since this meter was made (all its threads)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.cpu = cpu_seconds(pid)
        self.wall = time.monotonic()

    def share(self) -> float:
        return (cpu_seconds(self.pid) - self.cpu) / self.elapsed()

    def elapsed(self) -> float:
        return time.monotonic() - self.wall


class Stream:
    """Produces messages at `rate` a second on a thread, as upstream producers keep sending whatever
    the worker's network does (during a broker outage their sends wait in the producer)."""

    def __init__(self, bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]], rate: float) -> None:
        self.topic = topic
        self.messages = messages
        self.rate = rate
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", compression_type="lz4")
        self.futures: list = []
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="stream", daemon=True)

    def start(self) -> Stream:
        self._thread.start()
        return self

    def _run(self) -> None:
        began = time.monotonic()
        try:
            for n, (key, value) in enumerate(self.messages):
                if (ahead := began + n / self.rate - time.monotonic()) > 0:
                    time.sleep(ahead)  # pacing the stream
                self.futures.append(self.producer.send(self.topic, key=key, value=value))
        except BaseException as err:  # noqa: BLE001 - reported by end()
            self.error = err

    @property
    def sent(self) -> int:
        return len(self.futures)

    def end(self, timeout: float = 120.0) -> dict[int, int]:
        """Wait for the whole stream to be acknowledged; partition -> one past its last offset."""
        self._thread.join(timeout)
        assert self.error is None and not self._thread.is_alive(), f"the stream did not finish: {self.error!r}"
        self.producer.flush(timeout)
        self.producer.close()
        end: dict[int, int] = {}
        for future in self.futures:
            meta = future.get(timeout=timeout)
            end[meta.partition] = max(end.get(meta.partition, 0), meta.offset + 1)
        return end
