"""AzureOpenAI / AsyncAzureOpenAI: provider ``azure_openai``, the deployment recorded alongside the model,
priced through the deployment map or the model the answer names; Azure's content-filter chunks."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import openai
import pytest

from metricaos_sdk import Meter, RateTable
from metricaos_sdk.testing import chat_chunk, sse
from tests.fake_openai import EMBEDDINGS_USAGE, FakeOpenAI, settle

ENDPOINT = "https://contoso-eu.openai.azure.com"
API_VERSION = "2024-10-21"
MESSAGES = [{"role": "user", "content": "Where is my order?"}]
SAFE = {"filtered": False, "severity": "safe"}
FILTERS = {"hate": SAFE, "self_harm": SAFE, "sexual": SAFE, "violence": SAFE}


class AzureFake(FakeOpenAI):
    """Azure's chat as it streams: a content-filter report first (``"id": ""``, ``"model": ""``, no choices),
    then the chunks with ``content_filter_results`` on each choice. ``deployments`` records the URL's."""

    def __init__(self, **kwargs):
        super().__init__(model="gpt-4o-2024-11-20", **kwargs)
        self.deployments: list[str] = []

    def mount_azure(self, router):
        router.route(method="POST", host="contoso-eu.openai.azure.com",
                     path__regex=r"^/openai/deployments/[^/]+/(chat/completions|embeddings)$").mock(side_effect=self)

    def __call__(self, request):
        assert request.url.params["api-version"] == API_VERSION
        self.deployments.append(request.url.path.split("/")[3])
        return super().__call__(request)

    def stream_bytes(self, include_usage):
        prompt_filter = {"choices": [], "created": 0, "id": "", "model": "", "object": "",
                         "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": FILTERS}]}
        chunks = [chat_chunk(model=self.model, delta={"role": "assistant", "content": ""}, id="chatcmpl-AzB7x",
                             with_usage_field=include_usage)]
        chunks += [chat_chunk(model=self.model, delta={"content": w}, id="chatcmpl-AzB7x", with_usage_field=include_usage)
                   for w in self.words]
        for chunk in chunks:
            chunk["choices"][0]["content_filter_results"] = FILTERS
        chunks.append(chat_chunk(model=self.model, delta={}, finish_reason="stop", id="chatcmpl-AzB7x",
                                 with_usage_field=include_usage))
        if include_usage:
            chunks.append(chat_chunk(model=self.model, delta=None, usage=self.usage, id="chatcmpl-AzB7x"))
        return sse([prompt_filter, *chunks, "[DONE]"])


def azure(aio: bool, **kwargs):
    cls = openai.AsyncAzureOpenAI if aio else openai.AzureOpenAI
    kwargs.setdefault("azure_endpoint", ENDPOINT)
    return cls(api_key="azure-key", api_version=API_VERSION, **kwargs)


@pytest.mark.parametrize("aio", [False, True], ids=["sync", "async"])
def test_azure_call_records_provider_deployment_and_answering_model(meter, router, aio):
    fake = AzureFake()
    fake.mount_azure(router)
    client = meter.wrap(azure(aio))
    answer = asyncio.run(settle(client.chat.completions.create(model="prod-chat", messages=MESSAGES)))
    assert answer.model == "gpt-4o-2024-11-20" and fake.deployments == ["prod-chat"]
    [event] = meter.events()
    assert event.provider == "azure_openai"
    assert event.requested_model == "prod-chat"  # the deployment the request was routed to
    assert event.model == "gpt-4o-2024-11-20"  # the model Azure says answered
    # Priced as gpt-4o from the answer: $2.50/M input, $1.25/M cached, $10/M output.
    assert event.cost_usd == (Decimal(176) * Decimal("2.5") + Decimal(1024) * Decimal("1.25") + Decimal(300) * 10) / 10**6
    assert event.price_id == "openai:gpt-4o"


@pytest.mark.parametrize("aio", [False, True], ids=["sync", "async"])
def test_a_client_pinned_to_a_deployment_records_that_deployment(meter, router, aio):
    fake = AzureFake()
    fake.mount_azure(router)
    pinned = meter.wrap(azure(aio, azure_deployment="prod-chat"))
    by_url = meter.wrap(azure(aio, azure_endpoint=None, base_url=f"{ENDPOINT}/openai/deployments/eu-chat-2"))

    async def scenario():
        # The model argument does not route a pinned client: Azure serves the pinned deployment.
        await settle(pinned.chat.completions.create(model="gpt-4o", messages=MESSAGES))
        await settle(by_url.chat.completions.create(model="gpt-4o", messages=MESSAGES))

    asyncio.run(scenario())
    assert fake.deployments == ["prod-chat", "eu-chat-2"]
    assert [e.requested_model for e in meter.events()] == ["prod-chat", "eu-chat-2"]


@pytest.mark.parametrize("aio", [False, True], ids=["sync", "async"])
def test_azure_stream_with_content_filter_chunks_is_unchanged_and_metered(meter, router, aio):
    fake = AzureFake()
    fake.mount_azure(router)

    def chunks(client):
        stream = client.chat.completions.create(model="prod-chat", messages=MESSAGES, stream=True)
        return [c.to_dict() for c in asyncio.run(settle(stream))]

    bare = chunks(azure(aio))
    wrapped = chunks(meter.wrap(azure(aio)))
    assert wrapped == bare  # the filter report included, the injected usage chunk not
    assert wrapped[0]["choices"] == [] and "prompt_filter_results" in wrapped[0]
    assert fake.requests[-1]["stream_options"] == {"include_usage": True}
    [event] = meter.events()
    # The first chunk names no model and no id: both come from the usage chunk.
    assert (event.model, event.request_id, event.requested_model) == ("gpt-4o-2024-11-20", "chatcmpl-AzB7x", "prod-chat")
    assert event.usage_status == "reported" and event.input_tokens == 1200 and event.price_id == "openai:gpt-4o"


def test_the_users_deployment_map_prices_the_deployment(router, db_path):
    AzureFake().mount_azure(router)
    meter = Meter(db_path, rates=RateTable.bundled().with_deployments({"prod-chat": "gpt-4.1-mini"}))
    meter.wrap(azure(False)).chat.completions.create(model="prod-chat", messages=MESSAGES)
    [event] = meter.events()
    assert event.model == "gpt-4o-2024-11-20" and event.requested_model == "prod-chat"
    assert event.price_id == "openai:gpt-4.1-mini" and event.cost_usd == Decimal("0.0006528")
    meter.close()


def test_a_deployment_named_after_its_model_prices_an_unknown_answer(meter, router):
    fake = AzureFake()
    fake.model = "contoso-finetune-7f3a"  # a name no table knows
    fake.mount_azure(router)
    meter.wrap(azure(False)).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    [event] = meter.events()
    assert event.model == "contoso-finetune-7f3a" and event.price_id == "openai:gpt-4o-mini"


def test_azure_embeddings_and_copies_are_metered_as_azure(meter, router):
    fake = AzureFake(usage=EMBEDDINGS_USAGE)
    fake.mount_azure(router)
    client = meter.wrap(azure(False))
    client.with_options(max_retries=0).embeddings.create(model="embed-eu", input="Where is my order?")
    client.copy().embeddings.create(model="embed-eu", input="Where is my order?")
    assert fake.deployments == ["embed-eu", "embed-eu"]
    assert [(e.provider, e.requested_model, e.event_type, e.input_tokens) for e in meter.events()] == [
        ("azure_openai", "embed-eu", "embedding", 8)] * 2
