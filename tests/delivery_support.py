"""What the delivery tests share: a quick retry policy and metered calls to deliver."""

from __future__ import annotations

from metricaos_sdk import Meter
from metricaos_sdk.delivery import DeliveryPolicy
from metricaos_sdk.testing import SimulatedOpenAI

ASK = {"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "Where is my order?"}]}
FAST = DeliveryPolicy(first_backoff=0.05, longest_backoff=0.2, poll_interval=0.05)
"""Back-off in tens of milliseconds: a receiver's recovery is seen at once."""


def calls(meter: Meter, n: int, customer: str = "cus_1") -> None:
    """``n`` metered chat calls for ``customer`` through a simulated provider."""
    client = meter.wrap(SimulatedOpenAI(reply_words=3).client())
    with meter.context(customer_id=customer):
        for _ in range(n):
            client.chat.completions.create(**ASK)


def fast(meter: Meter) -> Meter:
    """``meter`` with its delivery retrying on :data:`FAST`."""
    assert meter.delivery is not None
    meter.delivery.policy = FAST
    return meter
