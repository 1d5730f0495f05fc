"""Logging set-up: one line per record on stderr, with secrets scrubbed from every line.

Secrets are SecretStr in Settings, so our own code cannot print them; the filter is the
second lock on the door, for messages from libraries (a URL with credentials, a header dump).
"""

from __future__ import annotations

import logging
import sys


class RedactSecrets(logging.Filter):
    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if len(s) >= 4]

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            if any(secret in message for secret in self.secrets):
                record.msg, record.args = self._redact(message), None
            if record.exc_info and not record.exc_text:  # the traceback the formatter would append
                record.exc_text = _TRACEBACKS.formatException(record.exc_info)
            if record.exc_text:
                record.exc_text = self._redact(record.exc_text)
        return True

    def _redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "**********")
        return text


_TRACEBACKS = logging.Formatter()


def setup_logging(level: str = "INFO", secrets: list[str] | None = None) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S"))
    handler.addFilter(RedactSecrets(secrets or []))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # kafka-python is chatty at INFO (every connection, every rebalance step).
    logging.getLogger("kafka").setLevel(max(logging.WARNING, root.level))
    # slack-sdk logs every retry at INFO; the worker logs one line per failed attempt itself.
    logging.getLogger("slack_sdk").setLevel(max(logging.WARNING, root.level))
