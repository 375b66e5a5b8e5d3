"""Well-formed example records, for documentation, tests and benchmarks that need many events."""

import random
import uuid
from datetime import UTC, datetime, timedelta

from footfall import __version__
from footfall.contract.events import (
    SCHEMA_VERSION,
    AgeEstimate,
    CropRef,
    FaceInfo,
    GenderEstimate,
    ModelRef,
    PersonEvent,
)
from footfall.contract.status import AgentStats, AgentStatus
from footfall.contract.vocab import (
    AGE_GROUPS,
    AgeGroup,
    AgentState,
    Direction,
    Gender,
    ModelRole,
    Side,
    age_group_for_years,
)

EXAMPLE_MODELS = (
    ModelRef(role=ModelRole.DETECTOR, name="yunet", version="2023mar"),
    ModelRef(role=ModelRole.GENDER, name="cydral-gender", version="1"),
    ModelRef(role=ModelRole.AGE, name="cydral-age", version="1"),
)


def _group_probabilities(years: float) -> dict[AgeGroup, float]:
    center = AGE_GROUPS.index(age_group_for_years(years))
    weights = [0.5 ** abs(i - center) for i in range(len(AGE_GROUPS))]
    total = sum(weights)
    return {g: w / total for g, w in zip(AGE_GROUPS, weights, strict=True)}


def example_event(
    *,
    site: str = "site-a",
    spot: str = "spot-1",
    agent: str = "agent-1",
    track_id: int = 1,
    first_seen: datetime | None = None,
    dwell_seconds: float = 4.2,
    direction: Direction = Direction.IN,
    gender: Gender = Gender.FEMALE,
    age_years: float | None = 29.5,
    with_crop: bool = True,
    event_id: uuid.UUID | None = None,
) -> PersonEvent:
    """A valid event; every argument can be varied independently."""
    first = first_seen or datetime(2026, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)
    eid = event_id or uuid.uuid4()
    if age_years is None:
        age = AgeEstimate(group=AgeGroup.UNKNOWN, years=None, group_probabilities=None)
    else:
        age = AgeEstimate(
            group=age_group_for_years(age_years),
            years=age_years,
            group_probabilities=_group_probabilities(age_years),
        )
    known = gender is not Gender.UNKNOWN
    crop = None
    if with_crop:
        crop = CropRef(
            key=f"{site}/{spot}/{first:%Y-%m-%d}/{eid}.jpg",
            sha256="0" * 64,
            size_bytes=5120,
        )
    return PersonEvent(
        schema_version=SCHEMA_VERSION,
        event_id=eid,
        site=site,
        spot=spot,
        agent=agent,
        track_id=track_id,
        first_seen=first,
        last_seen=first + timedelta(seconds=dwell_seconds),
        dwell_seconds=dwell_seconds,
        direction=direction,
        entry_side=Side.LEFT,
        exit_side=Side.RIGHT,
        gender=GenderEstimate(label=gender, confidence=0.93 if known else None),
        age=age,
        face=FaceInfo(quality=0.81 if known else None, samples=5 if known else 0),
        crop=crop,
        models=list(EXAMPLE_MODELS),
    )


def random_events(
    n: int,
    *,
    rng: random.Random,
    site: str = "site-a",
    spots: tuple[str, ...] = ("spot-1",),
    start: datetime | None = None,
    span_hours: float = 24.0,
) -> list[PersonEvent]:
    """``n`` plausible events spread over ``span_hours`` from ``start``, reproducible from ``rng``."""
    start = start or datetime(2026, 5, 1, 0, 0, tzinfo=UTC)
    out = []
    for i in range(n):
        roll = rng.random()
        gender = Gender.FEMALE if roll < 0.45 else Gender.MALE if roll < 0.9 else Gender.UNKNOWN
        out.append(
            example_event(
                site=site,
                spot=spots[i % len(spots)],
                agent=f"agent-{spots[i % len(spots)]}"[:32],
                track_id=i,
                first_seen=start + timedelta(seconds=rng.uniform(0, span_hours * 3600)),
                dwell_seconds=round(rng.uniform(0.5, 30.0), 3),
                direction=rng.choice(list(Direction)),
                gender=gender,
                age_years=None if gender is Gender.UNKNOWN else round(rng.uniform(1, 85), 1),
                event_id=uuid.UUID(int=rng.getrandbits(128), version=4),
            )
        )
    return out


def example_status(
    *,
    site: str = "site-a",
    spot: str = "spot-1",
    agent: str = "agent-1",
    state: AgentState = AgentState.ONLINE,
    sent_at: datetime | None = None,
) -> AgentStatus:
    now = sent_at or datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    return AgentStatus(
        schema_version=SCHEMA_VERSION,
        site=site,
        spot=spot,
        agent=agent,
        state=state,
        sent_at=now,
        software_version=__version__,
        config_version="1",
        models=list(EXAMPLE_MODELS),
        stats=AgentStats(
            started_at=now - timedelta(hours=1),
            uptime_seconds=3600.0,
            frames_in=90000,
            frames_processed=89990,
            frames_dropped=10,
            fps=24.9,
            events_emitted=120,
            events_sent=118,
            outbox_depth=2,
            crops_pending=1,
            crops_dropped=0,
            source_reconnects=0,
        ),
    )
