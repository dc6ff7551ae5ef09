"""UsageEvent <-> SQLite row. Money and dates travel as exact text."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

from ..events import UsageEvent

__all__ = ["EVENT_COLUMNS", "event_to_row", "ledger_entry", "row_to_event"]

EVENT_COLUMNS: tuple[str, ...] = tuple(UsageEvent.model_fields)
_BOOLS = {"billable", "streamed"}


def event_to_row(event: UsageEvent) -> tuple[Any, ...]:
    """Column values in ``EVENT_COLUMNS`` order."""
    values = []
    for name in EVENT_COLUMNS:
        value = getattr(event, name)
        if isinstance(value, datetime):
            value = value.astimezone(timezone.utc).isoformat()
        elif isinstance(value, (Decimal, date)):
            value = value.isoformat() if isinstance(value, date) else str(value)
        elif isinstance(value, dict):
            value = json.dumps(value, sort_keys=True)
        elif isinstance(value, bool):
            value = int(value)
        values.append(value)
    return tuple(values)


def row_to_event(row: dict[str, Any]) -> UsageEvent:
    data = dict(row)
    data["tags"] = json.loads(data["tags"] or "{}")
    for name in _BOOLS:
        data[name] = bool(data[name])
    if data["cost_usd"] is not None:
        data["cost_usd"] = Decimal(data["cost_usd"])
    data["timestamp"] = datetime.fromisoformat(data["timestamp"])
    return UsageEvent.model_validate(data)


_I_CUSTOMER = EVENT_COLUMNS.index("customer_id")
_I_TIME = EVENT_COLUMNS.index("timestamp")
_I_BILLABLE = EVENT_COLUMNS.index("billable")
_I_TOKENS = EVENT_COLUMNS.index("total_tokens")
_I_COST = EVENT_COLUMNS.index("cost_usd")


def ledger_entry(row: tuple[Any, ...] | list[Any]) -> tuple[str, str, int, Decimal] | None:
    """``(customer_id, utc_day, tokens, cost)`` of a billable row with a customer, else None.

    Timestamps are stored in UTC (``event_to_row`` of an aware UTC datetime), so the day is the prefix.
    """
    if not row[_I_BILLABLE] or row[_I_CUSTOMER] is None:
        return None
    cost = row[_I_COST]
    return row[_I_CUSTOMER], row[_I_TIME][:10], row[_I_TOKENS], Decimal(cost) if cost is not None else Decimal(0)
