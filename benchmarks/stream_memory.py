"""Process memory while streaming: bare vs wrapped openai client, one long stream and many short ones.

    python benchmarks/stream_memory.py [--chunks 1000000] [--variant long-sqlite ...] [--per-stream 200]
                                       [--read lines|objects] [--piece event|BYTES] [--jobs 2] [--json PATH]

Each variant runs in a fresh process: a real ``openai.OpenAI`` client talks to an in-process
``httpx2.MockTransport`` whose bodies are byte streams handed over piece by piece as a network transport
does (a body handed over already read would take a shortcut production never takes). It streams
``--chunks`` content chunks in total, either in one long stream (``long-*``) or in many streams of
``--per-stream`` chunks each (``many-*``, one call per stream, each response with its own id), with the
client bare, wrapped with ``Meter(sink=MemorySink())``, or wrapped with the default SQLite sink in a temp
dir (inside ``meter.context(customer_id=..., feature=...)``, as ``overhead.py``). After one warm-up stream
the process's RSS is read (``/proc/self/status``, else ``/proc/self/statm``, else ``resource``'s peak) as
the baseline, then again after every 100k chunks, each time after ``gc.collect()`` (so what is counted is
memory kept, not garbage not yet collected).

How to read it: each row gives RSS above its own baseline at each checkpoint, and the slope in bytes per
chunk, fitted by least squares over the checkpoints after the first (the first interval is a warm-up:
first arenas, buffers reaching their steady size, tiktoken's encoding loaded if it is on disk). ``anon`` is
the part of the slope in anonymous memory (the heaps); ``file`` is the part in mapped files, here the
SQLite sink's memory-mapped journal segments, whose pages count in RSS until a segment is committed and
deleted. ``B/call`` is the slope times the chunks per stream: in the ``many-*`` shape, growth per call
shows up as growth per chunk. A bare row is the floor (the provider SDK alone, with the same bodies).

``--read lines`` (the default) reads each stream through ``with_streaming_response`` and ``iter_lines()``:
every byte passes through the meter's tap, and no per-chunk objects are built, so a million chunks take
about a minute a variant. ``--read objects`` iterates ``ChatCompletionChunk`` objects as most code does;
the SDK's own model building makes it ~10x slower (use fewer ``--chunks``). ``--piece event`` (default)
hands over one SSE event per read, as servers flush them; ``--piece 16384`` hands over fixed-size reads
that split events, as a busy connection delivers them. ``--jobs`` runs that many variants at once (each in
its own process: memory figures do not depend on it, timings do).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import openai

from metricaos_sdk import MemorySink, Meter
from metricaos_sdk.testing import chat_chunk, sse

MODEL = "gpt-4.1-mini"
MESSAGES = [{"role": "user", "content": "Where is my order?"}]
USAGE = {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500,
         "prompt_tokens_details": {"cached_tokens": 1024}, "completion_tokens_details": {"reasoning_tokens": 0}}
VARIANTS = ("long-bare", "long-memory", "long-sqlite", "many-bare", "many-memory", "many-sqlite")
_ID = "chatcmpl-0000000000000000"  # replaced per call by an id of the same length
_MARK = "@@N@@"


# -- the mocked provider ------------------------------------------------------------------------------------
# OpenAI's own host (a MockTransport answers, nothing leaves the process): priced as OpenAI, as the
# calls being measured are; an unknown host would be recorded as openai-compatible and unpriced.
OPENAI_URL = "https://api.openai.com/v1"


def _events(chunks: int, include_usage: bool, call: int) -> Iterator[bytes]:
    """One chat stream, event by event: a role chunk, ``chunks`` content chunks, the usage chunk (when asked
    for), ``[DONE]``. Built from templates, so a million chunks are never held at once."""
    rid = f"chatcmpl-{call:016d}".encode()

    def one(**kwargs: object) -> bytes:
        return sse([chat_chunk(model=MODEL, id=_ID, with_usage_field=include_usage, **kwargs)]).replace(
            _ID.encode(), rid)

    yield one(delta={"role": "assistant", "content": ""})
    head, tail = one(delta={"content": f" w{_MARK}"}).split(_MARK.encode())
    for i in range(chunks):
        yield b"%s%d%s" % (head, i, tail)
    if include_usage:
        yield sse([chat_chunk(model=MODEL, id=_ID, delta=None, usage=USAGE)]).replace(_ID.encode(), rid)
    yield b"data: [DONE]\n\n"


class _Body(httpx2.SyncByteStream):
    """A streamed body as a network transport hands it over: one SSE event per read, or ``piece`` bytes."""

    def __init__(self, events: Iterator[bytes], piece: int | None) -> None:
        self.events = events
        self.piece = piece

    def __iter__(self) -> Iterator[bytes]:
        if self.piece is None:
            yield from self.events
            return
        buffer = bytearray()
        for event in self.events:
            buffer += event
            while len(buffer) >= self.piece:
                yield bytes(buffer[:self.piece])
                del buffer[:self.piece]
        if buffer:
            yield bytes(buffer)


def make_handler(chunks_per_call: int, piece: int | None):
    calls = iter(range(1, 1 << 62))

    def handler(request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        include = bool((body.get("stream_options") or {}).get("include_usage"))
        return httpx2.Response(200, stream=_Body(_events(chunks_per_call, include, next(calls)), piece),
                               headers={"content-type": "text/event-stream; charset=utf-8"})

    return handler


# -- one variant, in its own process ------------------------------------------------------------------------
def memory() -> dict[str, int]:
    """Resident memory now, in bytes: total, anonymous, file-backed (peak RSS where /proc is missing)."""
    try:
        with open("/proc/self/status") as f:
            fields = {k: int(v.split()[0]) * 1024 for k, _, v in (line.partition(":") for line in f)
                      if k in ("VmRSS", "RssAnon", "RssFile", "RssShmem")}
        if "RssAnon" in fields:
            return {"rss": fields["VmRSS"], "anon": fields["RssAnon"],
                    "file": fields.get("RssFile", 0) + fields.get("RssShmem", 0)}
    except OSError:
        pass
    try:
        with open("/proc/self/statm") as f:
            return {"rss": int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")}
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return {"rss": peak if sys.platform == "darwin" else peak * 1024, "peak": 1}


def _stream(client: openai.OpenAI, read: str) -> Iterator[None]:
    """Yield once per content chunk the caller receives."""
    if read == "objects":
        for chunk in client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True):
            if chunk.choices and chunk.choices[0].delta.content:
                yield None
        return
    with client.chat.completions.with_streaming_response.create(model=MODEL, messages=MESSAGES, stream=True) as r:
        for line in r.iter_lines():
            if '"content":" ' in line:
                yield None


def run_variant(variant: str, chunks: int, per_stream: int, every: int, read: str, piece: int | None) -> dict:
    shape, kind = variant.split("-")
    per_call = chunks if shape == "long" else per_stream
    client = openai.OpenAI(api_key="sk-bench", base_url=OPENAI_URL,
                           http_client=httpx2.Client(transport=httpx2.MockTransport(make_handler(per_call, piece))))
    warm = openai.OpenAI(api_key="sk-bench", base_url=OPENAI_URL,
                         http_client=httpx2.Client(transport=httpx2.MockTransport(make_handler(per_stream, piece))))
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        if kind != "bare":
            meter = Meter(sink=MemorySink()) if kind == "memory" else Meter(Path(tmp) / "stream_memory.db")
            stack.callback(meter.close)
            meter.wrap(client)
            meter.wrap(warm)
            stack.enter_context(meter.context(customer_id="cus_bench", feature="bench"))
        for _ in _stream(warm, read):  # imports, schemas, the writer thread, the first journal segment
            pass
        gc.collect()
        checkpoints = [{"chunks": 0, **memory()}]
        seen, next_at, t0 = 0, every, time.perf_counter()
        while seen < chunks:
            for _ in _stream(client, read):
                seen += 1
                if seen == next_at:
                    gc.collect()
                    checkpoints.append({"chunks": seen, **memory()})
                    next_at += every
        seconds = time.perf_counter() - t0
    return {"variant": variant, "shape": shape, "client": kind, "chunks": seen, "chunks_per_call": per_call,
            "per_stream": per_stream, "read": read, "piece": piece or "event", "seconds": round(seconds, 1),
            "tiktoken_loaded": "tiktoken" in sys.modules, "checkpoints": checkpoints}


# -- the table ----------------------------------------------------------------------------------------------
def slope(points: list[tuple[int, int]]) -> float | None:
    """Least-squares slope of bytes over chunks."""
    if len(points) < 2:
        return None
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else None


def summarize(row: dict) -> dict:
    fitted = row["checkpoints"][1:]  # after the first interval, the warm-up
    for key in ("rss", "anon", "file"):
        if all(key in c for c in fitted):
            s = slope([(c["chunks"], c[key]) for c in fitted])
            row[f"{key}_bytes_per_chunk"] = None if s is None else round(s, 2)
    s = row.get("rss_bytes_per_chunk")
    row["rss_bytes_per_call"] = None if s is None or row["shape"] == "long" else round(s * row["chunks_per_call"])
    return row


def print_table(rows: list[dict]) -> None:
    marks = [c["chunks"] for c in rows[0]["checkpoints"][1:]]
    head = f"{'variant':<12} {'base MiB':>8} " + " ".join(f"{_k(m):>7}" for m in marks)
    print("RSS above each variant's baseline after warm-up, KiB, at every checkpoint (chunks); slope in bytes/chunk")
    print(f"{head}  {'B/chunk':>8} {'anon':>6} {'file':>6} {'B/call':>7}")
    for row in rows:
        base = row["checkpoints"][0]["rss"]
        deltas = " ".join(f"{(c['rss'] - base) / 1024:+7.0f}" for c in row["checkpoints"][1:])
        print(f"{row['variant']:<12} {base / 2**20:8.1f} {deltas}  {_f(row.get('rss_bytes_per_chunk')):>8} "
              f"{_f(row.get('anon_bytes_per_chunk')):>6} {_f(row.get('file_bytes_per_chunk')):>6} "
              f"{_f(row.get('rss_bytes_per_call'), 0):>7}")
    r = rows[0]
    timings = ", ".join(f"{x['variant']} {x['seconds']}" for x in rows)
    print(f"(many-*: {r['per_stream']} chunks per call; read={r['read']}, piece={r['piece']}; seconds: {timings})")
    if any(x["tiktoken_loaded"] and x["client"] != "bare" for x in rows):
        print("tiktoken was loaded in a wrapped variant: its encoding (~80 MB of RSS) is part of its first interval")


def _k(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


def _f(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=1_000_000, help="content chunks streamed per variant")
    parser.add_argument("--variant", action="append", choices=VARIANTS, help="run only these (repeatable)")
    parser.add_argument("--per-stream", type=int, default=200, help="chunks per stream in the many-* shape")
    parser.add_argument("--every", type=int, default=100_000, help="chunks between RSS readings")
    parser.add_argument("--read", choices=("lines", "objects"), default="lines")
    parser.add_argument("--piece", default="event", help="'event' (one SSE event per read) or a read size in bytes")
    parser.add_argument("--jobs", type=int, default=2, help="variants run at once, each in its own process")
    parser.add_argument("--json", metavar="PATH", help="also write the rows, with every checkpoint, to PATH")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    piece = None if args.piece == "event" else int(args.piece)
    every = max(min(args.every, args.chunks // 2), 1)
    if args.child:
        print(json.dumps(run_variant(args.child, args.chunks, args.per_stream, every, args.read, piece)))
        return

    def child(variant: str) -> dict:
        command = [sys.executable, __file__, "--child", variant, "--chunks", str(args.chunks), "--per-stream",
                   str(args.per_stream), "--every", str(every), "--read", args.read, "--piece", args.piece]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise SystemExit(f"{variant} failed:\n{result.stderr}")
        if "metricaos_sdk:" in result.stderr:  # a metering fault would make the figures meaningless
            print(f"{variant}: the meter logged on stderr:\n{result.stderr}", file=sys.stderr)
        return json.loads(result.stdout.splitlines()[-1])

    variants = args.variant or list(VARIANTS)
    with concurrent.futures.ThreadPoolExecutor(max(args.jobs, 1)) as pool:
        rows = [summarize(row) for row in pool.map(child, variants)]
    print_table(rows)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
