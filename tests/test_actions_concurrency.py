"""Actions under concurrency (issue 13): 64 threads and 8 processes against one customer on one SQLite file.

Admitted actions never exceed the credits, and nothing stays reserved afterwards — also for actions cancelled
mid-way and for a process killed with SIGKILL inside an action (its reservation lapses with its short lease)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from metricaos_sdk import Meter, MeterConfig, QuotaExceeded, QuotaUnavailable
from metricaos_sdk.testing import SimulatedOpenAI

ROOT = Path(__file__).resolve().parents[1]
ASK = {"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "Summarize"}], "max_tokens": 10}


def strict(path: Path) -> MeterConfig:
    """Fail closed with a patient store: an action the store could not reserve for is refused, never let through."""
    return MeterConfig(database=str(path), quota_fail_open=False, quota_timeout=2.0)


def seed(path: Path, credits: int) -> None:
    with Meter(config=strict(path)) as meter:
        meter.plans.define("pool", credits=credits)
        meter.customers.assign("cus_shared", "pool")


def run_actions(path: str, count: int) -> tuple[int, int]:
    """In a process of its own: ``count`` actions of 50 credits, one LLM call each; (admitted, refused)."""
    meter = Meter(config=strict(Path(path)))
    client = meter.wrap(SimulatedOpenAI().client())
    admitted = refused = 0
    for _ in range(count):
        try:
            with meter.action("summarize_document", credits=50, customer_id="cus_shared"):
                client.chat.completions.create(**ASK)
            admitted += 1
        except (QuotaExceeded, QuotaUnavailable):
            refused += 1
    meter.close()
    return admitted, refused


def test_64_threads_never_overshoot(db_path):
    seed(db_path, 1000)  # room for 20 actions of 50
    meter = Meter(config=strict(db_path))
    client = meter.wrap(SimulatedOpenAI().client())
    admitted, barrier = [], threading.Barrier(64)

    def worker():
        barrier.wait()
        try:
            with meter.action("summarize_document", credits=50, customer_id="cus_shared"):
                client.chat.completions.create(**ASK)
            admitted.append(1)
        except (QuotaExceeded, QuotaUnavailable):
            pass

    threads = [threading.Thread(target=worker) for _ in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    used = meter.usage("cus_shared").used
    assert len(admitted) <= 20 and used == 50 * len(admitted) and len(admitted) > 0
    actions = [e for e in meter.events() if e.event_type == "action"]
    assert len(actions) == len(admitted) and sum(e.credits for e in actions) == used
    assert meter.quota_store.open_reservations() == 0
    meter.close()


def test_8_processes_never_overshoot(db_path):
    seed(db_path, 1000)
    with multiprocessing.get_context("spawn").Pool(8) as pool:
        results = pool.starmap(run_actions, [(str(db_path), 5)] * 8)  # 40 attempts for 20 places
    admitted = sum(a for a, _ in results)
    assert sum(a + r for a, r in results) == 40 and 0 < admitted <= 20
    with Meter(config=strict(db_path)) as meter:
        assert meter.usage("cus_shared").used == 50 * admitted
        assert len([e for e in meter.events() if e.event_type == "action"]) == admitted
        assert meter.quota_store.open_reservations() == 0


KILLED = textwrap.dedent("""
    import sys, time
    from metricaos_sdk import Meter
    meter = Meter(sys.argv[1])
    with meter.action("summarize_document", credits=50, customer_id="cus_shared", lease_seconds=0.5):
        print("inside", flush=True)
        time.sleep(3600)
""")


def test_a_process_killed_inside_an_action_holds_nothing_past_its_lease(db_path):
    seed(db_path, 100)
    child = subprocess.Popen([sys.executable, "-c", KILLED, str(db_path)], cwd=ROOT, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert child.stdout is not None and child.stdout.readline().strip() == "inside"
    with Meter(config=strict(db_path)) as meter:
        assert meter.quota_store.open_reservations("cus_shared") == 1
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        child.stdout.close()
        deadline = time.monotonic() + 30  # the lease is 0.5 s; bounded, never asserted on time
        while meter.quota_store.open_reservations("cus_shared") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert meter.quota_store.open_reservations("cus_shared") == 0
        with meter.action("summarize_document", credits=100, customer_id="cus_shared"):
            pass  # the whole allowance is free again: the dead action held nothing and was charged nothing
        assert meter.usage("cus_shared").used == 100
