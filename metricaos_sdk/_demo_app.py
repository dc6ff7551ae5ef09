"""The app behind ``metricaos demo``: a small AI support product, run against a simulated provider.

Everything is real except the provider: the real ``openai`` client, the real meter, a real SQLite file.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from .errors import QuotaExceeded
from .meter import Meter
from .testing import SimulatedOpenAI

__all__ = ["DemoResult", "run_demo"]

CUSTOMERS = {
    # customer: (token limit per month, questions they ask)
    "cus_acme": (20_000, 6),
    "cus_globex": (400, 6),  # a small plan: runs out part-way
    "cus_initech": (5_000, 3),
}
QUESTIONS = [
    "Where is my order?",
    "Can I change the delivery address for order 1042?",
    "How do I return a damaged item?",
    "Do you ship to Norway?",
    "My invoice shows the wrong VAT number, can you fix it?",
    "Is there a discount for annual plans?",
]


@dataclass
class DemoResult:
    calls: int = 0
    refusals: dict[str, list[str]] = field(default_factory=dict)
    """Each refused call's QuotaExceeded message, by customer."""

    @property
    def refused(self) -> list[str]:
        """Every refusal's message, in the order they happened."""
        return [message for messages in self.refusals.values() for message in messages]


def run_demo(meter: Meter) -> DemoResult:
    provider = SimulatedOpenAI()
    client = meter.wrap(provider.client())
    async_client = meter.wrap(provider.async_client())
    result = DemoResult()

    @meter.track(feature="ai_support_reply")
    def support_reply(question: str) -> str:
        r = client.chat.completions.create(model="gpt-4.1-mini", messages=[
            {"role": "system", "content": "You are a helpful support agent for an online shop."},
            {"role": "user", "content": question}])
        return r.choices[0].message.content or ""

    @meter.track(feature="ai_ticket_summary")
    def summarize_ticket(question: str) -> str:
        # Streamed, without asking for usage: the meter asks for it and hides the extra chunk.
        stream = client.chat.completions.create(model="gpt-4.1", stream=True, messages=[
            {"role": "user", "content": f"Summarize this ticket in one line: {question}"}])
        with stream:
            return "".join(c.choices[0].delta.content or "" for c in stream)

    @meter.track(feature="ai_reply_draft")
    async def draft_reply(question: str) -> str:
        r = await async_client.chat.completions.create(model="gpt-4.1-nano", messages=[
            {"role": "user", "content": f"Draft a friendly reply to: {question}"}])
        return r.choices[0].message.content or ""

    for customer, (tokens, asks) in CUSTOMERS.items():
        meter.set_quota(customer, tokens=tokens, period="month")
        with meter.context(customer_id=customer, user_id=f"agent_{customer[4:]}", workspace_id="ws_support",
                           environment="production"):
            for question in QUESTIONS[:asks]:
                try:
                    support_reply(question)
                    result.calls += 1
                    summarize_ticket(question)
                    result.calls += 1
                    asyncio.run(draft_reply(question))
                    result.calls += 1
                except QuotaExceeded as exc:
                    result.refusals.setdefault(customer, []).append(str(exc))
                    break
    meter.flush()
    return result
