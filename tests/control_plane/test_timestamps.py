"""One formatter per shown form of a stored time; a naive value (SQLite's) is UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from spaceyard_platform.timestamps import as_utc, iso, iso_seconds


def test_api_and_page_forms_of_naive_and_aware_times() -> None:
    naive = datetime(2026, 1, 2, 3, 4, 5, 678900)
    aware = naive.replace(tzinfo=UTC).astimezone(timezone(timedelta(hours=2)))
    for dt in (naive, aware):
        assert iso(dt) == "2026-01-02T03:04:05.678Z"  # the Hub's form
        assert iso_seconds(dt) == "2026-01-02T03:04:05+00:00"  # the pages' <time datetime=...>
        assert as_utc(dt) == naive.replace(tzinfo=UTC)
    assert iso(None) is None and iso_seconds(None) == ""
