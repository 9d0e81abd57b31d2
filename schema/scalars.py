"""Date and DateTime as the gateway reads them: ISO 8601, in UTC, within the years it can compute with.

strawberry's own scalars accept any year Python can hold (1 to 9999) and times without an
offset. At the edges of that range the gateway's own arithmetic overflows (a day added to
9999-12-31, an offset taken from 0001-01-01T00:00+14:00), and a naive time cannot be compared
with an aware one; so the range is bounded here, where the value enters, and a time without
an offset means UTC, as every time in this API does.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

import strawberry
from graphql import GraphQLError

# The payment provider counts time from 1970; a year of margin below 10000 for date arithmetic.
EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(9999, 1, 1, tzinfo=timezone.utc)  # excluded
RANGE = f"from {EARLIEST.date().isoformat()} up to, not including, {LATEST.date().isoformat()} (UTC)"


class ScalarRefusal(GraphQLError):
    """A value this gateway's scalar refuses, told without the value (it may be anything, and
    the message goes back to the client): variable errors keep this message as it is."""


def _refused(type_name: str, why: str) -> ScalarRefusal:
    return ScalarRefusal(f"{type_name} takes {why}, {RANGE}.")


def parse_datetime(value: Any) -> datetime:
    if not isinstance(value, str):
        raise _refused("DateTime", "an ISO 8601 string such as \"2026-05-01T12:00:00Z\"")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise _refused("DateTime", "an ISO 8601 string such as \"2026-05-01T12:00:00Z\"") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    try:
        moment = moment.astimezone(timezone.utc)
    except OverflowError:  # the offset takes it past year 1 or 9999
        moment = LATEST
    if not EARLIEST <= moment < LATEST:
        raise _refused("DateTime", "a moment")
    return moment


def parse_date(value: Any) -> date:
    try:
        day = date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        day = None
    if day is None:
        raise _refused("Date", "an ISO 8601 calendar day such as \"2026-05-01\"")
    if not EARLIEST.date() <= day < LATEST.date():
        raise _refused("Date", "a day")
    return day


DateTime = strawberry.scalar(
    name="DateTime", serialize=datetime.isoformat, parse_value=parse_datetime,
    description=f"A moment in ISO 8601 with its UTC offset, e.g. \"2026-05-01T12:00:00Z\"; one without an "
                f"offset is UTC. Accepted {RANGE}.")
Date = strawberry.scalar(
    name="Date", serialize=date.isoformat, parse_value=parse_date,
    description=f"A calendar day in ISO 8601, e.g. \"2026-05-01\". Accepted {RANGE}.")
# For StrawberryConfig.scalar_map: every `datetime` and `date` of the schema is read with these.
SCALAR_MAP = {datetime: DateTime, date: Date}
