"""Detector and classifier wrappers that add up the time spent in them, so the benchmarks can
split a pipeline's frame time into stages without touching the pipeline."""

import time

import numpy as np

from edge_agent.vision.detection import Detections, FaceDetector
from footfall.contract import ModelRef
from models.runtime.classifier import FaceClassifier, FaceEstimates

U8 = np.ndarray


class TimedDetector:
    def __init__(self, inner: FaceDetector) -> None:
        self.inner, self.seconds, self.calls = inner, 0.0, 0

    @property
    def model(self) -> ModelRef:
        return self.inner.model

    def detect(self, frame: U8) -> Detections:
        t = time.perf_counter()
        out = self.inner.detect(frame)
        self.seconds += time.perf_counter() - t
        self.calls += 1
        return out


class TimedClassifier:
    def __init__(self, inner: FaceClassifier) -> None:
        self.inner, self.seconds, self.people = inner, 0.0, 0

    @property
    def chip_size(self) -> int:
        return self.inner.chip_size

    @property
    def models(self) -> tuple[ModelRef, ...]:
        return self.inner.models

    def classify(self, chips: U8) -> FaceEstimates:
        t = time.perf_counter()
        out = self.inner.classify(chips)
        self.seconds += time.perf_counter() - t
        self.people += 1
        return out
