"""The Slack checks: auth.test, the bot token's scopes, the channels named and the bot's membership, the users
named, Socket Mode. Nothing is posted; every call waits at most the timeout, once (no retries)."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from functools import partial
from http.client import HTTPException
from typing import Any, TypeVar
from urllib.error import URLError

from ...config import Settings
from .names import APP_SCOPE, BOT_SCOPES, CHANNEL_ID, HISTORY_SCOPES, MANIFEST, Named, required_scopes
from .rows import FAIL, OK, SKIP, Row

T = TypeVar("T")


class _Unreachable(Exception):
    """Slack did not answer (refused, timed out, a broken connection): the Slack checks after it are skipped."""


def slack_rows(settings: Settings, named: Named, timeout: int) -> list[Row]:
    rows, answered = _bot_rows(settings, named, timeout)
    rows += _unchecked_names(named) if settings.slack_bot_token is not None else []
    if not answered and settings.slack_app_token is not None:  # another wait for the same silence would tell nothing new
        return [*rows, Row(SKIP, SOCKET_MODE, "not checked: Slack did not answer")]
    return rows + _socket_mode_rows(settings, timeout)


def _bot_rows(settings: Settings, named: Named, timeout: int) -> tuple[list[Row], bool]:
    """The bot token's rows, and whether Slack answered."""
    if settings.slack_bot_token is None:
        return [Row(SKIP, "Slack", "SLACK_BOT_TOKEN is not set: alerts are printed to stdout, nothing goes to Slack")], True
    from slack_sdk import WebClient
    from slack_sdk.errors import SlackApiError

    # No retries: a doctor says what happened the first time, within its timeout.
    web = WebClient(token=settings.slack_bot_token.get_secret_value(), base_url=settings.slack_api_url, timeout=timeout, retry_handlers=[])
    try:
        me = _ask(lambda: web.auth_test(), settings, timeout)
    except _Unreachable as err:
        return [Row(FAIL, "Slack auth.test", str(err), _UNREACHABLE_FIX), Row(SKIP, "Slack scopes, channels, users", "not checked")], False
    except SlackApiError as err:
        if _unwell(err):
            return [
                Row(FAIL, "Slack auth.test", _unwell(err), "try again later; status.slack.com"),
                Row(SKIP, "Slack scopes, channels, users", "not checked"),
            ], True
        fix = "SLACK_BOT_TOKEN must be the app's Bot User OAuth Token (xoxb-…), from Install App; reinstalling gives a new one"
        refused = Row(FAIL, "Slack auth.test", f"refused: {_error(err)}", fix)
        return [refused, Row(SKIP, "Slack scopes, channels, users", "not checked: the token was refused")], True
    bot = str(me.get("user") or "the bot")
    rows = [Row(OK, "Slack auth.test", f"workspace {me.get('team')} ({me.get('team_id')}), bot @{bot} ({me.get('user_id')})")]
    granted = _scopes(me.headers)
    rows += scope_rows(settings, named, granted)
    try:
        rows += channel_rows(web, settings, named, granted, bot, timeout)
        rows += user_rows(web, settings, named, granted, timeout)
    except _Unreachable as err:
        return [*rows, Row(FAIL, "Slack", f"stopped answering: {err}", _UNREACHABLE_FIX)], False
    except SlackApiError as err:  # what no check expects: a rate limit, an outage
        return [*rows, Row(FAIL, "Slack", _unwell(err) or f"answered {_error(err)}", "try again later; status.slack.com")], True
    return rows, True


def _unwell(err: Any) -> str:
    """'Slack answered HTTP 503 (…)' for an answer that says nothing about the token (an outage, a rate limit); else ''."""
    status = err.response.status_code
    if status != 429 and status < 500:
        return ""
    error = _error(err)
    said = "" if error.startswith("HTTP") else f" ({error})"
    return f"Slack answered HTTP {status}{said}: not the configuration's fault, but nothing could be checked"


SOCKET_MODE = "Socket Mode (SLACK_APP_TOKEN)"


_UNREACHABLE_FIX = "check SLACK_API_URL (https://slack.com/api/ unless you proxy it) and that Slack is reachable from here"


def _ask(call: Callable[[], T], settings: Settings, timeout: int) -> T:
    """A Slack call; no answer at all (refused, timed out, cut off) is _Unreachable saying how long it waited."""
    started = time.monotonic()
    try:
        return call()
    except (OSError, HTTPException) as err:
        reason = err.reason if isinstance(err, URLError) else err
        if isinstance(reason, TimeoutError) or time.monotonic() - started >= timeout:
            raise _Unreachable(f"no answer from {settings.slack_api_url} after {timeout} s") from err
        raise _Unreachable(f"cannot reach {settings.slack_api_url}: {reason}") from err


def _error(err: Any) -> str:
    response = err.response
    data = response.data if isinstance(response.data, dict) else {}
    error = data.get("error")
    return str(error) if error else f"HTTP {response.status_code}"


def _scopes(headers: Mapping[str, Any]) -> set[str] | None:
    """The token's scopes from Slack's `x-oauth-scopes` answer header; None when Slack sent none."""
    value = next((v for k, v in headers.items() if k.lower() == "x-oauth-scopes"), None)
    if value is None:
        return None
    return {scope.strip() for scope in str(value).split(",") if scope.strip()}


def scope_rows(settings: Settings, named: Named, granted: set[str] | None) -> list[Row]:
    if granted is None:
        return [Row(SKIP, "bot token scopes", "Slack sent no x-oauth-scopes header (a proxy in between?): scopes not checked")]
    needed = required_scopes(settings, named)
    missing = [scope for scope in needed if scope not in granted]
    manifest = f"add them in the app's OAuth & Permissions (or paste {MANIFEST} again) and reinstall the app"
    if missing:
        why = "; ".join(f"{scope}: {needed[scope]}" for scope in missing)
        fix = manifest + (" — or set SLACK_HISTORY_LOOKUP=false" if set(missing) <= set(HISTORY_SCOPES) else "")
        rows = [Row(FAIL, "bot token scopes", f"missing {', '.join(missing)} ({why})", fix)]
    else:
        rows = [Row(OK, "bot token scopes", f"has every scope this configuration needs: {', '.join(needed)}")]
    absent = [scope for scope in BOT_SCOPES if scope not in granted]
    extra = sorted(granted - set(BOT_SCOPES))
    if absent or extra:
        parts = [f"lacks {', '.join(absent)} ({'; '.join(BOT_SCOPES[s] for s in absent)})"] if absent else []
        parts += [f"has {', '.join(extra)}, which the worker does not use"] if extra else []
        rows.append(Row(SKIP, f"scopes vs {MANIFEST}", "; ".join(parts)))
    else:
        rows.append(Row(OK, f"scopes vs {MANIFEST}", "the same"))
    return rows


def channel_rows(web: Any, settings: Settings, named: Named, granted: set[str] | None, bot: str, timeout: int) -> list[Row]:
    """Every channel named exists and the bot is in it (conversations.list for names, conversations.info for ids)."""
    from slack_sdk.errors import SlackApiError

    rows: list[Row] = []  # templated channels are listed with the templated owners (user_rows)
    if not named.channels:
        return rows
    if granted is not None and "channels:read" not in granted:
        return [
            Row(SKIP, "channels", f"not checked: the token lacks channels:read (needed to look channels up): {', '.join(named.channels)}")
        ]
    by_name: dict[str, dict[str, Any]] = {}
    try:
        if any(not CHANNEL_ID.match(channel) for channel in named.channels):
            by_name = _all_channels(web, settings, timeout)
        for channel, where in named.channels.items():
            found = (
                by_name.get(channel.removeprefix("#")) if not CHANNEL_ID.match(channel) else _channel_info(web, channel, settings, timeout)
            )
            rows.append(_channel_row(channel, where, found, bot, granted))
    except SlackApiError as err:
        rows.append(Row(FAIL, "channels", f"conversations lookup refused: {_error(err)}", "see the bot token scopes row"))
    return rows


def _all_channels(web: Any, settings: Settings, timeout: int) -> dict[str, dict[str, Any]]:
    """name -> channel object, every public and (visible) private channel, archived ones too (to say so)."""
    channels: dict[str, dict[str, Any]] = {}
    cursor = None
    for _ in range(100):  # 100,000 channels: enough for any workspace, and a bound
        page = _ask(partial(web.conversations_list, types="public_channel,private_channel", limit=1000, cursor=cursor), settings, timeout)
        for channel in page.get("channels") or []:
            channels[str(channel.get("name"))] = channel
        cursor = (page.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            break
    return channels


def _channel_info(web: Any, channel_id: str, settings: Settings, timeout: int) -> dict[str, Any] | None:
    from slack_sdk.errors import SlackApiError

    try:
        answer = _ask(lambda: web.conversations_info(channel=channel_id), settings, timeout)
    except SlackApiError as err:
        if _error(err) == "channel_not_found":
            return None
        raise
    channel = answer.get("channel")
    return channel if isinstance(channel, dict) else None


def _channel_row(channel: str, where: list[str], found: dict[str, Any] | None, bot: str, granted: set[str] | None) -> Row:
    named_by = f"named by {', '.join(where)}"
    check = f"channel {channel}"
    if found is None:
        private = "" if granted is None or "groups:read" in granted else "; without groups:read private channels cannot be seen"
        return Row(
            FAIL,
            check,
            f"no such channel, or a private one the bot is not in ({named_by}){private}",
            f"create it and /invite @{bot}, or correct the name where it is named",
        )
    shown = f"#{found.get('name')}" if CHANNEL_ID.match(channel) else channel
    if found.get("is_archived"):
        return Row(FAIL, check, f"{shown} is archived: nothing can be posted there ({named_by})", "unarchive it, or name another channel")
    if not found.get("is_member"):
        return Row(
            FAIL,
            check,
            f"the bot is not in {shown}: its posts would be refused (not_in_channel) ({named_by})",
            f"/invite @{bot} in {shown}",
        )
    return Row(OK, check, f"exists, the bot is in it ({named_by})")


def user_rows(web: Any, settings: Settings, named: Named, granted: set[str] | None, timeout: int) -> list[Row]:
    """Owners and pool members that are user ids are users (users.info); names, groups and templates: – with why."""
    from slack_sdk.errors import SlackApiError

    rows: list[Row] = []
    can_read = granted is None or "users:read" in granted
    for user, where in named.users.items():
        check, named_by = f"user {user}", f"named by {', '.join(where)}"
        if not can_read:
            rows.append(Row(SKIP, check, f"not checked: the token lacks users:read (optional; {MANIFEST} has it) ({named_by})"))
            continue
        try:
            answer = _ask(partial(web.users_info, user=user), settings, timeout)
        except SlackApiError as err:
            error = _error(err)
            if error in ("user_not_found", "invalid_user"):
                fix = "correct the id (in Slack: the person's profile → ⋮ → Copy member ID)"
                rows.append(Row(FAIL, check, f"no such user in this workspace ({named_by})", fix))
                continue
            if error == "missing_scope":
                rows.append(Row(SKIP, check, f"not checked: users.info needs users:read ({named_by})"))
                continue
            raise
        person = answer.get("user") or {}
        name = person.get("real_name") or person.get("name") or user
        if person.get("deleted"):
            rows.append(Row(FAIL, check, f"{name} is deactivated: mentions reach nobody ({named_by})", "name someone else"))
        else:
            rows.append(Row(OK, check, f"{name} ({named_by})"))
    return rows


def _unchecked_names(named: Named) -> list[Row]:
    """What the configuration names that no Slack call can check: user groups, team names, templates."""
    rows: list[Row] = []
    for group, where in named.groups.items():
        rows.append(Row(SKIP, f"user group {group}", f"user groups are not checked ({', '.join(where)})"))
    if named.names:
        listed = ", ".join(named.names)
        why = "names, not Slack user ids (U…) or owner pools: shown in alerts as written, nobody is mentioned; not checked"
        rows.append(Row(SKIP, "owners by name", f"{listed}: {why}"))
    for template, where in named.templated.items():
        rows.append(Row(SKIP, f"template {template!r}", f"depends on each event: not checked ({', '.join(where)})"))
    return rows


def _socket_mode_rows(settings: Settings, timeout: int) -> list[Row]:
    """The app-level token opens a Socket Mode connection: apps.connections.open, then the WebSocket until Slack's hello.

    The connection is closed at once; while open, Slack could hand it a click meant for a running worker
    (the person would be asked to try again), so the doctor keeps it open only until the hello."""
    check = SOCKET_MODE
    if settings.slack_app_token is None:
        return [Row(SKIP, check, "SLACK_APP_TOKEN is not set: alerts have no buttons")]
    from slack_sdk import WebClient
    from slack_sdk.errors import SlackApiError
    from slack_sdk.socket_mode import SocketModeClient

    token = settings.slack_app_token.get_secret_value()
    web = WebClient(base_url=settings.slack_api_url, timeout=timeout, retry_handlers=[])
    try:
        url = _ask(lambda: web.apps_connections_open(app_token=token), settings, timeout)["url"]
    except _Unreachable as err:
        return [Row(FAIL, check, str(err), _UNREACHABLE_FIX)]
    except SlackApiError as err:
        error = _error(err)
        fixes = {
            "invalid_auth": "SLACK_APP_TOKEN must be a current app-level token: Basic Information → App-Level Tokens",
            "not_allowed_token_type": "SLACK_APP_TOKEN must be the app-level token (xapp-…), not the bot token",
            "missing_scope": f"the app-level token needs the scope {APP_SCOPE}: generate one with it",
        }
        return [Row(FAIL, check, f"apps.connections.open refused: {error}", fixes.get(error, "see Basic Information → App-Level Tokens"))]
    hello = threading.Event()

    def heard(raw: str) -> None:
        try:
            if json.loads(raw).get("type") == "hello":
                hello.set()
        except (ValueError, AttributeError):
            pass

    quiet = logging.getLogger("worker.doctor.socket_mode")
    quiet.propagate, quiet.disabled = False, True
    client = SocketModeClient(app_token=token, logger=quiet, web_client=web, auto_reconnect_enabled=False, on_message_listeners=[heard])
    client.wss_uri = url
    started = time.monotonic()
    try:
        client.connect()
        greeted = client.is_connected() and hello.wait(timeout)
    finally:
        threading.Thread(target=client.close, name="doctor-socket-close", daemon=True).start()
    if not greeted:
        waited = min(timeout, round(time.monotonic() - started))
        return [Row(FAIL, check, f"the token was accepted, but the WebSocket gave no hello within {waited} s", _UNREACHABLE_FIX)]
    return [Row(OK, check, "the app-level token opened a connection and Slack said hello (closed again)")]
