"""How the workbook words its numbers: shares with their interval in one text, footage spans,
rates or the counts that stand in for them."""

from aggregator.report.summary import MIN_RATE_HOURS, SpotSummary


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
