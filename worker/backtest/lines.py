"""JSONL history read in line-aligned chunks of bytes: the cheap way to feed a replay.

The file is read in binary, in large blocks split on b"\\n" only, so the replay sees the same
bytes the worker would get from Kafka and pays nothing per line for decoding or progress.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from .replay import SourceUnavailable

CHUNK_BYTES = 1 << 20  # bytes per `feed` call: about 3,000 events


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


def open_events(path: Path) -> BinaryIO:
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
