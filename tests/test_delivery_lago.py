"""The Lago destination: the pure encoder against Lago's published ``EventInputObject``, and delivery through the
outbox to a real HTTP receiver on 127.0.0.1 that answers as Lago's ``POST /api/v1/events/batch`` does — the whole
batch refused with a 422 ``validation_errors`` keyed by index when one event is invalid, a transaction_id it already
has reported as ``value_already_exist`` (and the batch rolled back) — and misbehaves the ways a network does."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import httpx2
import pytest

from metricaos_sdk import ConfigurationError, MemorySink, Meter, UsageEvent
from metricaos_sdk.delivery import Lago
from metricaos_sdk.delivery import lago as lg
from metricaos_sdk.delivery.settings import destinations_from
from metricaos_sdk.testing import SimulatedOpenAI
from tests.delivery_support import ASK, FAST
from tests.receiver import Answer, Received, Receiver, running

KEY = "lago_CANARY_key_93b1"
SUBSCRIPTIONS = {"cus_1": "sub_A", "cus_2": "sub_B", "cus_nofeature": "sub_C"}
PATH = "/api/v1/events/batch"

# getlago/lago-openapi@120da1213306145141d3dd34022dd47a3216c911 src/schemas/EventInputObject.yaml (descriptions cut)
EVENT_INPUT = {
    "type": "object", "required": ["transaction_id", "external_subscription_id", "code"],
    "properties": {
        "transaction_id": {"type": "string"}, "external_subscription_id": {"type": "string"}, "code": {"type": "string"},
        "timestamp": {"oneOf": [{"type": "integer"}, {"type": "string"}]},
        "precise_total_amount_cents": {"type": ["string", "null"]},
        "properties": {"type": ["object", "null"],
                       "additionalProperties": {"oneOf": [{"type": "string"}, {"type": "integer"}, {"type": "number"}]}},
    },
}
_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict), "string": lambda v: isinstance(v, str), "null": lambda v: v is None,
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)}


def conforms(value: Any, schema: dict[str, Any]) -> bool:
    """``value`` against the keywords ``EVENT_INPUT`` uses: type (one or a list), oneOf, required, properties (the
    only keys a batch may carry: lago-api permits no others) and additionalProperties."""
    if "oneOf" in schema:  # read as anyOf: the spec lists both integer and number, which every integer matches
        return any(conforms(value, s) for s in schema["oneOf"])
    kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    if not any(_TYPES[k](value) for k in kinds):
        return False
    if not isinstance(value, dict):
        return True
    if not set(schema.get("required", ())) <= set(value):
        return False
    known = schema.get("properties")
    if known is not None:
        return set(value) <= set(known) and all(conforms(v, known[k]) for k, v in value.items())
    extra = schema.get("additionalProperties")
    return extra is None or all(conforms(v, extra) for v in value.values())


class FakeLago:
    """Lago's batch endpoint as lago-api answers it (app/services/events/create_batch_service.rb): every event
    validated first (``invalid(event)`` says which are not: "expression_evaluation_failed: …" at its index), then the
    insert, which fails the whole batch with ``value_already_exist`` at the index of each known transaction_id."""

    def __init__(self, receiver: Receiver, invalid: Callable[[dict[str, Any]], bool] = lambda e: False) -> None:
        self.receiver, self.invalid = receiver, invalid
        self.answers: list[int] = []
        self.trouble: list[Answer] = []
        receiver.ids = lambda r: [e["transaction_id"] for e in r.json()["events"]]
        receiver.decide = self.decide

    def decide(self, request: Received) -> Answer:
        events = request.json()["events"]
        if self.trouble:
            answer = self.trouble.pop(0)
            stores = answer.keep or (200 <= answer.status < 300 and not answer.reset)
            if not (stores and {e["transaction_id"] for e in events} & set(self.receiver.events)):
                return answer
            return replace(self.lago(events), stall=answer.stall)  # held already: Lago's own answer, late
        return self.lago(events)

    def lago(self, events: list[dict[str, Any]]) -> Answer:
        if len(events) > 100:
            return self.refuse({"events": ["too_many_events"]})
        errors: dict[str, Any] = {str(i): "expression_evaluation_failed: Variable: feature not found"
                                  for i, e in enumerate(events) if self.invalid(e)}
        if errors:
            return self.refuse(errors)
        seen: set[str] = set()
        for i, e in enumerate(events):
            if e["transaction_id"] in self.receiver.events or e["transaction_id"] in seen:
                errors[str(i)] = {"transaction_id": ["value_already_exist"]}
            seen.add(e["transaction_id"])
        if errors:
            return self.refuse(errors)  # rolled back: nothing of this batch is stored
        self.answers.append(200)
        return Answer(200, body=json.dumps({"events": [{**e, "lago_id": f"ev_{i}"} for i, e in enumerate(events)]}).encode())

    def refuse(self, details: dict[str, Any]) -> Answer:
        self.answers.append(422)
        return Answer(422, body=json.dumps({"status": 422, "error": "Unprocessable Entity", "code": "validation_errors",
                                            "error_details": details}).encode())


def calls(meter: Meter, n: int, customer: str = "cus_1", feature: str | None = "support") -> None:
    client = meter.wrap(SimulatedOpenAI(reply_words=3).client())
    with meter.context(customer_id=customer, feature=feature):
        for _ in range(n):
            client.chat.completions.create(**ASK)


def lago(receiver: Receiver, **kwargs: Any) -> Lago:
    kwargs.setdefault("codes", ["llm_tokens", "llm_cost"])
    return Lago(KEY, subscriptions=SUBSCRIPTIONS, api_url=receiver.url, **kwargs)


def metered(db_path: Any, *destinations: Lago) -> Meter:
    meter = Meter(db_path, deliver_to=list(destinations))
    assert meter.delivery is not None
    meter.delivery.policy = FAST
    return meter


def expected(meter: Meter, codes: tuple[str, ...] = ("llm_tokens", "llm_cost")) -> set[str]:
    return {lg.transaction_id(e.id, c) for e in meter.events() if e.customer_id in SUBSCRIPTIONS and e.billable
            for c in codes}


def event(**changes: Any) -> UsageEvent:
    base = dict(timestamp=datetime(2026, 3, 1, 12, 30, 5, 123456, tzinfo=timezone.utc), event_type="chat_completion",
                customer_id="cus_1", provider="openai", model="gpt-4.1-mini", endpoint="/chat/completions",
                input_tokens=10, output_tokens=5, total_tokens=15, cost_usd=Decimal("0.000123"), feature="support")
    return UsageEvent(**{**base, **changes})


# -- the encoder --------------------------------------------------------------------------------------------------
def test_one_lago_event_per_code_with_a_deterministic_transaction_id_and_the_events_own_time():
    e = event()
    first = lg.lago_events(e, ["llm_tokens", "llm_cost"], "sub_A")
    assert [x["transaction_id"] for x in first] == [f"{e.id}:llm_tokens", f"{e.id}:llm_cost"]
    assert [x["code"] for x in first] == ["llm_tokens", "llm_cost"]
    assert {x["timestamp"] for x in first} == {"1772368205.123"}  # Unix seconds, milliseconds, floored
    assert {x["external_subscription_id"] for x in first} == {"sub_A"}
    later = lg.lago_events(e.model_copy(), ["llm_tokens", "llm_cost"], "sub_A")
    assert lg.encode_batch(first) == lg.encode_batch(later)  # the same on every retry
    assert set(json.loads(lg.encode_batch(first))) == {"events"}


def test_properties_are_integers_exact_decimal_strings_and_text_with_unknowns_left_out():
    e = event(credits=Decimal("2.50"), cost_usd=Decimal("1E-7"), cached_input_tokens=4, reasoning_tokens=0)
    props = lg.properties(e, lg.PROPERTIES)
    assert props["input_tokens"] == 10 and props["reasoning_tokens"] == 0 and props["cached_input_tokens"] == 4
    assert props["cost_usd_micros"] == 0 and props["cost_usd"] == "0.0000001" and props["credits"] == "2.50"
    assert props["model"] == "gpt-4.1-mini" and props["feature"] == "support" and props["status"] == "ok"
    assert "user_id" not in props and "workspace_id" not in props
    unpriced = lg.properties(event(cost_usd=None, credits=None), lg.DEFAULT_PROPERTIES)
    assert "cost_usd_micros" not in unpriced and "credits" not in unpriced  # unknown is not 0
    numeric = re.compile(r"^-?\d+(\.\d+)?$")  # what Lago's Postgres store sums as ::numeric
    for cost in ("0.30000000000000004", "12345.6789015", "1E-12", "0.0000015", "1E+3", "-0.5"):
        got = lg.properties(event(cost_usd=Decimal(cost)), ["cost_usd", "cost_usd_micros"])
        assert numeric.match(str(got["cost_usd"])) and Decimal(str(got["cost_usd"])) == Decimal(cost)
        assert got["cost_usd_micros"] == int((Decimal(cost) * 1_000_000).quantize(Decimal(1), "ROUND_HALF_UP"))
    assert lg.properties(event(cost_usd=Decimal("0.0000015")), ["cost_usd_micros"]) == {"cost_usd_micros": 2}


def test_events_from_real_calls_conform_to_lagos_event_input_object():
    meter = Meter(sink=MemorySink())
    meter.credits.set("summarize", per_call="0.5")
    client = meter.wrap(SimulatedOpenAI(reply_words=5, cached_tokens=3, reasoning_tokens=2).client())
    with meter.context(customer_id="cus_1", feature="summarize", user_id="ü_1"):
        client.chat.completions.create(**ASK)
        list(client.chat.completions.create(**ASK, stream=True, stream_options={"include_usage": True}))
        client.responses.create(model="gpt-4.1-mini", input="Where is my order?")
        client.embeddings.create(model="text-embedding-3-small", input="a b c")
        client.chat.completions.create(model="my-own-finetune", messages=ASK["messages"])  # unpriced
    items = [x for e in meter.events() for x in lg.lago_events(e, ["c1", "c2"], "sub_A", lg.PROPERTIES)]
    assert len(items) == 10
    body = json.loads(lg.encode_batch(items))
    assert all(conforms(x, EVENT_INPUT) for x in body["events"])
    assert not conforms({"code": "c"}, EVENT_INPUT) and not conforms({**items[0], "properties": {"a": [1]}}, EVENT_INPUT)
    assert len({x["transaction_id"] for x in items}) == 10
    meter.close()


def test_batch_errors_tells_duplicates_from_invalid_events():
    def answer(details: Any, status: int = 422) -> httpx2.Response:
        return httpx2.Response(status, json={"status": status, "error": "Unprocessable Entity",
                                             "code": "validation_errors", "error_details": details})

    assert lg.batch_errors(answer({"1": {"transaction_id": ["value_already_exist"]},
                                   "2": "expression_evaluation_failed: Variable: b not found",
                                   "3": {"timestamp": ["invalid_format"]},
                                   "4": {"transaction_id": ["value_already_exist"], "code": ["value_is_mandatory"]}}), 5) \
        == ({1}, {2: "expression_evaluation_failed: Variable: b not found", 3: "timestamp: invalid_format",
                  4: "transaction_id: value_already_exist; code: value_is_mandatory"})
    assert lg.batch_errors(answer({"events": ["too_many_events"]}), 5) is None  # the batch, not an event
    assert lg.batch_errors(answer({"7": "x"}), 5) is None
    assert lg.batch_errors(answer({}, 400), 5) is None and lg.batch_errors(httpx2.Response(422, text="<html>"), 5) is None


def test_bad_settings_are_configuration_errors_and_the_file_form_builds():
    with pytest.raises(ConfigurationError, match="prompt"):
        Lago(KEY, codes="c", subscriptions={}, properties=["prompt"])
    with pytest.raises(ConfigurationError, match="distinct"):
        Lago(KEY, codes=["c", "c"], subscriptions={})
    with pytest.raises(ConfigurationError, match="API key"):
        Lago("", codes="c", subscriptions={})
    [built] = destinations_from([{"kind": "lago", "api_key": KEY, "codes": ["a", "b", "c"],
                                  "subscriptions": SUBSCRIPTIONS, "api_url": "https://api.eu.getlago.com"}])
    assert isinstance(built, Lago) and built.max_batch == 33 and KEY not in repr(built)
    assert built.url == "https://api.eu.getlago.com/api/v1/events/batch"


# -- delivery -----------------------------------------------------------------------------------------------------
def test_every_code_of_every_event_arrives_once_in_batches_of_at_most_100(db_path):
    with running() as receiver:
        FakeLago(receiver)
        meter = metered(db_path, lago(receiver))
        calls(meter, 120)
        calls(meter, 2, customer="cus_unmapped")  # skipped: no subscription
        calls(meter, 1, customer=None)  # skipped: no customer
        assert meter.flush(timeout=30)
        assert set(receiver.events) == expected(meter) and len(receiver.events) == 240
        assert receiver.duplicates() == 0
        assert all(len(r.json()["events"]) <= 100 for r in receiver.requests)
        first = receiver.requests[0]
        assert first.path == PATH and first.headers["authorization"] == f"Bearer {KEY}"
        item = first.json()["events"][0]
        assert item["external_subscription_id"] == "sub_A" and item["properties"]["feature"] == "support"
        assert isinstance(item["properties"]["cost_usd_micros"], int) and isinstance(item["timestamp"], str)
        [status] = meter.health().deliveries
        assert (status.delivered, status.skipped, status.failed, status.queued) == (120, 3, 0, 0)
        meter.close()


def test_what_lago_already_has_is_delivered_and_nothing_is_parked(db_path):
    with running() as receiver:
        fake = FakeLago(receiver)
        meter = metered(db_path, lago(receiver))
        calls(meter, 7)
        assert meter.flush(timeout=30)
        meter.close()
        # A second cursor on the same outbox sends all 7 again, with 3 new ones in the same batch.
        again = metered(db_path, lago(receiver, name="lago-replay"))
        calls(again, 3)
        assert again.flush(timeout=30)
        assert receiver.unique() == 20 and receiver.duplicates() == 0
        assert 422 in fake.answers  # value_already_exist, index by index
        replay = {s.destination: s for s in again.health().deliveries}["lago-replay"]
        assert (replay.delivered, replay.failed, replay.queued, replay.retried) == (10, 0, 0, 0)
        assert again.delivery.outbox.parked("lago-replay") == []
        again.close()


def test_one_invalid_event_parks_that_event_only(db_path):
    with running() as receiver:
        FakeLago(receiver, invalid=lambda e: e["code"] == "llm_tokens" and "feature" not in e["properties"])
        meter = metered(db_path, lago(receiver))
        calls(meter, 4)
        calls(meter, 1, customer="cus_nofeature", feature=None)
        calls(meter, 4)
        assert meter.flush(timeout=30)
        assert len(receiver.events) == 16 and receiver.duplicates() == 0
        [(event_id, reason)] = meter.delivery.outbox.parked("lago")
        assert reason == "422 expression_evaluation_failed: Variable: feature not found"
        assert [e.customer_id for e in meter.events() if e.id == event_id] == ["cus_nofeature"]
        [status] = meter.health().deliveries
        assert (status.delivered, status.failed, status.queued) == (8, 1, 0)
        meter.close()


@pytest.mark.parametrize("trouble", [
    Answer(500), Answer(503, body=b"upstream"), Answer(429, headers={"retry-after": "0.1"}), Answer(reset=True),
    Answer(200, stall=2.0, keep=True),  # answered too late: the client gave up, Lago had stored the batch
])
def test_lago_in_trouble_gets_everything_once_when_it_recovers(db_path, trouble):
    with running() as receiver:
        fake = FakeLago(receiver)
        fake.trouble = [trouble, trouble, trouble]
        meter = metered(db_path, lago(receiver, timeout=0.5))
        calls(meter, 12)
        assert meter.flush(timeout=30)
        assert set(receiver.events) == expected(meter)
        assert receiver.duplicates() == 0
        [status] = meter.health().deliveries
        assert status.retried >= 3 and (status.delivered, status.failed, status.queued) == (12, 0, 0)
        meter.close()


def test_retry_after_is_honoured(db_path):
    with running() as receiver:
        FakeLago(receiver)
        receiver.script = [Answer(429, headers={"retry-after": "1"})]
        meter = metered(db_path, lago(receiver))
        calls(meter, 2)
        assert meter.flush(timeout=30)
        assert receiver.requests[1].at - receiver.requests[0].at >= 0.95
        meter.close()


def test_the_api_key_never_reaches_a_log_a_reason_or_the_status(db_path, caplog):
    with running() as receiver:
        fake = FakeLago(receiver)
        fake.trouble = [Answer(422, body=json.dumps({"status": 422, "error": "Unprocessable Entity",
                                                     "code": "validation_errors",
                                                     "error_details": {"0": f"key {KEY} may not send llm_tokens"}}).encode())]
        original = fake.decide
        receiver.decide = lambda r: (original(r) if fake.trouble else Answer(401, body=json.dumps(
            {"status": 401, "error": f"Unauthorized {r.headers['authorization']}"}).encode()))
        meter = metered(db_path, lago(receiver))
        calls(meter, 2)
        assert not meter.flush(timeout=2)  # the 401 is retried, not parked: the second event waits for a good key
        [status] = meter.health().deliveries
        assert (status.failed, status.queued) == (1, 1) and status.retried >= 1
        [(_, reason)] = meter.delivery.outbox.parked("lago")
        assert reason == "422 key <redacted> may not send llm_tokens"
        assert (status.last_error or "").startswith("401 ") and "<redacted>" in (status.last_error or "")
        for text in [status.last_error or "", reason, *(r.getMessage() for r in caplog.records),
                     repr(meter.delivery.destinations[0])]:
            assert "CANARY" not in text
        meter.close()


def test_non_billable_events_are_skipped_unless_asked_for(db_path):
    with running() as receiver:
        FakeLago(receiver)
        meter = metered(db_path, lago(receiver, codes="llm_usage"),
                        lago(receiver, codes="llm_usage_all", name="lago-all", include_non_billable=True))
        client = meter.wrap(SimulatedOpenAI(reply_words=3).client())
        with meter.context(customer_id="cus_1", environment="staging"):
            client.chat.completions.create(**ASK)
        assert meter.flush(timeout=30)
        statuses = {s.destination: s for s in meter.health().deliveries}
        assert (statuses["lago"].skipped, statuses["lago"].delivered) == (1, 0)
        assert (statuses["lago-all"].skipped, statuses["lago-all"].delivered) == (0, 1)
        assert [tid.rsplit(":", 1)[1] for tid in receiver.events] == ["llm_usage_all"]
        meter.close()


def test_an_old_event_goes_with_its_own_time(db_path):
    with running() as receiver:
        FakeLago(receiver)
        meter = metered(db_path, lago(receiver, codes="llm_usage"))
        old = event(timestamp=datetime.now(timezone.utc) - timedelta(days=90))
        meter.sink.write([old])
        assert meter.flush(timeout=30)
        [item] = receiver.requests[0].json()["events"]
        assert abs(float(item["timestamp"]) - old.timestamp.timestamp()) < 0.001
        assert float(item["timestamp"]) < time.time() - 89 * 86400
        meter.close()
