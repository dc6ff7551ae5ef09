"""Credits: the customer-facing currency, and the rules that turn a call into credits.

A rule per feature (``"*"`` for every other feature) gives a call its credits in one of three ways:

* ``CreditRule(per_call=50)`` — a fixed price per call;
* ``CreditRule(credits_per_usd=1000, margin="1.5", multiplier=1)`` —
  ``credits = cost_usd × margin × multiplier × credits_per_usd``;
* ``CreditRule(per_token="0.01")`` (optionally ``per_output_token=``) — per token.

``per_unit`` prices custom usage and outcomes (``meter.record_usage`` / ``record_outcome``) per unit:
``CreditRule(per_unit={"page": "0.5", "resolved_ticket": 50})``, alone or beside one of the three above (then
the feature's LLM calls and its custom units each have their price). A ``"*"`` key prices any other unit.

The result is rounded to ``quantum`` (default 1 credit) with ``rounding`` ("up" by default, so a call
never costs 0 credits by rounding; "down" or "nearest" otherwise). A call that is not billable costs 0.
Every event carries the credits and the rule that produced them (``UsageEvent.credits``/``credit_rule``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from typing import Literal

from ..errors import ConfigurationError
from .amounts import check_amount

__all__ = ["CreditRule", "CreditRules"]

_ROUNDING = {"up": ROUND_CEILING, "down": ROUND_FLOOR, "nearest": ROUND_HALF_EVEN}


@dataclass(frozen=True, slots=True)
class CreditRule:
    """How many credits a call costs: exactly one of ``per_call``, ``credits_per_usd``, ``per_token`` — and/or
    ``per_unit``, the price of each custom unit (``{"page": "0.5"}``)."""

    per_call: int | Decimal | str | None = None
    credits_per_usd: int | Decimal | str | None = None
    margin: int | Decimal | str = 1
    multiplier: int | Decimal | str = 1
    per_token: int | Decimal | str | None = None
    per_output_token: int | Decimal | str | None = None
    quantum: int | Decimal | str = 1
    rounding: Literal["up", "down", "nearest"] = "up"
    per_unit: Mapping[str, int | Decimal | str] | None = None

    def __post_init__(self) -> None:
        kinds = [k for k in ("per_call", "credits_per_usd", "per_token") if getattr(self, k) is not None]
        if len(kinds) > 1 or (not kinds and self.per_unit is None):
            raise ConfigurationError("A CreditRule needs exactly one of per_call=, credits_per_usd= or per_token= "
                                     "(and/or per_unit= for custom units).")
        if self.per_unit is not None:
            if not isinstance(self.per_unit, Mapping) or not self.per_unit:
                raise ConfigurationError("CreditRule per_unit= maps unit names to credits per unit, like "
                                         "{'page': '0.5'}; got " f"{self.per_unit!r}.")
            units = {}
            for unit, price in self.per_unit.items():
                if not isinstance(unit, str) or not unit:
                    raise ConfigurationError(f"CreditRule per_unit keys are unit names (non-empty str), got {unit!r}.")
                units[unit] = check_amount("credits", price, f"CreditRule per_unit[{unit!r}]")
            object.__setattr__(self, "per_unit", _FrozenUnits(units))
        for name in ("per_call", "credits_per_usd", "margin", "multiplier", "per_token", "per_output_token", "quantum"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, check_amount("credits", value, f"CreditRule {name}"))
        if self.rounding not in _ROUNDING:
            raise ConfigurationError("CreditRule rounding is 'up', 'down' or 'nearest'.")
        if not self.quantum:
            raise ConfigurationError("CreditRule quantum must be more than 0 (1 credit, 0.01 …).")

    @property
    def prices_calls(self) -> bool:
        """Whether the rule prices LLM calls (not only custom units)."""
        return self.per_call is not None or self.credits_per_usd is not None or self.per_token is not None

    def unit_price(self, unit: str) -> Decimal | None:
        """Credits per ``unit`` of custom usage (the ``"*"`` price for an unnamed unit), or None."""
        if self.per_unit is None:
            return None
        price = self.per_unit.get(unit)
        return price if price is not None else self.per_unit.get("*")  # type: ignore[return-value]

    def usage_credits(self, unit: str, quantity: Decimal) -> Decimal | None:
        """Credits for ``quantity`` of ``unit``, rounded like a call's (None: the rule has no price for it)."""
        price = self.unit_price(unit)
        return None if price is None else self._rounded(quantity * Decimal(price))

    def _rounded(self, raw: Decimal) -> Decimal:
        quantum = Decimal(self.quantum)
        return ((raw / quantum).to_integral_value(_ROUNDING[self.rounding]) * quantum).normalize() + 0

    def credits(self, *, input_tokens: int, output_tokens: int, cost_usd: Decimal | None) -> Decimal | None:
        """Credits for a call with this usage (None: a cost-based rule and an unpriced model, or a rule that
        prices custom units only)."""
        if not self.prices_calls:
            return None
        if self.per_call is not None:
            raw = Decimal(self.per_call)
        elif self.credits_per_usd is not None:
            if cost_usd is None:
                return None
            raw = cost_usd * Decimal(self.margin) * Decimal(self.multiplier) * Decimal(self.credits_per_usd)
        else:
            out_rate = self.per_output_token if self.per_output_token is not None else self.per_token
            raw = input_tokens * Decimal(self.per_token) + output_tokens * Decimal(out_rate)  # type: ignore[arg-type]
        return self._rounded(raw)

    def describe(self) -> str:
        units = "" if self.per_unit is None else ", ".join(f"{p} per {u}" for u, p in self.per_unit.items())
        if not self.prices_calls:
            return units
        call = self._describe_calls()
        return f"{call}; {units}" if units else call

    def describe_unit(self, unit: str) -> str:
        """The part of the rule that prices ``unit``, as text."""
        return f"{self.unit_price(unit)} per {unit}"

    def _describe_calls(self) -> str:
        if self.per_call is not None:
            return f"{self.per_call} per call"
        if self.credits_per_usd is not None:
            rule = f"cost x {self.margin} margin x {self.multiplier} x {self.credits_per_usd}/USD"
        else:
            rule = f"{self.per_token}/input token, {self.per_output_token or self.per_token}/output token"
        return f"{rule}, rounded {self.rounding} to {self.quantum}"


class _FrozenUnits(dict[str, Decimal]):
    """``per_unit`` once checked: a dict that hashes (rules are frozen and cached by value)."""

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(self.items())))


class CreditRules:
    """The meter's credit rules by feature (``meter.credits``); ``"*"`` is the rule for any other feature.

    Rules are configuration, like rates: every process sharing a quota store should set the same ones.
    """

    def __init__(self) -> None:
        self._rules: dict[str, tuple[CreditRule, str]] = {}

    def set(self, feature: str, rule: CreditRule | None = None, **fields: object) -> CreditRule:
        """Set the rule of ``feature`` (``"*"``: default): ``set("summarize_document", per_call=50)``."""
        rule = rule if rule is not None else CreditRule(**fields)  # type: ignore[arg-type]
        self._rules[feature] = (rule, f"{feature}: {rule.describe()}")
        return rule

    def remove(self, feature: str) -> None:
        self._rules.pop(feature, None)

    def get(self, feature: str | None) -> tuple[CreditRule, str] | None:
        """The rule for ``feature`` and its description, or None when no rule applies."""
        if not self._rules:
            return None
        found = self._rules.get(feature) if feature is not None else None
        return found if found is not None else self._rules.get("*")

    def __bool__(self) -> bool:
        return bool(self._rules)

    def __contains__(self, feature: object) -> bool:
        return feature in self._rules
