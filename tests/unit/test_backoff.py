"""Reconnect and retry delays: exponential, capped, jittered, reset on success."""

import random

import pytest

from edge_agent.delivery.backoff import Backoff


def test_delays_double_up_to_the_cap_and_stay_in_the_upper_half_of_each_step() -> None:
    backoff = Backoff(1.0, 10.0, rng=random.Random(1))
    steps = [1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
    for step in steps:
        assert step / 2 <= backoff.next_delay() <= step
    assert backoff.attempts == len(steps)


def test_reset_starts_again_from_the_minimum() -> None:
    backoff = Backoff(0.5, 60.0, rng=random.Random(2))
    for _ in range(20):
        backoff.next_delay()
    backoff.reset()
    assert 0.25 <= backoff.next_delay() <= 0.5


def test_jitter_spreads_a_fleet() -> None:
    delays = {
        round(Backoff(1.0, 60.0, rng=random.Random(seed)).next_delay(), 6) for seed in range(50)
    }
    assert len(delays) == 50


def test_a_very_long_outage_does_not_overflow() -> None:
    backoff = Backoff(1.0, 30.0, rng=random.Random(3))
    backoff.attempts = 10_000
    assert 15.0 <= backoff.next_delay() <= 30.0


@pytest.mark.parametrize(
    ("low", "high", "message"),
    [(0.0, 1.0, "min_seconds must be > 0, got 0.0"), (2.0, 1.0, "max_seconds must be >= min")],
)
def test_bad_arguments_are_named(low: float, high: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Backoff(low, high)
