"""The thread plumbing the delivery loops share: the MQTT sender and the crop uploader each run
one loop in a daemon thread, stop on request after a bounded drain, and end with one line to
``on_fatal`` when they cannot go on. (The heartbeat has no thread of its own: the sender's
connection publishes it.)

A subclass says what its loop does (:meth:`DeliveryWorker._loop`), which errors mean retrying
cannot help (:attr:`DeliveryWorker.fatal_errors`), and what its statistics record when the loop
ends; this base keeps the rule that a loop which died never leaves an agent looking alive.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, ClassVar, Generic, TypeVar

from edge_agent.delivery.drain import DrainClock

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    S = TypeVar("S", bound=DataclassInstance)
else:
    S = TypeVar("S")


def one_line(exc: BaseException) -> str:
    """The exception's message on one line (its type's name when it has none)."""
    return " ".join(str(exc).split()) or type(exc).__name__


class DeliveryWorker(ABC, Generic[S]):
    """One delivery loop; runs in its own thread (:meth:`start`) or the caller's (:meth:`run`).

    ``stats`` is the loop's frozen statistics record, replaced whole under a lock, so a reader
    (the heartbeat, the metrics) always sees one consistent snapshot.
    """

    thread_name: ClassVar[str]
    title: ClassVar[str]  # how its one-line failures begin: "MQTT sender", "crop uploader"
    fatal_errors: ClassVar[tuple[type[Exception], ...]]
    stop_grace_seconds: ClassVar[float]  # how long stop() waits past the drain for the loop

    def __init__(self, stats: S, on_fatal: Callable[[str], None] | None) -> None:
        self._stats = stats
        self._lock = threading.Lock()
        self._on_fatal = on_fatal
        self._clock = DrainClock()
        self._thread: threading.Thread | None = None
        # The subclass's module logger: its lines keep naming the loop that wrote them.
        self._log = logging.getLogger(type(self).__module__)

    def stats(self) -> S:
        with self._lock:
            return self._stats

    def _update(self, **changes: object) -> None:
        with self._lock:
            self._stats = replace(self._stats, **changes)

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._stats = replace(self._stats, **{name: getattr(self._stats, name) + n})

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name=self.thread_name, daemon=True)
        self._thread.start()

    def request_stop(self, drain_seconds: float) -> None:
        """Finish: keep working for up to ``drain_seconds`` or until nothing is left, then end.
        Whatever is left stays in the outbox."""
        self._clock.request_stop(drain_seconds)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the loop to end; True if it did."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def stop(self, drain_seconds: float) -> bool:
        self.request_stop(drain_seconds)
        return self.join(drain_seconds + self.stop_grace_seconds)

    def run(self) -> None:
        failure: str | None = None
        try:
            self._loop()
        except self.fatal_errors as exc:
            failure = str(exc)
            self._log.error("%s; the %s cannot go on", failure, self.title)
        except BaseException as exc:  # a dead loop must not go unnoticed
            failure = f"{self.title} died: {type(exc).__name__}: {one_line(exc)}"
            self._log.error("%s", failure, exc_info=True)
        self._ended(failure)
        if failure is not None and self._on_fatal is not None:
            self._on_fatal(failure)

    @abstractmethod
    def _loop(self) -> None:
        """Work until stopped and drained; raise one of :attr:`fatal_errors` when retrying
        cannot help."""

    @abstractmethod
    def _ended(self, failure: str | None) -> None:
        """Record the end in the statistics: ``failure`` None for a normal end (stopped and
        drained, or out of drain time), else why the loop cannot go on (before ``on_fatal``
        hears it)."""
