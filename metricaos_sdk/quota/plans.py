"""Plans: named allowances per period, what happens at the limit, sub-limits, rate limits and alerts.

A plan is a value; customers are assigned one (``meter.customers.assign``). Plans are stored with the
quota store as JSON, so every process sharing the store enforces the same ones.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from ..errors import ConfigurationError
from .amounts import UNITS, check_amount
from .periods import RATE_WINDOWS, Period, RateWindow, check_period

__all__ = ["Grant", "OnLimit", "Plan", "RateLimit"]

OnLimit = Literal["hard", "soft", "overage", "throttle"]
ON_LIMIT: tuple[str, ...] = ("hard", "soft", "overage", "throttle")
Amount = int | Decimal | str


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``requests`` calls and/or ``tokens`` tokens per ``per`` window ("second", "minute", "hour").

    Windows are fixed and aligned to the clock (a minute starts at :00). Exceeding one raises
    :class:`~metricaos_sdk.RateLimited` with ``retry_after`` = seconds to the next window.
    """

    requests: int | None = None
    tokens: int | None = None
    per: RateWindow = "minute"

    def __post_init__(self) -> None:
        if self.per not in RATE_WINDOWS:
            raise ConfigurationError(f"Unknown rate window {self.per!r}: use 'second', 'minute' or 'hour'.")
        if self.requests is None and self.tokens is None:
            raise ConfigurationError("RateLimit needs requests= and/or tokens=.")
        for unit in ("requests", "tokens"):
            if getattr(self, unit) is not None:
                check_amount(unit, getattr(self, unit), f"RateLimit {unit}")


@dataclass(frozen=True)
class Plan:
    """A named allowance per period, in one or more units (``credits``, ``tokens``, ``cost_usd``, ``requests``).

    ``Plan("starter", credits=2000)`` allows 2,000 credits a month. ``on_limit`` says what happens when a
    call would not fit: ``"hard"`` raises :class:`~metricaos_sdk.QuotaExceeded` before sending,
    ``"soft"`` allows it and fires the alert callbacks, ``"overage"`` allows it and marks the part beyond
    the allowance on the event (priced at ``overage_price_usd`` per unit), ``"throttle"`` raises
    :class:`~metricaos_sdk.RateLimited` with ``retry_after``.

    ``features`` caps features within the allowance: ``{"summarize_document": 500}`` (in the plan's
    first unit) or ``{"summarize_document": {"requests": 20}}``. ``rate_limits`` add per-minute (etc.)
    caps. ``alerts`` are the fractions of an allowance at which the alert callbacks fire, once per period.
    ``anchored``: periods start at the customer's billing anchor when they have one (else on the calendar).
    """

    name: str
    credits: Amount | None = None
    tokens: int | None = None
    cost_usd: Amount | None = None
    requests: int | None = None
    period: Period = "month"
    on_limit: OnLimit = "hard"
    features: Mapping[str, Amount | Mapping[str, Amount]] = field(default_factory=dict)
    rate_limits: Sequence[RateLimit] = ()
    alerts: Sequence[float] = (0.8, 1.0)
    overage_price_usd: Amount | None = None
    anchored: bool = True

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ConfigurationError("A plan needs a name.")
        check_period(self.period)
        if self.on_limit not in ON_LIMIT:
            raise ConfigurationError(f"Unknown on_limit {self.on_limit!r}: use one of {', '.join(ON_LIMIT)}.")
        for unit in UNITS:
            value = getattr(self, unit)
            if value is not None:
                object.__setattr__(self, unit, _normal(unit, check_amount(unit, value, f"Plan {self.name!r} {unit}")))
        units = self.units
        features: dict[str, dict[str, int | Decimal]] = {}
        for feature, spec in dict(self.features).items():
            if not isinstance(spec, Mapping):
                if not units:
                    raise ConfigurationError(f"Plan {self.name!r}: give feature limits as {{unit: amount}} when the "
                                             "plan has no allowance of its own.")
                spec = {units[0]: spec}
            features[feature] = {u: _normal(u, check_amount(u, v, f"Plan {self.name!r} feature {feature!r} {u}"))
                                 for u, v in spec.items()}
        object.__setattr__(self, "features", features)
        rates = (self.rate_limits,) if isinstance(self.rate_limits, RateLimit) else tuple(self.rate_limits)
        object.__setattr__(self, "rate_limits", rates)
        alerts = tuple(sorted({float(a) for a in self.alerts}))
        if any(not 0 < a <= 10 for a in alerts):
            raise ConfigurationError(f"Plan {self.name!r}: alerts are fractions of the allowance, like 0.8 and 1.0.")
        object.__setattr__(self, "alerts", alerts)
        if self.overage_price_usd is not None:
            object.__setattr__(self, "overage_price_usd",
                               check_amount("cost_usd", self.overage_price_usd, f"Plan {self.name!r} overage_price_usd"))

    @property
    def units(self) -> list[str]:
        """The units the plan has an allowance in, credits first."""
        return [u for u in UNITS if getattr(self, u) is not None]

    def allowance(self, unit: str) -> int | Decimal | None:
        return getattr(self, unit) if unit in UNITS else None

    def to_json(self) -> str:
        data: dict[str, Any] = {u: str(getattr(self, u)) for u in self.units}
        data.update(name=self.name, period=self.period, on_limit=self.on_limit, anchored=self.anchored,
                    alerts=list(self.alerts),
                    features={f: {u: str(v) for u, v in s.items()} for f, s in self.features.items()},  # type: ignore[union-attr]
                    rate_limits=[{"requests": r.requests, "tokens": r.tokens, "per": r.per} for r in self.rate_limits])
        if self.overage_price_usd is not None:
            data["overage_price_usd"] = str(self.overage_price_usd)
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Plan:
        data = json.loads(text)
        data["rate_limits"] = [RateLimit(**r) for r in data.get("rate_limits", [])]
        return cls(**data)


def _normal(unit: str, amount: Decimal) -> int | Decimal:
    return int(amount) if unit in ("tokens", "requests") else amount


@dataclass(frozen=True, slots=True)
class Grant:
    """Credits (or another unit) given to a customer on top of their plan: a prepaid pack or a promotion.

    A grant adds to the customer's allowance of the same unit. A call draws first from whichever of the
    period's allowance and the active grants expires first, so nothing is left to lapse while something
    longer-lived is spent. ``expires_at=None`` never expires (drawn last).
    """

    id: str
    customer_id: str
    amount: int | Decimal
    unit: str = "credits"
    kind: str = "topup"
    expires_at: datetime | None = None
    granted_at: datetime | None = None

    def to_json(self) -> str:
        return json.dumps({"id": self.id, "customer_id": self.customer_id, "amount": str(self.amount),
                           "unit": self.unit, "kind": self.kind,
                           "expires_at": self.expires_at.isoformat() if self.expires_at else None,
                           "granted_at": self.granted_at.isoformat() if self.granted_at else None})

    @classmethod
    def from_json(cls, text: str) -> Grant:
        d = json.loads(text)
        return cls(id=d["id"], customer_id=d["customer_id"], amount=_normal(d["unit"], Decimal(d["amount"])),
                   unit=d["unit"], kind=d["kind"],
                   expires_at=datetime.fromisoformat(d["expires_at"]) if d["expires_at"] else None,
                   granted_at=datetime.fromisoformat(d["granted_at"]) if d["granted_at"] else None)
