"""Anthropic's other platform clients, sync and async, plain and streamed, against mocked HTTP:

- ``AnthropicFoundry`` (Claude in Microsoft Foundry): provider ``anthropic_foundry``, Anthropic's rates (genai-prices'
  ``azure`` provider falls back to them), the request's ``model`` read as a Foundry deployment;
- ``AnthropicAWS`` (Claude Platform on AWS): ``anthropic_aws``, unpriced (genai-prices has no such provider);
- ``AnthropicGoogleCloud`` (Claude on Google Cloud, Anthropic managed): ``anthropic_google_cloud``, unpriced;
- ``AnthropicBedrockMantle`` (Bedrock's Messages API endpoint, SSE): ``bedrock``, priced as the model id invoked.

Every client is real, with fake credentials that never leave the process (API keys, a token provider). Each
scenario also runs on a bare client: the caller must get the same objects, bytes and exceptions either way.
A release of anthropic without one of these classes skips its tests, naming the class.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import anthropic
import pytest

from metricaos_sdk import Meter, RateTable, Usage
from tests.fake_anthropic import CACHED, INPUT, MESSAGES, MODEL, OUTPUT, USAGE, FakeAnthropic

PROMPT = MESSAGES[0]["content"]
FULL_USAGE = Usage(input_tokens=INPUT, output_tokens=OUTPUT, cached_input_tokens=CACHED, cache_write_tokens=1500,
                   cache_write_5m_tokens=1000, cache_write_1h_tokens=500, reasoning_tokens=120, web_search_requests=2)


@dataclass(frozen=True)
class Platform:
    name: str
    sync_class: str
    async_class: str
    kwargs: dict[str, Any]
    secret: str
    """The credential that must never reach an event or a log."""
    provider: str
    host: str
    path: str
    model: str = MODEL
    priced_as: tuple[str, str] | None = None
    """``(provider, model)`` of the bundled table whose price the call gets; None: recorded unpriced."""
    headers: dict[str, str] = field(default_factory=dict)
    """Headers the platform needs on every request (checked on the mocked request)."""

    def cls(self, which: str) -> type:
        name = self.sync_class if which == "sync" else self.async_class
        found = getattr(anthropic, name, None)
        if found is None:
            pytest.skip(f"anthropic {anthropic.__version__} has no anthropic.{name}")
        return found

    def client(self, which: str = "sync", **extra: Any) -> Any:
        return self.cls(which)(**{**self.kwargs, **extra})


PLATFORMS = [
    Platform("foundry", "AnthropicFoundry", "AsyncAnthropicFoundry", {"api_key": "foundry-key-123", "resource": "res"},
             "foundry-key-123", "anthropic_foundry", "res.services.ai.azure.com", "/anthropic/v1/messages",
             priced_as=("anthropic", MODEL), headers={"x-api-key": "foundry-key-123"}),
    Platform("aws", "AnthropicAWS", "AsyncAnthropicAWS",
             {"api_key": "aws-key-123", "aws_region": "us-west-2", "workspace_id": "wrkspc_01"},
             "aws-key-123", "anthropic_aws", "aws-external-anthropic.us-west-2.api.aws", "/v1/messages",
             headers={"anthropic-workspace-id": "wrkspc_01"}),
    Platform("google_cloud", "AnthropicGoogleCloud", "AsyncAnthropicGoogleCloud",
             {"project": "proj-1", "workspace_id": "wrkspc_01", "token_provider": lambda: "ya29.gc-token-123"},
             "ya29.gc-token-123", "anthropic_google_cloud", "claude.googleapis.com",
             "/v1/projects/proj-1/locations/global/workspaces/wrkspc_01/invoke/v1/messages",
             headers={"authorization": "Bearer ya29.gc-token-123"}),
    Platform("mantle", "AnthropicBedrockMantle", "AsyncAnthropicBedrockMantle",
             {"api_key": "mantle-key-123", "aws_region": "us-east-1"}, "mantle-key-123", "bedrock",
             "bedrock-mantle.us-east-1.api.aws", "/anthropic/v1/messages", model="anthropic.claude-sonnet-4-6",
             priced_as=("bedrock", "anthropic.claude-sonnet-4-6"), headers={"authorization": "Bearer mantle-key-123"}),
]
_HOSTS = re.compile(r"^https://(res\.services\.ai\.azure\.com|aws-external-anthropic\.[a-z0-9-]+\.api\.aws|"
                    r"claude\.googleapis\.com|bedrock-mantle\.[a-z0-9-]+\.api\.aws)/")


class Recording(FakeAnthropic):
    """FakeAnthropic on the platforms' hosts, keeping each request's headers too."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.headers: list[dict[str, str]] = []

    def mount(self, router):  # type: ignore[override]
        router.post(url__regex=_HOSTS.pattern).mock(side_effect=self)
        return self

    def __call__(self, request):
        self.headers.append({k.lower(): v for k, v in request.headers.items()})
        return super().__call__(request)


def assert_event(event, p: Platform, *, streamed: bool) -> None:
    assert (event.provider, event.server_address) == (p.provider, p.host)
    assert (event.status, event.usage_status, event.streamed, event.endpoint) == ("ok", "reported", streamed,
                                                                                   "/v1/messages")
    assert (event.input_tokens, event.cached_input_tokens, event.output_tokens) == (INPUT, CACHED, OUTPUT)
    assert (event.cache_write_5m_tokens, event.cache_write_1h_tokens, event.reasoning_tokens) == (1000, 500, 120)
    assert event.web_search_requests == 2
    assert (event.model, event.requested_model, event.request_id) == (MODEL, p.model, "msg_01XYZ")
    if p.priced_as is None:
        assert (event.cost_usd, event.price_status, event.price_id) == (None, "unpriced", None)
    else:
        quote = RateTable.coerce(None).price(*p.priced_as, FULL_USAGE)
        assert quote.cost_usd is not None
        assert (event.cost_usd, event.price_status, event.price_id) == (quote.cost_usd, "priced", quote.price_id)


def create(c, p: Platform, **kwargs):
    return c.messages.create(model=p.model, max_tokens=1024, messages=MESSAGES, **kwargs)


@pytest.fixture(params=PLATFORMS, ids=[p.name for p in PLATFORMS])
def platform(request) -> Platform:
    return request.param


def test_plain_streamed_and_helper_sync(meter, router, platform):
    fake = Recording().mount(router)
    c = meter.wrap(platform.client())
    assert create(c, platform).usage.input_tokens == USAGE["input_tokens"]
    events = list(create(c, platform, stream=True))
    with c.messages.stream(model=platform.model, max_tokens=1024, messages=MESSAGES) as s:
        assert "".join(s.text_stream) == "Your order ships today."
    assert events[-1].type == "message_stop"
    assert [path for path, _ in fake.requests] == [platform.path] * 3
    for headers in fake.headers:
        assert platform.headers.items() <= headers.items()
    plain, streamed, helper = meter.events()
    assert_event(plain, platform, streamed=False)
    assert_event(streamed, platform, streamed=True)
    assert_event(helper, platform, streamed=True)


def test_plain_streamed_and_helper_async(meter, router, platform):
    Recording().mount(router)
    c = meter.wrap(platform.client("async"))

    async def run():
        await create(c, platform)
        chunks = [e async for e in await create(c, platform, stream=True)]
        async with c.messages.stream(model=platform.model, max_tokens=1024, messages=MESSAGES) as s:
            await s.get_final_message()
        await c.with_options(timeout=5.0).messages.create(model=platform.model, max_tokens=1024, messages=MESSAGES)
        return chunks

    assert asyncio.run(run())[-1].type == "message_stop"
    plain, streamed, helper, copied = meter.events()
    assert_event(plain, platform, streamed=False)
    assert_event(streamed, platform, streamed=True)
    assert_event(helper, platform, streamed=True)
    assert_event(copied, platform, streamed=False)


def _caller_view(c, p: Platform, fake: Recording) -> dict[str, Any]:
    """Everything the caller gets back: objects, stream events, raw bytes and headers, the exceptions raised."""
    view: dict[str, Any] = {"message": create(c, p).to_dict()}
    view["stream"] = [e.to_dict() for e in create(c, p, stream=True)]
    with c.messages.with_streaming_response.create(model=p.model, max_tokens=1024, messages=MESSAGES,
                                                   stream=True) as r:
        view["raw"] = (r.http_response.status_code, r.headers.get("content-type"), r.read())
    raw = c.messages.with_raw_response.create(model=p.model, max_tokens=1024, messages=MESSAGES)
    view["raw_plain"] = (raw.http_response.content, raw.parse().to_dict())
    view["count"] = c.messages.count_tokens(model=p.model, messages=MESSAGES).input_tokens
    fake.statuses = [400]
    with pytest.raises(anthropic.BadRequestError) as bad:
        create(c.with_options(max_retries=0), p)
    view["error"] = (type(bad.value), bad.value.status_code, bad.value.body, str(bad.value))
    fake.statuses = [529]  # overloaded, then answered: the SDK retries
    view["retried"] = create(c.with_options(max_retries=1), p).to_dict()
    return view


def test_the_caller_gets_the_same_objects_bare_and_wrapped(meter, router, platform, monkeypatch):
    monkeypatch.setattr(anthropic._base_client.BaseClient, "_calculate_retry_timeout", lambda *a, **k: 0.0)
    fake = Recording().mount(router)
    bare = _caller_view(platform.client(), platform, fake)
    assert meter.events() == []
    wrapped = _caller_view(meter.wrap(platform.client()), platform, fake)
    assert wrapped == bare
    plain, streamed, raw_stream, raw_plain, error, retried = meter.events()  # count_tokens is free: not recorded
    for event in (plain, raw_plain, retried):
        assert_event(event, platform, streamed=False)
    for event in (streamed, raw_stream):
        assert_event(event, platform, streamed=True)
    assert (error.status, error.http_status, error.billable, error.input_tokens) == ("error", 400, False, 0)
    assert (error.provider, error.server_address, error.error_type) == (platform.provider, platform.host,
                                                                        "BadRequestError")
    assert retried.attempts == 2 and plain.attempts == 1


def test_no_credential_or_prompt_reaches_events_or_logs(meter, router, platform, caplog):
    caplog.set_level(logging.DEBUG, logger="metricaos_sdk")
    Recording().mount(router)
    c = meter.wrap(platform.client())
    create(c, platform)
    list(create(c, platform, stream=True))
    stored = json.dumps([e.model_dump(mode="json") for e in meter.events()])
    for text in (stored, caplog.text):
        assert platform.secret not in text and PROMPT not in text


def test_wrap_returns_the_same_client(meter, platform):
    for which in ("sync", "async"):
        bare = platform.client(which)
        assert meter.wrap(bare) is bare and isinstance(bare, platform.cls(which))


def test_unpriced_platforms_are_never_priced_as_first_party(meter, router, platform):
    """An unknown provider name would be priced by guessing from the model name (Anthropic's list price):
    the platforms genai-prices does not list must stay unpriced instead, said so by the status."""
    Recording().mount(router)
    create(meter.wrap(platform.client()), platform)
    [event] = meter.events()
    if platform.priced_as is None:
        assert (event.cost_usd, event.price_status) == (None, "unpriced")
        assert RateTable.coerce(None).price(platform.provider, MODEL, FULL_USAGE).cost_usd is None
    else:
        assert event.cost_usd is not None and event.cost_usd > 0


def test_unpriced_platform_rates_come_from_the_rate_file(db_path, router):
    """A team that knows its contract gives the rates; they apply to that platform only."""
    Recording().mount(router)
    rates = {"models": {"claude-sonnet-4-6": {"provider": "anthropic_aws", "input": "3", "output": "15"}}}
    m = Meter(db_path, rates=rates)
    try:
        aws = PLATFORMS[1]
        create(m.wrap(aws.client()), aws)
        create(m.wrap(PLATFORMS[2].client()), PLATFORMS[2])
        on_aws, on_google = m.events()
    finally:
        m.close()
    assert on_aws.price_status == "override"
    assert on_aws.cost_usd == RateTable.coerce(rates).price("anthropic_aws", MODEL, FULL_USAGE).cost_usd
    assert on_aws.cost_usd is not None and on_aws.cost_usd > 0
    assert (on_google.provider, on_google.cost_usd, on_google.price_status) == ("anthropic_google_cloud", None,
                                                                                "unpriced")


def test_foundry_model_is_a_deployment_priced_by_the_answer_or_the_map(db_path, router):
    foundry = PLATFORMS[0]
    Recording(model="claude-sonnet-4-6").mount(router)
    m = Meter(db_path, rates=RateTable.coerce(None).with_deployments({"team-claude": "claude-haiku-4-5"}))
    try:
        c = m.wrap(foundry.client())
        c.messages.create(model="support-bot", max_tokens=1024, messages=MESSAGES)  # named after nothing
        c.messages.create(model="team-claude", max_tokens=1024, messages=MESSAGES)  # in the deployment map
        by_answer, by_map = m.events()
    finally:
        m.close()
    rates = RateTable.coerce(None)
    assert (by_answer.requested_model, by_answer.model) == ("support-bot", MODEL)
    assert by_answer.cost_usd == rates.price("anthropic", MODEL, FULL_USAGE).cost_usd == Decimal("0.036176")
    assert by_map.requested_model == "team-claude"
    assert by_map.cost_usd == rates.price("anthropic", "claude-haiku-4-5", FULL_USAGE).cost_usd
    assert by_map.cost_usd < by_answer.cost_usd


def test_mantle_is_priced_as_the_model_id_invoked(meter, router):
    mantle = PLATFORMS[3]
    Recording().mount(router)
    c = meter.wrap(mantle.client())
    for model in ("anthropic.claude-sonnet-4-6", "global.anthropic.claude-sonnet-4-6"):
        c.messages.create(model=model, max_tokens=1024, messages=MESSAGES)
    regional, global_ = meter.events()
    rates = RateTable.coerce(None)
    assert regional.cost_usd == rates.price("bedrock", "anthropic.claude-sonnet-4-6", FULL_USAGE).cost_usd
    assert global_.cost_usd == rates.price("bedrock", "global.anthropic.claude-sonnet-4-6", FULL_USAGE).cost_usd
    assert regional.cost_usd > global_.cost_usd


def test_google_cloud_host_is_recorded_when_the_project_comes_from_the_credentials(meter, router, monkeypatch):
    """With Application Default Credentials and no project, the client learns its base URL on the first request;
    the event still records the host the request went to."""
    google = PLATFORMS[2]
    cls = google.cls("sync")
    from anthropic.lib.google_cloud import _client as gc

    class Credentials:
        token, expired = "ya29.adc-token", False

    monkeypatch.setattr(gc, "_load_adc_credentials", lambda: (Credentials(), "proj-1"))
    for name in ("ANTHROPIC_GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_PROJECT", "ANTHROPIC_GOOGLE_CLOUD_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    fake = Recording().mount(router)
    c = meter.wrap(cls(workspace_id="wrkspc_01"))
    create(c, google)
    create(c, google)
    assert [path for path, _ in fake.requests] == [google.path] * 2
    assert [(e.provider, e.server_address) for e in meter.events()] == [("anthropic_google_cloud", google.host)] * 2


def test_a_release_without_a_class_skips_naming_it():
    """What an anthropic release lacking a platform class does to these tests: skip, naming the class."""
    missing = Platform("future", "AnthropicNotYet", "AsyncAnthropicNotYet", {}, "", "x", "x", "/")
    with pytest.raises(pytest.skip.Exception, match=r"has no anthropic\.AnthropicNotYet"):
        missing.client()
