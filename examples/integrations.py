"""Frameworks that take a client: LangChain, the OpenAI Agents SDK and pydantic-ai, each handed a wrapped client,
metered with the attribution of the surrounding ``meter.context``. See docs/integrations.md.

Runs as is (simulated provider, no key, no network): python examples/integrations.py
A framework that is not installed (pip install -e ".[integrations]") is skipped.
"""

from __future__ import annotations

import asyncio
import importlib.util

from metricaos_sdk import MemorySink, Meter
from metricaos_sdk.testing import SimulatedOpenAI

PROMPT = "Where is my order?"


def main() -> None:
    meter = Meter(sink=MemorySink())
    provider = SimulatedOpenAI(reply="Your order ships today.")
    client = meter.wrap(provider.client())                  # production: meter.wrap(openai.OpenAI())
    async_client = meter.wrap(provider.async_client())      # production: meter.wrap(openai.AsyncOpenAI())

    if importlib.util.find_spec("langchain_openai"):
        from langchain_openai import ChatOpenAI

        # Both sides, each as the resource and the root client: a side left out is built by ChatOpenAI, unmetered.
        llm = ChatOpenAI(model="gpt-4.1-mini", client=client.chat.completions, root_client=client,
                         async_client=async_client.chat.completions, root_async_client=async_client)
        with meter.context(customer_id="cus_langchain", feature="support_reply"):
            llm.invoke(PROMPT)
            "".join(str(chunk.content) for chunk in llm.stream(PROMPT))

    if importlib.util.find_spec("agents"):
        from agents import Agent, OpenAIChatCompletionsModel, RunConfig, Runner, set_tracing_disabled

        set_tracing_disabled(True)
        agent = Agent(name="support", model=OpenAIChatCompletionsModel(model="gpt-4.1-mini", openai_client=async_client))

        async def run_agent() -> None:
            with meter.context(customer_id="cus_agents", feature="support_agent"):
                await Runner.run(agent, PROMPT, run_config=RunConfig(tracing_disabled=True))

        asyncio.run(run_agent())

    if importlib.util.find_spec("pydantic_ai"):
        from pydantic_ai import Agent as PydanticAgent
        from pydantic_ai.models.openai import OpenAIChatModel
        from pydantic_ai.providers.openai import OpenAIProvider

        typed = PydanticAgent(OpenAIChatModel("gpt-4.1-mini", provider=OpenAIProvider(openai_client=async_client)))

        async def run_typed() -> None:
            with meter.context(customer_id="cus_pydantic_ai", feature="typed_reply"):
                await typed.run(PROMPT)
                async with typed.run_stream(PROMPT) as result:
                    await result.get_output()

        asyncio.run(run_typed())

    for event in meter.events():
        print(f"{event.customer_id:<16} {event.feature:<14} {event.endpoint:<18} streamed={event.streamed!s:<5} "
              f"in={event.input_tokens} out={event.output_tokens} cost={event.cost_usd}")
    meter.close()


if __name__ == "__main__":
    main()
