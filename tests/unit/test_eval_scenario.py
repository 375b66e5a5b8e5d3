"""The scenario generator: determinism, paths that match their direction, ground truth that
matches what was drawn, and knob validation."""

import hashlib
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from edge_agent.evaluation.compositing import (
    Appearance,
    Placement,
    draw_body,
    draw_head,
    visible_fraction,
)
from edge_agent.evaluation.scenario import (
    FaceBank,
    GroundTruth,
    ScenarioError,
    ScenarioRenderer,
    ScenarioSpec,
    plan_scenario,
)
from footfall.contract import Direction
from tests.unit.evaluation_faces import fake_utkface

W, H = 320, 240


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory) -> FaceBank:
    return FaceBank(fake_utkface(tmp_path_factory.mktemp("faces")), "test")


def _spec(**knobs: object) -> ScenarioSpec:
    base: dict[str, object] = {
        "name": "unit",
        "seed": 7,
        "width": W,
        "height": H,
        "fps": 10.0,
        "people": 8,
        "arrivals_per_minute": 60.0,
        "face_px": (30.0, 60.0),
        "noise_sigma": 2.0,
    }
    return ScenarioSpec.model_validate(base | knobs)


def _render_all(spec: ScenarioSpec, bank: FaceBank) -> tuple[list[str], GroundTruth]:
    renderer = ScenarioRenderer(plan_scenario(spec, bank), bank)
    digests = [hashlib.sha256(frame.tobytes()).hexdigest() for _, frame in renderer.frames()]
    return digests, renderer.ground_truth()


def test_same_seed_same_video_and_truth(bank: FaceBank) -> None:
    a_frames, a_truth = _render_all(_spec(), bank)
    b_frames, b_truth = _render_all(_spec(), bank)
    assert a_frames == b_frames
    assert a_truth == b_truth
    c_frames, _ = _render_all(_spec(seed=8), bank)
    assert c_frames != a_frames


def test_faces_come_from_the_split_asked_for(bank: FaceBank, tmp_path: Path) -> None:
    _, truth = _render_all(_spec(), bank)
    assert truth.people and all("_test" in p.face_file for p in truth.people)
    val = FaceBank(fake_utkface(tmp_path), "val")
    plan = plan_scenario(_spec(people=3), val)
    assert all(p.face.age >= 70 for p in plan.people)  # the fake val faces are all 70+
    with pytest.raises(ScenarioError, match="only 4 faces"):
        plan_scenario(_spec(people=5), val)


@pytest.mark.parametrize("direction", [Direction.IN, Direction.OUT, Direction.PASSED])
def test_paths_match_their_direction(bank: FaceBank, direction: Direction) -> None:
    mix = {
        "mix_in": float(direction is Direction.IN),
        "mix_out": float(direction is Direction.OUT),
        "mix_passed": float(direction is Direction.PASSED),
    }
    plan = plan_scenario(_spec(pause_probability=0.5, reentry_probability=0.5, **mix), bank)
    for person in plan.people:
        assert person.direction is direction
        xs = person.xs
        # Everyone starts and ends fully outside the picture.
        assert xs[0] < 0 or xs[0] > W
        assert xs[-1] < 0 or xs[-1] > W
        if direction is Direction.IN:
            assert xs[0] < W / 2 < xs[-1] or person.reentry
            assert xs[0] < 0 and (xs > W).any()
        elif direction is Direction.OUT:
            assert xs[0] > W and (xs < 0).any()
        else:
            # Never within hysteresis (4% of the shorter side) plus a face of the line.
            margin = 0.04 * H + person.size * 0.99
            side = np.sign(xs[0] - W / 2)
            assert (side * (xs - W / 2) >= margin).all()
        assert (np.diff(person.times) >= 0).all()


def test_ground_truth_follows_the_drawn_faces(bank: FaceBank) -> None:
    spec = _spec(turned_away_probability=1.0, turned_away_seconds=(0.5, 1.0))
    renderer = ScenarioRenderer(plan_scenario(spec, bank), bank)
    for _ in renderer.frames():
        pass
    truth = renderer.ground_truth()
    assert truth.frames == renderer.frame_count
    for person in truth.people:
        plan = next(p for p in renderer.plan.people if p.id == person.id)
        assert len(person.frames) == len(person.boxes) == len(person.visible)
        assert person.entry_time <= person.exit_time
        # Turned away: no face shows at all.
        turned = [
            v
            for f, v in zip(person.frames, person.visible, strict=True)
            if any(a <= f / spec.fps < b for a, b in plan.turned)
        ]
        assert turned and max(turned) == 0.0
        # In the picture and facing the camera, a lone face is fully visible somewhere.
        assert max(person.visible) > 0.5
        heights = [b[3] - b[1] for b in person.boxes]
        assert min(heights) > 0.8 * spec.face_px[0] * 0.9


def test_nearer_person_hides_the_one_behind() -> None:
    frame = np.zeros((H, W, 3), np.uint8)
    labels = np.zeros((H, W), np.int32)
    chip = np.full((200, 200, 3), 180, np.uint8)
    far = Appearance(1, chip, (20, 20, 20), (0, 0, 200), 1.0, 0.0)
    near = Appearance(2, chip, (20, 20, 20), (0, 200, 0), 1.0, 0.0)
    drawn_far = draw_head(frame, labels, far, Placement(160, 80, 40, False, 0.0))
    draw_body(frame, labels, near, Placement(160, 30, 60, False, 0.0))
    drawn_near = draw_head(frame, labels, near, Placement(160, 30, 60, False, 0.0))
    assert drawn_far is not None and drawn_near is not None
    assert visible_fraction(labels, 1, *drawn_far) < 0.05  # under the near one's body
    assert visible_fraction(labels, 2, *drawn_near) == pytest.approx(1.0)
    # A face half out of the frame is half visible.
    labels[:] = 0
    edge = draw_head(frame, labels, far, Placement(0.0, 120, 40, False, 0.0))
    assert edge is not None
    assert 0.35 < visible_fraction(labels, 1, *edge) < 0.65


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        ({"face_px": (30.0, 150.0), "height": 240}, "does not fit"),
        ({"face_px": (80.0, 40.0)}, "face_px must be an interval"),
        ({"background": "video:x"}, "background must be"),
        ({"mix_in": 0.0, "mix_out": 0.0, "mix_passed": 0.0}, "must be > 0"),
        ({"colour": "red"}, "Extra inputs are not permitted"),
    ],
)
def test_spec_rejects_impossible_knobs(knobs: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _spec(**knobs)


def test_clip_background_needs_the_shared_folder(bank: FaceBank) -> None:
    with pytest.raises(ScenarioError, match="needs the shared folder"):
        ScenarioRenderer(plan_scenario(_spec(background="median:vtest"), bank), bank)


def test_ground_truth_round_trips_through_json(bank: FaceBank, tmp_path: Path) -> None:
    _, truth = _render_all(_spec(people=3), bank)
    path = tmp_path / "gt.json"
    truth.save(path)
    assert GroundTruth.load(path) == truth


def test_a_video_cut_short_reports_what_people_did_within_it(bank: FaceBank) -> None:
    spec = _spec(mix_in=1.0, mix_out=0.0, mix_passed=0.0, duration_seconds=6.0)
    renderer = ScenarioRenderer(plan_scenario(spec, bank), bank)
    for _ in renderer.frames():
        pass
    truth = renderer.ground_truth()
    end = (renderer.frame_count - 1) / spec.fps
    for person in truth.people:
        plan = next(p for p in renderer.plan.people if p.id == person.id)
        crossed = float(np.interp(end, plan.times, plan.xs)) > W / 2
        if plan.end <= end or crossed:
            assert person.direction is Direction.IN
        else:
            assert person.direction is Direction.PASSED  # had not reached the line yet
    assert any(p.direction is Direction.PASSED for p in truth.people)
