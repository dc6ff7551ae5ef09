"""No API key and no prompt or completion text in what the SDK logs or records (issue 11, point 4).

Faults are often raised while a provider exception is being handled, and a logged traceback would print that
exception too — whose message can echo the request, the key or the error body. Every fault path here is forced
with canaries in the key, the prompt, the provider's error body and its usage; every record of every logger
the SDK owns is captured at DEBUG and formatted with its traceback, and none may carry a canary; nor may an
event.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from metricaos_sdk import InMemoryQuotaStore, MemorySink, Meter, MeterConfig, QuotaUnavailable
from metricaos_sdk.providers import openai as openai_provider
from tests.fake_openai import FakeOpenAI

KEY = "sk-proj-KEYCANARY0123456789"
PROMPT = "PROMPTCANARY tell me a secret"
COMPLETION = "COMPLETIONCANARY"
CANARIES = ("KEYCANARY", "PROMPTCANARY", "COMPLETIONCANARY")
MESSAGES = [{"role": "user", "content": PROMPT}]


class Everything(logging.Handler):
    """Every record, formatted the way a logging setup would print it (message, traceback, stack)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(self.format(record))


@pytest.fixture
def logs() -> Iterator[Everything]:
    handler = Everything()
    logger = logging.getLogger("metricaos_sdk")
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(previous)


def echoing_error(request: httpx.Request) -> httpx.Response:
    """A provider error whose body echoes the key and the prompt, as some gateways' do."""
    return httpx.Response(400, json={"error": {"message": f"bad request {request.content.decode()} with key {KEY}",
                                               "type": "invalid_request_error", "param": None, "code": None}})


def clean(logs: Everything, meter: Meter) -> None:
    assert logs.texts, "the fault paths were not taken"
    for text in logs.texts:
        assert not any(c in text for c in CANARIES), text
    if hasattr(meter.sink, "events"):
        for event in meter.sink.events():  # type: ignore[attr-defined]
            dumped = event.model_dump_json()
            assert not any(c in dumped for c in CANARIES), dumped


class BrokenSink(MemorySink):
    def write(self, events: Any) -> None:
        raise OSError(28, "No space left on device")


class BrokenStore(InMemoryQuotaStore):
    def release(self, customer_id: str, reservation_id: str) -> None:
        raise RuntimeError("the store broke")

    def settle(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the store broke")


def test_a_sink_failing_while_a_provider_error_is_handled(router, logs):
    router.post("https://api.openai.com/v1/chat/completions").mock(side_effect=echoing_error)
    meter = Meter(sink=BrokenSink())
    client = meter.wrap(openai.OpenAI(api_key=KEY, max_retries=0))
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES)
    assert meter.faults == 1
    clean(logs, meter)


def test_a_quota_store_failing_while_a_provider_error_is_handled(router, logs):
    router.post("https://api.openai.com/v1/chat/completions").mock(side_effect=echoing_error)
    meter = Meter(sink=MemorySink(), quota_store=BrokenStore())
    meter.set_quota("cus_1", tokens=1_000_000)
    client = meter.wrap(openai.OpenAI(api_key=KEY, max_retries=0))
    with meter.context(customer_id="cus_1"), pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES)
    assert meter.faults == 1
    clean(logs, meter)


def test_our_own_bug_formatting_provider_text_into_an_exception(router, logs, monkeypatch):
    FakeOpenAI(words=[COMPLETION + " error"]).mount(router)  # "error" in its text: that chunk is parsed

    original = openai_provider.ChatStreamState.on_event

    def broken(self: Any, name: Any, data: Any, *, first: bool) -> bool:
        if COMPLETION in repr(data):
            raise ValueError(f"could not read {data!r}")  # a message of ours that echoes what the provider sent
        return original(self, name, data, first=first)

    monkeypatch.setattr(openai_provider.ChatStreamState, "on_event", broken)
    meter = Meter(sink=MemorySink())
    client = meter.wrap(openai.OpenAI(api_key=KEY))
    chunks = list(client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == COMPLETION + " error"  # all of it
    meter.flush()
    clean(logs, meter)


def test_usage_made_of_provider_text(router, logs):
    FakeOpenAI(usage={"prompt_tokens": PROMPT, "completion_tokens": {"text": COMPLETION}, "total_tokens": 3}).mount(router)
    meter = Meter(sink=MemorySink())
    client = meter.wrap(openai.OpenAI(api_key=KEY))
    client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES)
    [event] = meter.events()
    assert event.usage_status == "invalid" and event.usage_problem == f"prompt_tokens=<text of {len(PROMPT)} characters>"
    logging.getLogger("metricaos_sdk").debug("metricaos_sdk: %s", event.usage_problem)  # as a user would log it
    clean(logs, meter)


def test_a_gateway_url_with_credentials_in_it(router, logs):
    base = "https://user:KEYCANARY@llm-gateway.internal.example/v1"
    fake = FakeOpenAI()
    fake.refuse_stream_options = {"error": {"message": "Unknown parameter: 'stream_options'", "type": "invalid_request_error",
                                            "param": "stream_options", "code": None}}
    router.post("https://llm-gateway.internal.example/v1/chat/completions").mock(side_effect=fake)
    meter = Meter(sink=MemorySink())
    client = meter.wrap(openai.OpenAI(api_key=KEY, base_url=base))
    list(client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES, stream=True))
    assert any("refused stream_options" in t and "llm-gateway.internal.example/v1" in t for t in logs.texts)
    clean(logs, meter)


def test_a_refusal_for_a_store_that_is_down_chains_nothing(router, logs):
    class DownStore(InMemoryQuotaStore):
        def reserve(self, *args: Any, **kwargs: Any) -> Any:
            try:
                raise openai.APIConnectionError(message=f"the provider echoed {PROMPT} {KEY}",
                                                request=httpx.Request("POST", "https://x"))  # type: ignore[arg-type]
            except openai.APIConnectionError:
                raise ConnectionError("Connection refused") from None  # what a store says; the chain is gone

    FakeOpenAI().mount(router)
    meter = Meter(sink=MemorySink(), quota_store=DownStore(), config=MeterConfig(quota_fail_open=False))
    meter.set_quota("cus_1", tokens=1_000)
    client = meter.wrap(openai.OpenAI(api_key=KEY))
    with meter.context(customer_id="cus_1"), pytest.raises(QuotaUnavailable) as info:
        client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES)
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert "ConnectionError: Connection refused" in str(info.value)  # the store's own words say what failed
    assert not any(c in str(info.value) for c in CANARIES)
    clean(logs, meter)
