"""The pipeline step function, frame by frame, with a scripted detector and a fake classifier."""

import hashlib
from datetime import UTC, datetime, timedelta

import cv2
import numpy as np
import pytest

from edge_agent.config import AgentConfig
from edge_agent.vision.detection import Detections, FakeDetector
from edge_agent.vision.pipeline import FinishedPerson, Pipeline
from edge_agent.vision.settings import ClassifierSettings, CropSettings, TrackerSettings
from footfall.contract import AgeGroup, Direction, Gender, ModelRef, PersonEvent, Side, decode
from footfall.contract.topics import AgentAddress
from models.runtime.classifier import FakeClassifier
from tests.unit.synthetic_faces import SyntheticFrame, Walker, face_image, timeline

START = datetime(2026, 5, 1, 9, 30, tzinfo=UTC)
W, H = 640, 480


def _run(
    frames: list[SyntheticFrame],
    *,
    classifier: FakeClassifier | None = None,
    finish: bool = True,
    **kwargs: object,
) -> tuple[list[FinishedPerson], Pipeline, FakeDetector]:
    detector = FakeDetector([f.detections for f in frames])
    pipe = Pipeline(
        detector=detector,
        classifier=classifier or FakeClassifier(),
        address=AgentAddress("site-a", "spot-1", "cam-1"),
        **kwargs,  # type: ignore[arg-type]
    )
    out: list[FinishedPerson] = []
    for f in frames:
        image = face_image(W, H, f.detections.boxes, seed=int(f.t * 1000))
        out += pipe.step(image, START + timedelta(seconds=f.t))
    if finish:
        out += pipe.finish()
    return out, pipe, detector


def _walker_left_to_right(size: float = 70.0, **kw: object) -> Walker:
    return Walker("a", (40, 240), (200, 0), 0.0, 2.8, size=size, **kw)  # type: ignore[arg-type]


def test_person_crossing_the_line_gives_one_complete_event() -> None:
    frames = timeline([_walker_left_to_right()], fps=25, duration=2.8)
    out, pipe, _ = _run(frames)
    assert len(out) == 1
    person = out[0]
    event = person.event
    assert event.direction is Direction.IN  # default line: vertical centre, 'in' towards right
    assert (event.entry_side, event.exit_side) == (Side.LEFT, Side.RIGHT)
    assert event.first_seen == START
    assert event.last_seen == START + timedelta(seconds=2.8)
    assert event.dwell_seconds == pytest.approx(2.8)
    assert event.gender.label is Gender.MALE and event.gender.confidence == pytest.approx(0.9)
    assert event.age.group is AgeGroup.G25_32
    assert 0 < event.face.samples <= 5
    assert event.face.quality is not None and event.face.quality >= 0.8  # expected accuracy
    assert [m.name for m in event.models] == ["fake", "fake-gender", "fake-age"]
    assert (event.site, event.spot, event.agent) == ("site-a", "spot-1", "cam-1")
    # The crop is a JPEG whose hash and size the event carries, under the contract's key.
    assert person.crop_jpeg is not None and event.crop is not None
    assert event.crop.sha256 == hashlib.sha256(person.crop_jpeg).hexdigest()
    assert event.crop.size_bytes == len(person.crop_jpeg)
    assert event.crop.key == f"site-a/spot-1/2026-05-01/{event.event_id}.jpg"
    crop = cv2.imdecode(np.frombuffer(person.crop_jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert crop is not None and max(crop.shape[:2]) == 128
    # What a sink would send decodes strictly as the contract's record.
    assert decode(PersonEvent, event.to_json()) == event
    assert pipe.live_people == 0 and pipe.stats.directions[Direction.IN] == 1


def test_event_is_emitted_when_the_absence_window_passes() -> None:
    walker = Walker("a", (300, 240), (0, 0), 0.0, 1.0)
    frames = timeline([walker], fps=10, duration=7.0)
    detector = FakeDetector([f.detections for f in frames])
    pipe = Pipeline(
        detector=detector, classifier=FakeClassifier(), address=AgentAddress("s", "p", "a")
    )
    emitted_at = []
    for f in frames:
        image = face_image(W, H, f.detections.boxes)
        if pipe.step(image, START + timedelta(seconds=f.t)):
            emitted_at.append(f.t)
    assert emitted_at == [pytest.approx(6.1)]  # last seen at 1.0 s, absence window 5 s
    assert pipe.finish() == []


def test_tiny_faces_give_unknown_never_a_guess() -> None:
    classifier = FakeClassifier()
    # A far-away passer-by: 12 px face walking at 5 face heights per second.
    walker = Walker("a", (200, 240), (60, 0), 0.0, 4.0, size=12)
    frames = timeline([walker], fps=25, duration=4.0)
    out, _, _ = _run(frames, classifier=classifier)
    (person,) = out
    assert person.event.gender.label is Gender.UNKNOWN and person.event.gender.confidence is None
    assert person.event.age.group is AgeGroup.UNKNOWN and person.event.age.years is None
    assert person.event.face.samples == 0
    assert [m.role.value for m in person.event.models] == ["detector"]
    assert classifier.batches == []  # nothing was classified


@pytest.mark.parametrize(("level", "judged"), [(0.5, True), (0.8, True), (0.99, False)])
def test_unknown_only_below_the_expected_accuracy_level(level: float, judged: bool) -> None:
    classifier = FakeClassifier()
    frames = timeline([_walker_left_to_right()], fps=25, duration=2.8)
    out, _, _ = _run(
        frames, classifier=classifier, classify=ClassifierSettings(min_expected_accuracy=level)
    )
    (person,) = out
    face = person.event.face
    assert face.quality is not None and 0.8 <= face.quality < 0.99
    assert (person.event.gender.label is Gender.MALE) == judged
    assert (classifier.batches != []) == judged
    if not judged:
        assert person.event.age.group is AgeGroup.UNKNOWN and face.samples == 0
        assert face.note == (
            f"the best face's expected accuracy ({face.quality:.2f}) is below "
            "classifier.min_expected_accuracy (0.99)"
        )


def test_classified_once_per_person_from_at_most_k_chips() -> None:
    classifier = FakeClassifier()
    walkers = [
        _walker_left_to_right(),
        Walker("b", (600, 100), (-150, 0), 0.0, 3.0, size=80),
    ]
    frames = timeline(walkers, fps=25, duration=3.0)
    out, _, _ = _run(frames, classifier=classifier, classify=ClassifierSettings(k_best=3))
    assert len(out) == 2
    assert classifier.batches == [3, 3]
    directions = sorted(p.event.direction.value for p in out)
    assert directions == ["in", "out"]
    assert len({p.event.track_id for p in out}) == 2
    assert len({p.event.event_id for p in out}) == 2


def test_drop_policy_never_lets_a_face_image_out() -> None:
    frames = timeline([_walker_left_to_right()], fps=25, duration=2.8)
    out, _, _ = _run(frames, crops=CropSettings(policy="drop"))
    (person,) = out
    assert person.crop_jpeg is None
    assert person.event.crop is None and person.event.crop_note is None


def test_detector_runs_on_every_nth_frame_only() -> None:
    frames = timeline([_walker_left_to_right()], fps=30, duration=2.8)
    # The scripted detector returns its entries in call order: give it every 3rd frame's faces.
    script = frames[::3]
    detector = FakeDetector([f.detections for f in script])
    pipe = Pipeline(
        detector=detector,
        classifier=FakeClassifier(),
        address=AgentAddress("s", "p", "a"),
        detect_every_n_frames=3,
    )
    out = []
    for f in frames:
        out += pipe.step(face_image(W, H, f.detections.boxes), START + timedelta(seconds=f.t))
    out += pipe.finish()
    assert detector.calls == len(script) == pipe.stats.detector_runs
    assert pipe.stats.frames == len(frames)
    assert len(out) == 1 and out[0].event.direction is Direction.IN


class _CountingDetector:
    """Finds nothing; remembers on which frames it was asked."""

    def __init__(self) -> None:
        self.frames: list[int] = []
        self.current = 0
        self._inner = FakeDetector([])

    @property
    def model(self) -> ModelRef:
        return self._inner.model

    def detect(self, frame: np.ndarray) -> Detections:
        self.frames.append(self.current)
        return Detections.empty()


@pytest.mark.parametrize(
    ("fps", "rate", "every_n", "jitter_ms", "expected"),
    [
        # The stream-time cap gives the same detector rate whatever the camera sends.
        pytest.param(12.0, 12.0, 1, 0.0, list(range(12)), id="12fps-cap12-every-frame"),
        pytest.param(25.0, 12.0, 1, 0.0, list(range(0, 25, 2)), id="25fps-cap12-every-2nd"),
        pytest.param(30.0, 10.0, 1, 0.0, list(range(0, 30, 3)), id="30fps-cap10-every-3rd"),
        pytest.param(25.0, 0.0, 1, 0.0, list(range(25)), id="cap0-every-frame"),
        # Live timestamps jitter: a frame a few ms early still runs at a cap equal to the fps.
        pytest.param(12.0, 12.0, 1, 4.0, list(range(12)), id="jittered-12fps-cap12"),
        # Both cadences hold: every 3rd frame, and at most 12 a second.
        pytest.param(25.0, 12.0, 3, 0.0, list(range(0, 25, 3)), id="every-3rd-and-cap"),
        pytest.param(12.0, 12.0, 2, 0.0, list(range(0, 12, 2)), id="every-2nd-and-cap"),
    ],
)
def test_detector_cadence_in_stream_time(
    fps: float, rate: float, every_n: int, jitter_ms: float, expected: list[int]
) -> None:
    detector = _CountingDetector()
    pipe = Pipeline(
        detector=detector,
        classifier=FakeClassifier(),
        address=AgentAddress("s", "p", "a"),
        max_detections_per_second=rate,
        detect_every_n_frames=every_n,
    )
    frame = np.full((H, W, 3), 100, np.uint8)
    jitter = np.random.default_rng(1).uniform(-jitter_ms, jitter_ms, len(expected) * 3) / 1000
    for k in range(round(fps)):
        detector.current = k
        pipe.step(frame, START + timedelta(seconds=k / fps + float(jitter[k])))
    assert detector.frames == expected
    assert pipe.stats.detector_runs == len(expected)


def test_detector_cadence_follows_remote_configuration_and_clock_steps() -> None:
    detector = _CountingDetector()
    pipe = Pipeline(
        detector=detector,
        classifier=FakeClassifier(),
        address=AgentAddress("s", "p", "a"),
        max_detections_per_second=5.0,
    )
    frame = np.full((H, W, 3), 100, np.uint8)
    times = [0.0, 0.1, 0.2, 0.3]  # 10 fps at a cap of 5: every 2nd
    for k, t in enumerate(times):
        detector.current = k
        pipe.step(frame, START + timedelta(seconds=t))
    assert detector.frames == [0, 2]
    # A clock that steps back (NTP on a live camera) must not stop the detector.
    detector.current = 4
    pipe.step(frame, START + timedelta(seconds=0.05))
    assert detector.frames == [0, 2, 4]
    config = AgentConfig.model_validate(
        {"site": "s", "spot": "p", "agent": "a", "detector": {"max_detections_per_second": 0}}
    )
    pipe.request_config(config)
    for k, t in enumerate([0.06, 0.07, 0.08], start=5):
        detector.current = k
        pipe.step(frame, START + timedelta(seconds=t))
    assert detector.frames == [0, 2, 4, 5, 6, 7]


def test_passing_person_never_crossing() -> None:
    walker = Walker("a", (40, 240), (80, 0), 0.0, 2.0, size=70)  # stops short of the centre
    out, _, _ = _run(timeline([walker], fps=25, duration=2.0))
    (person,) = out
    assert person.event.direction is Direction.PASSED
    assert person.event.entry_side is Side.LEFT
    assert person.event.exit_side is Side.MIDDLE


def test_false_detection_never_becomes_an_event() -> None:
    walker = Walker("a", (300, 240), (0, 0), 0.0, 0.04)  # seen on one frame only
    out, pipe, _ = _run(timeline([walker], fps=25, duration=3.0))
    assert out == [] and pipe.live_people == 0


def test_view_exposes_tracks_for_drawing() -> None:
    frames = timeline([_walker_left_to_right()], fps=25, duration=1.0)
    _, pipe, _ = _run(frames, finish=False)
    view = pipe.view()
    assert view is not None and view.detected
    assert len(view.tracks.track_ids) == 1 and view.tracks.confirmed.tolist() == [True]


def test_naive_timestamps_are_refused() -> None:
    pipe = Pipeline(
        detector=FakeDetector([]), classifier=FakeClassifier(), address=AgentAddress("s", "p", "a")
    )
    with pytest.raises(ValueError, match="timestamp must be time-zone aware"):
        pipe.step(np.zeros((10, 10, 3), np.uint8), datetime(2026, 5, 1, 12, 0))


def test_frames_stamped_before_the_clock_was_set_are_skipped_not_turned_into_events(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A device without a real-time clock says 1970 until NTP sets it: nobody seen then can be
    # an event the aggregator stores, so the pipeline skips those frames and says so.
    frames = timeline([_walker_left_to_right()], fps=10, duration=3.0)
    detector = FakeDetector([f.detections for f in frames])
    pipe = Pipeline(
        detector=detector, classifier=FakeClassifier(), address=AgentAddress("s", "p", "a")
    )
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    out = []
    for f in frames:
        image = face_image(W, H, f.detections.boxes, seed=int(f.t * 1000))
        out += pipe.step(image, epoch + timedelta(seconds=f.t))
    out += pipe.finish()
    assert out == [] and pipe.stats.frames == 0
    assert pipe.stats.frames_out_of_time == len(frames)
    assert [r.getMessage() for r in caplog.records] == [
        "frame stamped 1970-01-01T00:00:00+00:00 is outside 2000-01-01 to 2099-12-31 (UTC): "
        "skipped (1 so far); set the clock"
    ]


def test_scene_cut_ends_every_track() -> None:
    # Scene A (light) with one face, then a cut to scene B (dark) with another face a little to
    # the right: without the cut the motion model would take B's face for A's person.
    a = Walker("a", (300, 240), (0, 0), 0.0, 2.0, size=80)
    b = Walker("b", (360, 250), (0, 0), 2.04, 4.0, size=80)
    frames = timeline([a, b], fps=25, duration=4.0)
    pipe = Pipeline(
        detector=FakeDetector([f.detections for f in frames]),
        classifier=FakeClassifier(),
        address=AgentAddress("s", "p", "a"),
    )
    emitted: list[tuple[float, int]] = []
    for f in frames:
        background = 200 if f.t < 2.02 else 30
        image = face_image(W, H, f.detections.boxes, background=background)
        for person in pipe.step(image, START + timedelta(seconds=f.t)):
            emitted.append((f.t, person.event.track_id))
    emitted += [(99.0, p.event.track_id) for p in pipe.finish()]
    assert pipe.stats.scene_cuts == 1
    assert len(emitted) == 2
    assert emitted[0][0] == pytest.approx(2.04)  # A ended at the cut, not 5 s later
    assert emitted[0][1] != emitted[1][1]


def test_memory_follows_people_in_view_not_stream_length() -> None:
    # 80 people cross one after another; per-person state is dropped as each one ends.
    walkers = [
        Walker(f"p{k}", (20, 60 + (k % 3) * 50), (300, 0), k * 1.5, k * 1.5 + 0.9, size=36)
        for k in range(80)
    ]
    frames = timeline(walkers, fps=10, duration=80 * 1.5 + 1)
    pipe = Pipeline(
        detector=FakeDetector([f.detections for f in frames]),
        classifier=FakeClassifier(),
        address=AgentAddress("s", "p", "a"),
        tracker=TrackerSettings(max_absence_seconds=2.0),
    )
    most, emitted = 0, 0
    for f in frames:
        image = face_image(320, 240, f.detections.boxes)
        emitted += len(pipe.step(image, START + timedelta(seconds=f.t)))
        most = max(most, pipe.live_people, len(pipe.tracker))
    emitted += len(pipe.finish())
    assert emitted == 80
    assert most <= 3
    assert pipe.live_people == 0 and len(pipe.tracker) == 0


def test_frame_size_change_ends_every_track() -> None:
    walker = Walker("a", (300, 240), (0, 0), 0.0, 3.0, size=80)
    frames = timeline([walker], fps=10, duration=3.0)
    pipe = Pipeline(
        detector=FakeDetector([f.detections for f in frames]),
        classifier=FakeClassifier(),
        address=AgentAddress("s", "p", "a"),
        tracker=TrackerSettings(scene_cut_threshold=0),
    )
    ended_at = []
    for k, f in enumerate(frames):
        size = (W, H) if k < 15 else (W + 160, H + 120)  # the camera came back larger
        image = face_image(size[0], size[1], f.detections.boxes)
        if pipe.step(image, START + timedelta(seconds=f.t)):
            ended_at.append(k)
    assert ended_at == [15]
    assert len(pipe.finish()) == 1  # the same face, now a new person in the new geometry
