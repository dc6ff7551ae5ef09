"""A stream abandoned to the garbage collector never hangs the process (issue 11, point 1).

The cyclic collector may run at any allocation — also while a thread holds the SQLite quota store's lock in
the middle of a write transaction. It used to finish the abandoned stream right there: the SDK's stream reader
closes its response in a ``finally``, our tap settled the quota, re-took the same lock and hung forever,
holding SQLite's write lock, so every other process on the file stalled too. Finalizers now hand the work to
the meter's worker thread.

The soak runs in a child process with a watchdog (a hang dumps every thread's stack and fails the test instead
of the run): threads loop over "a stream left with ``break``, another opened and closed", with the collector's
threshold lowered so it runs inside our locks, against the SQLite and the Redis quota stores.
``METRICAOS_SOAK_ITERATIONS`` makes it longer (the CI default is a few seconds).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ITERATIONS = int(os.environ.get("METRICAOS_SOAK_ITERATIONS", "60"))
THREADS = 4

CHILD = textwrap.dedent('''
    import faulthandler, gc, os, sys, threading
    import httpx2, openai
    from metricaos_sdk import Meter, MeterConfig
    from metricaos_sdk.testing import chat_chunk, sse

    faulthandler.dump_traceback_later(float(os.environ["WATCHDOG"]), exit=True)
    iterations, threads = int(os.environ["ITERATIONS"]), int(os.environ["THREADS"])
    words = ["w%d " % i for i in range(30)]
    chunks = [chat_chunk(model="gpt-4.1-mini", delta={"content": w}, with_usage_field=True) for w in words]
    chunks.append(chat_chunk(model="gpt-4.1-mini", delta=None,
                             usage={"prompt_tokens": 5, "completion_tokens": 30, "total_tokens": 35}))
    BODY = sse([*chunks, "[DONE]"])

    class Pieces(httpx2.SyncByteStream):  # the body in network-sized pieces, so a break leaves it half read
        def __iter__(self):
            for at in range(0, len(BODY), 64):
                yield BODY[at:at + 64]

    def handler(request):
        return httpx2.Response(200, stream=Pieces(), headers={"content-type": "text/event-stream"})

    # Hangs are under test, not outages: 2 s lets a store on a loaded machine answer, and a lock re-taken by a
    # finalizer would still stall far past it (a fault) or trip the watchdog.
    config = MeterConfig(database=os.environ["DB"], quota_url=os.environ.get("QUOTA_URL"), quota_timeout=2.0)
    meter = Meter(config=config)
    meter.set_quota("cus_soak", tokens=10**12)
    client = meter.wrap(openai.OpenAI(api_key="sk-test", base_url="https://soak.invalid/v1",
                                      http_client=httpx2.Client(transport=httpx2.MockTransport(handler))))
    gc.set_threshold(10)  # the collector runs every few allocations: inside the locks we take, too
    ask = dict(model="gpt-4.1-mini", messages=[{"role": "user", "content": "hi"}], stream=True)

    def loop():
        with meter.context(customer_id="cus_soak"):
            for _ in range(iterations):
                # Left with break: only the collector releases it (the SDK's generator refers to itself), at
                # some allocation after the next call rebinds the name: often while that call reserves.
                stream = client.chat.completions.create(**ask)
                for _ in stream:
                    break
                client.chat.completions.create(**ask).close()

    workers = [threading.Thread(target=loop) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    gc.collect()
    meter.flush()
    events = meter.events()
    print(len(events), sum(e.status == "cancelled" for e in events), meter._quotas.held,
          meter.quota_store.open_reservations("cus_soak"), meter.faults)
    meter.close()
''')


@pytest.mark.parametrize("store", ["sqlite", "redis"])
def test_streams_abandoned_to_the_collector_never_hang_the_process(tmp_path: Path, store: str) -> None:
    env = {**os.environ, "DB": str(tmp_path / "soak.db"), "ITERATIONS": str(ITERATIONS), "THREADS": str(THREADS),
           "WATCHDOG": "120"}
    if store == "redis":
        url = os.environ.get("METRICAOS_TEST_REDIS_URL")
        if not url:
            pytest.skip("no Redis server: set METRICAOS_TEST_REDIS_URL (.ci/run starts one)")
        env["QUOTA_URL"] = url
        import redis

        redis.Redis.from_url(url).flushdb()
    done = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"the soak hung or failed:\n{done.stderr[-6000:]}"
    events, cancelled, held, reserved, faults = map(int, done.stdout.split())
    assert events == 2 * ITERATIONS * THREADS  # every call recorded exactly once
    assert cancelled == events  # the abandoned and the closed ones alike
    assert held == reserved == 0  # every reservation settled
    assert faults == 0
