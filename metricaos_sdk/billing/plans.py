"""Price plans: what a customer pays for a period — a base price, seats, metered charges, credit packs.

A :class:`PricePlan` is a value, stored as JSON in the billing tables (``Billing.plans``). It prices; the
quota :class:`~metricaos_sdk.Plan` enforces. The two are independent: give a customer both (same name, if
you like) to refuse calls at a limit *and* invoice them.

A :class:`Charge` prices one meter — ``credits``, ``tokens``, ``input_tokens``, ``output_tokens``,
``requests`` (LLM calls), ``actions``, ``cost_usd`` or any custom unit recorded with
``meter.record_usage`` / ``meter.record_outcome`` (``pages``, ``resolved_ticket`` …) — with an included
allowance (per period, and/or per seat), an overage price per unit or per block, and an optional hard limit.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ..errors import ConfigurationError
from ..quota.periods import Period, check_period
from .money import Amount, check_money, check_quantity

__all__ = ["BUILTIN_METERS", "Charge", "CreditPack", "PricePlan"]

BUILTIN_METERS: tuple[str, ...] = ("credits", "tokens", "input_tokens", "output_tokens", "requests", "actions",
                                   "cost_usd")
"""Meters read from the event's own fields; any other meter name is a custom unit (``UsageEvent.unit``)."""


@dataclass(frozen=True)
class Charge:
    """One metered line of a plan.

    ``Charge("credits", included=10_000, block_price="10", block_size=10_000)`` includes 10,000 credits a
    period and charges $10 per started block of 10,000 beyond. ``unit_price="0.000002"`` charges per unit
    instead (exactly, then rounded once on the line). ``included_per_seat`` adds to ``included`` for each
    seat, prorated (see :meth:`PricePlan.seat_days`). ``limit`` is a hard limit: usage beyond it is never
    invoiced (the quota store refuses it; a replay reports when it would have been hit). ``feature``
    restricts the charge to one feature's events. ``name`` labels the invoice lines.
    """

    meter: str
    included: Amount = 0
    included_per_seat: Amount = 0
    unit_price: Amount | None = None
    block_price: Amount | None = None
    block_size: Amount | None = None
    limit: Amount | None = None
    feature: str | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.meter, str) or not self.meter:
            raise ConfigurationError("A Charge needs a meter: 'credits', 'tokens', 'requests', 'actions' or a "
                                     "custom unit such as 'resolved_ticket'.")
        what = f"Charge {self.meter!r}"
        object.__setattr__(self, "included", check_quantity(self.included, f"{what} included"))
        object.__setattr__(self, "included_per_seat", check_quantity(self.included_per_seat, f"{what} included_per_seat"))
        if self.unit_price is not None and self.block_price is not None:
            raise ConfigurationError(f"{what} has both unit_price= and block_price=: give one of them.")
        if self.unit_price is not None:
            object.__setattr__(self, "unit_price", check_money(self.unit_price, f"{what} unit_price"))
            if self.block_size is not None:
                raise ConfigurationError(f"{what}: block_size= goes with block_price=, not unit_price=.")
        if self.block_price is not None:
            if self.block_size is None:
                raise ConfigurationError(f"{what} has block_price= but no block_size=: say how many units a block "
                                         "holds, e.g. block_size=10_000.")
            object.__setattr__(self, "block_price", check_money(self.block_price, f"{what} block_price"))
            object.__setattr__(self, "block_size", check_quantity(self.block_size, f"{what} block_size", positive=True))
        elif self.block_size is not None:
            raise ConfigurationError(f"{what} has block_size= but no block_price=: give the price of a block.")
        if self.limit is not None:
            object.__setattr__(self, "limit", check_quantity(self.limit, f"{what} limit"))

    @property
    def label(self) -> str:
        """The name on the invoice: ``name``, else the meter (and feature)."""
        if self.name:
            return self.name
        return f"{self.meter} ({self.feature})" if self.feature else self.meter

    def to_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in self.__dict__.items() if v is not None}


@dataclass(frozen=True)
class CreditPack:
    """A prepaid pack of credits sold at a price: ``CreditPack("10k", credits=10_000, price="80")``.

    A purchase (``billing.ledger.buy_pack``) is a line on the invoice of its period at ``price`` and adds
    ``credits`` to that period's allowance of the plan's ``credits`` charge.
    """

    name: str
    credits: Amount
    price: Amount

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigurationError("A CreditPack needs a name, e.g. CreditPack('10k', credits=10_000, price='80').")
        object.__setattr__(self, "credits", check_quantity(self.credits, f"CreditPack {self.name!r} credits", positive=True))
        object.__setattr__(self, "price", check_money(self.price, f"CreditPack {self.name!r} price"))


@dataclass(frozen=True)
class PricePlan:
    """What a plan costs: ``base_price`` per period, ``seat_price`` per seat (prorated), metered ``charges``,
    purchasable ``credit_packs``, all in ``currency`` (money is ``Decimal``; lines round half up to the
    currency's minor unit).

    ``PricePlan("growth", base_price="99", charges=[Charge("credits", included=10_000, block_price="10",
    block_size=10_000)])`` is the hybrid plan: a subscription with included credits and overage.
    """

    name: str
    base_price: Amount = 0
    seat_price: Amount = 0
    charges: Sequence[Charge] = ()
    credit_packs: Sequence[CreditPack] = ()
    currency: str = "USD"
    period: Period = "month"
    description: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigurationError("A PricePlan needs a name, e.g. PricePlan('growth', base_price='99').")
        what = f"PricePlan {self.name!r}"
        check_period(self.period)
        if not isinstance(self.currency, str) or len(self.currency) != 3 or not self.currency.isalpha():
            raise ConfigurationError(f"{what} currency must be a 3-letter ISO 4217 code such as 'USD', got {self.currency!r}.")
        object.__setattr__(self, "currency", self.currency.upper())
        object.__setattr__(self, "base_price", check_money(self.base_price, f"{what} base_price"))
        object.__setattr__(self, "seat_price", check_money(self.seat_price, f"{what} seat_price"))
        charges = (self.charges,) if isinstance(self.charges, Charge) else tuple(self.charges)
        if any(not isinstance(c, Charge) for c in charges):
            raise ConfigurationError(f"{what} charges must be Charge objects, e.g. Charge('credits', included=10_000).")
        object.__setattr__(self, "charges", charges)
        packs = (self.credit_packs,) if isinstance(self.credit_packs, CreditPack) else tuple(self.credit_packs)
        if any(not isinstance(p, CreditPack) for p in packs):
            raise ConfigurationError(f"{what} credit_packs must be CreditPack objects.")
        if len({p.name for p in packs}) != len(packs):
            raise ConfigurationError(f"{what} has two credit packs with the same name: give each pack its own name.")
        object.__setattr__(self, "credit_packs", packs)

    def pack(self, name: str) -> CreditPack:
        """The credit pack called ``name``, or a ConfigurationError listing the plan's packs."""
        for pack in self.credit_packs:
            if pack.name == name:
                return pack
        names = ", ".join(repr(p.name) for p in self.credit_packs) or "none"
        raise ConfigurationError(f"PricePlan {self.name!r} has no credit pack {name!r} (it has {names}): add it to "
                                 f"credit_packs= first.")

    @property
    def meters(self) -> list[str]:
        """The meters the plan charges, in order, without repeats."""
        return list(dict.fromkeys(c.meter for c in self.charges))

    def to_json(self) -> str:
        data = {"name": self.name, "base_price": str(self.base_price), "seat_price": str(self.seat_price),
                "charges": [c.to_dict() for c in self.charges], "currency": self.currency, "period": self.period,
                "credit_packs": [{"name": p.name, "credits": str(p.credits), "price": str(p.price)}
                                 for p in self.credit_packs],
                "description": self.description, "extra": self.extra}
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> PricePlan:
        data = json.loads(text)
        data["charges"] = [Charge(**c) for c in data.get("charges", [])]
        data["credit_packs"] = [CreditPack(**p) for p in data.get("credit_packs", [])]
        return cls(**data)
