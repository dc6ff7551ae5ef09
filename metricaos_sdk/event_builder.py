"""Turning a finished call into its UsageEvent: usage decision, estimates, pricing, attribution.

Pure assembly — no I/O: the meter records what this returns.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .events import UsageEvent
from .faults import safe_text
from .providers.estimate import estimate_input_tokens
from .usage import Usage

if TYPE_CHECKING:
    from .meter import Meter
    from .outcome import CallOutcome
    from .wrappers.call import MeteredCall

__all__ = ["build_event", "quote_call"]

log = logging.getLogger("metricaos_sdk")
_warned_unpriced: set[tuple[str, str | None]] = set()
# Bedrock bills the model id or inference profile that was invoked (``global.`` and regional profiles have
# different prices), while its response names only Anthropic's model: price what was invoked.
_PRICED_AS_INVOKED = frozenset({"bedrock"})


def build_event(meter: Meter, call: MeteredCall, outcome: CallOutcome) -> UsageEvent:
    """The event of ``call``, ended as ``outcome`` says: its usage (reported, estimated, invalid or none), price,
    billable decision and attribution. Pure: no I/O (the quota engine adds credits and overage after)."""
    status, usage, problem, model = outcome.status, outcome.usage, outcome.problem, outcome.model
    service_tier = outcome.service_tier
    answered = call.http_status is not None and 200 <= call.http_status < 300
    if usage is not None:
        usage_status = "reported"
    elif problem is not None and answered and status == "ok" and not problem.startswith("the response body"):
        usage_status, usage = "invalid", Usage()
    elif answered:
        # The provider answered but we have no usage: an abandoned or failed stream, or an unread body.
        # Output: counted over the text received where the endpoint can find it (OutputText), else one
        # token per streamed event.
        output, output_method = outcome.output_estimate or (outcome.content_chunks or 0,
                                                            "output counted as one token per streamed event")
        partial = outcome.partial
        if partial is not None:  # the input side arrived (Anthropic's message_start): keep it
            usage = replace(partial, output_tokens=max(partial.output_tokens, output))
            method = "input as reported when the stream started"
        else:
            tokens, method = estimate_input_tokens(call.requested_model, call.body, meter.config.tiktoken_cache_dir)
            usage = Usage(input_tokens=tokens, output_tokens=output)
        usage_status = "estimated"
        problem = "; ".join(p for p in (problem, method, output_method) if p)
    else:
        usage_status, usage = "none", Usage()
    a = call.attribution
    rules = meter._quotas.billable
    # The billable rules (billable.py): test/internal/demo, failed, retried … recorded, not billed.
    billable, billable_rule = rules.after_call(
        rules.before(environment=a.environment, feature=a.feature, event_type=call.endpoint.event_type, tags=a.tags),
        status=status, answered=answered and (status == "ok" or usage.total_tokens > 0), attempts=call.attempts,
        input_tokens=usage.input_tokens, cached_input_tokens=usage.cached_input_tokens)
    if rules.by_plan and a.customer_id is not None:
        billable, billable_rule = rules.plan((billable, billable_rule), meter._plan_of(a.customer_id))
    model = model or call.requested_model
    # An estimate of nothing (a text-format transcription, a body without text) is no estimate: cost unknown.
    priced = usage_status == "reported" or (usage_status == "estimated" and usage.total_tokens > 0)
    # Bedrock prices by the model id invoked (regional and global profiles differ); the answer names only the model.
    priced_model = call.requested_model if call.provider in _PRICED_AS_INVOKED else model
    quote = quote_call(meter, call, priced_model, usage, service_tier) if priced else None
    if quote is not None and quote.cost_usd is None:
        key = (call.provider, priced_model)
        if key not in _warned_unpriced:
            _warned_unpriced.add(key)
            log.warning("metricaos_sdk: no price for %s model %s; its calls are recorded with cost_usd=None",
                        call.provider, safe_text(repr(priced_model), 120))
    action = call.action
    if quote is not None:
        cost, price_status, price_id = quote.cost_usd, quote.price_status, quote.price_id
        table_version, effective_from = quote.table_version, quote.effective_from
    else:  # an error the provider does not bill costs 0; impossible usage has an unknown cost
        cost, price_status = (Decimal(0), "not_billed") if usage_status == "none" else (None, "unpriced")
        price_id = table_version = effective_from = None
    # A dict display, in field order: one bytecode builds it (dict(**kwargs) would build it twice).
    return UsageEvent._trusted({
        "id": call.id, "schema_version": 1, "timestamp": call.started_at, "event_type": call.endpoint.event_type,
        "customer_id": a.customer_id, "user_id": a.user_id, "workspace_id": a.workspace_id, "feature": a.feature,
        "environment": a.environment, "tags": dict(a.tags) if a.tags else {},
        "provider": call.provider, "model": model, "requested_model": call.requested_model, "endpoint": call.path,
        "input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
        "cached_input_tokens": usage.cached_input_tokens, "cache_write_tokens": usage.cache_write_tokens,
        "cache_write_5m_tokens": usage.cache_write_5m_tokens, "cache_write_1h_tokens": usage.cache_write_1h_tokens,
        "reasoning_tokens": usage.reasoning_tokens, "total_tokens": usage.input_tokens + usage.output_tokens,
        "web_search_requests": usage.web_search_requests, "usage_status": usage_status, "usage_problem": problem,
        "cost_usd": cost, "price_status": price_status, "price_id": price_id, "price_table_version": table_version,
        "price_effective_from": effective_from, "service_tier": service_tier,
        "billable": billable, "status": status, "error_type": outcome.error_type, "http_status": call.http_status,
        "streamed": call.streamed, "duration_ms": round(outcome.duration_ms, 3), "attempts": call.attempts,
        "request_id": outcome.response_id, "sdk_version": __version__,
        # set by the quota engine
        "credits": None, "credit_rule": None, "overage": None, "overage_cost_usd": None,
        "action_id": action.id if action is not None else None,
        "parent_action_id": action.parent.id if action is not None and action.parent is not None else None,
        "action_name": action.spec.name if action is not None else None,
        "unit": None, "quantity": None, "billable_rule": billable_rule, "action_calls": None,
        "server_address": call.server_address, "provider_cost_usd": call.provider_cost,
    })


def quote_call(meter: Meter, call: MeteredCall, model: str | None, usage: Usage, service_tier: str | None) -> Any:
    price = meter.rates.price
    deployment = call.deployment
    if deployment is None:
        return price(call.provider, model or "", usage, at=call.started_at, service_tier=service_tier)
    # Azure: a deployment in the user's map prices as the model it maps to; otherwise the model the answer
    # names, and failing that the deployment name itself (deployments are often named after their model).
    if meter.rates.maps_deployment(deployment):
        return price(call.provider, deployment, usage, at=call.started_at, service_tier=service_tier)
    quote = price(call.provider, model or "", usage, at=call.started_at, service_tier=service_tier)
    if quote.price_status in ("unpriced", "fallback") and model != deployment:
        named = price(call.provider, deployment, usage, at=call.started_at, service_tier=service_tier)
        if named.price_status not in ("unpriced", "fallback"):
            return named
    return quote
