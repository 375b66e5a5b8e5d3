"""Prometheus metric families built at scrape time: the helpers both programs' collectors use
(``edge_agent/metrics.py``, ``aggregator/metrics.py``), so a name is spelled with its program's
prefix in one place and every value is a float the same way.

prometheus-client comes with the ``edge`` and ``aggregator`` extras; only those import this.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry


class Families:
    """Metric families whose names start with ``prefix`` (e.g. ``footfall_agent_``); the info
    family is the prefix itself, without its last underscore."""

    def __init__(self, prefix: str) -> None:
        if not prefix.endswith("_"):
            raise ValueError(f"prefix must end with '_', got {prefix!r}")
        self.prefix = prefix

    def info(self, doc: str, labels: Mapping[str, str]) -> InfoMetricFamily:
        family = InfoMetricFamily(self.prefix[:-1], doc)
        family.add_metric([], dict(labels))
        return family

    def gauge(self, name: str, doc: str, value: float) -> GaugeMetricFamily:
        return GaugeMetricFamily(self.prefix + name, doc, value=float(value))

    def counter(self, name: str, doc: str, value: float) -> CounterMetricFamily:
        return CounterMetricFamily(self.prefix + name, doc, value=float(value))

    def counters_by(
        self, name: str, doc: str, label: str, values: Mapping[str, float]
    ) -> CounterMetricFamily:
        """One counter per value of ``label``, in the order of ``values``."""
        family = CounterMetricFamily(self.prefix + name, doc, labels=[label])
        for key, value in values.items():
            family.add_metric([key], float(value))
        return family

    def gauges_by(
        self, name: str, doc: str, label: str, values: Mapping[str, float]
    ) -> GaugeMetricFamily:
        """One gauge per value of ``label``, in the order of ``values``."""
        family = GaugeMetricFamily(self.prefix + name, doc, labels=[label])
        for key, value in values.items():
            family.add_metric([key], float(value))
        return family


def registry_of(collector: Collector) -> CollectorRegistry:
    """A registry holding only ``collector``: what the health endpoint serves on /metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry
