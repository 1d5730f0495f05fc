"""Each replica's Socket Mode connection to Slack: interactions in, acknowledged within Slack's 3 seconds.

slack-sdk's own SocketModeClient does the protocol (apps.connections.open, the WebSocket,
pings, reconnecting with backoff when the socket drops); Bolt would add a framework around
four handlers, so the plain client it is built on is used directly. Every replica connects:
Slack spreads envelopes over the connections, and any replica can handle any click, because
the action it sends goes to the one keeper (keeper/keeper.py) like every other.

An envelope is acknowledged once its action is in Kafka (so a click is never lost to a crash
between the two), or at once with the dialog's field errors. Dialogs open from this thread, as
the trigger expires 3 seconds after the click. A refusal the keeper makes later (two clicks
raced) reaches the user as an ephemeral message too (`settle`, from the loop).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from pydantic import SecretStr
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode import SocketModeClient
from slack_sdk.socket_mode.client import BaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from ..tasks import Cases, TaskPolicy
from .handlers import Allowed, Decision, foreign, on_click, on_submit

log = logging.getLogger("worker.slack")

#: Sends one action to TASK_ACTIONS_TOPIC and waits until Kafka has it (True), or could not (False).
Send = Callable[[dict[str, Any]], bool]
PENDING_S = 30.0  # how long a sent action's verdict is watched for a late refusal


class SlackLink:
    def __init__(
        self,
        app_token: SecretStr,
        bot_token: SecretStr,
        base_url: str,
        cases: Cases,
        policy: TaskPolicy,
        send: Send,
        allowed: Allowed | None = None,
    ) -> None:
        self.cases = cases
        self.policy = policy
        self.send = send
        self.allowed: Allowed = allowed or (lambda user: True)
        self.web = WebClient(token=bot_token.get_secret_value(), base_url=base_url, timeout=5)
        self.team_id = ""
        self.client = SocketModeClient(
            app_token=app_token.get_secret_value(),
            web_client=WebClient(base_url=base_url, timeout=5),
            auto_reconnect_enabled=True,
            ping_interval=10,
        )
        self.client.socket_mode_request_listeners.append(self._on_request)
        self._pending: dict[str, tuple[str, str, float]] = {}  # action id -> (channel, user, until): watched for a refusal
        self._lock = threading.Lock()
        self.handled = 0

    def __repr__(self) -> str:
        return "SlackLink(app_token=SecretStr('**********'), bot_token=SecretStr('**********'))"

    def start(self) -> None:
        """Learn the workspace (auth.test), then connect; slack-sdk reconnects on its own when the socket drops."""
        try:
            self.team_id = self.web.auth_test().get("team_id") or ""
        except SlackApiError as err:  # a bad bot token is reported by the first post too; interactions still come
            log.warning("auth.test failed (%s): interactions from every workspace are accepted", err.response.get("error"))
        self.client.connect()
        log.info("Socket Mode connected: buttons and dialogs on alerts are live")

    def close(self) -> None:
        self.client.close()

    # -- envelopes (slack-sdk's thread) -------------------------------------------------------------

    def _on_request(self, client: BaseSocketModeClient, request: SocketModeRequest) -> None:
        if request.type != "interactive":
            client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id))
            return
        payload = request.payload or {}
        try:
            decision = self._decide(payload)
        except Exception:  # a bug must not leave the envelope unacknowledged (Slack would resend it)
            log.exception("cannot handle a %s interaction", payload.get("type"))
            decision = Decision(ephemeral="Something went wrong on our side; nothing was changed.")
        sent = all(self.send(action) for action in decision.actions)  # in Kafka before the ack: a crash loses no click
        client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id, payload=decision.ack))
        self.handled += 1
        channel = (payload.get("container") or {}).get("channel_id") or (payload.get("channel") or {}).get("id") or ""
        user = (payload.get("user") or {}).get("id", "")
        if not sent:
            decision.ephemeral = "Slack reached us, but the change could not be saved; please try again."
        if decision.note:
            log.info("slack %s by %s: %s", payload.get("type"), user, decision.note)
        if decision.view is not None:
            self._call(partial(self.web.views_open, trigger_id=payload.get("trigger_id"), view=decision.view))
        if decision.ephemeral and channel and user:
            self._call(lambda: self.web.chat_postEphemeral(channel=channel, user=user, text=decision.ephemeral))
        with self._lock:
            for action in decision.actions:
                self._pending[action["action_id"]] = (channel, user, time.monotonic() + PENDING_S)

    def _decide(self, payload: dict[str, Any]) -> Decision:
        if foreign(payload, self.team_id):
            log.warning(
                "refused an interaction from workspace %s (this app is installed in %s)",
                (payload.get("team") or {}).get("id"),
                self.team_id,
            )
            return Decision()
        if payload.get("type") == "block_actions":
            return on_click(payload, self.cases, self.policy, self.allowed)
        if payload.get("type") == "view_submission":
            return on_submit(payload, self.cases, self.policy, self.allowed)
        return Decision()

    def _call(self, call: Callable[[], Any]) -> None:
        try:
            call()
        except SlackApiError as err:
            log.warning("Slack refused %s", err.response.get("error"))

    # -- late refusals (the worker's thread, after reading the state topic) ----------------------------

    def settle(self) -> None:
        """Tell a user whose action the keeper refused (someone else got there first)."""
        with self._lock:
            pending = list(self._pending.items())
        for action_id, (channel, user, until) in pending:
            outcome = self.cases.outcomes.get(action_id)
            if outcome is None and time.monotonic() < until:
                continue
            with self._lock:
                self._pending.pop(action_id, None)
            if outcome is not None and not outcome.applied and channel and user:
                self._call(partial(self.web.chat_postEphemeral, channel=channel, user=user, text=outcome.reason))
