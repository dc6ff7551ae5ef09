"""The OpenMeter destination: the encoder against OpenMeter's published event schemas, and delivery through the
outbox to a real HTTP receiver on 127.0.0.1 that answers the way OpenMeter's ingest API does (204 on v1, 202 on
v3 and Konnect, a duplicate accepted like a new event, a bad request in its problem-details shape)."""

from __future__ import annotations

import doctest
import json
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest

from metricaos_sdk import ConfigurationError, MemorySink, Meter, UsageEvent
from metricaos_sdk.delivery import Delivery, OpenMeter
from metricaos_sdk.delivery import openmeter as om
from metricaos_sdk.testing import SimulatedOpenAI
from tests.delivery_support import ASK, FAST, calls, fast
from tests.openapi_schema import problems
from tests.receiver import Answer, Received, Receiver, running

SPEC = json.loads((Path(__file__).parent / "data" / "openmeter_event_schema.json").read_text())
SCHEMAS = {  # api -> (the event schema, the components its $refs point at)
    "v1": (SPEC["v1"]["Event"], SPEC["v1"]),
    "v3": (SPEC["v3"]["MeteringEvent"], SPEC["v3"]),
}
KEY = "om_CANARY_key_7f3a"
PATHS = {"v1": "/api/v1/events", "v3": "/api/v3/openmeter/events", "konnect": "/v3/openmeter/events"}


# -- events from real metered calls -------------------------------------------------------------------------------
def metered_events() -> list[UsageEvent]:
    """A spread of real events: attributed or not, streamed, Responses, embeddings, unpriced, failed, credited,
    non-billable, with tags and non-ASCII text."""
    meter = Meter(sink=MemorySink())
    meter.credits.set("summarize", per_call="0.5")
    sim = SimulatedOpenAI(reply_words=5, cached_tokens=3, reasoning_tokens=2)
    client = meter.wrap(sim.client(max_retries=0))
    with meter.context(customer_id="cus_1", user_id="u_1", workspace_id="ws_1", feature="summarize",
                       tags={"team": "search", "région": "Zürich"}):
        client.chat.completions.create(**ASK)
        list(client.chat.completions.create(**ASK, stream=True, stream_options={"include_usage": True}))
        client.responses.create(model="gpt-4.1-mini", input="Where is my order?")
        client.embeddings.create(model="text-embedding-3-small", input="a b c")
    with meter.context(customer_id="cus_ünïcode"):
        client.chat.completions.create(model="my-own-finetune", messages=ASK["messages"])  # unpriced: cost None
        sim.fail_next(1, 400)
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(**ASK)
    with meter.context(customer_id="cus_2", environment="staging"):  # not billable
        client.chat.completions.create(**ASK)
    client.chat.completions.create(**ASK)  # no customer
    events = list(meter.events())
    meter.close()
    return events


@pytest.fixture(scope="module")
def events() -> list[UsageEvent]:
    return metered_events()


def event(**changes: Any) -> UsageEvent:
    base = dict(timestamp=datetime(2026, 3, 1, 12, 30, 5, 123456, tzinfo=timezone.utc), event_type="chat_completion",
                customer_id="cus_1", provider="openai", model="gpt-4.1-mini", endpoint="/chat/completions",
                input_tokens=10, output_tokens=5, total_tokens=15, cost_usd=Decimal("0.000123"))
    return UsageEvent(**{**base, **changes})


# -- the encoder, against the spec ----------------------------------------------------------------------------------
@pytest.mark.parametrize("api", ["v1", "v3"])
def test_every_encoded_event_conforms_to_openmeters_published_schema(events, api):
    schema, components = SCHEMAS[api]
    encoded = om.encode_cloudevents(events, unattributed_subject="unattributed")
    assert len(encoded) == len(events) and len(events) >= 8
    for cloudevent in encoded:
        assert problems(cloudevent, schema, components) == [], cloudevent
    batch = {"type": "array", "items": schema}  # the spec's application/cloudevents-batch+json body
    assert problems(json.loads(om.encode_batch(events, unattributed_subject="u")), batch, components) == []
    assert "application/cloudevents-batch+json" in SPEC[api]["ingest_content_types"]


@pytest.mark.parametrize("broken, expected", [
    (lambda e: e.pop("subject"), "'subject' is required"),
    (lambda e: e.update(time="2026-03-01 12:30:05"), "RFC 3339"),
    (lambda e: e.update(source="a host name"), "uri-reference"),
    (lambda e: e.update(datacontenttype="text/plain"), "is not one of"),
    (lambda e: e.update(id=""), "minLength"),
    (lambda e: e.update(data=[1]), "not object"),
])
def test_the_schema_check_catches_what_openmeter_would_refuse(broken, expected):
    # The checker is only as good as what it catches: break one encoded event each way the spec forbids.
    for api in ("v1", "v3"):
        [cloudevent] = om.encode_cloudevents([event()])
        broken(cloudevent)
        schema, components = SCHEMAS[api]
        assert any(expected in p for p in problems(cloudevent, schema, components)), api
    [cloudevent] = om.encode_cloudevents([event()])
    cloudevent["traceparent"] = "00-abc"  # a CloudEvents extension: v3 allows no property the schema lacks
    assert problems(cloudevent, *SCHEMAS["v1"]) == []
    assert problems(cloudevent, *SCHEMAS["v3"]) == ["$: 'traceparent' is not allowed"]


def test_a_cloudevent_carries_the_events_fields():
    e = event(user_id="u_9", workspace_id="ws_9", feature="chat", environment="production", tags={"team": "a"},
              cached_input_tokens=4, cache_write_tokens=2, reasoning_tokens=1, credits=Decimal("12.5"))
    [cloudevent] = om.encode_cloudevents([e], source="billing-app", type_="tokens")
    assert cloudevent == {
        "specversion": "1.0", "id": e.id, "source": "billing-app", "type": "tokens", "subject": "cus_1",
        "time": "2026-03-01T12:30:05.123456Z", "datacontenttype": "application/json",
        "data": {"input_tokens": 10, "output_tokens": 5, "cached_input_tokens": 4, "cache_write_tokens": 2,
                 "reasoning_tokens": 1, "total_tokens": 15, "cost_usd_micros": 123, "credits_micros": 12_500_000,
                 "model": "gpt-4.1-mini", "provider": "openai", "feature": "chat", "user_id": "u_9",
                 "workspace_id": "ws_9", "environment": "production", "event_type": "chat_completion",
                 "status": "ok", "usage_status": "reported", "billable": True, "tags": {"team": "a"}},
    }
    for key in (*cloudevent, *cloudevent["data"]):  # every field is documented in the module docstring
        assert f"``{key}``" in (om.__doc__ or ""), key


@pytest.mark.parametrize("amount, expected", [
    ("0.0000005", 1),             # exactly half a micro-USD: half up
    ("0.00000049999", 0),
    ("1.23456749", 1234567),
    ("1.2345675", 1234568),
    ("0.0000025", 3),             # half up, not half even (which would give 2)
    ("-0.0000005", -1),           # ties away from zero (an adjustment)
    ("0", 0), ("1E-30", 0), ("1E+3", 1_000_000_000),
    ("98765432.1234564999999999999999", 98765432123456),  # more digits than a float holds
    ("0.1", 100_000), ("0.30000000000000004", 300_000),
])
def test_money_is_integer_micro_units_exactly(amount, expected):
    assert om.micros(Decimal(amount)) == expected
    [cloudevent] = om.encode_cloudevents([event(cost_usd=Decimal(amount), credits=Decimal(amount))])
    assert cloudevent["data"]["cost_usd_micros"] == expected and cloudevent["data"]["credits_micros"] == expected
    assert type(cloudevent["data"]["cost_usd_micros"]) is int


def test_the_module_examples_run():
    assert doctest.testmod(om).failed == 0


def test_unknown_values_are_omitted_never_null_and_no_float_is_ever_produced(events):
    [cloudevent] = om.encode_cloudevents([event(cost_usd=None, credits=None, model=None, feature=None)])
    assert not {"cost_usd_micros", "credits_micros", "model", "feature", "user_id"} & set(cloudevent["data"])

    def walk(value: Any) -> None:
        assert value is not None and not isinstance(value, float), value
        for item in value.values() if isinstance(value, dict) else value if isinstance(value, list) else ():
            walk(item)

    walk(om.encode_cloudevents(events, unattributed_subject="u"))
    unpriced = [e for e in events if e.cost_usd is None]
    assert unpriced  # the spread includes an unpriced call
    assert all("cost_usd_micros" not in c["data"] for c in om.encode_cloudevents(unpriced))
    with pytest.raises(ValueError, match="finite"):
        om.micros(Decimal("NaN"))


@pytest.mark.parametrize("moment, expected", [
    (datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone.utc), "2026-03-01T12:00:00.000000Z"),
    (datetime(2026, 3, 1, 13, 0, 0, 5, tzinfo=timezone(timedelta(hours=1))), "2026-03-01T12:00:00.000005Z"),
    (datetime(2026, 3, 1, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-5))), "2026-03-02T04:59:59.999999Z"),
    (datetime(2026, 3, 1, 12, 0, 0), "2026-03-01T12:00:00.000000Z"),  # naive: taken as UTC
])
def test_time_is_rfc3339_utc(moment, expected):
    [cloudevent] = om.encode_cloudevents([event(timestamp=moment)])
    assert cloudevent["time"] == expected
    assert datetime.fromisoformat(expected.replace("Z", "+00:00")) == moment.replace(
        tzinfo=moment.tzinfo or timezone.utc)


ENCODE_ELSEWHERE = """
import sys
from metricaos_sdk import UsageEvent
from metricaos_sdk.delivery.openmeter import encode_batch
events = [UsageEvent.model_validate_json(line) for line in sys.stdin.read().splitlines()]
sys.stdout.buffer.write(encode_batch(events, unattributed_subject="u"))
"""


def test_the_body_is_deterministic_across_calls_and_processes(events):
    body = om.encode_batch(events, unattributed_subject="u")
    assert body == om.encode_batch(list(events), unattributed_subject="u")
    # Another process (another pid, a fresh import) encodes the same events to the same bytes: nothing of the
    # host or the process is in a CloudEvent, so a resend from anywhere is the same event to OpenMeter.
    lines = "\n".join(e.model_dump_json() for e in events)
    other = subprocess.run([sys.executable, "-c", ENCODE_ELSEWHERE], input=lines.encode(), capture_output=True,
                           check=True).stdout
    assert other == body
    assert {c["source"] for c in json.loads(body)} == {"metricaos-sdk"}


def test_configuration_is_checked():
    with pytest.raises(ConfigurationError, match="URI-reference"):
        OpenMeter(api_key=KEY, source="my host:1234 pid 99")
    with pytest.raises(ConfigurationError, match="'v1', 'v3' or 'konnect'"):
        OpenMeter(api_key=KEY, api="v2")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="unattributed_subject"):
        OpenMeter(api_key=KEY, unattributed_subject=" ")
    assert OpenMeter(api_key=KEY).url == "https://openmeter.cloud/api/v1/events"
    assert OpenMeter(api_key=KEY, api="v3").url == "https://openmeter.cloud/api/v3/openmeter/events"
    assert OpenMeter(api_key=KEY, api="konnect").url == "https://us.api.konghq.com/v3/openmeter/events"
    assert OpenMeter("https://eu.api.konghq.com/", KEY, api="konnect").url == "https://eu.api.konghq.com/v3/openmeter/events"
    assert OpenMeter("http://om:8888", path="/custom/events").url == "http://om:8888/custom/events"
    # The spec's v3 servers: OpenMeter's own under /api/v3, Konnect's regional hosts under /v3.
    assert {"https://openmeter.cloud/api/v3", "https://{region}.api.konghq.com/v3"} <= set(SPEC["v3"]["servers"])


def test_which_events_it_takes(events):
    destination = OpenMeter(api_key=KEY)
    no_customer = event(customer_id=None)
    assert "no customer_id" in (destination.accepts(no_customer) or "")
    assert "no customer_id" in (destination.accepts(event(customer_id="  ")) or "")
    assert "not billable" in (destination.accepts(event(billable=False)) or "")
    assert destination.accepts(event()) is None
    assert OpenMeter(api_key=KEY, billable_only=False).accepts(event(billable=False)) is None
    assert OpenMeter(api_key=KEY, unattributed_subject="anonymous").accepts(no_customer) is None
    [cloudevent] = om.encode_cloudevents([no_customer], unattributed_subject="anonymous")
    assert cloudevent["subject"] == "anonymous"
    with pytest.raises(ValueError):  # an event that cannot be encoded raises in accepts(): the worker parks it
        destination.accepts(event(cost_usd=Decimal("Infinity")))
    destination.close()


# -- the answers the spec documents ------------------------------------------------------------------------------
@pytest.mark.parametrize("api", ["v1", "v3"])
def test_each_documented_ingest_answer_maps_to_a_result(api):
    # 401 and 403 are retried: a refused credential is never an event's fault (delivery resumes once it is fixed).
    expected = {"202": "delivered", "204": "delivered", "400": "rejected", "401": "retry", "403": "retry",
                "412": "rejected", "500": "retry", "503": "retry"}
    codes = [c for c in SPEC[api]["ingest_responses"] if c != "default"]
    assert codes and set(codes) <= set(expected)
    for code in codes:
        transport = httpx2.MockTransport(lambda request, code=code: httpx2.Response(int(code)))
        destination = OpenMeter("http://openmeter.test", KEY, api=api, transport=transport)  # type: ignore[arg-type]
        assert destination.deliver([event()]).outcome == expected[code], code
        destination.close()


# -- delivery to a receiver that answers like OpenMeter ---------------------------------------------------------------
def problem(status: int, detail: str, api: str, **extra: Any) -> Answer:
    """OpenMeter's problem details: v1 ``models.StatusProblem``, v3/Konnect ``apierrors.BaseAPIError``."""
    if api == "v1":
        body = {"type": "about:blank", "title": "Bad Request" if status == 400 else "Unauthorized", "status": status,
                "detail": detail, "instance": "urn:request:local/om-000001", **extra}
    else:
        body = {"type": "https://kongapi.info/konnect/bad-request", "status": status, "title": "Bad Request",
                "instance": "kong:trace:8347343766220159418", "detail": detail, **extra}
    return Answer(status, headers={"content-type": "application/problem+json"}, body=json.dumps(body).encode())


def like_openmeter(api: str, refuse: Callable[[dict[str, Any]], str | None] = lambda e: None) -> Callable[
        [Received], Answer]:
    """Answer as OpenMeter's ingest handler does: exact content type, bearer key, the spec's schema, then 204 (v1)
    or 202 (v3, Konnect) with no body — the same for an event it already has (it drops it: dedup on id+source)."""
    schema, components = SCHEMAS["v1" if api == "v1" else "v3"]

    def decide(request: Received) -> Answer:
        if request.headers.get("authorization") != f"Bearer {KEY}":
            return problem(401, "Unauthorized", api)
        if request.headers.get("content-type") != "application/cloudevents-batch+json":
            return problem(400, f"invalid content type: {request.headers.get('content-type')}", api)
        body = request.json()
        invalid = [(i, p) for i, e in enumerate(body) for p in problems(e, schema, components)]
        invalid += [(i, reason) for i, e in enumerate(body) if (reason := refuse(e)) is not None]
        if invalid and api == "v1":
            return problem(400, "invalid event: " + "; ".join(p for _, p in invalid), api)
        if invalid:
            return problem(400, "Bad Request", api, invalid_parameters=[
                {"field": f"{i}.subject", "rule": "invalid", "reason": reason, "source": "body"} for i, reason in invalid])
        return Answer(204 if api == "v1" else 202, body=b"")

    return decide


def openmeter_receiver(receiver: Receiver, api: str, refuse: Callable[[dict[str, Any]], str | None] | None = None
                       ) -> Receiver:
    receiver.ids = lambda r: [e["id"] for e in r.json()]  # the body is the array of CloudEvents
    receiver.decide = like_openmeter(api, refuse) if refuse else like_openmeter(api)
    return receiver


@pytest.mark.parametrize("api", ["v1", "v3", "konnect"])
def test_every_event_arrives_once_as_a_cloudevents_batch(db_path, api):
    with running() as receiver:
        openmeter_receiver(receiver, api)
        meter = fast(Meter(db_path, deliver_to=[OpenMeter(receiver.url, KEY, api=api, max_batch=7)]))
        calls(meter, 30)
        assert meter.flush(timeout=30)
        assert receiver.unique() == 30 and receiver.duplicates() == 0
        assert set(receiver.events) == {e.id for e in meter.events()}
        for request in receiver.requests:
            assert request.path == PATHS[api]
            assert request.headers["content-type"] == "application/cloudevents-batch+json"
            assert request.headers["authorization"] == f"Bearer {KEY}"
            body = request.json()
            assert isinstance(body, list) and 1 <= len(body) <= 7
            assert {(c["specversion"], c["subject"], c["type"]) for c in body} == {("1.0", "cus_1", "llm.usage")}
        [status] = meter.health().deliveries
        assert (status.destination, status.queued, status.delivered, status.failed) == ("openmeter", 0, 30, 0)
        meter.close()


@pytest.mark.parametrize("trouble", [
    Answer(500, headers={"content-type": "application/problem+json"}, body=b'{"type":"about:blank","status":500}'),
    Answer(503, body=b"upstream unavailable"),
    Answer(429, headers={"retry-after": "0"}, body=b""),
    Answer(reset=True),
    Answer(204, body=b"", stall=2.0, keep=True),  # stored, answered too late: the resend is a duplicate
])
def test_a_receiver_in_trouble_gets_everything_exactly_once_when_it_recovers(db_path, trouble):
    with running() as receiver:
        openmeter_receiver(receiver, "v1")
        receiver.script = [trouble, trouble, trouble]
        meter = fast(Meter(db_path, deliver_to=[OpenMeter(receiver.url, KEY, timeout=0.5)]))
        calls(meter, 12)
        assert meter.flush(timeout=30)
        assert receiver.unique() == 12
        [status] = meter.health().deliveries
        assert status.retried >= 3 and (status.delivered, status.failed, status.queued) == (12, 0, 0)
        meter.close()


def test_a_duplicate_is_answered_like_a_new_event_and_counts_as_delivered(db_path):
    # OpenMeter drops an event whose id+source it has and answers 204 all the same. A destination renamed (a new
    # cursor) sends every event again: each is a duplicate there, and each counts as delivered, none parked.
    with running() as receiver:
        openmeter_receiver(receiver, "v1")
        meter = fast(Meter(db_path, deliver_to=[OpenMeter(receiver.url, KEY)]))
        calls(meter, 9)
        assert meter.flush(timeout=30)
        meter.close()
        again = Delivery(str(db_path), [OpenMeter(receiver.url, KEY, name="openmeter-again")], policy=FAST)
        assert again.flush(timeout=30)
        assert receiver.unique() == 9 and receiver.duplicates() == 9
        [status] = [s for s in again.status() if s.destination == "openmeter-again"]
        assert (status.delivered, status.failed, status.queued, status.retried) == (9, 0, 0, 0)
        again.stop()


def eleven_events_one_for_cus_bad(db_path) -> str:
    """Commit 11 events, the 6th for ``cus_bad``, before any delivery (so they go in one batch); its id."""
    meter = Meter(db_path)
    calls(meter, 5)
    calls(meter, 1, customer="cus_bad")
    calls(meter, 5)
    bad = next(e.id for e in meter.events() if e.customer_id == "cus_bad")
    meter.close()
    return bad


def test_an_event_openmeter_refuses_is_parked_with_its_message_and_the_rest_delivered(db_path):
    def refuse(cloudevent: dict[str, Any]) -> str | None:
        return "subject [cus_bad] is not a customer" if cloudevent["subject"] == "cus_bad" else None

    bad = eleven_events_one_for_cus_bad(db_path)
    with running() as receiver:
        openmeter_receiver(receiver, "v1", refuse)  # v1's 400 names no event: the batch is split to find it
        delivery = Delivery(str(db_path), [OpenMeter(receiver.url, KEY)], policy=FAST)
        assert delivery.flush(timeout=30)
        assert receiver.unique() == 10
        [status] = delivery.status()
        assert (status.delivered, status.failed, status.queued) == (10, 1, 0)
        assert "invalid event: subject [cus_bad] is not a customer" in (status.last_error or "")
        [(parked, reason)] = delivery.outbox.parked("openmeter")
        assert parked == bad and reason.startswith("400 ") and '"title": "Bad Request"' in reason
        assert len(receiver.requests) > 2  # found by halving: 11, then 5 and 6, …
        delivery.stop()


@pytest.mark.parametrize("api", ["v3", "konnect"])
def test_v3_names_the_bad_event_so_only_it_is_parked_without_splitting(db_path, api):
    def refuse(cloudevent: dict[str, Any]) -> str | None:
        return "is not a known customer" if cloudevent["subject"] == "cus_bad" else None

    bad = eleven_events_one_for_cus_bad(db_path)
    with running() as receiver:
        openmeter_receiver(receiver, api, refuse)
        delivery = Delivery(str(db_path), [OpenMeter(receiver.url, KEY, api=api)], policy=FAST)
        assert delivery.flush(timeout=30)
        assert receiver.unique() == 10
        [status] = delivery.status()
        assert (status.delivered, status.failed, status.queued) == (10, 1, 0)
        assert delivery.outbox.parked("openmeter") == [(bad, "400 subject: is not a known customer")]
        # Named at once: the batch of 11 refused, the 10 others sent again — never halved down to the bad one.
        assert [len(r.json()) for r in receiver.requests] == [11, 10]
        delivery.stop()


def test_unattributed_and_non_billable_events_are_skipped_and_counted(db_path):
    with running() as receiver:
        openmeter_receiver(receiver, "v1")
        meter = fast(Meter(db_path, deliver_to=[OpenMeter(receiver.url, KEY)]))
        client = meter.wrap(SimulatedOpenAI(reply_words=3).client())
        client.chat.completions.create(**ASK)  # no customer
        with meter.context(customer_id="cus_1", environment="staging"):  # not billable
            client.chat.completions.create(**ASK)
        calls(meter, 2)
        assert meter.flush(timeout=30)
        [status] = meter.health().deliveries
        assert (status.delivered, status.skipped, status.failed, status.queued) == (2, 2, 0, 0)
        assert receiver.unique() == 2
        meter.close()


def test_the_api_key_never_reaches_a_log_a_reason_or_the_status(db_path, caplog):
    with running() as receiver:
        receiver.ids = lambda r: [e["id"] for e in r.json()]
        receiver.script = [problem(400, "Bad Request", "v3", invalid_parameters=[
            {"field": "0.subject", "reason": f"token {KEY} may not ingest for this subject", "source": "body"}])]
        receiver.decide = lambda request: problem(401, f"Invalid credentials: {KEY}", "konnect")
        destination = OpenMeter(receiver.url, KEY, api="konnect")
        meter = fast(Meter(db_path, deliver_to=[destination]))
        calls(meter, 2)
        assert not meter.flush(timeout=2)  # the 401 is retried, not parked: the second event waits for a good key
        [status] = meter.health().deliveries
        assert (status.failed, status.queued) == (1, 1) and "<redacted>" in (status.last_error or "")
        reasons = [reason for _, reason in meter.delivery.outbox.parked("openmeter")]  # type: ignore[union-attr]
        assert len(reasons) == 1 and all("<redacted>" in r for r in reasons)
        everything = [status.last_error or "", *reasons, repr(destination), *(r.getMessage() for r in caplog.records)]
        assert all("CANARY" not in text for text in everything)
        assert repr(destination).startswith("OpenMeter('http://127.0.0.1:")
        meter.close()


def test_the_calls_do_not_wait_while_openmeter_is_down(db_path):
    with running() as receiver:
        openmeter_receiver(receiver, "v1")
        receiver.decide = lambda request: Answer(503, body=b"")
        meter = fast(Meter(db_path, deliver_to=[OpenMeter(receiver.url, KEY)]))
        calls(meter, 200)  # they return while OpenMeter is down: the calls only commit locally
        assert meter.faults == 0
        assert not meter.flush(timeout=0.3)
        openmeter_receiver(receiver, "v1")
        assert meter.flush(timeout=60)
        assert receiver.unique() == 200 and meter.health().deliveries[0].delivered == 200
        meter.close()
