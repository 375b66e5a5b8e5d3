"""How the workbook words its numbers: shares with their interval in one text, footage spans,
rates or the counts that stand in for them, and how a spot's age mix was reached."""

from aggregator.report.summary import MIN_AGE_ESTIMATE, MIN_RATE_HOURS, SpotSummary


def percent(share: float) -> str:
    return f"{share * 100:.0f} %"


def share_text(share: float | None, interval: tuple[float, float] | None) -> str:
    """``"58 % (47-68 %)"``; ``"-"`` when nobody was judged."""
    if share is None:
        return "-"
    if interval is None:
        return percent(share)
    low, high = interval
    return f"{percent(share)} ({low * 100:.0f}-{high * 100:.0f} %)"


def share_lines(share: float | None, interval: tuple[float, float] | None) -> str:
    """:func:`share_text` with the interval on a line of its own (``"58 %\n(47-68 %)"``), for a
    narrow column: wrapped by the reader, it would break inside the interval."""
    return share_text(share, interval).replace(" (", "\n(", 1)


def footage_text(hours: float | None) -> str:
    """A covered span as a reader says it: ``"9 s"``, ``"12 min"``, ``"3.5 h"``."""
    if hours is None:
        return "n/a"
    seconds = hours * 3600
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if hours < 48:
        return f"{hours:.1f} h"
    return f"{hours / 24:.1f} days"


def rate_text(s: SpotSummary) -> str | float:
    """People per covered hour where the rate rule allows one, else what was actually seen."""
    if s.people_per_hour is not None:
        return s.people_per_hour
    if s.coverage_hours is None:
        return "n/a (no coverage known)"
    return f"{s.people} people in {footage_text(s.coverage_hours)} of footage"


def rate_rule() -> str:
    return (
        f"People per hour are shown only for spots with at least {footage_text(MIN_RATE_HOURS)} "
        "of footage; a rate from a shorter span is mostly chance (one group walking past doubles "
        "it), so those spots show the people seen in their footage instead."
    )


def judged_text(known: int, people: int) -> str:
    return f"{known} of {people}" if people else "-"


def age_judged_text(s: SpotSummary) -> str:
    """``"45 of 50"``, and ``", counted"`` after it when the age mix has no interval."""
    text = judged_text(s.age_known, s.people)
    return f"{text}, counted" if s.age_known and not s.age_estimated else text


def age_method_text(s: SpotSummary) -> str:
    """Why a spot's age shares do or do not carry an interval, in a few words."""
    if not s.age_known:
        return "nobody's age judged"
    if s.age_estimated:
        return "estimated"
    if s.age_known < MIN_AGE_ESTIMATE:
        return f"counted: under {MIN_AGE_ESTIMATE} judged"
    return "counted: no calibration"
