"""OpenAI-compatible providers through the real openai client (issue 15): the provider and host from the base URL,
usage as each provider reports it — plain and streamed, sync and async — and each bug peers shipped with them.

Payloads are shaped like each provider's real output (see ../shared/notes/compatible-providers.md for the
sources); HTTP is mocked at httpcore2 by respx.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest

from metricaos_sdk import Meter
from metricaos_sdk.config import MeterConfig
from metricaos_sdk.errors import ConfigurationError
from metricaos_sdk.providers.hosts import provider_for, server_address
from metricaos_sdk.testing import chat_chunk, chat_completion, sse

MESSAGES = [{"role": "user", "content": "Where is my order?"}]
WORDS = ["Your", " order", " ships", " today", "."]


# -- provider and host from the base URL -------------------------------------------------------------------------

@pytest.mark.parametrize(("base_url", "provider", "host"), [
    ("https://api.openai.com/v1", "openai", "api.openai.com"),
    ("https://api.deepseek.com", "deepseek", "api.deepseek.com"),
    ("https://api.deepseek.com/v1", "deepseek", "api.deepseek.com"),
    ("https://api.groq.com/openai/v1", "groq", "api.groq.com"),
    ("https://api.mistral.ai/v1", "mistral_ai", "api.mistral.ai"),
    ("https://api.x.ai/v1", "x_ai", "api.x.ai"),
    ("https://generativelanguage.googleapis.com/v1beta/openai/", "gcp.gemini", "generativelanguage.googleapis.com"),
    ("https://openrouter.ai/api/v1", "openrouter", "openrouter.ai"),
    ("https://api.together.xyz/v1", "together", "api.together.xyz"),
    ("https://api.fireworks.ai/inference/v1", "fireworks", "api.fireworks.ai"),
    ("http://localhost:11434/v1", "ollama", "localhost:11434"),
    ("http://user:secret@gpu-box:8000/v1", "openai-compatible", "gpu-box:8000"),
    ("https://API.DeepSeek.com.", "deepseek", "api.deepseek.com"),
    ("https://api.openai.com.evil.example/v1", "openai-compatible", "api.openai.com.evil.example"),
    ("http://[::1]:11434/v1", "ollama", "::1:11434"),
])
def test_the_base_url_names_the_provider_and_the_host(base_url, provider, host):
    assert provider_for(base_url) == provider
    assert server_address(base_url) == host
    assert "secret" not in (server_address(base_url) or "")


def test_the_users_map_is_asked_first_by_host_and_port_then_host_then_domain():
    hosts = {"gpu-box:8000": "vllm", "llm.internal": "litellm", "api.deepseek.com": "my-deepseek-reseller"}
    assert provider_for("http://gpu-box:8000/v1", hosts) == "vllm"
    assert provider_for("http://gpu-box:9000/v1", hosts) == "openai-compatible"
    assert provider_for("https://eu.llm.internal/v1", hosts) == "litellm"
    assert provider_for("https://api.deepseek.com", hosts) == "my-deepseek-reseller"


@pytest.mark.parametrize("bad", [{"http://gpu-box:8000": "vllm"}, {"gpu-box": ""}, {"": "vllm"}, ["gpu-box"]])
def test_a_malformed_host_map_is_refused_at_set_up(tmp_path, bad):
    with pytest.raises(ConfigurationError, match="provider_hosts"):
        Meter(config=MeterConfig(database=str(tmp_path / "m.db"), provider_hosts=bad))


def test_an_unknown_host_is_openai_compatible_never_openai(meter, router):
    router.post("https://llm.example.net/v1/chat/completions").mock(return_value=httpx.Response(
        200, json=chat_completion(model="gpt-4o", content="hi", usage={"prompt_tokens": 5, "completion_tokens": 2,
                                                                        "total_tokens": 7})))
    client = meter.wrap(openai.OpenAI(api_key="sk-test", base_url="https://llm.example.net/v1"))
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    [event] = meter.events()
    assert (event.provider, event.server_address) == ("openai-compatible", "llm.example.net")
    assert (event.input_tokens, event.output_tokens) == (5, 2)


def test_a_copy_with_another_base_url_is_named_by_its_own(meter, router):
    body = chat_completion(model="deepseek-chat", content="hi", usage={"prompt_tokens": 5, "completion_tokens": 2,
                                                                       "total_tokens": 7})
    router.post("https://api.openai.com/v1/chat/completions").mock(return_value=httpx.Response(200, json=body))
    router.post("https://api.deepseek.com/chat/completions").mock(return_value=httpx.Response(200, json=body))
    client = meter.wrap(openai.OpenAI(api_key="sk-test"))
    client.with_options(base_url="https://api.deepseek.com").chat.completions.create(model="deepseek-chat",
                                                                                     messages=MESSAGES)
    client.chat.completions.create(model="deepseek-chat", messages=MESSAGES)
    assert [(e.provider, e.server_address) for e in meter.events()] == [
        ("deepseek", "api.deepseek.com"), ("openai", "api.openai.com")]


# -- a provider emulated: its JSON body and its stream, honouring include_usage as it does ------------------------

class Provider:
    """One provider's chat endpoint: ``body(usage)`` for a plain call, ``chunks(asked)`` for a stream, where
    ``asked`` says whether the request asked for usage (``stream_options.include_usage``)."""

    def __init__(self, base_url: str, model: str, usage: dict[str, Any], *, honours_include_usage: bool = True,
                 headers: dict[str, str] | None = None) -> None:
        self.base_url = base_url
        self.model = model
        self.usage = usage
        self.honours = honours_include_usage
        self.headers = headers or {}
        self.requests: list[dict[str, Any]] = []

    def mount(self, router):
        router.post(self.base_url.rstrip("/") + "/chat/completions").mock(side_effect=self)

    def __call__(self, request):
        payload = json.loads(request.content)
        self.requests.append(payload)
        if not payload.get("stream"):
            return httpx.Response(200, json=self.body(), headers=self.headers)
        asked = self.honours and (payload.get("stream_options") or {}).get("include_usage") is True
        return httpx.Response(200, content=sse([*self.chunks(asked, payload), "[DONE]"]),
                              headers={"content-type": "text/event-stream", **self.headers})

    def body(self) -> dict[str, Any]:
        return chat_completion(model=self.model, content="".join(WORDS), usage=self.usage, id="gen-1")

    def content_chunks(self, with_usage_field: bool) -> list[dict[str, Any]]:
        chunks = [chat_chunk(model=self.model, delta={"role": "assistant", "content": ""}, id="gen-1",
                             with_usage_field=with_usage_field)]
        chunks += [chat_chunk(model=self.model, delta={"content": w}, id="gen-1", with_usage_field=with_usage_field)
                   for w in WORDS]
        chunks.append(chat_chunk(model=self.model, delta={}, finish_reason="stop", id="gen-1",
                                 with_usage_field=with_usage_field))
        return chunks

    def chunks(self, asked: bool, payload: dict[str, Any]) -> list[dict[str, Any]]:
        chunks = self.content_chunks(asked)
        if asked:
            chunks.append(chat_chunk(model=self.model, delta=None, usage=self.usage, id="gen-1"))
        return chunks


def call(meter, provider: Provider, *, aio: bool, stream: bool, config_hosts=None, **kwargs) -> list[Any]:
    """Make one call with a wrapped client (sync or async) and return what the caller saw."""
    if aio:
        client = meter.wrap(openai.AsyncOpenAI(api_key="sk-test", base_url=provider.base_url, max_retries=0))

        async def run():
            answer = await client.chat.completions.create(model=provider.model, messages=MESSAGES, stream=stream,
                                                          **kwargs)
            if not stream:
                return [answer.model_dump()]
            return [chunk.model_dump() async for chunk in answer]

        return asyncio.run(run())
    client = meter.wrap(openai.OpenAI(api_key="sk-test", base_url=provider.base_url, max_retries=0))
    answer = client.chat.completions.create(model=provider.model, messages=MESSAGES, stream=stream, **kwargs)
    return [answer.model_dump()] if not stream else [chunk.model_dump() for chunk in answer]


def bare(provider: Provider, *, stream: bool, **kwargs) -> list[Any]:
    client = openai.OpenAI(api_key="sk-test", base_url=provider.base_url, max_retries=0)
    answer = client.chat.completions.create(model=provider.model, messages=MESSAGES, stream=stream, **kwargs)
    return [answer.model_dump()] if not stream else [chunk.model_dump() for chunk in answer]


def one_event(meter):
    [event] = meter.events()
    return event


def tokens(event) -> tuple[int, int, int, int]:
    return event.input_tokens, event.output_tokens, event.cached_input_tokens, event.reasoning_tokens


MODES = [pytest.param(aio, stream, id=f"{'async' if aio else 'sync'}-{'stream' if stream else 'plain'}")
         for aio in (False, True) for stream in (False, True)]


# -- DeepSeek -------------------------------------------------------------------------------------------------------

# deepseek-chat with a context-cache hit, as api.deepseek.com reports it (api-docs.deepseek.com, "Context Caching").
DEEPSEEK_USAGE = {"prompt_tokens": 1024, "completion_tokens": 180, "total_tokens": 1204,
                  "prompt_tokens_details": {"cached_tokens": 768},
                  "prompt_cache_hit_tokens": 768, "prompt_cache_miss_tokens": 256}


@pytest.mark.parametrize(("aio", "stream"), MODES)
def test_deepseek_cache_hits_are_cached_input(meter, router, aio, stream):
    deepseek = Provider("https://api.deepseek.com", "deepseek-chat", DEEPSEEK_USAGE)
    deepseek.mount(router)
    seen = call(meter, deepseek, aio=aio, stream=stream)
    if stream:
        assert seen == bare(deepseek, stream=True)  # the usage chunk asked for is hidden from the caller
    event = one_event(meter)
    assert (event.provider, event.server_address, event.usage_status) == ("deepseek", "api.deepseek.com", "reported")
    assert tokens(event) == (1024, 180, 768, 0)


def test_deepseek_cache_hits_without_the_openai_details_are_not_billed_as_plain_input(meter, router):
    # The peers' bug (litellm #16009, langchain #39637): only prompt_cache_hit_tokens says what was cached.
    usage = {k: v for k, v in DEEPSEEK_USAGE.items() if k != "prompt_tokens_details"}
    deepseek = Provider("https://api.deepseek.com/v1", "deepseek-chat", usage)
    deepseek.mount(router)
    call(meter, deepseek, aio=False, stream=False)
    assert tokens(one_event(meter)) == (1024, 180, 768, 0)


def test_deepseek_reasoner_reasoning_is_inside_completion_tokens(meter, router):
    usage = {**DEEPSEEK_USAGE, "completion_tokens": 900, "total_tokens": 1924,
             "completion_tokens_details": {"reasoning_tokens": 640}}
    deepseek = Provider("https://api.deepseek.com", "deepseek-reasoner", usage)
    deepseek.mount(router)
    call(meter, deepseek, aio=False, stream=True)
    assert tokens(one_event(meter)) == (1024, 900, 768, 640)


# -- Groq -----------------------------------------------------------------------------------------------------------

GROQ_USAGE = {"queue_time": 0.0213, "prompt_tokens": 48, "prompt_time": 0.0031, "completion_tokens": 120,
              "completion_time": 0.2, "total_tokens": 168, "total_time": 0.2031}


class Groq(Provider):
    """Groq's streams end with ``x_groq.usage`` on the final chunk, whether usage was asked for or not."""

    def chunks(self, asked, payload):
        chunks = self.content_chunks(asked)
        chunks[-1]["x_groq"] = {"id": "req_01jx", "usage": self.usage}
        if asked:
            chunks.append(chat_chunk(model=self.model, delta=None, usage=self.usage, id="gen-1"))
        return chunks


@pytest.mark.parametrize(("aio", "stream"), MODES)
def test_groq(meter, router, aio, stream):
    groq = Groq("https://api.groq.com/openai/v1", "llama-3.3-70b-versatile", GROQ_USAGE)
    groq.mount(router)
    call(meter, groq, aio=aio, stream=stream)
    event = one_event(meter)
    assert (event.provider, event.server_address, event.usage_status) == ("groq", "api.groq.com", "reported")
    assert tokens(event) == (48, 120, 0, 0)


@pytest.mark.parametrize("aio", [False, True])
def test_groq_usage_only_under_x_groq_is_read(meter, router, aio):
    # vercel/ai #1651: a stream whose only usage is x_groq.usage (the caller set stream_options itself, without
    # include_usage, so nothing is asked): read as NaN there, reported here.
    groq = Groq("https://api.groq.com/openai/v1", "llama-3.1-8b-instant", GROQ_USAGE)
    groq.mount(router)
    call(meter, groq, aio=aio, stream=True, stream_options={"include_usage": False})
    event = one_event(meter)
    assert (event.usage_status, *tokens(event)) == ("reported", 48, 120, 0, 0)


# -- OpenRouter -----------------------------------------------------------------------------------------------------

# openrouter.ai usage accounting: cost in credits (1 credit = 1 USD), cache details, BYOK flag.
OPENROUTER_USAGE = {"prompt_tokens": 2000, "completion_tokens": 300, "total_tokens": 2300, "cost": 0.00675,
                    "is_byok": False, "prompt_tokens_details": {"cached_tokens": 1024, "cache_write_tokens": 0,
                                                                "audio_tokens": 0},
                    "cost_details": {"upstream_inference_cost": None},
                    "completion_tokens_details": {"reasoning_tokens": 0, "image_tokens": 0}}


class OpenRouter(Provider):
    """Usage is always included in OpenRouter's streams, on the last message, whatever was asked."""

    def chunks(self, asked, payload):
        return [*self.content_chunks(False), chat_chunk(model=self.model, delta=None, usage=self.usage, id="gen-1")]


@pytest.mark.parametrize(("aio", "stream"), MODES)
def test_openrouter_records_its_cost_beside_ours(meter, router, aio, stream):
    openrouter = OpenRouter("https://openrouter.ai/api/v1", "openai/gpt-4o", OPENROUTER_USAGE)
    openrouter.mount(router)
    seen = call(meter, openrouter, aio=aio, stream=stream)
    assert "stream_options" not in openrouter.requests[-1]  # it sends usage unasked: nothing is added
    if stream:
        assert seen[-1]["usage"]["prompt_tokens"] == 2000  # its own usage chunk reaches the caller, as bare
    event = one_event(meter)
    assert (event.provider, event.server_address) == ("openrouter", "openrouter.ai")
    assert tokens(event) == (2000, 300, 1024, 0)
    assert event.provider_cost_usd == Decimal("0.00675")


# -- xAI ------------------------------------------------------------------------------------------------------------

# grok-3-mini: reasoning tokens reported outside completion_tokens, inside total_tokens (docs.x.ai).
XAI_USAGE = {"prompt_tokens": 32, "completion_tokens": 9, "total_tokens": 135,
             "prompt_tokens_details": {"text_tokens": 32, "audio_tokens": 0, "image_tokens": 0, "cached_tokens": 6},
             "completion_tokens_details": {"reasoning_tokens": 94, "audio_tokens": 0,
                                           "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
             "num_sources_used": 0, "cost_in_usd_ticks": 158500}


@pytest.mark.parametrize(("aio", "stream"), MODES)
def test_xai_reasoning_reported_outside_completion_tokens_is_output(meter, router, aio, stream):
    # inspect_ai #5528: reasoning under-billed when completion_tokens is taken as the whole output.
    xai = Provider("https://api.x.ai/v1", "grok-3-mini", XAI_USAGE)
    xai.mount(router)
    call(meter, xai, aio=aio, stream=stream)
    event = one_event(meter)
    assert (event.provider, event.server_address) == ("x_ai", "api.x.ai")
    assert tokens(event) == (32, 9 + 94, 6, 94)
    assert event.total_tokens == 135  # ours agrees with theirs
    assert event.provider_cost_usd == Decimal("0.00001585")


def test_reasoning_inside_completion_tokens_is_not_added_twice(meter, router):
    usage = {**XAI_USAGE, "completion_tokens": 103, "total_tokens": 135}  # the OpenAI convention
    xai = Provider("https://api.x.ai/v1", "grok-3-mini", usage)
    xai.mount(router)
    call(meter, xai, aio=False, stream=False)
    assert tokens(one_event(meter)) == (32, 103, 6, 94)


# -- Gemini (OpenAI-compatible endpoint) -----------------------------------------------------------------------------

class Gemini(Provider):
    """Gemini's compatible endpoint repeats the (cumulative) usage on several chunks: the last is the call's."""

    def chunks(self, asked, payload):
        chunks = self.content_chunks(False)
        if asked:
            for i, chunk in enumerate(chunks[-3:], start=1):
                chunk["usage"] = {"prompt_tokens": 12, "completion_tokens": 40 * i, "total_tokens": 12 + 40 * i}
        return chunks


@pytest.mark.parametrize(("aio", "stream"), MODES)
def test_gemini_usage_on_several_chunks_is_the_last_never_the_sum(meter, router, aio, stream):
    # ogx #5122: summing the repeated usage over-counts.
    gemini = Gemini("https://generativelanguage.googleapis.com/v1beta/openai/", "gemini-2.5-flash",
                    {"prompt_tokens": 12, "completion_tokens": 120, "total_tokens": 132})
    gemini.mount(router)
    call(meter, gemini, aio=aio, stream=stream)
    event = one_event(meter)
    assert (event.provider, event.server_address) == ("gcp.gemini", "generativelanguage.googleapis.com")
    assert (event.usage_status, event.input_tokens, event.output_tokens) == ("reported", 12, 120)


# -- vLLM -----------------------------------------------------------------------------------------------------------

class VLLM(Provider):
    """vLLM: no usage unless asked; ``continuous_usage_stats`` puts the running usage on every chunk."""

    def chunks(self, asked, payload):
        continuous = (payload.get("stream_options") or {}).get("continuous_usage_stats") is True
        chunks = self.content_chunks(False)
        if asked and continuous:
            for i, chunk in enumerate(chunks):
                chunk["usage"] = {"prompt_tokens": 20, "completion_tokens": i, "total_tokens": 20 + i}
        if asked:
            n = len(chunks) - 1
            chunks.append(chat_chunk(model=self.model, delta=None, id="gen-1",
                                     usage={"prompt_tokens": 20, "completion_tokens": n, "total_tokens": 20 + n}))
        return chunks


@pytest.fixture
def mapped_meter(db_path):
    hosts = {"gpu-box:8000": "vllm", "llm-proxy.internal": "litellm"}
    m = Meter(config=MeterConfig(database=str(db_path), provider_hosts=hosts))
    yield m
    m.close()


@pytest.mark.parametrize(("aio", "stream"), MODES)
def test_vllm(mapped_meter, router, aio, stream):
    vllm = VLLM("http://gpu-box:8000/v1", "meta-llama/Llama-3.1-8B-Instruct",
                {"prompt_tokens": 20, "completion_tokens": 6, "total_tokens": 26})
    vllm.mount(router)
    seen = call(mapped_meter, vllm, aio=aio, stream=stream)
    if stream:
        assert vllm.requests[-1]["stream_options"] == {"include_usage": True}  # vLLM sends none unless asked
        assert seen == bare(vllm, stream=True)
    event = one_event(mapped_meter)
    assert (event.provider, event.server_address, event.usage_status) == ("vllm", "gpu-box:8000", "reported")
    assert (event.input_tokens, event.output_tokens) == (20, 6)


@pytest.mark.parametrize("aio", [False, True])
def test_vllm_continuous_usage_stats_last_chunk_wins(mapped_meter, router, aio):
    vllm = VLLM("http://gpu-box:8000/v1", "Qwen/Qwen2.5-7B-Instruct", {})
    vllm.mount(router)
    options = {"include_usage": True, "continuous_usage_stats": True}
    seen = call(mapped_meter, vllm, aio=aio, stream=True, stream_options=options)
    assert [c["usage"]["completion_tokens"] for c in seen] == list(range(len(seen) - 1)) + [len(seen) - 2]
    event = one_event(mapped_meter)
    assert (event.input_tokens, event.output_tokens) == (20, len(seen) - 2)  # never the sum over the chunks


# -- LiteLLM proxy --------------------------------------------------------------------------------------------------

class LiteLLM(Provider):
    """A LiteLLM proxy: usage (and its cost) on a final chunk that still has a choice."""

    def chunks(self, asked, payload):
        chunks = self.content_chunks(False)
        if asked:
            chunks[-1]["usage"] = self.usage
        return chunks


LITELLM_USAGE = {"prompt_tokens": 310, "completion_tokens": 42, "total_tokens": 352, "cost": 0.000817,
                 "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0}}


@pytest.mark.parametrize(("aio", "stream"), MODES)
def test_litellm_proxy_usage_on_a_final_chunk_with_choices(mapped_meter, router, aio, stream):
    # litellm #36168: usage dropped when the final chunk still has choices (then billed by estimate, 4×).
    proxy = LiteLLM("https://llm-proxy.internal/v1", "gpt-4o-mini", LITELLM_USAGE,
                    headers={"x-litellm-response-cost": "0.000817"})
    proxy.mount(router)
    seen = call(mapped_meter, proxy, aio=aio, stream=stream)
    if stream:
        assert seen[-1]["choices"][0]["finish_reason"] == "stop"  # the caller keeps the chunk and its choice
        assert seen[-1]["usage"]["total_tokens"] == 352
    event = one_event(mapped_meter)
    assert (event.provider, event.server_address, event.usage_status) == ("litellm", "llm-proxy.internal",
                                                                         "reported")
    assert (event.input_tokens, event.output_tokens) == (310, 42)
    assert event.provider_cost_usd == Decimal("0.000817")


def test_litellm_cost_header_alone_is_recorded(mapped_meter, router):
    usage = {k: v for k, v in LITELLM_USAGE.items() if k != "cost"}
    proxy = LiteLLM("https://llm-proxy.internal/v1", "gpt-4o-mini", usage,
                    headers={"x-litellm-response-cost": "0.000912"})
    proxy.mount(router)
    call(mapped_meter, proxy, aio=False, stream=False)
    assert one_event(mapped_meter).provider_cost_usd == Decimal("0.000912")


# -- Ollama, Mistral, Together, Fireworks ------------------------------------------------------------------------------

@pytest.mark.parametrize(("aio", "stream"), MODES)
@pytest.mark.parametrize(("base_url", "model", "provider", "host", "usage"), [
    ("http://localhost:11434/v1", "llama3.2", "ollama", "localhost:11434",
     {"prompt_tokens": 26, "completion_tokens": 9, "total_tokens": 35}),
    ("https://api.mistral.ai/v1", "mistral-small-latest", "mistral_ai", "api.mistral.ai",
     {"prompt_tokens": 14, "completion_tokens": 40, "total_tokens": 54, "prompt_tokens_details": {"cached_tokens": 0}}),
    ("https://api.together.xyz/v1", "meta-llama/Llama-3.3-70B-Instruct-Turbo", "together", "api.together.xyz",
     {"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42, "cached_tokens": 0}),
    ("https://api.fireworks.ai/inference/v1", "accounts/fireworks/models/llama-v3p1-8b-instruct", "fireworks",
     "api.fireworks.ai", {"prompt_tokens": 18, "completion_tokens": 7, "total_tokens": 25,
                          "prompt_tokens_details": {"cached_tokens": 0}}),
])
def test_other_compatible_providers(meter, router, aio, stream, base_url, model, provider, host, usage):
    server = Provider(base_url, model, usage)
    server.mount(router)
    call(meter, server, aio=aio, stream=stream)
    if stream:
        assert server.requests[-1]["stream_options"] == {"include_usage": True}  # none without asking
    event = one_event(meter)
    assert (event.provider, event.server_address, event.usage_status) == (provider, host, "reported")
    assert (event.input_tokens, event.output_tokens) == (usage["prompt_tokens"], usage["completion_tokens"])


# -- prices: from genai-prices' data, one answer in the meter and the CLI ----------------------------------------------

# (base URL, model as the caller names it, usage): one call per provider, priced as the meter prices it.
PRICED = [
    ("https://api.openai.com/v1", "gpt-4o-mini", {"prompt_tokens": 1000, "completion_tokens": 200, "total_tokens": 1200,
                                                  "prompt_tokens_details": {"cached_tokens": 512}}),
    ("https://api.deepseek.com", "deepseek-chat", DEEPSEEK_USAGE),
    ("https://api.groq.com/openai/v1", "llama-3.3-70b-versatile", GROQ_USAGE),
    ("https://openrouter.ai/api/v1", "openai/gpt-4o", OPENROUTER_USAGE),
    ("https://openrouter.ai/api/v1", "anthropic/claude-3.5-sonnet", {"prompt_tokens": 900, "completion_tokens": 90,
                                                                     "total_tokens": 990}),
    ("https://api.x.ai/v1", "grok-3-mini", XAI_USAGE),
    ("https://generativelanguage.googleapis.com/v1beta/openai/", "gemini-2.5-flash",
     {"prompt_tokens": 1200, "completion_tokens": 400, "total_tokens": 1600}),
    ("https://api.mistral.ai/v1", "mistral-small-latest", {"prompt_tokens": 14, "completion_tokens": 40,
                                                           "total_tokens": 54}),
    ("https://api.together.xyz/v1", "meta-llama/Llama-3.3-70B-Instruct-Turbo",
     {"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42}),
    ("https://api.fireworks.ai/inference/v1", "accounts/fireworks/models/llama-v3p1-8b-instruct",
     {"prompt_tokens": 18, "completion_tokens": 7, "total_tokens": 25}),
    ("http://localhost:11434/v1", "llama3.2", {"prompt_tokens": 26, "completion_tokens": 9, "total_tokens": 35}),
    ("http://gpu-box:8000/v1", "Qwen/Qwen2.5-7B-Instruct", {"prompt_tokens": 20, "completion_tokens": 6,
                                                            "total_tokens": 26}),
    ("https://llm-proxy.internal/v1", "gpt-4o-mini", LITELLM_USAGE),
    ("https://llm.example.net/v1", "gpt-4o", {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}),
]


def _priced_call(meter, router, base_url, model, usage):
    server = Provider(base_url, model, usage)
    server.mount(router)
    call(meter, server, aio=False, stream=False)
    return one_event(meter)


@pytest.mark.parametrize(("base_url", "model", "usage"), PRICED, ids=[f"{u.split('/')[2]}-{m}" for u, m, _ in PRICED])
def test_the_meter_and_metricaos_prices_resolve_a_model_the_same_way(mapped_meter, router, base_url, model, usage):
    from click.testing import CliRunner

    from metricaos_sdk.cli import cli

    event = _priced_call(mapped_meter, router, base_url, model, usage)
    result = CliRunner().invoke(cli, ["prices", model, "--provider", event.provider, "--json"])
    info = json.loads(result.output)
    assert info["price_status"] == event.price_status
    if info["resolved"]:
        assert result.exit_code == 0
        assert info["current"]["price_id"] == event.price_id
    else:
        assert result.exit_code == 1 and event.price_id is None and event.cost_usd is None


@pytest.mark.parametrize(("base_url", "model", "usage"), PRICED, ids=[f"{u.split('/')[2]}-{m}" for u, m, _ in PRICED])
def test_costs_agree_with_genai_prices_choosing_the_provider_by_base_url(mapped_meter, router, base_url, model, usage):
    genai_prices = pytest.importorskip("genai_prices")
    event = _priced_call(mapped_meter, router, base_url, model, usage)
    theirs_usage = genai_prices.Usage(input_tokens=event.input_tokens, output_tokens=event.output_tokens,
                                      cache_read_tokens=event.cached_input_tokens,
                                      output_reasoning_tokens=event.reasoning_tokens)
    try:
        theirs = genai_prices.calc_price(theirs_usage, model, provider_api_url=base_url,
                                         genai_request_timestamp=event.timestamp)
    except LookupError:  # no provider or model of theirs (self-hosted, a proxy, an unknown host)
        theirs = None
    if event.provider in ("ollama", "vllm"):
        assert (event.price_status, event.cost_usd) == ("self_hosted", Decimal(0))
    elif event.provider in ("litellm", "openai-compatible"):
        assert theirs is None  # genai-prices has no such provider: ours is a guess by name, or nothing
        assert event.price_status == ("priced" if event.provider == "litellm" else "unpriced")
    else:
        assert event.price_status == "priced"
        assert theirs is not None and event.cost_usd == theirs.total_price


def test_a_provider_reported_cost_never_replaces_ours(mapped_meter, router):
    event = _priced_call(mapped_meter, router, "https://openrouter.ai/api/v1", "openai/gpt-4o", OPENROUTER_USAGE)
    assert event.provider_cost_usd == Decimal("0.00675")
    assert event.price_id.startswith("openrouter:openai/gpt-4o") and event.cost_usd != event.provider_cost_usd


def test_each_priced_provider_is_the_genai_prices_provider_its_base_url_matches():
    import re
    from importlib import resources

    data = json.loads(resources.files("metricaos_sdk.pricing").joinpath("_generated_rates.json").read_text("utf-8"))
    for base_url, _, _ in PRICED:
        provider = provider_for(base_url)
        chain = data["providers"].get(provider)
        if chain is None or "api_pattern" not in chain:
            continue
        assert re.match(chain["api_pattern"], base_url), (provider, base_url)


def test_a_self_hosted_model_is_priced_by_the_users_rate(db_path, router):
    from metricaos_sdk import RateTable

    rates = RateTable.bundled().with_overrides(
        {"models": {"llama3.2": {"input": "0.10", "output": "0.40", "provider": "ollama"}}})
    with Meter(db_path, rates=rates) as meter:
        event = _priced_call(meter, router, "http://localhost:11434/v1", "llama3.2",
                             {"prompt_tokens": 1_000_000, "completion_tokens": 500_000, "total_tokens": 1_500_000})
        other = meter.rates.price("vllm", "llama3.2", event_usage(event))
    assert (event.price_status, event.cost_usd) == ("override", Decimal("0.30"))
    assert other.price_status == "self_hosted"  # the rate was given for Ollama only


def event_usage(event):
    from metricaos_sdk.usage import Usage

    return Usage(input_tokens=event.input_tokens, output_tokens=event.output_tokens)


# -- BedrockOpenAI: named by its class, priced by Bedrock ----------------------------------------------------------------

@pytest.mark.parametrize("aio", [False, True])
def test_bedrock_openai_keeps_its_provider_name_and_bedrock_prices(meter, router, aio):
    if not hasattr(openai, "BedrockOpenAI"):
        pytest.skip("this openai has no BedrockOpenAI")
    cls = openai.AsyncBedrockOpenAI if aio else openai.BedrockOpenAI
    client = meter.wrap(cls(api_key="bedrock-key", aws_region="us-east-1", max_retries=0))
    usage = {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100}
    router.post(str(client.base_url).rstrip("/") + "/chat/completions").mock(return_value=httpx.Response(
        200, json=chat_completion(model="openai.gpt-oss-120b-1:0", content="hi", usage=usage)))
    answer = client.chat.completions.create(model="openai.gpt-oss-120b-1:0", messages=MESSAGES)
    if aio:
        asyncio.run(answer)
    event = one_event(meter)
    assert (event.provider, event.server_address) == ("bedrock", "bedrock-mantle.us-east-1.api.aws")
    assert event.price_id == "bedrock:openai.gpt-oss-120b-1:0" and event.cost_usd is not None


# -- OpenRouter cache writes (the details object OpenAI's newer models share) -----------------------------------------

def test_cache_writes_in_prompt_details_are_their_own_bucket(meter, router):
    usage = {**OPENROUTER_USAGE, "model": "anthropic/claude-3.5-sonnet",
             "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 1500}}
    openrouter = OpenRouter("https://openrouter.ai/api/v1", "anthropic/claude-3.5-sonnet", usage)
    openrouter.mount(router)
    call(meter, openrouter, aio=False, stream=True)
    event = one_event(meter)
    assert (event.input_tokens, event.cache_write_tokens, event.cached_input_tokens) == (2000, 1500, 0)


# -- the new event fields are stored and sent on ------------------------------------------------------------------------

def test_server_address_and_provider_cost_survive_the_store_and_reach_opentelemetry(db_path):
    pytest.importorskip("opentelemetry.sdk")
    from datetime import datetime, timezone

    from metricaos_sdk import SQLiteSink, UsageEvent
    from metricaos_sdk.delivery.otel import _common

    event = UsageEvent(timestamp=datetime.now(timezone.utc), event_type="chat_completion", provider="vllm",
                       endpoint="/chat/completions", model="Qwen/Qwen2.5-7B-Instruct", input_tokens=20,
                       output_tokens=6, total_tokens=26, cost_usd=Decimal(0), price_status="self_hosted",
                       server_address="gpu-box:8000", provider_cost_usd=Decimal("0.0000125"))
    sink = SQLiteSink(db_path)
    sink.write([event])
    [back] = list(sink.events())
    sink.close()
    assert back == event and back.provider_cost_usd == Decimal("0.0000125")
    attributes = _common(event, (), ())
    assert attributes["gen_ai.provider.name"] == "vllm" and attributes["server.address"] == "gpu-box"
