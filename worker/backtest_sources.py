"""Where a backtest's history comes from: a JSONL file, or the feedback topic itself.

The file is read in binary, in chunks of lines, so the replay sees the same bytes the worker
would get from Kafka and pays nothing per line for decoding or progress.

The topic is read with a plain KafkaConsumer that has no group: it is assigned every
partition, never commits and never joins the worker's group, so a backtest against
production cannot move the worker's offsets or trigger a rebalance. It stops at the moment
the command started (records stamped later are left for the worker) or when the topic has
been quiet for a while: `end_offsets()` is not trusted, as the embedded Tansu broker gets it
wrong (its `offsets_for_times()` too, hence the timestamp filter on every record).
"""

from __future__ import annotations

import gzip
import os
import sys
import time
from pathlib import Path
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO, TextIO

from .backtest import Replay

CHUNK_BYTES = 1 << 20  # bytes per `feed` call: about 3,000 events
IDLE_STOP_S = 2.0  # a topic quiet this long is read to its end
POLL_MS = 200
CONNECT_TIMEOUT_S = 10.0  # kafka-python waits 30 s by default: long for someone at a terminal


class SourceUnavailable(Exception):
    """The history cannot be read (missing file, unknown topic, unreachable broker); says why.

    `usage`: the command line names something that is not there (exit 2), rather than a failure (exit 1).
    """

    def __init__(self, message: str, usage: bool = True) -> None:
        super().__init__(message)
        self.usage = usage


class Progress:
    """Progress on stderr for long runs only: a bar on a terminal, else a line every few seconds.

    Nothing is printed for a run shorter than `delay_s`, so small backtests and tests stay quiet.
    """

    def __init__(self, label: str, total_bytes: int | None = None, stream: TextIO | None = None,
                 delay_s: float = 1.0, interval_s: float = 5.0) -> None:
        self.label = label
        self.total = total_bytes
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty()
        self.started = time.monotonic()
        self.next = self.started + (delay_s if self.tty else interval_s)
        self.interval = 0.1 if self.tty else interval_s
        self.drawn = False

    def update(self, events: int, done_bytes: int | None = None) -> None:
        now = time.monotonic()
        if now < self.next:
            return
        self.next = now + self.interval
        elapsed = now - self.started
        rate = f"{events / elapsed:,.0f} events/s"
        share = done_bytes / self.total if self.total and done_bytes is not None else None
        if self.tty:
            bar = ""
            if share is not None:
                filled = int(share * 30)
                bar = f"[{'#' * filled}{'-' * (30 - filled)}] {share:4.0%} "
            self.stream.write(f"\r{self.label} {bar}{events:,} events, {rate}\033[K")
            self.drawn = True
        else:
            percent = f" ({share:.0%})" if share is not None else ""
            self.stream.write(f"{self.label}: {events:,} events{percent}, {rate}, {elapsed:.0f} s\n")
        self.stream.flush()

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\r\033[K")
            self.stream.flush()


def replay_file(path: Path, replay: Replay, progress: Progress | None = None, jobs: int = 1) -> None:
    """Feed every line of a JSONL file (gzip if it ends in .gz) to the replay.

    `jobs` > 1: split a large plain file over that many processes (see backtest_parallel);
    the result is the same as one process gives.
    """
    raw = _open(path)
    try:
        if jobs > 1 and path.suffix != ".gz":
            from .backtest_parallel import parallel_possible, replay_file_parallel

            size = os.fstat(raw.fileno()).st_size
            if parallel_possible(replay, size, jobs):
                raw.close()
                replay_file_parallel(path, size, replay, jobs, progress)
                return
        stream: Any = gzip.GzipFile(fileobj=raw) if path.suffix == ".gz" else raw
        line = 0
        for chunk in read_lines(stream, 0, None, f"events file {path}"):
            replay.feed(chunk, line_namer(line))
            line += len(chunk)
            if progress is not None:
                progress.update(replay.read, raw.tell())
    finally:
        raw.close()


def read_lines(stream: BinaryIO, start: int, end: int | None, name: str) -> Iterator[list[bytes]]:
    """Lists of lines (without their newline) from byte `start` (a line start) to `end` (one too, or EOF).

    Read in large blocks and split on b"\\n" only, as a JSONL line ends; what the lines cost is
    one split per block, not a call per line.
    """
    if start:
        stream.seek(start)
    position, carry = start, b""
    while end is None or position < end:
        try:
            block = stream.read(CHUNK_BYTES if end is None else min(CHUNK_BYTES, end - position))
        except (OSError, EOFError) as err:  # a truncated or corrupt .gz
            raise SourceUnavailable(f"cannot read {name} after byte {position}: {err}", usage=False) from None
        if not block:
            break
        position += len(block)
        data = carry + block
        cut = data.rfind(b"\n") + 1
        carry = data[cut:]
        if cut:
            lines = data[:cut].split(b"\n")
            lines.pop()  # the empty string after the last newline
            yield lines
    if carry:
        yield [carry]  # the last line, without a newline at the end of the file


def line_namer(before: int) -> Callable[[int], str]:
    """Names the i-th line of a chunk that follows `before` lines, for an invalid line's place."""
    return lambda i: f"line {before + i + 1}"


def _offset_namer(partition: int, offsets: list[int]) -> Callable[[int], str]:
    return lambda i: f"partition {partition} offset {offsets[i]}"


def _open(path: Path) -> BinaryIO:
    try:
        return open(path, "rb")  # noqa: SIM115 - the caller closes it
    except FileNotFoundError:
        raise SourceUnavailable(f"events file not found: {path}") from None
    except IsADirectoryError:
        raise SourceUnavailable(f"events file is a directory: {path}") from None
    except OSError as err:
        raise SourceUnavailable(f"cannot read events file {path}: {err.strerror}") from None


def file_size(path: Path) -> int | None:
    try:
        return os.path.getsize(path)
    except OSError:
        return None


def replay_topic(
    config: dict[str, Any],
    topic: str,
    since_ms: int,
    replay: Replay,
    progress: Progress | None = None,
    until_ms: int | None = None,
    idle_stop_s: float = IDLE_STOP_S,
    connect_timeout_s: float = CONNECT_TIMEOUT_S,
) -> dict[int, tuple[int, int]]:
    """Feed the records of `topic` stamped in [since_ms, until_ms] to the replay, in partition order.

    `config`: kafka-python client settings (bootstrap, security); group settings are forced off.
    Returns partition -> (first, last) offset read, for the report.
    """
    from kafka import KafkaConsumer, TopicPartition
    from kafka.errors import KafkaError

    until_ms = int(time.time() * 1000) if until_ms is None else until_ms
    try:
        consumer = KafkaConsumer(
            **(config | {"group_id": None, "enable_auto_commit": False, "max_poll_records": 5000,
                         "fetch_max_bytes": 16 * 1024 * 1024, "bootstrap_timeout_ms": int(connect_timeout_s * 1000)})
        )
    except KafkaError as err:
        where = ",".join(config["bootstrap_servers"])
        raise SourceUnavailable(f"cannot reach Kafka at {where} within {connect_timeout_s:g} s ({type(err).__name__})", usage=False) from None
    read: dict[int, tuple[int, int]] = {}
    try:
        partitions = _partitions(consumer, topic)
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        active = set(tps)
        for tp, found in consumer.offsets_for_times({tp: since_ms for tp in tps}).items():
            if found is None:  # no record stamped at or after `since`
                active.discard(tp)
            else:
                consumer.seek(tp, found.offset)
        if len(active) < len(tps):
            consumer.pause(*(set(tps) - active))
        quiet_since = time.monotonic()
        while active:
            batches = consumer.poll(timeout_ms=POLL_MS)
            if not batches:
                if time.monotonic() - quiet_since >= idle_stop_s:
                    break
                continue
            quiet_since = time.monotonic()
            for tp, records in batches.items():
                if tp not in active:
                    continue
                values: list[bytes | None] = []
                offsets: list[int] = []
                done = False
                for record in records:
                    if record.timestamp > until_ms:  # appended after the command started: the rest is newer still
                        done = True
                        break
                    if record.timestamp >= since_ms:
                        values.append(record.value)
                        offsets.append(record.offset)
                if values:
                    replay.feed(values, _offset_namer(tp.partition, offsets), skip_blank=False)
                    first = read.get(tp.partition, (offsets[0], 0))[0]
                    read[tp.partition] = (first, offsets[-1])
                if done:
                    active.discard(tp)
                    consumer.pause(tp)
            if progress is not None:
                progress.update(replay.read)
    except KafkaError as err:
        raise SourceUnavailable(f"reading {topic}: {type(err).__name__}: {err}", usage=False) from None
    finally:
        consumer.close(autocommit=False)
    return read


def _partitions(consumer: Any, topic: str, wait_s: float = 3.0) -> list[int]:
    """The topic's partitions; metadata may take a moment to arrive."""
    deadline = time.monotonic() + wait_s
    while True:
        partitions = consumer.partitions_for_topic(topic)
        if partitions:
            return sorted(partitions)
        if time.monotonic() >= deadline:
            raise SourceUnavailable(f"topic {topic!r} not found")
        time.sleep(0.1)
