"""UsageEvent <-> SQLite row. Money and dates travel as exact text."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

from pydantic_core import from_json, to_json

from ..events import UsageEvent

__all__ = ["EVENT_COLUMNS", "event_to_line", "event_to_row", "events_from_rows", "line_to_row", "row_to_event"]

EVENT_COLUMNS: tuple[str, ...] = tuple(UsageEvent.model_fields)
_BOOLS = {"billable", "streamed"}


def _utc_iso(value: datetime) -> str:
    return (value if value.tzinfo is timezone.utc else value.astimezone(timezone.utc)).isoformat()


def _json(value: dict[str, Any]) -> str:
    return json.dumps(value, sort_keys=True)


# Conversion by exact type: one dict hit per column on the hot path (the caller's thread).
_CONVERT: dict[type, Any] = {datetime: _utc_iso, Decimal: str, date: date.isoformat, dict: _json, bool: int}


def event_to_row(event: UsageEvent) -> tuple[Any, ...]:
    """Column values in ``EVENT_COLUMNS`` order."""
    values = event.__dict__
    convert = _CONVERT.get
    if tuple(values) == EVENT_COLUMNS:  # the usual case, __dict__ in field order: one pass, no lookups
        return tuple([v if (fn := convert(type(v))) is None else fn(v) for v in values.values()])
    return tuple([v if (fn := convert(type(v))) is None else fn(v) for v in (values[n] for n in EVENT_COLUMNS)])


def _decimal(text: Any) -> Decimal | None:
    return None if text is None else Decimal(text)


def _date(text: Any) -> date | None:
    return None if text is None else date.fromisoformat(text)


def _tags(text: Any) -> dict[str, str]:
    return json.loads(text) if text and text != "{}" else {}


_FROM_COLUMN: dict[str, Any] = {
    "timestamp": datetime.fromisoformat, "tags": _tags, "billable": bool, "streamed": bool,
    "cost_usd": _decimal, "credits": _decimal, "overage": _decimal, "overage_cost_usd": _decimal,
    "quantity": _decimal, "price_effective_from": _date, "provider_cost_usd": _decimal,
}


def events_from_rows(names: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[UsageEvent]:
    """Events from rows of our own events table (``names`` its columns), built without validation: each column
    is converted back to its field's type (the inverse of :func:`event_to_row`). Fields a row lacks (an older
    schema) take their defaults; columns that are not fields are left out. For reading many (delivery, reports):
    a third of :func:`row_to_event`'s time."""
    fields = set(EVENT_COLUMNS)
    names = list(names)
    converts = [(name, _FROM_COLUMN[name]) for name in names if name in _FROM_COLUMN]
    extra = [name for name in names if name not in fields]
    in_order = not extra and tuple(names) == EVENT_COLUMNS
    trusted = UsageEvent._trusted
    out = []
    for row in rows:
        values = dict(zip(names, row, strict=True))
        for name, convert in converts:
            value = values[name]
            if value is not None:
                values[name] = convert(value)
        if not in_order:
            for name in extra:
                del values[name]
            if len(values) == len(EVENT_COLUMNS):
                values = {n: values[n] for n in EVENT_COLUMNS}
        out.append(trusted(values))
    return out


def row_to_event(row: dict[str, Any]) -> UsageEvent:
    data = dict(row)
    data["tags"] = json.loads(data["tags"] or "{}")
    for name in _BOOLS:
        data[name] = bool(data[name])
    if data["cost_usd"] is not None:
        data["cost_usd"] = Decimal(data["cost_usd"])
    data["timestamp"] = datetime.fromisoformat(data["timestamp"])
    return UsageEvent.model_validate(data)


_I_TAGS = EVENT_COLUMNS.index("tags")
_I_TIMESTAMP = EVENT_COLUMNS.index("timestamp")
_OLDEST_LINE = EVENT_COLUMNS.index("overage_cost_usd") + 1
"""Columns of the shortest journal line still read: written before m007 added the action and custom usage fields."""
_PADDING = [UsageEvent.model_fields[n].get_default(call_default_factory=True) for n in EVENT_COLUMNS]


def event_to_line(event: UsageEvent) -> bytes:
    """The event's values, in column order, as one compact JSON array (UTF-8): a journal line, and what the
    SQLite sink inserts from (see :func:`line_to_row`). Encoded by pydantic-core's serializer in one call
    (Decimal and date as their ``str``, exactly; the UTC timestamp as ISO 8601 ending in ``Z``: formatting it
    with ``isoformat()`` here cost the caller's thread ~13 k instructions, and the writer's thread turns the
    ``Z`` into ``+00:00``); ``tags`` stays a JSON object until the writer's thread."""
    values = event.__dict__
    row = list(values.values()) if tuple(values) == EVENT_COLUMNS else [values[n] for n in EVENT_COLUMNS]
    timestamp = row[_I_TIMESTAMP]
    if timestamp.tzinfo is not timezone.utc:
        row[_I_TIMESTAMP] = timestamp.astimezone(timezone.utc)
    return to_json(row)


def line_to_row(line: bytes | str) -> list[Any]:
    """A journal line back to column values as SQLite stores them: the timestamp as ``isoformat()`` writes it
    (``+00:00``, not ``Z``: stored timestamps compare as text), ``tags`` as sorted JSON text."""
    # Every line holds strings seen once (event id, timestamp, request id): kept out of pydantic-core's
    # process-wide string cache, which would hold up to 16,384 of them (~1.3 MB) and evict the caller's keys.
    row: list[Any] = from_json(line, cache_strings=False)
    if type(row) is list and _OLDEST_LINE <= len(row) < len(EVENT_COLUMNS):
        # An earlier version's line, replayed after an upgrade: fields are only ever appended, with defaults.
        row.extend(_PADDING[len(row):])
    if type(row) is not list or len(row) != len(EVENT_COLUMNS):  # another version's line, or not one at all
        raise ValueError(f"a journal line must be a JSON array of {len(EVENT_COLUMNS)} values, not {str(line[:40])}…")
    timestamp = row[_I_TIMESTAMP]
    if timestamp[-1:] == "Z":  # lines of earlier versions carry +00:00 already
        row[_I_TIMESTAMP] = timestamp[:-1] + "+00:00"
    tags = row[_I_TAGS]
    if not isinstance(tags, str):
        row[_I_TAGS] = json.dumps(tags, sort_keys=True) if tags else "{}"
    return row
