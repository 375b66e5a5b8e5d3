"""The whole pipeline on the shared clips, checked against what is visible in them.

Expected counts were established by looking at the clips (contact sheets of every shot, the
head regions of every ground-truth pedestrian in TUD-Stadtmitte); where a count cannot be
exact the tolerance and its reason are stated next to it. Shot boundaries are frame indices
(0-based) of the hard cuts.
"""

from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest

from footfall.contract import Gender, PersonEvent, decode
from tests.e2e.clip_runs import ClipRun, config, run_clip

pytestmark = pytest.mark.data


def _video(shared_dir: Path, name: str) -> Path:
    path = shared_dir / "video" / name
    if not path.is_file():
        pytest.fail(f"{path} is missing from the shared folder")
    return path


def _check_events(run: ClipRun) -> None:
    ids = [p.event.track_id for p in run.people]
    assert len(ids) == len(set(ids)), "a track was emitted twice"
    for person in run.people:
        assert decode(PersonEvent, person.event.to_json()) == person.event
        assert (person.crop_jpeg is None) == (person.event.crop is None)
    # Every event is a track the test saw confirmed, and vice versa.
    assert set(ids) == set(run.seen)


# -- TUD-Stadtmitte: 10 pedestrians with ground truth, faces about 12 px high -----------------


@pytest.fixture(scope="module")
def tud(shared_dir: Path, models_dir: Path) -> ClipRun:
    # Faces here are ~12 px in a 640x480 frame: detected at 320 px they would be 6 px and mostly
    # missed, so this far-field clip needs the full width (the default since the scenario
    # evaluation; set explicitly so the test does not depend on it).
    return run_clip(
        models_dir, _video(shared_dir, "tud_stadtmitte.mp4"), config(detector={"input_width": 640})
    )


def _tud_ground_truth(shared_dir: Path) -> dict[int, list[tuple[int, float, float, float, float]]]:
    per_frame: dict[int, list[tuple[int, float, float, float, float]]] = defaultdict(list)
    for line in (shared_dir / "video" / "tud_stadtmitte.gt.txt").read_text().splitlines():
        f, pid, x, y, w, h = (float(v) for v in line.split(",")[:6])
        per_frame[int(f) - 1].append((int(pid), x, y, w, h))
    return per_frame


def _owners(run: ClipRun, shared_dir: Path) -> dict[int, int]:
    """Each track's ground-truth pedestrian: whose head region (top 30% of the body box) holds
    the face centre most often; 0 for none."""
    gt = _tud_ground_truth(shared_dir)
    owners = {}
    for tid, frames in run.seen.items():
        votes: Counter[int] = Counter()
        for frame, box in zip(frames, run.boxes[tid], strict=True):
            cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
            hit = [p for p, x, y, w, h in gt[frame] if x <= cx <= x + w and y <= cy <= y + 0.3 * h]
            votes[hit[0] if hit else 0] += 1
        owners[tid] = votes.most_common(1)[0][0]
    return owners


def test_tud_every_visible_face_is_one_person(tud: ClipRun, shared_dir: Path) -> None:
    _check_events(tud)
    owners = _owners(tud, shared_dir)
    tracks_per_person = Counter(owners.values())
    # Pedestrians 1, 6 and 8 show their faces to the camera (checked on head crops of every
    # pedestrian); each must be exactly one person, neither missed nor split.
    for pid in (1, 6, 8):
        assert tracks_per_person[pid] == 1, (pid, owners)
    # Others show a profile (4, 7, 10) or the back of the head (2, 3, 5, 9), which YuNet
    # sometimes finds: none may be split into more than two tracks.
    assert max(n for pid, n in tracks_per_person.items() if pid) <= 2, owners
    # 10 pedestrians walk through. The count lies between the 6 with a face or profile visible
    # and 12 (the 10 plus at most two detections on heads outside the ground truth's boxes).
    assert 6 <= len(tud.people) <= 12, len(tud.people)


def test_tud_tiny_faces_are_unknown_not_guessed(tud: ClipRun) -> None:
    # ~12 px faces are far below the quality needed for gender/age: all must say unknown.
    for person in tud.people:
        assert person.event.gender.label is Gender.UNKNOWN
        assert person.event.face.samples == 0


# -- short_hamilton_clip: 4 shots, several real faces ------------------------------------------

HAMILTON_SHOTS = [(0, 19), (20, 81), (82, 210), (211, 274)]


@pytest.fixture(scope="module")
def hamilton(shared_dir: Path, models_dir: Path) -> ClipRun:
    return run_clip(models_dir, _video(shared_dir, "short_hamilton_clip.mp4"))


def test_hamilton_people_per_shot(hamilton: ClipRun) -> None:
    _check_events(hamilton)
    assert hamilton.scene_cuts == 3
    per_shot = [len(hamilton.tracks_in(a, b, min_frames=3)) for a, b in HAMILTON_SHOTS]
    # Shot 1: the singer and the pianist, plus, from about frame 15, a small figure with a
    # bowed head in the dark background (top middle, ~20 px) that YuNet finds at 0.79 when it
    # detects at the clip's full width (at 320 px: 0.53, too weak to start a track): 2 or 3.
    # Shot 3: the singer alone (exact).
    assert per_shot[0] in (2, 3) and per_shot[2] == 1, per_shot
    # Shot 2: a man in profile in the foreground and an out-of-focus audience in which 3 to 6
    # faces can be made out: 4 to 7.
    assert 4 <= per_shot[1] <= 7, per_shot
    # Shot 4: six audience faces clearly visible plus two cut by the top edge: 6 to 8.
    assert 6 <= per_shot[3] <= 8, per_shot
    # Tracks end at the cuts, so every event belongs to exactly one shot.
    assert len(hamilton.people) == sum(len(hamilton.tracks_in(a, b)) for a, b in HAMILTON_SHOTS)


def test_hamilton_singer_close_up_is_one_classified_person(hamilton: ClipRun) -> None:
    (singer,) = hamilton.tracks_in(82, 210, min_frames=3)
    person = next(p for p in hamilton.people if p.event.track_id == singer)
    assert person.event.gender.label is Gender.MALE
    assert person.event.face.samples == 5
    assert person.crop_jpeg is not None


# -- Megamind: animated close-ups, 4 shots -----------------------------------------------------

MEGAMIND_SHOTS = [(1, 97), (98, 153), (154, 199), (200, 269)]
# Faces per shot, by eye: a woman and a man behind her; a man; the woman; the man close up.
MEGAMIND_FACES = [2, 1, 1, 1]


@pytest.fixture(scope="module")
def megamind(shared_dir: Path, models_dir: Path) -> ClipRun:
    return run_clip(models_dir, _video(shared_dir, "Megamind.avi"))


def test_megamind_one_face_gives_one_track(megamind: ClipRun) -> None:
    _check_events(megamind)
    whole_ids: set[int] = set()
    for (first, last), faces in zip(MEGAMIND_SHOTS, MEGAMIND_FACES, strict=True):
        # The detector runs at most max_detections_per_second (on this 24 fps clip, about every
        # 2nd frame). A face in view for the whole shot is followed by one track that takes (nearly)
        # every one of those detections: never split into several, never lost.
        length = megamind.detector_frames(first, last)
        assert length >= (last - first + 1) // 3, "the detector hardly ran"
        whole = [
            tid
            for tid in megamind.tracks_in(first, last)
            if len(megamind.seen[tid]) >= 0.9 * length
        ]
        assert len(whole) == faces, (first, last, {t: len(megamind.seen[t]) for t in whole})
        whole_ids.update(whole)
    # YuNet also fires on the woman's hair (scores up to 0.76) in shots 1 and 3: up to three
    # short extra tracks there are tolerated (a known false positive of the detector), none
    # anywhere else.
    extras = [t for t in megamind.seen if t not in whole_ids]
    assert len(extras) <= 3, extras
    woman_shots = [MEGAMIND_SHOTS[0], MEGAMIND_SHOTS[2]]
    for tid in extras:
        frames = megamind.seen[tid]
        assert any(a <= frames[0] and frames[-1] <= b for a, b in woman_shots), (tid, frames)


def test_megamind_tracks_follow_the_face_smoothly(megamind: ClipRun) -> None:
    # Within a shot a face's box centre never jumps by more than its height between frames.
    for tid, boxes in megamind.boxes.items():
        b = np.array(boxes)
        centres = (b[:, :2] + b[:, 2:]) / 2
        heights = b[:, 3] - b[:, 1]
        jumps = np.hypot(*np.diff(centres, axis=0).T)
        assert (jumps <= heights[1:]).all(), tid
