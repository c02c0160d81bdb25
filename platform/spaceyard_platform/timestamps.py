"""Timestamps as the API and the pages show them. The database stores UTC; SQLite hands datetimes back
naive, so :func:`as_utc` makes any stored value aware before it is formatted or compared."""

from __future__ import annotations

from datetime import UTC, datetime


def as_utc(dt: datetime) -> datetime:
    """``dt`` as an aware UTC datetime (a naive one is UTC already: that is how it was stored)."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def iso(dt: datetime | None) -> str | None:
    """The Hub API's form: milliseconds and ``Z`` (``2026-01-02T03:04:05.678Z``); ``None`` stays ``None``."""
    if dt is None:
        return None
    return as_utc(dt).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_seconds(dt: datetime | None) -> str:
    """The pages' form (``<time datetime=...>``): seconds and an offset; ``""`` for no time."""
    if dt is None:
        return ""
    return as_utc(dt).isoformat(timespec="seconds")
