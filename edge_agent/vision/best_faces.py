"""The K best face observations of one person, bounded: a min-heap on quality, so admitting a
new observation costs O(log K) and a person who stays in view all day still holds K chips.

:class:`FirstFaces` keeps the first K instead; it is how the seed picked its face (the first
frame of a mature track) and exists so the evaluation can compare against that."""

import heapq
import itertools
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

U8 = npt.NDArray[np.uint8]


@dataclass(order=True, frozen=True)
class Observation:
    quality: float
    order: int  # tie-breaker: never compare chips
    chip: U8 = field(compare=False)


class BestFaces:
    def __init__(self, k: int) -> None:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.k = k
        self._heap: list[Observation] = []
        self._order = itertools.count()

    def __len__(self) -> int:
        return len(self._heap)

    def admits(self, quality: float) -> bool:
        """Whether an observation of this quality would be kept (checked before computing its
        chip, which is the expensive part)."""
        return len(self._heap) < self.k or quality > self._heap[0].quality

    def add(self, quality: float, chip: U8) -> bool:
        """Keep the observation if it is among the K best; returns whether it was kept."""
        if not self.admits(quality):
            return False
        item = Observation(quality, next(self._order), chip)
        if len(self._heap) < self.k:
            heapq.heappush(self._heap, item)
        else:
            heapq.heapreplace(self._heap, item)
        return True

    def best_first(self) -> list[Observation]:
        return sorted(self._heap, reverse=True)


class FaceKeeper(Protocol):
    """Which of a person's face observations are kept for classification."""

    def __len__(self) -> int: ...

    def admits(self, quality: float) -> bool:
        """Whether an observation of this quality would be kept."""
        ...

    def add(self, quality: float, chip: U8) -> bool:
        """Offer an observation; returns whether it was kept."""
        ...

    def best_first(self) -> list[Observation]:
        """The kept observations, highest quality first."""
        ...


class FirstFaces:
    """The first K observations offered, whatever their quality."""

    def __init__(self, k: int) -> None:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.k = k
        self._kept: list[Observation] = []

    def __len__(self) -> int:
        return len(self._kept)

    def admits(self, quality: float) -> bool:
        return len(self._kept) < self.k

    def add(self, quality: float, chip: U8) -> bool:
        if not self.admits(quality):
            return False
        self._kept.append(Observation(quality, len(self._kept), chip))
        return True

    def best_first(self) -> list[Observation]:
        return sorted(self._kept, reverse=True)
