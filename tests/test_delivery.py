"""Delivery through the outbox to a real HTTP receiver on 127.0.0.1, with the receiver misbehaving every way a
network does: every event arrives, once at a receiver that deduplicates on its id, and the calls never wait."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from metricaos_sdk import Meter
from metricaos_sdk.delivery import HTTPJSON, Delivery, DeliveryPolicy
from tests.delivery_support import calls, fast
from tests.receiver import Answer, running


def test_every_event_arrives_once_in_our_schema(db_path):
    with running() as receiver:
        meter = fast(Meter(db_path, deliver_to=[HTTPJSON(receiver.url + "/ingest", token="tok-secret")]))
        calls(meter, 30)
        assert meter.flush(timeout=30)
        assert receiver.unique() == 30 and receiver.duplicates() == 0
        body = receiver.requests[0].json()
        assert body["schema"] == "metricaos.usage_events/1"
        assert set(body["events"][0]) >= {"id", "timestamp", "customer_id", "input_tokens", "cost_usd"}
        assert receiver.requests[0].headers["authorization"] == "Bearer tok-secret"
        keys = {r.headers["idempotency-key"] for r in receiver.requests}
        assert len(keys) == len(receiver.requests)
        [status] = meter.health().deliveries
        assert (status.destination, status.queued, status.delivered, status.failed) == ("http", 0, 30, 0)
        meter.close()


@pytest.mark.parametrize("trouble", [
    Answer(500), Answer(503, body=b"upstream"), Answer(408), Answer(reset=True),
    Answer(200, stall=2.0, keep=True),  # answered too late: the client gave up, the receiver had stored it
])
def test_a_receiver_in_trouble_gets_everything_once_when_it_recovers(db_path, trouble):
    with running() as receiver:
        receiver.script = [trouble, trouble, trouble]
        meter = fast(Meter(db_path, deliver_to=[HTTPJSON(receiver.url, timeout=0.5)]))
        calls(meter, 12)
        assert meter.flush(timeout=30)
        assert receiver.unique() == 12
        [status] = meter.health().deliveries
        assert status.retried >= 3 and status.delivered == 12 and status.queued == 0
        meter.close()


def test_retry_after_is_honoured(db_path):
    with running() as receiver:
        receiver.script = [Answer(429, headers={"retry-after": "1"})]
        meter = fast(Meter(db_path, deliver_to=[HTTPJSON(receiver.url)]))
        calls(meter, 3)
        assert meter.flush(timeout=30)
        first, second = receiver.requests[0], receiver.requests[1]
        assert second.at - first.at >= 0.95  # the receiver said when; the back-off alone would be 0.05 s
        assert receiver.unique() == 3
        meter.close()


def test_a_bad_event_is_found_parked_and_the_rest_delivered(db_path):
    def refuse_cus_bad(request):
        ids = {e["customer_id"] for e in request.json()["events"]}
        return Answer(400, body=b'{"error": "unknown customer cus_bad"}') if "cus_bad" in ids else Answer(200)

    with running() as receiver:
        receiver.decide = refuse_cus_bad
        meter = fast(Meter(db_path, deliver_to=[HTTPJSON(receiver.url)]))
        calls(meter, 5)
        calls(meter, 1, customer="cus_bad")
        calls(meter, 5)
        assert meter.flush(timeout=30)
        assert receiver.unique() == 10
        [status] = meter.health().deliveries
        assert (status.delivered, status.failed, status.queued) == (10, 1, 0)
        assert "unknown customer cus_bad" in status.last_error
        [(_, reason)] = meter.delivery.outbox.parked("http")
        assert reason.startswith("400 ")
        receiver.decide = None  # the receiver was fixed: send the parked one again
        assert meter.delivery.outbox.retry_parked("http") == 1
        meter.delivery.notify()
        deadline = time.monotonic() + 30
        while receiver.unique() < 11 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert receiver.unique() == 11 and receiver.duplicates() == 0
        meter.close()


def test_the_calls_do_not_wait_for_a_receiver_that_is_down_and_nothing_is_lost(db_path):
    n = int(os.environ.get("METRICAOS_OUTAGE_CALLS", "10000"))  # the run of 10,000 calls
    with running() as receiver:
        receiver.decide = lambda request: Answer(503)
        meter = fast(Meter(db_path, deliver_to=[HTTPJSON(receiver.url, max_batch=500)]))
        calls(meter, n)
        assert meter.faults == 0
        assert not meter.flush(timeout=0.5)  # it cannot get through: flush says so, within its bound
        [status] = meter.health().deliveries
        assert status.queued == n and status.delivered == 0 and status.failing_since is not None
        receiver.decide = None
        assert meter.flush(timeout=60)
        assert receiver.unique() == n and meter.health().deliveries[0].queued == 0
        meter.close()


PRODUCER = textwrap.dedent('''
    import sys
    from metricaos_sdk import Meter
    from metricaos_sdk.delivery import HTTPJSON
    from metricaos_sdk.testing import SimulatedOpenAI
    meter = Meter(sys.argv[1], deliver_to=[HTTPJSON(sys.argv[2], max_batch=5)])
    client = meter.wrap(SimulatedOpenAI(reply_words=3).client())
    for _ in range(int(sys.argv[3])):
        client.chat.completions.create(model="gpt-4.1-mini", messages=[{"role": "user", "content": "hi"}])
    meter.sink.flush()
    print("committed", flush=True)
    sys.stdin.readline()
''')


def test_a_producer_killed_mid_delivery_leaves_the_rest_to_the_next_process(db_path):
    with running() as receiver:
        receiver.decide = lambda request: Answer(200, stall=0.2)  # slow: the kill lands mid-delivery
        child = subprocess.Popen([sys.executable, "-c", PRODUCER, str(db_path), receiver.url, "60"],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None and child.stdout.readline().strip() == "committed"
        while not receiver.requests:
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdin.close()  # type: ignore[union-attr]
        child.stdout.close()
        assert receiver.unique() < 60
        receiver.decide = None
        delivery = Delivery(str(db_path), [HTTPJSON(receiver.url)], policy=DeliveryPolicy(lease_seconds=30))
        deadline = time.monotonic() + 60  # the dead producer's lease has to lapse first (30 s at most)
        while receiver.unique() < 60 and time.monotonic() < deadline:
            delivery.run_once(delivery.destinations[0])
            time.sleep(0.05)
        delivery.stop(5)
        assert receiver.unique() == 60  # nothing lost; a batch in flight at the kill may have come twice


def test_delivery_needs_the_sqlite_outbox():
    from metricaos_sdk import ConfigurationError, MemorySink

    with pytest.raises(ConfigurationError, match="SQLite sink as its outbox"):
        Meter(sink=MemorySink(), deliver_to=[HTTPJSON("http://127.0.0.1:9/")])


def test_the_token_never_reaches_a_log_or_the_status(db_path, caplog):
    with running() as receiver:
        receiver.decide = lambda request: Answer(401, body=json.dumps(
            {"error": "bad token tok-CANARY-123"}).encode())
        meter = fast(Meter(db_path, deliver_to=[HTTPJSON(receiver.url, token="tok-CANARY-123")]))
        calls(meter, 1)
        assert not meter.flush(timeout=1)  # a refused credential is retried (never an event's fault), not parked
        [status] = meter.health().deliveries
        assert status.queued == 1 and status.failed == 0 and status.retried >= 1
        assert "CANARY" not in (status.last_error or "") and "<redacted>" in status.last_error
        assert all("CANARY" not in r.getMessage() for r in caplog.records)
        assert "CANARY" not in repr(meter.delivery.destinations[0])
        meter.close()



def test_the_encoding_is_the_events_json_schema_field_for_field():
    from datetime import date, datetime, timezone
    from decimal import Decimal

    from metricaos_sdk import UsageEvent
    from metricaos_sdk.delivery.http_json import encode_events

    event = UsageEvent(timestamp=datetime(2026, 12, 1, 12, 0, 0, 123456, tzinfo=timezone.utc), event_type="message",
                       provider="anthropic", endpoint="/v1/messages", cost_usd=Decimal("0.0000123"),
                       credits=Decimal("2.50"), price_effective_from=date(2026, 1, 1), tags={"team": "a"})
    [sent] = json.loads(encode_events([event]))["events"]
    assert sent == event.model_dump(mode="json") and list(sent) == list(UsageEvent.model_fields)
    assert UsageEvent.model_validate(sent) == event  # a receiver parses it back exactly
