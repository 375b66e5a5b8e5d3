"""The words of the contract: genders, the 8 age groups, directions and sides."""

from enum import StrEnum


class Gender(StrEnum):
    FEMALE = "female"
    MALE = "male"
    UNKNOWN = "unknown"


class AgeGroup(StrEnum):
    """The 8 age groups of the original (Adience) design, plus ``unknown``.

    The groups have gaps (3, 7, 13-14, ...) inherited from Adience; a continuous age maps to the
    nearest group with :func:`age_group_for_years`.
    """

    G0_2 = "0-2"
    G4_6 = "4-6"
    G8_12 = "8-12"
    G15_20 = "15-20"
    G25_32 = "25-32"
    G38_43 = "38-43"
    G48_53 = "48-53"
    G60_100 = "60-100"
    UNKNOWN = "unknown"


AGE_GROUPS: tuple[AgeGroup, ...] = tuple(g for g in AgeGroup if g is not AgeGroup.UNKNOWN)
"""The 8 real groups, youngest first (``unknown`` excluded)."""

# Upper bounds (exclusive) of the nearest-group mapping: <3 -> 0-2, 3-7 -> 4-6, 8-13 -> 8-12,
# 14-22 -> 15-20, 23-34 -> 25-32, 35-45 -> 38-43, 46-56 -> 48-53, >=57 -> 60-100.
_GROUP_UPPER_BOUNDS: tuple[float, ...] = (3.0, 8.0, 14.0, 23.0, 35.0, 46.0, 57.0)


def age_group_for_years(years: float) -> AgeGroup:
    """Map an age in years to the nearest of the 8 groups."""
    if years < 0:
        raise ValueError(f"age must be >= 0 years, got {years}")
    for group, upper in zip(AGE_GROUPS, _GROUP_UPPER_BOUNDS, strict=False):
        if years < upper:
            return group
    return AgeGroup.G60_100


def age_group_index(group: AgeGroup) -> int:
    """Position of a real group in :data:`AGE_GROUPS` (0 = youngest)."""
    return AGE_GROUPS.index(group)


class Direction(StrEnum):
    """How a person moved relative to the spot's counting line."""

    IN = "in"
    OUT = "out"
    PASSED = "passed"  # seen, but never crossed the line


class Side(StrEnum):
    """Where a track entered or left the picture: a frame edge, or ``middle`` when it appeared or
    vanished away from every edge (a face turned away, an occlusion)."""

    LEFT = "left"
    RIGHT = "right"
    TOP = "top"
    BOTTOM = "bottom"
    MIDDLE = "middle"


class AgentState(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class SourceState(StrEnum):
    """What the agent's video source is doing, as its heartbeat reports it."""

    STARTING = "starting"  # opened (or being opened), no frame read yet
    DELIVERING = "delivering"  # frames arrive
    RECONNECTING = "reconnecting"  # cannot be opened or stopped delivering; reopened with backoff
    ENDED = "ended"  # a recorded clip read to its end, or the capture stopped


class ModelRole(StrEnum):
    DETECTOR = "detector"
    GENDER = "gender"
    AGE = "age"
