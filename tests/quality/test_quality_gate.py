"""Quality gate: accuracy on fixed data must not fall below the stored baseline
(``tests/quality/baseline.json``; what is measured and how to regenerate it: ``gate.py``).
Accuracy only, never time."""

from pathlib import Path

import pytest

from tests.quality.gate import LIMITS, failures, load_baseline, measure

pytestmark = [pytest.mark.data, pytest.mark.slow]


def test_baseline_covers_every_watched_metric() -> None:
    assert set(LIMITS) <= set(load_baseline())


def test_failures_name_the_metric_and_the_allowed_slack() -> None:
    base = dict.fromkeys(LIMITS, 0.5)
    worse = dict(base, **{"utkface.gender_accuracy": 0.4, "scenario.id_switches": 3.0})
    assert failures(base, base) == []
    assert failures(worse, base) == [
        "scenario.id_switches: 3.0000 vs baseline 0.5000 (allowed 2 worse)",
        "utkface.gender_accuracy: 0.4000 vs baseline 0.5000 (allowed 0.015 worse)",
    ]


def test_accuracy_holds_the_baseline(shared_dir: Path) -> None:
    problems = failures(measure(shared_dir), load_baseline())
    assert not problems, "accuracy fell below the baseline:\n" + "\n".join(problems)
