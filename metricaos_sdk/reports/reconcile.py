"""``metricaos reconcile``: our metered cost by UTC day and model against the provider's own cost export.

Three exports are read, told apart by their content (:func:`parse_costs`): the OpenAI Costs API's pages
(``GET /v1/organization/costs``, amounts in dollars), the OpenAI console's cost CSV (the same fields, one row
per result), and the Anthropic Admin API's cost report (``GET /v1/organizations/cost_report``, amounts as
decimal strings in cents). Each becomes :class:`ProviderCost` lines of exact ``Decimal`` dollars.

Our side is one SQL aggregate over the events of that provider, grouped by day, model and two flags
(estimated usage, no customer), with the exact sum of :mod:`.exact`. Rows are matched on :func:`model_key`:
the model name in lower case without its snapshot date, so ``gpt-4o-2024-08-06`` (a line item, or what the
API said answered) and ``gpt-4o`` (what was requested) are one row, as are ``claude-sonnet-4-20250514`` and
``claude-sonnet-4``. A day the export gives only as a total (no ``line_item``, no ``description`` grouping) is
compared as one row over all models.

Each row's difference (provider − ours) is explained in order: charges with no model (tools, storage), calls we
metered without a price (sized at the row's own priced rate per token, else at the model's over the range),
calls with estimated usage (up to their metered cost), and the remainder: *calls made outside the meter* when
the provider billed more, *our price table above the provider's bill* when we are higher. Calls without a
customer are shown with their cost beside it (they are metered, but billed to no one). A row whose difference
is within the :class:`Tolerance` matches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from ..errors import ConfigurationError
from ..events import PRODUCT_EVENT_TYPES
from ..formatting import usd
from .exact import tidy
from .provider_costs import Progress, ProviderCost, ProviderCosts, model_key, openai_line_item_model, parse_costs
from .source import EventSource
from .usage_report import Filters

__all__ = ["Explanation", "ProviderCost", "ProviderCosts", "ReconcileRow", "Reconciliation", "Tolerance",
           "model_key", "openai_line_item_model", "parse_costs", "parse_tolerance", "reconcile"]

_DAY = timedelta(days=1)
_MICRO = Decimal("0.000001")

# -- the comparison --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tolerance:
    """A difference at most ``absolute`` dollars, or at most ``relative`` of the provider's amount (whichever is
    larger), matches."""

    absolute: Decimal = Decimal("0.01")
    relative: Decimal = Decimal("0.01")

    def allows(self, difference: Decimal, base: Decimal) -> bool:
        """Whether ``difference`` is within tolerance of an amount ``base``."""
        return abs(difference) <= max(self.absolute, self.relative * abs(base))

    def __str__(self) -> str:
        parts = [usd(self.absolute)] if self.absolute else []
        parts += [f"{tidy(self.relative * 100)}%"] if self.relative else []
        return " or ".join(parts) or "exact"


def parse_tolerance(text: str) -> Tolerance:
    """``"0.05"`` ($0.05), ``"2%"`` (2 % of the provider's amount), or both: ``"0.05,2%"`` (whichever is larger)."""
    absolute, relative = Decimal(0), Decimal(0)
    for part in filter(None, (p.strip() for p in text.replace(" or ", ",").split(","))):
        try:
            if part.endswith("%"):
                relative = Decimal(part[:-1].strip()) / 100
            else:
                absolute = Decimal(part.lstrip("$"))
        except InvalidOperation:
            raise ConfigurationError(f"--tolerance {text!r}: {part!r} is not an amount: pass dollars (0.01), a "
                                     f"percentage (1%), or both (0.01,1%).") from None
    if absolute < 0 or relative < 0 or not (absolute.is_finite() and relative.is_finite()):
        raise ConfigurationError(f"--tolerance {text!r} is negative: pass 0 or more.")
    return Tolerance(absolute, relative)


@dataclass(frozen=True)
class Explanation:
    """One reason for (part of) a row's difference."""

    kind: str
    """``no_model_charges``, ``unpriced_calls``, ``estimated_usage``, ``unattributed_calls``, ``outside_meter``,
    ``price_above_bill`` or ``within_tolerance``."""
    text: str
    calls: int = 0
    tokens: int = 0
    amount: Decimal | None = None
    """Its size in dollars: the charges, the unpriced calls' estimated cost (``None``: no rate to estimate with),
    the estimated or unattributed calls' metered cost, the remainder."""
    explains: Decimal = Decimal(0)
    """The part of the difference it accounts for (the explanations' ``explains`` add up to the difference)."""

    def as_json(self) -> dict[str, Any]:
        """JSON-ready: money as exact decimal strings."""
        return {"kind": self.kind, "text": self.text, "calls": self.calls, "tokens": self.tokens,
                "amount": None if self.amount is None else str(tidy(self.amount)), "explains": str(tidy(self.explains))}


@dataclass(frozen=True)
class ReconcileRow:
    """One UTC day and model: the provider's amount, ours, the difference and what explains it."""

    day: date
    model: str | None
    """:func:`model_key`; ``None`` with ``scope`` ``day`` (all models) or ``no model``."""
    scope: str
    """``model``; ``day`` (the export gave only the day's total: every model is in the row); ``no model``."""
    provider_amount: Decimal | None
    """``None``: the export does not cover the day."""
    our_amount: Decimal
    calls: int
    status: str
    """``matches``, ``provider_higher``, ``ours_higher``, ``provider_only``, ``ours_only`` or ``not_in_export``."""
    explanations: tuple[Explanation, ...] = ()
    names: tuple[str, ...] = ()
    """The model names seen on either side (dated snapshots, line items)."""

    @property
    def difference(self) -> Decimal:
        """The provider's amount minus ours (0 when the export does not cover the day)."""
        return tidy((self.provider_amount or 0) - self.our_amount) if self.provider_amount is not None else Decimal(0)

    @property
    def label(self) -> str:
        return self.model if self.model is not None else "(all models)" if self.scope == "day" else "(no model)"

    def as_json(self) -> dict[str, Any]:
        """JSON-ready: money as exact decimal strings."""
        return {"day": self.day.isoformat(), "model": self.model, "scope": self.scope,
                "provider_amount": None if self.provider_amount is None else str(tidy(self.provider_amount)),
                "our_amount": str(tidy(self.our_amount)), "difference": str(self.difference), "calls": self.calls,
                "status": self.status, "explanations": [e.as_json() for e in self.explanations],
                "names": list(self.names)}


@dataclass(frozen=True)
class Reconciliation:
    """Every row of a reconciliation, by day then model, and the totals."""

    provider: str
    format: str
    since: datetime | None
    until: datetime | None
    tolerance: Tolerance
    rows: list[ReconcileRow]

    @property
    def provider_total(self) -> Decimal:
        return tidy(sum((r.provider_amount for r in self.rows if r.provider_amount is not None), Decimal(0)))

    @property
    def our_total(self) -> Decimal:
        """Ours over the days the export covers (the days it does not are left out, as the provider's are)."""
        return tidy(sum((r.our_amount for r in self.rows if r.provider_amount is not None), Decimal(0)))

    @property
    def matches(self) -> bool:
        """Whether every row the export covers matches."""
        return all(r.status in ("matches", "not_in_export") for r in self.rows)

    def as_json(self) -> dict[str, Any]:
        """JSON-ready: money as exact decimal strings."""
        return {"provider": self.provider, "format": self.format,
                "since": self.since.isoformat() if self.since else None,
                "until": self.until.isoformat() if self.until else None,
                "tolerance": {"absolute": str(self.tolerance.absolute), "relative": str(self.tolerance.relative)},
                "provider_total": str(self.provider_total), "our_total": str(self.our_total),
                "difference": str(tidy(self.provider_total - self.our_total)), "matches": self.matches,
                "rows": [r.as_json() for r in self.rows]}


@dataclass
class _Ours:
    calls: int = 0
    cost: Decimal = Decimal(0)
    priced_tokens: int = 0
    unpriced_calls: int = 0
    unpriced_tokens: int = 0
    estimated_calls: int = 0
    estimated_cost: Decimal = Decimal(0)
    unattributed_calls: int = 0
    unattributed_cost: Decimal = Decimal(0)
    names: set[str] = field(default_factory=set)

    def add(self, other: _Ours) -> None:
        for name in ("calls", "cost", "priced_tokens", "unpriced_calls", "unpriced_tokens", "estimated_calls",
                     "estimated_cost", "unattributed_calls", "unattributed_cost"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.names |= other.names

    def rate(self) -> Decimal | None:
        return self.cost / self.priced_tokens if self.priced_tokens and self.cost else None


def _our_costs(source: EventSource, provider: str, filters: Filters) -> dict[tuple[date, str | None], _Ours]:
    """Our calls to ``provider`` per (day, :func:`model_key`): one SQL aggregate, money summed exactly."""
    where, params = filters.where(source)
    product = ", ".join(f"'{t}'" for t in sorted(PRODUCT_EVENT_TYPES))
    where = f"{where} AND event_type NOT IN ({product})"
    cost = source.cost_sum()
    flags = ("CASE WHEN usage_status = 'estimated' THEN 1 ELSE 0 END",
             "CASE WHEN customer_id IS NULL OR customer_id = '' THEN 1 ELSE 0 END")
    sql = (f"SELECT {source.day()}, model, {flags[0]}, {flags[1]}, count(*), "
           f"sum(CASE WHEN cost_usd IS NOT NULL THEN total_tokens ELSE 0 END), "
           f"sum(CASE WHEN cost_usd IS NULL AND total_tokens > 0 THEN 1 ELSE 0 END), "
           f"sum(CASE WHEN cost_usd IS NULL THEN total_tokens ELSE 0 END), {', '.join(cost.aggregates)} "
           f"FROM {source.table} {where} GROUP BY 1, 2, 3, 4")
    groups: dict[tuple[Any, ...], list[Any]] = {}
    slow = False
    for row in source.query(sql, params):
        value, left = cost.value(tuple(row[8:]))
        slow |= bool(left)
        groups[tuple(row[:4])] = [*row[4:8], value]
    if slow and cost.slow is not None:  # the few costs the integer sums leave out, summed as Decimal
        for *key, value in source.query(f"SELECT {source.day()}, model, {flags[0]}, {flags[1]}, cost_usd FROM "
                                        f"{source.table} {where} AND {cost.slow}", params):
            groups[tuple(key)][4] += Decimal(value)
    out: dict[tuple[date, str | None], _Ours] = {}
    for (day, model, estimated, anonymous), (calls, priced_tokens, unpriced, unpriced_tokens, value) in groups.items():
        ours = out.setdefault((date.fromisoformat(day), model_key(model)), _Ours())
        ours.add(_Ours(calls=int(calls), cost=value, priced_tokens=int(priced_tokens or 0),
                       unpriced_calls=int(unpriced or 0), unpriced_tokens=int(unpriced_tokens or 0),
                       estimated_calls=int(calls) if estimated else 0,
                       estimated_cost=value if estimated else Decimal(0),
                       unattributed_calls=int(calls) if anonymous else 0,
                       unattributed_cost=value if anonymous else Decimal(0), names={model} if model else set()))
    return out


def _explain(provider: Decimal | None, no_model: Decimal, ours: _Ours, fallback_rate: Decimal | None,
             tolerance: Tolerance) -> tuple[str, tuple[Explanation, ...]]:
    """The row's status and explanations, in order, their ``explains`` adding up to the difference."""
    out: list[Explanation] = []
    covered = provider is not None
    gap = (provider or Decimal(0)) - ours.cost
    base = provider if provider else ours.cost
    matched = covered and tolerance.allows(gap, base)
    explain = covered and not matched
    if no_model:
        out.append(Explanation("no_model_charges", "charges without a model (tools, storage): the meter records "
                               "LLM calls by model", amount=no_model, explains=no_model if explain else Decimal(0)))
    left = gap - (no_model if explain else 0)
    if ours.unpriced_calls:
        rate = ours.rate() or fallback_rate
        estimate = None if rate is None else (ours.unpriced_tokens * rate).quantize(_MICRO)
        cap = max(left, Decimal(0)) if explain else Decimal(0)  # unpriced calls only ever explain a shortfall
        share = cap if estimate is None else min(estimate, cap)
        how = f"about {usd(estimate)} at our priced rate" if estimate is not None else "no rate to estimate them"
        out.append(Explanation("unpriced_calls", f"calls we metered without a price, {how}", ours.unpriced_calls,
                               ours.unpriced_tokens, estimate, share))
        left -= share
    if ours.estimated_calls:
        share = (min(abs(left), ours.estimated_cost) * (1 if left > 0 else -1)) if explain and left else Decimal(0)
        out.append(Explanation("estimated_usage", "calls with estimated usage (the provider reported none); their "
                               "cost could be off by up to what we metered", ours.estimated_calls,
                               amount=ours.estimated_cost, explains=share))
        left -= share
    if ours.unattributed_calls:
        out.append(Explanation("unattributed_calls", "calls without a customer: metered, but billed to no one",
                               ours.unattributed_calls, amount=ours.unattributed_cost))
    if covered and left:
        if not explain or tolerance.allows(left, base):
            out.append(Explanation("within_tolerance", f"within the tolerance ({tolerance})", amount=left,
                                   explains=left))
        elif left > 0:
            out.append(Explanation("outside_meter", "calls made outside the meter", amount=left, explains=left))
        else:
            why = " (it bills nothing here: another organization, project or key?)" if not provider else ""
            out.append(Explanation("price_above_bill", f"our price table above the provider's bill{why}",
                                   amount=left, explains=left))
    if not covered:
        status = "not_in_export"
    elif matched:
        status = "matches"
    elif not ours.calls:
        status = "provider_only"
    elif not provider:
        status = "ours_only"
    else:
        status = "provider_higher" if gap > 0 else "ours_higher"
    return status, tuple(out)


def reconcile(source: EventSource, costs: ProviderCosts, *, provider: str | None = None,
              since: datetime | None = None, until: datetime | None = None, tolerance: Tolerance | None = None,
              progress: Progress | None = None) -> Reconciliation:
    """Compare ``costs`` with our calls to ``provider`` (default: the export's) in ``source``, per UTC day and
    :func:`model_key`. ``since`` (inclusive) and ``until`` (exclusive) default to the days the export covers;
    days inside them on only one side are rows too (``not_in_export`` when the export does not cover them)."""
    tolerance = tolerance or Tolerance()
    provider = provider or costs.provider
    since = since if since is not None else costs.start
    until = until if until is not None else costs.end
    if progress:
        progress(0.0)
    ours = _our_costs(source, provider, Filters(since=since, until=until, provider=provider))
    if progress:
        progress(0.8)
    whole_days = {line.day for line in costs.lines if line.total}
    if costs.lines and len(whole_days) == len({line.day for line in costs.lines}):  # an export of day totals only
        whole_days |= costs.days
    charged: dict[tuple[date, str | None], list[ProviderCost]] = {}
    for line in costs.lines:
        if since is not None and datetime.combine(line.day, datetime.min.time(), timezone.utc) + _DAY <= since:
            continue
        if until is not None and datetime.combine(line.day, datetime.min.time(), timezone.utc) >= until:
            continue
        charged.setdefault((line.day, None if line.day in whole_days else model_key(line.model)), []).append(line)
    mine: dict[tuple[date, str | None], _Ours] = {}
    by_model: dict[str | None, _Ours] = {}
    everything = _Ours()
    for (day, key), sums in ours.items():
        mine.setdefault((day, None if day in whole_days else key), _Ours()).add(sums)
        by_model.setdefault(key, _Ours()).add(sums)
        everything.add(sums)
    rows = []
    for day, key in sorted(set(charged) | set(mine), key=lambda k: (k[0], k[1] is None, k[1] or "")):
        lines = charged.get((day, key), [])
        sums = mine.get((day, key), _Ours())
        provider_amount = sum((line.amount for line in lines), Decimal(0)) if day in costs.days or lines else None
        no_model = Decimal(0) if day in whole_days else sum((ln.amount for ln in lines if ln.model is None), Decimal(0))
        fallback = everything.rate() if day in whole_days else by_model[key].rate() if key in by_model else None
        status, explanations = _explain(provider_amount, no_model, sums, fallback, tolerance)
        names = sorted(sums.names | {ln.model for ln in lines if ln.model} | {ln.detail for ln in lines
                                                                              if ln.model is None and ln.detail})
        scope = "day" if day in whole_days else "model" if key is not None else "no model"
        rows.append(ReconcileRow(day, key, scope, provider_amount, tidy(sums.cost), sums.calls, status,
                                 explanations, tuple(names)))
    if progress:
        progress(1.0)
    return Reconciliation(provider, costs.format, since, until, tolerance, rows)
