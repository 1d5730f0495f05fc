"""The table of what each comment theme costs in one snapshot: `report themes` and the demo's summary print it."""

from __future__ import annotations

from collections.abc import Callable

from .schema import MetricSnapshot, ThemeFigures


def rank_themes(themes: dict[str, ThemeFigures]) -> list[tuple[str, ThemeFigures]]:
    """Largest NPS impact first, either way (|impact|); then the themes without one; ties: more answers first, then id."""
    return sorted(
        themes.items(),
        key=lambda item: (item[1].nps_impact is None, -abs(item[1].nps_impact or 0.0), -item[1].responses, item[0]),
    )


def themes_table(snapshot: MetricSnapshot, label: Callable[[str], str] = str, indent: str = "") -> list[str]:
    """One line per theme the window's answers mention, ranked (`rank_themes`), under a header; `label`: what a
    person reads for a theme id (its label; the id by default)."""
    comments = snapshot.comments
    rows = [("theme", "answers", "of comments", "NPS", "impact", "CSAT", "CES", "revenue at risk")]
    for theme, f in rank_themes(snapshot.themes):
        rows.append(
            (
                label(theme),
                str(f.responses),
                percent(f.responses / comments * 100 if comments else None),
                signed(f.nps.score, 1),
                signed(f.nps_impact, 2),
                percent(f.csat.score),
                "—" if f.ces.mean is None else f"{f.ces.mean:.1f}",
                f"${f.revenue_at_risk:,.2f}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        indent + "  ".join([row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]).rstrip()
        for row in rows
    ]


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}%"


def signed(value: float | None, decimals: int) -> str:
    return "—" if value is None else f"{value:+.{decimals}f}"
