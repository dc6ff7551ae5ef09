"""A limit is a limit: reservations hold under 64 threads, 8 processes and several hosts (Redis), and none
is left behind whatever way the calls end."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.quota_support import STORES, ChunkedSimulator, hammer, make_meter, redis_url  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parents[1]


def billable(meter, customer_id):
    return [e for e in meter.events(customer_id=customer_id) if e.billable]


@pytest.mark.parametrize("store", STORES)
def test_64_threads_never_exceed_a_credit_allowance(store, db_path, request):
    meter = make_meter(store, db_path, request)
    meter.plans.define("tiny", credits=300)
    meter.credits.set("*", per_call=10)  # an exact estimate: exactly 30 calls fit
    meter.customers.assign("cus_hot", "tiny")
    sim = ChunkedSimulator(reply_words=8)
    client = meter.wrap(sim.client(max_retries=0))
    admitted, refused = hammer(meter, client, "cus_hot", threads=64, calls=3, stream_every=5)
    assert admitted + refused == 192
    assert admitted == 30  # check-then-record lets concurrent calls through: this is where it would show
    assert len(sim.requests) == 30  # refused calls were never sent
    assert meter.quota_store.open_reservations() == 0  # streams cut mid-way included
    summary = meter.usage("cus_hot")
    assert (summary.used, summary.reserved, summary.remaining) == (300, 0, 0)
    events = billable(meter, "cus_hot")
    assert len(events) == 30 and sum(e.credits for e in events) == 300
    assert any(e.status == "cancelled" for e in events)
    meter.close()


@pytest.mark.parametrize("store", STORES)
def test_64_threads_token_allowance_overshoots_by_no_more_than_estimates_allow(store, db_path, request):
    meter = make_meter(store, db_path, request)
    meter.plans.define("tokens", tokens=2_000)
    meter.customers.assign("cus_tok", "tokens")
    sim = ChunkedSimulator(reply_words=10)  # each call: 5 prompt + 10 completion tokens <= its estimate
    client = meter.wrap(sim.client(max_retries=0))
    admitted, refused = hammer(meter, client, "cus_tok", threads=64, calls=4, max_tokens=16)
    used = sum(e.total_tokens for e in billable(meter, "cus_tok"))
    # Every estimate covers its call (max_tokens=16 bounds the output), so the admitted total is within the limit,
    assert used <= 2_000
    # and the allowance was really used up: what is left could not fit one more estimate.
    assert refused > 0 and admitted == len(sim.requests)
    summary = meter.usage("cus_tok")
    assert summary.used == used and summary.reserved == 0
    assert meter.quota_store.open_reservations() == 0
    meter.close()


PROCESS = """
import sys
sys.path.insert(0, {root!r})
from metricaos_sdk import Meter, MeterConfig

from tests.quota_support import ChunkedSimulator, hammer
url = {url!r}
if url:
    from metricaos_sdk.quota.backends import RedisQuotaStore
    meter = Meter(config=MeterConfig.from_env(database=sys.argv[1]),
                  quota_store=RedisQuotaStore.from_url(url, prefix={prefix!r}, timeout=10))
else:
    meter = Meter(sys.argv[1])
meter.credits.set("*", per_call=10)
client = meter.wrap(ChunkedSimulator(reply_words=8).client(max_retries=0))
admitted, refused = hammer(meter, client, "cus_shared", threads=3, calls=6, stream_every=3)
meter.close()
print(admitted, refused)
"""


def run_processes(db_path: Path, count: int, url: str | None = None, prefix: str = "") -> list[tuple[int, int]]:
    code = PROCESS.format(root=str(ROOT), url=url, prefix=prefix)
    # Concurrency is under test here, not outages: a store slow to answer on a loaded machine must not make the
    # call path give up (the 50 ms default) and let a call go unreserved (tests/test_quota_store_outage.py).
    env = {**os.environ, "METRICAOS_QUOTA_TIMEOUT": "10"}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(db_path.with_name(f"p{i}.db") if url else db_path)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
             for i in range(count)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
        admitted, refused = map(int, out.split())
        results.append((admitted, refused))
    return results


def test_8_processes_share_one_sqlite_allowance(db_path, request):
    meter = make_meter("sqlite", db_path, request)
    meter.plans.define("shared", credits=500)
    meter.customers.assign("cus_shared", "shared")
    results = run_processes(db_path, 8)
    assert sum(r[0] + r[1] for r in results) == 8 * 18
    assert sum(r[0] for r in results) == 50
    assert meter.quota_store.open_reservations() == 0
    events = billable(meter, "cus_shared")
    assert len(events) == 50 and sum(e.credits for e in events) == 500
    assert meter.usage("cus_shared").used == 500
    meter.close()


def test_8_processes_share_one_redis_allowance(db_path, redis_url):  # noqa: F811
    from metricaos_sdk import Meter, MeterConfig
    from metricaos_sdk.quota.backends import RedisQuotaStore

    prefix = f"test-procs-{uuid.uuid4().hex}:"  # unique per run: a reused redis-server keeps old keys
    meter = Meter(config=MeterConfig(database=str(db_path)), quota_store=RedisQuotaStore.from_url(redis_url, prefix=prefix))
    meter.plans.define("shared", credits=500)
    meter.customers.assign("cus_shared", "shared")
    # Each process has its own events file: only Redis is shared, as between hosts.
    results = run_processes(db_path, 8, url=redis_url, prefix=prefix)
    assert sum(r[0] for r in results) == 50
    assert meter.quota_store.open_reservations() == 0
    assert meter.usage("cus_shared").used == 500
    meter.close()
