"""Rolling CX metrics: NPS, CSAT, CES, volume, revenue at risk and comment themes per window, exact across crashes.

    tally.py         the arithmetic: counts per pane (Tally) and the figures from them
    schema.py      the MetricSnapshot record, a contract for downstream services
    windows.py       the `metrics:` config and the pane arithmetic of windows
    partials.py      per-partition partials, and the metric records of the state topic
    metering.py      what the worker loop calls: count, checkpoint, restore, tick
    emitter.py     merging partials and emitting snapshots, interim and final
    metric_rules.py  rules on rolling figures ("enterprise NPS below 0 over 24h")
    loop.py          loop KPIs per window, from the follow-up tasks' lifecycle (fed by tasks/kpis.py)
    theme_costs.py   what each comment theme costs in one snapshot, as a table (`report themes`, the demo)

What other subpackages use is exported here.
"""

from .emitter import SnapshotEmitter, snapshot_key
from .loop import LoopBook, LoopEntry, LoopTally, loop_figures, nearest_rank
from .metering import Metering
from .metric_rules import (
    DEFAULT_METRIC_TEMPLATE,
    METRIC_PATHS,
    MetricCondition,
    MetricRule,
    MetricWatch,
    holds,
    loop_basis,
    metric_value,
    responses_for,
)
from .partials import GRACE_S, MetricState, PartitionMetrics
from .schema import LoopFigures, MetricSnapshot, Percentiles, ThemeFigures, WindowRef
from .tally import Tally, figures, nps_impact
from .theme_costs import percent, rank_themes, signed, themes_table
from .windows import MetricsConfig, WindowSpec, iso

__all__ = [
    "DEFAULT_METRIC_TEMPLATE",
    "GRACE_S",
    "LoopBook",
    "LoopEntry",
    "LoopFigures",
    "LoopTally",
    "METRIC_PATHS",
    "MetricCondition",
    "MetricRule",
    "MetricSnapshot",
    "MetricState",
    "MetricWatch",
    "Metering",
    "MetricsConfig",
    "PartitionMetrics",
    "Percentiles",
    "SnapshotEmitter",
    "Tally",
    "ThemeFigures",
    "WindowRef",
    "WindowSpec",
    "figures",
    "holds",
    "iso",
    "loop_basis",
    "loop_figures",
    "metric_value",
    "nearest_rank",
    "nps_impact",
    "percent",
    "rank_themes",
    "responses_for",
    "signed",
    "snapshot_key",
    "themes_table",
]
