"""Interaction payloads shaped like the ones Slack sends (block_actions, view_submission).

Pure builders: FakeSlack.block_actions()/view_submission() fill in what only the fake knows
(the posted message, a live trigger_id, the opened view) and call these. Field names and
nesting follow Slack's reference for the two payload types and slack-sdk's recorded envelopes.
"""

from __future__ import annotations

import secrets
import string
import time
from collections.abc import Mapping, Sequence
from typing import Any

# Elements whose state is one chosen option; multi-selects and checkboxes report a list.
SINGLE_CHOICE = frozenset({"static_select", "external_select", "radio_buttons", "overflow"})


def random_id(prefix: str, length: int = 10) -> str:
    """An id in Slack's style: a type letter then uppercase alphanumerics (V…, B…)."""
    return prefix + "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(length))


def option(value: str, text: str | None = None) -> dict[str, Any]:
    """A Block Kit option object as Slack echoes it back in selections."""
    return {"text": {"type": "plain_text", "text": text if text is not None else value, "emoji": True}, "value": value}


def _options(chosen: Sequence[str | tuple[str, str]]) -> list[dict[str, Any]]:
    """Values, or (value, text) pairs, as option objects."""
    return [option(c) if isinstance(c, str) else option(c[0], c[1]) for c in chosen]


def user_object(user_id: str, username: str, team_id: str) -> dict[str, Any]:
    return {"id": user_id, "username": username, "name": username, "team_id": team_id}


def block_actions(
    *,
    action_id: str,
    trigger_id: str,
    response_url: str,
    value: str | None = None,
    selected_options: Sequence[str | tuple[str, str]] | None = None,
    action_type: str | None = None,
    block_id: str = "actions",
    user_id: str = "U0001",
    username: str = "ada",
    team_id: str = "T0001",
    team_domain: str = "fake-workspace",
    api_app_id: str = "A0FAKEAPP1",
    channel_id: str | None = None,
    channel_name: str | None = None,
    message: Mapping[str, Any] | None = None,
    state_values: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A user clicked a button (value) or chose options (selected_options) on a message.

    action_type defaults to "button", or "static_select"/"multi_static_select" when options
    are given; single-choice elements report `selected_option`, the others `selected_options`.
    """
    if action_type is None:
        action_type = "button" if selected_options is None else ("static_select" if len(selected_options) == 1 else "multi_static_select")
    action: dict[str, Any] = {"type": action_type, "action_id": action_id, "block_id": block_id, "action_ts": f"{time.time():.6f}"}
    if value is not None:
        action["value"] = value
    if selected_options is not None:
        chosen = _options(selected_options)
        if action_type in SINGLE_CHOICE:
            action["selected_option"] = chosen[0] if chosen else None
        else:
            action["selected_options"] = chosen
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": user_object(user_id, username, team_id),
        "api_app_id": api_app_id,
        "token": "fake-verification-token",  # Socket Mode apps ignore it; Slack still sends it
        "trigger_id": trigger_id,
        "team": {"id": team_id, "domain": team_domain},
        "enterprise": None,
        "is_enterprise_install": False,
        "state": {"values": dict(state_values or {})},
        "response_url": response_url,
        "actions": [action],
    }
    if message is not None:
        payload["container"] = {"type": "message", "message_ts": message["ts"], "channel_id": channel_id, "is_ephemeral": False}
        payload["channel"] = {"id": channel_id, "name": channel_name}
        payload["message"] = dict(message)
    return payload


def state_values(values: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """{block_id: {action_id: value}} as view.state.values: a str is a plain_text_input's value,
    a list of strings a multi_static_select's options; a dict is taken as the element state itself."""
    out: dict[str, dict[str, Any]] = {}
    for block_id, actions in values.items():
        out[block_id] = {}
        for action_id, value in actions.items():
            if isinstance(value, str):
                out[block_id][action_id] = {"type": "plain_text_input", "value": value}
            elif isinstance(value, list):
                out[block_id][action_id] = {"type": "multi_static_select", "selected_options": _options(value)}
            else:
                out[block_id][action_id] = dict(value)
    return out


def view_object(view: Mapping[str, Any], *, view_id: str, team_id: str, app_id: str, bot_id: str) -> dict[str, Any]:
    """A view as Slack returns it from views.open and sends it in view_submission: the app's
    view plus the fields Slack adds (id, hash, state, root/previous ids, ...)."""
    return {
        "id": view_id,
        "team_id": team_id,
        "type": view.get("type", "modal"),
        "blocks": list(view.get("blocks", [])),
        "private_metadata": view.get("private_metadata", ""),
        "callback_id": view.get("callback_id", ""),
        "state": {"values": {}},
        "hash": f"{int(time.time())}.{secrets.token_hex(4)}",
        "title": view.get("title"),
        "clear_on_close": bool(view.get("clear_on_close", False)),
        "notify_on_close": bool(view.get("notify_on_close", False)),
        "close": view.get("close"),
        "submit": view.get("submit"),
        "previous_view_id": None,
        "root_view_id": view_id,
        "app_id": app_id,
        "external_id": view.get("external_id", ""),
        "app_installed_team_id": team_id,
        "bot_id": bot_id,
    }


def view_submission(
    *,
    view: Mapping[str, Any],
    values: Mapping[str, Mapping[str, Any]],
    trigger_id: str,
    user_id: str = "U0001",
    username: str = "ada",
    team_id: str = "T0001",
    team_domain: str = "fake-workspace",
    api_app_id: str = "A0FAKEAPP1",
) -> dict[str, Any]:
    """A user submitted the modal `view` (a view_object()) with these input values."""
    submitted = dict(view) | {"state": {"values": state_values(values)}}
    return {
        "type": "view_submission",
        "team": {"id": team_id, "domain": team_domain},
        "user": user_object(user_id, username, team_id),
        "api_app_id": api_app_id,
        "token": "fake-verification-token",
        "trigger_id": trigger_id,
        "view": submitted,
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }
