"""Per-call overhead of metering: bare openai/anthropic clients vs wrapped ones, same mocked transport, one run.

    python benchmarks/overhead.py [--calls 2000] [--chunks 200] [--stages] [--json]

Both clients talk to the same in-process ``httpx2.MockTransport`` serving pre-built bodies as byte streams,
as a network transport does (a body handed over already read would take a path only mocks take), so the
only difference is the meter (default SQLite sink in a temp dir: each event durable before the call
returns). Calls run in short rounds, bare and wrapped back to back in alternating order; the overhead is
the median of the per-round differences, printed with their interquartile range, which says how far to
trust it on a noisy machine.

``--stages`` measures the plain call again with metering cut off after each stage: the hook alone, the
call opened and closed, the response's usage read, the event built and priced, and the event recorded.
Each row is bare vs a client metered up to that stage, so it shows where the overhead accrues.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from unittest import mock

import httpx2
import openai

from metricaos_sdk import Meter
from metricaos_sdk.testing import anthropic_stream_events, chat_chunk, chat_completion, sse
from metricaos_sdk.wrappers import hooks

if TYPE_CHECKING:
    import anthropic

MODEL = "gpt-4.1-mini"
MESSAGES = [{"role": "user", "content": "Where is my order?"}]
USAGE = {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500,
         "prompt_tokens_details": {"cached_tokens": 1024}, "completion_tokens_details": {"reasoning_tokens": 0}}


# OpenAI's own host (a MockTransport answers, nothing leaves the process): priced as OpenAI, as the
# calls being measured are; an unknown host would be recorded as openai-compatible and unpriced.
OPENAI_URL = "https://api.openai.com/v1"


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
        return httpx2.Response(200, stream=_Body(plain), headers={"content-type": "application/json"})

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


class _Body(httpx2.SyncByteStream):
    """A whole body, read as a stream: what a network transport hands the SDK."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __iter__(self):
        yield self.data


class _Events(httpx2.SyncByteStream):
    def __init__(self, data: bytes) -> None:
        self.events = [e + b"\n\n" for e in data.split(b"\n\n") if e]

    def __iter__(self):
        yield from self.events


def client_for(handler) -> openai.OpenAI:
    return openai.OpenAI(api_key="sk-bench", base_url=OPENAI_URL,
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


def compare(name: str, fn, bare, wrapped, calls: int) -> dict:
    warm_up = max(calls // 20, 5)
    t0 = time.perf_counter_ns()
    for _ in range(warm_up):
        fn(bare)
        fn(wrapped)
    # Rounds of ~5 ms: short enough that drift rarely splits a pair, long enough to time.
    per_round = min(max(round(5e6 * warm_up / (time.perf_counter_ns() - t0) * 2), 1), 10)
    bare_means, wrapped_means, differences = [], [], []
    for i in range(max(calls // per_round, 20)):
        timed = {}
        for client in (bare, wrapped) if i % 2 == 0 else (wrapped, bare):  # neither always goes first
            t0 = time.perf_counter_ns()
            for _ in range(per_round):
                fn(client)
            timed[client is wrapped] = (time.perf_counter_ns() - t0) / per_round / 1000
        bare_means.append(timed[False])
        wrapped_means.append(timed[True])
        differences.append(timed[True] - timed[False])
    b, w, d = statistics.median(bare_means), statistics.median(wrapped_means), statistics.median(differences)
    q1, _, q3 = statistics.quantiles(differences, n=4)
    row = {"case": name, "bare_us": round(b, 1), "wrapped_us": round(w, 1), "overhead_us": round(d, 1),
           "overhead_pct": round(d / b * 100, 2), "overhead_iqr_us": [round(q1, 1), round(q3, 1)]}
    print(f"{name:<34} bare {b:7.1f} µs   wrapped {w:7.1f} µs   overhead {d:6.1f} µs ({row['overhead_pct']:+6.2f} %)"
          f"   IQR {q1:6.1f} .. {q3:6.1f} µs")
    return row


class NullSink:
    """Drops every event: the meter's own work without a sink's."""

    def write(self, events) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def _no_finish(call, outcome) -> None:
    pass


# Where metering stops, by stage. Each cut replaces one internal step with nothing (mock.patch.object, so
# a renamed internal fails loudly rather than measuring nothing): the overhead of a stage's row includes
# every stage above it.
STAGES = {
    "hook only": "no call opened: the hooks pass the request through",
    "call opened and closed": "attribution, id, timestamp, quota check; the response is not read",
    "usage read": "the response body observed and its usage read; no event built",
    "event built and priced": "the UsageEvent built, priced and settled; a sink that drops it",
    "event recorded": "as shipped: journaled before the call returns, committed by the writer thread",
}


@contextlib.contextmanager
def metered_up_to(stage: str, handler, directory: Path) -> Iterator[openai.OpenAI]:
    meter = Meter(directory / "stages.db") if stage == "event recorded" else Meter(sink=NullSink())
    with contextlib.ExitStack() as cuts:
        if stage == "hook only":
            cuts.enter_context(mock.patch.object(meter, "_begin_call", lambda *args, **kwargs: None))
        if stage == "call opened and closed":
            cuts.enter_context(mock.patch.object(hooks, "observe_response", lambda call, response, retries: None))
        if stage in ("call opened and closed", "usage read"):
            cuts.enter_context(mock.patch.object(meter, "_finish_call", _no_finish))
        client = meter.wrap(client_for(handler))  # after the cuts: the hook binds _begin_call when installed
        with meter.context(customer_id="cus_bench", feature="bench"):
            yield client
    meter.close()


def stages(calls: int, chunks: int) -> list[dict]:
    handler = make_handler(chunks)
    bare, rows = client_for(handler), []
    print("plain chat call, metered up to each stage:")
    with tempfile.TemporaryDirectory() as tmp:
        for stage, what in STAGES.items():
            with metered_up_to(stage, handler, Path(tmp)) as wrapped:
                row = compare(f"  {stage}", plain_call, bare, wrapped, calls)
            rows.append({**row, "case": f"plain, {stage}", "stage": what})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--chunks", type=int, default=200)
    parser.add_argument("--stages", action="store_true", help="also measure the plain call metered up to each stage")
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
    if args.stages:
        rows += stages(args.calls, args.chunks)
    if args.json:
        print(json.dumps(rows))


if __name__ == "__main__":
    main()
