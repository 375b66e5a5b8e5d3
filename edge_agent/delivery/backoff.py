"""Exponential backoff with jitter, for reconnecting to the broker and retrying crop uploads."""

import random


class Backoff:
    """Delays that double from ``min_seconds`` up to ``max_seconds``, with "equal jitter": each
    delay is drawn from the upper half of its step, ``[step / 2, step]``.

    Jitter spreads a fleet that lost the same broker at the same moment over time, so the broker
    does not get every reconnect in the same instant when it comes back; keeping the lower half
    out of the draw keeps a floor, so a refusing broker is not hammered by near-zero delays.
    """

    def __init__(
        self, min_seconds: float, max_seconds: float, *, rng: random.Random | None = None
    ) -> None:
        if min_seconds <= 0:
            raise ValueError(f"min_seconds must be > 0, got {min_seconds}")
        if max_seconds < min_seconds:
            raise ValueError(
                f"max_seconds must be >= min_seconds ({min_seconds}), got {max_seconds}"
            )
        self.min_seconds = min_seconds
        self.max_seconds = max_seconds
        self._rng = rng or random.Random()
        self.attempts = 0

    def step(self) -> float:
        """The ceiling of the next delay, without jitter."""
        # The exponent is bounded so a long outage cannot overflow the float.
        return min(self.max_seconds, self.min_seconds * 2.0 ** min(self.attempts, 60))

    def next_delay(self) -> float:
        """The delay before the next attempt; each call counts one more failure."""
        step = self.step()
        self.attempts += 1
        return step / 2 + self._rng.uniform(0.0, step / 2)

    def reset(self) -> None:
        """After a success: the next failure starts again from ``min_seconds``."""
        self.attempts = 0
