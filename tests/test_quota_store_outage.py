"""The quota store never stalls a call (issue 11, point 2).

Another process holds the database (``BEGIN EXCLUSIVE``) until the test lets go. A metered call for a customer
with a limit used to wait out SQLite's 30-second busy timeout; now it waits ``MeterConfig.quota_timeout`` while
nothing moves, then the fail-open (or fail-closed) policy applies, a fault is counted, later calls skip the
store for a back-off, and the call's usage is settled once the store answers again. The holder keeps the lock until told to
let go (or for 10 s, far beyond any bound), so a call that waited for the lock cannot return while it holds.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from metricaos_sdk import Meter, MeterConfig, QuotaUnavailable
from tests.fake_openai import FakeOpenAI

MESSAGES = [{"role": "user", "content": "Where is my order?"}]

HOLDER = textwrap.dedent('''
    import select, sqlite3, sys
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    print("held", flush=True)
    select.select([sys.stdin], [], [], 10)  # until the test lets go, or 10 s: a call that waited for the lock
    conn.execute("ROLLBACK")                # returns after this, and the test sees it
''')


class Holder:
    """A process holding the database's write lock until :meth:`release`."""

    def __init__(self, path: Path) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None and self.process.stdout.readline().strip() == "held"

    @property
    def holding(self) -> bool:
        return self.process.poll() is None

    def release(self) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        if self.holding:
            self.process.stdin.write("go\n")
            self.process.stdin.flush()
        self.process.wait(timeout=30)
        self.process.stdin.close()
        self.process.stdout.close()


@pytest.fixture
def holder(db_path: Path) -> Iterator[Holder]:
    holders: list[Holder] = []

    def hold() -> Holder:
        holders.append(Holder(db_path))
        return holders[-1]

    yield hold  # type: ignore[misc]
    for h in holders:
        h.release()


def make_meter(db_path: Path, **config: object) -> Meter:
    meter = Meter(config=MeterConfig(database=str(db_path), **config))  # type: ignore[arg-type]
    meter.set_quota("cus_1", tokens=10_000_000)
    return meter


def test_a_call_does_not_wait_for_a_database_another_process_holds(db_path, router, holder):
    FakeOpenAI().mount(router)
    meter = make_meter(db_path)
    client = meter.wrap(openai.OpenAI(api_key="sk-test"))
    held = holder()
    with meter.context(customer_id="cus_1"):
        first = client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES)
        assert held.holding  # it returned while the lock was still held: it did not wait for it
        second = client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES)
        assert held.holding
    assert first.usage.total_tokens == second.usage.total_tokens == 1500
    assert meter.faults == 1  # the first call found the store stuck; the second skipped it (the breaker)
    health = meter.health()
    assert not health.quota_store_available and health.quota_settlements_pending == 2
    held.release()
    meter.flush()  # the store answers again: both calls' usage is settled now
    assert meter.health().quota_store_available and meter.health().quota_settlements_pending == 0
    assert meter.usage("cus_1").used == 3000
    assert [e.status for e in meter.events()] == ["ok", "ok"]
    meter.close()


def test_fail_closed_refuses_the_call_before_anything_is_sent(db_path, router, holder):
    route = FakeOpenAI().mount(router)
    meter = make_meter(db_path, quota_fail_open=False)
    client = meter.wrap(openai.OpenAI(api_key="sk-test"))
    held = holder()
    with meter.context(customer_id="cus_1"):
        for _ in range(2):  # the second without waiting on the store (the breaker)
            with pytest.raises(QuotaUnavailable) as info:
                client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES)
            assert held.holding
            assert "quota_fail_open" in str(info.value)
            assert info.value.__cause__ is None and info.value.__suppress_context__
    assert route.call_count == 0
    held.release()
    with meter.context(customer_id="cus_1"):  # the back-off over, the store answers: calls go through again
        meter._quotas._breaker.succeeded()
        client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES)
    assert route.call_count == 1
    meter.close()


def test_a_store_that_is_only_busy_is_waited_for(db_path, router):
    """Contention is not an outage: a lock that keeps changing hands is waited for past quota_timeout."""
    import threading

    FakeOpenAI().mount(router)
    meter = make_meter(db_path, quota_timeout=0.02)
    client = meter.wrap(openai.OpenAI(api_key="sk-test"))

    def calls() -> None:
        with meter.context(customer_id="cus_1"):
            for _ in range(15):
                client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES)

    threads = [threading.Thread(target=calls) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert meter.faults == 0  # never gave up on the store: every call reserved (and settled) in turn
    assert meter.usage("cus_1").used == 8 * 15 * 1500
    meter.close()
