"""Every way a call can end settles or releases its reservation: nothing stays held."""

from __future__ import annotations

import asyncio
import gc
import logging
import subprocess
import sys
from pathlib import Path

import httpx2
import openai
import pytest

from metricaos_sdk import Meter, MeterConfig, QuotaExceeded, QuotaUnavailable
from metricaos_sdk.quota import InMemoryQuotaStore
from metricaos_sdk.quota.reservations import Bucket, Demand
from tests.quota_support import MESSAGES, STORES, ChunkedSimulator, make_meter, redis_url  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(params=STORES)
def setup(request, db_path):
    meter = make_meter(request.param, db_path, request)
    meter.plans.define("p", credits=1_000, tokens=100_000)
    meter.credits.set("*", per_call=10)
    meter.customers.assign("cus_1", "p")
    sim = ChunkedSimulator(reply_words=12)
    yield meter, sim
    meter.close()


def held(meter):
    return meter.quota_store.open_reservations("cus_1")


def used(meter):
    return meter.usage("cus_1").used


def test_provider_error_releases(setup):
    meter, sim = setup
    client = meter.wrap(sim.client(max_retries=0))
    sim.fail_next(1, 500)
    with meter.context(customer_id="cus_1"), pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES)
    assert held(meter) == 0 and used(meter) == 0


def test_timeout_releases(setup):
    meter, _ = setup

    def hang(request):
        raise httpx2.ReadTimeout("timed out", request=request)

    client = meter.wrap(openai.OpenAI(api_key="sk-test", base_url="https://sim.invalid/v1", max_retries=0,
                                      http_client=httpx2.Client(transport=httpx2.MockTransport(hang))))
    with meter.context(customer_id="cus_1"), pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES)
    assert held(meter) == 0 and used(meter) == 0


def test_cancelled_error_releases(setup):
    meter, sim = setup
    entered = asyncio.Event()

    async def slow(request):
        entered.set()
        await asyncio.Event().wait()  # never answers

    client = meter.wrap(openai.AsyncOpenAI(api_key="sk-test", base_url="https://sim.invalid/v1", max_retries=0,
                                           http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(slow))))

    async def main():
        async with meter.context(customer_id="cus_1"):
            task = asyncio.create_task(client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES))
            await entered.wait()
            assert held(meter) == 1  # reserved while in flight
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(main())
    assert held(meter) == 0 and used(meter) == 0


def test_stream_abandoned_to_the_garbage_collector_settles(setup):
    meter, sim = setup
    client = meter.wrap(sim.client())
    with meter.context(customer_id="cus_1"):
        stream = client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES, stream=True)
        next(iter(stream))
        assert held(meter) == 1
        del stream  # GeneratorExit inside the SDK's iterator, then our proxy's finaliser
        gc.collect()  # the collector hands the stream to the meter's worker (a finalizer does no work) ...
    meter.flush()  # ... which flush() waits for
    assert held(meter) == 0 and used(meter) == 10  # tokens were generated: billable, charged its credits


def test_async_stream_cancelled_mid_way_settles(setup):
    meter, sim = setup
    client = meter.wrap(sim.async_client())

    async def main():
        async with meter.context(customer_id="cus_1"):
            stream = await client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES, stream=True)
            async for _ in stream:
                break
            await stream.close()

    asyncio.run(main())
    assert held(meter) == 0 and used(meter) == 10
    [event] = meter.events(customer_id="cus_1")
    assert event.status == "cancelled" and event.credits == 10


def test_failed_and_non_production_calls_are_recorded_not_drawn(setup):
    meter, sim = setup
    client = meter.wrap(sim.client(max_retries=0))
    with meter.context(customer_id="cus_1", environment="test"):
        client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES)
    with meter.context(customer_id="cus_1", environment="production"):
        client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES)
    events = meter.events(customer_id="cus_1")
    assert [(e.environment, e.billable, e.credits) for e in events] == [("test", False, 0), ("production", True, 10)]
    assert used(meter) == 10 and held(meter) == 0


def test_process_exit_mid_stream_settles(db_path):
    Meter(db_path).customers.assign("cus_1", Meter(db_path).plans.define("p", credits=1_000))
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from metricaos_sdk import Meter\n"
        "from tests.quota_support import ChunkedSimulator, MESSAGES\n"
        f"meter = Meter({str(db_path)!r})\n"
        "meter.credits.set('*', per_call=10)\n"
        "client = meter.wrap(ChunkedSimulator().client())\n"
        "with meter.context(customer_id='cus_1'):\n"
        "    stream = client.chat.completions.create(model='gpt-4.1-mini', messages=MESSAGES, stream=True)\n"
        "    next(iter(stream))\n"
        "    print(meter.quota_store.open_reservations('cus_1'))\n"
        "    sys.exit(0)  # exits with the stream open: the meter's atexit close settles it\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.stdout.strip() == "1", out.stderr
    meter = Meter(db_path)
    assert meter.quota_store.open_reservations() == 0
    assert meter.usage("cus_1").used == 10
    meter.close()


def test_killed_process_reservation_lapses_with_its_lease(db_path):
    meter = Meter(db_path)
    store = meter.quota_store
    bucket = Bucket("k", 10, 4_000_000_000)
    # A process that died holding 8 of 10 (lease still running): only 2 fit.
    assert store.reserve("cus_k", "dead", [Demand(8, (bucket,))], lease=3600).ok
    assert not store.reserve("cus_k", "new", [Demand(3, (bucket,))], lease=3600).ok
    # The same hold with its lease over is ignored at once, and the allowance is whole again.
    store.release("cus_k", "dead")
    assert store.reserve("cus_k", "dead2", [Demand(8, (bucket,))], lease=0).ok
    assert store.open_reservations("cus_k") == 0
    assert store.reserve("cus_k", "new", [Demand(10, (bucket,))], lease=3600).ok
    meter.close()


def test_close_releases_calls_cut_off_in_flight(db_path):
    meter = Meter(db_path)
    meter.plans.define("p", credits=100)
    meter.customers.assign("cus_1", "p")
    meter.credits.set("*", per_call=10)
    sim = ChunkedSimulator()
    client = meter.wrap(sim.client())
    with meter.context(customer_id="cus_1"):
        stream = client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES, stream=True)
        next(iter(stream))
    assert meter.quota_store.open_reservations() == 1
    meter.close()  # streams still open are finished as cancelled: settled, not left held
    assert Meter(db_path).quota_store.open_reservations() == 0


class BrokenStore(InMemoryQuotaStore):
    def reserve(self, *args, **kwargs):
        raise ConnectionError("quota store down")


@pytest.mark.parametrize("fail_open", [True, False])
def test_store_outage_fails_open_or_closed_as_configured(db_path, fail_open, caplog):
    caplog.set_level(logging.ERROR, logger="metricaos_sdk")
    store = BrokenStore()
    meter = Meter(config=MeterConfig(database=str(db_path), quota_fail_open=fail_open), quota_store=store)
    meter.plans.define("p", credits=100)
    meter.customers.assign("cus_1", "p")
    sim = ChunkedSimulator()
    client = meter.wrap(sim.client())
    with meter.context(customer_id="cus_1"):
        if fail_open:
            client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES)
        else:
            with pytest.raises(QuotaUnavailable, match="quota store is unavailable"):
                client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES)
    assert len(sim.requests) == (1 if fail_open else 0)
    assert meter.faults == 1 and "quota reservation failed" in caplog.text
    assert not isinstance(QuotaUnavailable("x"), QuotaExceeded)
    meter.close()
