"""A store of realistic events, generated: for the reports' and the dashboard's tests, benchmarks and demos.

``sample_events(n)`` yields LLM calls and actions the way a month of a small AI product looks: a few customers
with many users each, some far busier than others; features; several models (one unpriced); streamed calls,
some abandoned with estimated usage; errors; a share of non-billable calls from a staging environment; actions
with credits around some of the calls. Deterministic for a ``seed``. Costs are exact decimals from the
per-token rates below (made-up rates of the right size, not the bundled price table's).

``write_sample(path, n)`` writes them into a SQLite file through the same insert the SDK's sink uses.
"""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

from ..events import UsageEvent

__all__ = ["RATES", "sample_events", "write_sample"]

RATES: dict[str, tuple[str, Decimal, Decimal] | None] = {
    "gpt-4.1-mini": ("openai", Decimal("0.0000004"), Decimal("0.0000016")),
    "gpt-4.1": ("openai", Decimal("0.000002"), Decimal("0.000008")),
    "claude-sonnet-4-6": ("anthropic", Decimal("0.000003"), Decimal("0.000015")),
    "claude-haiku-4-5": ("anthropic", Decimal("0.000001"), Decimal("0.000005")),
    "in-house-llm": None,  # a model with no price: its tokens count, its cost is unknown
}
"""Per model: provider, input and output USD per token (None: unpriced)."""

_FEATURES = ["chat", "summarize", "search", "classify"]
_CUSTOMER_WEIGHT = [40, 25, 15, 10, 5, 3, 2]


def sample_events(n: int, *, seed: int = 7, start: datetime | None = None, days: int = 30,
                  customers: int = 7, users_per_customer: int = 12) -> Iterator[UsageEvent]:
    """``n`` LLM calls (and an action around a fifth of them) in time order over ``days`` days from ``start``
    (default 2026-11-01 UTC)."""
    rng = random.Random(seed)
    start = start or datetime(2026, 11, 1, tzinfo=timezone.utc)
    span = days * 86_400
    names = [f"cus_{chr(ord('a') + i)}{'' if i < 26 else i}" for i in range(customers)]
    weights = (_CUSTOMER_WEIGHT * (customers // len(_CUSTOMER_WEIGHT) + 1))[:customers]
    models = list(RATES)
    moments = sorted(rng.random() * span for _ in range(n))
    for offset in moments:
        at = start + timedelta(seconds=offset)
        customer = rng.choices(names, weights)[0]
        user = f"{customer}_u{rng.randrange(users_per_customer):02d}"
        feature = rng.choice(_FEATURES)
        model = rng.choices(models, [50, 15, 20, 12, 3])[0]
        rate = RATES[model]
        provider = rate[0] if rate else "openai-compatible"
        staging = rng.random() < 0.05
        inp, out = rng.randrange(50, 4000), rng.randrange(10, 1200)
        cached = rng.randrange(0, inp // 2) if rng.random() < 0.3 else 0
        streamed = rng.random() < 0.4
        estimated = streamed and rng.random() < 0.03
        failed = rng.random() < 0.02
        cost = None if rate is None else inp * rate[1] + out * rate[2]
        event_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        in_action = rng.random() < 0.2
        action_id = str(uuid.UUID(int=rng.getrandbits(128), version=4)) if in_action else None
        common = dict(timestamp=at, customer_id=customer, user_id=user, feature=feature,
                      environment="staging" if staging else "production", billable=not staging)
        yield UsageEvent(
            id=event_id, event_type="chat_completion", provider=provider, model=model, requested_model=model,
            endpoint="/chat/completions", input_tokens=inp, output_tokens=out, cached_input_tokens=cached,
            total_tokens=inp + out, usage_status="estimated" if estimated else "reported",
            cost_usd=cost, price_status="priced" if rate else "unpriced",
            status="error" if failed else "ok", http_status=500 if failed else 200,
            error_type="InternalServerError" if failed else None, streamed=streamed,
            duration_ms=round(rng.uniform(200, 4000), 1), action_id=action_id,
            action_name="answer_ticket" if in_action else None, **common,
        )
        if in_action:
            yield UsageEvent(
                id=action_id, event_type="action", provider="metricaos", endpoint="", action_id=action_id,
                action_name="answer_ticket", action_calls=1, cost_usd=cost,
                price_status="priced" if rate else "unpriced", credits=Decimal(0 if staging else 5),
                timestamp=at + timedelta(milliseconds=1), **{k: v for k, v in common.items() if k != "timestamp"},
            )


def write_sample(path: str | os.PathLike[str], n: int, **options: object) -> Path:
    """Write ``sample_events(n, **options)`` into the SQLite file ``path`` (created and migrated if new)."""
    from ..storage.database import Database
    from ..storage.rows import EVENT_COLUMNS, event_to_row

    database = Database(path)
    sql = f"INSERT OR IGNORE INTO events ({', '.join(EVENT_COLUMNS)}) VALUES ({', '.join('?' * len(EVENT_COLUMNS))})"
    batch: list[tuple[object, ...]] = []
    with database.transaction() as conn:
        for event in sample_events(n, **options):  # type: ignore[arg-type]
            batch.append(event_to_row(event))
            if len(batch) == 10_000:
                conn.executemany(sql, batch)
                batch.clear()
        conn.executemany(sql, batch)
    database.close()
    return Path(path)
