"""Parity: the same scenarios through a bare and a wrapped anthropic client, sync and async, give the caller
identical results — types, values, stream event sequences, exceptions, raw headers — and copies stay metered."""

from __future__ import annotations

import asyncio
import inspect
import re
import sys
from collections.abc import Callable
from typing import Any

import anthropic
import pytest

from metricaos_sdk.wrappers.hooks import meter_of
from tests.fake_anthropic import MESSAGES, MODEL, FakeAnthropic

ARGS: dict[str, Any] = {"model": MODEL, "max_tokens": 1024, "messages": MESSAGES}


def dump(value: Any) -> Any:
    if isinstance(value, list):
        return [dump(v) for v in value]
    if hasattr(value, "model_dump"):
        return (type(value), value.model_dump())
    return value


def _stream_helper(c):
    with c.messages.stream(**ARGS) as s:
        return [*s, s.get_final_message()]


def _raw(c):
    raw = c.messages.with_raw_response.create(**ARGS)
    return [raw.status_code, raw.headers.get("request-id"), raw.parse()]


def _error(c):
    try:
        c.messages.create(**ARGS)
    except anthropic.APIStatusError as exc:
        return [type(exc), exc.status_code, exc.body, exc.request_id]
    raise AssertionError("expected an error")


SYNC: dict[str, Callable[[Any], Any]] = {
    "create": lambda c: c.messages.create(**ARGS),
    "create_stream": lambda c: list(c.messages.create(**ARGS, stream=True)),
    "stream_helper": _stream_helper,
    "beta_create": lambda c: c.beta.messages.create(**ARGS),
    "beta_stream": lambda c: list(c.beta.messages.create(**ARGS, stream=True)),
    "raw": _raw,
    "with_options": lambda c: c.with_options(max_retries=0).messages.create(**ARGS),
    "copy": lambda c: c.copy(default_headers={"x-team": "a"}).messages.create(**ARGS),
    "error": _error,
}


async def _astream_helper(c):
    async with c.messages.stream(**ARGS) as s:
        return [*[e async for e in s], await s.get_final_message()]


async def _araw(c):
    raw = await c.messages.with_raw_response.create(**ARGS)
    return [raw.status_code, raw.headers.get("request-id"), await raw.parse()]


async def _aerror(c):
    try:
        await c.messages.create(**ARGS)
    except anthropic.APIStatusError as exc:
        return [type(exc), exc.status_code, exc.body, exc.request_id]
    raise AssertionError("expected an error")


async def _acreate_stream(c):
    return [e async for e in await c.messages.create(**ARGS, stream=True)]


ASYNC: dict[str, Callable[[Any], Any]] = {
    "create": lambda c: c.messages.create(**ARGS),
    "create_stream": _acreate_stream,
    "stream_helper": _astream_helper,
    "beta_create": lambda c: c.beta.messages.create(**ARGS),
    "raw": _araw,
    "with_options": lambda c: c.with_options(max_retries=0).messages.create(**ARGS),
    "copy": lambda c: c.copy(default_headers={"x-team": "a"}).messages.create(**ARGS),
    "error": _aerror,
}


def run_both(meter, router, name, *, is_async: bool):
    fake = FakeAnthropic().mount(router)
    scenario = (ASYNC if is_async else SYNC)[name]
    results = []
    for wrapped in (False, True):
        if name == "error":
            fake.statuses = [400]
        cls = anthropic.AsyncAnthropic if is_async else anthropic.Anthropic
        c = cls(api_key="sk-ant-test", max_retries=0)
        if wrapped:
            meter.wrap(c)
        result = asyncio.run(scenario(c)) if is_async else scenario(c)
        results.append(dump(result if isinstance(result, list) else [result]))
    return results


@pytest.mark.parametrize("name", list(SYNC))
def test_sync_parity(meter, router, name):
    bare, wrapped = run_both(meter, router, name, is_async=False)
    assert wrapped == bare
    assert len(meter.events()) == 1


@pytest.mark.parametrize("name", list(ASYNC))
def test_async_parity(meter, router, name):
    bare, wrapped = run_both(meter, router, name, is_async=True)
    assert wrapped == bare
    assert len(meter.events()) == 1


def test_wrapped_copies_keep_their_class_and_meter(meter):
    c = meter.wrap(anthropic.Anthropic(api_key="sk-ant-test"))
    copies = [c.copy(), c.with_options(timeout=3.0)]
    if hasattr(c, "with_middleware"):
        copies.append(c.with_middleware(lambda request, call_next: call_next(request)))
    for copy in copies:
        assert type(copy) is anthropic.Anthropic and meter_of(copy) is meter


def test_wrapping_adds_nothing_to_the_client_and_keeps_its_signatures(meter):
    """The SDK's own copy tests compare a client's attributes one by one and check copy()'s signature."""
    bare = anthropic.Anthropic(api_key="sk-ant-test")
    bare_signature = inspect.signature(bare.copy)
    c = meter.wrap(anthropic.Anthropic(api_key="sk-ant-test"))
    assert list(vars(c)) == list(vars(bare))
    assert inspect.signature(c.copy) == bare_signature == inspect.signature(c.with_options)
    assert list(vars(c.copy())) == list(vars(bare.copy()))


def deprecated_model(client: anthropic.Anthropic) -> str:
    """A model the installed SDK warns about, taken from the list its ``messages.create`` reads: each release
    changes the entries (and 2.x moved the list from ``resources/messages/messages.py`` to ``anthropic/_data``)."""
    models = getattr(sys.modules[type(client.messages).__module__], "DEPRECATED_MODELS", None)
    if not models:
        pytest.skip(f"anthropic {anthropic.__version__} lists no deprecated model (DEPRECATED_MODELS) to warn about")
    return next(iter(models))


def test_sdk_warnings_still_point_at_the_caller(meter, router):
    FakeAnthropic().mount(router)
    c = meter.wrap(anthropic.Anthropic(api_key="sk-ant-test"))
    model = deprecated_model(c)
    with pytest.warns(DeprecationWarning, match=f"The model '{re.escape(model)}' is deprecated") as caught:
        c.messages.create(model=model, max_tokens=1024, messages=MESSAGES)
    [warning] = [w for w in caught if issubclass(w.category, DeprecationWarning)]
    assert warning.filename == __file__  # the SDK's own warning still points at this line, not into the meter
