"""The footage's own clock, for an agent reading a recorded clip, and the heartbeats it calls for.

A file is read as fast as the machine allows: a 30-minute clip may take 3 minutes or 60. The wall
clock then says nothing about which footage was watched, while the events are stamped with the
clip's time (its start + frame position / fps). So the status messages of an agent reading a
file carry the clip's time too: the online status the time reached when it connects (the clip's
start before the first frame), one heartbeat per heartbeat interval of footage processed, a last
heartbeat at the end of the footage, and the offline status at that end. The aggregator's coverage
rules (:mod:`aggregator.store.coverage`) then see the clip's own span, whatever the speed.
Live sources keep the wall clock.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Protocol

# Heartbeats published per check at most: after a long broker outage the backlog of a fast file
# goes out over a few turns of the sender's loop instead of holding up its events.
_MAX_BEATS_PER_CHECK = 200


class _Timed(Protocol):
    @property
    def timestamp(self) -> datetime: ...


class StreamClock:
    """How far the pipeline got into a recorded clip: ``start`` before the first frame, then the
    end of the latest frame processed (its timestamp + one frame's duration), so a clip read to
    its end reads ``start + frames / fps``, the span the embedded survey reports for it.

    Fed by the runner's per-frame callback (the pipeline's thread) after the frame's events are
    in the outbox, read by the sender's thread. :meth:`finish` says no frame follows (the clip
    ended or the pipeline stopped).
    """

    def __init__(self, start: datetime, frame_seconds: float) -> None:
        if start.tzinfo is None or start.utcoffset() is None:
            raise ValueError("start must be time-zone aware")
        if not frame_seconds > 0:
            raise ValueError(f"frame_seconds must be > 0, got {frame_seconds}")
        self.start = start
        self._frame = timedelta(seconds=frame_seconds)
        self._lock = threading.Lock()
        self._reached = start
        self._finished = False

    def on_frame(self, frame: _Timed, _finished: object = None) -> None:
        end = frame.timestamp + self._frame
        with self._lock:
            # Frames come in order; max() keeps the clock from going back if one ever does not.
            self._reached = max(self._reached, end)

    def finish(self) -> None:
        with self._lock:
            self._finished = True

    def now(self) -> datetime:
        with self._lock:
            return self._reached

    def read(self) -> tuple[datetime, bool]:
        """The time reached and whether the footage is finished, read together."""
        with self._lock:
            return self._reached, self._finished


class StreamHeartbeats:
    """The heartbeat times a :class:`StreamClock` calls for, each handed out once: the clip's
    start, then one every ``interval`` seconds of footage processed, and the end of the footage
    once it is finished.

    The first one at the start means that an agent which could connect only later still vouches
    for its footage from the first frame; what the clock passed while the broker was unreachable
    is handed out at the next check, so a file read during an outage is covered all the same.
    """

    def __init__(self, clock: StreamClock) -> None:
        self._clock = clock
        self._last: datetime | None = None

    def due(self, interval: float) -> list[datetime]:
        """Heartbeats not handed out yet (oldest first), at most a few hundred per call."""
        if not interval > 0:
            raise ValueError(f"interval must be > 0, got {interval}")
        reached, finished = self._clock.read()
        step = timedelta(seconds=interval)
        out: list[datetime] = []
        if self._last is None:
            self._last = self._clock.start
            out.append(self._last)
        while self._last + step <= reached and len(out) < _MAX_BEATS_PER_CHECK:
            self._last += step
            out.append(self._last)
        caught_up = self._last + step > reached
        if finished and caught_up and reached > self._last:
            self._last = reached
            out.append(reached)
        return out
