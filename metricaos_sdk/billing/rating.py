"""Credit rules as SQL: re-rate recorded events under candidate rules, exactly, inside SQLite.

A replay asks what each event would have cost in credits under other rules. Each rule becomes an integer
expression in micro-credits, rounded per event as the meter rounds (up, down or half-even to the rule's
quantum): ``value × c / d`` with integer constants, computed as ``(x / d) × c + round((x % d) × c / d)`` so
nothing overflows and nothing passes through a float.

Which events carry credits (as the meter charges them): LLM calls outside any action, outermost actions
(their own event: ``per_call`` is the action's price, a cost-based rule prices the action's ``cost_usd`` —
the sum of its calls), and custom usage and outcomes (``per_unit``). Calls made inside an action and nested
actions cost 0: the outermost action is billed once. Events that are not billable cost 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from math import gcd

from ..errors import ConfigurationError
from ..quota.credits import CreditRule, CreditRules
from .aggregate import CALL, OUTER_ACTION

__all__ = ["rating_sql"]

_LIMIT = 2**62
_PRODUCT_UNITS = "(event_type IN ('usage', 'outcome'))"
_CHARGED = f"(billable = 1 AND (({CALL} AND action_id IS NULL) OR {OUTER_ACTION} OR {_PRODUCT_UNITS}))"
# Over the rollup of charged events' values (billing_daily_values, m009, read through a query that turns its
# stored NULL markers back into NULLs): every row is a charged event; ``kind`` says whether it is custom usage.
_ROLLUP = {"product": "(kind IN ('usage', 'outcome'))", "charged": "1"}


def _fraction(value: Decimal) -> tuple[int, int]:
    """``value`` as ``(numerator, 10**k)``."""
    sign, digits, exponent = value.as_tuple()
    n = int("".join(map(str, digits)) or "0")
    assert isinstance(exponent, int)
    if exponent >= 0:
        return (-1 if sign else 1) * n * 10**exponent, 1
    return (-1 if sign else 1) * n, 10 ** (-exponent)


def _scaled(x: str, c: int, d: int, rounding: str) -> str:
    """SQL: ``x × c / d`` rounded (``x`` a non-negative integer expression; ``c``, ``d`` positive ints)."""
    g = gcd(c, d)
    c, d = c // g, d // g
    if c * d >= _LIMIT:
        raise ConfigurationError("A credit rule has too many decimal places to re-rate exactly in SQLite: round its "
                                 "prices (and quantum) to at most 6 decimal places.")
    if d == 1:
        return f"(({x}) * {c})"
    base = f"((({x}) / {d}) * {c})"
    rest = f"((({x}) % {d}) * {c})"
    if rounding == "up":
        return f"({base} + ({rest} + {d - 1}) / {d})"
    if rounding == "down":
        return f"({base} + {rest} / {d})"
    floor = f"({base} + {rest} / {d})"
    return (f"({floor} + CASE WHEN 2 * ({rest} % {d}) > {d} OR (2 * ({rest} % {d}) = {d} AND {floor} % 2 = 1) "
            f"THEN 1 ELSE 0 END)")


def _quantum(rule: CreditRule) -> tuple[int, int]:
    qn, qd = _fraction(Decimal(rule.quantum))
    micro = Decimal(rule.quantum) * 10**6
    if micro != micro.to_integral_value():
        raise ConfigurationError(f"A credit rule's quantum {rule.quantum} is finer than a micro-credit: a replay "
                                 "re-rates in micro-credits; use a quantum of 0.000001 or more.")
    return qn, qd


def _rule_sql(rule: CreditRule, product: str) -> str:
    """SQL: micro-credits of one charged event under ``rule`` (NULL when the rule has no price for it)."""
    qn, qd = _quantum(rule)
    micro_per_quantum = int(Decimal(rule.quantum) * 10**6)
    parts = []
    if rule.per_unit:
        whens = []
        for unit, price in rule.per_unit.items():
            pn, pd = _fraction(Decimal(price))
            # quanta = quantity_micro / 10**6 × pn / pd × qd / qn
            quanta = _scaled("CAST(ROUND(CAST(quantity AS REAL) * 1000000) AS INTEGER)", pn * qd, 10**6 * pd * qn,
                             rule.rounding)
            whens.append((unit, f"{quanta} * {micro_per_quantum}"))
        default = next((sql for unit, sql in whens if unit == "*"), "NULL")
        cases = " ".join(f"WHEN '{u.replace(chr(39), chr(39) * 2)}' THEN {sql}" for u, sql in whens if u != "*")
        parts.append(f"WHEN {product} THEN CASE unit {cases} ELSE {default} END")
    if rule.per_call is not None:
        micro = rule._rounded(Decimal(rule.per_call)) * 10**6  # noqa: SLF001 - the meter's own rounding
        parts.append(f"WHEN NOT {product} THEN {int(micro)}")
    elif rule.credits_per_usd is not None:
        kn, kd = _fraction(Decimal(rule.margin) * Decimal(rule.multiplier) * Decimal(rule.credits_per_usd))
        pico = "CAST(ROUND(CAST(cost_usd AS REAL) * 1000000000000) AS INTEGER)"
        quanta = _scaled(pico, kn * qd, kd * 10**12 * qn, rule.rounding)
        parts.append(f"WHEN NOT {product} THEN CASE WHEN cost_usd IS NULL THEN NULL ELSE "
                     f"{quanta} * {micro_per_quantum} END")
    elif rule.per_token is not None:
        out_rate = rule.per_output_token if rule.per_output_token is not None else rule.per_token
        an, ad = _fraction(Decimal(rule.per_token))
        bn, bd = _fraction(Decimal(out_rate))
        scale = max(ad, bd)
        x = f"(input_tokens * {an * (scale // ad)} + output_tokens * {bn * (scale // bd)})"
        parts.append(f"WHEN NOT {product} THEN {_scaled(x, qd, scale * qn, rule.rounding)} * {micro_per_quantum}")
    return f"CASE {' '.join(parts)} ELSE NULL END" if parts else "NULL"


def rating_sql(rules: CreditRules | Mapping[str, CreditRule], *, rollup: bool = False) -> str:
    """SQL: an event's micro-credits under ``rules`` (by feature, ``"*"`` for any other), 0 when not charged.

    ``rollup=True``: the same rating over a row of ``billing_daily_values`` (one distinct set of the values a
    rule reads; multiply by its ``events``), instead of over an event."""
    product, charged = (_ROLLUP["product"], _ROLLUP["charged"]) if rollup else (_PRODUCT_UNITS, _CHARGED)
    table: dict[str, CreditRule] = {}
    if isinstance(rules, CreditRules):
        for feature in list(rules._rules):  # noqa: SLF001 - the rules as configured, by feature
            found = rules.get(feature)
            if found is not None:
                table[feature] = found[0]
    else:
        for feature, rule in dict(rules).items():
            if not isinstance(rule, CreditRule):
                raise ConfigurationError(f"Candidate credit rules map features to CreditRule objects; {feature!r} maps "
                                         f"to {type(rule).__name__}: write CreditRule(per_call=50) and the like.")
            table[feature] = rule
    if not table:
        return "0"
    whens = " ".join(f"WHEN '{f.replace(chr(39), chr(39) * 2)}' THEN {_rule_sql(r, product)}" for f, r in table.items() if f != "*")
    default = _rule_sql(table["*"], product) if "*" in table else "NULL"
    by_feature = f"CASE feature {whens} ELSE {default} END" if whens else default
    return f"CASE WHEN {charged} THEN COALESCE({by_feature}, 0) ELSE 0 END"
