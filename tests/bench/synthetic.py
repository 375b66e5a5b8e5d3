"""Synthetic event frames at scale, for benchmarks (a million PersonEvents through pydantic would
measure the generator, not the workbook), and synthetic face crops for the workbook's pictures.

The events name the shipped gender and age classifiers and carry the age-group probabilities, so
the workbook estimates their shares with the calibrations as it does for real events."""

from collections.abc import Iterator
from datetime import datetime
from functools import cached_property

import numpy as np
import pandas as pd

from aggregator.event_columns import AGE_PROBABILITY_COLUMNS
from aggregator.report.source import EVENT_COLUMNS, AgentInfo, ReportSource
from footfall.contract import AGE_GROUPS

_AGE = [g.value for g in AGE_GROUPS] + ["unknown"]
# Each judged person's age probabilities: halving with each group away from the top label (as
# footfall.contract.examples does); row 8 (unknown age) has none.
_SPREAD = 0.5 ** np.abs(np.subtract.outer(np.arange(len(AGE_GROUPS)), np.arange(len(AGE_GROUPS))))
_AGE_PROBABILITIES = np.vstack(
    [_SPREAD / _SPREAD.sum(axis=1, keepdims=True), np.full(len(AGE_GROUPS), np.nan)]
)
_MODELS = (
    '[{"role": "gender", "name": "cydral-gender", "version": "1"}, '
    '{"role": "age", "name": "cydral-age", "version": "1"}]'
)


class SyntheticSource(ReportSource):
    """``n`` events spread uniformly over the period, over ``spots``; deterministic for a seed."""

    def __init__(self, n: int, spots: tuple[str, ...], seed: int = 0) -> None:
        self.n = n
        self.spots = spots
        self.seed = seed

    def iter_event_frames(
        self, site: str, start_utc: datetime, end_utc: datetime, batch_size: int
    ) -> Iterator[pd.DataFrame]:
        rng = np.random.default_rng(self.seed)
        span = (end_utc - start_utc).total_seconds()
        offsets = np.sort(rng.uniform(0, span, self.n))
        start = pd.Timestamp(start_utc)
        for i in range(0, self.n, batch_size):
            k = min(batch_size, self.n - i)
            first = start + pd.to_timedelta(offsets[i : i + k], unit="s")
            dwell = rng.uniform(0.5, 30, k)
            gender = rng.choice(["female", "male", "unknown"], k, p=[0.46, 0.44, 0.10])
            age = rng.integers(0, len(_AGE), k)
            ids = [
                f"{a:016x}-0000-4000-8000-{b:012x}"
                for a, b in zip(rng.integers(0, 2**63, k).tolist(), range(i, i + k), strict=True)
            ]
            frame = pd.DataFrame(
                {
                    "event_id": ids,
                    "spot": rng.choice(self.spots, k),
                    "agent": "agent-1",
                    "track_id": np.arange(i, i + k),
                    "first_seen": first,
                    "last_seen": first + pd.to_timedelta(dwell, unit="s"),
                    "dwell_seconds": dwell,
                    "direction": rng.choice(["in", "out", "passed"], k),
                    "entry_side": "left",
                    "exit_side": "right",
                    "gender": gender,
                    "gender_confidence": np.where(
                        gender == "unknown", np.nan, rng.uniform(0.5, 1, k)
                    ),
                    "age_group": np.asarray(_AGE)[age],
                    "age_years": rng.uniform(1, 80, k),
                    "face_quality": rng.uniform(0, 1, k),
                    "crop_key": [f"{site}/spot/2026-05-01/{x}.jpg" for x in ids],
                    "crop_note": None,
                    "models": _MODELS,
                }
            )
            probabilities = _AGE_PROBABILITIES[age]
            for j, column in enumerate(AGE_PROBABILITY_COLUMNS.values()):
                frame[column] = probabilities[:, j]
            yield frame[list(EVENT_COLUMNS)]

    def coverage_intervals(
        self, site: str, start_utc: datetime, end_utc: datetime
    ) -> dict[str, list[tuple[datetime, datetime]]] | None:
        return {spot: [(start_utc, end_utc)] for spot in self.spots}

    def count_dead_letters(self, site: str, start_utc: datetime, end_utc: datetime) -> int:
        return 0

    def agents(self, site: str) -> list[AgentInfo]:
        return []


class SyntheticCrops:
    """A :class:`~aggregator.report.thumbnails.CropReader` that has the same 128 px face-sized JPEG
    under every key, so the workbook decodes, shrinks and embeds a picture per row as it would
    for real crops."""

    @cached_property
    def jpeg(self) -> bytes:
        import cv2

        rng = np.random.default_rng(0)
        image = rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
        ok, data = cv2.imencode(".jpg", image)
        if not ok:
            raise RuntimeError("OpenCV could not encode the synthetic crop")
        return bytes(data.tobytes())

    def read(self, key: str) -> bytes | None:
        return self.jpeg
