"""Workbook build time and peak memory at 10k, 100k and 1M events - with face pictures and the
person list exports (CSV, Parquet), with the exports alone, and with neither - against the
baseline of writing the raw events with plain ``DataFrame.to_excel``, all measured in this run,
each in a fresh process so peak RSS belongs to one measurement. The events name calibrated
classifiers and carry age probabilities, so every build also estimates the shares.

    .venv/bin/python -m tests.bench.bench_workbook [--sizes 10000,100000,1000000] [--note TEXT]

Writes tests/bench/results/workbook.json and workbook.md; the machine's load average at the start
and end is recorded beside the numbers (other work slows everything, the baseline too), and the
run recorded before this one is kept below it in workbook.md. Numbers only; nothing is asserted.
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import pandas as pd

from aggregator.report.period import ReportPeriod
from aggregator.report.workbook import ReportOptions, SiteReportInfo, build_site_workbook
from tests.bench.synthetic import SyntheticCrops, SyntheticSource

RESULTS = Path(__file__).parent / "results"
SPOTS = ("north", "south", "east", "west")
SITE = SiteReportInfo("site-a", "Site A", "Europe/Berlin")
PERIOD = ReportPeriod.day(date(2026, 5, 4), "Europe/Berlin")


def measure_one(kind: str, n: int, out_dir: Path) -> dict[str, float]:
    source = SyntheticSource(n, SPOTS)
    out = out_dir / f"{kind}-{n}.xlsx"
    start = time.perf_counter()
    # full: pictures and exports; build: exports; bare: neither (the CSV / Parquet person lists).
    if kind in ("full", "build", "bare"):
        options = ReportOptions(
            tmpdir=out_dir,
            exports=kind != "bare",
            crop_reader=SyntheticCrops() if kind == "full" else None,
        )
        result = build_site_workbook(source, SITE, PERIOD, out, options)
        if kind == "full":
            assert result.pictures > 0, "no picture embedded: the benchmark measured none"
        assert all(s.age_estimated for s in result.spots), "shares were not estimated"
    else:
        frames = list(source.iter_event_frames(SITE.id, PERIOD.start_utc, PERIOD.end_utc, 50_000))
        raw = pd.concat(frames, ignore_index=True)
        for col in ("first_seen", "last_seen"):
            raw[col] = raw[col].dt.tz_localize(None)  # to_excel refuses tz-aware times
        raw.to_excel(out, index=False)
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "file_mb": out.stat().st_size / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--note", default="", help="a sentence on the conditions of the run")
    parser.add_argument("--one", nargs=2, metavar=("KIND", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(measure_one(args.one[0], int(args.one[1]), Path(tmp))))
        return
    previous = RESULTS / "workbook.md"
    earlier = previous.read_text().split("\n## Earlier run", 1)[0] if previous.exists() else ""
    load_start = os.getloadavg()
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        row: dict[str, float | int] = {"events": n}
        for kind in ("full", "build", "bare", "baseline"):
            proc = subprocess.run(
                [sys.executable, "-m", "tests.bench.bench_workbook", "--one", kind, str(n)],
                check=True,
                capture_output=True,
                text=True,
            )
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            row.update({f"{kind}_{k}": round(v, 2) for k, v in result.items()})
            print(
                f"{n:>9} {kind:<8} {result['seconds']:8.2f} s  {result['peak_rss_mb']:7.1f} MB",
                flush=True,
            )
        row["speedup"] = round(float(row["baseline_seconds"]) / float(row["full_seconds"]), 1)
        rows.append(row)
    RESULTS.mkdir(exist_ok=True)
    load_end = os.getloadavg()
    meta = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average_1min_start": round(load_start[0], 1),
        "load_average_1min_end": round(load_end[0], 1),
        "note": args.note,
    }
    (RESULTS / "workbook.json").write_text(
        json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n"
    )
    lines = [
        "| events | with pictures and exports (s) | peak RSS (MB) | with exports (s) | peak RSS (MB) "
        "| without either (s) | baseline to_excel (s) | baseline RSS (MB) | speed-up |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['events']:,} | {r['full_seconds']} | {r['full_peak_rss_mb']:.0f} "
            f"| {r['build_seconds']} | {r['build_peak_rss_mb']:.0f} | {r['bare_seconds']} "
            f"| {r['baseline_seconds']} | {r['baseline_peak_rss_mb']:.0f} | {r['speedup']}x |"
        )
    table = "\n".join(lines)
    conditions = (
        f"Load average (1 min) {meta['load_average_1min_start']} at the start and "
        f"{meta['load_average_1min_end']} at the end on {meta['cpus']} CPUs"
        + (f": {args.note}" if args.note else ".")
    )
    kept = ""
    if earlier.startswith("# Workbook build benchmark"):
        kept = "\n## Earlier run\n\n" + earlier.split("\n", 1)[1].lstrip("\n")
    (RESULTS / "workbook.md").write_text(
        "# Workbook build benchmark\n\n`python -m tests.bench.bench_workbook"
        + (f" --sizes {args.sizes}" if args.sizes != "10000,100000,1000000" else "")
        + f"` on {meta['cpus']} CPUs, Python {meta['python']}. Every column includes generating "
        "the synthetic events (same generator, same seed: 4 spots, calibrated gender and age "
        "classifiers, so every build estimates the shares with their intervals). The builds write "
        "the full workbook (summary, charts, age mix, hourly tables, person lists); 'with pictures "
        "and exports' also embeds a face picture for the first 2,000 people of each spot sheet and "
        "writes the person list as CSV and Parquet, 'with exports' the CSV and Parquet without "
        "pictures, 'without either' the workbook alone; the baseline writes only the raw events. "
        "The speed-up is the baseline's time over the build with pictures and exports.\n\n"
        + conditions
        + "\n\n"
        + table
        + "\n"
        + kept
    )
    print(table)


if __name__ == "__main__":
    main()
