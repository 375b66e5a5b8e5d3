"""Which recorded clips to process, and where and when each was filmed.

A clips file is TOML (one ``[[clip]]`` table per clip) or CSV (header ``path,site,spot,start``
and optionally ``agent``); relative paths are relative to the file::

    [[clip]]
    path = "videos/north-0900.mp4"
    site = "berlin-mitte"
    spot = "corner-north"
    start = 2026-05-01T09:00:00+02:00   # when the first frame was filmed; needs a time zone
    agent = "cam-north"                  # optional
    config = "far-camera.toml"           # optional: agent configuration for this clip only
"""

import csv
import tomllib
from datetime import datetime
from pathlib import Path

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from footfall.contract.types import EARLIEST_TIMESTAMP, END_OF_TIMESTAMPS, timestamp_window_text
from footfall.ids import SafeId

_EXAMPLE = "e.g. 2026-05-01T09:00:00+02:00 or 2026-05-01T07:00:00Z"


class ClipSpecError(Exception):
    """Clips that cannot be used; one line per problem, each naming the clip and field."""


class ClipSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path = Field(description="Video file")
    site: SafeId = Field(description="Site the clip was filmed at")
    spot: SafeId = Field(description="Spot (camera position) within the site")
    start: AwareDatetime = Field(description="When the first frame was filmed (with time zone)")
    agent: SafeId | None = Field(default=None, description="Agent id for its events")
    config: Path | None = Field(
        default=None,
        description="Agent configuration (TOML) for this clip only, e.g. a wider detection "
        "resolution for a camera that sees faces from far away",
    )

    @field_validator("start", mode="before")
    @classmethod
    def _iso_with_zone(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value.strip())
            except ValueError:
                raise ValueError(f"{value!r} is not an ISO 8601 time ({_EXAMPLE})") from None
        if isinstance(value, datetime) and value.utcoffset() is None:
            raise ValueError(f"needs a time zone ({_EXAMPLE})")
        return value

    @field_validator("start")
    @classmethod
    def _within_event_times(cls, value: datetime) -> datetime:
        # Every event of the clip is stamped from here on; say so now rather than after the
        # pipeline has run (the clip's length is checked when it is opened).
        if not EARLIEST_TIMESTAMP <= value < END_OF_TIMESTAMPS:
            raise ValueError(f"must be within {timestamp_window_text()}")
        return value


def _errors(where: str, exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors(include_url=False):
        field = ".".join(str(p) for p in err["loc"]) or "(clip)"
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown key"
        out.append(f"{where}: {field}: {message}")
    return out


def parse_clips(entries: list[dict[str, object]], where: str, base: Path | None) -> list[ClipSpec]:
    clips, problems = [], []
    for number, entry in enumerate(entries, start=1):
        try:
            clip = ClipSpec.model_validate(entry)
        except ValidationError as exc:
            problems += _errors(f"{where}: clip {number}", exc)
            continue
        if base is not None and not clip.path.is_absolute():
            clip = clip.model_copy(update={"path": base / clip.path})
        if base is not None and clip.config is not None and not clip.config.is_absolute():
            clip = clip.model_copy(update={"config": base / clip.config})
        clips.append(clip)
    if problems:
        raise ClipSpecError("\n".join(problems))
    return clips


def load_clips_file(path: Path) -> list[ClipSpec]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ClipSpecError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ClipSpecError(f"{path}: not UTF-8 text") from None
    entries: list[dict[str, object]]
    if path.suffix.lower() == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
        entries = [
            {k.strip(): v.strip() for k, v in row.items() if v and v.strip()} for row in rows
        ]
    else:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ClipSpecError(f"{path}: not valid TOML: {exc}") from None
        unknown = sorted(set(data) - {"clip"})
        if unknown:
            raise ClipSpecError(f"{path}: unknown keys {unknown}; list clips as [[clip]] tables")
        entries = list(data.get("clip", []))
    if not entries:
        raise ClipSpecError(f"{path}: lists no clips")
    return parse_clips(entries, str(path), path.parent)


def clips_from_options(
    paths: list[Path], sites: list[str], spots: list[str], starts: list[str], agent: str | None
) -> list[ClipSpec]:
    """Clips from repeated ``--clip/--site/--spot/--start`` options: each of site, spot and
    start is given once (for every clip) or once per clip, in the same order."""
    n = len(paths)
    problems = []
    for name, values in (("--site", sites), ("--spot", spots), ("--start", starts)):
        if len(values) not in (1, n):
            problems.append(
                f"{name} given {len(values)} times for {n} clips: give it once, or once per clip"
            )
    if problems:
        raise ClipSpecError("\n".join(problems))

    def pick(values: list[str], i: int) -> str:
        return values[0] if len(values) == 1 else values[i]

    entries: list[dict[str, object]] = []
    for i, path in enumerate(paths):
        entry: dict[str, object] = {
            "path": path,
            "site": pick(sites, i),
            "spot": pick(spots, i),
            "start": pick(starts, i),  # ISO 8601 text; validation parses it
        }
        if agent is not None:
            entry["agent"] = agent
        entries.append(entry)
    return parse_clips(entries, "--clip", None)
