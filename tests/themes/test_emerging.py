"""When a term is rising (issue 22's rule), and the `emerging:` block as ops write it, checked with file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.rules import RulesError, load_rules
from worker.themes import EmergingSpec, rising_terms

SPEC = EmergingSpec(channel="#cx-insights", window="1d", baseline="28d", min_count=5, min_ratio=3)


def test_the_threshold_is_min_count_and_min_ratio_times_the_smoothed_usual_count() -> None:
    # min_ratio × (baseline + 1) × window ÷ baseline: 3 × 29 ÷ 28 = 3.1 for a term seen 28 times in 28 days.
    assert SPEC.is_rising(5, 28) and not SPEC.is_rising(4, 0)  # below min_count, however new
    assert SPEC.is_rising(33, 299) and not SPEC.is_rising(32, 299)  # 3 × 300 ÷ 28 = 32.14
    assert SPEC.usual(299) == pytest.approx(300 / 28)


def test_a_term_common_all_along_never_rises_and_a_new_wave_does() -> None:
    usual_day = {"late": 40, "refund": 12}
    baseline = {key: n * 28 for key, n in usual_day.items()}
    assert rising_terms(usual_day, baseline, {}, SPEC) == []
    wave = usual_day | {"zipper": 9, "zipper broke": 7, "broke": 9}
    found = rising_terms(wave, baseline | {"broke": 10}, {"zipper": "Zipper", "zipper broke": "zipper broke"}, SPEC)
    assert [(t.key, t.written, t.count) for t in found] == [("broke", "broke", 9), ("zipper", "Zipper", 9)]
    # the phrase is as frequent as its stems: the same wave, said once


def test_the_emerging_block_is_checked_with_file_and_line(tmp_path: Path) -> None:
    rules = "rules:\n  - id: r\n    when: {survey: nps}\n"
    (tmp_path / "a.yaml").write_text(rules + "emerging:\n  channel: '#x'\n  window: 1d\n  min_ratio: 0\n")
    (tmp_path / "b.yaml").write_text("emerging: {channel: '#y'}\n")
    with pytest.raises(RulesError) as caught:
        load_rules(tmp_path)
    lines = [str(e) for e in caught.value.errors]
    assert any(line.startswith(f"{tmp_path / 'a.yaml'}:7:") and "min_ratio" in line for line in lines), lines
    assert any(line.startswith(f"{tmp_path / 'b.yaml'}:1:") and "a second `emerging:` block" in line for line in lines), lines
    (tmp_path / "b.yaml").unlink()
    (tmp_path / "a.yaml").write_text(rules + "emerging:\n  channel: '#x'\n  window: 1d\n  baseline: 36h\n")
    with pytest.raises(RulesError) as caught:
        load_rules(tmp_path)
    assert [str(e) for e in caught.value.errors] == [
        f"{tmp_path / 'a.yaml'}:5: rising complaints: emerging: baseline must be a whole number of windows (24h), got 36h"
    ]


def test_the_shipped_rules_turn_rising_complaints_on() -> None:
    spec = load_rules(Path(__file__).resolve().parents[2] / "rules").emerging
    assert spec is not None and spec.channel == "#cx-insights" and spec.windows == 28


def test_a_window_is_whole_minutes_and_the_baseline_whole_windows() -> None:
    assert EmergingSpec(channel="#x", window="1m", baseline="10m").windows == 10  # what the tests and the demo use
    for window, baseline in [("30s", "10m"), ("90s", "15m"), ("10m", "25m")]:
        with pytest.raises(ValueError, match="whole minutes|whole number of windows"):
            EmergingSpec(channel="#x", window=window, baseline=baseline)
