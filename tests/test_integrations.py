"""Frameworks that take a client: a wrapped client handed to LangChain, the OpenAI Agents SDK or pydantic-ai is
metered through the framework's own call path, with the attribution of the surrounding ``meter.context``.

Real framework packages, real openai/anthropic clients, HTTP mocked by respx at httpcore2 (tests/conftest.py);
fake keys, no network. Each scenario also runs once with a bare client and compares the framework's own result,
so metering is shown to change nothing the framework sees. A framework that is not installed is skipped with
the reason (they are in the ``integrations`` and ``test`` extras). See docs/integrations.md.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import openai
import pytest

from tests.fake_anthropic import CACHED as CLAUDE_CACHED
from tests.fake_anthropic import INPUT as CLAUDE_INPUT
from tests.fake_anthropic import MODEL as CLAUDE
from tests.fake_anthropic import OUTPUT as CLAUDE_OUTPUT
from tests.fake_anthropic import WORDS, FakeAnthropic
from tests.fake_openai import RESPONSES_USAGE, USAGE, FakeOpenAI

TEXT = "".join(WORDS)  # what every fake answers: "Your order ships today."
GPT = "gpt-4.1-mini"
SCOPE = {"customer_id": "cus_fw", "feature": "framework_reply"}
CHAT = ("/chat/completions", USAGE["prompt_tokens"], USAGE["completion_tokens"])
RESPONSES = ("/responses", RESPONSES_USAGE["input_tokens"], RESPONSES_USAGE["output_tokens"])
MESSAGES = ("/v1/messages", CLAUDE_INPUT, CLAUDE_OUTPUT)


def need(module: str, package: str) -> Any:
    if module == "pydantic_ai" and sys.version_info < (3, 11):
        pytest.skip("pydantic-ai needs Python 3.11 or newer")
    return pytest.importorskip(module, reason=f"{package} is not installed (pip install -e '.[integrations]')")


def assert_metered(meter: Any, provider: str, expected: tuple[str, int, int], *, streamed: bool, calls: int = 1) -> None:
    """``calls`` events, each the framework's call: the surrounding scope's attribution, the mocked usage."""
    endpoint, input_tokens, output_tokens = expected
    events = meter.events()
    assert len(events) == calls, [(e.endpoint, e.streamed) for e in events]
    for event in events:
        assert (event.customer_id, event.feature) == (SCOPE["customer_id"], SCOPE["feature"])
        # The path alone: anthropic 2.0's beta.messages (what pydantic-ai calls) posts to /v1/messages?beta=true.
        recorded = event.endpoint
        assert (event.provider, recorded, event.streamed) == (provider, endpoint, streamed)
        assert (event.status, event.usage_status, event.billable) == ("ok", "reported", True)
        assert (event.input_tokens, event.output_tokens) == (input_tokens, output_tokens)


def run_both(meter: Any, make_client: Callable[[], Any], scenario: Callable[[Any], Any]) -> tuple[Any, Any]:
    """The framework's result with a bare client, then with a wrapped one inside ``meter.context(**SCOPE)``.
    The bare run records nothing; the wrapped run's events are what the caller asserts."""
    bare = scenario(make_client())
    assert meter.events() == []
    with meter.context(**SCOPE):
        metered = scenario(meter.wrap(make_client()))
    return bare, metered


def on_own_loop(run_sync: Callable[[], Any]) -> Any:
    """Call a framework's ``run_sync`` on a fresh default loop, closed afterwards.

    Both the agents SDK and pydantic-ai run ``run_sync`` on the thread's default loop and leave it open (a
    ResourceWarning, an error here, when it is collected in a later test). The agents SDK also calls
    ``shutdown_asyncgens()`` on it after each run, so a second run on the same loop warns as httpx2 starts an
    async generator — with a bare client as with a wrapped one.
    """
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return run_sync()
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def openai_client() -> openai.OpenAI:
    return openai.OpenAI(api_key="sk-test-fw", max_retries=0)


def async_openai_client() -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key="sk-test-fw", max_retries=0)


def async_anthropic_client() -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(api_key="sk-ant-test-fw", max_retries=0)


@pytest.fixture
def fake_openai(router: Any) -> FakeOpenAI:
    """Chat Completions with chat usage, Responses with Responses usage (each API's own shape)."""
    fake = FakeOpenAI()
    fake.mount(router)
    router.post("https://api.openai.com/v1/responses").mock(side_effect=FakeOpenAI(usage=RESPONSES_USAGE))
    return fake


@pytest.fixture
def fake_anthropic(router: Any) -> FakeAnthropic:
    return FakeAnthropic().mount(router)


# -- LangChain ---------------------------------------------------------------------------------------------
def message_fields(message: Any) -> dict[str, Any]:
    """An AIMessage(Chunk) without its run id (random per call)."""
    return message.model_dump(exclude={"id"})


def lc_invoke(model: Any, mode: str) -> Any:
    """One LangChain call in ``mode``; a stream is merged into one chunk (as LangChain's ``+`` does)."""
    if mode == "invoke":
        return model.invoke("Where is my order?")
    if mode == "ainvoke":
        return asyncio.run(model.ainvoke("Where is my order?"))
    if mode == "stream":
        chunks = list(model.stream("Where is my order?"))
    else:
        async def collect() -> list[Any]:
            return [chunk async for chunk in model.astream("Where is my order?")]
        chunks = asyncio.run(collect())
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged = merged + chunk
    return merged


MODES = ["invoke", "ainvoke", "stream", "astream"]


def chat_openai(lc: Any, sync_client: openai.OpenAI, async_client: openai.AsyncOpenAI, **kwargs: Any) -> Any:
    # ChatOpenAI takes the resource (``client``) and the root client (``root_client``, used for the Responses API
    # and ``beta`` helpers) for each of sync and async; a side given neither is built by ChatOpenAI, unmetered.
    return lc.ChatOpenAI(model=GPT, api_key="sk-test-fw", client=sync_client.chat.completions, root_client=sync_client,
                         async_client=async_client.chat.completions, root_async_client=async_client, **kwargs)


@pytest.mark.parametrize("mode", MODES)
def test_langchain_chat_openai_is_metered(meter, fake_openai, mode):
    lc = need("langchain_openai", "langchain-openai")

    def scenario(clients: tuple[openai.OpenAI, openai.AsyncOpenAI]) -> Any:
        return lc_invoke(chat_openai(lc, *clients), mode)

    def make_clients() -> Any:
        return openai_client(), async_openai_client()

    bare = scenario(make_clients())
    assert meter.events() == []
    with meter.context(**SCOPE):
        sync_client, async_client = make_clients()
        metered = scenario((meter.wrap(sync_client), meter.wrap(async_client)))
    assert metered.content == TEXT
    assert message_fields(metered) == message_fields(bare)
    assert_metered(meter, "openai", CHAT, streamed=mode.endswith("stream"))


@pytest.mark.parametrize("mode", ["invoke", "astream"])
@pytest.mark.parametrize("options", ["stream_usage", "use_responses_api"])
def test_langchain_chat_openai_options_are_metered(meter, fake_openai, mode, options):
    # stream_usage: LangChain asks for stream usage itself (and shows it); use_responses_api: the root clients
    # are what LangChain calls.
    lc = need("langchain_openai", "langchain-openai")
    expected = CHAT if options == "stream_usage" else RESPONSES

    def make_clients() -> Any:
        return openai_client(), async_openai_client()

    def scenario(clients: Any) -> Any:
        return lc_invoke(chat_openai(lc, *clients, **{options: True}), mode)

    bare = scenario(make_clients())
    with meter.context(**SCOPE):
        sync_client, async_client = make_clients()
        metered = scenario((meter.wrap(sync_client), meter.wrap(async_client)))
    assert message_fields(metered) == message_fields(bare)
    assert metered.usage_metadata is not None and metered.usage_metadata["input_tokens"] == expected[1]
    assert_metered(meter, "openai", expected, streamed=mode == "astream")


def test_langchain_chat_openai_built_without_clients_is_metered_by_wrapping_its_own(meter, fake_openai):
    # The other way in: let ChatOpenAI build its clients, then wrap them (the resources it calls hang off them).
    lc = need("langchain_openai", "langchain-openai")
    model = lc.ChatOpenAI(model=GPT, api_key="sk-test-fw", max_retries=0)
    meter.wrap(model.root_client)
    meter.wrap(model.root_async_client)
    with meter.context(**SCOPE):
        assert model.invoke("Where is my order?").content == TEXT
        assert lc_invoke(model, "astream").content == TEXT
    assert [e.streamed for e in meter.events()] == [False, True]
    for event in meter.events():
        assert (event.customer_id, event.feature, event.input_tokens) == (SCOPE["customer_id"], SCOPE["feature"],
                                                                          CHAT[1])


def test_langchain_chat_openai_given_only_a_root_client_builds_its_own_unmetered(meter, fake_openai):
    # A caveat pinned: ChatOpenAI builds a new root client (and the resource) when ``client`` is not given, so a
    # wrapped ``root_client`` alone is replaced and nothing is metered. Pass both (see chat_openai above).
    lc = need("langchain_openai", "langchain-openai")
    wrapped = meter.wrap(openai_client())
    model = lc.ChatOpenAI(model=GPT, api_key="sk-test-fw", root_client=wrapped)
    assert model.root_client is not wrapped
    with meter.context(**SCOPE):
        assert model.invoke("Where is my order?").content == TEXT
    assert meter.events() == []


def test_langchain_batch_runs_calls_in_threads_and_each_keeps_the_attribution(meter, fake_openai):
    # Runnable.batch runs the calls on a thread pool; LangChain copies the context into each thread.
    lc = need("langchain_openai", "langchain-openai")
    model = chat_openai(lc, meter.wrap(openai_client()), meter.wrap(async_openai_client()))
    with meter.context(**SCOPE):
        answers = model.batch(["Where is my order?"] * 3, config={"max_concurrency": 3})
    assert [a.content for a in answers] == [TEXT] * 3
    assert_metered(meter, "openai", CHAT, streamed=False, calls=3)


@pytest.mark.parametrize("mode", MODES)
def test_langchain_chat_anthropic_is_metered(meter, fake_anthropic, mode):
    # ChatAnthropic takes no client: it builds one per side on first use (cached properties ``_client`` and
    # ``_async_client``). Wrapping those meters that model instance and no other.
    lc = need("langchain_anthropic", "langchain-anthropic")

    def scenario(wrap: Callable[[Any], Any]) -> Any:
        model = lc.ChatAnthropic(model=CLAUDE, api_key="sk-ant-test-fw", max_retries=0)
        wrap(model._client)
        wrap(model._async_client)
        return lc_invoke(model, mode)

    bare = scenario(lambda client: client)
    assert meter.events() == []
    with meter.context(**SCOPE):
        metered = scenario(meter.wrap)
    assert metered.content == TEXT or metered.text == TEXT
    assert message_fields(metered) == message_fields(bare)
    assert metered.usage_metadata["input_tokens"] == CLAUDE_INPUT
    assert metered.usage_metadata["input_token_details"]["cache_read"] == CLAUDE_CACHED
    assert_metered(meter, "anthropic", MESSAGES, streamed=mode.endswith("stream"))


# -- OpenAI Agents SDK -------------------------------------------------------------------------------------
@pytest.fixture
def agents_sdk() -> Iterator[Any]:
    """The agents package with tracing off and its process-wide default client restored afterwards."""
    agents = need("agents", "openai-agents")
    from agents.models import _openai_shared

    previous = _openai_shared.get_default_openai_client()
    agents.set_tracing_disabled(True)
    try:
        yield agents
    finally:
        _openai_shared.set_default_openai_client(previous)  # type: ignore[arg-type]


def agent_run(agents: Any, agent: Any, mode: str) -> Any:
    config = agents.RunConfig(tracing_disabled=True)
    if mode == "run":
        result = asyncio.run(agents.Runner.run(agent, "Where is my order?", run_config=config))
    elif mode == "run_sync":
        result = on_own_loop(lambda: agents.Runner.run_sync(agent, "Where is my order?", run_config=config))
    else:
        async def streamed() -> Any:
            result = agents.Runner.run_streamed(agent, "Where is my order?", run_config=config)
            async for _ in result.stream_events():
                pass
            return result
        result = asyncio.run(streamed())
    usage = result.context_wrapper.usage
    return result.final_output, (usage.requests, usage.input_tokens, usage.output_tokens, usage.total_tokens)


@pytest.mark.parametrize("mode", ["run", "run_sync", "run_streamed"])
def test_agents_default_client_responses_api_is_metered(meter, fake_openai, agents_sdk, mode):
    def scenario(client: openai.AsyncOpenAI) -> Any:
        agents_sdk.set_default_openai_client(client, use_for_tracing=False)
        return agent_run(agents_sdk, agents_sdk.Agent(name="support", instructions="Be brief.", model=GPT), mode)

    bare, metered = run_both(meter, async_openai_client, scenario)
    assert metered == bare
    assert metered[0] == TEXT and metered[1][1] == RESPONSES_USAGE["input_tokens"]
    assert_metered(meter, "openai", RESPONSES, streamed=mode == "run_streamed")


def test_agents_run_config_model_provider_is_metered(meter, fake_openai, agents_sdk):
    def scenario(client: openai.AsyncOpenAI) -> Any:
        config = agents_sdk.RunConfig(tracing_disabled=True, model_provider=agents_sdk.OpenAIProvider(openai_client=client))
        agent = agents_sdk.Agent(name="support", instructions="Be brief.", model=GPT)
        result = asyncio.run(agents_sdk.Runner.run(agent, "Where is my order?", run_config=config))
        return result.final_output, result.context_wrapper.usage.input_tokens

    bare, metered = run_both(meter, async_openai_client, scenario)
    assert metered == bare == (TEXT, RESPONSES_USAGE["input_tokens"])
    assert_metered(meter, "openai", RESPONSES, streamed=False)


@pytest.mark.parametrize("mode", ["run", "run_streamed"])
def test_agents_chat_completions_model_is_metered(meter, fake_openai, agents_sdk, mode):
    def scenario(client: openai.AsyncOpenAI) -> Any:
        model = agents_sdk.OpenAIChatCompletionsModel(model=GPT, openai_client=client)
        return agent_run(agents_sdk, agents_sdk.Agent(name="support", instructions="Be brief.", model=model), mode)

    bare, metered = run_both(meter, async_openai_client, scenario)
    assert metered == bare
    assert metered[0] == TEXT and metered[1][1] == USAGE["prompt_tokens"]
    assert_metered(meter, "openai", CHAT, streamed=mode == "run_streamed")


# -- pydantic-ai -------------------------------------------------------------------------------------------
def skip_unless_pydantic_ai_takes_this_anthropic() -> None:
    """pydantic-ai before 2.60 cannot build an Anthropic request with anthropic 2.0 (it instantiates a
    typing.Union: TypeError, with a bare client too); CI's oldest-versions run has both."""
    from importlib.metadata import version

    released = tuple(int(p) for p in version("pydantic-ai-slim").split(".")[:2])
    if released < (2, 60) and version("anthropic").startswith("2.0."):
        pytest.skip(f"pydantic-ai {version('pydantic-ai-slim')} cannot build a request with anthropic 2.0 (it "
                    f"instantiates a typing.Union: TypeError, with a bare client too); fixed in pydantic-ai 2.60")


def pydantic_ai_run(pai: Any, model: Any, mode: str, settings: dict[str, Any] | None = None) -> Any:
    agent = pai.Agent(model, instructions="Be brief.")
    if mode == "run":
        result = asyncio.run(agent.run("Where is my order?", model_settings=settings))
    elif mode == "run_sync":
        result = on_own_loop(lambda: agent.run_sync("Where is my order?", model_settings=settings))
    else:
        async def streamed() -> Any:
            async with agent.run_stream("Where is my order?", model_settings=settings) as result:
                texts = [text async for text in result.stream_text()]
                assert texts[-1] == TEXT
                output = await result.get_output()
            return output, result.usage
        output, usage = asyncio.run(streamed())
        return output, (usage.requests, usage.input_tokens, usage.output_tokens)
    usage = result.usage
    return result.output, (usage.requests, usage.input_tokens, usage.output_tokens)


PAI_MODES = ["run", "run_sync", "run_stream"]


@pytest.mark.parametrize("api", ["chat", "responses"])
@pytest.mark.parametrize("mode", PAI_MODES)
def test_pydantic_ai_openai_provider_is_metered(meter, fake_openai, mode, api):
    pai = need("pydantic_ai", "pydantic-ai-slim[openai]")
    from pydantic_ai.models.openai import OpenAIChatModel, OpenAIResponsesModel
    from pydantic_ai.providers.openai import OpenAIProvider

    model_class = OpenAIChatModel if api == "chat" else OpenAIResponsesModel

    def scenario(client: openai.AsyncOpenAI) -> Any:
        return pydantic_ai_run(pai, model_class(GPT, provider=OpenAIProvider(openai_client=client)), mode)

    bare, metered = run_both(meter, async_openai_client, scenario)
    assert metered == bare
    expected = CHAT if api == "chat" else RESPONSES
    assert metered[0] == TEXT and metered[1][1] == expected[1]
    assert_metered(meter, "openai", expected, streamed=mode == "run_stream")


@pytest.mark.parametrize("mode", PAI_MODES)
def test_pydantic_ai_anthropic_provider_is_metered(meter, fake_anthropic, mode):
    pai = need("pydantic_ai", "pydantic-ai-slim[anthropic]")
    skip_unless_pydantic_ai_takes_this_anthropic()
    from pydantic_ai.models.anthropic import AnthropicModel
    from pydantic_ai.providers.anthropic import AnthropicProvider

    def scenario(client: anthropic.AsyncAnthropic) -> Any:
        model = AnthropicModel(CLAUDE, provider=AnthropicProvider(anthropic_client=client))
        return pydantic_ai_run(pai, model, mode, {"max_tokens": 1024})

    bare, metered = run_both(meter, async_anthropic_client, scenario)
    assert metered == bare
    assert metered[0] == TEXT and metered[1][1] == CLAUDE_INPUT
    assert [body.get("stream", False) for _, body in fake_anthropic.requests] == [mode == "run_stream"] * 2
    assert_metered(meter, "anthropic", MESSAGES, streamed=mode == "run_stream")


def test_pydantic_ai_anthropic_streams_a_plain_run_at_the_models_maximum_output_and_it_is_metered_as_streamed(
        meter, fake_anthropic):
    # With no max_tokens setting, pydantic-ai asks for the model's maximum output; the anthropic SDK refuses that
    # without streaming ("Streaming is required"), so pydantic-ai streams the request: the event says streamed.
    pai = need("pydantic_ai", "pydantic-ai-slim[anthropic]")
    skip_unless_pydantic_ai_takes_this_anthropic()
    from pydantic_ai.models.anthropic import AnthropicModel
    from pydantic_ai.providers.anthropic import AnthropicProvider

    def scenario(client: anthropic.AsyncAnthropic) -> Any:
        return pydantic_ai_run(pai, AnthropicModel(CLAUDE, provider=AnthropicProvider(anthropic_client=client)), "run")

    bare, metered = run_both(meter, async_anthropic_client, scenario)
    assert metered == bare and metered[0] == TEXT
    assert [body.get("stream") for _, body in fake_anthropic.requests][-1] is True
    assert_metered(meter, "anthropic", MESSAGES, streamed=True)


# -- attribution across concurrent runs --------------------------------------------------------------------
def concurrent_call(framework: str, meter: Any) -> Callable[[], Any]:
    """An async function making one call through ``framework`` with wrapped clients."""
    if framework == "langchain":
        lc = need("langchain_openai", "langchain-openai")
        chat = chat_openai(lc, meter.wrap(openai_client()), meter.wrap(async_openai_client()))
        return lambda: chat.ainvoke("Where is my order?")
    if framework == "agents":
        agents = need("agents", "openai-agents")
        model = agents.OpenAIResponsesModel(model=GPT, openai_client=meter.wrap(async_openai_client()))
        agent = agents.Agent(name="support", model=model)
        return lambda: agents.Runner.run(agent, "Where is my order?", run_config=agents.RunConfig(tracing_disabled=True))
    pai = need("pydantic_ai", "pydantic-ai-slim[anthropic]")
    from pydantic_ai.models.anthropic import AnthropicModel
    from pydantic_ai.providers.anthropic import AnthropicProvider

    claude = pai.Agent(AnthropicModel(CLAUDE, provider=AnthropicProvider(
        anthropic_client=meter.wrap(async_anthropic_client()))))

    async def streamed() -> Any:
        async with claude.run_stream("Where is my order?", model_settings={"max_tokens": 1024}) as result:
            return await result.get_output()
    return streamed


@pytest.mark.parametrize("framework", ["langchain", "agents", "pydantic_ai"])
def test_concurrent_framework_runs_keep_their_own_attribution(meter, fake_openai, fake_anthropic, framework):
    """Runs in concurrent asyncio tasks, each in its own ``meter.context``: each event carries its own task's
    customer and feature, however the framework schedules its work."""
    if framework == "agents":
        need("agents", "openai-agents").set_tracing_disabled(True)
    if framework == "pydantic_ai":
        need("pydantic_ai", "pydantic-ai-slim[anthropic]")
        skip_unless_pydantic_ai_takes_this_anthropic()
    call = concurrent_call(framework, meter)

    async def one(index: int) -> None:
        with meter.context(customer_id=f"cus_{index}", feature=f"feature_{index}"):
            await asyncio.sleep(0)
            await call()

    async def main() -> None:
        await asyncio.gather(*(one(i) for i in range(6)))

    asyncio.run(main())
    events = meter.events()
    assert sorted(e.customer_id for e in events) == [f"cus_{i}" for i in range(6)]
    assert all(e.feature == "feature_" + e.customer_id.removeprefix("cus_") for e in events)
    assert {e.endpoint for e in events} == {{"langchain": "/chat/completions", "agents": "/responses",
                                             "pydantic_ai": "/v1/messages"}[framework]}


def test_the_example_runs_and_meters_every_installed_framework(capsys):
    import importlib.util
    import runpy
    from pathlib import Path

    runpy.run_path(str(Path(__file__).resolve().parents[1] / "examples" / "integrations.py"), run_name="__main__")
    lines = capsys.readouterr().out.splitlines()
    expected = (["cus_langchain"] * 2 * bool(importlib.util.find_spec("langchain_openai"))
                + ["cus_agents"] * bool(importlib.util.find_spec("agents"))
                + ["cus_pydantic_ai"] * 2 * bool(importlib.util.find_spec("pydantic_ai")))
    assert [line.split()[0] for line in lines] == expected
    assert all("in=7 out=4" in line for line in lines)
