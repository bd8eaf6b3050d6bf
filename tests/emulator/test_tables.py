"""Server-side printing: ages from every RFC 3339 timestamp clients post."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

import pytest

from aisched.emulator.tables import human_age

NOW: Final = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("timestamp", "age"),
    [
        ("2026-01-01T11:55:00Z", "5m"),
        ("2026-01-01T11:55:00.123456+00:00", "4m59s"),  # Kopf: isoformat() with microseconds
        ("2026-01-01T11:55:00.123456789Z", "4m59s"),  # Go's RFC3339Nano
        ("2026-01-01T13:55:00+02:00", "5m"),
        ("2026-01-01t11:55:00z", "5m"),
        ("2026-01-01T11:55:00", "5m"),  # no offset: taken as UTC
        ("2026-01-01T13:00:00Z", "0s"),  # in the future: never negative
    ],
)
def test_human_age_reads_rfc3339_with_fractions_and_offsets(timestamp: str, age: str) -> None:
    assert human_age(timestamp, NOW) == age


@pytest.mark.parametrize("timestamp", [None, "", "yesterday", 1767268800])
def test_human_age_of_an_absent_or_unreadable_timestamp_is_unknown(timestamp: object) -> None:
    assert human_age(timestamp, NOW) == "<unknown>"
