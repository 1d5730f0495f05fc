"""The live task card on an alert, and the resolve dialog: Block Kit built from the task as it stands.

The card is the last blocks of an alert (their block ids start with `followup.card`), so an
update replaces them and keeps what the template rendered above. The ids of the interactive
elements are a public contract (others automate against them); each element's value is the
task id:

    followup.acknowledge  button      followup.steps    checkboxes (hear … diagnose)
    followup.resolve      button      followup.assign   users_select
    followup.reopen       button (after a resolve)
    modal: callback_id followup.resolve, private_metadata the task id, blocks root_cause
    (static_select), resolution (multi-line text), customer_contacted (checkboxes)

While a task is unresolved, its card says which root cause resolved tasks with words like its comment's
were put down to ("Likely: Shipping delay (72 %): late, parcel", tasks/learning.py), and the dialog
preselects it.

Customer text never reaches the card unescaped: every text here is escaped for Slack.
"""

from __future__ import annotations

from typing import Any

from ..tasks import STEPS, Case, FollowUpTask, SuggestedRootCause
from .escaping import slack_escape
from .escaping import slack_mention as mention

CARD = "followup.card"
RESOLVE_VIEW = "followup.resolve"
STEP_TITLES = {"hear": "Hear", "empathize": "Empathize", "apologize": "Apologize", "resolve": "Resolve", "diagnose": "Diagnose"}


def is_card(block: dict[str, Any]) -> bool:
    return str(block.get("block_id", "")).startswith(CARD)


def with_card(blocks: list[dict[str, Any]], card: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The message's own blocks, with its card replaced by `card` (Slack allows 50 blocks)."""
    return [block for block in blocks if not is_card(block)][: 50 - len(card)] + card


def new_card(task: FollowUpTask) -> list[dict[str, Any]]:
    """The card of a task just opened (no case yet: its status is open)."""
    due = task.due_at.strftime("%Y-%m-%d %H:%M UTC")
    return _card(task.task_id, "open", task.assignee, {}, due, None, [], overdue=False, suggested=task.suggested_root_cause)


def card(case: Case, overdue: bool) -> list[dict[str, Any]]:
    return _card(
        case.task_id,
        case.status,
        case.assignee,
        case.steps,
        case.sla.resolve_by.strftime("%Y-%m-%d %H:%M UTC"),
        case,
        [e.reason for e in case.escalations if e.round == case.reopened],
        overdue,
        case.suggested_root_cause,
    )


def cause_label(cause: str) -> str:
    """A root cause's slug as people read it: shipping-delay → Shipping delay."""
    return cause.replace("-", " ").capitalize()


def likely_line(suggested: SuggestedRootCause) -> str:
    """The card's line "Likely: Shipping delay (72 %): late, parcel", escaped: the terms are the customer's words."""
    line = f"Likely: {slack_escape(cause_label(suggested.root_cause))} ({int(suggested.confidence * 100 + 0.5)} %)"
    return line + (f": {slack_escape(', '.join(suggested.terms)[:300])}" if suggested.terms else "")


def _card(
    task_id: str,
    status: str,
    assignee: str | None,
    steps: dict[str, bool],
    due: str,
    case: Case | None,
    escalations: list[str],
    overdue: bool,
    suggested: SuggestedRootCause | None = None,
) -> list[dict[str, Any]]:
    line = f"*{status.capitalize()}*"
    if assignee:
        line += f" · {mention(assignee)}"
    if case is not None and case.acknowledged_by is not None and status == "acknowledged":
        line += f" · taken by {_who(case.acknowledged_by.id, case.acknowledged_by.shown())}"
    if status not in ("resolved", "closed"):
        line += f" · due {due}"
        if overdue:
            line += " · :warning: overdue"
        if escalations:
            line += " · :rotating_light: escalated (" + ", ".join(r.replace("_", " ") for r in escalations) + ")"
    blocks: list[dict[str, Any]] = [
        {"type": "divider", "block_id": f"{CARD}:{task_id}:divider"},
        {"type": "section", "block_id": f"{CARD}:{task_id}:status", "text": {"type": "mrkdwn", "text": line}},
    ]
    if status in ("resolved", "closed") and case is not None and case.resolution is not None:
        r = case.resolution
        text = (
            f":white_check_mark: *Resolved* by {_who(r.by.id, r.by.shown())} · root cause *{slack_escape(r.root_cause)}*"
            f"{' · customer contacted' if r.customer_contacted else ''}\n>{slack_escape(r.resolution)[:2700]}{_loop_line(case)}"
        )
        blocks[1] = {"type": "section", "block_id": f"{CARD}:{task_id}:status", "text": {"type": "mrkdwn", "text": text}}
        blocks.append(
            {"type": "actions", "block_id": f"{CARD}:{task_id}:actions", "elements": [_button("Reopen", "followup.reopen", task_id)]}
        )
        return blocks
    done = [step for step in STEPS if steps.get(step)]
    checkboxes: dict[str, Any] = {"type": "checkboxes", "action_id": "followup.steps", "options": [_option(step) for step in STEPS]}
    if done:
        checkboxes["initial_options"] = [_option(step) for step in done]
    buttons = [] if status == "acknowledged" else [_button("Acknowledge", "followup.acknowledge", task_id, "primary")]
    picker: dict[str, Any] = {
        "type": "users_select",
        "action_id": "followup.assign",
        "placeholder": {"type": "plain_text", "text": "Assign…"},
    }
    if assignee and assignee[:1] in "UW":
        picker["initial_user"] = assignee
    if suggested is not None:
        # plain text (and escaped, like every customer text): a word such as _this_ stays as typed
        likely = {"type": "plain_text", "emoji": False, "text": likely_line(suggested)}
        blocks.append({"type": "context", "block_id": f"{CARD}:{task_id}:likely", "elements": [likely]})
    blocks += [
        {"type": "actions", "block_id": f"{CARD}:{task_id}:steps", "elements": [checkboxes]},
        {
            "type": "actions",
            "block_id": f"{CARD}:{task_id}:actions",
            "elements": [*buttons, _button("Resolve…", "followup.resolve", task_id), picker],
        },
    ]
    return blocks


def _loop_line(case: Case) -> str:
    """Where the loop stands after the resolution: awaiting the customer's answer, or closed with its outcome."""
    if case.status == "closed":
        return (
            "\n:tada: *Closed: the customer recovered*"
            if case.outcome == "recovered"
            else "\n:hourglass: *Closed: no answer from the customer in the recovery window*"
        )
    window = case.answer_window()
    if case.awaiting_answer and window is not None:
        return f"\n:hourglass_flowing_sand: Awaiting the customer's {case.recheck.upper()} answer until {window[1].strftime('%Y-%m-%d %H:%M UTC')}"
    return ""


def resolve_view(task_id: str, root_causes: list[str], customer: str, suggested: str | None = None) -> dict[str, Any]:
    """The dialog a `Resolve…` click opens (views.open); `suggested`: the task's suggested root cause, preselected."""
    options = [{"text": {"type": "plain_text", "text": cause}, "value": cause} for cause in root_causes[:100]]
    select: dict[str, Any] = {
        "type": "static_select",
        "action_id": "value",
        "placeholder": {"type": "plain_text", "text": "Choose…"},
        "options": options,
    }
    preselected = next((option for option in options if option["value"] == suggested), None)
    if preselected is not None:
        select["initial_option"] = preselected
    return {
        "type": "modal",
        "callback_id": RESOLVE_VIEW,
        "private_metadata": task_id,
        "title": {"type": "plain_text", "text": "Resolve task"},
        "submit": {"type": "plain_text", "text": "Resolve"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"{slack_escape(task_id)} · {slack_escape(customer)[:200]}"}]},
            {
                "type": "input",
                "block_id": "root_cause",
                "optional": True,
                "label": {"type": "plain_text", "text": "Root cause"},
                "element": select,
            },
            {
                "type": "input",
                "block_id": "resolution",
                "optional": True,
                "label": {"type": "plain_text", "text": "What was done"},
                "element": {"type": "plain_text_input", "action_id": "value", "multiline": True, "max_length": 3000},
            },
            {
                "type": "input",
                "block_id": "customer_contacted",
                "optional": True,
                "label": {"type": "plain_text", "text": "Customer"},
                "element": {
                    "type": "checkboxes",
                    "action_id": "value",
                    "options": [{"text": {"type": "plain_text", "text": "Customer contacted"}, "value": "yes"}],
                },
            },
        ],
    }


def audit_line(record: Any, name: str) -> str:
    """The one-line thread reply a change adds under the alert ("<@U02DEF> acknowledged")."""
    who = _who(record.actor.id if record.actor.source == "slack" else "", name)
    kind = record.type.removeprefix("followup.")
    if kind == "acknowledged":
        return f"{who} acknowledged"
    if kind == "assigned":
        return f"{who} assigned it to {mention(record.assignee)}"
    if kind == "step_done":
        note = f": {slack_escape(record.note)[:500]}" if record.note else ""
        return f"{who} {'ticked' if record.done else 'unticked'} {STEP_TITLES[record.step]}{note}"
    if kind == "resolved":
        return f"{who} resolved it: {slack_escape(record.root_cause)} — {slack_escape(record.resolution)[:2000]}"
    if kind == "reopened":
        return f"{who} reopened it: {slack_escape(record.reason)[:500]}"
    return f"{who}: {kind}"


def _who(user_id: str, name: str) -> str:
    return mention(user_id) if user_id[:1] in "UW" and user_id[1:].isalnum() and user_id.isupper() else slack_escape(name)


def _button(text: str, action_id: str, task_id: str, style: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {"type": "button", "action_id": action_id, "value": task_id, "text": {"type": "plain_text", "text": text}}
    if style:
        button["style"] = style
    return button


def _option(step: str) -> dict[str, Any]:
    return {"text": {"type": "mrkdwn", "text": f"*{STEP_TITLES[step]}*"}, "value": step}
