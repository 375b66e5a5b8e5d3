"""Where person mode looks for faces: on the whole frame, or on the upper part of each body.

Street faces are 10-30 px high. YuNet on the whole frame (scaled to ``detector.input_width``)
misses most of those under about 20 px; cut out the head-and-shoulders of every body, enlarge
it so an expected face reaches ``FACE_PX`` and the same detector finds them, on far fewer
pixels than the frame when few people are in view.

The planning and the mapping back are pure functions on boxes (``x1, y1, x2, y2`` frame pixels);
:func:`find_faces` runs the detector on the crops they describe. Bodies whose crops overlap
(people side by side, one behind the other) share one crop, so a face is found once, and goes to
one of that crop's bodies by :func:`~edge_agent.vision.people.assign_faces`.
"""

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from edge_agent.vision.detection import Detections, FaceDetector
from edge_agent.vision.people import HEAD_SHARE, assign_faces
from edge_agent.vision.settings import FaceSearch

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]

# The face height (px) crops are enlarged to reach, estimated from the body height. YuNet's
# smallest anchors are 10 px and it finds faces reliably from about 20 px; 32 px leaves room for
# bodies whose box is taller than the person (arms up, a bag) and so under-estimates the scale.
FACE_PX = 32.0
# Enlarging more only interpolates: a 6 px face at 5x is a blur the detector does not take for a
# face, and the quality model rates faces that small at chance anyway.
MAX_SCALE = 4.0
# Crops whose expected face is larger than this are shrunk to it: near people's big faces are
# found as well at this size, and at native size a few close-ups cost more pixels than the whole
# frame (1280x720 stage clip: 10.1 ms/frame for the crops at native size vs 6.7 for the frame
# at 640 px; edge_agent/evaluation/results/face_search.md).
LARGE_FACE_PX = 64.0
# The longest side a crop may reach once enlarged (the detector's default input width): more
# pixels than this cost detector time without finding faces the scale did not already reach.
MAX_SIDE = 640
# Margin around the upper body, in body widths: a head turned or leaning may stick out of the
# body box, and the detector needs some context around a face to find it. Below, a face whose
# centre is just inside the top share (and so belongs to the body) must still be whole in the
# crop: half a face, and a face is no wider than the body. Without it, on the Hamilton clip
# (people seen to the waist, faces a third of the box) the crops cut chins off and the face
# scores fell from 0.8-0.9 to 0.5-0.7.
SIDE_MARGIN = 0.15
TOP_MARGIN = 0.1
BOTTOM_MARGIN = 0.5


@dataclass(frozen=True)
class FaceCrop:
    """A region of the frame searched for faces: ``box`` (integer frame pixels, ``x1, y1`` in,
    ``x2, y2`` out), the ``size`` (w, h) it is resized to for the detector, and the bodies
    (indices) whose upper part it covers."""

    box: tuple[int, int, int, int]
    size: tuple[int, int]
    bodies: tuple[int, ...]

    @property
    def ratio(self) -> tuple[float, float]:
        """Detector pixels per frame pixel, per axis (the exact ratios the rounding made)."""
        x1, y1, x2, y2 = self.box
        return self.size[0] / (x2 - x1), self.size[1] / (y2 - y1)


def upper_regions(bodies: F32, region: float, width: int, height: int) -> F32:
    """The top ``region`` share of each body box, widened by the margins (in body widths),
    clipped to the frame."""
    if len(bodies) == 0:
        return np.zeros((0, 4), np.float32)
    bw = np.maximum(bodies[:, 2] - bodies[:, 0], 1.0)
    bh = np.maximum(bodies[:, 3] - bodies[:, 1], 1.0)
    out = np.stack(
        [
            bodies[:, 0] - SIDE_MARGIN * bw,
            bodies[:, 1] - TOP_MARGIN * bw,
            bodies[:, 2] + SIDE_MARGIN * bw,
            bodies[:, 1] + region * bh + BOTTOM_MARGIN * bw,
        ],
        axis=1,
    )
    np.clip(out[:, 0::2], 0.0, float(width), out=out[:, 0::2])
    np.clip(out[:, 1::2], 0.0, float(height), out=out[:, 1::2])
    return out.astype(np.float32)


def _overlap(a: F32, b: F32) -> bool:
    return bool(a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3])


def _merge(regions: F32) -> list[tuple[F32, list[int]]]:
    """Overlapping regions joined into their bounding box, until no two overlap (a union may
    reach a region neither part touched, hence the repeat)."""
    groups: list[tuple[F32, list[int]]] = [(r.copy(), [i]) for i, r in enumerate(regions)]
    merged = True
    while merged:
        merged = False
        for i in range(len(groups)):
            for j in range(i + 1, len(groups)):
                if _overlap(groups[i][0], groups[j][0]):
                    (a, ia), (b, ib) = groups[i], groups[j]
                    box = np.concatenate([np.minimum(a[:2], b[:2]), np.maximum(a[2:], b[2:])])
                    groups[i] = (box, ia + ib)
                    del groups[j]
                    merged = True
                    break
            if merged:
                break
    return groups


def plan_crops(bodies: F32, region: float, width: int, height: int) -> list[FaceCrop]:
    """The crops to search for the faces of ``bodies`` in a ``width`` x ``height`` frame.

    A crop is enlarged so the smallest body's expected face reaches ``FACE_PX`` (at most
    ``MAX_SCALE``), shrunk when that face would be larger than ``LARGE_FACE_PX``, and kept
    within ``MAX_SIDE``. Regions left with no area
    (a body entirely outside the frame) give no crop.
    """
    crops = []
    bh = np.maximum(bodies[:, 3] - bodies[:, 1], 1.0) if len(bodies) else np.zeros(0)
    for box, members in _merge(upper_regions(bodies, region, width, height)):
        x1, y1 = int(np.floor(box[0])), int(np.floor(box[1]))
        x2, y2 = int(np.ceil(box[2])), int(np.ceil(box[3]))
        x2, y2 = min(x2, width), min(y2, height)
        if x2 - x1 < 1 or y2 - y1 < 1:
            continue
        face = HEAD_SHARE * float(bh[members].min())
        scale = min(max(FACE_PX / face, 1.0), LARGE_FACE_PX / face, MAX_SCALE)
        # A crop wider than MAX_SIDE is shrunk to it, as the detector would shrink a frame.
        scale = min(scale, MAX_SIDE / max(x2 - x1, y2 - y1))
        size = (max(1, round((x2 - x1) * scale)), max(1, round((y2 - y1) * scale)))
        crops.append(FaceCrop((x1, y1, x2, y2), size, tuple(sorted(members))))
    return crops


def to_frame(found: Detections, crop: FaceCrop, width: int, height: int) -> Detections:
    """Faces found on the resized crop, in frame pixels (clipped to the frame)."""
    if len(found) == 0:
        return Detections.empty()
    rx, ry = crop.ratio
    scale = np.array([1.0 / rx, 1.0 / ry], np.float32)
    offset = np.array(crop.box[:2], np.float32)
    boxes = (found.boxes.reshape(-1, 2, 2) * scale + offset).reshape(-1, 4)
    landmarks = found.landmarks * scale + offset  # NaN (no landmarks) stays NaN
    return Detections(
        boxes.astype(np.float32), found.scores.copy(), landmarks.astype(np.float32)
    ).clipped(width, height)


def crop_pixels(frame: U8, crop: FaceCrop) -> U8:
    """The crop's pixels at its detector size (bilinear to enlarge, area averaging to shrink)."""
    x1, y1, x2, y2 = crop.box
    part = frame[y1:y2, x1:x2]
    if part.shape[1] == crop.size[0] and part.shape[0] == crop.size[1]:
        return np.ascontiguousarray(part)
    shrink = crop.size[0] < part.shape[1]
    method = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return np.asarray(cv2.resize(part, crop.size, interpolation=method), np.uint8)


def find_faces(
    search: FaceSearch, detector: FaceDetector, frame: U8, bodies: F32, region: float
) -> tuple[Detections, list[int | None]]:
    """The faces of ``frame`` (frame pixels) and, per body, the index of its face or None."""
    if search is FaceSearch.FRAME:
        faces = detector.detect(frame)
        return faces, assign_faces(bodies, faces.boxes, region)
    height, width = frame.shape[:2]
    face_of: list[int | None] = [None] * len(bodies)
    parts: list[Detections] = []
    count = 0
    for crop in plan_crops(bodies, region, width, height):
        found = to_frame(detector.detect(crop_pixels(frame, crop)), crop, width, height)
        if len(found) == 0:
            continue
        members = list(crop.bodies)
        for body, face in zip(
            members, assign_faces(bodies[members], found.boxes, region), strict=True
        ):
            if face is not None:
                face_of[body] = count + face
        parts.append(found)
        count += len(found)
    if not parts:
        return Detections.empty(), face_of
    return (
        Detections(
            np.concatenate([p.boxes for p in parts]),
            np.concatenate([p.scores for p in parts]),
            np.concatenate([p.landmarks for p in parts]),
        ),
        face_of,
    )
