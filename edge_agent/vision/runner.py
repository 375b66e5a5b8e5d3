"""The thin loop around the pipeline: source -> bounded queue -> ``Pipeline.step`` -> sink.

Capture runs in its own thread, so decoding overlaps detection (OpenCV releases the GIL in
both). The capture thread always closes the queue when it ends, whatever the reason, so the
processing loop can never wait forever for a frame that will not come; an error in capture is
re-raised in the caller after the people already in view have been emitted.
"""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from edge_agent.vision.pipeline import FinishedPerson, Pipeline
from edge_agent.vision.sinks import EventSink
from edge_agent.vision.sources import BoundedFrameQueue, FrameSource, QueueClosedError, TimedFrame

log = logging.getLogger(__name__)

FrameCallback = Callable[[TimedFrame, list[FinishedPerson]], None]


@dataclass
class RunResult:
    frames_in: int = 0
    frames_processed: int = 0
    frames_dropped: int = 0
    events: int = 0
    source_reconnects: int = 0
    wall_seconds: float = 0.0
    stopped: bool = False  # ended by the stop event rather than the end of the source

    @property
    def fps(self) -> float:
        return self.frames_processed / self.wall_seconds if self.wall_seconds > 0 else 0.0


def run(
    source: FrameSource,
    pipeline: Pipeline,
    sink: EventSink,
    *,
    queue_frames: int = 4,
    stop: threading.Event | None = None,
    on_frame: FrameCallback | None = None,
) -> RunResult:
    """Process ``source`` until it ends or ``stop`` is set; emit every finished person to
    ``sink`` (including, at the end, everyone still in view). Does not close the sink or the
    source's owner's resources other than the source itself."""
    stop = stop or threading.Event()
    queue: BoundedFrameQueue[TimedFrame] = BoundedFrameQueue(queue_frames, drop_oldest=source.live)
    failure: list[BaseException] = []
    result = RunResult()

    def capture() -> None:
        try:
            for frame in source.frames(stop):
                if not queue.put(frame, stop):
                    break
        except BaseException as exc:  # handed to the main thread, never lost
            failure.append(exc)
        finally:
            queue.close()

    def emit(people: list[FinishedPerson]) -> None:
        for person in people:
            sink.emit(person.event, person.crop_jpeg)
            result.events += 1

    thread = threading.Thread(target=capture, name="capture", daemon=True)
    started = time.perf_counter()
    thread.start()
    try:
        while True:
            try:
                frame = queue.get(timeout=0.5)
            except QueueClosedError:
                break
            if frame is None:
                continue
            finished = pipeline.step(frame.image, frame.timestamp)
            result.frames_processed += 1
            emit(finished)
            if on_frame is not None:
                on_frame(frame, finished)
        result.stopped = stop.is_set()
        emit(pipeline.finish())
    finally:
        stop.set()
        thread.join(timeout=10)
        if thread.is_alive():
            log.error("capture thread did not stop within 10 s")
        source.close()
        result.frames_in = queue.put_count
        result.frames_dropped = queue.dropped
        result.source_reconnects = source.reconnects
        result.wall_seconds = time.perf_counter() - started
    if failure:
        raise failure[0]
    return result
