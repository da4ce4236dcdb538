"""Reporting periods: `2026`, `2026-Q4`, `2026-11`, or `2026-11-01..2026-11-15` (both days in),
as UTC [start, end). Shared by the period report and the OSCAL export."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from aims_agent.errors import PeriodError


def parse_period(text: str) -> tuple[datetime, datetime]:
    """`YYYY`, `YYYY-Qn`, `YYYY-MM` or `YYYY-MM-DD..YYYY-MM-DD` (both days in) as UTC
    [start, end). Raises ValueError saying what is accepted: `parse_period("2026-Q4")`."""

    def month(y: int, m: int) -> datetime:
        return datetime(y + (m - 1) // 12, (m - 1) % 12 + 1, 1, tzinfo=UTC)

    t = text.strip()
    try:
        if m := re.fullmatch(r"(\d{4})", t):
            return month(int(m[1]), 1), month(int(m[1]) + 1, 1)
        if m := re.fullmatch(r"(\d{4})-[Qq]([1-4])", t):
            first = 3 * int(m[2]) - 2
            return month(int(m[1]), first), month(int(m[1]), first + 3)
        if (m := re.fullmatch(r"(\d{4})-(\d{2})", t)) and 1 <= int(m[2]) <= 12:
            return month(int(m[1]), int(m[2])), month(int(m[1]), int(m[2]) + 1)
        if m := re.fullmatch(r"(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})", t):
            first_day, last_day = date.fromisoformat(m[1]), date.fromisoformat(m[2])
            if last_day >= first_day:
                end = datetime.combine(last_day, datetime.min.time(), UTC) + timedelta(days=1)
                return datetime.combine(first_day, datetime.min.time(), UTC), end
    except ValueError as exc:  # a day or year out of range
        raise ValueError(f"{text!r}: {exc}") from exc
    raise ValueError(
        f"{text!r}: expected YYYY, YYYY-Qn, YYYY-MM or YYYY-MM-DD..YYYY-MM-DD (start <= end)"
    )


def period_bounds(text: str) -> tuple[datetime, datetime]:
    """UTC [start, end) of `2026`, `2026-Q4`, `2026-11` or `2026-11-01..2026-11-15` (both days
    in); anything else raises PeriodError naming `--period`."""
    try:
        return parse_period(text)
    except ValueError as exc:
        raise PeriodError(f"--period: {exc}") from exc


def period_label(text: str) -> str:
    """The period as written in file names and report ids: `2026-q4` -> `2026-Q4`."""
    period_bounds(text)
    return text.strip().upper()


def previous_month(now: float) -> str:
    """The month before the one `now` falls in: what the monthly job reports on."""
    first = datetime.fromtimestamp(now, UTC).replace(day=1)
    return (first - timedelta(days=1)).strftime("%Y-%m")
