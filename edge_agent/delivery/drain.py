"""The stop-and-drain clock shared by the delivery loops (event sender, crop uploader).

A loop runs until asked to stop; then it keeps working until its drain deadline and exits, so a
SIGTERM gives the outbox a bounded chance to empty without ever hanging the shutdown.
"""

import threading
import time


class DrainClock:
    def __init__(self) -> None:
        self.stopping = threading.Event()
        self.wake = threading.Event()
        self.deadline = float("inf")

    def request_stop(self, drain_seconds: float) -> None:
        """From now on, work for at most ``drain_seconds`` more (an earlier deadline stays)."""
        self.deadline = min(self.deadline, time.monotonic() + max(0.0, drain_seconds))
        self.stopping.set()
        self.wake.set()

    def out_of_time(self) -> bool:
        return self.stopping.is_set() and time.monotonic() >= self.deadline

    def left(self, seconds: float) -> float:
        """``seconds``, cut to what is left before the deadline once stopping."""
        if self.stopping.is_set():
            return min(seconds, self.deadline - time.monotonic())
        return seconds

    def sleep(self, seconds: float) -> None:
        """Sleep ``seconds``; a stop request shortens it to the drain deadline, and ``wake`` (set
        e.g. by a configuration change) re-checks rather than ending it."""
        end = time.monotonic() + seconds
        while True:
            if self.stopping.is_set():
                end = min(end, self.deadline)
            left = end - time.monotonic()
            if left <= 0:
                return
            self.wake.wait(left)
            self.wake.clear()
