"""UsageEvent: the record of one logical LLM call, action or custom usage. Its schema is public and versioned.

One event per logical call: the provider SDK's retries are folded into ``attempts``; the event ``id`` is
generated once per call and is the idempotency key every sink and downstream system deduplicates on.
No prompt or completion text is ever part of an event.

Besides LLM calls (``event_type`` from the endpoint: ``chat_completion``, ``message`` …) there are the events
the product records itself (:data:`PRODUCT_EVENT_TYPES`): ``action`` (one unit of product work, billed once for
all the calls it made; see ``docs/actions.md``), ``usage`` (custom units: pages, minutes …) and ``outcome``.
"""

from __future__ import annotations

import random
import time
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ACTION", "EVENT_SCHEMA_VERSION", "OUTCOME", "PRODUCT_EVENT_TYPES", "USAGE", "CallStatus", "UsageEvent",
           "UsageStatus", "is_llm_call", "new_event_id"]

EVENT_SCHEMA_VERSION = 1
"""Fields are only ever added (with defaults, so older events stay valid): the version moves only if one changes."""

ACTION = "action"
USAGE = "usage"
OUTCOME = "outcome"
PRODUCT_EVENT_TYPES = frozenset({ACTION, USAGE, OUTCOME})
"""Event types the product records (not LLM calls): their ``provider`` is ``"metricaos"``, their tokens 0."""


def is_llm_call(event: UsageEvent) -> bool:
    """Whether ``event`` is an LLM call (not an action, custom usage or outcome). An action's ``cost_usd`` is the
    sum of its calls': totals of cost, tokens or requests over events count LLM calls only."""
    return event.event_type not in PRODUCT_EVENT_TYPES

CallStatus = Literal["ok", "error", "cancelled"]
"""``ok``: the provider answered and the body was read to the end. ``error``: the provider answered with an
error status, the connection failed, or a stream failed mid-way. ``cancelled``: the caller abandoned a
stream (break, close, garbage collection, task cancellation) before it ended."""

UsageStatus = Literal["reported", "estimated", "invalid", "none"]
"""``reported``: counts are the provider's. ``estimated``: the provider sent none (abandoned or failed
stream, endpoint without usage); counts are our estimate. ``invalid``: the provider's usage was impossible
(see ``usage_problem``) and counts were zeroed. ``none``: nothing was consumed (error before generation)."""


def new_event_id() -> str:
    """A UUIDv7 string: unique, and sortable by creation time (RFC 9562)."""
    # random (seeded from os.urandom, reseeded in forked children) instead of a syscall per id; small ints
    # formatted in one call rather than a 128-bit one formatted and sliced.
    ms = _time_ns() // 1_000_000
    rand = _getrandbits(74)
    return "%08x-%04x-7%03x-%04x-%012x" % (  # noqa: UP031 - a %-format is the fastest of the three here
        ms >> 16 & 0xFFFF_FFFF, ms & 0xFFFF, rand >> 62, 0x8000 | rand >> 48 & 0x3FFF, rand & 0xFFFF_FFFF_FFFF)


_time_ns = time.time_ns
_getrandbits = random.getrandbits


class UsageEvent(BaseModel):
    """One metered LLM call. Token buckets are inclusive (see :class:`metricaos_sdk.Usage`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(default_factory=new_event_id, description="Unique idempotency key (UUIDv7).")
    schema_version: int = EVENT_SCHEMA_VERSION
    timestamp: datetime = Field(description="When the call started (UTC).")
    event_type: str = Field(description="What was called: chat_completion, response, embedding, message …")

    customer_id: str | None = None
    user_id: str | None = None
    workspace_id: str | None = None
    feature: str | None = None
    environment: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)

    provider: str
    model: str | None = Field(default=None, description="The model the provider says answered, else the one requested.")
    requested_model: str | None = None
    endpoint: str = Field(description="The API path called, e.g. /chat/completions.")

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0
    total_tokens: int = 0
    web_search_requests: int = 0
    usage_status: UsageStatus = "reported"
    usage_problem: str | None = Field(default=None, description="Why usage is invalid or estimated, and what was received.")

    cost_usd: Decimal | None = Field(default=None, description="Exact cost; None when the model has no price.")
    price_status: str = "unpriced"
    price_id: str | None = None
    price_table_version: str | None = None
    price_effective_from: date | None = None
    service_tier: str | None = None

    billable: bool = True
    status: CallStatus = "ok"
    error_type: str | None = None
    http_status: int | None = None
    streamed: bool = False
    duration_ms: float = 0.0
    attempts: int = 1
    request_id: str | None = Field(default=None, description="The provider's request or response id.")
    sdk_version: str = ""

    credits: Decimal | None = Field(default=None, description="Credits the call consumed (0 when not billable); "
                                    "None when no credit rule applies.")
    credit_rule: str | None = Field(default=None, description="The rule that produced ``credits``, as text.")
    overage: Decimal | None = Field(default=None, description="The part of this call beyond the plan's allowance, "
                                    "in the plan's unit (overage plans only).")
    overage_cost_usd: Decimal | None = Field(default=None, description="``overage`` at the plan's overage price.")

    action_id: str | None = Field(default=None, description="The action this event belongs to: on an LLM call or "
                                  "custom usage, the innermost action it was made in; on an action's own event, its id "
                                  "(which is also the event's ``id``).")
    parent_action_id: str | None = Field(default=None, description="The action enclosing ``action_id`` (None: "
                                         "``action_id`` is outermost).")
    action_name: str | None = Field(default=None, description="The name of ``action_id``'s action.")
    unit: str | None = Field(default=None, description="Custom usage's unit (``page``, ``minute``; an outcome's name); "
                             "None for LLM calls and actions.")
    quantity: Decimal | None = Field(default=None, description="How many ``unit`` were used (exact); None for LLM calls.")
    billable_rule: str | None = Field(default=None, description="The billable rule that decided ``billable`` "
                                      "(``environment test``, ``status error`` …); None when none applied.")
    action_calls: int | None = Field(default=None, description="On an action's own event: how many LLM calls it made "
                                     "(nested actions' included).")
    server_address: str | None = Field(default=None, description="The host (``host:port`` when a port is given) the "
                                       "call was sent to, e.g. ``api.deepseek.com``; None for events of the product's own.")
    provider_cost_usd: Decimal | None = Field(default=None, description="The cost the provider itself reported for the "
                                              "call (OpenRouter's and LiteLLM's ``usage.cost``, LiteLLM's "
                                              "``x-litellm-response-cost`` header, xAI's ``cost_in_usd_ticks``), "
                                              "beside ``cost_usd``, which is always the rate table's (see "
                                              "docs/providers.md); None when it reported none.")

    @classmethod
    def _trusted(cls, values: dict[str, Any]) -> UsageEvent:
        """Build from values the meter computed itself (every field, already of its type), skipping
        validation: this runs once per metered call. ``tests/test_events.py`` pins that it equals the
        validated construction."""
        if len(values) != len(_ALL_FIELDS):
            # Fields the caller does not know of: fill their defaults as validation would, in field order.
            missing = _ALL_FIELDS.difference(values)
            values = {**values, **{n: cls.model_fields[n].get_default(call_default_factory=True) for n in missing}}
            values = {n: values[n] for n in cls.model_fields}
        event = cls.__new__(cls)
        object.__setattr__(event, "__dict__", values)
        object.__setattr__(event, "__pydantic_fields_set__", _ALL_FIELDS)
        object.__setattr__(event, "__pydantic_extra__", None)
        object.__setattr__(event, "__pydantic_private__", None)
        return event


_ALL_FIELDS = frozenset(UsageEvent.model_fields)
