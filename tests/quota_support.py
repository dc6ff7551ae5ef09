"""Helpers for the quota tests: meters on each quota store, a real redis-server, and a load generator.

``hammer`` is also run inside subprocesses by the multi-process tests (``python -c`` from the repo root).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

MESSAGES = [{"role": "user", "content": "hello there"}]
STORES = ["memory", "sqlite", "redis"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1).ping())
    except Exception:
        return False


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """``METRICAOS_TEST_REDIS_URL`` (set by ``scripts/redis-server.sh``), else a redis-server started here."""
    pytest.importorskip("redis", reason="the redis package is not installed (pip install -e '.[test]')")
    url = os.environ.get("METRICAOS_TEST_REDIS_URL")
    if url:
        if not _answers(url):
            pytest.fail(f"METRICAOS_TEST_REDIS_URL={url} is set but no Redis answers there")
        yield url
        return
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("no Redis: METRICAOS_TEST_REDIS_URL is unset and redis-server is not installed "
                    "(run `eval \"$(bash scripts/redis-server.sh)\"`)")
    port = _free_port()
    workdir = tempfile.mkdtemp(prefix="metricaos-test-redis-")
    proc = subprocess.Popen([binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
                             "--dir", workdir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        for _ in range(100):
            if _answers(url):
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"redis-server did not answer on port {port}")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


def make_meter(kind: str, db_path: Path, request: pytest.FixtureRequest, **config: object):
    """A Meter whose quotas live in ``kind`` ("memory", "sqlite" or "redis"); events go to ``db_path``
    (memory: a MemorySink)."""
    from metricaos_sdk import MemorySink, Meter, MeterConfig

    # Concurrency is what these tests hammer, not outages (tests/test_quota_store_outage.py): a store slow to answer
    # on a loaded machine must not trip the fail-open path, which lets calls through unguarded by design.
    config.setdefault("quota_timeout", 10.0)
    cfg = MeterConfig(database=str(db_path), **config)  # type: ignore[arg-type]
    if kind == "memory":
        return Meter(sink=MemorySink(), config=cfg)
    if kind == "sqlite":
        return Meter(config=cfg)
    from metricaos_sdk.quota.backends import RedisQuotaStore

    url = request.getfixturevalue("redis_url")
    return Meter(config=cfg, quota_store=RedisQuotaStore.from_url(url, prefix=f"test-{uuid.uuid4().hex[:8]}:",
                                                                  timeout=cfg.quota_timeout))


class ChunkedSimulator:
    """SimulatedOpenAI whose streams arrive one SSE event per read, as from a real server, so a caller can
    really stop in the middle (the whole body in one read would let the meter see the usage chunk)."""

    def __new__(cls, **kwargs: object):  # type: ignore[no-untyped-def]
        import httpx2

        from metricaos_sdk.testing import SimulatedOpenAI

        class Events(httpx2.SyncByteStream, httpx2.AsyncByteStream):
            def __init__(self, data: bytes) -> None:
                self.events = [e + b"\n\n" for e in data.split(b"\n\n") if e]

            def __iter__(self):  # type: ignore[no-untyped-def]
                yield from self.events

            async def __aiter__(self):  # type: ignore[no-untyped-def]
                for event in self.events:
                    yield event

        class Simulator(SimulatedOpenAI):
            def __call__(self, request: httpx2.Request) -> httpx2.Response:
                response = super().__call__(request)
                if not response.headers.get("content-type", "").startswith("text/event-stream"):
                    return response
                return httpx2.Response(response.status_code, headers=response.headers, stream=Events(response.content))

        return Simulator(**kwargs)


def hammer(meter, client, customer_id: str, *, threads: int, calls: int, stream_every: int = 0,
           max_tokens: int = 16) -> tuple[int, int]:
    """``threads`` threads × ``calls`` calls for one customer; every ``stream_every``-th call is a stream
    abandoned after its first chunk (closed, so it settles as cancelled). Returns (admitted, refused)."""
    from metricaos_sdk import QuotaExceeded

    counts = {"admitted": 0, "refused": 0}
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def work(n: int) -> None:
        start.wait()
        with meter.context(customer_id=customer_id):
            for i in range(calls):
                streamed = stream_every and (n * calls + i) % stream_every == 0
                try:
                    if streamed:
                        stream = client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES,
                                                                max_tokens=max_tokens, stream=True)
                        next(iter(stream))
                        stream.close()  # cancelled mid-stream
                    else:
                        client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES, max_tokens=max_tokens)
                    key = "admitted"
                except QuotaExceeded:
                    key = "refused"
                with lock:
                    counts[key] += 1

    pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return counts["admitted"], counts["refused"]
