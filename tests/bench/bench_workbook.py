"""Workbook build time and peak memory at 10k, 100k and 1M events, with and without the person
list exports (CSV, Parquet), against the baseline of writing the raw events with plain
``DataFrame.to_excel`` - all measured in this run, each in a fresh process so peak RSS belongs to
one measurement.

    .venv/bin/python -m tests.bench.bench_workbook [--sizes 10000,100000,1000000]

Writes tests/bench/results/workbook.json and workbook.md. Numbers only; nothing is asserted.
"""

import argparse
import json
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
from tests.bench.synthetic import SyntheticSource

RESULTS = Path(__file__).parent / "results"
SPOTS = ("north", "south", "east", "west")
SITE = SiteReportInfo("site-a", "Site A", "Europe/Berlin")
PERIOD = ReportPeriod.day(date(2026, 5, 4), "Europe/Berlin")


def measure_one(kind: str, n: int, out_dir: Path) -> dict[str, float]:
    source = SyntheticSource(n, SPOTS)
    out = out_dir / f"{kind}-{n}.xlsx"
    start = time.perf_counter()
    if kind in ("build", "bare"):  # bare: without the CSV / Parquet person list exports
        options = ReportOptions(tmpdir=out_dir, exports=kind == "build")
        build_site_workbook(source, SITE, PERIOD, out, options)
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
    parser.add_argument("--one", nargs=2, metavar=("KIND", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(measure_one(args.one[0], int(args.one[1]), Path(tmp))))
        return
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        row: dict[str, float | int] = {"events": n}
        for kind in ("build", "bare", "baseline"):
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
        row["speedup"] = round(float(row["baseline_seconds"]) / float(row["build_seconds"]), 1)
        rows.append(row)
    RESULTS.mkdir(exist_ok=True)
    meta = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": __import__("os").cpu_count(),
    }
    (RESULTS / "workbook.json").write_text(
        json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n"
    )
    lines = [
        "| events | workbook build (s) | peak RSS (MB) | without exports (s) | baseline to_excel (s) | baseline RSS (MB) | speed-up |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['events']:,} | {r['build_seconds']} | {r['build_peak_rss_mb']:.0f} | {r['bare_seconds']} | {r['baseline_seconds']} | "
            f"{r['baseline_peak_rss_mb']:.0f} | {r['speedup']}x |"
        )
    table = "\n".join(lines)
    (RESULTS / "workbook.md").write_text(
        "# Workbook build benchmark\n\n`python -m tests.bench.bench_workbook` on "
        f"{meta['cpus']} CPUs, Python {meta['python']}. Both columns include generating the synthetic "
        "events (same generator, same seed); the build writes the full workbook (summary, charts, "
        "hourly tables, person lists) and the person list as CSV and Parquet, 'without exports' the same "
        "workbook alone, the baseline only the raw events.\n\n" + table + "\n"
    )
    print(table)


if __name__ == "__main__":
    main()
