"""Events written straight into a real SQLite store, for the billing tests (no provider, no meter)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from metricaos_sdk import UsageEvent
from metricaos_sdk.storage.database import Database
from metricaos_sdk.storage.rows import EVENT_COLUMNS, event_to_row

NOV = datetime(2026, 11, 1, tzinfo=timezone.utc)


def event(*, at: datetime | None = None, customer: str | None = "cus_1", feature: str | None = None,
          credits: Any = None, cost: Any = None, tokens: tuple[int, int] = (0, 0), billable: bool = True,
          event_type: str = "chat_completion", **fields: Any) -> UsageEvent:
    """An LLM call (or, with ``event_type``, an action / usage / outcome) as the meter would record it."""
    product = event_type in ("action", "usage", "outcome")
    data: dict[str, Any] = dict(
        timestamp=at or NOV.replace(day=2), event_type=event_type, customer_id=customer, feature=feature,
        provider="metricaos" if product else "openai", model=None if product else "gpt-4.1-mini",
        endpoint="" if product else "/chat/completions", input_tokens=tokens[0], output_tokens=tokens[1],
        total_tokens=sum(tokens), billable=billable,
        credits=None if credits is None else Decimal(str(credits)), cost_usd=None if cost is None else Decimal(str(cost)),
        price_status="priced" if cost is not None else "unpriced")
    if "quantity" in fields and fields["quantity"] is not None:
        fields["quantity"] = Decimal(str(fields["quantity"]))
    data.update(fields)
    return UsageEvent(**data)


def store(database: Database, events: Iterable[UsageEvent]) -> list[UsageEvent]:
    """Insert ``events`` as the SQLite sink does (one row per event, ``INSERT OR IGNORE`` on the id)."""
    events = list(events)
    sql = f"INSERT OR IGNORE INTO events ({', '.join(EVENT_COLUMNS)}) VALUES ({', '.join('?' * len(EVENT_COLUMNS))})"
    with database.transaction() as conn:
        conn.executemany(sql, [event_to_row(e) for e in events])
    return events
