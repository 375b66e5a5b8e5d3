"""The vision pipeline as a step function: a frame and its timestamp in, finished people out.

``Pipeline.step(frame, timestamp)`` detects faces (at most ``max_detections_per_second`` times a
second of stream time, and on at most every n-th frame), tracks them, updates
each person's direction and best faces, and returns a :class:`FinishedPerson` (the contract's
``PersonEvent`` plus the face crop's JPEG) for every person whose track ended at this instant:
unseen for longer than the absence window. ``finish()`` ends everyone at the end of the stream.
There is no I/O and no clock here; the loop around it lives in :mod:`edge_agent.vision.runner`.

Per person the pipeline keeps a counting state, the K best aligned chips (small, bounded) and
one crop; that state is dropped when the track ends, so memory follows the number of people in
view, not the length of the stream. An observation's quality is its expected accuracy (how
often the classifier gets the gender of such a face right, :func:`expected_accuracy`); it ranks
the K best and weighs them. Gender and age are estimated once, when the track ends, unless the
person's best expected accuracy stays under ``min_expected_accuracy``: then the event says
unknown.
"""

import hashlib
import itertools
import logging
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from edge_agent.config import AgentConfig
from edge_agent.vision.appearance import describe
from edge_agent.vision.best_faces import BestFaces, FaceKeeper
from edge_agent.vision.body_appearance import describe_bodies
from edge_agent.vision.classification import UNKNOWN_AGE, UNKNOWN_GENDER, combine
from edge_agent.vision.counting import (
    CountingLine,
    CountState,
    DirectionCounter,
    GeometryError,
    build_counter,
    check_geometry,
    side_of_box,
)
from edge_agent.vision.crops import encode_jpeg, face_crop
from edge_agent.vision.detection import Detections, FaceDetector
from edge_agent.vision.face_search import find_faces
from edge_agent.vision.people import count_point
from edge_agent.vision.quality import (
    CHANCE,
    AccuracyModel,
    QualityParams,
    default_accuracy_model,
    evidence_weight,
    expected_accuracy,
    geometry_quality,
    pixel_quality,
)
from edge_agent.vision.scene_cuts import SceneCutDetector
from edge_agent.vision.settings import (
    ClassifierSettings,
    CountingSettings,
    CropPolicy,
    CropSettings,
    PersonSettings,
    PipelineMode,
    TrackerSettings,
)
from edge_agent.vision.tracking import (
    ByteTracker,
    EndedTrack,
    MatchedTracks,
    Tracker,
    TrackSnapshot,
)
from footfall.contract import (
    SCHEMA_VERSION,
    CropRef,
    Direction,
    FaceInfo,
    ModelRef,
    PersonEvent,
)
from footfall.contract.keys import crop_key
from footfall.contract.topics import AgentAddress
from footfall.contract.types import EARLIEST_TIMESTAMP, END_OF_TIMESTAMPS, timestamp_window_text
from models.runtime.alignment import align_face, landmarks_from_box
from models.runtime.classifier import FaceClassifier

log = logging.getLogger(__name__)

U8 = npt.NDArray[np.uint8]

# Share of the detector interval (1 / max_detections_per_second) a frame may come early and still
# be run: live timestamps jitter by a few ms, and at a cap equal to the camera's frame rate a
# frame arriving 1 ms early must not halve the detection rate.
CADENCE_TOLERANCE = 0.1


@dataclass(frozen=True)
class FinishedPerson:
    """What the pipeline hands to an :class:`~edge_agent.vision.sinks.EventSink`."""

    event: PersonEvent
    crop_jpeg: bytes | None


@dataclass
class _Person:
    best: FaceKeeper
    count: CountState = field(default_factory=CountState)
    best_quality: float = 0.0
    crop: U8 | None = None
    crop_quality: float = -1.0


@dataclass(frozen=True)
class PipelineView:
    """The state after the latest step, for drawing (see :mod:`edge_agent.vision.annotate`)."""

    tracks: TrackSnapshot
    detections: Detections
    detected: bool  # whether the detector ran on this frame
    faces: Detections  # the faces found on this frame (the same as detections in face mode)
    attached: dict[int, int]  # person mode: track id -> index in faces of the face on that body
    crossed: dict[int, Direction]  # track id -> direction counted so far
    line: tuple[tuple[float, float], tuple[float, float]] | None  # counting line, pixels


@dataclass
class PipelineStats:
    frames: int = 0
    detector_runs: int = 0
    people: int = 0
    directions: Counter[Direction] = field(default_factory=Counter)
    unknown_gender: int = 0
    scene_cuts: int = 0
    frames_out_of_time: int = 0  # skipped: stamped outside the times an event can have


def _utc_ms(seconds: float) -> datetime:
    value = datetime.fromtimestamp(seconds, UTC)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


class Pipeline:
    """Detect, track, count, pick best faces, classify once per person, build events."""

    def __init__(
        self,
        *,
        detector: FaceDetector,
        classifier: FaceClassifier,
        address: AgentAddress,
        tracker: TrackerSettings | None = None,
        counting: CountingSettings | None = None,
        classify: ClassifierSettings | None = None,
        crops: CropSettings | None = None,
        detect_every_n_frames: int = 1,
        max_detections_per_second: float = 0.0,
        quality: QualityParams | None = None,
        accuracy: AccuracyModel | None = None,
        track_ids: Iterator[int] | None = None,
        track_with: Tracker | None = None,
        face_keeper: Callable[[int], FaceKeeper] = BestFaces,
        person_detector: FaceDetector | None = None,
        person: PersonSettings | None = None,
    ) -> None:
        """``track_with`` replaces the tracker built from ``tracker`` and ``face_keeper``
        (called with K) the K-best policy; both exist so the evaluation can run the seed's
        behaviour through the same pipeline.

        With a ``person_detector`` the pipeline runs in person mode: bodies are tracked and
        counted, and ``detector``'s faces, found on the whole frame or on each body's upper
        part (``person.face_search``, :mod:`edge_agent.vision.face_search`), are attached to
        the body they lie in (:mod:`edge_agent.vision.people`); without one, faces are tracked
        (face mode)."""
        if detect_every_n_frames < 1:
            raise ValueError(f"detect_every_n_frames must be >= 1, got {detect_every_n_frames}")
        if max_detections_per_second < 0:
            raise ValueError(
                f"max_detections_per_second must be >= 0, got {max_detections_per_second}"
            )
        self.detector = detector
        self.person_detector = person_detector
        self.person = person or PersonSettings()
        self.classifier = classifier
        self.address = address
        self.counting = counting or CountingSettings()
        self.classify_settings = classify or ClassifierSettings()
        self.crops = crops or CropSettings()
        self.detect_every = detect_every_n_frames
        self.max_detection_rate = max_detections_per_second
        self._last_detection: tuple[int, float] | None = None  # (frame number, stream time)
        self.quality = quality or QualityParams()
        self.accuracy = accuracy or default_accuracy_model()
        tracker = tracker or TrackerSettings()
        if person_detector is not None:
            tracker = self.person.tracker(tracker)
        self.tracker: Tracker = track_with or ByteTracker.from_settings(
            tracker, track_ids=track_ids or itertools.count(1)
        )
        self._keeper = face_keeper
        self.scene_cuts = SceneCutDetector(tracker.scene_cut_threshold)
        self.stats = PipelineStats()
        self._people: dict[int, _Person] = {}
        self._counter: DirectionCounter | None = None
        self._size: tuple[int, int] | None = None
        self._last: tuple[float, Detections, Detections, bool] | None = None
        self._attached: dict[int, int] = {}
        self._pending: tuple[AgentConfig, Callable[[AgentConfig], None] | None] | None = None
        self._pending_lock = threading.Lock()
        self.config_version: str | None = None

    @classmethod
    def from_config(
        cls,
        config: AgentConfig,
        *,
        detector: FaceDetector,
        classifier: FaceClassifier,
        track_ids: Iterator[int] | None = None,
        person_detector: FaceDetector | None = None,
    ) -> "Pipeline":
        """``person_detector`` is required when ``config.mode`` is person (build it with
        :func:`edge_agent.build.build_person_detector`) and ignored in face mode."""
        if config.mode is PipelineMode.PERSON and person_detector is None:
            raise ValueError("mode = 'person' needs a person detector")
        pipeline = cls(
            detector=detector,
            classifier=classifier,
            address=config.address,
            tracker=config.tracker,
            counting=config.counting,
            classify=config.classifier,
            crops=config.crops,
            detect_every_n_frames=config.detector.detect_every_n_frames,
            max_detections_per_second=config.detector.max_detections_per_second,
            track_ids=track_ids,
            person_detector=person_detector if config.mode is PipelineMode.PERSON else None,
            person=config.person,
        )
        pipeline.config_version = config.config_version
        return pipeline

    # -- remote configuration -----------------------------------------------------------------

    def request_config(
        self,
        config: AgentConfig,
        on_applied: Callable[[AgentConfig], None] | None = None,
    ) -> None:
        """Hand over a new (validated) configuration from another thread; it takes effect at
        the start of the next :meth:`step`, never in the middle of one, and ``on_applied`` is
        called then (in the pipeline's thread). A later request replaces one not yet taken."""
        with self._pending_lock:
            self._pending = (config, on_applied)

    def apply_config(self, config: AgentConfig) -> None:
        """Switch to ``config``'s pipeline settings now (between frames).

        A moved counting line makes every person in view start afresh on it: their side of the
        old line means nothing for the new one; a direction already counted is kept. A line
        that does not fit the frame (checked by :meth:`check_config` before a remote
        configuration is accepted) keeps the previous one.
        """
        if self._size is not None:
            try:
                counter = build_counter(config.counting, *self._size)
            except GeometryError as exc:
                log.error("keeping the counting line in effect: %s", exc)
            else:
                self.counting, self._counter = config.counting, counter
        else:
            self.counting = config.counting
        for person in self._people.values():
            person.count = CountState(crossed=person.count.crossed)
        self.tracker.configure(
            config.person.tracker(config.tracker) if self.person_detector else config.tracker
        )
        self.person = config.person
        self.scene_cuts.threshold = config.tracker.scene_cut_threshold
        self.classify_settings = config.classifier
        self.crops = config.crops
        self.detect_every = config.detector.detect_every_n_frames
        self.max_detection_rate = config.detector.max_detections_per_second
        self.config_version = config.config_version
        log.info("pipeline now runs configuration %s", config.config_version)

    def check_config(self, config: AgentConfig) -> None:
        """Raise :class:`GeometryError` if ``config``'s counting line does not fit the frames
        this pipeline is getting (nothing to check before the first frame)."""
        if self._size is not None:
            check_geometry(config.counting, *self._size)

    def _take_pending(self) -> None:
        with self._pending_lock:
            pending, self._pending = self._pending, None
        if pending is not None:
            config, on_applied = pending
            self.apply_config(config)
            if on_applied is not None:
                on_applied(config)

    @property
    def live_people(self) -> int:
        return len(self._people)

    def view(self) -> PipelineView | None:
        """What the latest step saw and holds, for drawing; built on request, so a pipeline
        nobody draws pays nothing for it. None before the first step."""
        if self._last is None:
            return None
        t, detections, faces, detected = self._last
        return PipelineView(
            tracks=self.tracker.snapshot(t),
            detections=detections,
            detected=detected,
            faces=faces,
            attached=dict(self._attached) if detected else {},
            crossed={tid: p.count.crossed for tid, p in self._people.items() if p.count.crossed},
            line=(
                (self._counter.p1, self._counter.p2)
                if isinstance(self._counter, CountingLine)
                else None
            ),
        )

    # -- the step ---------------------------------------------------------------------------------

    def step(self, frame: U8, timestamp: datetime) -> list[FinishedPerson]:
        """Take one frame (BGR uint8) seen at ``timestamp`` (time-zone aware, non-decreasing)."""
        if timestamp.tzinfo is None or timestamp.utcoffset() is None:
            raise ValueError("timestamp must be time-zone aware (e.g. UTC)")
        if self._pending is not None:  # one attribute read per frame when nothing is pending
            self._take_pending()
        if not EARLIEST_TIMESTAMP <= timestamp < END_OF_TIMESTAMPS:
            # A device without a real-time clock says 1970 until NTP sets it. No event may carry
            # such a time (the aggregator refuses it), so the frame is skipped rather than turned
            # into people nobody could store; recorded clips are checked when they are opened.
            self.stats.frames_out_of_time += 1
            if self.stats.frames_out_of_time % 1000 == 1:
                log.warning(
                    "frame stamped %s is outside %s: skipped (%d so far); set the clock",
                    timestamp.isoformat(),
                    timestamp_window_text(),
                    self.stats.frames_out_of_time,
                )
            return []
        height, width = frame.shape[:2]
        finished: list[FinishedPerson] = []
        if self._size != (width, height):
            if self._size is not None:
                # A live source reopened at another resolution: positions no longer compare.
                log.warning("frame size changed from %s to %s", self._size, (width, height))
                finished = self._end(self.tracker.finish())
            # GeometryError when the counting line does not fit this frame: the run stops here.
            self._counter = build_counter(self.counting, width, height)
            self._size = (width, height)
        t = timestamp.timestamp()
        index = self.stats.frames
        detect = self._detector_due(index, t)
        self.stats.frames += 1
        if self.scene_cuts.is_cut(frame):
            self.stats.scene_cuts += 1
            log.debug(
                "scene cut at frame %d: ending %d tracks", self.stats.frames, len(self.tracker)
            )
            finished += self._end(self.tracker.finish())
            detect = True  # the predictions are void; look at the new scene now
        if detect:
            self.stats.detector_runs += 1
            self._last_detection = (index, t)
            if self.person_detector is None:
                detections = faces = self.detector.detect(frame)
            else:
                detections = self.person_detector.detect(frame)
            wanted = self.tracker.wants_appearance and len(detections)
            if not wanted:
                appearance = None
            elif self.person_detector is None:
                appearance = describe(frame, detections.boxes)
            else:
                appearance = describe_bodies(frame, detections.boxes)
            step = self.tracker.update(detections, t, appearance)
            if self.person_detector is None:
                face_of: list[int | None] = list(range(len(detections)))
            else:
                faces, face_of = find_faces(
                    self.person.face_search,
                    self.detector,
                    frame,
                    detections.boxes,
                    self.person.face_region,
                )
            self._observe(frame, detections, faces, face_of, step.matched)
            ended = step.ended
        else:
            detections = faces = Detections.empty()
            ended = self.tracker.tick(t)
        finished += self._end(ended)
        self._last = (t, detections, faces, detect)
        return finished

    def _detector_due(self, index: int, t: float) -> bool:
        """Whether the detector runs on frame number ``index``, seen at stream time ``t``: the
        frame-count and the stream-time cadence must both allow it."""
        if self._last_detection is None:
            return True
        frame, last = self._last_detection
        if index - frame < self.detect_every:
            return False
        if self.max_detection_rate <= 0 or t < last:  # a clock stepping back: look now
            return True
        return t - last >= (1.0 - CADENCE_TOLERANCE) / self.max_detection_rate

    def finish(self) -> list[FinishedPerson]:
        """End every live track (end of stream) and return their people."""
        return self._end(self.tracker.finish())

    # -- per person -------------------------------------------------------------------------------

    def _observe(
        self,
        frame: U8,
        tracked: Detections,
        det: Detections,
        face_of: list[int | None],
        matched: MatchedTracks,
    ) -> None:
        """``tracked`` are the boxes the tracker matched (bodies or faces), ``det`` the faces,
        ``face_of[i]`` the face (index into ``det``) of tracked box ``i``, if any."""
        assert self._counter is not None and self._size is not None
        width, height = self._size
        point_of = self.person.count_point if self.person_detector is not None else None
        self._attached.clear()
        chip_size = self.classifier.chip_size
        keep_crops = self.crops.policy is CropPolicy.KEEP
        for tid, ti in zip(matched.track_ids.tolist(), matched.det_index.tolist(), strict=True):
            person = self._people.get(tid)
            if person is None:
                person = self._people[tid] = _Person(
                    best=self._keeper(self.classify_settings.k_best)
                )
            person.count = self._counter.observe(
                person.count, count_point(tracked.boxes[ti], point_of)
            )
            di = face_of[ti]
            if di is None:
                continue  # a body whose face is not seen now: counted, nothing to classify
            if self.person_detector is not None:
                self._attached[tid] = di
            box, landmarks = det.boxes[di], det.landmarks[di]
            geometry = geometry_quality(
                box, landmarks, float(det.scores[di]), width, height, self.quality
            )
            # Without pixels the expected accuracy is an upper bound: pixels (the aligned chip)
            # only for observations that could still matter, among the K best or the best so
            # far (for the crop).
            bound = expected_accuracy(geometry, None, self.accuracy, self.quality)
            quality = 0.0
            if bound > CHANCE and (person.best.admits(bound) or bound > person.best_quality):
                points = landmarks if np.isfinite(landmarks).all() else landmarks_from_box(box)
                chip = align_face(frame, points, chip_size)
                pixel = pixel_quality(chip, self.quality)
                quality = expected_accuracy(geometry, pixel, self.accuracy, self.quality)
                person.best.add(quality, chip)
                person.best_quality = max(person.best_quality, quality)
            if keep_crops and (person.crop is None or quality > person.crop_quality):
                person.crop = face_crop(
                    frame, box, padding=self.crops.padding, size=self.crops.size
                )
                person.crop_quality = quality

    def _end(self, ended: tuple[EndedTrack, ...]) -> list[FinishedPerson]:
        out = []
        for track in ended:
            person = self._people.pop(track.track_id, None)
            if not track.confirmed:
                continue  # a false detection that never became a person
            if person is None:  # confirmed tracks always have observations; be safe anyway
                person = _Person(best=self._keeper(self.classify_settings.k_best))
            out.append(self._event(track, person))
        return out

    def _unknown_reason(self, person: _Person, judged: bool, best: float) -> str | None:
        """Why gender and age are unknown (None when they were estimated)."""
        if judged:
            return None
        if person.best_quality <= 0.0 and not len(person.best.best_first()):
            return (
                "no face was seen on this person (walking away, turned or hidden)"
                if self.person_detector is not None
                else "no usable face image (too small, blurred or turned away)"
            )
        settings = self.classify_settings
        return (
            f"the best face's expected accuracy ({best:.2f}) is below "
            f"classifier.min_expected_accuracy ({settings.min_expected_accuracy})"
        )

    def _event(self, track: EndedTrack, person: _Person) -> FinishedPerson:
        assert self._counter is not None and self._size is not None
        width, height = self._size
        settings = self.classify_settings
        usable = [obs for obs in person.best.best_first() if obs.quality >= settings.min_quality]
        # The expected accuracy of the combined estimate is taken as that of its best face: the
        # K faces of one passage share the person, light and camera, so their errors are not
        # independent and averaging them is not credited with more than the best one.
        best = max((obs.quality for obs in usable), default=0.0)
        if best < settings.min_expected_accuracy:
            usable = []
        models: list[ModelRef] = [self.detector.model]
        if self.person_detector is not None:
            models.insert(0, self.person_detector.model)
        if usable:
            estimates = self.classifier.classify(np.stack([obs.chip for obs in usable]))
            weights = [evidence_weight(obs.quality) for obs in usable]
            gender, age = combine(
                estimates,
                weights if sum(weights) > 0 else [1.0] * len(usable),
                min_gender_confidence=settings.min_gender_confidence,
            )
            models += list(self.classifier.models)
        else:
            gender, age = UNKNOWN_GENDER, UNKNOWN_AGE

        entry = side_of_box(track.first_box, width, height, self.counting.edge_margin)
        exit_side = side_of_box(track.last_box, width, height, self.counting.edge_margin)
        direction = self._counter.direction(person.count, entry, exit_side)
        first, last = _utc_ms(track.first_seen), _utc_ms(track.last_seen)
        event_id = uuid.uuid4()

        crop_ref, jpeg, note = None, None, None
        if self.crops.policy is CropPolicy.KEEP:
            if person.crop is not None:
                jpeg = encode_jpeg(person.crop, self.crops.jpeg_quality)
                crop_ref = CropRef(
                    key=crop_key(self.address.site, self.address.spot, first, event_id),
                    sha256=hashlib.sha256(jpeg).hexdigest(),
                    size_bytes=len(jpeg),
                )
            else:
                note = "no face image was captured for this person"

        event = PersonEvent(
            schema_version=SCHEMA_VERSION,
            event_id=event_id,
            site=self.address.site,
            spot=self.address.spot,
            agent=self.address.agent,
            track_id=track.track_id,
            first_seen=first,
            last_seen=last,
            dwell_seconds=(last - first).total_seconds(),
            direction=direction,
            entry_side=entry,
            exit_side=exit_side,
            gender=gender,
            age=age,
            face=FaceInfo(
                quality=round(min(person.best_quality, 1.0), 4),
                samples=len(usable),
                note=self._unknown_reason(person, usable != [], best),
            ),
            crop=crop_ref,
            crop_note=note,
            models=models,
            counted_by="face" if self.person_detector is None else "person",
        )
        self.stats.people += 1
        self.stats.directions[direction] += 1
        if usable == [] or gender.confidence is None:
            self.stats.unknown_gender += 1
        return FinishedPerson(event=event, crop_jpeg=jpeg)
