"""Custom usage and outcomes (issue 13): any unit, priced per unit, idempotent on a caller's key — one event and
one settlement however many times (and in however many processes) it is recorded."""

from __future__ import annotations

import multiprocessing
from decimal import Decimal

import pytest

from metricaos_sdk import ConfigurationError, CreditRule, Meter, MeterConfig


def priced(meter: Meter) -> None:
    meter.plans.define("docs", credits=1000)
    meter.customers.assign("cus_1", "docs")
    meter.credits.set("documents", per_unit={"page": "0.5", "document": 10})
    meter.credits.set("support", per_call=5, per_unit={"resolved_ticket": 50})


def test_usage_is_priced_per_unit_and_drawn_from_the_plan(meter):
    priced(meter)
    event = meter.record_usage("page", 12, idempotency_key="doc_1:pages", customer_id="cus_1", feature="documents")
    assert (event.event_type, event.unit, event.quantity, event.credits) == ("usage", "page", 12, 6)
    assert event.credit_rule == "documents: 0.5 per page" and event.provider == "metricaos"
    assert meter.usage("cus_1").used == 6 and meter.events() == [event]


def test_the_same_key_twice_is_one_event_counted_once(meter):
    priced(meter)
    first = meter.record_usage("page", 12, idempotency_key="doc_1", customer_id="cus_1", feature="documents")
    again = meter.record_usage("page", 12, idempotency_key="doc_1", customer_id="cus_1", feature="documents")
    assert first.id == again.id and len(meter.events()) == 1 and meter.usage("cus_1").used == 6
    other = meter.record_usage("document", 1, idempotency_key="doc_1", customer_id="cus_1", feature="documents")
    assert other.id != first.id and meter.usage("cus_1").used == 16  # another unit of the same key is its own


def test_outcomes_are_usage_of_one(meter):
    priced(meter)
    event = meter.record_outcome("resolved_ticket", idempotency_key="T-42", customer_id="cus_1", feature="support")
    assert (event.event_type, event.unit, event.quantity, event.credits) == ("outcome", "resolved_ticket", 1, 50)
    meter.record_outcome("resolved_ticket", idempotency_key="T-42", customer_id="cus_1", feature="support")
    assert meter.usage("cus_1").used == 50


def test_usage_inside_an_action_is_charged_by_the_action(meter):
    priced(meter)
    with meter.action("process_document", credits=40, customer_id="cus_1", feature="documents") as run:
        event = meter.record_usage("page", 30, idempotency_key="doc_9")
    assert event.action_id == run.id and event.credits == 0 and meter.usage("cus_1").used == 40


def test_unpriced_units_are_recorded_without_credits(meter):
    event = meter.record_usage("minute", "2.5", idempotency_key="call_7", customer_id="cus_1")
    assert event.credits is None and event.quantity == Decimal("2.5") and event.billable


def test_bad_input_is_one_clear_sentence(meter):
    with pytest.raises(ConfigurationError, match="never a float"):
        meter.record_usage("page", 1.5, idempotency_key="k")
    with pytest.raises(ConfigurationError, match="idempotency_key must be a non-empty str"):
        meter.record_usage("page", 1, idempotency_key="")
    with pytest.raises(ConfigurationError, match="per_unit"):
        CreditRule(per_unit={})


def record(path: str, times: int) -> None:
    meter = Meter(config=MeterConfig(database=path, quota_timeout=2.0, quota_fail_open=False))
    priced(meter)
    for _ in range(times):
        meter.record_usage("page", 10, idempotency_key="shared_doc", customer_id="cus_1", feature="documents")
    meter.close()


def test_two_processes_recording_the_same_key_count_it_once(db_path):
    with Meter(db_path) as meter:
        priced(meter)
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pool.starmap(record, [(str(db_path), 3)] * 2)
    with Meter(db_path) as meter:
        assert len(meter.events()) == 1 and meter.usage("cus_1").used == 5


def stores():
    import os
    import uuid

    from metricaos_sdk import InMemoryQuotaStore, RedisQuotaStore

    yield pytest.param(InMemoryQuotaStore, id="memory")
    url = os.environ.get("METRICAOS_TEST_REDIS_URL")
    yield pytest.param((lambda: RedisQuotaStore.from_url(url, prefix=f"t{uuid.uuid4().hex[:8]}:")) if url else None,
                       id="redis", marks=pytest.mark.skipif(not url, reason="METRICAOS_TEST_REDIS_URL is not set"))


@pytest.mark.parametrize("make_store", list(stores()))
def test_every_store_settles_a_key_once(make_store):
    from metricaos_sdk import MemorySink

    with Meter(sink=MemorySink(), quota_store=make_store()) as meter:
        priced(meter)
        for _ in range(3):
            meter.record_usage("page", 10, idempotency_key="doc", customer_id="cus_1", feature="documents")
        assert meter.usage("cus_1").used == 5 and len(meter.events()) == 1
