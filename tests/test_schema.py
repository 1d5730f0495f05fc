"""`feedback-worker schema`: the JSON Schemas consumers read, and the copies docs/event.md links."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from worker.cli import SCHEMAS, schema_of

ROOT = Path(__file__).resolve().parent.parent


def test_schema_command_prints_the_snapshot_contract() -> None:
    result = subprocess.run([sys.executable, "-m", "worker", "schema", "snapshot"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    assert schema["title"] == "MetricSnapshot"
    assert set(schema["required"]) >= {
        "window",
        "dimension",
        "final",
        "emitted_at",
        "responses",
        "nps",
        "csat",
        "ces",
        "unhappy_customers",
        "revenue_at_risk",
        "late_events",
    }
    nps = schema["$defs"]["NpsFigures"]["properties"]
    assert set(nps) == {"responses", "promoters", "passives", "detractors", "score", "margin_of_error"}


def test_an_unknown_record_type_is_a_usage_error() -> None:
    result = subprocess.run([sys.executable, "-m", "worker", "schema", "events"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "invalid choice: 'events'" in result.stderr


@pytest.mark.parametrize("record", sorted(SCHEMAS))
def test_the_schemas_linked_from_the_readme_are_current(record: str) -> None:
    path = ROOT / "docs" / "schemas" / f"{record}.schema.json"
    assert json.loads(path.read_text()) == schema_of(record), f"regenerate: feedback-worker schema {record} > {path}"
    assert f"docs/schemas/{record}.schema.json" in (ROOT / "docs" / "event.md").read_text()
