"""The Stripe destination: the pure encoders against Stripe's documented shapes, and delivery through the outbox to
a real HTTP receiver on 127.0.0.1 that answers as Stripe does — v1 meter events deduplicated on ``identifier`` with
its 400 "An event already exists with identifier …", the v2 meter event session and stream with its 401
``billing_meter_event_session_expired`` — and misbehaves the ways a network does."""

from __future__ import annotations

import json
import math
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from fractions import Fraction
from typing import Any
from urllib.parse import parse_qs

import httpx2
import pytest
from hypothesis import given
from hypothesis import strategies as hs

from metricaos_sdk import ConfigurationError, MemorySink, Meter, UsageEvent
from metricaos_sdk.delivery import StripeMeter, units
from metricaos_sdk.delivery import stripe as st
from metricaos_sdk.delivery.settings import destinations_from
from metricaos_sdk.testing import SimulatedOpenAI
from tests.delivery_support import ASK, FAST, calls
from tests.receiver import Answer, Received, Receiver, running

KEY = "sk_test_CANARY_51Hx9"
NAMES = {"input_tokens": "llm_input_tokens", "output_tokens": "llm_output_tokens", "cost_usd": "llm_cost_micro_usd"}
CUSTOMERS = {"cus_1": "cus_StripeA", "cus_2": "cus_StripeB"}
V1, SESSION, STREAM = "/v1/billing/meter_events", "/v2/billing/meter_event_session", "/v2/billing/meter_event_stream"


class Clock:
    """Wall-clock time, moved on at will: the session's 15 minutes pass in a test in no time."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def stripe_error(status: int, message: str, **fields: str) -> Answer:
    return Answer(status, body=json.dumps({"error": {"message": message, "type": "invalid_request_error",
                                                     **fields}}).encode())


class FakeStripe:
    """Stripe's meter event endpoints as documented: ``trouble`` answers first (meter event paths only), then
    ``refuse(request)`` if it says so, then Stripe's own answers."""

    def __init__(self, receiver: Receiver, clock: Clock) -> None:
        self.receiver, self.clock = receiver, clock
        self.sessions = 0
        self.live_tokens: set[str] = set()
        self.trouble: list[Answer] = []
        self.refuse: Any = None
        receiver.ids = self.ids
        receiver.decide = self.decide

    @staticmethod
    def ids(request: Received) -> list[str]:
        if request.path == V1:
            return parse_qs(request.body.decode())["identifier"]
        if request.path == STREAM:
            return [e["identifier"] for e in request.json()["events"]]
        return []

    def sent(self, path: str) -> list[Received]:
        return [r for r in self.receiver.requests if r.path == path]

    def duplicate(self, request: Received) -> Answer:
        [identifier] = self.ids(request)
        answer = stripe_error(400, f"An event already exists with identifier {identifier}.")
        answer.headers["stripe-should-retry"] = "false"
        return answer

    def decide(self, request: Received) -> Answer:
        if request.path == SESSION:
            self.sessions += 1
            token = f"ekt_test_{self.sessions}_SESSIONCANARY"
            self.live_tokens.add(token)
            return Answer(200, body=json.dumps({
                "id": f"mes_{self.sessions}", "object": "v2.billing.meter_event_session", "livemode": False,
                "authentication_token": token, "created": rfc3339(self.clock()),
                "expires_at": rfc3339(self.clock() + 900)}).encode())
        if self.trouble:
            answer = self.trouble.pop(0)
            stores = answer.keep or (200 <= answer.status < 300 and not answer.reset)
            if stores and request.path == V1 and set(self.ids(request)) & set(self.receiver.events):
                answer = replace(self.duplicate(request), stall=answer.stall)  # v1 holds an identifier once
            return answer
        if self.refuse is not None and (answer := self.refuse(request)) is not None:
            return answer
        if request.path == STREAM:
            if request.headers["authorization"].removeprefix("Bearer ") not in self.live_tokens:
                return Answer(401, body=json.dumps({"error": {
                    "type": "temporary_session_expired", "code": "billing_meter_event_session_expired",
                    "message": "The temporary session token has expired."}}).encode())
            return Answer(200, body=b"{}")
        [identifier] = self.ids(request)
        if identifier in self.receiver.events:  # Stripe: unique within a rolling 24 hours, at least
            return self.duplicate(request)
        form = parse_qs(request.body.decode())
        return Answer(200, body=json.dumps({"object": "billing.meter_event", "identifier": identifier,
                                            "event_name": form["event_name"][0]}).encode())


def expected(meter: Meter, names: dict[str, str] = NAMES) -> set[str]:
    """The identifiers Stripe should hold: each delivered event's non-zero dimensions."""
    return {m.identifier for e in meter.events() if e.customer_id in CUSTOMERS and e.billable
            for m in st.meter_events(e, names, CUSTOMERS[e.customer_id])}


def stripe_meter(receiver: Receiver, clock: Clock, api: str = "v1", **kwargs: Any) -> StripeMeter:
    return StripeMeter(KEY, event_names=NAMES, customers=CUSTOMERS, api=api,
                       api_base=receiver.url, stream_base=receiver.url, clock=clock, **kwargs)


def metered(db_path: Any, *destinations: StripeMeter) -> Meter:
    meter = Meter(db_path, deliver_to=list(destinations))
    assert meter.delivery is not None
    meter.delivery.policy = FAST
    return meter


def old_event(days: float, customer: str = "cus_1") -> UsageEvent:
    return UsageEvent(timestamp=datetime.now(timezone.utc) - timedelta(days=days), event_type="chat_completion",
                      provider="openai", endpoint="/chat/completions", customer_id=customer, input_tokens=10,
                      output_tokens=5, total_tokens=15, cost_usd=Decimal("0.0001"))


# -- the encoders -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("cost", "micros"), [
    (Decimal("0.0000015"), 2), (Decimal("0.0000025"), 3), (Decimal("0.0000014999"), 1), (Decimal("1E-7"), 0),
    (Decimal("0.30000000000000004"), 300000), (Decimal("12345.6789015"), 12345678902), (Decimal("1e-6"), 1),
    (Decimal("0.000123456789"), 123), (Decimal("999999999.9999995"), 1000000000000000),
])
def test_cost_is_exact_integer_micro_usd_rounded_half_up(cost, micros):
    event = old_event(0).model_copy(update={"cost_usd": cost})
    assert st.dimension_value(event, "cost_usd") == micros


@given(hs.decimals(min_value=-(10**9), max_value=10**9, allow_nan=False, allow_infinity=False, places=15),
       hs.integers(min_value=0, max_value=9))
def test_scaling_is_the_exact_fraction_rounded_half_up(amount, scale):
    exact = Fraction(amount) * 10**scale
    half_up = math.floor(abs(exact) + Fraction(1, 2)) * (1 if exact >= 0 else -1)
    assert units.scaled_integer(amount, scale) == half_up
    assert units.micro_usd(amount) == math.floor(abs(Fraction(amount) * 10**6) + Fraction(1, 2)) * (1 if amount >= 0 else -1)


def test_each_non_zero_dimension_is_one_meter_event_with_a_string_integer_value():
    event = old_event(0).model_copy(update={"output_tokens": 0, "credits": Decimal("2.5"), "reasoning_tokens": 0})
    names = {**NAMES, "credits": "ai_credits", "reasoning_tokens": "llm_reasoning"}
    got = st.meter_events(event, names, "cus_S")
    assert [m.event_name for m in got] == ["llm_input_tokens", "llm_cost_micro_usd", "ai_credits"]  # zeros skipped
    assert [m.payload for m in got] == [{"stripe_customer_id": "cus_S", "value": "10"},
                                        {"stripe_customer_id": "cus_S", "value": "100"},
                                        {"stripe_customer_id": "cus_S", "value": "3"}]  # 2.5 credits: half up
    assert st.meter_events(event, {"credits": "c"}, "cus_S", credit_scale=3)[0].payload["value"] == "2500"
    unknown = event.model_copy(update={"cost_usd": None, "credits": None})
    assert [m.event_name for m in st.meter_events(unknown, names, "cus_S")] == ["llm_input_tokens"]
    custom = st.meter_events(event, {"input_tokens": "t"}, "cus_S", customer_key="customer", value_key="tokens")
    assert custom[0].payload == {"customer": "cus_S", "tokens": "10"}


def test_identifiers_are_deterministic_distinct_and_at_most_100_characters():
    event = old_event(0)
    first = [m.identifier for m in st.meter_events(event, NAMES, "cus_S")]
    assert first == [m.identifier for m in st.meter_events(event.model_copy(), NAMES, "cus_S")]
    assert first == [f"{event.id}:input_tokens", f"{event.id}:output_tokens", f"{event.id}:cost_usd"]
    for dimension in st.DIMENSIONS:
        for event_id in (event.id, "x" * 500, "é" * 99):
            key = st.identifier(event_id, dimension)
            assert len(key) <= 100 and key == st.identifier(event_id, dimension) and key.endswith(f":{dimension}")
    assert st.identifier("a" * 200, "input_tokens") != st.identifier("a" * 201, "input_tokens")


def test_the_v1_body_is_the_documented_form():
    event = old_event(0).model_copy(update={"timestamp": datetime(2026, 3, 1, 12, 0, 7, 999000, timezone.utc)})
    [meter_event, *_] = st.meter_events(event, NAMES, "cus_S")
    form = parse_qs(st.encode_v1(meter_event).decode(), strict_parsing=True)
    assert form == {"event_name": ["llm_input_tokens"], "identifier": [f"{event.id}:input_tokens"],
                    "timestamp": ["1772366407"],  # integer Unix seconds, floored
                    "payload[stripe_customer_id]": ["cus_S"], "payload[value]": ["10"]}


def test_the_stream_body_is_the_documented_json():
    moment = datetime(2026, 3, 1, 12, 0, 7, 999999, timezone.utc)
    events = [old_event(0).model_copy(update={"timestamp": moment}) for _ in range(34)]
    meter_events = [m for e in events for m in st.meter_events(e, NAMES, "cus_S")]
    body = json.loads(st.encode_stream(meter_events[:100]))
    assert set(body) == {"events"} and len(body["events"]) == 100
    first = body["events"][0]
    assert set(first) == {"event_name", "identifier", "payload", "timestamp"}
    assert first["timestamp"] == "2026-03-01T12:00:07.999Z"  # RFC 3339 (the v2 API's timestamps)
    assert all(isinstance(v, str) for e in body["events"] for v in e["payload"].values())
    assert st.encode_stream(meter_events[:100]) == st.encode_stream(meter_events[:100])
    with pytest.raises(ValueError, match="at most 100"):
        st.encode_stream(meter_events)


def test_the_window_is_35_days_back_and_5_minutes_ahead():
    now = time.time()
    assert st.window_problem(old_event(34.9), now) is None
    assert "35 days" in (st.window_problem(old_event(35.01), now) or "")
    assert st.window_problem(old_event(-4 / 1440), now) is None
    assert "5 minutes" in (st.window_problem(old_event(-6 / 1440), now) or "")


def test_the_duplicate_answer_is_recognised_and_nothing_else():
    def response(status: int, message: str) -> httpx2.Response:
        return httpx2.Response(status, json={"error": {"message": message, "type": "invalid_request_error"}})

    assert st.is_duplicate(response(400, "An event already exists with identifier 0190:input_tokens."))
    assert not st.is_duplicate(response(400, "No such customer: 'cus_X'"))
    assert not st.is_duplicate(response(500, "An event already exists with identifier x."))
    assert not st.is_duplicate(httpx2.Response(400, text="not json"))


def test_events_from_real_calls_encode_to_the_documented_types():
    meter = Meter(sink=MemorySink())
    meter.credits.set("summarize", per_call="0.5")
    client = meter.wrap(SimulatedOpenAI(reply_words=5, cached_tokens=3, reasoning_tokens=2).client())
    with meter.context(customer_id="cus_1", feature="summarize"):
        client.chat.completions.create(**ASK)
        list(client.chat.completions.create(**ASK, stream=True, stream_options={"include_usage": True}))
        client.responses.create(model="gpt-4.1-mini", input="Where is my order?")
        client.chat.completions.create(model="my-own-finetune", messages=ASK["messages"])  # unpriced
    events = list(meter.events())
    names = {d: f"m_{d}" for d in st.DIMENSIONS}
    for event in events:
        for m in st.meter_events(event, names, "cus_S", credit_scale=2):
            assert len(m.event_name) <= 100 and len(m.identifier) <= 100
            assert set(m.payload) == {"stripe_customer_id", "value"}
            assert m.payload["value"].lstrip("-").isdigit() and int(m.payload["value"]) != 0
        form = [parse_qs(st.encode_v1(m).decode()) for m in st.meter_events(event, names, "cus_S")]
        assert all(f["timestamp"][0].isdigit() for f in form)
    credited = [e for e in events if e.credits]
    assert credited and all(
        {m.event_name: m.payload["value"] for m in st.meter_events(e, names, "cus_S", credit_scale=2)}["m_credits"]
        == str(int(e.credits * 100)) for e in credited if e.credits is not None)
    meter.close()


def test_bad_settings_are_configuration_errors_and_the_file_form_builds():
    with pytest.raises(ConfigurationError, match="prompt_tokens"):
        StripeMeter(KEY, event_names={"prompt_tokens": "x"}, customers={})
    with pytest.raises(ConfigurationError, match="'v3'"):
        StripeMeter(KEY, event_names=NAMES, customers={}, api="v3")
    with pytest.raises(ConfigurationError, match="secret key"):
        StripeMeter("", event_names=NAMES, customers={})
    [built] = destinations_from([{"kind": "stripe", "api_key": KEY, "api": "stream", "event_names": NAMES,
                                  "customers": CUSTOMERS}])
    assert isinstance(built, StripeMeter) and built.api == "stream" and KEY not in repr(built)


# -- delivery -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("api", ["v1", "stream"])
def test_every_dimension_of_every_event_arrives_once(db_path, api):
    clock = Clock()
    with running() as receiver:
        fake = FakeStripe(receiver, clock)
        meter = metered(db_path, stripe_meter(receiver, clock, api))
        calls(meter, 12)
        calls(meter, 3, customer="cus_2")
        calls(meter, 2, customer="cus_unmapped")  # skipped: no Stripe customer
        client = meter.wrap(SimulatedOpenAI(reply_words=3).client())
        with meter.context(customer_id="cus_1", environment="staging"):  # not billable: skipped
            client.chat.completions.create(**ASK)
        assert meter.flush(timeout=30)
        want = expected(meter)
        assert len(want) == 15 * 3
        assert set(receiver.events) == want and receiver.duplicates() == 0
        [status] = meter.health().deliveries
        assert (status.delivered, status.skipped, status.failed, status.queued) == (15, 3, 0, 0)
        if api == "v1":
            assert len(fake.sent(V1)) == 45 and not fake.sent(STREAM)
            first = fake.sent(V1)[0]
            assert first.headers["authorization"] == f"Bearer {KEY}"
            assert first.headers["content-type"] == "application/x-www-form-urlencoded"
            assert "idempotency-key" not in first.headers
        else:
            assert fake.sessions == 1 and fake.sent(SESSION)[0].headers["authorization"] == f"Bearer {KEY}"
            for request in fake.sent(STREAM):
                assert request.headers["authorization"] == "Bearer ekt_test_1_SESSIONCANARY"
                assert request.headers["content-type"] == "application/json"
                assert len(request.json()["events"]) <= 100 and request.headers["idempotency-key"]
                assert request.headers["stripe-version"] == st.STRIPE_VERSION
        meter.close()


def test_a_duplicate_answer_counts_as_delivered_and_parks_nothing(db_path):
    clock = Clock()
    with running() as receiver:
        fake = FakeStripe(receiver, clock)
        meter = metered(db_path, stripe_meter(receiver, clock))
        calls(meter, 8)
        assert meter.flush(timeout=30)
        meter.close()
        # A second cursor on the same outbox sends everything again: Stripe has every identifier already.
        again = metered(db_path, stripe_meter(receiver, clock, name="stripe-replay"))
        calls(again, 2)
        assert again.flush(timeout=30)
        assert len(fake.sent(V1)) == 24 + 30  # 24 answered "already exists", 6 new
        assert receiver.unique() == 30 and receiver.duplicates() == 0
        statuses = {s.destination: s for s in again.health().deliveries}
        replay = statuses["stripe-replay"]
        assert (replay.delivered, replay.failed, replay.queued) == (10, 0, 0)
        assert again.delivery.outbox.parked("stripe-replay") == []
        again.close()


@pytest.mark.parametrize("api", ["v1", "stream"])
@pytest.mark.parametrize("trouble", [
    Answer(500), Answer(503, body=b"upstream"), Answer(429, headers={"retry-after": "0.1"}), Answer(reset=True),
    Answer(409, body=b'{"error": {"type": "idempotency_error", "message": "in use"}}'),
    Answer(400, headers={"stripe-should-retry": "true"}, body=b'{"error": {"message": "lock timeout"}}'),
    Answer(200, stall=2.0, keep=True),  # answered too late: the client gave up, Stripe had it
])
def test_stripe_in_trouble_gets_everything_once_when_it_recovers(db_path, api, trouble):
    clock = Clock()
    with running() as receiver:
        fake = FakeStripe(receiver, clock)
        fake.trouble = [trouble, trouble, trouble]
        meter = metered(db_path, stripe_meter(receiver, clock, api, timeout=0.5))
        calls(meter, 6)
        assert meter.flush(timeout=30)
        assert set(receiver.events) == expected(meter)
        if api == "v1":  # Stripe refused the repeats: each identifier is held once
            assert receiver.duplicates() == 0
        [status] = meter.health().deliveries
        assert status.retried >= 3 and (status.delivered, status.failed, status.queued) == (6, 0, 0)
        meter.close()


def test_retry_after_is_honoured(db_path):
    clock = Clock()
    with running() as receiver:
        fake = FakeStripe(receiver, clock)
        fake.trouble = [Answer(429, headers={"retry-after": "1"}, body=b'{"error": {"message": "Too many"}}')]
        meter = metered(db_path, stripe_meter(receiver, clock))
        calls(meter, 1)
        assert meter.flush(timeout=30)
        first, second = fake.sent(V1)[:2]
        assert second.at - first.at >= 0.95
        meter.close()


@pytest.mark.parametrize("api", ["v1", "stream"])
def test_an_event_outside_the_window_is_parked_unsent_with_the_reason(db_path, api):
    clock = Clock()
    with running() as receiver:
        fake = FakeStripe(receiver, clock)
        meter = metered(db_path, stripe_meter(receiver, clock, api))
        calls(meter, 2)
        stale, ahead = old_event(40), old_event(-10 / 1440)
        meter.sink.write([stale, ahead])
        calls(meter, 2)
        assert meter.flush(timeout=30)
        assert not any(i.startswith((stale.id, ahead.id)) for i in receiver.events)  # never sent
        assert len(receiver.events) == 4 * 3
        parked = dict(meter.delivery.outbox.parked("stripe"))
        assert "40.0 days old" in parked[stale.id] and "past 35 days" in parked[stale.id]
        assert "in the future" in parked[ahead.id] and "5 minutes" in parked[ahead.id]
        [status] = meter.health().deliveries
        assert (status.delivered, status.failed, status.queued) == (4, 2, 0)
        assert not [r for r in fake.sent(V1) + fake.sent(STREAM) if stale.id.encode() in r.body]
        meter.close()


def test_the_session_token_is_fetched_used_and_renewed_when_it_expires(db_path):
    clock = Clock()
    with running() as receiver:
        fake = FakeStripe(receiver, clock)
        meter = metered(db_path, stripe_meter(receiver, clock, "stream"))
        calls(meter, 3)
        assert meter.flush(timeout=30)
        calls(meter, 3)  # the same session
        assert meter.flush(timeout=30)
        assert fake.sessions == 1
        clock.offset += 15 * 60  # the token's 15 minutes are up
        calls(meter, 3)
        assert meter.flush(timeout=30)
        assert fake.sessions == 2
        tokens = [r.headers["authorization"] for r in fake.sent(STREAM)]
        assert tokens[0] == "Bearer ekt_test_1_SESSIONCANARY" and tokens[-1] == "Bearer ekt_test_2_SESSIONCANARY"
        fake.live_tokens.clear()  # revoked before it expires: the stream answers 401, a new session at once
        calls(meter, 3)
        assert meter.flush(timeout=30)
        assert fake.sessions == 3 and fake.sent(STREAM)[-1].headers["authorization"].startswith("Bearer ekt_test_3")
        assert set(receiver.events) == expected(meter) and receiver.duplicates() == 0
        [status] = meter.health().deliveries
        assert (status.delivered, status.retried, status.failed) == (12, 0, 0)  # the 401 was no failure
        meter.close()


def test_a_refusal_parks_that_event_with_stripes_message_and_the_rest_arrive(db_path):
    def no_such_customer(request: Received) -> Answer | None:
        if b"cus_StripeB" in request.body:
            return stripe_error(400, "No such customer: 'cus_StripeB'", code="resource_missing",
                                param="payload[stripe_customer_id]")
        return None

    clock = Clock()
    with running() as receiver:
        fake = FakeStripe(receiver, clock)
        fake.refuse = no_such_customer
        meter = metered(db_path, stripe_meter(receiver, clock))
        calls(meter, 3)
        calls(meter, 1, customer="cus_2")
        calls(meter, 3)
        assert meter.flush(timeout=30)
        assert len(receiver.events) == 18 and receiver.duplicates() == 0
        [(_, reason)] = meter.delivery.outbox.parked("stripe")
        assert reason == "400 resource_missing: No such customer: 'cus_StripeB'"
        [status] = meter.health().deliveries
        assert (status.delivered, status.failed, status.queued) == (6, 1, 0)
        meter.close()


@pytest.mark.parametrize("api", ["v1", "stream"])
def test_the_secret_key_and_session_tokens_never_reach_a_log_or_the_status(db_path, caplog, api):
    def echo_secrets(request: Received) -> Answer:
        return Answer(401 if api == "v1" else 400, body=json.dumps({"error": {
            "message": f"Invalid API Key provided: {request.headers['authorization']}",
            "type": "invalid_request_error"}}).encode())

    clock = Clock()
    with running() as receiver:
        fake = FakeStripe(receiver, clock)
        fake.refuse = echo_secrets
        meter = metered(db_path, stripe_meter(receiver, clock, api))
        calls(meter, 2)
        assert meter.flush(timeout=2) is (api == "stream")
        [status] = meter.health().deliveries
        if api == "v1":  # a refused key is retried, not parked: the events wait for a good one
            assert (status.failed, status.queued) == (0, 2) and status.retried >= 1
        else:  # the stream echoed its session token in a 400: the events are parked, the token cut
            assert (status.failed, status.queued) == (2, 0)
        assert "<redacted>" in (status.last_error or "")
        for text in [status.last_error or "", *(r for _, r in meter.delivery.outbox.parked("stripe")),
                     *(r.getMessage() for r in caplog.records), repr(meter.delivery.destinations[0])]:
            assert "CANARY" not in text
        meter.close()


def test_a_refused_key_is_retried_and_delivery_resumes_when_it_is_fixed(db_path):
    clock = Clock()
    with running() as receiver:
        fake = FakeStripe(receiver, clock)
        original = fake.decide
        fixed = False
        receiver.decide = lambda r: (original(r) if fixed or r.path != SESSION
                                     else stripe_error(401, f"Invalid API Key provided: {KEY[:8]}****"))
        meter = metered(db_path, stripe_meter(receiver, clock, "stream"))
        calls(meter, 4)
        assert not meter.flush(timeout=1)
        [status] = meter.health().deliveries
        assert (status.failed, status.queued) == (0, 4) and "Invalid API Key" in (status.last_error or "")
        assert len(fake.sent(SESSION)) >= 2 and not fake.sent(STREAM)
        fixed = True  # the key was rotated
        assert meter.flush(timeout=30)
        assert set(receiver.events) == expected(meter) and meter.health().deliveries[0].delivered == 4
        meter.close()
