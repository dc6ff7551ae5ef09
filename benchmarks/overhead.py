"""Per-call overhead of metering: bare openai/anthropic clients vs wrapped ones, same mocked transport, one run.

    python benchmarks/overhead.py [--calls 2000] [--chunks 200]

Both clients talk to the same in-process ``httpx2.MockTransport`` serving pre-built bodies, so the only
difference is the meter (default SQLite sink in a temp dir: each event committed before the call returns).
Rounds alternate bare/wrapped to cancel drift; the figure is the median of per-round means.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx2
import openai

from metricaos_sdk import Meter
from metricaos_sdk.testing import anthropic_stream_events, chat_chunk, chat_completion, sse

if TYPE_CHECKING:
    import anthropic

MODEL = "gpt-4.1-mini"
MESSAGES = [{"role": "user", "content": "Where is my order?"}]
USAGE = {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500,
         "prompt_tokens_details": {"cached_tokens": 1024}, "completion_tokens_details": {"reasoning_tokens": 0}}


def make_handler(chunks: int):
    plain = json.dumps(chat_completion(model=MODEL, content="Your order ships today.", usage=USAGE)).encode()

    def stream(include_usage: bool) -> bytes:
        events = [chat_chunk(model=MODEL, delta={"content": f" w{i}"}, with_usage_field=include_usage) for i in range(chunks)]
        if include_usage:
            events.append(chat_chunk(model=MODEL, delta=None, usage=USAGE))
        return sse([*events, "[DONE]"])

    streams = {False: stream(False), True: stream(True)}
    sse_headers = {"content-type": "text/event-stream"}
    responses = responses_stream(chunks)

    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.path.endswith("/responses"):
            return httpx2.Response(200, stream=_Events(responses), headers=sse_headers)
        body = json.loads(request.content)
        if body.get("stream"):
            include = bool((body.get("stream_options") or {}).get("include_usage"))
            # One SSE event per read, as a server delivers them.
            data = streams[include]
            return httpx2.Response(200, stream=_Events(data), headers=sse_headers)
        return httpx2.Response(200, content=plain, headers={"content-type": "application/json"})

    return handler


def responses_stream(chunks: int) -> bytes:
    """A Responses API stream: ``response.created``, ``chunks`` text deltas, ``response.completed`` with usage."""
    usage = {"input_tokens": 2048, "input_tokens_details": {"cached_tokens": 1536, "cache_write_tokens": 0},
             "output_tokens": 410, "output_tokens_details": {"reasoning_tokens": 384}, "total_tokens": 2458}

    def response(status: str, usage: dict | None) -> dict:
        return {"id": "resp_bench", "object": "response", "created_at": 1756315696, "status": status,
                "model": "gpt-5-mini-2025-08-07", "output": [], "parallel_tool_calls": True, "tool_choice": "auto",
                "tools": [], "usage": usage}

    events = [{"type": "response.created", "response": response("in_progress", None)}]
    events += [{"type": "response.output_text.delta", "item_id": "msg_bench", "output_index": 0, "content_index": 0,
                "delta": f" w{i}", "logprobs": []} for i in range(chunks)]
    events.append({"type": "response.completed", "response": response("completed", usage)})
    for i, event in enumerate(events):
        event["sequence_number"] = i
    return sse(events, event_names=[e["type"] for e in events])


def responses_stream_call(client: openai.OpenAI) -> None:
    for _ in client.responses.create(model="gpt-5-mini", input="Where is my order?", stream=True):
        pass


class _Events(httpx2.SyncByteStream):
    def __init__(self, data: bytes) -> None:
        self.events = [e + b"\n\n" for e in data.split(b"\n\n") if e]

    def __iter__(self):
        yield from self.events


def client_for(handler) -> openai.OpenAI:
    return openai.OpenAI(api_key="sk-bench", base_url="https://bench.invalid/v1",
                         http_client=httpx2.Client(transport=httpx2.MockTransport(handler)))


def plain_call(client: openai.OpenAI) -> None:
    client.chat.completions.create(model=MODEL, messages=MESSAGES)


def stream_call(client: openai.OpenAI) -> None:
    for _ in client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True):
        pass


ANTHROPIC_MODEL = "claude-sonnet-4-6"
ANTHROPIC_USAGE = {"input_tokens": 42, "cache_read_input_tokens": 1024, "cache_creation_input_tokens": 0,
                   "output_tokens": 300, "service_tier": "standard"}


def make_anthropic_handler(chunks: int):
    events = anthropic_stream_events(model=ANTHROPIC_MODEL, words=[f" w{i}" for i in range(chunks)],
                                     usage=ANTHROPIC_USAGE)
    data = sse(events, event_names=[e["type"] for e in events])

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, stream=_Events(data), headers={"content-type": "text/event-stream; charset=utf-8"})

    return handler


def anthropic_client_for(handler) -> anthropic.Anthropic:
    import anthropic  # imported here: benchmarks/instructions.py imports this module and needs only openai

    return anthropic.Anthropic(api_key="sk-ant-bench", base_url="https://bench.invalid",
                               http_client=httpx2.Client(transport=httpx2.MockTransport(handler)))


def anthropic_stream_call(client: anthropic.Anthropic) -> None:
    for _ in client.messages.create(model=ANTHROPIC_MODEL, max_tokens=1024, messages=MESSAGES, stream=True):
        pass


def compare(name: str, fn, bare, wrapped, calls: int, rounds: int = 20) -> dict:
    for _ in range(max(calls // 20, 5)):  # warm up both
        fn(bare)
        fn(wrapped)
    per_round = max(calls // rounds, 1)
    bare_means, wrapped_means = [], []
    for _ in range(rounds):
        for client, means in ((bare, bare_means), (wrapped, wrapped_means)):
            t0 = time.perf_counter_ns()
            for _ in range(per_round):
                fn(client)
            means.append((time.perf_counter_ns() - t0) / per_round / 1000)
    b, w = statistics.median(bare_means), statistics.median(wrapped_means)
    row = {"case": name, "bare_us": round(b, 1), "wrapped_us": round(w, 1), "overhead_us": round(w - b, 1),
           "overhead_pct": round((w - b) / b * 100, 2)}
    print(f"{name:<28} bare {b:9.1f} µs   wrapped {w:9.1f} µs   overhead {w - b:8.1f} µs  ({row['overhead_pct']:+.2f} %)")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--chunks", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    handler = make_handler(args.chunks)
    with tempfile.TemporaryDirectory() as tmp:
        meter = Meter(Path(tmp) / "bench.db")
        bare, wrapped = client_for(handler), meter.wrap(client_for(handler))
        a_handler = make_anthropic_handler(args.chunks)
        a_bare, a_wrapped = anthropic_client_for(a_handler), meter.wrap(anthropic_client_for(a_handler))
        with meter.context(customer_id="cus_bench", feature="bench"):
            rows = [
                compare("chat plain", plain_call, bare, wrapped, args.calls),
                compare(f"chat stream {args.chunks} chunks", stream_call, bare, wrapped, max(args.calls // 10, 50)),
                compare(f"responses stream {args.chunks} chunks", responses_stream_call, bare, wrapped,
                        max(args.calls // 10, 50)),
                compare(f"anthropic stream {args.chunks} deltas", anthropic_stream_call, a_bare, a_wrapped,
                        max(args.calls // 10, 50)),
            ]
        meter.close()
    if args.json:
        print(json.dumps(rows))


if __name__ == "__main__":
    main()
