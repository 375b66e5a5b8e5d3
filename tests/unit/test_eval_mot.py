"""``eval mot``'s pieces: reading MOTChallenge truth, matching body and face tracks to it, and the
truth's own line crossings."""

from pathlib import Path

import numpy as np
import pytest

from edge_agent.evaluation.evaluate import eval_config
from edge_agent.evaluation.mot import distances, truth_crossings
from edge_agent.evaluation.mot_truth import TruthError, load_mot
from footfall.contract import Direction


def _truth(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gt.txt"
    path.write_text(text, encoding="utf-8")
    return path


def test_truth_is_read_per_frame_and_ignored_rows_are_left_out(tmp_path: Path) -> None:
    truth = load_mot(_truth(tmp_path, "1,7,10,20,30,60,1,-1,-1\n1,8,0,0,5,5,0\n2,7,12,20,30,60\n"))
    assert truth.people == {7}
    assert truth.boxes_at(0).tolist() == [[10, 20, 40, 80]]
    assert truth.ids_at(1).tolist() == [7]
    assert [f for f, _ in truth.tracks()[7]] == [0, 1]


def test_a_malformed_line_names_the_file_and_line(tmp_path: Path) -> None:
    path = _truth(tmp_path, "1,7,10,20,30,60\nnot,a,row\n")
    with pytest.raises(TruthError, match=r"gt.txt line 2: expected 'frame, id"):
        load_mot(path)
    with pytest.raises(TruthError, match="cannot read ground truth"):
        load_mot(tmp_path / "missing.txt")


def test_body_tracks_match_by_overlap_and_face_tracks_by_the_head() -> None:
    truth = np.array([[100, 100, 160, 300], [300, 100, 360, 300]], np.float32)
    bodies = np.array([[102, 104, 162, 296], [200, 100, 260, 300]], np.float32)
    d = distances(truth, bodies, faces=False)
    assert d[0, 0] < 0.2 and np.isnan(d[0, 1]) and np.isnan(d[1]).all()
    faces = np.array([[120, 105, 140, 125], [320, 250, 340, 270]], np.float32)
    d = distances(truth, faces, faces=True)
    assert np.isfinite(d[0, 0]) and np.isnan(d[1, 1])  # the second face is at the knees


def test_truth_crossings_follow_the_counting_line(tmp_path: Path) -> None:
    rows = [f"{f},1,{100 + 20 * f},100,40,200" for f in range(1, 21)]  # walks left to right
    rows += [f"{f},2,{500 - 20 * f},100,40,200" for f in range(1, 21)]  # right to left
    rows += [f"{f},3,100,100,40,200" for f in range(1, 21)]  # stands still
    truth = load_mot(_truth(tmp_path, "\n".join(rows) + "\n"))
    crossings = truth_crossings(truth, eval_config(), 640, 480)
    assert crossings == {Direction.IN: 1, Direction.OUT: 1, Direction.PASSED: 1}
