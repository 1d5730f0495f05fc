"""What a click or a dialog in Slack means for a task: the actions to send, a dialog to open, or why not.

Pure functions of the payload and the cases this replica sees, so they can be tested without
Slack: `on_click` (block_actions) and `on_submit` (view_submission). The resolve dialog preselects the
task's suggested root cause (followup.opened's `suggested_root_cause`), when it has one. The keeper checks every
action again when it applies it (tasks/transitions.py); checking here too means a refusal is shown
at once, as an ephemeral message only the clicking user sees.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..alerting import RESOLVE_VIEW, resolve_view
from ..tasks import ACTION, STEPS, Cases, TaskPolicy, refusal

NOT_ALLOWED = "You can't change this task."


@dataclass
class Decision:
    """The answer to one interaction: what to ack with, what to send to the keeper, what to show."""

    ack: dict[str, Any] | None = None  # the envelope's response payload (a dialog's field errors)
    actions: list[dict[str, Any]] = field(default_factory=list)  # for TASK_ACTIONS_TOPIC, each with its action_id
    view: dict[str, Any] | None = None  # a dialog to open with the interaction's trigger_id
    ephemeral: str | None = None  # shown to the clicking user only: why nothing happened
    note: str = ""  # for the log


#: May this user act? (user id -> allowed). Default: anyone in the workspace.
Allowed = Callable[[str], bool]


def actor_of(payload: dict[str, Any]) -> dict[str, Any]:
    user = payload.get("user") or {}
    return {"source": "slack", "id": str(user.get("id", "")), "name": user.get("name") or user.get("username") or None}


def foreign(payload: dict[str, Any], team_id: str) -> bool:
    """From another workspace (an app installed in several, or a forged envelope): refused."""
    team = (payload.get("team") or {}).get("id") or (payload.get("user") or {}).get("team_id")
    return bool(team_id) and team != team_id


def on_click(payload: dict[str, Any], cases: Cases, policy: TaskPolicy, allowed: Allowed) -> Decision:
    """A block_actions payload: one of the card's elements was used."""
    actor = actor_of(payload)
    if not allowed(actor["id"]):
        return Decision(ephemeral=NOT_ALLOWED, note=f"{actor['id']} is not in TASK_ACTORS")
    decision = Decision()
    for element in payload.get("actions") or []:
        action_id = element.get("action_id", "")
        task_id = element.get("value") or _task_of_block(element.get("block_id", ""))
        if not task_id:
            continue
        if action_id == "followup.resolve":
            case = cases.get(task_id)
            customer = (case.customer_name or case.customer_id) if case else ""
            if case is not None and case.status == "resolved":
                return Decision(ephemeral=f"Task {task_id} is already resolved.", note="resolve on a resolved task")
            suggested = case.suggested_root_cause.root_cause if case is not None and case.suggested_root_cause else None
            decision.view = resolve_view(task_id, policy.root_causes, customer, suggested)  # the suggestion preselected
            continue
        fields: list[dict[str, Any]] = []
        if action_id == "followup.acknowledge":
            fields = [{"action": "acknowledge"}]
        elif action_id == "followup.reopen":
            fields = [{"action": "reopen", "reason": f"reopened in Slack by {actor['name'] or actor['id']}"}]
        elif action_id == "followup.assign" and element.get("selected_user"):
            fields = [{"action": "assign", "assignee": element["selected_user"]}]
        elif action_id == "followup.steps":
            case = cases.get(task_id)
            ticked = {option.get("value") for option in element.get("selected_options") or []}
            before = case.steps if case is not None else {}
            fields = [
                {"action": "step", "step": step, "done": step in ticked} for step in STEPS if (step in ticked) != bool(before.get(step))
            ]
        for extra in fields:
            action = {"task_id": task_id, "actor": actor, "action_id": f"slack:{uuid.uuid4().hex}"} | extra
            reason = _refused(cases, policy, action)
            if reason is not None:
                return Decision(ephemeral=reason, note=reason)
            decision.actions.append(action)
    return decision


def on_submit(payload: dict[str, Any], cases: Cases, policy: TaskPolicy, allowed: Allowed) -> Decision:
    """A view_submission of the resolve dialog: errors keep it open; a valid one resolves the task."""
    view = payload.get("view") or {}
    if view.get("callback_id") != RESOLVE_VIEW:
        return Decision()
    actor = actor_of(payload)
    if not allowed(actor["id"]):
        return Decision(ack={"response_action": "errors", "errors": {"root_cause": NOT_ALLOWED}}, note=f"{actor['id']} not allowed")
    task_id = view.get("private_metadata", "")
    values = (view.get("state") or {}).get("values") or {}
    cause = ((values.get("root_cause") or {}).get("value") or {}).get("selected_option") or {}
    resolution = ((values.get("resolution") or {}).get("value") or {}).get("value") or ""
    contacted = bool(((values.get("customer_contacted") or {}).get("value") or {}).get("selected_options"))
    errors = {}
    if not cause.get("value"):
        errors["root_cause"] = "Choose the root cause."
    if not resolution.strip():
        errors["resolution"] = "Say what was done."
    if errors:
        return Decision(ack={"response_action": "errors", "errors": errors}, note="resolve dialog incomplete")
    action = {
        "action": "resolve",
        "task_id": task_id,
        "actor": actor,
        "action_id": f"slack:{uuid.uuid4().hex}",
        "root_cause": cause["value"],
        "resolution": resolution.strip(),
        "customer_contacted": contacted,
    }
    reason = _refused(cases, policy, action)
    if reason is not None:
        return Decision(ack={"response_action": "errors", "errors": {"root_cause": reason[:150]}}, note=reason)
    return Decision(actions=[action])


def _refused(cases: Cases, policy: TaskPolicy, action: dict[str, Any]) -> str | None:
    case = cases.get(action["task_id"])
    if case is None:  # not read here yet (its alert can be faster than the state topic): the keeper decides
        return None
    return refusal(case, ACTION.validate_python(action), policy)


def _task_of_block(block_id: str) -> str:
    """`followup.card:<task id>:steps` → the task id (checkboxes and pickers carry no value of their own)."""
    parts = block_id.split(":")
    return parts[1] if len(parts) == 3 and parts[0] == "followup.card" else ""
