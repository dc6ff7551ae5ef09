"""A customer's period summed once, whatever the plan: what an invoice needs that no price changes.

:func:`~metricaos_sdk.billing.invoice.compute_invoice` prices a customer's groups under one plan; most of the work
is not the pricing but the sums — the metered, billable and invoiced stages, each feature's and each action's
usage and AI cost, and a charge's usage by feature and by action. They depend on the groups only, so a replay
(:mod:`.replay`) sums each customer once (:class:`CustomerTotals`) and prices it under every candidate plan
(``compute_invoice(..., totals=...)``); an invoice computed alone builds the same object, so both give the same
numbers by construction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .aggregate import Group, Quantities, meters_of, summed, total

__all__ = ["NO_ACTION", "NO_FEATURE", "ChargeUsage", "CustomerTotals"]

NO_FEATURE = "(none)"
NO_ACTION = "(no action)"


def _key(value: str | None, empty: str) -> str:
    return value if value is not None else empty


@dataclass(frozen=True)
class ChargeUsage:
    """The invoiced-stage usage of one meter (within one feature, or all): by feature, by action, and per
    ``(feature, action)`` pair with any usage, in line order (the invoice's ``usage`` lines)."""

    used: Decimal
    by_feature: dict[str, Decimal]
    by_action: dict[str, Decimal]
    lines: tuple[tuple[tuple[str | None, str | None], Decimal], ...]


@dataclass(frozen=True)
class Part:
    """A feature's (or action's) plan-independent numbers: billable and invoiced usage, AI cost."""

    billable: Quantities
    invoiced: Quantities
    cost_usd: Decimal


def _sum(members: list[tuple[Group, tuple[Any, ...]]]) -> Quantities:
    return summed([row for _, row in members], [g.usage.units for g, _ in members])


class CustomerTotals:
    """The sums of one customer's groups (from :func:`~metricaos_sdk.billing.rollup.usage`) that no plan changes.

    A charge's usage (:meth:`charge_usage`) is summed the first time a plan asks for its meter and feature, then
    kept: candidate plans charging the same meter share it.
    """

    __slots__ = ("_charges", "_rows", "actions", "billable", "cost_weights", "eligible", "features", "groups", "invoiced",
                 "metered")

    def __init__(self, groups: Sequence[Group]) -> None:
        self.groups = tuple(groups)
        self._rows = [meters_of(g.usage) for g in self.groups]
        billable_groups = [g for g in self.groups if g.billable]
        self.eligible = tuple(g for g in billable_groups if not g.adjusted)
        self.metered = total(g.usage for g in self.groups)
        self.billable = total(g.usage for g in billable_groups)
        self.invoiced = total(g.usage for g in self.eligible)
        """Before any hard limit (a plan's caps apply on top)."""
        self.features = self._parts("feature", NO_FEATURE)
        self.actions = self._parts("action_name", NO_ACTION)
        weights_feature: dict[str, Decimal] = {}
        weights_action: dict[str, Decimal] = {}
        for g in self.groups:
            if g.usage.cost_usd:
                f, a = _key(g.feature, NO_FEATURE), _key(g.action_name, NO_ACTION)
                weights_feature[f] = weights_feature.get(f, Decimal(0)) + g.usage.cost_usd
                weights_action[a] = weights_action.get(a, Decimal(0)) + g.usage.cost_usd
        self.cost_weights = (weights_feature, weights_action)
        """AI cost by feature and by action: how revenue is allocated when no metered charge weighs it."""
        self._charges: dict[tuple[str, str | None], ChargeUsage] = {}

    def _parts(self, column: str, empty: str) -> dict[str, Part]:
        by_name: dict[str, list[tuple[Group, tuple[Any, ...]]]] = {}
        for g, row in zip(self.groups, self._rows, strict=True):  # each group's meters read once
            by_name.setdefault(_key(getattr(g, column), empty), []).append((g, row))
        return {name: Part(billable=_sum([m for m in mine if m[0].billable]),
                           invoiced=_sum([m for m in mine if m[0].billable and not m[0].adjusted]),
                           cost_usd=sum((g.usage.cost_usd for g, _ in mine), Decimal(0)))
                for name, mine in by_name.items()}

    def charge_usage(self, meter: str, feature: str | None) -> ChargeUsage:
        """Invoiced-stage usage in ``meter`` of the eligible groups (of ``feature`` when given)."""
        found = self._charges.get((meter, feature))
        if found is None:
            found = self._charges[(meter, feature)] = self._charge_usage(meter, feature)
        return found

    def _charge_usage(self, meter: str, feature: str | None) -> ChargeUsage:
        mine = [g for g in self.eligible if feature is None or g.feature == feature]
        by_feature: dict[str, Decimal] = {}
        by_action: dict[str, Decimal] = {}
        pairs: dict[tuple[str | None, str | None], Decimal] = {}
        charged: set[tuple[str | None, str | None]] = set()
        for g in mine:
            amount = g.usage.get(meter)
            pair = (g.feature, g.action_name)
            pairs[pair] = pairs.get(pair, Decimal(0)) + amount  # every group of the pair, as the line sums them
            if amount:
                charged.add(pair)
                f, a = _key(g.feature, NO_FEATURE), _key(g.action_name, NO_ACTION)
                by_feature[f] = by_feature.get(f, Decimal(0)) + amount
                by_action[a] = by_action.get(a, Decimal(0)) + amount
        lines = tuple((pair, pairs[pair]) for pair in sorted(charged, key=lambda k: (k[0] or "", k[1] or "")))
        return ChargeUsage(sum(by_feature.values(), Decimal(0)), by_feature, by_action, lines)
