"""Hot reload: an edited rule takes effect without a restart, an invalid edit is refused loudly.

In-process (tests/harness.py), the worker polling its rules file as `feedback-worker run` does; SIGHUP,
which needs a process, is tests/e2e/test_reload.py.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable

import pytest

from tests.conftest import event_bytes, wait_for
from tests.fake_slack import FakeSlack
from tests.harness import Harness

DETRACTORS = """\
rules:
  - id: detractor
    when: {survey: nps, score: {lte: 6}}
    severity: high
    alert: {channel: "#detractors"}
"""
PROMOTERS = """
  - id: promoter
    when: {survey: nps, score: {gte: 9}}
    severity: info
    alert: {channel: "#promoters"}
"""
BROKEN = (
    DETRACTORS
    + """
  - id: typo
    when: {score: {greater: 9}}
"""
)


def _alerts(fake_slack) -> Counter[tuple[str, str]]:
    return Counter(
        (m["metadata"]["event_payload"]["event_id"], m["channel"])
        for m in list(fake_slack.messages)
        if m.get("metadata", {}).get("event_type") == "feedback_alert"
    )


def test_edits_take_effect_without_restart_and_a_broken_edit_keeps_the_old_rules(
    start_harness: Callable[..., Harness], fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="worker")
    worker = start_harness(DETRACTORS, reload_interval_seconds=0.2, slack_default_channel="#cx-ops")
    rules = worker.settings.rules_path

    def send(event_id: str, score: int) -> None:  # a customer each: a second detractor of one customer would join their task
        worker.send(event_bytes(event_id=event_id, score=score, customer={"id": event_id}), key=b"k")

    send("before-detractor", 3)
    send("before-promoter", 10)  # no rule for promoters yet
    wait_for(lambda: ("before-detractor", "#detractors") in _alerts(fake_slack), 30, "the first alert")

    rules.write_text(DETRACTORS + PROMOTERS)
    wait_for(lambda: "rules reloaded: 2 rules" in caplog.text, 30, "the reload")
    send("after-promoter", 10)
    send("after-detractor", 2)
    wait_for(lambda: len(_alerts(fake_slack)) == 3, 30, "alerts under the new rules")

    rules.write_text(BROKEN)
    wait_for(lambda: "RULES RELOAD REJECTED" in caplog.text, 30, "the rejection")
    assert f"{rules}:8: rule 'typo': when.score: unknown operator 'greater'" in caplog.text
    notice = wait_for(lambda: [m for m in list(fake_slack.messages) if m["channel"] == "#cx-ops"], 30, "the notice in Slack")
    assert "unknown operator 'greater'" in str(notice[0]["blocks"])
    send("broken-promoter", 9)  # the old (two-rule) set still runs
    worker.send(event_bytes(event_id="last-detractor", score=0, customer={"id": "last"}), key=b"k")
    wait_for(lambda: worker.consumer.all_committed("fb"), 30, "everything committed")
    wait_for(lambda: len(_alerts(fake_slack)) == 5, 30, "alerts after the rejected edit")

    # Each event was handled once, by the rules in force when it arrived: nothing lost, nothing twice.
    assert _alerts(fake_slack) == Counter(
        {
            ("before-detractor", "#detractors"): 1,
            ("after-promoter", "#promoters"): 1,
            ("after-detractor", "#detractors"): 1,
            ("broken-promoter", "#promoters"): 1,
            ("last-detractor", "#detractors"): 1,
        }
    )
    assert worker.thread.is_alive()  # still running


THEMED = """\
themes:
  - {id: late, label: Late, terms: {en: [late]}}
rules:
  - id: on-a-theme
    when: {comment.themes: late}
    severity: high
    alert: {channel: "#themed"}
"""


def test_an_edited_theme_takes_effect_without_restart(start_harness: Callable[..., Harness], fake_slack: FakeSlack) -> None:
    worker = start_harness(THEMED, reload_interval_seconds=0.2)
    rules = worker.settings.rules_path

    def send(event_id: str, comment: str) -> None:
        worker.send(event_bytes(event_id=event_id, score=8, comment=comment, language="en", customer={"id": event_id}), key=b"k")

    send("late-1", "It arrived late")
    send("slow-1", "The courier was slow")  # no theme says "slow" yet
    wait_for(lambda: ("late-1", "#themed") in _alerts(fake_slack), 30, "the alert on the theme")
    rules.write_text(THEMED.replace("terms: {en: [late]}", "terms: {en: [late, slow]}"))
    wait_for(lambda: worker.worker.rules.themes["late"].terms["en"] == ["late", "slow"], 30, "the reload")
    send("slow-2", "The courier was slow")
    wait_for(lambda: worker.consumer.all_committed("fb"), 30, "everything committed")
    wait_for(lambda: len(_alerts(fake_slack)) == 2, 30, "the alert under the edited theme")
    assert _alerts(fake_slack) == Counter({("late-1", "#themed"): 1, ("slow-2", "#themed"): 1})
