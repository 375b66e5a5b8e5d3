"""Synthetic crowds of real labelled faces: does a spot's reported share match the truth?

Each crowd draws people from the UTKFace test split with a skewed mix - 75 % or 25 % women, an
old-heavy or a young-heavy age mix - and 120 to 500 people; the default classifier's posteriors of
those faces (the edge's alignment, flip averaging) go through the aggregator's estimate with the
classifier's shipped calibration (fitted on val, never on these faces). The result table puts the
estimate, its 95 % interval and the naive count (each person's top label, counted) beside the truth.

    python -m aggregator.shares.crowds --data ../shared/data/utkface --models-dir ../shared/models

writes ``aggregator/shares/results/crowds.md``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from aggregator.shares.estimate import ShareEstimate, estimate_shares
from aggregator.shares.labelled import LabelledPosteriors, predict_split
from aggregator.shares.registry import calibration_for
from footfall.contract import AGE_GROUPS

F64 = npt.NDArray[np.float64]
RESULTS = Path(__file__).with_name("results") / "crowds.md"

# Age mixes over the 8 groups (0-2, 4-6, 8-12, 15-20, 25-32, 38-43, 48-53, 60-100).
OLD_HEAVY = (0.02, 0.02, 0.03, 0.05, 0.13, 0.15, 0.25, 0.35)
YOUNG_HEAVY = (0.10, 0.10, 0.12, 0.25, 0.28, 0.08, 0.04, 0.03)


@dataclass(frozen=True)
class Scenario:
    name: str
    role: str  # "gender" or "age"
    mix: tuple[float, ...]  # class shares of the crowd
    people: int


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("75 % women", "gender", (0.75, 0.25), 120),
    Scenario("75 % women", "gender", (0.75, 0.25), 500),
    Scenario("25 % women", "gender", (0.25, 0.75), 120),
    Scenario("25 % women", "gender", (0.25, 0.75), 500),
    Scenario("old-heavy", "age", OLD_HEAVY, 250),
    Scenario("old-heavy", "age", OLD_HEAVY, 500),
    Scenario("young-heavy", "age", YOUNG_HEAVY, 250),
    Scenario("young-heavy", "age", YOUNG_HEAVY, 500),
)


@dataclass(frozen=True)
class CrowdResult:
    scenario: Scenario
    truth: F64  # the crowd's actual class shares
    estimate: ShareEstimate

    def error(self) -> F64:
        return np.abs(self.estimate.share - self.truth)

    def naive_error(self) -> F64:
        return np.abs(self.estimate.naive - self.truth)

    def covered(self) -> npt.NDArray[np.bool_]:
        return (self.estimate.low <= self.truth) & (self.truth <= self.estimate.high)


def draw_crowd(
    faces: LabelledPosteriors, scenario: Scenario, rng: np.random.Generator
) -> tuple[F64, F64]:
    """(posteriors, true shares) of one crowd: exact class counts from the mix, faces of each
    class drawn without replacement while the pool lasts."""
    labels = faces.gender_labels if scenario.role == "gender" else faces.age_labels
    posteriors = faces.gender if scenario.role == "gender" else faces.age
    counts = np.floor(np.asarray(scenario.mix) * scenario.people).astype(int)
    counts[np.argmax(scenario.mix)] += scenario.people - counts.sum()
    rows = []
    for k, n in enumerate(counts):
        pool = np.flatnonzero(labels == k)
        if n == 0:
            continue
        if len(pool) == 0:
            raise ValueError(f"no test face of class {k} for {scenario.name}")
        rows.append(rng.choice(pool, n, replace=n > len(pool)))
    chosen = np.concatenate(rows)
    return posteriors[chosen], counts / counts.sum()


def run(faces: LabelledPosteriors, *, seeds: int = 1, draws: int = 400) -> list[CrowdResult]:
    out = []
    for scenario in SCENARIOS:
        model = calibration_for(scenario.role, f"cydral-{scenario.role}")
        if model is None:
            raise ValueError(f"no shipped calibration for cydral-{scenario.role}")
        for seed in range(seeds):
            rng = np.random.default_rng(1000 * seed + scenario.people)
            posteriors, truth = draw_crowd(faces, scenario, rng)
            estimate = estimate_shares(posteriors, model.calibration, draws=draws, seed=seed)
            out.append(CrowdResult(scenario, truth, estimate))
    return out


def _pct(v: float) -> str:
    return f"{100 * v:.1f}"


def markdown(first: list[CrowdResult], repeated: list[CrowdResult], faces: int) -> str:
    lines = [
        "# Shares on synthetic crowds of real faces",
        "",
        "Written by `python -m aggregator.shares.crowds --data DATA --models-dir MODELS`. Crowds "
        f"drawn from {faces:,} UTKFace test faces; posteriors of the default classifier "
        "(cydral, the edge's alignment, flip averaging). Estimate, with the shipped calibration "
        "(fitted on val): gender by adjusted classify-and-count (top labels counted, the val "
        "confusion undone), age by EM prior adjustment of vector-scaled posteriors; interval = "
        "bootstrap over people and over the calibration; naive = each person's most likely "
        "class, counted.",
        "",
        "## One crowd per scenario (seed 0); gender: the women's share, age: each group's share",
        "",
        "| crowd | people | class | truth % | naive % | estimate % | 95 % interval | error (points) "
        "| naive error | covered |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in first:
        classes = ["women"] if r.scenario.role == "gender" else [g.value for g in AGE_GROUPS]
        for k, name in enumerate(classes):
            e = r.estimate
            lines.append(
                f"| {r.scenario.name} | {r.scenario.people} | {name} | {_pct(r.truth[k])} | "
                f"{_pct(e.naive[k])} | {_pct(e.share[k])} | {_pct(e.low[k])}-{_pct(e.high[k])} | "
                f"{_pct(r.error()[k])} | {_pct(r.naive_error()[k])} | "
                f"{'yes' if r.covered()[k] else 'no'} |"
            )
    lines += [
        "",
        f"## Over {len(repeated) // len(SCENARIOS)} crowds per scenario (different draws)",
        "",
        "| crowd | people | mean error (points) | max error | naive mean error | interval "
        "covers the truth |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for scenario in SCENARIOS:
        rs = [r for r in repeated if r.scenario == scenario]
        cut = slice(0, 1) if scenario.role == "gender" else slice(None)
        err = np.concatenate([r.error()[cut] for r in rs])
        naive = np.concatenate([r.naive_error()[cut] for r in rs])
        cov = np.concatenate([r.covered()[cut] for r in rs])
        lines.append(
            f"| {scenario.name} | {scenario.people} | {_pct(err.mean())} | {_pct(err.max())} | "
            f"{_pct(naive.mean())} | {100 * cov.mean():.0f} % |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--models-dir", type=Path)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    faces = predict_split(args.data, "test", "cydral", models_dir=args.models_dir)
    first = run(faces, seeds=1)
    repeated = run(faces, seeds=args.seeds, draws=200)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(markdown(first, repeated, len(faces)), encoding="utf-8")
    print(f"wrote {args.out}")
    for r in first:
        e = r.estimate
        print(
            f"{r.scenario.name:12s} {r.scenario.people:4d}: truth {_pct(r.truth[0])} "
            f"naive {_pct(e.naive[0])} estimate {_pct(e.share[0])} "
            f"({_pct(e.low[0])}-{_pct(e.high[0])})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
