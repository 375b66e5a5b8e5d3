"""The ByteTrack-style multi-object tracker (see the package docstring for how it works)."""

import itertools
import logging
from collections.abc import Iterator

import numpy as np

from edge_agent.vision.appearance import (
    Descriptors,
    Metric,
    distance_matrix,
)
from edge_agent.vision.detection import Detections
from edge_agent.vision.settings import TrackerSettings
from edge_agent.vision.tracking.association import (
    NO_MATCH,
    appearance_distance,
    assign,
    reid_cost,
)
from edge_agent.vision.tracking.geometry import (
    F64,
    box_centre,
    box_height,
    cxcywh_to_xyxy,
    iou_matrix,
)
from edge_agent.vision.tracking.kalman import KalmanTrack
from edge_agent.vision.tracking.records import (
    EndedTrack,
    MatchedTracks,
    TrackerStep,
    TrackSnapshot,
)

log = logging.getLogger(__name__)


# The face size change allowed when a lost person comes back (perspective over a few seconds),
# and the slack of the walking-speed gate in face heights.
_RETURN_SIZE_RATIO = 1.6
_RETURN_SLACK = 1.0
# The appearance distance at which the tie-breaker adds its whole weight: about twice a typical
# stranger's (their median is 2.8 for bodies, python -m edge_agent.evaluation.body_looks). On the
# real clips 2.5, 5 and 10 measured within one ID switch of each other.
_CLEAR_DIFFERENCE = 5.0


class ByteTracker:
    """Multi-face tracker. ``update`` on frames that were run through the detector, ``tick`` on
    the frames in between, ``finish`` at the end of the stream."""

    def __init__(
        self,
        *,
        max_absence_seconds: float = 5.0,
        high_score: float = 0.7,
        low_score: float = 0.5,
        match_iou: float = 0.25,
        low_match_iou: float = 0.5,
        reid_max_distance: float = 4.0,
        min_hits: int = 3,
        confirm_within_seconds: float = 1.0,
        max_tracks: int = 256,
        appearance_reid: bool = True,
        appearance_max_distance: float = 1.0,
        appearance_veto_distance: float = 2.5,
        appearance_weight: float = 0.0,
        motion_veto_distance: float = 10.0,
        reid_max_speed: float = 6.0,
        track_ids: Iterator[int] | None = None,
    ) -> None:
        if not max_absence_seconds > 0:
            raise ValueError(f"max_absence_seconds must be > 0, got {max_absence_seconds}")
        if not 0 <= low_score <= high_score <= 1:
            raise ValueError(
                f"need 0 <= low_score <= high_score <= 1, got {low_score} and {high_score}"
            )
        for name, value in (("match_iou", match_iou), ("low_match_iou", low_match_iou)):
            if not 0 < value <= 1:
                raise ValueError(f"{name} must be within (0, 1], got {value}")
        if reid_max_distance < 0:
            raise ValueError(f"reid_max_distance must be >= 0, got {reid_max_distance}")
        if min_hits < 1:
            raise ValueError(f"min_hits must be >= 1, got {min_hits}")
        if not confirm_within_seconds > 0:
            raise ValueError(f"confirm_within_seconds must be > 0, got {confirm_within_seconds}")
        if max_tracks < 1:
            raise ValueError(f"max_tracks must be >= 1, got {max_tracks}")
        for name, value in (
            ("appearance_max_distance", appearance_max_distance),
            ("appearance_veto_distance", appearance_veto_distance),
            ("appearance_weight", appearance_weight),
            ("motion_veto_distance", motion_veto_distance),
            ("reid_max_speed", reid_max_speed),
        ):
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        self.max_absence = max_absence_seconds
        self.high_score = high_score
        self.low_score = low_score
        self.match_iou = match_iou
        self.low_match_iou = low_match_iou
        self.reid_max_distance = reid_max_distance
        self.min_hits = min_hits
        self.confirm_within = confirm_within_seconds
        self.max_tracks = max_tracks
        self.appearance_reid = appearance_reid
        self.appearance_max_distance = appearance_max_distance
        self.appearance_veto_distance = appearance_veto_distance
        self.appearance_weight = appearance_weight
        self.motion_veto_distance = motion_veto_distance
        self.reid_max_speed = reid_max_speed
        self._ids = track_ids if track_ids is not None else itertools.count(1)
        self._tracks: list[KalmanTrack] = []
        self._now: float | None = None
        self._last_update: float | None = None
        self._metric: Metric | None = None  # how the descriptors fed so far compare

    @classmethod
    def from_settings(
        cls, settings: TrackerSettings, track_ids: Iterator[int] | None = None
    ) -> "ByteTracker":
        return cls(
            max_absence_seconds=settings.max_absence_seconds,
            high_score=settings.high_score,
            low_score=settings.low_score,
            match_iou=settings.match_iou,
            low_match_iou=settings.low_match_iou,
            reid_max_distance=settings.reid_max_distance,
            min_hits=settings.min_hits,
            confirm_within_seconds=settings.confirm_within_seconds,
            max_tracks=settings.max_tracks,
            appearance_reid=settings.appearance_reid,
            appearance_max_distance=settings.appearance_max_distance,
            appearance_veto_distance=settings.appearance_veto_distance,
            appearance_weight=settings.appearance_weight,
            motion_veto_distance=settings.motion_veto_distance,
            reid_max_speed=settings.reid_max_speed,
            track_ids=track_ids,
        )

    def __len__(self) -> int:
        return len(self._tracks)

    def configure(self, settings: TrackerSettings) -> None:
        """Take new thresholds between two frames (remote configuration); live tracks keep
        their state and are judged by the new values from the next frame on."""
        fresh = ByteTracker.from_settings(settings)  # the constructor's checks, nothing else
        self.max_absence = fresh.max_absence
        self.high_score = fresh.high_score
        self.low_score = fresh.low_score
        self.match_iou = fresh.match_iou
        self.low_match_iou = fresh.low_match_iou
        self.reid_max_distance = fresh.reid_max_distance
        self.min_hits = fresh.min_hits
        self.confirm_within = fresh.confirm_within
        self.max_tracks = fresh.max_tracks
        self.appearance_reid = fresh.appearance_reid
        self.appearance_max_distance = fresh.appearance_max_distance
        self.appearance_veto_distance = fresh.appearance_veto_distance
        self.motion_veto_distance = fresh.motion_veto_distance
        self.appearance_weight = fresh.appearance_weight
        self.reid_max_speed = fresh.reid_max_speed

    @property
    def wants_appearance(self) -> bool:
        return self.appearance_reid

    # -- time ------------------------------------------------------------------------------------

    def _advance(self, t: float) -> float:
        if self._now is not None and t < self._now:
            # A live clock stepped back (NTP): hold time still rather than run the filter backwards.
            log.debug("stream time went back by %.3f s; holding", self._now - t)
            t = self._now
        self._now = t
        return t

    def _retire(self, t: float) -> list[EndedTrack]:
        ended: list[KalmanTrack] = []
        kept: list[KalmanTrack] = []
        for track in self._tracks:
            if track.confirmed:
                over = t - track.last_seen > self.max_absence
            else:
                over = t - track.first_seen > self.confirm_within
                if over and track.hits >= self.min_hits:
                    # It waited to be seen well enough to tell whether it is someone coming
                    # back (see _returns); it never was: a new person.
                    track.confirmed, over = True, False
            (ended if over else kept).append(track)
        self._tracks = kept
        return [self._ended(track) for track in ended]

    @staticmethod
    def _ended(track: KalmanTrack) -> EndedTrack:
        return EndedTrack(
            track_id=track.id,
            confirmed=track.confirmed,
            first_seen=track.first_seen,
            last_seen=track.last_seen,
            hits=track.hits,
            first_box=track.first_box,
            last_box=track.last_box,
        )

    def tick(self, t: float) -> tuple[EndedTrack, ...]:
        """Advance to time ``t`` on a frame that was not run through the detector."""
        return tuple(self._retire(self._advance(t)))

    # -- association ----------------------------------------------------------------------------

    def update(
        self, detections: Detections, t: float, appearance: Descriptors | None = None
    ) -> TrackerStep:
        """Advance to ``t`` and take this frame's detections (and their descriptors, if any).

        1. high-score detections to tracks by overlap with their predicted box (1 - IoU):
           first to the tracks seen at the previous detector run, then to the others (lost
           ones: not if they look clearly different);
        2. high-score detections left over to tracks left over by the motion model alone (a
           face back after a gap, or moving further between detector runs than its size; again
           not if they look clearly different);
        3. low-score detections to tracks seen at the previous detector run, by clear overlap;
        4. high-score detections still left over start new (tentative) tracks;
        5. a tentative track about to be confirmed that looks like a person lost within the
           absence window, and could have walked here since, is that person back.
        """
        if appearance is not None and len(appearance) != len(detections):
            raise ValueError(f"{len(appearance)} descriptors for {len(detections)} detections")
        if not self.appearance_reid:
            appearance = None
        t = self._advance(t)
        ended = self._retire(t)
        tracks = self._tracks
        for track in tracks:
            track.predict(t)
        pred = (
            np.stack([track.box() for track in tracks]) if tracks else np.zeros((0, 4), np.float32)
        )
        scores, boxes = detections.scores, detections.boxes
        high = [int(d) for d in np.flatnonzero(scores >= self.high_score)]
        low = [
            int(d) for d in np.flatnonzero((scores >= self.low_score) & (scores < self.high_score))
        ]
        looks = appearance_distance(tracks, appearance)
        if appearance is not None:
            self._metric = appearance.metric

        matches: list[tuple[int, int]] = []  # (track index, detection index)
        free = list(range(len(tracks)))

        def take(pairs: list[tuple[int, int]], rows: list[int], cols: list[int]) -> None:
            for r, c in pairs:
                matches.append((rows[r], cols[c]))
            used_rows = {rows[r] for r, _ in pairs}
            used_cols = {cols[c] for _, c in pairs}
            free[:] = [i for i in free if i not in used_rows]
            for pool in (high, low):
                pool[:] = [d for d in pool if d not in used_cols]

        def veto(cost: F64, rows: list[int], cols: list[int], limit: float) -> F64:
            # NaN (too little seen to tell) never vetoes.
            if looks is None:
                return cost
            different = looks[np.ix_(rows, cols)] > limit
            return np.where(different, NO_MATCH, cost)

        # Tracks seen at the previous detector run choose first: a track lost for a while
        # coasts on its last velocity, and its box drifting over someone else's face must not
        # take that face from the track that has been following it.
        recent_first = [i for i in free if tracks[i].last_seen == self._last_update]
        # With appearance, someone who walked out of the picture comes back only by looking
        # like themselves (step 5): by position alone, whoever walks in where they left would
        # take their id.
        gone = (
            {i for i in free if i not in recent_first and tracks[i].walked_out()}
            if appearance is not None
            else set()
        )
        for group, check in (
            (recent_first, False),
            ([i for i in free if i not in recent_first and i not in gone], True),
        ):
            rows = [i for i in group if i in free]
            if high and rows:
                cols = list(high)
                iou = iou_matrix(pred[rows], boxes[cols])
                cost = 1.0 - iou
                if looks is not None and self.appearance_weight > 0:
                    cost = cost + self._tie_breaker(iou, looks[np.ix_(rows, cols)])
                cost = np.where(iou >= self.match_iou, cost, NO_MATCH)
                if check:
                    cost = veto(cost, rows, cols, self.appearance_veto_distance)
                take(assign(cost), rows, cols)
        if high and free and self.reid_max_distance > 0:
            rows, cols = [i for i in free if i not in gone], list(high)
            if rows:
                cost = reid_cost([tracks[i] for i in rows], boxes[cols], self.reid_max_distance)
                # Nothing overlaps here, so appearance is the only evidence besides the motion
                # model: it may be held to a stricter limit than lost tracks matched by overlap.
                limit = min(self.appearance_veto_distance, self.motion_veto_distance)
                take(assign(veto(cost, rows, cols, limit)), rows, cols)
        # Low-score detections are too unreliable to resume a lost track or start one.
        recent = [i for i in free if tracks[i].last_seen == self._last_update]
        if low and recent:
            iou = iou_matrix(pred[recent], boxes[low])
            take(
                assign(np.where(iou >= self.low_match_iou, 1.0 - iou, NO_MATCH)),
                recent,
                list(low),
            )

        confirming: list[KalmanTrack] = []
        for ti, di in matches:
            track = tracks[ti]
            track.update(boxes[di], t)
            if not track.confirmed and track.hits >= self.min_hits:
                confirming.append(track)
        new_tracks = [KalmanTrack(next(self._ids), boxes[d], t) for d in high]
        if self.min_hits <= 1:
            confirming += new_tracks
        pairs = [(tracks[ti], di) for ti, di in matches] + list(zip(new_tracks, high, strict=True))
        if appearance is not None:
            for track, di in pairs:
                track.edge = appearance.edge[di].copy()
                # Only clean looks count: a confident detection of a face wholly inside the
                # picture (parts hidden by others are already marked invalid).
                if scores[di] >= self.high_score and not appearance.clipped[di]:
                    track.observe_appearance(appearance.values[di], appearance.valid[di])
        self._tracks = tracks + new_tracks

        # id(new track) -> the lost track it turned out to be; and tracks that wait
        returned, waiting = self._returns(confirming, t) if appearance is not None else ({}, [])
        for track in confirming:
            if id(track) not in returned and id(track) not in waiting:
                track.confirmed = True
        if returned:
            for tentative in [tr for tr in self._tracks if id(tr) in returned]:
                ended.append(self._ended(tentative))  # unconfirmed: never a person
            self._tracks = [tr for tr in self._tracks if id(tr) not in returned]
            pairs = [(returned.get(id(tr), tr), di) for tr, di in pairs]
        ended += self._enforce_cap(t)
        self._last_update = t

        alive = {id(tr) for tr in self._tracks}
        pairs = [(tr, di) for tr, di in pairs if id(tr) in alive]
        matched = MatchedTracks(
            np.array([tr.id for tr, _ in pairs], np.int64),
            np.array([di for _, di in pairs], np.intp),
            np.array([tr.confirmed for tr, _ in pairs], bool),
        )
        return TrackerStep(matched=matched, ended=tuple(ended))

    def _tie_breaker(self, iou: F64, looks: F64) -> F64:
        """What appearance adds to the overlap cost ``1 - iou`` of tracks seen at the last
        detector run: where walkers cross, overlap alone swaps them as often as not, and how
        alike each pair looks (relative to a clear difference) breaks the tie.

        Only where there is a tie to break - a track that could take two detections, or a
        detection two tracks - and only where every pair in the tie has a known distance: a
        track whose look is unknown would otherwise lose to any track that merely looks
        somewhat alike (on TUD-Stadtmitte one walker's track took over another's that way)."""
        gated = iou >= self.match_iou
        tied = (gated.sum(axis=1, keepdims=True) > 1) | (gated.sum(axis=0, keepdims=True) > 1)
        unknown = gated & np.isnan(looks)
        blind = unknown.any(axis=1, keepdims=True) | unknown.any(axis=0, keepdims=True)
        scaled = np.clip(np.nan_to_num(looks) / _CLEAR_DIFFERENCE, 0.0, 1.0)
        return np.where(tied & ~blind, self.appearance_weight * scaled, 0.0)

    def _returns(
        self, confirming: list[KalmanTrack], t: float
    ) -> tuple[dict[int, KalmanTrack], set[int]]:
        """Which of the tracks about to be confirmed are people lost earlier coming back:
        ``{id(new track): lost track}``, the lost tracks already updated; and which must wait,
        ``{id(new track)}``: someone lost could be back here, but the new track has not been
        seen well enough yet to tell (a face still partly outside the picture, or behind
        someone). A waiting track is confirmed at the latest when ``confirm_within_seconds``
        is over (:meth:`_retire`)."""
        lost = [tr for tr in self._tracks if tr.confirmed and tr.last_seen < t]
        lost = [tr for tr in lost if tr.appearance_known]
        if not confirming or not lost:
            return {}, set()
        cost = distance_matrix(
            np.stack([tr.app for tr in lost]),
            np.stack([tr.app_valid for tr in lost]),
            np.stack([tr.app for tr in confirming]),
            np.stack([tr.app_valid for tr in confirming]),
            self._metric,
        )
        plausible = np.zeros(cost.shape, bool)
        for i, old in enumerate(lost):
            ox, oy = box_centre(old.last_box)
            oh = box_height(old.last_box)
            for j, new in enumerate(confirming):
                nx, ny = box_centre(new.first_box)
                gap = new.first_seen - old.last_seen
                reach = (self.reid_max_speed * max(gap, 0.0) + _RETURN_SLACK) * oh
                ratio = box_height(new.first_box) / oh
                plausible[i, j] = (
                    gap > 0  # both seen at once: two people
                    and np.hypot(nx - ox, ny - oy) <= reach
                    and 1 / _RETURN_SIZE_RATIO <= ratio <= _RETURN_SIZE_RATIO
                )
        cost = np.where(plausible & (cost <= self.appearance_max_distance), cost, NO_MATCH)
        returned: dict[int, KalmanTrack] = {}
        taken: set[int] = set()
        for i, j in assign(cost):
            old, new = lost[i], confirming[j]
            log.debug(
                "track %d back after %.1f s as %d (appearance distance %.2f)",
                old.id,
                new.first_seen - old.last_seen,
                new.id,
                cost[i, j],
            )
            old.take_over(new)
            returned[id(new)] = old
            taken.add(i)
        waiting = {
            id(new)
            for j, new in enumerate(confirming)
            if id(new) not in returned
            and not new.appearance_known
            and any(plausible[i, j] for i in range(len(lost)) if i not in taken)
        }
        return returned, waiting

    def _enforce_cap(self, t: float) -> list[EndedTrack]:
        if len(self._tracks) <= self.max_tracks:
            return []
        # Drop the tracks unseen the longest; ties go against unconfirmed ones.
        order = sorted(self._tracks, key=lambda tr: (tr.last_seen, tr.confirmed))
        excess = len(self._tracks) - self.max_tracks
        gone, self._tracks = order[:excess], order[excess:]
        log.warning("more than %d live tracks; ended %d early", self.max_tracks, excess)
        return [self._ended(track) for track in gone]

    def finish(self) -> tuple[EndedTrack, ...]:
        """End every track (end of stream)."""
        ended = tuple(self._ended(track) for track in self._tracks)
        self._tracks = []
        return ended

    def snapshot(self, t: float | None = None) -> TrackSnapshot:
        """Live tracks, their boxes predicted to ``t`` (default: now) without changing state."""
        t = self._now if t is None else t
        boxes = []
        for track in self._tracks:
            dt = max(0.0, (t or track.t) - track.t)
            boxes.append(cxcywh_to_xyxy(track.pos + dt * track.vel))
        return TrackSnapshot(
            track_ids=np.array([tr.id for tr in self._tracks], np.int64),
            boxes=np.stack(boxes) if boxes else np.zeros((0, 4), np.float32),
            confirmed=np.array([tr.confirmed for tr in self._tracks], bool),
            seen_now=np.array([tr.last_seen == self._now for tr in self._tracks], bool),
        )
