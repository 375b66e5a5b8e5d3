"""Model cards (markdown) written from the evaluation JSON, never typed by hand.

``<name>.eval.json`` (from ``footfall-agent models evaluate``) becomes ``<name>.md``; a hand-written
``<name>.notes.md`` next to it (data, licence, how it was made, known weaknesses that numbers do
not show) is included verbatim. ``README.md`` compares every evaluated model against the targets.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# The UTKFace test targets of the demographics issue (MAE kept from the first round).
TARGETS = {
    "gender_acc": 0.94,
    "group_exact": 0.62,
    "group_one_off": 0.95,
    "mae": 4.5,
}
BAND_GENDER_FLOOR = 0.85
BAND_FLOOR_FROM = ("10-13", "14-22", "23-34", "35-45", "46-56", "57-69", "70+")
GENDER_GAP_POINTS = 3.0

_GENERATED = "<!-- written by `footfall-agent models cards` from {src}; do not edit by hand -->"


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _meets(key: str, value: float) -> str:
    target = TARGETS[key]
    ok = value <= target if key == "mae" else value >= target
    return "yes" if ok else "no"


def _overall_rows(result: dict[str, Any]) -> list[str]:
    rows = [
        "| mode | gender | group exact | group 1-off | MAE (years) | gender ECE | group ECE | ms/face (1 thread) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for mode, rep in result["modes"].items():
        o, c = rep["overall"], rep["calibration"]
        ms = rep.get("ms_per_face_1_thread")
        rows.append(
            f"| {mode} | {_pct(o['gender_acc'])} | {_pct(o['group_exact'])} | "
            f"{_pct(o['group_one_off'])} | {o['mae']:.2f} | {c['gender_ece']:.3f} | "
            f"{c['group_ece']:.3f} | {'-' if ms is None else f'{ms:.2f}'} |"
        )
    return rows


def gender_gap(rep: dict[str, Any]) -> float:
    g = rep["per_gender"]
    return 100 * abs(float(g["female"]["gender_acc"]) - float(g["male"]["gender_acc"]))


def weak_bands(rep: dict[str, Any]) -> list[str]:
    return [
        f"{band} ({_pct(rep['per_band'][band]['gender_acc'])})"
        for band in BAND_FLOOR_FROM
        if rep["per_band"][band]["n"] and rep["per_band"][band]["gender_acc"] < BAND_GENDER_FLOOR
    ]


def best_mode(result: dict[str, Any]) -> str:
    return "flip" if "flip" in result["modes"] else next(iter(result["modes"]))


def card(result: dict[str, Any], notes: str | None, src: str) -> str:
    mode = best_mode(result)
    rep = result["modes"][mode]
    o = rep["overall"]
    lines = [
        _GENERATED.format(src=src),
        f"# Model card: {result['model']}",
        "",
        result["description"],
        "",
        "| | |",
        "| --- | --- |",
        f"| files | {', '.join(f'`{f}`' for f in result['files'])} |",
        f"| licence | {result['licence']} |",
        f"| commercial use | {'**yes**' if result['commercial_use'] else '**no** (non-commercial research only)'} |",
        f"| training data | {result['training_data']} |",
        f"| evaluated on | `{result['split']}` split, {result['faces']:,} faces "
        f"(YuNet found {_pct(result['yunet_detected'])}; the rest use mean landmarks), "
        f"{result['evaluated_at']} |",
        "",
        "## Results",
        "",
        *_overall_rows(result),
        "",
        f"Against the targets ({mode}): gender {_meets('gender_acc', o['gender_acc'])}, "
        f"group exact {_meets('group_exact', o['group_exact'])}, 1-off "
        f"{_meets('group_one_off', o['group_one_off'])}, MAE {_meets('mae', o['mae'])}; "
        f"women vs men gender gap {gender_gap(rep):.1f} points (target < {GENDER_GAP_POINTS:g}); "
        f"bands from 10 years up below {_pct(BAND_GENDER_FLOOR)} gender: "
        f"{', '.join(weak_bands(rep)) or 'none'}.",
        "",
        f"### Per age band ({mode})",
        "",
        "| band | faces | gender | group exact | group 1-off | MAE |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for band, s in rep["per_band"].items():
        if s["n"]:
            lines.append(
                f"| {band} | {s['n']} | {_pct(s['gender_acc'])} | {_pct(s['group_exact'])} | "
                f"{_pct(s['group_one_off'])} | {s['mae']:.2f} |"
            )
    lines += [
        "",
        f"### Per gender ({mode})",
        "",
        "| gender | faces | gender acc | group exact | MAE |",
        "| --- | --- | --- | --- | --- |",
    ]
    for g, s in rep["per_gender"].items():
        lines.append(
            f"| {g} | {s['n']} | {_pct(s['gender_acc'])} | {_pct(s['group_exact'])} | {s['mae']:.2f} |"
        )
    conf = rep["group_confusion"]
    labels = conf["labels"]
    lines += [
        "",
        f"### Age-group confusion ({mode}; rows true, columns predicted)",
        "",
        "| true \\ predicted | " + " | ".join(labels) + " |",
        "| --- " * (len(labels) + 1) + "|",
    ]
    for label, row in zip(labels, conf["rows_true_cols_predicted"], strict=True):
        lines.append(f"| {label} | " + " | ".join(str(v) for v in row) + " |")
    c = rep["calibration"]
    lines += [
        "",
        "### Calibration",
        "",
        f"Expected calibration error ({c['bins']} bins): gender {c['gender_ece']:.3f} (mean "
        f"confidence {_pct(c['gender_mean_confidence'])}, accuracy {_pct(o['gender_acc'])}); age group "
        f"{c['group_ece']:.3f} (mean confidence {_pct(c['group_mean_confidence'])}, accuracy "
        f"{_pct(o['group_exact'])}). The group confidence is the probability mass on the ages "
        "of the reported group"
        + (
            f", with the age distribution tempered by T = {c['group_temperature']:g} (fitted on "
            f"the val split with `footfall-agent models calibrate`); untempered its ECE is "
            f"{c['group_ece_untempered']:.3f}."
            if c.get("group_temperature", 1.0) != 1.0
            else "."
        ),
        "",
        *_gender_calibration(result),
    ]
    if notes:
        lines += [notes.strip(), ""]
    return "\n".join(lines)


def _gender_calibration(result: dict[str, Any]) -> list[str]:
    """Before / after the gender temperature, per mode, when the model has one (the evaluation
    records the probabilities as handed out and, with the temperature undone, as the network
    answered them)."""
    modes = {
        mode: rep["calibration"]
        for mode, rep in result["modes"].items()
        if rep["calibration"].get("gender_temperature", 1.0) != 1.0
    }
    if not modes:
        return []
    temperature = next(iter(modes.values()))["gender_temperature"]
    lines = [
        f"The gender probability is calibrated: the log-odds of P(male) are divided by "
        f"T = {temperature:g} (`gender_temperature`, fitted on the val split by minimising the "
        "negative log-likelihood with `footfall-agent models calibrate`), wherever the model's "
        "probabilities are produced; the events carry the calibrated P(label). Accuracy is "
        f"unchanged (the label with the larger probability is the same). On this "
        f"`{result['split']}` split:",
        "",
        "| mode | gender ECE before | gender ECE after | mean confidence before | "
        "mean confidence after | accuracy | NLL before | NLL after |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for mode, c in modes.items():
        acc = result["modes"][mode]["overall"]["gender_acc"]
        lines.append(
            f"| {mode} | {c['gender_ece_untempered']:.3f} | {c['gender_ece']:.3f} | "
            f"{_pct(c['gender_mean_confidence_untempered'])} | "
            f"{_pct(c['gender_mean_confidence'])} | {_pct(acc)} | "
            f"{c['gender_nll_untempered']:.3f} | {c['gender_nll']:.3f} |"
        )
    return [*lines, ""]


SECTIONS = (
    ("val", "Validation split (where ensembles, modes and the default were chosen)"),
    ("site", "Site stand-in: held-out part, before and after fine-tuning"),
)


def comparison(
    results: list[dict[str, Any]], sections: dict[str, list[dict[str, Any]]] | None = None
) -> str:
    lines = [
        _GENERATED.format(src="*.eval.json"),
        "# Age/gender models compared",
        "",
        "Every number comes from the `*.eval.json` next to this file, written by "
        "`footfall-agent models evaluate`. Best mode of each model (flip averaging where measured).",
        "",
        *_table(results, with_target=True),
    ]
    for key, title in SECTIONS:
        extra = (sections or {}).get(key)
        if extra:
            lines += [
                "",
                f"## {title}",
                "",
                f"From `{key}/*.eval.json`; single crop and flip both shown.",
                "",
                *_table(extra, with_target=False, all_modes=True, link=False),
            ]
    return "\n".join(lines) + "\n"


def _table(
    results: list[dict[str, Any]], with_target: bool, all_modes: bool = False, link: bool = True
) -> list[str]:
    lines = [
        "| model | split | faces | commercial use | gender | group exact | 1-off | MAE | "
        "women-men gap | gender ECE | ms/face |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    if with_target:
        lines.append(
            f"| **target** | test | | | ≥ {_pct(TARGETS['gender_acc'])} | ≥ {_pct(TARGETS['group_exact'])} "
            f"| ≥ {_pct(TARGETS['group_one_off'])} | ≤ {TARGETS['mae']} | < {GENDER_GAP_POINTS:g} | | |"
        )
    for r in results:
        for mode in r["modes"] if all_modes else [best_mode(r)]:
            rep = r["modes"][mode]
            o = rep["overall"]
            ms = rep.get("ms_per_face_1_thread")
            name = f"[{r['model']}]({r['model']}.md)" if link else r["model"]
            lines.append(
                f"| {name} ({mode}) | {r['split']} | {r['faces']:,} | "
                f"{'yes' if r['commercial_use'] else 'no'} | {_pct(o['gender_acc'])} | "
                f"{_pct(o['group_exact'])} | {_pct(o['group_one_off'])} | {o['mae']:.2f} | "
                f"{gender_gap(rep):.1f} | {rep['calibration']['gender_ece']:.3f} | "
                f"{'-' if ms is None else f'{ms:.2f}'} |"
            )
    return lines


def write_cards(cards_dir: Path) -> list[Path]:
    written = []
    results = []
    for path in sorted(cards_dir.glob("*.eval.json")):
        result = json.loads(path.read_text())
        results.append(result)
        notes_path = cards_dir / f"{result['model']}.notes.md"
        notes = notes_path.read_text() if notes_path.is_file() else None
        out = cards_dir / f"{result['model']}.md"
        out.write_text(card(result, notes, path.name))
        written.append(out)
    sections = {
        key: [json.loads(p.read_text()) for p in sorted(cards_dir.glob(f"{key}/*.eval.json"))]
        for key, _ in SECTIONS
    }
    if results:
        intro_path = cards_dir / "README.notes.md"
        text = comparison(results, sections)
        if intro_path.is_file():
            text += "\n" + intro_path.read_text()
        out = cards_dir / "README.md"
        out.write_text(text)
        written.append(out)
    return written
