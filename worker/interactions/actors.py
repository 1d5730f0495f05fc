"""TASK_ACTORS: who may change tasks from Slack (Slack user ids, and user groups whose members may).

User groups are expanded with usergroups.users.list (scope usergroups:read), cached for a few
minutes, so a change in the group is seen without a restart.
"""

from __future__ import annotations

import logging
import threading
import time

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from .handlers import Allowed

log = logging.getLogger("worker.slack")
GROUPS_KEPT_S = 300.0


def actors_allowed(entries: list[str], web: WebClient) -> Allowed | None:
    """The check for TASK_ACTORS; None (anyone in the workspace) when it is empty."""
    if not entries:
        return None
    users = {e for e in entries if e[:1] in "UW"}
    groups = [e for e in entries if e[:1] == "S"]
    cache: dict[str, tuple[float, set[str]]] = {}
    lock = threading.Lock()

    def members(group: str) -> set[str]:
        with lock:
            kept = cache.get(group)
            if kept is not None and kept[0] > time.monotonic():
                return kept[1]
        try:
            found = set(web.usergroups_users_list(usergroup=group).get("users") or [])
        except SlackApiError as err:
            log.warning("cannot list user group %s (%s): its members may not act", group, err.response.get("error"))
            found = set()
        with lock:
            cache[group] = (time.monotonic() + GROUPS_KEPT_S, found)
        return found

    return lambda user: user in users or any(user in members(group) for group in groups)
