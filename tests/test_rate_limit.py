"""The client-side request budget, on a fake clock: no sleeping, every wait computed exactly."""

from __future__ import annotations

import bisect

import pytest

from shared.runtime.rate_limit import RequestBudget


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def budget(per_s: float, clock: FakeClock) -> RequestBudget:
    return RequestBudget(per_s, clock=clock, sleep=clock.sleep)


def most_in_any_second(times: list[float]) -> int:
    """Most requests in any window [t, t + 1 s)."""
    return max(bisect.bisect_left(times, t + 1.0) - i for i, t in enumerate(times))


def test_a_burst_gets_the_limit_at_once_then_waits_for_the_oldest_to_age_out() -> None:
    clock = FakeClock()
    limiter = budget(4, clock)
    assert [limiter.try_take() for _ in range(5)] == [True, True, True, True, False]
    assert limiter.wait_s() == pytest.approx(1.0)
    clock.now += 0.25
    assert limiter.wait_s() == pytest.approx(0.75)
    clock.now += 0.75
    assert limiter.try_take()


def test_a_refused_request_is_not_counted() -> None:
    clock = FakeClock()
    limiter = budget(1, clock)
    assert limiter.try_take()
    clock.now += 0.5
    assert not limiter.try_take()
    clock.now += 0.5
    assert limiter.try_take()


async def test_no_one_second_window_ever_holds_more_than_the_rate() -> None:
    """Unlike a token bucket, whose full bucket plus a second's refill would allow twice the rate."""
    clock = FakeClock()
    limiter = budget(40, clock)
    sent = []
    for _ in range(400):
        await limiter.take()
        sent.append(clock.now)
    assert most_in_any_second(sent) == 40
    # Ten windows of 40: the first 40 at once, each next 40 one second later; no slower than that either.
    assert sent[-1] - sent[0] == pytest.approx(9.0)
    assert all(wait > 0 for wait in clock.slept)


async def test_requests_spread_over_time_never_wait() -> None:
    clock = FakeClock()
    limiter = budget(40, clock)
    for _ in range(100):
        await limiter.take()
        clock.now += 0.03  # 33 a second
    assert clock.slept == []


def test_a_rate_under_one_per_second_stretches_the_window() -> None:
    clock = FakeClock()
    limiter = budget(0.5, clock)
    assert (limiter.limit, limiter.window_s) == (1, 2.0)
    assert limiter.try_take()
    assert limiter.wait_s() == pytest.approx(2.0)


def test_fractional_rates_keep_their_average() -> None:
    limiter = budget(13.5, FakeClock())
    assert limiter.limit == 13
    assert limiter.per_s == pytest.approx(13.5)


def test_lowering_the_rate_counts_requests_already_sent() -> None:
    clock = FakeClock()
    limiter = budget(40, clock)
    for _ in range(30):
        assert limiter.try_take()
    limiter.set_rate(20)  # another updater joined: the budget is now shared
    assert not limiter.try_take()
    assert limiter.wait_s() == pytest.approx(1.0)
    clock.now += 1.0
    assert limiter.try_take()


@pytest.mark.parametrize("rate", [0, -1, float("nan")])
def test_a_rate_must_be_positive(rate: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        RequestBudget(rate)
