"""One variant of the suite's call cases, alone in its own process: ``python -m benchmarks`` drives one per variant.

    python benchmarks/variants.py VARIANT CHUNKS     # then JSON commands on stdin, one JSON answer a line

A variant is the client as the caller builds it — bare, metered by us, a floor (a plain httpx2 response hook),
or bare with one peer's instrumentation installed — always over ``overhead.py``'s mocked transport, so every
variant is served the same bytes. Peers patch the ``openai`` / ``anthropic`` modules globally, hence one process
each: they never stack. Their exporters stay in memory (a ``BatchSpanProcessor`` in front of an
``InMemorySpanExporter``, as a deployment batches), Langfuse's base URL is a closed port on 127.0.0.1, and
``count`` flushes and returns how many spans / events the variant produced, so a peer that produced nothing is
seen as broken rather than fast.

Commands: ``{"op": "run", "case": C, "calls": N}`` -> per-call wall ns, caller-thread and process CPU ns;
``{"op": "threads", "threads": T, "seconds": S}`` -> calls made by T threads sharing one client in S seconds;
``{"op": "count"}`` -> records produced so far; ``{"op": "quit"}``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("LANGFUSE_BASE_URL", "http://127.0.0.1:9")  # nothing listens there: nothing leaves

import httpx2  # noqa: E402
import openai  # noqa: E402
import overhead  # noqa: E402

CASES = ("chat-sync", "chat-async", "chat-stream", "responses-stream", "anthropic-stream")
VARIANTS = ("bare", "metricaos", "floor-noop-hook", "floor-usage-hook", "otel-openai-v2", "openllmetry", "langfuse")
PEERS = {  # variant -> (module that must import, the pip package, the cases it instruments)
    "otel-openai-v2": ("opentelemetry.instrumentation.openai_v2", "opentelemetry-instrumentation-openai-v2",
                       ("chat-sync", "chat-async", "chat-stream", "responses-stream")),
    "openllmetry": ("opentelemetry.instrumentation.openai", "opentelemetry-instrumentation-openai", CASES),
    "langfuse": ("langfuse.openai", "langfuse", ("chat-sync", "chat-async", "chat-stream", "responses-stream")),
}
FLOORS = ("floor-noop-hook", "floor-usage-hook")


def covers(variant: str, case: str) -> bool:
    if variant == "openllmetry" and case == "anthropic-stream":
        return _installed("opentelemetry.instrumentation.anthropic")
    return variant not in PEERS or case in PEERS[variant][2]


def _installed(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def missing(variant: str) -> str | None:
    """Why ``variant`` cannot run here, or None."""
    if variant in PEERS and not _installed(PEERS[variant][0]):
        return f"{PEERS[variant][1]} is not installed (pip install -e '.[bench]')"
    return None


# -- the floor: one httpx2 response hook, doing nothing or reading the usage ------------------------------------
class _Counter:
    def __init__(self) -> None:
        self.n = 0


class _UsageTap:
    """Passes a body through and parses the last ``usage`` object it saw once the body ends: the least a metering
    hook that reads usage must do."""

    def __init__(self, stream: Any, seen: _Counter) -> None:
        self.stream, self.seen, self.last, self.usage, self.finished = stream, seen, b"", None, False

    def _look(self, piece: bytes) -> None:
        if b'"usage": {' in piece or b'"usage":{' in piece:
            self.last = piece

    def _done(self) -> None:
        if self.finished:  # once: at the body's end, or on close when the SDK stops reading at ``[DONE]``
            return
        self.finished = True
        self.seen.n += 1
        if self.last:  # a chat stream asked without include_usage has none
            data = self.last if self.last.lstrip().startswith(b"{") else next(
                line[5:] for line in self.last.split(b"\n") if line.startswith(b"data:"))
            event = json.loads(data)
            self.usage = event.get("usage") or (event.get("response") or {}).get("usage")


class _SyncTap(_UsageTap, httpx2.SyncByteStream):
    def __iter__(self):
        for piece in self.stream:
            self._look(piece)
            yield piece
        self._done()

    def close(self) -> None:
        self._done()
        self.stream.close()


class _AsyncTap(_UsageTap, httpx2.AsyncByteStream):
    async def __aiter__(self):
        async for piece in self.stream:
            self._look(piece)
            yield piece
        self._done()

    async def aclose(self) -> None:
        self._done()
        await self.stream.aclose()


def _hooks(variant: str, seen: _Counter, is_async: bool) -> dict[str, list[Callable[..., Any]]]:
    def noop(response: httpx2.Response) -> None:
        seen.n += 1

    def tap(response: httpx2.Response) -> None:
        response.stream = (_AsyncTap if is_async else _SyncTap)(response.stream, seen)

    hook = noop if variant == "floor-noop-hook" else tap
    if is_async:
        async def ahook(response: httpx2.Response) -> None:
            hook(response)

        return {"response": [ahook]}
    return {"response": [hook]}


class _Async(httpx2.AsyncByteStream):
    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces

    async def __aiter__(self):
        for piece in self.pieces:
            yield piece


def _async_handler(handler: Callable[[httpx2.Request], httpx2.Response]):
    def serve(request: httpx2.Request) -> httpx2.Response:  # the sync handler's bytes, as an async stream
        response = handler(request)
        return httpx2.Response(response.status_code, headers=response.headers, stream=_Async(list(response.stream)))

    return serve


# -- the variant ------------------------------------------------------------------------------------------------
class Variant:
    def __init__(self, name: str, chunks: int) -> None:
        self.name, self.seen = name, _Counter()
        self.handler, self.a_handler = overhead.make_handler(chunks), overhead.make_anthropic_handler(chunks)
        self.meter: Any = None
        self.count: Callable[[], int] = lambda: self.seen.n
        self.clients: dict[str, Any] = {}
        self.loop = asyncio.new_event_loop()
        if name == "metricaos":
            from metricaos_sdk import Meter

            self.meter = Meter(Path(tempfile.mkdtemp()) / "bench.db")  # the default: SQLite, durable per call
            self.meter.context(customer_id="cus_bench", feature="bench").__enter__()
            self.count = lambda: (self.meter.flush(), len(self.meter.events()))[1]
        elif name in PEERS:
            self._install_peer()

    def _tracer(self) -> Any:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        exporter, provider = InMemorySpanExporter(), TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(exporter))
        self.count = lambda: (provider.force_flush(), len(exporter.get_finished_spans()))[1]
        return provider, exporter

    def _install_peer(self) -> None:
        if self.name == "otel-openai-v2":
            from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

            OpenAIInstrumentor().instrument(tracer_provider=self._tracer()[0])
        elif self.name == "openllmetry":
            from opentelemetry.instrumentation.openai import OpenAIInstrumentor

            provider = self._tracer()[0]
            OpenAIInstrumentor().instrument(tracer_provider=provider)
            if _installed("opentelemetry.instrumentation.anthropic"):
                from opentelemetry.instrumentation.anthropic import AnthropicInstrumentor

                AnthropicInstrumentor().instrument(tracer_provider=provider)
        elif self.name == "langfuse":
            import langfuse.openai  # noqa: F401  (the drop-in: patches the openai module on import)
            from langfuse import Langfuse
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

            exporter = InMemorySpanExporter()
            client = Langfuse(public_key="pk-lf-bench", secret_key="sk-lf-bench", span_exporter=exporter,
                              tracer_provider=TracerProvider())
            self.count = lambda: (client.flush(), len(exporter.get_finished_spans()))[1]

    def client(self, case: str) -> Any:
        if case not in self.clients:
            is_async = case == "chat-async"
            hooks = _hooks(self.name, self.seen, is_async) if self.name in FLOORS else None
            if case == "anthropic-stream":
                import anthropic

                http = httpx2.Client(transport=httpx2.MockTransport(self.a_handler), event_hooks=hooks)
                made: Any = anthropic.Anthropic(api_key="sk-ant-bench", base_url="https://bench.invalid", http_client=http)
            elif is_async:
                http = httpx2.AsyncClient(transport=httpx2.MockTransport(_async_handler(self.handler)), event_hooks=hooks)
                made = openai.AsyncOpenAI(api_key="sk-bench", base_url=overhead.OPENAI_URL, http_client=http)
            else:
                http = httpx2.Client(transport=httpx2.MockTransport(self.handler), event_hooks=hooks)
                made = openai.OpenAI(api_key="sk-bench", base_url=overhead.OPENAI_URL, http_client=http)
            self.clients[case] = self.meter.wrap(made) if self.meter is not None else made
        return self.clients[case]

    def run(self, case: str, calls: int) -> dict[str, Any]:
        client, wall = self.client(case), []
        p0, t0 = time.process_time_ns(), time.thread_time_ns()
        if case == "chat-async":
            async def batch() -> None:
                for _ in range(calls):
                    s = time.perf_counter_ns()
                    await client.chat.completions.create(model=overhead.MODEL, messages=overhead.MESSAGES)
                    wall.append(time.perf_counter_ns() - s)

            self.loop.run_until_complete(batch())
        else:
            call = CALLS[case]
            for _ in range(calls):
                s = time.perf_counter_ns()
                call(client)
                wall.append(time.perf_counter_ns() - s)
        return {"wall_ns": wall, "thread_ns": time.thread_time_ns() - t0, "process_ns": time.process_time_ns() - p0}

    def threads(self, threads: int, seconds: float) -> dict[str, Any]:
        client, done, start = self.client("chat-sync"), [0] * threads, threading.Barrier(threads + 1)
        stop = [0.0]

        def work(i: int) -> None:
            start.wait()
            n = 0
            while time.perf_counter() < stop[0]:
                overhead.plain_call(client)
                n += 1
            done[i] = n

        pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
        for t in pool:
            t.start()
        stop[0] = time.perf_counter() + seconds
        t0 = time.perf_counter()
        start.wait()
        for t in pool:
            t.join()
        return {"calls": sum(done), "seconds": time.perf_counter() - t0}


CALLS = {"chat-sync": overhead.plain_call, "chat-stream": overhead.stream_call,
         "responses-stream": overhead.responses_stream_call, "anthropic-stream": overhead.anthropic_stream_call}


def main() -> None:
    variant = Variant(sys.argv[1], int(sys.argv[2]))
    print(json.dumps({"ready": variant.name}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["op"] == "quit":
            break
        if cmd["op"] == "run":
            answer: Any = variant.run(cmd["case"], cmd["calls"])
        elif cmd["op"] == "threads":
            answer = variant.threads(cmd["threads"], cmd["seconds"])
        else:
            answer = {"count": variant.count()}
        print(json.dumps(answer), flush=True)
    if variant.meter is not None:
        variant.meter.close()


if __name__ == "__main__":
    main()
