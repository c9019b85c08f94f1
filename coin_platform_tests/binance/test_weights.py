"""The weight limiter on a controlled clock: it fills a window and waits for the next one."""

import pytest

from coin_platform.binance.weights import WINDOW_MS, WeightLimiter
from coin_platform_tests.clock import ControlledClock


def _limiter(clock: ControlledClock, limit: int = 100, fraction: float = 1.0) -> WeightLimiter:
    return WeightLimiter(limit, fraction, clock=clock, sleep=clock.sleep)


def test_fills_the_window_then_sleeps_to_the_next_minute():
    clock = ControlledClock(1_000_040.0)  # 20 s into a minute window
    limiter = _limiter(clock)
    for _ in range(10):
        limiter.acquire(10)
    assert clock.sleeps == []
    limiter.acquire(10)
    assert clock.sleeps == [pytest.approx(40.05)]
    assert int(clock.now * 1000) // WINDOW_MS == 1_000_040_000 // WINDOW_MS + 1


def test_budget_is_a_fraction_of_the_published_limit():
    clock = ControlledClock(600.0)
    limiter = _limiter(clock, limit=2400, fraction=0.95)
    assert limiter.budget == 2280
    for _ in range(228):
        limiter.acquire(10)
    assert clock.sleeps == []
    limiter.acquire(1)
    assert len(clock.sleeps) == 1


def test_the_exchanges_count_wins_when_other_clients_share_the_ip():
    clock = ControlledClock(600.0)
    limiter = _limiter(clock)
    window = limiter.acquire(10)
    limiter.observe("95", window)  # another process used weight too
    limiter.acquire(5)
    assert clock.sleeps == []
    limiter.acquire(1)
    assert len(clock.sleeps) == 1
    limiter.observe("not-a-number", window)  # ignored, not fatal


def test_a_late_answer_from_the_previous_window_does_not_fill_the_new_one():
    clock = ControlledClock(659.9)
    limiter = _limiter(clock)
    window = limiter.acquire(10)
    clock.now = 660.1  # the answer arrives after the minute turned
    limiter.observe("100", window)
    limiter.acquire(50)
    assert clock.sleeps == []


def test_a_429_honours_retry_after_and_slows_the_client_down():
    clock = ControlledClock(630.0)
    limiter = _limiter(clock, limit=1000, fraction=1.0)
    assert limiter.back_off(retry_after_s=7.0) == 7.0
    assert limiter.fraction == pytest.approx(0.9)
    limiter.acquire(1)
    assert clock.sleeps == []  # the exchange said when; the window is not written off


def test_a_429_without_retry_after_spends_the_window():
    clock = ControlledClock(630.0)
    limiter = _limiter(clock, limit=1000, fraction=1.0)
    assert limiter.back_off(retry_after_s=None) == pytest.approx(30.05)
    limiter.acquire(1)
    assert clock.sleeps == [pytest.approx(30.05)]


def test_disabled_limiter_never_waits_and_impossible_weights_are_refused():
    clock = ControlledClock(0.0)
    limiter = WeightLimiter(10, 1.0, enabled=False, clock=clock, sleep=clock.sleep)
    for _ in range(100):
        limiter.acquire(10)
    assert clock.sleeps == []
    with pytest.raises(ValueError, match="can never fit"):
        _limiter(ControlledClock(0.0), limit=5).acquire(10)
    with pytest.raises(ValueError, match="invalid weight budget"):
        WeightLimiter(0)


def test_a_limit_of_its_own_fills_its_own_longer_window():
    clock = ControlledClock(1_200_030.0)  # 30 s into a 5-minute window
    limiter = _limiter(clock, limit=100)
    five_minutes = limiter.sibling(limit=3, window_ms=5 * WINDOW_MS)
    for _ in range(3):
        five_minutes.acquire(1)
    assert clock.sleeps == []
    five_minutes.acquire(1)
    assert clock.sleeps == [pytest.approx(270.05)]  # to the next 5-minute window, not the next minute
    assert five_minutes.back_off(retry_after_s=None) == pytest.approx(300.0)  # a 429 spends the rest of it


def test_a_sibling_follows_the_exchange_clock_and_the_switch():
    clock = ControlledClock(1_200_030.0)
    limiter = _limiter(clock, fraction=0.5)
    limiter.server_offset_ms = 240_000  # the exchange is 4 minutes ahead: 30 s before its next window
    five_minutes = limiter.sibling(limit=2, window_ms=5 * WINDOW_MS)
    assert five_minutes.budget == 1  # the same share of its limit
    five_minutes.acquire(1)
    five_minutes.acquire(1)
    assert clock.sleeps == [pytest.approx(30.05)]
    disabled = WeightLimiter(10, 1.0, enabled=False, clock=clock, sleep=clock.sleep).sibling(1, WINDOW_MS)
    for _ in range(5):
        disabled.acquire(1)
    assert clock.sleeps == [pytest.approx(30.05)]
