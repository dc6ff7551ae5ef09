"""Attribution scopes: merge when nested, never leak across threads or asyncio tasks."""

from __future__ import annotations

import asyncio
import threading

import pytest

from metricaos_sdk import Attribution, AttributionScope, current_attribution


def scope(**kw):
    return AttributionScope(Attribution(**kw))


def test_nested_scopes_merge_and_restore():
    with scope(customer_id="c1", tags={"a": "1"}):
        with scope(feature="f", tags={"b": "2"}) as inner:
            assert inner.customer_id == "c1" and inner.feature == "f"
            assert dict(inner.tags) == {"a": "1", "b": "2"}
            with scope(customer_id="c2"):
                assert current_attribution().customer_id == "c2"
            assert current_attribution().customer_id == "c1"
        assert current_attribution().feature is None
    assert current_attribution() == Attribution()


def test_scope_restores_on_exception():
    with pytest.raises(RuntimeError):
        with scope(customer_id="c1"):
            raise RuntimeError
    assert current_attribution().customer_id is None


def test_decorator_on_sync_and_async_functions():
    s = scope(feature="summarize")

    @s
    def sync():
        return current_attribution().feature

    @s
    async def asynchronous():
        await asyncio.sleep(0)
        return current_attribution().feature

    assert sync() == "summarize" and asyncio.run(asynchronous()) == "summarize"
    assert current_attribution().feature is None


def test_decorator_refuses_generators():
    with pytest.raises(TypeError, match="generator"):
        @scope(feature="x")
        def gen():
            yield 1


def test_threads_do_not_leak_into_each_other():
    seen = {}
    barrier = threading.Barrier(8)

    def worker(i):
        with scope(customer_id=f"c{i}"):
            barrier.wait()  # all eight scopes are open at once
            seen[i] = current_attribution().customer_id

    with scope(customer_id="main"):
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert current_attribution().customer_id == "main"
    assert seen == {i: f"c{i}" for i in range(8)}


def test_asyncio_tasks_do_not_leak_into_each_other():
    async def task(i, started):
        async with scope(customer_id=f"c{i}"):
            started.set()
            await asyncio.sleep(0.01 * (8 - i))
            return current_attribution().customer_id

    async def main():
        events = [asyncio.Event() for _ in range(8)]
        results = await asyncio.gather(*(task(i, events[i]) for i in range(8)))
        return results, current_attribution().customer_id

    results, after = asyncio.run(main())
    assert results == [f"c{i}" for i in range(8)] and after is None


def test_one_scope_object_is_reentrant_across_tasks():
    s = scope(feature="shared")

    async def use():
        async with s:
            await asyncio.sleep(0)
            async with s:
                await asyncio.sleep(0)
            return current_attribution().feature

    async def main():
        return await asyncio.gather(*(use() for _ in range(5)))

    assert asyncio.run(main()) == ["shared"] * 5
