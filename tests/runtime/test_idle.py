"""The idle policy with an injected clock: plain numbers, no sleeping."""

from __future__ import annotations

from functools import partial

import pytest

from spaceyard_runtime.idle import (
    effective_deep_sleep_after,
    effective_sleep_time,
    next_check,
    should_deep_sleep,
    should_sleep,
    sleep_at,
)

HOUR = 3600
DEFAULT = 48 * HOUR


def sleeps(now: float, last: float, sleep_time: int | None, stage: str = "RUNNING") -> bool:
    return should_sleep(now=now, last_activity=last, sleep_time=sleep_time, default_sleep_time=DEFAULT, stage=stage)


def test_effective_sleep_time() -> None:
    assert effective_sleep_time(None, DEFAULT) == DEFAULT
    assert effective_sleep_time(300, DEFAULT) == 300
    assert effective_sleep_time(-1, DEFAULT) is None
    assert effective_sleep_time(None, -1) is None  # the platform default can be "never" too
    assert effective_sleep_time(0, DEFAULT) == 0


def test_sleeps_once_idle_for_its_own_sleep_time() -> None:
    last = 1_000.0
    assert not sleeps(last + 299.9, last, 300)
    assert sleeps(last + 300, last, 300)
    assert sleeps(last + 10 * HOUR, last, 300)


def test_default_sleep_time_applies_when_unset() -> None:
    last = 5.0
    assert not sleeps(last + DEFAULT - 1, last, None)
    assert sleeps(last + DEFAULT, last, None)


def test_minus_one_never_sleeps() -> None:
    assert not sleeps(10**12, 0.0, -1)
    assert not should_sleep(now=10**12, last_activity=0.0, sleep_time=None, default_sleep_time=-1, stage="RUNNING")


@pytest.mark.parametrize(
    "stage",
    # the Hub's stages that are not serving, and AppState values, which are not stages at all
    ["SCHEDULING", "STARTING", "BUILDING", "APP_STARTING", "RUNTIME_ERROR", "BUILD_ERROR", "SLEEPING", "PAUSED"]
    + ["running", "pending"],
)
def test_only_serving_spaces_sleep(stage: str) -> None:
    assert not sleeps(10 * DEFAULT, 0.0, 300, stage)
    assert sleep_at(last_activity=0.0, sleep_time=300, default_sleep_time=DEFAULT, stage=stage) is None


@pytest.mark.parametrize("stage", ["RUNNING", "RUNNING_BUILDING"])
def test_running_spaces_sleep(stage: str) -> None:
    assert sleeps(300.0, 0.0, 300, stage)


def test_activity_resets_the_clock_and_future_activity_never_sleeps() -> None:
    clock = 0.0
    last = clock
    clock += 250
    last = clock  # a request
    clock += 250
    assert not sleeps(clock, last, 300)
    clock += 50
    assert sleeps(clock, last, 300)
    assert not sleeps(100.0, 200.0, 0)  # last activity after "now": skewed clock


def test_next_check() -> None:
    running = partial(next_check, sleep_time=300, default_sleep_time=DEFAULT, stage="RUNNING")
    assert running(now=100.0, last_activity=0.0) == 60.0  # capped by max_interval
    assert running(now=100.0, last_activity=0.0, max_interval=1000) == 200.0
    assert running(now=300.0, last_activity=0.0) == 0.0
    assert running(now=900.0, last_activity=0.0) == 0.0
    assert next_check(now=0.0, last_activity=0.0, sleep_time=-1, default_sleep_time=DEFAULT, stage="RUNNING") == 60.0
    assert next_check(now=0.0, last_activity=0.0, sleep_time=1, default_sleep_time=DEFAULT, stage="SCHEDULING") == 60.0


def test_open_requests_hold_a_space_awake_up_to_the_busy_maximum() -> None:
    base = partial(should_sleep, last_activity=0.0, sleep_time=10, default_sleep_time=100, stage="RUNNING")
    assert base(now=11.0)
    assert not base(now=11.0, in_flight=1, busy_max=60.0)
    assert not base(now=69.0, in_flight=2, busy_max=60.0)
    assert base(now=70.0, in_flight=1, busy_max=60.0)


def test_deep_sleep_after_its_own_setting_else_the_platforms() -> None:
    deep = partial(should_deep_sleep, slept_at=1_000.0, default_deep_sleep_after=HOUR)
    assert effective_deep_sleep_after(None, HOUR) == HOUR
    assert effective_deep_sleep_after(-1, HOUR) is None
    assert effective_deep_sleep_after(None, -1) is None
    assert effective_deep_sleep_after(0, HOUR) == 0
    assert not deep(now=1_000.0 + HOUR - 0.1, deep_sleep_after=None)
    assert deep(now=1_000.0 + HOUR, deep_sleep_after=None)
    assert deep(now=1_000.0, deep_sleep_after=0)  # at once
    assert not deep(now=1_000.0 + 10 * DEFAULT, deep_sleep_after=-1)  # never
    assert not deep(now=1_000.0 + 59, deep_sleep_after=60)
    assert deep(now=1_000.0 + 60, deep_sleep_after=60)
    # a clock before slept_at (skew) never deepens early
    assert not should_deep_sleep(now=900.0, slept_at=1_000.0, deep_sleep_after=60, default_deep_sleep_after=HOUR)
