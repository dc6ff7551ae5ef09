"""The per-event SQL expressions of the rollup migrations (m009: billing; m011: reports), frozen with them: a
later change to the billing or reports code must never change what an applied migration's trigger computes.
Each function takes the row's prefix: ``NEW.`` in a trigger, ``""`` in a backfill over the events table."""

from __future__ import annotations

# m009's per-event expressions, frozen here with it (a later change to the billing code must not change them).
_M009_KEYS = ("month", "customer_id", "feature", "action_name", "unit", "billable", "kind", "day")
_M009_VALUE_KEYS = ("month", "customer_id", "feature", "action_name", "unit", "kind", "day", "input_tokens",
                    "output_tokens", "cost_usd", "quantity")


def _m009_places(column: str) -> str:
    mantissa = f"CASE WHEN instr({column}, 'E') > 0 THEN substr({column}, 1, instr({column}, 'E') - 1) ELSE {column} END"
    decimals = f"CASE WHEN instr({mantissa}, '.') > 0 THEN length({mantissa}) - instr({mantissa}, '.') ELSE 0 END"
    exponent = f"CASE WHEN instr({column}, 'E') > 0 THEN CAST(substr({column}, instr({column}, 'E') + 1) AS INTEGER) ELSE 0 END"
    plain = f"CASE WHEN instr({column}, '.') > 0 THEN length({column}) - instr({column}, '.') ELSE 0 END"
    return f"ifnull(CASE WHEN instr({column}, 'E') = 0 THEN {plain} ELSE ({decimals}) - ({exponent}) END, 0)"


def _m009_row(p: str) -> dict[str, str]:
    """billing_daily's columns for the event row ``p`` (``NEW.`` in the trigger, ``""`` in the backfill)."""
    kind = (f"CASE {p}event_type WHEN 'action' THEN CASE WHEN {p}parent_action_id IS NULL THEN 'action' "
            f"ELSE 'nested_action' END WHEN 'usage' THEN 'usage' WHEN 'outcome' THEN 'outcome' "
            f"ELSE CASE WHEN {p}action_id IS NULL THEN 'call' ELSE 'call_in_action' END END")
    row = {"month": f"substr({p}timestamp, 1, 7)", "customer_id": f"ifnull({p}customer_id, 0)",
           "feature": f"ifnull({p}feature, 0)", "action_name": f"ifnull({p}action_name, 0)",
           "unit": f"ifnull({p}unit, 0)", "billable": f"{p}billable", "kind": kind,
           "day": f"substr({p}timestamp, 1, 10)", "events": "1", "input_tokens": f"{p}input_tokens",
           "output_tokens": f"{p}output_tokens", "tokens": f"{p}total_tokens",
           "unpriced": f"({p}cost_usd IS NULL)"}
    for column, scale in (("cost_usd", "1000000000000"), ("credits", "1000000"), ("quantity", "1000000")):
        name = column.removesuffix("_usd")
        row[f"{name}_small"] = f"ifnull(CAST(ROUND(CAST({p}{column} AS REAL) * {scale}) AS INTEGER), 0)"
        row[f"{name}_places"] = _m009_places(f"{p}{column}")
        row[f"{name}_max"] = f"ifnull(ABS(CAST({p}{column} AS REAL)), 0)"
    row["first"] = row["last"] = f"{p}timestamp"
    return row


def _m009_values(p: str) -> dict[str, str]:
    """billing_daily_values' key columns for the event row ``p``: the values a credit rule reads (tokens and cost
    for LLM calls and actions, quantity for custom usage and outcomes; the other ones 0)."""
    row = _m009_row(p)
    product = f"({p}event_type IN ('usage', 'outcome'))"
    return {**{k: row[k] for k in _M009_VALUE_KEYS[:7]},
            "input_tokens": f"CASE WHEN {product} THEN 0 ELSE {p}input_tokens END",
            "output_tokens": f"CASE WHEN {product} THEN 0 ELSE {p}output_tokens END",
            "cost_usd": f"CASE WHEN {product} THEN 0 ELSE ifnull({p}cost_usd, 0) END",
            "quantity": f"CASE WHEN {product} THEN ifnull({p}quantity, 0) ELSE 0 END"}


def _m009_charged(p: str) -> str:
    """SQL: the event carries credits as the meter charges them (billable; a call outside any action, an
    outermost action, custom usage or an outcome)."""
    return (f"({p}billable = 1 AND (({p}event_type NOT IN ('action', 'usage', 'outcome') AND {p}action_id IS NULL) "
            f"OR ({p}event_type = 'action' AND {p}parent_action_id IS NULL) OR {p}event_type IN ('usage', 'outcome')))")


# m011's per-event expressions, frozen here with it (a later change to the reports must not change them).
_M011_KEYS = ("day", "customer_id", "feature", "model", "provider", "environment", "action_name", "billable", "is_call")
_M011_USER_KEYS = ("day", "customer_id", "user_id", "billable", "is_call")
_M011_SUMS = ("events", "input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens",
              "reasoning_tokens", "total_tokens", "unpriced", "estimated", "failed",
              "cost_high", "cost_low", "cost_slow", "credits_high", "credits_low", "credits_slow")


def _m011_exact(column: str) -> tuple[str, str, str]:
    """An amount as exact integer halves of pico-units, and 1 when it cannot be (see ``reports/exact.py``)."""
    fast = f"({column} IS NOT NULL AND abs(CAST({column} AS REAL)) < 100 AND {_m009_places(column)} <= 12)"
    pico = f"CAST(round(CAST({column} AS REAL) * 1000000000000) AS INTEGER)"
    return (f"CASE WHEN {fast} THEN {pico} / 1000000 ELSE 0 END", f"CASE WHEN {fast} THEN {pico} % 1000000 ELSE 0 END",
            f"CASE WHEN {column} IS NOT NULL AND NOT {fast} THEN 1 ELSE 0 END")


def _m011_row(p: str, keys: tuple[str, ...]) -> dict[str, str]:
    """A rollup's columns (``keys`` then the sums) for the event row ``p`` (``NEW.`` in the trigger, ``""`` in
    the backfill)."""
    row = {}
    for key in keys:
        row[key] = {"day": f"substr({p}timestamp, 1, 10)", "billable": f"{p}billable",
                    "is_call": f"({p}event_type NOT IN ('action', 'outcome', 'usage'))"}.get(key, f"ifnull({p}{key}, 0)")
    row["events"] = "1"
    for column in _M011_SUMS[1:7]:
        row[column] = f"{p}{column}"
    row["unpriced"] = f"({p}cost_usd IS NULL)"
    row["estimated"] = f"({p}usage_status = 'estimated')"
    row["failed"] = f"({p}status <> 'ok')"
    row["cost_high"], row["cost_low"], row["cost_slow"] = _m011_exact(f"{p}cost_usd")
    row["credits_high"], row["credits_low"], row["credits_slow"] = _m011_exact(f"{p}credits")
    return row
