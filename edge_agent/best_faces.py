"""The K best face observations of one person, bounded: a min-heap on quality, so admitting a
new observation costs O(log K) and a person who stays in view all day still holds K chips."""

import heapq
import itertools
from dataclasses import dataclass, field

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
