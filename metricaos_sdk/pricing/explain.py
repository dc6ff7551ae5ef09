"""``RateTable.explain``: how a model name resolves and every rate row it can be priced at, as plain data."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from . import matching
from .rates import Period, context_key
from .windows import select, zone_text

if TYPE_CHECKING:
    from .table import RateTable

__all__ = ["explain", "plain"]

UNITS = {
    "web_searches_kcount": "USD per 1,000 web searches",
    "requests_kcount": "USD per 1,000 requests",
}


def plain(value: Any) -> Any:
    """Decimals as strings (never floats), recursively: JSON-ready."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def _row(period: Period, window: str | None = None) -> dict[str, Any]:
    row = {
        "effective_from": period.start.isoformat() if period.start else None,
        "price_id": period.price_id,
        "price_status": period.status,
        "table_version": period.table_version,
        "prices": plain(period.source),
    }
    if window is not None:
        row["window"] = window
    return row


def _rows(period: Period) -> list[dict[str, Any]]:
    """One row, or for a row priced by time of day: the rates outside the windows, then one row per window."""
    if not period.windows:
        return [_row(period)]
    zone = zone_text(period.zone)
    spans = ", ".join(w.describe() for w in period.windows)
    return [_row(period, f"outside {spans} ({zone})")] + [
        _row(w.period, f"{w.describe()} ({zone})") for w in period.windows
    ]


def _current(periods: tuple[Period, ...]) -> Period | None:
    now = datetime.now(timezone.utc)
    active = [p for p in periods if p.start is None or p.start <= now.date()]
    return select(active[-1], now) if active else None


def explain(table: RateTable, provider: str | None, model: str) -> dict[str, Any]:
    canonical = matching.canonical_provider(provider)
    entry = table._lookup(provider or "", model)
    out: dict[str, Any] = {
        "query": {"provider": provider, "model": model},
        "provider": canonical,
        "table_version": table.version,
        "units": "USD per million tokens unless noted: " + "; ".join(f"{k}: {v}" for k, v in UNITS.items()),
    }
    if provider and canonical is None:
        known = ", ".join(sorted(set(matching.PROVIDER_ALIASES.values())))
        out["notes"] = [f"provider {provider!r} is not one of {known}; the model was looked up by name"]
    if entry is None:
        fallback = table._fallback
        found = table._find(canonical, model)
        steps = ["no model of the table matches this name"]
        if found and "unpriced" in found[1]:
            steps = [*found[3], f"{found[1]['id']!r} has no per-token price here: {found[1]['unpriced']}"]
        out.update(
            resolved=False, model_resolved=None, price_status="fallback" if fallback else "unpriced", steps=steps
        )
        if fallback is not None:
            out["rates"] = {"standard": [r for p in fallback.standard for r in _rows(p)]}
        return out
    record = entry.model or {}
    out.update(
        resolved=True,
        model_resolved=entry.model_id,
        model_name=record.get("name"),
        source=entry.source,
        steps=list(entry.steps),
    )
    if record.get("names"):
        out["names"] = record["names"]
    if record.get("deprecated"):
        out["deprecated"] = True
    if record.get("dropped_price_keys"):
        out["dropped_price_keys"] = record["dropped_price_keys"]
        out.setdefault("notes", []).append(
            "prices for " + ", ".join(record["dropped_price_keys"]) + " are not applied: Usage does not carry them"
        )
    rates: dict[str, list[dict[str, Any]]] = {"standard": [r for p in entry.standard for r in _rows(p)]}
    seen = {id(entry.standard)}
    for (batch, tier), periods in sorted(entry.variants.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
        if id(periods) not in seen and periods != entry.standard:
            seen.add(id(periods))
            rates[context_key(batch, tier)] = [r for p in periods for r in _rows(p)]
    out["rates"] = rates
    timed = [p for p in entry.standard if p.windows]
    if timed:
        last = timed[-1]
        out.setdefault("notes", []).append(
            f"priced by time of day in {zone_text(last.zone)} (the call's UTC time converted): "
            + "; ".join(f"{w.describe()} -> ~{w.label}" for w in last.windows)
            + "; any other time -> the row's own rates (price id without ~, unless the rate file names it)"
        )
    current = _current(entry.standard)
    out["price_status"] = current.status if current else "unpriced"
    out["current"] = _row(current) if current else None
    return out
