"""Logging set-up: one line per record on stderr, with secrets scrubbed from every line.

Secrets are SecretStr in Settings, so our own code cannot print them; the filter is the
second lock on the door, for messages from libraries (a URL with credentials, a header dump).

Two formats (LOG_FORMAT): `text` for people at a terminal, `json` for log pipelines (one
object per line, with the event, task and Kafka position as fields to search on).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from typing import Any, Literal

LogFormat = Literal["text", "json"]

#: Fields a log call may pass with `extra={...}`; the JSON format shows each one given.
EXTRA_FIELDS = ("event_id", "task_id", "partition", "offset", "topic")
MASK = "**********"


class RedactSecrets(logging.Filter):
    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if len(s) >= 4]

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            if any(secret in message for secret in self.secrets):
                record.msg, record.args = self.redact(message), None
            if record.exc_info and not record.exc_text:  # the traceback the formatter would append
                record.exc_text = _TRACEBACKS.formatException(record.exc_info)
            if record.exc_text:
                record.exc_text = self.redact(record.exc_text)
            if record.stack_info:
                record.stack_info = self.redact(record.stack_info)
        return True

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text


_TRACEBACKS = logging.Formatter()


class QuietRepeats(logging.Filter):
    """A library warning or error repeated within `window_s` is counted, not printed again.

    While the broker is unreachable kafka-python logs every failed attempt (about fifteen lines a
    second, tracebacks included); the first of each kind shows the problem. The next one after the
    window says how many were left out ("… (and 212 more like it in the last 60 s)")."""

    def __init__(self, prefixes: tuple[str, ...] = ("kafka",), window_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.prefixes = prefixes
        self.window_s = window_s
        self.clock = clock
        self._seen: dict[tuple[str, int, str], list[float]] = {}  # (logger, level, template) -> [window start, left out]

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or not record.name.startswith(self.prefixes):
            return True
        key = (record.name, record.levelno, str(record.msg))
        now = self.clock()
        seen = self._seen.get(key)
        if seen is not None and now - seen[0] < self.window_s:
            seen[1] += 1
            return False
        if seen is not None and seen[1]:
            record.msg, record.args = f"{record.getMessage()} (and {seen[1]:,} more like it in the last {now - seen[0]:.0f} s)", None
        self._seen[key] = [now, 0]
        return True


#: Characters json.dumps leaves as they are with ensure_ascii=False but that split a line for
#: many readers (Python's splitlines, JavaScript): escaped, so a record is always one line.
_LINE_BREAKS = {"\u2028": "\\u2028", "\u2029": "\\u2029", "\x85": "\\u0085"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, message, the EXTRA_FIELDS given, exc.

    Every text value goes through `redact` (the secrets filter's), extras included: a filter
    only sees the message and the traceback.
    """

    def __init__(self, redact: RedactSecrets | None = None) -> None:
        super().__init__()
        self.redactor = redact

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in EXTRA_FIELDS:
            value = getattr(record, name, None)
            if value is not None and value != "":  # a digest's alert has no single event: no field, not ""
                entry[name] = value if isinstance(value, (int, float, str, bool)) else str(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        if self.redactor is not None and self.redactor.secrets:
            entry = {key: self.redactor.redact(v) if isinstance(v, str) else v for key, v in entry.items()}
        line = json.dumps(entry, ensure_ascii=False, default=str)
        for char, escaped in _LINE_BREAKS.items():
            if char in line:
                line = line.replace(char, escaped)
        return line


def setup_logging(level: str = "INFO", secrets: list[str] | None = None, fmt: LogFormat = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    redact = RedactSecrets(secrets or [])
    if fmt == "json":
        handler.setFormatter(JsonFormatter(redact))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S"))
    if str(level).upper() != "DEBUG":  # debugging wants every line
        handler.addFilter(QuietRepeats())
    handler.addFilter(redact)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # kafka-python is chatty at INFO (every connection, every rebalance step).
    logging.getLogger("kafka").setLevel(max(logging.WARNING, root.level))
    # slack-sdk logs every retry at INFO; the worker logs one line per failed attempt itself.
    logging.getLogger("slack_sdk").setLevel(max(logging.WARNING, root.level))
