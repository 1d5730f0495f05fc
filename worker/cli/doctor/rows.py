"""The doctor's rows (✓ ✗ –), and how they are printed: a table for people, JSON for machines."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..exits import EXIT_OK

OK, FAIL, SKIP = "✓", "✗", "–"
STATUS_NAMES = {OK: "ok", FAIL: "fail", SKIP: "skipped"}


@dataclass(frozen=True)
class Row:
    """One check: its status (✓ ✗ –), what was checked, what was found, and for a ✗ the fix."""

    status: str
    check: str
    detail: str
    fix: str = ""

    def as_json(self) -> dict[str, str]:
        return {"status": STATUS_NAMES[self.status], "symbol": self.status, "check": self.check, "detail": self.detail, "fix": self.fix}


def table(rows: list[Row]) -> str:
    """The rows for a terminal: status, what was checked, what was found; a ✗'s fix on the line below."""
    width = min(max((len(row.check) for row in rows), default=0), 50)
    lines = []
    for row in rows:
        detail = row.detail.splitlines() or [""]
        lines.append(f"{row.status}  {row.check:<{width}}  {detail[0]}")
        indent = " " * (width + 5)
        lines += [indent + more for more in detail[1:]]
        if row.fix:
            lines.append(f"{indent}fix: {row.fix}")
    counts = {status: sum(1 for row in rows if row.status == status) for status in (OK, FAIL, SKIP)}
    verdict = "ready" if not counts[FAIL] else f"not ready: {counts[FAIL]} problem(s)"
    lines.append(f"\n{len(rows)} checks: {counts[OK]} {OK}, {counts[FAIL]} {FAIL}, {counts[SKIP]} {SKIP}; {verdict}")
    return "\n".join(lines)


def as_json(rows: list[Row], code: int) -> dict[str, Any]:
    counts = {STATUS_NAMES[status]: sum(1 for row in rows if row.status == status) for status in (OK, FAIL, SKIP)}
    return {"ok": code == EXIT_OK, "exit_code": code, "counts": counts, "rows": [row.as_json() for row in rows]}
