"""slack-sdk's WebClient over one kept-alive HTTP connection, instead of a new one per call.

slack-sdk's sync client opens every request with `urllib.request.urlopen`: a TCP (and, against
slack.com, a TLS) handshake per alert, and about a quarter of the client's CPU per post
(bench/README.md). Only the transport changes: slack-sdk still builds the request, parses the
answer, raises `SlackApiError` and reads `Retry-After` exactly as before; this module sends the
request it built over a connection kept open between calls, as urllib3 or a browser would.

Failures keep urllib's meaning, which the sink relies on to decide whether a post may already be
in Slack (sinks.py): anything raised while connecting or sending is a `URLError` (not sent), what
fails after the request went out is raised as it is (sent, perhaps not answered), and an HTTP
error status is an `HTTPError` carrying the answer. A connection the server has closed while idle
is noticed before it is used (it reads as ready: end of file), and a fresh one is opened.

One client per thread (SlackSink keeps one in a thread-local): a connection serves one request at a time.
"""

from __future__ import annotations

import http.client
import io
import logging
import select
import socket
import ssl
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit
from urllib.request import Request

from slack_sdk import WebClient


class KeepAliveWebClient(WebClient):
    """A WebClient whose calls share one HTTP/1.1 connection (per scheme, host and port)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._connection: http.client.HTTPConnection | None = None
        self._origin: tuple[str, str, int | None] | None = None
        self._tls: ssl.SSLContext | None = None

    def _perform_urllib_http_request_internal(self, url: str, req: Request) -> dict[str, Any]:
        parts = urlsplit(url)
        if self.proxy is not None or parts.scheme not in ("http", "https"):
            return super()._perform_urllib_http_request_internal(url, req)  # proxies, odd URLs: urllib as before
        connection = self._ready(parts.scheme, parts.hostname or "", parts.port)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        try:
            connection.request(req.get_method(), target, body=req.data, headers=dict(req.header_items()))
        except OSError as err:  # refused, unreachable, reset while sending: Slack did not get it
            self.close()
            raise URLError(err) from err
        try:
            response = connection.getresponse()
            body = response.read()
        except BaseException:  # sent, and no (whole) answer: the caller decides whether it may be in Slack
            self.close()
            raise
        if response.will_close:
            self.close()
        if not 200 <= response.status < 300:
            raise HTTPError(url, response.status, response.reason, response.headers, io.BytesIO(body))
        text = (
            body
            if response.headers.get_content_type() == "application/gzip"
            else body.decode(response.headers.get_content_charset() or "utf-8")
        )
        if self._logger.level <= logging.DEBUG:  # as slack-sdk logs it (and the log filter scrubs it)
            self._logger.debug(
                f"Received the following response - status: {response.status}, "
                f"headers: {dict(response.headers)}, body: {'(binary)' if isinstance(text, bytes) else text}"
            )
        return {"status": response.status, "headers": response.headers, "body": text}

    def _ready(self, scheme: str, host: str, port: int | None) -> http.client.HTTPConnection:
        """The open connection to this origin if the server has not closed it, else a new one."""
        origin = (scheme, host, port)
        connection = self._connection
        if connection is not None and (origin != self._origin or _dropped(connection)):
            self.close()
            connection = None
        if connection is None:
            if scheme == "https":
                if self._tls is None:
                    self._tls = self.ssl or ssl.create_default_context()
                connection = http.client.HTTPSConnection(host, port, timeout=self.timeout, context=self._tls)
            else:
                connection = http.client.HTTPConnection(host, port, timeout=self.timeout)
            try:
                connection.connect()
            except OSError as err:
                connection.close()
                raise URLError(err) from err
            # Headers and body are two writes: without this, Nagle's algorithm holds the second until the
            # server's delayed ACK (40 ms) on a reused connection.
            connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._connection, self._origin = connection, origin
        return connection

    def close(self) -> None:
        """Close the kept connection (after a failure, or when the sink stops); the next call opens a new one."""
        if self._connection is not None:
            self._connection.close()
        self._connection = None


def _dropped(connection: http.client.HTTPConnection) -> bool:
    """True if the idle connection can no longer be used: the server closed it (or sent something unasked)."""
    sock = connection.sock
    if sock is None:
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)
