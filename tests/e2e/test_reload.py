"""Hot reload on SIGHUP, sent to a `feedback-worker run` process (the rules file polled: tests/loop/test_reload.py)."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.conftest import event_bytes, produce, wait_for
from tests.loop.test_reload import DETRACTORS, PROMOTERS, _alerts


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
