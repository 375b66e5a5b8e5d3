"""The standard suite: a few named scenarios, each run through our pipeline and the seed-style
one, with the results written as JSON and a markdown table.

The scenarios are fixed (name, seed, knobs) so their numbers compare across commits; faces come
from the UTKFace test split. For choosing settings, run the same scenarios on the validation
faces (``faces_split="val"``) and keep the test split for reporting.
"""

import json
import logging
import os
import platform
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import cv2

from edge_agent.config import AgentConfig
from edge_agent.evaluation.evaluate import Config, eval_config, evaluate_spec
from edge_agent.evaluation.scenario import ScenarioSpec, Split
from edge_agent.evaluation.score import ScenarioScore
from models.assets import ModelResolver

log = logging.getLogger(__name__)

_COMMON: dict[str, object] = {"fps": 12.0, "background": "median:vtest"}

STANDARD_SUITE: tuple[ScenarioSpec, ...] = (
    ScenarioSpec(
        name="quiet-street",
        seed=101,
        people=30,
        arrivals_per_minute=15,
        face_px=(50, 110),
        pause_probability=0.05,
        turned_away_probability=0.1,
        **_COMMON,
    ),
    ScenarioSpec(
        name="busy-mall-entrance",
        seed=102,
        people=60,
        arrivals_per_minute=40,
        face_px=(40, 100),
        lane_spread=0.08,
        group_probability=0.2,
        pause_probability=0.15,
        turned_away_probability=0.2,
        **_COMMON,
    ),
    ScenarioSpec(
        name="groups",
        seed=103,
        people=40,
        arrivals_per_minute=12,
        face_px=(45, 100),
        group_probability=0.8,
        group_size=(2, 4),
        turned_away_probability=0.2,
        **_COMMON,
    ),
    ScenarioSpec(
        name="re-entries",
        seed=104,
        people=30,
        arrivals_per_minute=12,
        face_px=(45, 100),
        reentry_probability=0.5,
        reentry_gap_seconds=(1.0, 8.0),
        turned_away_probability=0.3,
        **_COMMON,
    ),
    ScenarioSpec(
        name="small-faces",
        seed=105,
        width=1280,
        height=720,
        people=30,
        arrivals_per_minute=15,
        face_px=(30, 50),
        walking_speed=(3.0, 6.0),
        **_COMMON,
    ),
    ScenarioSpec(
        name="dim-and-blurry",
        seed=106,
        people=30,
        arrivals_per_minute=15,
        face_px=(40, 100),
        defocus_sigma=(0.5, 2.0),
        noise_sigma=6.0,
        brightness=0.55,
        turned_away_probability=0.3,
        **_COMMON,
    ),
)


def suite_specs(names: list[str] | None = None, faces_split: Split = "test") -> list[ScenarioSpec]:
    known = {s.name: s for s in STANDARD_SUITE}
    unknown = sorted(set(names or []) - set(known))
    if unknown:
        raise ValueError(f"unknown scenarios {unknown}; the suite has {sorted(known)}")
    chosen = [known[n] for n in names] if names else list(STANDARD_SUITE)
    return [s.model_copy(update={"faces_split": faces_split}) for s in chosen]


@dataclass
class SuiteResult:
    meta: dict[str, object]
    scores: list[ScenarioScore]

    def to_json(self) -> str:
        return json.dumps({"meta": self.meta, "scores": [asdict(s) for s in self.scores]}, indent=2)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def totals(scores: list[ScenarioScore], config: str) -> dict[str, float | None]:
    """Suite-wide numbers for one configuration, pooled over people (not averaged per scenario)."""
    rows = [s for s in scores if s.config == config]
    people = sum(s.true_people for s in rows)
    matched = sum(s.matched_people for s in rows)

    def pooled(attr: str, weight: Callable[[ScenarioScore], int]) -> float | None:
        num = sum(getattr(s, attr) * weight(s) for s in rows if getattr(s, attr) is not None)
        den = sum(weight(s) for s in rows if getattr(s, attr) is not None)
        return round(num / den, 4) if den else None

    def gender_known(s: ScenarioScore) -> int:
        return round(s.matched_people * (1 - (s.gender_unknown_share or 0)))

    def age_known(s: ScenarioScore) -> int:
        return round(s.matched_people * (1 - (s.age_unknown_share or 0)))

    return {
        "people": people,
        "events": sum(s.events for s in rows),
        "count_error": round(abs(sum(s.events for s in rows) - people) / people, 4)
        if people
        else None,
        "direction_accuracy": pooled("direction_accuracy", lambda s: s.matched_people),
        "id_switches_per_100": round(100 * sum(s.id_switches for s in rows) / people, 2)
        if people
        else None,
        "gender_accuracy": pooled("gender_accuracy", gender_known),
        "gender_unknown_share": pooled("gender_unknown_share", lambda s: s.matched_people),
        "age_exact": pooled("age_exact", age_known),
        "age_one_off": pooled("age_one_off", age_known),
        "matched_share": round(matched / people, 4) if people else None,
    }


def markdown(result: SuiteResult) -> str:
    meta = result.meta
    lines = [
        "# Standard scenario suite",
        "",
        f"Generated by `{meta['command']}` on {meta['date']} "
        f"(OpenCV {meta['opencv']}, {meta['cpus']} CPUs, load average at start "
        f"{meta['load_average_at_start']}). Faces: UTKFace `{meta['faces_split']}` split. "
        "Percentages per person; the matching rule is in `edge_agent/evaluation/score.py`, what "
        "seed-style means in `edge_agent/evaluation/seed.py`.",
        "",
        "| scenario | config | people | events | count err % | in/out/passed true | "
        "in/out/passed counted | missed | split | spurious | direction % | id sw | frag "
        "| IDF1 % | gender % | gender unknown % | age exact % | age 1-off % | x real time |",
        "|---|---|---:|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in result.scores:
        lines.append(
            f"| {s.scenario} | {s.config} | {s.true_people} | {s.events} "
            f"| {100 * s.count_error:.1f} | {s.true_in}/{s.true_out}/{s.true_passed} "
            f"| {s.counted_in}/{s.counted_out}/{s.counted_passed} | {s.missed_people} "
            f"| {s.split_people} | {s.spurious_events} | {_pct(s.direction_accuracy)} "
            f"| {s.id_switches} | {s.fragmentations} | {_pct(s.idf1)} "
            f"| {_pct(s.gender_accuracy)} | {_pct(s.gender_unknown_share)} "
            f"| {_pct(s.age_exact)} | {_pct(s.age_one_off)} | {s.realtime_factor:.1f} |"
        )
    lines += [
        "",
        "## Whole suite (pooled over people)",
        "",
        "| config | people | events | count err % | direction % | id switches / 100 people "
        "| gender % | gender unknown % | age exact % | age 1-off % | people matched % |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for config in dict.fromkeys(s.config for s in result.scores):
        t = totals(result.scores, config)
        lines.append(
            f"| {config} | {t['people']} | {t['events']} | {_pct(t['count_error'])} "
            f"| {_pct(t['direction_accuracy'])} | {t['id_switches_per_100']} "
            f"| {_pct(t['gender_accuracy'])} | {_pct(t['gender_unknown_share'])} "
            f"| {_pct(t['age_exact'])} | {_pct(t['age_one_off'])} | {_pct(t['matched_share'])} |"
        )
    lines += [
        "",
        "Targets: count error <= 1 %, direction >= 99 %, <= 1 id switch per 100 people, gender "
        '>= 95 %, age group exact >= 60 % and 1-off >= 92 %. "x real time" is video seconds '
        "per second of pipeline time on a shared machine: indicative only.",
        "",
    ]
    return "\n".join(lines)


def run_suite(
    shared_dir: Path,
    resolver: ModelResolver,
    *,
    names: list[str] | None = None,
    configs: tuple[Config, ...] = (Config.FACE, Config.SEED),
    faces_split: Split = "test",
    base: AgentConfig | None = None,
    command: str = "footfall-agent eval suite",
    progress: Callable[[str], None] | None = None,
) -> SuiteResult:
    cv2.setNumThreads(1)
    load = os.getloadavg()
    scores: list[ScenarioScore] = []
    for spec in suite_specs(names, faces_split):
        if progress is not None:
            progress(spec.name)
        _, result = evaluate_spec(
            spec, shared_dir, resolver, configs=configs, base=base or eval_config()
        )
        scores += result
    meta: dict[str, object] = {
        "command": command,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "opencv": cv2.__version__,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "threads": 1,
        "load_average_at_start": [round(v, 2) for v in load],
        "faces_split": faces_split,
        "scenarios": [s.model_dump(mode="json") for s in suite_specs(names, faces_split)],
    }
    return SuiteResult(meta=meta, scores=scores)


def write_suite(
    result: SuiteResult, folder: Path, stem: str = "standard_suite"
) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    js, md = folder / f"{stem}.json", folder / f"{stem}.md"
    js.write_text(result.to_json() + "\n", encoding="utf-8")
    md.write_text(markdown(result), encoding="utf-8")
    return js, md
