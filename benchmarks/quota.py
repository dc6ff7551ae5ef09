"""Quota benchmarks: the pre-call check per store, and admitted usage vs the limit under contention.

    python benchmarks/quota.py [--calls 5000] [--redis-url redis://127.0.0.1:6390/0] [--json]

1. Pre-call check: ``QuotaEngine.begin`` for one call — policy lookup, estimate, atomic reservation —
   timed alone (the settle that follows is not counted), per store. "no quota" is a customer nothing
   limits (every metered call pays this). The call asks for a credits plan with a per-call rule, so no
   tokenizer runs; "tokens plan" adds the tiktoken input count.
2. Contention: 64 threads calling a simulated provider for one customer whose plan allows 100 calls; the
   admitted usage must equal the limit exactly.

The Redis URL defaults to ``$METRICAOS_TEST_REDIS_URL`` (``eval "$(bash scripts/redis-server.sh)"``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import openai  # noqa: E402

from metricaos_sdk import MemorySink, Meter, MeterConfig  # noqa: E402
from metricaos_sdk.context import Attribution  # noqa: E402
from metricaos_sdk.wrappers.call import MeteredCall  # noqa: E402
from metricaos_sdk.wrappers.clients import client_kind  # noqa: E402

BODY = {"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "Where is my order? It was due on Monday."}]}


def make_meter(store: str, tmp: Path, redis_url: str | None) -> Meter:
    cfg = MeterConfig(database=str(tmp / f"{store}-{uuid.uuid4().hex[:6]}.db"))
    if store == "in-process":
        return Meter(sink=MemorySink(), config=cfg)
    if store == "sqlite":
        return Meter(config=cfg)
    from metricaos_sdk import RedisQuotaStore

    return Meter(config=cfg, quota_store=RedisQuotaStore.from_url(redis_url, prefix=f"bench-{uuid.uuid4().hex[:6]}:"))


def precall(meter: Meter, customer: str, calls: int) -> dict[str, float]:
    kind = client_kind(openai.OpenAI(api_key="sk-bench"))
    endpoint = kind.endpoints["/chat/completions"]
    attribution = Attribution(customer_id=customer, feature="chat")
    engine = meter._quotas
    samples = []
    for i in range(calls + 200):
        call = MeteredCall(meter, endpoint, "openai", "/chat/completions", BODY, attribution)
        t0 = time.perf_counter_ns()
        engine.begin(call)
        elapsed = time.perf_counter_ns() - t0
        engine.abandon(call)  # release, outside the timing
        if i >= 200:  # warm-up: connections, caches, tokenizer
            samples.append(elapsed / 1000)
    samples.sort()
    return {"p50_us": round(statistics.median(samples), 2), "p99_us": round(samples[int(len(samples) * 0.99)], 2)}


def contention(meter: Meter, threads: int = 64, per_thread: int = 4) -> dict[str, int]:
    from metricaos_sdk.testing import SimulatedOpenAI

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.quota_support import hammer

    meter.plans.define("bench-contention", credits=1_000)
    meter.credits.set("*", per_call=10)
    meter.customers.assign("cus_contention", "bench-contention")
    client = meter.wrap(SimulatedOpenAI(reply_words=8).client(max_retries=0))
    admitted, refused = hammer(meter, client, "cus_contention", threads=threads, calls=per_thread)
    used = meter.usage("cus_contention").used
    return {"attempts": admitted + refused, "admitted": admitted, "used_credits": int(used), "limit_credits": 1_000,
            "held_after": meter.quota_store.open_reservations("cus_contention")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--redis-url", default=os.environ.get("METRICAOS_TEST_REDIS_URL"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    stores = ["in-process", "sqlite"] + (["redis"] if args.redis_url else [])
    if not args.redis_url:
        print("(no Redis: pass --redis-url or run `eval \"$(bash scripts/redis-server.sh)\"`)")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for store in stores:
            meter = make_meter(store, Path(tmp), args.redis_url)
            meter.plans.define("bench", credits=10**12)
            meter.plans.define("bench-tokens", tokens=10**12)
            meter.credits.set("*", per_call=10)
            meter.customers.assign("cus_credits", "bench")
            meter.customers.assign("cus_tokens", "bench-tokens")
            row = {"store": store,
                   "no_quota": precall(meter, "cus_free", args.calls),
                   "credits_plan": precall(meter, "cus_credits", args.calls),
                   "tokens_plan": precall(meter, "cus_tokens", max(args.calls // 5, 200)),
                   "contention": contention(meter)}
            meter.close()
            rows.append(row)
            c = row["contention"]
            print(f"{store:<11} pre-call p50/p99 µs: no quota {row['no_quota']['p50_us']:>6}/{row['no_quota']['p99_us']:<7}"
                  f" credits plan {row['credits_plan']['p50_us']:>7}/{row['credits_plan']['p99_us']:<8}"
                  f" tokens plan {row['tokens_plan']['p50_us']:>7}/{row['tokens_plan']['p99_us']:<8}"
                  f" | 64 threads: {c['admitted']}/{c['attempts']} admitted, used {c['used_credits']} of "
                  f"{c['limit_credits']} credits, {c['held_after']} held after")
    if args.json:
        print(json.dumps(rows))


if __name__ == "__main__":
    main()
