"""The Slack Web API methods the fake answers, each the way Slack does.

Shapes, defaults and error codes follow Slack's method reference: conversations.* take a
channel id (a name is channel_not_found), history is newest first and top-level only,
replies oldest first, pages are cut with an opaque `response_metadata.next_cursor`,
metadata only comes back with include_all_metadata, chat.update keeps what it is not given,
a trigger_id is exchanged once, a bot posts and reads only where it was invited (not_in_channel). Each method runs with the fake's lock held, after the token
and scope checks in FakeSlack._dispatch.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tests.fake_slack import payloads

if TYPE_CHECKING:
    from tests.fake_slack.fake import FakeSlack

Answer = dict[str, Any]


@dataclass(frozen=True)
class Method:
    run: Callable[[FakeSlack, dict[str, Any]], Answer]
    scope: str | None = None  # the bot scope Slack requires (missing_scope otherwise)
    token: str = "bot"  # "bot" (xoxb-) or "app" (xapp-, Socket Mode)


def error(code: str) -> Answer:
    return {"ok": False, "error": code}


def flag(value: Any) -> bool:
    """Booleans arrive as JSON true or, in query strings, "1"/"true"."""
    return value in (True, 1, "1", "true", "True")


def micros(ts: Any) -> int | None:
    """A Slack ts ("1700000000.000100") as integer microseconds; floats lose the last digit."""
    seconds, _, fraction = str(ts).partition(".")
    if not seconds.isdigit() or (fraction and not fraction.isdigit()) or len(fraction) > 6:
        return None
    return int(seconds) * 1_000_000 + int(fraction.ljust(6, "0") or 0)


def render(fake: FakeSlack, m: dict[str, Any], include_metadata: bool) -> Answer:
    """A stored message as Slack shows it in history, replies and payloads."""
    shown: Answer = {
        "type": "message",
        "user": fake.bot_user_id,
        "bot_id": fake.bot_id,
        "app_id": fake.app_id,
        "team": fake.team_id,
        "text": m.get("text") or "",
        "ts": m["ts"],
    }
    if m.get("blocks"):
        shown["blocks"] = m["blocks"]
    if "edited" in m:
        shown["edited"] = m["edited"]
    thread_ts = m.get("thread_ts")
    if thread_ts and thread_ts != m["ts"]:
        shown |= {"thread_ts": thread_ts, "parent_user_id": fake.bot_user_id}
        if flag(m.get("reply_broadcast")):
            shown["subtype"] = "thread_broadcast"
    else:
        replies = [
            r["ts"] for r in fake.messages if r.get("thread_ts") == m["ts"] and r["ts"] != m["ts"] and r["channel_id"] == m["channel_id"]
        ]
        if replies:
            shown |= {
                "thread_ts": m["ts"],
                "reply_count": len(replies),
                "reply_users_count": 1,
                "latest_reply": max(replies),
                "reply_users": [fake.bot_user_id],
                "is_locked": False,
                "subscribed": False,
            }
    if include_metadata and m.get("metadata"):
        shown["metadata"] = m["metadata"]
    return shown


def _window(p: dict[str, Any]) -> Callable[[str], bool] | str:
    """oldest < ts < latest (<= with inclusive); an error code for a malformed bound."""
    oldest = micros(p.get("oldest") or "0")
    latest = micros(p["latest"]) if p.get("latest") else None
    if oldest is None:
        return "invalid_ts_oldest"
    if p.get("latest") and latest is None:
        return "invalid_ts_latest"
    inclusive = flag(p.get("inclusive"))

    def inside(ts: str) -> bool:
        t = micros(ts)
        assert t is not None
        above = t >= oldest if inclusive else t > oldest
        below = latest is None or (t <= latest if inclusive else t < latest)
        return above and below

    return inside


def _cursor(ts: str) -> str:
    """Slack's cursors look like base64 of "next_ts:<ts digits>"; clients must treat them as opaque."""
    return base64.b64encode(f"next_ts:{ts.replace('.', '')}".encode()).decode()


def _cursor_ts(cursor: str) -> str | None:
    try:
        text = base64.b64decode(cursor, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    digits = text.removeprefix("next_ts:")
    if not text.startswith("next_ts:") or not digits.isdigit() or len(digits) <= 6:
        return None
    return f"{digits[:-6]}.{digits[-6:]}"


def _page(fake: FakeSlack, items: list[dict[str, Any]], p: dict[str, Any], default: int, maximum: int, **extra: Any) -> Answer:
    """One page of `items` (already ordered) from `cursor`, `limit` long."""
    try:
        limit = int(p.get("limit") or default)
    except ValueError:
        limit = default
    limit = default if limit <= 0 else min(limit, maximum)
    start = 0
    if p.get("cursor"):
        ts = _cursor_ts(str(p["cursor"]))
        found = next((i for i, m in enumerate(items) if m["ts"] == ts), None)
        if found is None:
            return error("invalid_cursor")
        start = found
    page, more = items[start : start + limit], start + limit < len(items)
    answer: Answer = {"ok": True, "messages": [render(fake, m, flag(p.get("include_all_metadata"))) for m in page], "has_more": more}
    if more:
        answer["response_metadata"] = {"next_cursor": _cursor(items[start + limit]["ts"])}
    return answer | extra


def _has_content(p: dict[str, Any]) -> bool:
    return bool(p.get("text") or p.get("blocks") or p.get("attachments"))


# -- the methods ---------------------------------------------------------------------------------


def chat_post_message(fake: FakeSlack, p: dict[str, Any]) -> Answer:
    where = fake.resolve(p.get("channel"))
    if where is None:
        return error("channel_not_found")
    if not fake.is_member(where[0]):
        return error("not_in_channel")
    if not _has_content(p):
        return error("no_text")
    message = p | {"ts": fake.next_ts(), "channel": where[0], "channel_id": where[1]}
    if fake.record_requests:
        fake.messages.append(message)
    return {"ok": True, "channel": where[1], "ts": message["ts"], "message": render(fake, message, include_metadata=False)}


def chat_update(fake: FakeSlack, p: dict[str, Any]) -> Answer:
    """Replaces what it is given; Slack keeps the text, blocks and metadata it is not given
    (an empty list/object removes them)."""
    where = fake.resolve(p.get("channel"), ids_only=True)
    if where is None:
        return error("channel_not_found")
    message = next((m for m in fake.messages if m["channel_id"] == where[1] and m["ts"] == p.get("ts")), None)
    if message is None:
        return error("message_not_found")
    for key in ("text", "blocks", "metadata", "attachments"):
        if key in p:
            message[key] = p[key]
    message["edited"] = {"user": fake.bot_user_id, "ts": fake.next_ts()}
    fake.updates.append(
        {
            "channel": where[0],
            "channel_id": where[1],
            "ts": message["ts"],
            "text": message.get("text"),
            "blocks": message.get("blocks"),
            "metadata": message.get("metadata"),
            "edited_ts": message["edited"]["ts"],
        }
    )
    return {
        "ok": True,
        "channel": where[1],
        "ts": message["ts"],
        "text": message.get("text") or "",
        "message": render(fake, message, include_metadata=False),
    }


def chat_post_ephemeral(fake: FakeSlack, p: dict[str, Any]) -> Answer:
    where = fake.resolve(p.get("channel"))
    if where is None:
        return error("channel_not_found")
    if not p.get("user"):
        return error("user_not_found")
    if not _has_content(p):
        return error("no_text")
    ts = fake.next_ts()
    if fake.record_requests:
        fake.ephemerals.append(p | {"channel": where[0], "channel_id": where[1], "message_ts": ts})
    return {"ok": True, "message_ts": ts}


def conversations_history(fake: FakeSlack, p: dict[str, Any]) -> Answer:
    """Top-level messages (and replies also sent to the channel), newest first."""
    where = fake.resolve(p.get("channel"), ids_only=True)
    if where is None:
        return error("channel_not_found")
    if not fake.is_member(where[0]):
        return error("not_in_channel")
    inside = _window(p)
    if isinstance(inside, str):
        return error(inside)
    top = [
        m
        for m in fake.messages
        if m["channel_id"] == where[1] and inside(m["ts"]) and (m.get("thread_ts") in (None, m["ts"]) or flag(m.get("reply_broadcast")))
    ]
    top.sort(key=lambda m: micros(m["ts"]) or 0, reverse=True)
    return _page(fake, top, p, 100, 999, pin_count=0, channel_actions_ts=None, channel_actions_count=0)


def conversations_replies(fake: FakeSlack, p: dict[str, Any]) -> Answer:
    """A thread, parent first then its replies, oldest first; `ts` may name any message in it."""
    where = fake.resolve(p.get("channel"), ids_only=True)
    if where is None:
        return error("channel_not_found")
    if not fake.is_member(where[0]):
        return error("not_in_channel")
    inside = _window(p)
    if isinstance(inside, str):
        return error(inside)
    in_channel = [m for m in fake.messages if m["channel_id"] == where[1]]
    target = next((m for m in in_channel if m["ts"] == p.get("ts")), None)
    if target is None:
        return error("thread_not_found")
    root = target.get("thread_ts") or target["ts"]
    thread = [m for m in in_channel if (m["ts"] == root or m.get("thread_ts") == root) and inside(m["ts"])]
    thread.sort(key=lambda m: micros(m["ts"]) or 0)
    return _page(fake, thread, p, 1000, 1000)


def _channel(fake: FakeSlack, name: str) -> Answer:
    """A channel object as conversations.info and .list show it (a public channel; `is_member`: was the bot invited)."""
    bare = name.removeprefix("#")
    return {
        "id": fake.channel_id(name),
        "name": bare,
        "name_normalized": bare,
        "is_channel": True,
        "is_group": False,
        "is_im": False,
        "is_mpim": False,
        "is_private": False,
        "is_archived": False,
        "is_general": False,
        "is_shared": False,
        "is_member": fake.is_member(name),
        "created": 1700000000,
        "creator": "U0CREATOR1",
        "topic": {"value": "", "creator": "", "last_set": 0},
        "purpose": {"value": "", "creator": "", "last_set": 0},
    }


def conversations_info(fake: FakeSlack, p: dict[str, Any]) -> Answer:
    """One channel by id (a name is channel_not_found, as for every conversations.* method)."""
    where = fake.resolve(p.get("channel"), ids_only=True)
    if where is None:
        return error("channel_not_found")
    return {"ok": True, "channel": _channel(fake, where[0])}


def conversations_list(fake: FakeSlack, p: dict[str, Any]) -> Answer:
    """The channels the fake knows (given in `channels`, or posted to), by name, with cursor pagination."""
    names = sorted({"#" + c.removeprefix("#") for c in fake.channels} if fake.channels is not None else set(fake.known_channels()))
    try:
        limit = max(1, min(int(p.get("limit") or 100), 1000))
        start = int(str(p.get("cursor") or "0").removeprefix("offset:"))
    except ValueError:
        return error("invalid_cursor")
    page = names[start : start + limit]
    answer: Answer = {
        "ok": True,
        "channels": [_channel(fake, name) for name in page],
    }
    answer["response_metadata"] = {"next_cursor": f"offset:{start + limit}" if start + limit < len(names) else ""}
    return answer


def views_open(fake: FakeSlack, p: dict[str, Any]) -> Answer:
    view = p.get("view")
    if not isinstance(view, dict):
        return error("invalid_arguments")
    trigger_id = p.get("trigger_id") or p.get("interactivity_pointer")
    problem, user = fake.take_trigger(trigger_id)
    if problem is not None:
        return error(problem)
    view_id = payloads.random_id("V")
    shown = payloads.view_object(view, view_id=view_id, team_id=fake.team_id, app_id=fake.app_id, bot_id=fake.bot_id)
    if fake.record_requests:
        fake.views.append({"trigger_id": trigger_id, "view": view, "view_id": view_id, "user_id": user, "shown": shown})
    return {"ok": True, "view": shown}


def users_info(fake: FakeSlack, p: dict[str, Any]) -> Answer:
    user = fake.users.get(p.get("user"))  # type: ignore[arg-type]
    if user is None:
        return error("user_not_found")
    profile = {
        "real_name": user["real_name"],
        "real_name_normalized": user["real_name"],
        "display_name": user["name"],
        "display_name_normalized": user["name"],
        "team": user["team_id"],
    }
    return {
        "ok": True,
        "user": user
        | {
            "deleted": False,
            "tz": "Europe/London",
            "tz_label": "Greenwich Mean Time",
            "tz_offset": 0,
            "profile": profile,
            "is_admin": False,
            "is_owner": False,
            "is_bot": False,
            "is_app_user": False,
            "updated": int(time.time()),
        },
    }


def auth_test(fake: FakeSlack, p: dict[str, Any]) -> Answer:
    return {
        "ok": True,
        "url": "https://fake-workspace.slack.com/",
        "team": "Fake Workspace",
        "user": "feedback-worker",
        "team_id": fake.team_id,
        "user_id": fake.bot_user_id,
        "bot_id": fake.bot_id,
        "is_enterprise_install": False,
    }


def apps_connections_open(fake: FakeSlack, p: dict[str, Any]) -> Answer:
    return {"ok": True, "url": fake.socket_mode.new_url()}


METHODS: dict[str, Method] = {
    "chat.postMessage": Method(chat_post_message, "chat:write"),
    "chat.update": Method(chat_update, "chat:write"),
    "chat.postEphemeral": Method(chat_post_ephemeral, "chat:write"),
    "conversations.history": Method(conversations_history, "channels:history"),
    "conversations.replies": Method(conversations_replies, "channels:history"),
    "conversations.list": Method(conversations_list, "channels:read"),
    "conversations.info": Method(conversations_info, "channels:read"),
    "views.open": Method(views_open),
    "users.info": Method(users_info, "users:read"),
    "auth.test": Method(auth_test),
    "apps.connections.open": Method(apps_connections_open, "connections:write", token="app"),
}
