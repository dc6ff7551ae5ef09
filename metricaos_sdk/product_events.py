"""The events the product records itself: an action's (when it ends) and custom usage's (``record_usage``).

Pure assembly plus the quota steps of :mod:`.quota.priced`; the meter records what these return. The LLM calls'
events are :mod:`.event_builder`'s.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .actions import ActionRun, current_action
from .billable import Decision
from .context import Attribution, current_attribution
from .errors import ConfigurationError, QuotaExceeded, QuotaUnavailable
from .events import ACTION, UsageEvent
from .quota.amounts import check_amount
from .quota.credits import CreditRule
from .quota.engine import draws_quota
from .quota.priced import finish_priced, reserve_credits, settle_usage

if TYPE_CHECKING:
    from .meter import Meter

__all__ = ["end_action", "record_usage", "start_action", "usage_event_id"]

PROVIDER = "metricaos"
"""The ``provider`` of the events the product records (no LLM provider made them)."""
USAGE_NAMESPACE = uuid.UUID("6f1c1c2e-3d5b-5f0e-9a56-6d6574726963")
"""The UUIDv5 namespace of custom usage ids: the same customer, unit and idempotency key give the same id."""
_CANCELLED = (asyncio.CancelledError, KeyboardInterrupt, GeneratorExit, SystemExit)


def _attribution(meter: Meter, inner: Attribution) -> Attribution:
    attribution = current_attribution().merged(inner)
    if attribution.environment is None and meter.config.environment is not None:
        attribution = attribution.merged(Attribution(environment=meter.config.environment))
    return attribution


def _decide(meter: Meter, a: Attribution, event_type: str) -> Decision:
    rules = meter._quotas.billable
    decision = rules.before(environment=a.environment, feature=a.feature, event_type=event_type, tags=a.tags)
    if rules.by_plan and a.customer_id is not None:
        decision = rules.plan(decision, meter._plan_of(a.customer_id))
    return decision


def _draws(billable: bool, rule: str | None) -> bool:
    return draws_quota(_Probe(billable, rule))  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class _Probe:
    billable: bool
    billable_rule: str | None


# -- actions ----------------------------------------------------------------------------------------------
def start_action(meter: Meter, run: ActionRun) -> None:
    """Attribute, price and decide the action; reserve its credits when it is the one that charges. Raises only
    QuotaExceeded / RateLimited / QuotaUnavailable (nothing inside has run)."""
    spec = run.spec
    run.attribution = a = _attribution(meter, spec.attribution)
    try:
        price: CreditRule | Decimal | None = spec.credits if spec.credits is not None else spec.rule
        if price is None:
            found = meter.credits.get(a.feature)
            if found is not None and found[0].prices_calls:
                price = found[0]
        run.price = price
        if isinstance(price, Decimal):
            run.credit_rule = f"action {spec.name}: {price} per action"
        elif price is not None:
            run.credit_rule = (f"action {spec.name}: {price.per_call} per action" if price.per_call is not None
                               else f"action {spec.name}: {price._describe_calls()}, over its calls")
        run.billable, run.billable_rule = _decide(meter, a, ACTION)
        if price is None or run.charging is not None:
            return  # nothing to charge here, or an enclosing action charges for this one
        run.charging = run
        hold = price if isinstance(price, Decimal) else (
            Decimal(price.per_call) if price.per_call is not None else spec.reserve)
        if hold and a.customer_id is not None and _draws(run.billable, run.billable_rule):
            lease = spec.lease_seconds if spec.lease_seconds is not None else meter.config.quota_lease_seconds
            reserve_credits(meter._quotas, run, hold, lease)
            run.reserved = hold
    except (QuotaExceeded, QuotaUnavailable):
        raise  # the decision the caller asked for: the action does not start
    except Exception:
        meter._fault("could not start metering an action; it runs unmetered")


def end_action(meter: Meter, run: ActionRun, exc: BaseException | None) -> None:
    """Build the action's event, settle its reservation at what it charged, record it. Never raises."""
    try:
        event = _action_event(meter, run, exc)
        event = finish_priced(meter._quotas, run, event, _draws(event.billable, event.billable_rule))
    except Exception:
        meter._quotas.abandon(run)  # type: ignore[arg-type]  # nothing held past this point
        meter._fault("could not record an action")
        return
    meter._record(event)


def _action_event(meter: Meter, run: ActionRun, exc: BaseException | None) -> UsageEvent:
    spec = run.spec
    if exc is not None:
        status, error_type = ("cancelled" if isinstance(exc, _CANCELLED) else "error"), type(exc).__name__
    elif run.failure is not None:
        status, error_type = "error", run.failure
    else:
        status, error_type = "ok", None
    cost, at_cost, input_tokens, output_tokens = run.totals()
    billable, billable_rule = run.billable, run.billable_rule
    credits: Decimal | None = None
    credit_rule = run.credit_rule
    if run.charging is run:
        if not _draws(billable, billable_rule):
            credits = Decimal(0)
        elif status == "ok" or spec.on_failure == "charge":
            price = run.price
            credits = price if isinstance(price, Decimal) else price.credits(  # type: ignore[union-attr]
                input_tokens=input_tokens, output_tokens=output_tokens, cost_usd=cost)
            if status != "ok":
                credit_rule = f"{credit_rule}; charged on failure"
        elif spec.on_failure == "at_cost":
            credits, credit_rule = at_cost, f"{credit_rule}; at its calls' cost on failure"
        else:
            credits, billable, billable_rule = Decimal(0), False, "on_failure free"
    elif run.charging is not None:
        credits, credit_rule = Decimal(0), f"charged by action {run.charging.name}"
    a = run.attribution
    return UsageEvent._trusted({
        "id": run.id, "schema_version": 1, "timestamp": run.started_at, "event_type": ACTION,
        "customer_id": a.customer_id, "user_id": a.user_id, "workspace_id": a.workspace_id, "feature": a.feature,
        "environment": a.environment, "tags": dict(a.tags) if a.tags else {},
        "provider": PROVIDER, "model": None, "requested_model": None, "endpoint": ACTION,
        "input_tokens": 0, "output_tokens": 0, "cached_input_tokens": 0, "cache_write_tokens": 0,
        "cache_write_5m_tokens": 0, "cache_write_1h_tokens": 0, "reasoning_tokens": 0, "total_tokens": 0,
        "web_search_requests": 0, "usage_status": "none", "usage_problem": None,
        "cost_usd": cost, "price_status": "sum_of_calls" if cost is not None else "unpriced", "price_id": None,
        "price_table_version": None, "price_effective_from": None, "service_tier": None,
        "billable": billable, "status": status, "error_type": error_type, "http_status": None,
        "streamed": False, "duration_ms": round(run.elapsed_ms(), 3), "attempts": 1,
        "request_id": None, "sdk_version": __version__,
        "credits": credits, "credit_rule": credit_rule, "overage": None, "overage_cost_usd": None,
        "action_id": run.id, "parent_action_id": run.parent.id if run.parent is not None else None,
        "action_name": spec.name, "unit": None, "quantity": None, "billable_rule": billable_rule,
        "action_calls": run.calls,
    })


# -- custom usage and outcomes ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Record:
    id: str
    attribution: Attribution


def usage_event_id(customer_id: str | None, unit: str, idempotency_key: str) -> str:
    """The id of custom usage: the same for the same customer, unit and key (UUIDv5), so recording it twice is
    one event (the sinks insert-or-ignore on the id) and one settlement (the quota store settles an id once)."""
    return str(uuid.uuid5(USAGE_NAMESPACE, "\x1f".join((customer_id or "", unit, idempotency_key))))


def _check_name(what: str, value: object, longest: int) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > longest:
        raise ConfigurationError(f"{what} must be a non-empty str of at most {longest} characters, got "
                                 f"{type(value).__name__} {str(value)[:40]!r}: pass a name such as 'page' or a key "
                                 "such as your document or ticket id.")
    return value


def record_usage(meter: Meter, unit: str, quantity: object, *, idempotency_key: str, event_type: str,
                 attribution: Attribution, timestamp: datetime | None, cost_usd: object = None) -> UsageEvent:
    """Build, price, count (once per key) and record custom usage; the event. Bad input raises
    ConfigurationError; anything else is a fault, logged and counted."""
    _check_name("record_usage() unit", unit, 100)
    _check_name("record_usage() idempotency_key", idempotency_key, 200)
    amount = check_amount("credits", quantity, f"record_usage() quantity of {unit!r}")
    if timestamp is not None and (not isinstance(timestamp, datetime) or timestamp.tzinfo is None):
        raise ConfigurationError("record_usage() timestamp must be an aware datetime (with tzinfo, e.g. "
                                 "datetime.now(timezone.utc)), or None for now.")
    cost = None if cost_usd is None else check_amount("cost_usd", cost_usd, "record_usage() cost_usd")
    a = _attribution(meter, attribution)
    action = current_action()
    event_id = usage_event_id(a.customer_id, unit, idempotency_key)
    billable, billable_rule = _decide(meter, a, event_type)
    draws = _draws(billable, billable_rule)
    credits: Decimal | None = None
    credit_rule: str | None = None
    found = meter.credits.get(a.feature)
    if found is not None and found[0].unit_price(unit) is not None:
        rule, name = found
        credits = rule.usage_credits(unit, amount) if draws else Decimal(0)
        credit_rule = f"{name.split(': ', 1)[0]}: {rule.describe_unit(unit)}"
        if action is not None and action.charging is not None:
            action.note_credits(credits)
            credits, credit_rule = Decimal(0), f"charged by action {action.charging.name}"
    when = (timestamp or datetime.now(timezone.utc)).astimezone(timezone.utc)
    values: dict[str, Any] = {
        "id": event_id, "schema_version": 1, "timestamp": when, "event_type": event_type,
        "customer_id": a.customer_id, "user_id": a.user_id, "workspace_id": a.workspace_id, "feature": a.feature,
        "environment": a.environment, "tags": dict(a.tags) if a.tags else {},
        "provider": PROVIDER, "model": None, "requested_model": None, "endpoint": event_type,
        "input_tokens": 0, "output_tokens": 0, "cached_input_tokens": 0, "cache_write_tokens": 0,
        "cache_write_5m_tokens": 0, "cache_write_1h_tokens": 0, "reasoning_tokens": 0, "total_tokens": 0,
        "web_search_requests": 0, "usage_status": "reported", "usage_problem": None,
        "cost_usd": cost, "price_status": "unpriced" if cost is None else "reported", "price_id": None, "price_table_version": None,
        "price_effective_from": None, "service_tier": None,
        "billable": billable, "status": "ok", "error_type": None, "http_status": None,
        "streamed": False, "duration_ms": 0.0, "attempts": 1, "request_id": None, "sdk_version": __version__,
        "credits": credits, "credit_rule": credit_rule, "overage": None, "overage_cost_usd": None,
        "action_id": action.id if action is not None else None,
        "parent_action_id": action.parent.id if action is not None and action.parent is not None else None,
        "action_name": action.spec.name if action is not None else None,
        "unit": unit, "quantity": amount.normalize() + 0, "billable_rule": billable_rule, "action_calls": None,
    }
    event = UsageEvent._trusted(values)
    if draws and credits:
        event = settle_usage(meter._quotas, _Record(event_id, a), event)
    meter._record(event)
    return event
