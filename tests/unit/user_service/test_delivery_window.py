"""The delivery window a patient asks for at upload (user_service/schemas.py DeliveryWindowIn): refused
next to the field at fault when it ends before it starts, has already ended, or is too far ahead."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from user_service.schemas import DeliveryWindowIn


def window(start: datetime, end: datetime) -> DeliveryWindowIn:
    # As the upload's body is read: JSON, times as ISO 8601 text.
    return DeliveryWindowIn.model_validate_json(
        json.dumps({"start": start.isoformat(), "end": end.isoformat()})
    )


def test_a_window_ahead_is_taken_as_given() -> None:
    start = datetime.now(UTC) + timedelta(hours=2)

    taken = window(start, start + timedelta(hours=2)).contract()

    assert (taken.start, taken.end) == (start, start + timedelta(hours=2))


@pytest.mark.parametrize(
    ("start_hours", "end_hours", "field", "message"),
    [
        (3, 2, "end", "ends after it starts"),
        (-5, -1, "end", "ends in the future"),
        (24 * 15, 24 * 15 + 2, "start", "within 14 days"),
    ],
)
def test_a_window_that_cannot_be_kept_is_refused_naming_the_field(
    start_hours: int, end_hours: int, field: str, message: str
) -> None:
    now = datetime.now(UTC)

    with pytest.raises(ValidationError) as refused:
        window(now + timedelta(hours=start_hours), now + timedelta(hours=end_hours))

    (error,) = refused.value.errors()
    assert error["loc"] == (field,)
    assert message in error["msg"]


def test_a_time_without_its_offset_is_refused() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        DeliveryWindowIn.model_validate_json('{"start": "2026-12-24T10:00:00", "end": "2026-12-24T12:00:00"}')
