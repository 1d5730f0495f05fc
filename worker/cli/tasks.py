"""`feedback-worker task list|show|ack|assign|step|resolve|reopen`: work the follow-up tasks from a terminal.

Reads every task from the worker state topic (as the workers see them) and sends actions
through TASK_ACTIONS_TOPIC, like Slack and other systems do: the keeper applies them in order
(keeper/desk.py). A refusal is immediate; otherwise the command waits for the keeper's verdict (a
running worker is needed for that). Exit codes: 0 done, 1 refused or not applied in time,
2 usage (a bad argument, an unknown setting).
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..config import load_settings
from ..keeper import WAIT_S, TaskDesk
from ..tasks import STEPS, Case, Cases
from .exits import EXIT_FAILED, EXIT_OK


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    task = commands.add_parser("task", help="list, show and work follow-up tasks (acknowledge, assign, steps, resolve, reopen)")
    task.add_argument("--config", type=Path, help="YAML file of settings; environment variables win")
    verbs = task.add_subparsers(dest="task_command", required=True)
    listing = verbs.add_parser("list", help="tasks as the workers see them, most urgent first")
    listing.add_argument("--status", choices=("open", "acknowledged", "resolved", "closed"))
    listing.add_argument("--overdue", action="store_true", help="only unresolved tasks past their due time")
    listing.add_argument("--owner", help="only tasks of this owner or assignee")
    listing.add_argument("--json", action="store_true", help="one JSON object per task")
    show = verbs.add_parser("show", help="a task and its whole history (FOLLOWUP_TOPIC)")
    show.add_argument("task_id")
    show.add_argument("--json", action="store_true")
    for verb, helptext in (
        ("ack", "acknowledge: you have taken the task"),
        ("assign", "give the task to someone"),
        ("step", "tick (or --undo) a HEARD step"),
        ("resolve", "resolve with a root cause and what was done"),
        ("reopen", "reopen a resolved or closed task"),
    ):
        action = verbs.add_parser(verb, help=helptext)
        action.add_argument("task_id")
        action.add_argument("--by", help="your name, as the audit log shows it (default: your login)")
        action.add_argument("--wait", type=float, default=WAIT_S, help=f"seconds to wait for a worker to apply it (default {WAIT_S:g})")
        if verb == "assign":
            action.add_argument("assignee", help="a Slack user id (U...) or an owner name")
        elif verb == "step":
            action.add_argument("step", choices=STEPS)
            action.add_argument("--undo", action="store_true", help="untick it")
            action.add_argument("--note")
        elif verb == "resolve":
            action.add_argument("--root-cause", required=True, help="one of the root causes (config `root_causes:`)")
            action.add_argument("--resolution", required=True, help="what was done")
            action.add_argument("--contacted", action="store_true", help="the customer was contacted")
        elif verb == "reopen":
            action.add_argument("--reason", required=True)
    task.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    with TaskDesk(settings) as desk:
        if args.task_command == "list":
            return list_tasks(desk.cases, args)
        if args.task_command == "show":
            return show_task(desk, args)
        return act(desk, args)


# -- reading -----------------------------------------------------------------------------------------


def list_tasks(cases: Cases, args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    chosen = [
        c
        for c in cases.by_id.values()
        if (args.status is None or c.status == args.status)
        and (not args.overdue or c.overdue(now))
        and (args.owner is None or args.owner in (c.owner, c.assignee))
    ]
    chosen.sort(key=lambda c: (not c.unresolved, c.sla.resolve_by))
    if args.json:
        for case in chosen:
            print(json.dumps(case.model_dump(mode="json") | {"overdue": case.overdue(now)}, ensure_ascii=False))
    else:
        rows = [("TASK", "STATUS", "OWNER", "ASSIGNEE", "CUSTOMER", "RULE", "DUE (UTC)")]
        for case in chosen:
            status = (
                case.status
                + (f" ({case.outcome})" if case.outcome else "")
                + (" ⚠ overdue" if case.overdue(now) else "")
                + (" ⚑ escalated" if case.escalations and case.unresolved else "")
            )
            rows.append(
                (
                    case.task_id,
                    status,
                    case.owner,
                    case.assignee or "—",
                    (case.customer_name or case.customer_id)[:28],
                    case.rule_id,
                    case.sla.resolve_by.strftime("%Y-%m-%d %H:%M"),
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    counts = {s: sum(c.status == s for c in chosen) for s in ("open", "acknowledged", "resolved", "closed")}
    overdue = sum(c.overdue(now) for c in chosen)
    print(
        f"{len(chosen)} task(s): " + ", ".join(f"{n} {s}" for s, n in counts.items() if n) + (f"; {overdue} overdue" if overdue else ""),
        file=sys.stderr,
    )
    return EXIT_OK


def show_task(desk: TaskDesk, args: argparse.Namespace) -> int:
    case = desk.cases.get(args.task_id)
    history = desk.history(args.task_id)
    if case is None and not history:
        print(f"error: unknown task {args.task_id!r} (see `feedback-worker task list`)", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        print(json.dumps({"task": case.model_dump(mode="json") if case else None, "history": history}, ensure_ascii=False, indent=2))
        return EXIT_OK
    if case is not None:
        print(describe(case))
    print("history:")
    for record in history:
        print(f"  {_when(record.get('at') or record.get('opened_at'))}  {record['type']:<22} {_by(record)}{_details(record)}")
    return EXIT_OK


def describe(case: Case) -> str:
    now = datetime.now(UTC)
    steps = " ".join(("☑" if case.steps.get(step) else "☐") + step for step in STEPS)
    lines = [
        f"{case.task_id}  {case.status}{' ⚠ overdue' if case.overdue(now) else ''}  ({case.rule_id}, {case.severity})",
        f"  customer   {case.customer_name or '—'} ({case.customer_id})",
        f"  owner      {case.owner}" + (f" → {case.assignee}" if case.assignee else ""),
        f"  opened     {_when(case.opened_at)}; acknowledge by {_when(case.sla.acknowledge_by)}; resolve by {_when(case.sla.resolve_by)}",
        f"  steps      {steps}",
    ]
    if case.suggested_root_cause is not None and case.resolution is None:
        likely = case.suggested_root_cause
        lines.append(f"  likely     {likely.root_cause} ({likely.confidence:.0%}): {', '.join(likely.terms) or '—'}")
    if case.acknowledged_by is not None:
        lines.append(f"  taken by   {case.acknowledged_by.shown()} at {_when(case.acknowledged_at)}")
    for escalation in case.escalations:
        lines.append(f"  escalated  {escalation.reason} at {_when(escalation.at)}")
    if case.resolution is not None:
        r = case.resolution
        lines.append(
            f"  resolved   {r.root_cause} by {r.by.shown()} at {_when(r.at)}: {r.resolution}"
            f"{' (customer contacted)' if r.customer_contacted else ''}"
        )
    window = case.answer_window()
    if case.awaiting_answer and window is not None:
        lines.append(f"  follow-up  {case.recheck.upper()} survey asked; awaiting the customer's answer until {_when(window[1])}")
    if case.status == "closed":
        lines.append(f"  closed     {case.outcome} at {_when(case.updated_at)}")
    return "\n".join(lines)


# -- acting ------------------------------------------------------------------------------------------------


def act(desk: TaskDesk, args: argparse.Namespace) -> int:
    login = getpass.getuser()
    actor = {"source": "cli", "id": login, "name": args.by or login}
    name = {"ack": "acknowledge"}.get(args.task_command, args.task_command)
    fields: dict[str, Any] = {}
    if name == "assign":
        fields["assignee"] = args.assignee
    elif name == "step":
        fields = {"step": args.step, "done": not args.undo, "note": args.note}
    elif name == "resolve":
        fields = {"root_cause": args.root_cause, "resolution": args.resolution, "customer_contacted": args.contacted}
    elif name == "reopen":
        fields["reason"] = args.reason
    verdict = desk.act(name, args.task_id, actor, args.wait, **fields)
    if not verdict.applied:
        print(f"error: {verdict.message}", file=sys.stderr)
        return EXIT_FAILED
    if verdict.case is not None:
        print(describe(verdict.case))
    print(f"{verdict.message}, by {actor['name']}", file=sys.stderr)
    return EXIT_OK


def _when(moment: Any) -> str:
    if moment is None:
        return "—"
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _by(record: dict[str, Any]) -> str:
    actor = record.get("actor") or {}
    return f"by {actor.get('name') or actor.get('id') or actor.get('source', '?')}"


def _details(record: dict[str, Any]) -> str:
    kind = record["type"]
    if kind == "followup.opened":
        return f" · {record['rule_id']} · owner {record['owner']}" + (f" → {record['assignee']}" if record.get("assignee") else "")
    if kind == "followup.updated":
        return f" · answer {record['event_id']} ({record['survey']} {record['score']})"
    if kind == "followup.assigned":
        return f" · {record.get('previous') or '—'} → {record['assignee']}"
    if kind == "followup.step_done":
        return f" · {record['step']} {'done' if record['done'] else 'undone'}" + (f": {record['note']}" if record.get("note") else "")
    if kind == "followup.escalated":
        return f" · {record['reason']} (level {record['level']})"
    if kind == "followup.resolved":
        return f" · {record['root_cause']}: {record['resolution']}" + (" (customer contacted)" if record["customer_contacted"] else "")
    answer = record.get("answer")
    said = f" · answer {answer['event_id']} ({answer['survey']} {answer['score']})" if answer else ""
    if kind == "followup.reopened":
        return f" · {record['reason']}{said}"
    if kind == "followup.closed":
        return f" · {record['outcome']}{said}"
    return ""
