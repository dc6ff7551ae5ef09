"""``meter.plans`` and ``meter.customers``: define plans, assign customers, grant credits.

Everything written here is stored in the meter's quota store, so every process (or host, with Redis) that
shares the store sees it within ``quota_refresh_seconds``, and this process at once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime, time, timezone
from decimal import Decimal
from typing import Any

from ..errors import ConfigurationError
from ..events import new_event_id
from .alerts import QuotaAlert
from .amounts import check_amount
from .engine import QuotaEngine
from .limits import Quota
from .plans import Grant, Plan
from .statuses import period_keys, seed

__all__ = ["Customers", "Plans"]


def _utc(value: datetime | date | None, what: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        value = datetime.combine(value, time(0), timezone.utc)
    if value.tzinfo is None:
        raise ConfigurationError(f"{what} must be timezone-aware (or a date, taken as midnight UTC).")
    return value.astimezone(timezone.utc)


class Plans:
    """The meter's plan catalogue (``meter.plans``)."""

    def __init__(self, engine: QuotaEngine) -> None:
        self._engine = engine

    def define(self, plan: Plan | str, **fields: Any) -> Plan:
        """Create or replace a plan: ``define("starter", credits=2000)`` or ``define(Plan(...))``.

        Customers on the plan get the new definition immediately; their usage so far this period counts.
        """
        plan = plan if isinstance(plan, Plan) else Plan(plan, **fields)
        self._engine.admin.put_config("plan", plan.name, plan.to_json())
        self._engine.invalidate()
        return plan

    def get(self, name: str) -> Plan | None:
        return self._engine.plans().get(name)

    def __getitem__(self, name: str) -> Plan:
        plan = self.get(name)
        if plan is None:
            raise KeyError(name)
        return plan

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(sorted(self._engine.plans().values(), key=lambda p: p.name))

    def __contains__(self, name: object) -> bool:
        return name in self._engine.plans()

    def remove(self, name: str) -> None:
        """Delete a plan; its customers are left without one (unlimited unless they have their own limits)."""
        self._engine.admin.put_config("plan", name, None)
        self._engine.invalidate()

    def on_alert(self, callback: Callable[[QuotaAlert], Any]) -> Callable[[QuotaAlert], Any]:
        """Call ``callback(alert)`` when a customer crosses one of their plan's alert thresholds (once per
        threshold and period). Usable as a decorator. Exceptions it raises are logged, never propagated."""
        self._engine.alert_callbacks.append(callback)
        return callback


class Customers:
    """Plan assignments, billing anchors, own limits and grants per customer (``meter.customers``)."""

    def __init__(self, engine: QuotaEngine) -> None:
        self._engine = engine

    def _doc(self, customer_id: str) -> dict[str, Any]:
        text = self._engine.admin.get_config("customer", customer_id)
        return json.loads(text) if text else {}

    def _save(self, customer_id: str, doc: dict[str, Any]) -> None:
        known = period_keys(self._engine, customer_id)
        empty = not doc.get("plan") and not doc.get("limits") and not doc.get("anchor")
        self._engine.admin.put_config("customer", customer_id, None if empty else json.dumps(doc, sort_keys=True))
        self._engine.invalidate()
        seed(self._engine, customer_id, known)  # a new limit counts the period's use so far

    def assign(self, customer_id: str, plan: str | Plan | None, *, anchor: datetime | date | None = None) -> None:
        """Put the customer on ``plan`` (a name, or a Plan, defined on the way); ``None`` removes the plan.

        ``anchor``: the billing anchor — monthly periods then run from that day and time of each month
        (clamped to the month's last day); without it periods follow the calendar. The customer's own
        limits (``meter.set_quota``) stay in force alongside the plan.
        """
        if isinstance(plan, Plan):
            if self._engine.plans().get(plan.name) != plan:
                Plans(self._engine).define(plan)
            plan = plan.name
        elif plan is not None and plan not in self._engine.plans():
            raise ConfigurationError(f"No plan named {plan!r}: define it first with meter.plans.define({plan!r}, ...).")
        doc = self._doc(customer_id)
        doc["plan"] = plan
        anchor_utc = _utc(anchor, "anchor")
        if anchor_utc is not None:
            doc["anchor"] = anchor_utc.isoformat()
        self._save(customer_id, doc)

    def plan_of(self, customer_id: str) -> Plan | None:
        """The customer's plan, or None."""
        policy = self._engine.policy(customer_id)
        return policy.plan if policy is not None else None

    def anchor_of(self, customer_id: str) -> datetime | None:
        value = self._doc(customer_id).get("anchor")
        return datetime.fromisoformat(value) if value else None

    def set_limits(self, quotas: list[Quota]) -> None:
        """Hard limits of the customer's own (what ``meter.set_quota`` writes)."""
        for quota in quotas:
            doc = self._doc(quota.customer_id)
            doc.setdefault("limits", {})[quota.unit] = {"limit": str(quota.limit), "period": quota.period}
            self._save(quota.customer_id, doc)

    def remove_limits(self, customer_id: str) -> None:
        doc = self._doc(customer_id)
        doc.pop("limits", None)
        self._save(customer_id, doc)

    def limits_of(self, customer_id: str) -> list[Quota]:
        limits = self._doc(customer_id).get("limits") or {}
        return [Quota(customer_id, unit, Decimal(v["limit"]) if unit in ("cost_usd", "credits") else int(v["limit"]),
                      v["period"]) for unit, v in sorted(limits.items())]

    def grant(self, customer_id: str, amount: int | Decimal | str, *, unit: str = "credits",
              expires_at: datetime | date | None = None, kind: str = "topup", grant_id: str | None = None) -> Grant:
        """Give the customer ``amount`` on top of their allowance (a prepaid pack, a promotion …).

        Spent expiring-first together with the period's allowance; ``expires_at=None`` never expires.
        Re-granting the same ``grant_id`` replaces it (idempotent, e.g. keyed on a payment id).
        """
        value = check_amount(unit, amount, "grant amount")
        grant = Grant(id=grant_id or new_event_id(), customer_id=customer_id,
                      amount=int(value) if unit in ("tokens", "requests") else value, unit=unit, kind=kind,
                      expires_at=_utc(expires_at, "expires_at"), granted_at=datetime.now(timezone.utc))
        self._engine.admin.put_config(f"grant:{customer_id}", grant.id, grant.to_json())
        self._engine.invalidate()
        return grant

    def grants(self, customer_id: str, *, include_expired: bool = False) -> list[Grant]:
        """The customer's grants, expiring first."""
        now = datetime.now(timezone.utc)
        grants = [Grant.from_json(d) for d in self._engine.admin.list_config(f"grant:{customer_id}").values()]
        if not include_expired:
            grants = [g for g in grants if g.expires_at is None or g.expires_at > now]
        return sorted(grants, key=lambda g: (g.expires_at is None, g.expires_at or now))

    def revoke(self, customer_id: str, grant_id: str) -> None:
        """Withdraw a grant (what was already drawn from it stays used)."""
        self._engine.admin.put_config(f"grant:{customer_id}", grant_id, None)
        self._engine.invalidate()
