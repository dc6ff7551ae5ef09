"""The PostgreSQL destination against a real server: every column arrives exact, each event once — from two
producer processes too — through the server going away and coming back; migrations apply once, also when
processes race; a value PostgreSQL cannot store is parked and the rest delivered; the password stays out of
every message. Each test has a schema of its own (``schema`` fixture), dropped afterwards."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from metricaos_sdk import Meter, MeterConfig, UsageEvent
from metricaos_sdk.storage.rows import EVENT_COLUMNS
from metricaos_sdk.testing import SimulatedOpenAI
from tests import postgres_support
from tests.postgres_support import Proxy, with_params

psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed (pip install -e '.[test]')")

from metricaos_sdk.delivery.postgres import PostgreSQL  # noqa: E402
from metricaos_sdk.storage.postgres import MIGRATIONS, event_values, row_to_event  # noqa: E402
from tests.delivery_support import ASK, fast  # noqa: E402

ALL_MIGRATIONS = list(MIGRATIONS)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    yield from postgres_support.server_url()


@pytest.fixture
def schema(postgres_url: str) -> Iterator[str]:
    yield from postgres_support.own_schema(postgres_url)


def calls(meter: Meter, n: int, customer: str = "cus_1", **context: object) -> None:
    client = meter.wrap(SimulatedOpenAI(reply_words=3).client())
    with meter.context(customer_id=customer, **context):  # type: ignore[arg-type]
        for _ in range(n):
            client.chat.completions.create(**ASK)


def rows(url: str, in_schema: str, table: str = "metricaos_events") -> list[UsageEvent]:
    """The events in the table, in the order ``meter.events()`` gives them."""
    from psycopg.rows import dict_row

    with psycopg.connect(url, row_factory=dict_row) as conn:
        found = conn.execute(f'SELECT * FROM "{in_schema}"."{table}" ORDER BY timestamp, id').fetchall()
    return [row_to_event(r) for r in found]


def count(url: str, in_schema: str, table: str = "metricaos_events") -> int:
    with psycopg.connect(url) as conn:
        return int(conn.execute(f'SELECT count(*) FROM "{in_schema}"."{table}"').fetchone()[0])


def test_every_column_arrives_exact(db_path, postgres_url, schema):
    meter = fast(Meter(db_path, deliver_to=[PostgreSQL(postgres_url, schema=schema)]))
    meter.plans.define("pro", credits=25, on_limit="overage", overage_price_usd="0.002")  # credits and overage
    meter.credits.set("*", per_call=10)
    meter.customers.assign("cus_pro", "pro")
    calls(meter, 4, customer="cus_pro", user_id="u_1", workspace_id="w_1", feature="support",
          tags={"plan": "pro", "région": "eu-west", "emoji": "🧾", "quote": "it's \"fine\""})
    calls(meter, 1, customer="cus_pro", environment="staging")
    sim = SimulatedOpenAI(reply_words=5, cached_tokens=2, reasoning_tokens=3)
    client = meter.wrap(sim.client(max_retries=0))
    with meter.context(customer_id="cus_2"):
        stream = client.chat.completions.create(**ASK, stream=True, stream_options={"include_usage": True})
        for _ in stream:
            pass
        client.responses.create(model="gpt-4.1-mini", input="Where is my order?")
        client.chat.completions.create(model="no-such-model-with-a-price", messages=ASK["messages"])  # cost None
        sim.fail_next(1, 400)
        with pytest.raises(Exception):  # noqa: B017 - the provider's own error, whatever its class
            client.chat.completions.create(**ASK)
    assert meter.flush(timeout=30)
    expected = meter.events()
    assert len(expected) == 9
    assert rows(postgres_url, schema) == expected  # every field, compared as UsageEvent values
    got = {e.id: e for e in rows(postgres_url, schema)}
    for e in expected:
        assert got[e.id].timestamp == e.timestamp and got[e.id].timestamp.tzinfo == timezone.utc
        assert got[e.id].cost_usd == e.cost_usd and type(got[e.id].cost_usd) is type(e.cost_usd)
    assert {e.status for e in expected} == {"ok", "error"}
    assert any(e.cost_usd is None for e in expected) and any(isinstance(e.credits, Decimal) for e in expected)
    assert any(e.overage for e in expected) and any(e.streamed for e in expected)
    assert {e.billable for e in expected} == {True, False}
    [status] = meter.health().deliveries
    assert (status.destination, status.delivered, status.queued, status.failed) == ("postgres", 9, 0, 0)
    meter.close()


def test_the_table_has_postgresql_types_in_event_column_order(postgres_url, schema):
    PostgreSQL(postgres_url, schema=schema).migrate()
    with psycopg.connect(postgres_url) as conn:
        columns = conn.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = %s "
                               "AND table_name = 'metricaos_events' ORDER BY ordinal_position", (schema,)).fetchall()
        indexes = {r[0] for r in conn.execute("SELECT indexdef FROM pg_indexes WHERE schemaname = %s", (schema,))}
        [primary] = conn.execute(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
            "WHERE i.indrelid = %s::regclass AND i.indisprimary", (f'"{schema}".metricaos_events',)).fetchall()
    assert tuple(name for name, _ in columns) == EVENT_COLUMNS  # a new UsageEvent field needs a migration
    types = dict(columns)
    for money in ("cost_usd", "credits", "overage", "overage_cost_usd"):
        assert types[money] == "numeric"
    assert types["timestamp"] == "timestamp with time zone" and types["tags"] == "jsonb"
    assert types["price_effective_from"] == "date" and types["duration_ms"] == "double precision"
    assert types["billable"] == types["streamed"] == "boolean"
    assert {types[n] for n in ("schema_version", "input_tokens", "total_tokens", "http_status", "attempts")} == {"bigint"}
    assert primary == ("id",)
    assert any("(customer_id, \"timestamp\")" in d for d in indexes) and any("(\"timestamp\")" in d for d in indexes)


def test_the_same_batch_twice_leaves_one_row_per_event(db_path, postgres_url, schema):
    meter = Meter(db_path)
    calls(meter, 20)
    events = meter.events()
    meter.close()
    destination = PostgreSQL(postgres_url, schema=schema, method="copy")
    assert destination.deliver(events).outcome == "delivered"
    assert destination.deliver(events).outcome == "delivered"  # an at-least-once resend
    assert destination.deliver(events[5:15] + events[5:15]).outcome == "delivered"  # twice in one batch
    other = PostgreSQL(postgres_url, schema=schema, method="insert")
    assert other.deliver(events).outcome == "delivered"
    assert count(postgres_url, schema) == 20
    assert rows(postgres_url, schema) == events
    destination.close()
    other.close()


PRODUCER = textwrap.dedent('''
    import sys
    from metricaos_sdk import Meter
    from metricaos_sdk.delivery import DeliveryPolicy, PostgreSQL
    from metricaos_sdk.testing import SimulatedOpenAI
    db, url, schema, n, customer = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
    meter = Meter(db, deliver_to=[PostgreSQL(url, schema=schema, max_batch=7)])
    meter.delivery.policy = DeliveryPolicy(first_backoff=0.05, longest_backoff=0.2, poll_interval=0.05)
    client = meter.wrap(SimulatedOpenAI(reply_words=3).client())
    print("ready", flush=True)
    sys.stdin.readline()
    with meter.context(customer_id=customer):
        for _ in range(n):
            client.chat.completions.create(model="gpt-4.1-mini", messages=[{"role": "user", "content": "hi"}])
    print("flushed" if meter.flush(timeout=60) else "not flushed", flush=True)
    meter.close()
''')


def test_two_producers_on_two_files_fill_one_table_once_each(tmp_path, postgres_url, schema):
    files = [tmp_path / "host-a.db", tmp_path / "host-b.db"]
    children = [subprocess.Popen([sys.executable, "-c", PRODUCER, str(f), postgres_url, schema, "60", f"cus_{i}"],
                                 cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                for i, f in enumerate(files)]
    for child in children:  # both started (migrations not run yet: they race on the first delivery)
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    for child in children:
        out, _ = child.communicate(timeout=120)
        assert child.returncode == 0 and out.strip() == "flushed"
    union = []
    for f in files:
        meter = Meter(f)
        union += meter.events()
        meter.close()
    assert len(union) == 120 and len({e.id for e in union}) == 120
    assert rows(postgres_url, schema) == sorted(union, key=lambda e: (e.timestamp, e.id))
    with psycopg.connect(postgres_url) as conn:
        applied = conn.execute(f'SELECT target, name FROM "{schema}".metricaos_migrations').fetchall()
    assert applied == [("metricaos_events", name) for name in ALL_MIGRATIONS]


def test_backends_terminated_mid_run_are_retried_and_nothing_is_lost(db_path, postgres_url, schema):
    app = f"metricaos-test-{schema}"
    meter = fast(Meter(db_path, deliver_to=[PostgreSQL(with_params(postgres_url, application_name=app),
                                                       schema=schema, max_batch=5)]))
    stop = threading.Event()
    terminated = []

    def terminate() -> None:
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            while not stop.is_set():
                terminated.extend(r[0] for r in admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s", (app,)))
                time.sleep(0.03)

    killer = threading.Thread(target=terminate)
    killer.start()
    try:
        for _ in range(20):
            calls(meter, 5)
            time.sleep(0.02)
    finally:
        time.sleep(0.3)
        stop.set()
        killer.join()
    assert any(terminated)  # sessions were cut while delivering
    assert meter.flush(timeout=60)
    assert rows(postgres_url, schema) == meter.events() and len(meter.events()) == 100
    [status] = meter.health().deliveries
    assert status.delivered == 100 and status.queued == 0 and status.failed == 0 and status.retried >= 1
    meter.close()


def test_a_server_gone_then_back_gets_everything_once(db_path, postgres_url, schema):
    real = urlsplit(postgres_url)
    proxy = Proxy(real.port or 5432)
    via_proxy = postgres_url.replace(f":{real.port}", f":{proxy.port}", 1)
    meter = fast(Meter(db_path, deliver_to=[PostgreSQL(via_proxy, schema=schema, max_batch=10)]))
    try:
        calls(meter, 10)
        assert meter.flush(timeout=30) and count(postgres_url, schema) == 10
        proxy.down()  # the open session is cut; new ones are refused
        calls(meter, 25)
        assert not meter.flush(timeout=0.5)
        [status] = meter.health().deliveries
        assert status.queued == 25 and status.failing_since is not None
        assert "127.0.0.1" in (status.last_error or "")
        proxy.up()
        assert meter.flush(timeout=60)
        assert rows(postgres_url, schema) == meter.events() and count(postgres_url, schema) == 35
        [status] = meter.health().deliveries
        assert status.delivered == 35 and status.queued == 0 and status.retried >= 1
        assert proxy.accepted >= 2  # it reconnected
    finally:
        meter.close()
        proxy.down()


def test_a_closed_port_is_a_retry_not_a_refusal(postgres_url, schema, db_path):
    meter = Meter(db_path)
    calls(meter, 3)
    events = meter.events()
    meter.close()
    proxy = Proxy(urlsplit(postgres_url).port or 5432)
    proxy.down()
    destination = PostgreSQL(postgres_url.replace(f":{urlsplit(postgres_url).port}", f":{proxy.port}", 1),
                             schema=schema, connect_timeout=2)
    result = destination.deliver(events)
    assert result.outcome == "retry" and "could not connect to postgresql://" in (result.reason or "")
    proxy.up()
    assert destination.deliver(events).outcome == "delivered"
    destination.close()
    proxy.down()
    assert count(postgres_url, schema) == 3


def test_a_serialization_failure_is_retried(db_path, postgres_url, schema):
    meter = Meter(db_path)
    calls(meter, 3)
    events = meter.events()
    meter.close()
    url = with_params(postgres_url, options="-c default_transaction_isolation=repeatable\\ read")
    destination = PostgreSQL(url, schema=schema)
    try:
        assert destination.deliver(events[:1]).outcome == "delivered"  # connected, migrated, stage made
        results = []
        with psycopg.connect(postgres_url) as other:  # a concurrent writer of one of the same events, uncommitted
            columns = ", ".join(f'"{c}"' for c in EVENT_COLUMNS)
            other.execute(f'INSERT INTO "{schema}".metricaos_events ({columns}) VALUES '
                          f'({", ".join(["%s"] * len(EVENT_COLUMNS))})', event_values(events[1]))
            sender = threading.Thread(target=lambda: results.append(destination.deliver(events)))
            sender.start()
            time.sleep(0.5)  # the delivery has its snapshot, and waits on the row the other transaction holds
            other.commit()
            sender.join(30)
        [result] = results
        assert result.outcome == "retry" and "40001" in (result.reason or ""), result
        assert destination.deliver(events).outcome == "delivered"  # a new snapshot sees the row: nothing to do
        assert count(postgres_url, schema) == 3
    finally:
        destination.close()


def test_a_row_postgresql_refuses_is_parked_and_the_rest_delivered(db_path, postgres_url, schema):
    meter = fast(Meter(db_path, deliver_to=[PostgreSQL(postgres_url, schema=schema)]))
    calls(meter, 5)
    calls(meter, 1, customer="cus\x00nul")  # SQLite stores a NUL in a text; PostgreSQL cannot
    calls(meter, 5)
    calls(meter, 1, tags={"note": "a\x00b"})  # nor in a jsonb string
    calls(meter, 3)
    assert meter.flush(timeout=30)
    events = meter.events()
    good = [e for e in events if "\x00" not in (e.customer_id or "") and not e.tags]
    assert len(events) == 15 and len(good) == 13
    assert rows(postgres_url, schema) == good
    [status] = meter.health().deliveries
    assert (status.delivered, status.failed, status.queued) == (13, 2, 0)
    parked = meter.delivery.outbox.parked("postgres")
    assert len(parked) == 2
    reasons = sorted(reason for _, reason in parked)
    assert any("22021" in r for r in reasons) and any("22P05" in r for r in reasons), reasons  # SQLSTATEs
    meter.close()


def test_migrations_apply_once(postgres_url, schema):
    first = PostgreSQL(postgres_url, schema=schema)
    assert first.migrate() == ALL_MIGRATIONS
    assert first.migrate() == []
    assert PostgreSQL(postgres_url, schema=schema, table="other_events").migrate() == ALL_MIGRATIONS
    with psycopg.connect(postgres_url) as conn:
        applied = conn.execute(f'SELECT target, name FROM "{schema}".metricaos_migrations ORDER BY 1').fetchall()
    assert sorted(applied) == sorted((t, n) for t in ("metricaos_events", "other_events") for n in ALL_MIGRATIONS)


MIGRATOR = textwrap.dedent('''
    import json, sys
    from metricaos_sdk.delivery.postgres import PostgreSQL
    destination = PostgreSQL(sys.argv[1], schema=sys.argv[2])
    print("ready", flush=True)
    sys.stdin.readline()
    print(json.dumps(destination.migrate()), flush=True)
''')


def test_migrations_racing_in_processes_apply_once(postgres_url, schema):
    children = [subprocess.Popen([sys.executable, "-c", MIGRATOR, postgres_url, schema], cwd=ROOT, text=True,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                for _ in range(4)]
    for child in children:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    for child in children:  # all at once: each finds the schema without its table, and migrates
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    results = []
    for child in children:
        out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
        results.append(json.loads(out))
    assert sorted(results, key=len) == [[]] * 3 + [ALL_MIGRATIONS]
    with psycopg.connect(postgres_url) as conn:
        applied = conn.execute(f'SELECT name FROM "{schema}".metricaos_migrations').fetchall()
    assert sorted(applied) == [(name,) for name in ALL_MIGRATIONS]


def test_the_password_never_reaches_a_message_a_log_or_the_repr(db_path, postgres_url, schema, caplog):
    parts = urlsplit(postgres_url)
    secret = "pw-CANARY-42"
    with_password = postgres_url.replace(f"{parts.username}@", f"{parts.username}:{secret}@", 1)
    closed = with_password.replace(f":{parts.port}", ":9", 1)
    meter = fast(Meter(db_path, deliver_to=[PostgreSQL(closed, schema=schema, connect_timeout=2)],
                       config=MeterConfig(delivery_timeout=0.2)))
    calls(meter, 1)
    assert not meter.flush(timeout=1)
    [status] = meter.health().deliveries
    assert status.last_error and "127.0.0.1" in status.last_error and secret not in status.last_error
    assert secret not in repr(meter.delivery.destinations[0])
    meter.close()
    conninfo = f"host=127.0.0.1 port={parts.port} dbname={parts.path.lstrip('/')} user={parts.username} " \
               f"password={secret}"
    destination = PostgreSQL(conninfo, schema=schema)  # trust auth: the password is not needed, only carried
    assert secret not in repr(destination) and "postgresql://" in repr(destination)
    event = UsageEvent(timestamp=datetime.now(timezone.utc), event_type="chat_completion", provider="openai", endpoint="/x", customer_id=secret + "\x00")
    result = destination.deliver([event])
    assert result.outcome == "rejected" and secret not in (result.reason or "")
    destination.close()
    with pytest.raises(ValueError) as info:
        PostgreSQL(f"host=db password={secret} = broken")
    assert secret not in str(info.value)
    assert all(secret not in r.getMessage() for r in caplog.records)


def test_importing_delivery_does_not_import_psycopg_and_a_missing_one_names_the_extra():
    code = textwrap.dedent('''
        import sys
        import metricaos_sdk, metricaos_sdk.delivery
        assert "psycopg" not in sys.modules, "psycopg imported"
        sys.modules["psycopg"] = None  # as if it were not installed
        try:
            from metricaos_sdk.delivery import PostgreSQL
        except ImportError as exc:
            print(exc)
    ''')
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          check=False, env={**os.environ, "PYTHONWARNINGS": "error"})
    assert done.returncode == 0, done.stderr
    assert "pip install 'metricaos-sdk[postgres]'" in done.stdout
