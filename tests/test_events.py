"""UsageEvent: ids, schema, and the meter's unvalidated fast construction."""

from __future__ import annotations

import time
import uuid
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest
from pydantic import ValidationError

from metricaos_sdk import UsageEvent
from metricaos_sdk.events import new_event_id

VALUES = dict(
    id=new_event_id(), schema_version=1, timestamp=datetime(2026, 11, 27, 3, 0, tzinfo=timezone.utc),
    event_type="chat_completion", customer_id="c", user_id="u", workspace_id="w", feature="f", environment="production",
    tags={"k": "v"}, provider="openai", model="gpt-4.1-mini-2025-04-14", requested_model="gpt-4.1-mini",
    endpoint="/chat/completions", input_tokens=1200, output_tokens=300, cached_input_tokens=1024, cache_write_tokens=0,
    cache_write_5m_tokens=0, cache_write_1h_tokens=0, reasoning_tokens=64, total_tokens=1500, web_search_requests=0,
    usage_status="reported", usage_problem=None, cost_usd=Decimal("0.0006528"), price_status="priced",
    price_id="openai:gpt-4.1-mini", price_table_version="t", price_effective_from=date(2025, 4, 14),
    service_tier="default", billable=True, status="ok", error_type=None, http_status=200, streamed=False,
    duration_ms=1.5, attempts=1, request_id="chatcmpl-1", sdk_version="0.1.0",
)


def test_trusted_construction_equals_validated_construction():
    fast = UsageEvent._trusted(dict(VALUES))
    slow = UsageEvent(**VALUES)
    assert fast == slow
    assert fast.model_dump() == slow.model_dump()
    assert fast.model_dump_json() == slow.model_dump_json()


def test_trusted_construction_fills_defaults_of_fields_it_was_not_given():
    values = {k: v for k, v in VALUES.items() if k not in ("tags", "web_search_requests")}
    fast = UsageEvent._trusted(values)
    assert fast.tags == {} and fast.web_search_requests == 0


def test_event_ids_are_uuid7_and_unique():
    before = time.time_ns() // 1_000_000
    ids = [new_event_id() for _ in range(10_000)]
    after = time.time_ns() // 1_000_000
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122 and str(parsed) == text
        assert before <= parsed.int >> 80 <= after  # the first 48 bits are the creation time in ms
    times = [uuid.UUID(t).int >> 80 for t in ids]
    assert times == sorted(times)  # sortable by creation time (to the millisecond)


def test_events_are_frozen_and_reject_unknown_fields():
    event = UsageEvent(**VALUES)
    with pytest.raises(ValidationError):
        event.input_tokens = 5
    with pytest.raises(ValidationError):
        UsageEvent(**VALUES, prompt="text")


def test_json_keeps_money_exact():
    event = UsageEvent(**VALUES)
    assert '"cost_usd":"0.0006528"' in event.model_dump_json()
    assert UsageEvent.model_validate_json(event.model_dump_json()) == event
