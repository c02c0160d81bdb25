"""Dates as the Hub writes them."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(dt: datetime | None) -> str | None:
    """``2026-01-02T03:04:05.000Z``; None stays None."""
    if dt is None:
        return None
    if dt.tzinfo is None:  # SQLite hands back naive datetimes; they are UTC
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
