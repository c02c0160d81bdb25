"""The idle policy: when a Space goes to sleep. Pure functions of (now, last activity, settings, stage).

* ``sleep_time`` is the Space's own setting in seconds: ``None`` = the platform's default, ``-1`` (any
  negative value) = never sleep.
* Only a serving Space sleeps: ``RUNNING``, or ``RUNNING_BUILDING`` (the old version serves while a new one
  builds). A Space that is starting, building, waiting for capacity (``SCHEDULING``) or failing never does.
  Stages are the Hub's names, exactly (the platform's ``Stage`` values); an ``AppState`` is not a stage.
* Open requests and websockets (``in_flight``) hold a Space awake: it sleeps only once they have ended
  and the idle time has passed since (their end counts as activity), or, if they stay open, once
  ``busy_max`` more seconds have passed with no traffic at all (a forgotten tab's quiet websocket must
  not keep an app awake for ever).
* Deep sleep: a sleeping Space first sleeps *lightly* (the runtime keeps a warm parent: the wake is a
  fork); ``deep_sleep_after`` seconds after it fell asleep it goes to *deep* sleep (nothing kept: the wake
  is a cold start). ``deep_sleep_after`` is the Space's own (a Spaceyard extension) or, ``None``, the
  platform's default; ``-1`` (any negative value) = never deep, ``0`` = deep at once.
* The clock is the caller's (``time.monotonic()`` in the platform, a number in tests); ``last_activity``
  must come from the same clock. Activity "in the future" (clock skew) never puts a Space to sleep.
"""

from __future__ import annotations

SLEEPABLE_STAGES = frozenset({"RUNNING", "RUNNING_BUILDING"})


def effective_sleep_time(sleep_time: int | None, default_sleep_time: int) -> int | None:
    """Seconds of inactivity before sleeping, or ``None`` for never (``-1``)."""
    value = default_sleep_time if sleep_time is None else sleep_time
    return None if value < 0 else value


def can_sleep(stage: str) -> bool:
    return stage in SLEEPABLE_STAGES


def sleep_at(*, last_activity: float, sleep_time: int | None, default_sleep_time: int, stage: str) -> float | None:
    """The clock value from which the Space should sleep if nothing happens; ``None`` if it never will."""
    if not can_sleep(stage):
        return None
    limit = effective_sleep_time(sleep_time, default_sleep_time)
    return None if limit is None else last_activity + limit


def should_sleep(
    *,
    now: float,
    last_activity: float,
    sleep_time: int | None,
    default_sleep_time: int,
    stage: str,
    in_flight: int = 0,
    busy_max: float = 3600.0,
) -> bool:
    """Whether an awake Space should sleep now."""
    due = sleep_at(
        last_activity=last_activity, sleep_time=sleep_time, default_sleep_time=default_sleep_time, stage=stage
    )
    if due is not None and in_flight > 0:
        due += busy_max
    return due is not None and now >= due


def next_check(
    *,
    now: float,
    last_activity: float,
    sleep_time: int | None,
    default_sleep_time: int,
    stage: str,
    max_interval: float = 60.0,
) -> float:
    """Seconds until the idle check for this Space is worth running again (``0``: sleep it now).

    The time left until it is due, but at most ``max_interval``: activity and stage changes are not
    known in advance, so a Space that cannot sleep yet is looked at again after ``max_interval``.
    """
    due = sleep_at(
        last_activity=last_activity, sleep_time=sleep_time, default_sleep_time=default_sleep_time, stage=stage
    )
    if due is None:
        return max_interval
    return max(0.0, min(due - now, max_interval))


def effective_deep_sleep_after(deep_sleep_after: int | None, default_deep_sleep_after: int) -> int | None:
    """Seconds of light sleep before deep sleep, or ``None`` for never (``-1``)."""
    value = default_deep_sleep_after if deep_sleep_after is None else deep_sleep_after
    return None if value < 0 else value


def should_deep_sleep(
    *, now: float, slept_at: float, deep_sleep_after: int | None, default_deep_sleep_after: int
) -> bool:
    """Whether a Space asleep (lightly) since ``slept_at`` should go to deep sleep now."""
    limit = effective_deep_sleep_after(deep_sleep_after, default_deep_sleep_after)
    return limit is not None and now >= slept_at + limit
