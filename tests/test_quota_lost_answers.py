"""A settlement Redis applied but whose answer was lost (a timeout) is retried without counting the call twice.

Over a network a script can run while its reply never arrives: the client sees a timeout and cannot tell
whether the counters moved. The engine retries the settlement once the store answers; a plain retry would
count the call a second time (the customer refused early, their usage overstated), so over Redis every
settlement counts at most once per call id.
"""

from __future__ import annotations

import uuid
from typing import Any

from metricaos_sdk import Meter, MeterConfig
from metricaos_sdk.testing import SimulatedOpenAI
from tests.quota_support import redis_url  # noqa: F401  (fixture)

ASK = {"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "Where is my order?"}]}


class AnswerLost:
    """Wraps a registered Redis script: the next call runs in Redis, then its reply is 'lost' (TimeoutError)."""

    def __init__(self, script: Any) -> None:
        self.script = script
        self.armed = False
        self.lost = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        out = self.script(*args, **kwargs)  # applied in Redis
        if self.armed:
            import redis

            self.armed = False
            self.lost += 1
            raise redis.exceptions.TimeoutError("Timeout reading from socket")
        return out


def test_a_settlement_applied_but_unanswered_counts_the_call_once(db_path, redis_url):  # noqa: F811
    from metricaos_sdk.quota.backends import RedisQuotaStore

    store = RedisQuotaStore.from_url(redis_url, prefix=f"test-lost-{uuid.uuid4().hex}:")
    meter = Meter(config=MeterConfig(database=str(db_path)), quota_store=store)
    meter.plans.define("team", credits=1_000)
    meter.credits.set("*", per_call=10)
    meter.customers.assign("cus_lost", "team")
    # Whichever script the engine settles with, the first settlement's answer is lost after it ran.
    wrapped = {name: AnswerLost(getattr(store, name)) for name in ("_settle", "_settle_once")}
    for name, script in wrapped.items():
        setattr(store, name, script)
    client = meter.wrap(SimulatedOpenAI(reply_words=3).client())
    with meter.context(customer_id="cus_lost"):
        client.chat.completions.create(**ASK)  # settles normally: 10
        for script in wrapped.values():
            script.armed = True
        client.chat.completions.create(**ASK)  # applied in Redis, answer lost: waits for a retry
        for script in wrapped.values():
            script.armed = False
    assert sum(s.lost for s in wrapped.values()) == 1 and meter.faults >= 1
    meter.flush()  # the waiting settlement is retried through the store, which answers now
    assert not meter._quotas.retry_pending()  # nothing waits any more
    summary = meter.usage("cus_lost")
    assert (summary.used, summary.reserved) == (20, 0)  # two calls of 10 credits: the lost answer not counted twice
    assert sum(e.credits for e in meter.events(customer_id="cus_lost")) == 20
    meter.close()
