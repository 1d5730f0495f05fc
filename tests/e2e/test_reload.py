"""Hot reload: an edited rule takes effect without a restart, an invalid edit is refused loudly."""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path

from tests.conftest import all_committed, event_bytes, produce, wait_for

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
    kafka_bootstrap, topics, fake_slack, start_worker, tmp_path
):
    rules = tmp_path / "rules.yaml"
    rules.write_text(DETRACTORS)
    worker = start_worker("worker", RULES_PATH=str(rules), RELOAD_INTERVAL_SECONDS="0.2", SLACK_DEFAULT_CHANNEL="#cx-ops")
    feedback = topics["FEEDBACK_TOPIC"]

    def send(event_id: str, score: int) -> None:  # a customer each: a second detractor of one customer would join their task
        produce(kafka_bootstrap, feedback, [(b"k", event_bytes(event_id=event_id, score=score, customer={"id": event_id}))])

    send("before-detractor", 3)
    send("before-promoter", 10)  # no rule for promoters yet
    wait_for(lambda: ("before-detractor", "#detractors") in _alerts(fake_slack), 60, "the first alert")

    rules.write_text(DETRACTORS + PROMOTERS)
    wait_for(lambda: "rules reloaded: 2 rules" in worker.output(), 30, "the reload")
    send("after-promoter", 10)
    send("after-detractor", 2)
    wait_for(lambda: len(_alerts(fake_slack)) == 3, 30, "alerts under the new rules")

    rules.write_text(BROKEN)
    wait_for(lambda: "RULES RELOAD REJECTED" in worker.output(), 30, "the rejection")
    assert f"{rules}:8: rule 'typo': when.score: unknown operator 'greater'" in worker.output()
    notice = wait_for(lambda: [m for m in list(fake_slack.messages) if m["channel"] == "#cx-ops"], 30, "the notice in Slack")
    assert "unknown operator 'greater'" in str(notice[0]["blocks"])
    send("broken-promoter", 9)  # the old (two-rule) set still runs
    end = produce(kafka_bootstrap, feedback, [(b"k", event_bytes(event_id="last-detractor", score=0, customer={"id": "last"}))])
    wait_for(lambda: all_committed(kafka_bootstrap, topics, end), 60, "everything committed")
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
    assert worker.process is not None and worker.process.poll() is None  # still running


def test_sighup_reloads_at_once(kafka_bootstrap, topics, fake_slack, start_worker, tmp_path: Path):
    rules = tmp_path / "rules.yaml"
    rules.write_text(DETRACTORS)
    worker = start_worker("worker", RULES_PATH=str(rules), RELOAD_INTERVAL_SECONDS="0")  # 0: only on SIGHUP
    worker.wait_assigned()
    rules.write_text(DETRACTORS + PROMOTERS)
    worker.signal(signal.SIGHUP)
    wait_for(lambda: "rules reloaded: 2 rules" in worker.output(), 30, "the reload on SIGHUP")
    produce(kafka_bootstrap, topics["FEEDBACK_TOPIC"], [(b"k", event_bytes(event_id="promoter", score=10))])
    wait_for(lambda: ("promoter", "#promoters") in _alerts(fake_slack), 30, "the new rule's alert")
