"""Replay one large JSONL file on several cores: the file split in line-aligned byte ranges.

Why: validating and evaluating an event costs ~20 µs of Python, and one process uses one
core. Each range is replayed by a forked copy of the (empty) Replay; the parts' counters come
back as plain data and are absorbed in file order, so the report is the one a single process
gives: same counts, same first-seen line of each invalid reason, same samples.

Only when the result cannot depend on event order across ranges: no alert policy (a throttle
would), fork available, and a file big enough to be worth the processes.
"""

from __future__ import annotations

import multiprocessing
import os
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, cast

from .lines import line_namer, read_lines
from .progress import Progress
from .replay import Replay, SourceUnavailable

MIN_BYTES = 16 << 20  # below this (~45,000 events) one process is done before the others start
POLL_S = 0.1


def default_jobs() -> int:
    """The cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def parallel_possible(replay: Replay, size: int, jobs: int) -> bool:
    return jobs > 1 and size >= MIN_BYTES and replay.policy is None and "fork" in multiprocessing.get_all_start_methods()


def split(path: Path, size: int, parts: int) -> list[tuple[int, int]]:
    """`parts` byte ranges covering the file, each starting at the beginning of a line."""
    starts = [0]
    with open(path, "rb") as stream:
        for k in range(1, parts):
            stream.seek(max(size * k // parts - 1, starts[-1]))
            stream.readline()  # to the next line start (the -1: a cut exactly at a line start stays there)
            starts.append(max(stream.tell(), starts[-1]))
    bounds = starts + [size]
    return [(bounds[k], bounds[k + 1]) for k in range(parts) if bounds[k] < bounds[k + 1]]


def replay_file_parallel(path: Path, size: int, replay: Replay, jobs: int, progress: Progress | None = None) -> None:
    """Replay `path` in `jobs` processes and absorb their counters into `replay`."""
    context = multiprocessing.get_context("fork")
    ranges = split(path, size, jobs)
    done_events = [context.Value("q", 0, lock=False) for _ in ranges]
    done_bytes = [context.Value("q", 0, lock=False) for _ in ranges]
    workers: list[tuple[Any, Connection]] = []
    try:
        for k, (start, end) in enumerate(ranges):
            receive, send = context.Pipe(duplex=False)
            process = context.Process(
                target=_part, args=(path, start, end, replay, send, done_events[k], done_bytes[k]), name=f"backtest-{k}", daemon=True
            )
            process.start()
            send.close()
            workers.append((process, receive))
        results: dict[int, Any] = {}
        pending = {conn: k for k, (_, conn) in enumerate(workers)}
        while pending:
            for ready in wait(list(pending), timeout=POLL_S):
                conn = cast(Connection, ready)
                k = pending.pop(conn)
                try:
                    results[k] = conn.recv()
                except EOFError:
                    results[k] = ("error", f"part {k} exited with code {workers[k][0].exitcode} before reporting")
            if progress is not None:
                progress.update(sum(v.value for v in done_events), sum(v.value for v in done_bytes))
        for k in range(len(ranges)):
            kind, payload = results[k]
            if kind == "unavailable":
                raise SourceUnavailable(payload, usage=False)
            if kind == "error":
                raise RuntimeError(f"backtest part {k} of {path} failed:\n{payload}")
            replay.absorb(payload)
    finally:
        for process, conn in workers:
            conn.close()
            if process.is_alive():
                process.terminate()
            process.join()


def _part(path: Path, start: int, end: int, replay: Replay, send: Connection, events: Any, position: Any) -> None:
    """In the child: replay bytes [start, end) and send the counters back."""
    try:
        replay = replay.empty_copy()  # the parent's may already hold counts of another input
        base: list[int] = []

        def line_before() -> int:
            """Lines before `start`: counted only if an invalid line needs its number."""
            if not base:
                with open(path, "rb") as stream:
                    count, left = 0, start
                    while left > 0:
                        block = stream.read(min(1 << 22, left))
                        if not block:
                            break
                        count += block.count(b"\n")
                        left -= len(block)
                base.append(count)
            return base[0]

        def namer(first: int) -> Callable[[int], str]:
            return lambda i: line_namer(line_before() + first)(i)

        with open(path, "rb") as stream:
            local = 0
            for chunk in read_lines(stream, start, end, f"events file {path}"):
                replay.feed(chunk, namer(local))
                local += len(chunk)
                events.value = replay.read
                position.value = stream.tell() - start
        send.send(("ok", replay.export()))
    except SourceUnavailable as err:
        send.send(("unavailable", str(err)))
    except BaseException:  # noqa: BLE001 - reported to the parent, which raises it
        send.send(("error", traceback.format_exc()))
    finally:
        send.close()
