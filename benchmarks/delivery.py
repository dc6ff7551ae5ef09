"""Delivery throughput and what it costs the caller: events/s from producer threads into the outbox and out to a
local receiver (and into PostgreSQL), and a metered call's time with delivery running vs not.

    python benchmarks/delivery.py [--events 100000] [--threads 8] [--batch 500] [--postgres URL] [--json PATH]

- **throughput**: ``--threads`` producers write ``--events`` events through the SQLite sink (journal, commit)
  while one delivery thread sends them in batches of ``--batch`` to an HTTP receiver on 127.0.0.1 (our JSON
  schema) — and, with ``--postgres``, into PostgreSQL. Reported: events/s into the outbox (until committed),
  events/s delivered end to end (until the receiver has them all), and the check that nothing was lost or
  doubled.
- **caller**: a real ``openai`` client on an in-process simulated provider, metered with the SQLite sink, timed
  call by call in rotating rounds: without delivery, with delivery to the receiver running (events flowing
  out), and with the receiver down (connections refused, retried with back-off); the median per-call
  difference is what delivery adds to the caller (it should be noise: the call only commits locally).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from metricaos_sdk import Meter, SQLiteSink, UsageEvent  # noqa: E402
from metricaos_sdk.delivery import HTTPJSON, Delivery  # noqa: E402
from metricaos_sdk.testing import SimulatedOpenAI  # noqa: E402

RECEIVER = r"""
import json, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
ids, received, lock = set(), [0], threading.Lock()
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args): pass
    def do_GET(self):
        with lock:
            body = json.dumps({"unique": len(ids), "received": received[0]}).encode()
        self.send_response(200); self.send_header("content-length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def do_POST(self):
        events = json.loads(self.rfile.read(int(self.headers["content-length"])))["events"]
        with lock:
            ids.update(e["id"] for e in events); received[0] += len(events)
        self.send_response(200); self.send_header("content-length", "0"); self.end_headers()
server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


class Counting:
    """A receiver in a process of its own (as a real one is), counting the distinct event ids it was sent."""

    def __init__(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.url = f"http://127.0.0.1:{int(self.process.stdout.readline())}/ingest"

    def stats(self) -> dict[str, int]:
        with urllib.request.urlopen(self.url) as answer:
            return json.loads(answer.read())  # type: ignore[no-any-return]

    def close(self) -> None:
        self.process.kill()
        self.process.wait()
        assert self.process.stdout is not None
        self.process.stdout.close()


def event(i: int) -> UsageEvent:
    return UsageEvent(timestamp=datetime.now(timezone.utc), event_type="chat_completion", provider="openai",
                      endpoint="/chat/completions", model="gpt-4.1-mini", customer_id=f"cus_{i % 50}",
                      feature="bench", input_tokens=1200, output_tokens=300, total_tokens=1500,
                      cost_usd=Decimal("0.00096"), price_status="priced")


def throughput(events: int, threads: int, batch: int, destinations: list[Any], directory: Path) -> dict[str, Any]:
    sink = SQLiteSink(directory / "throughput.db")
    delivery = Delivery(str(sink.database.path), destinations)
    sink.on_commit.append(delivery.notify)
    delivery.start()
    per_thread = events // threads
    started = time.perf_counter()

    def produce() -> None:
        for i in range(per_thread):
            sink.write([event(i)])

    workers = [threading.Thread(target=produce) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    sink.flush(timeout=300)
    committed = time.perf_counter() - started
    total = per_thread * threads
    drained = delivery.flush(timeout=600)
    delivered = time.perf_counter() - started
    delivery.stop(5)
    sink.close()
    return {"events": total, "threads": threads, "batch": batch, "drained": drained,
            "into_outbox_per_s": round(total / committed), "delivered_per_s": round(total / delivered),
            "seconds": round(delivered, 2)}


def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on: a receiver that is down (connections refused)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def caller(calls: int, receiver: Counting, directory: Path) -> dict[str, Any]:
    """Per-call time of a metered call without delivery, with delivery running to a receiver that takes the
    events, and with the receiver down (every delivery refused a connection, retried with back-off)."""
    ask = {"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "Where is my order?"}]}
    meters = {
        "none": Meter(directory / "caller-plain.db"),
        "delivering": Meter(directory / "caller-delivering.db", deliver_to=[HTTPJSON(receiver.url, name="bench")]),
        "down": Meter(directory / "caller-down.db",
                      deliver_to=[HTTPJSON(f"http://127.0.0.1:{closed_port()}/ingest", name="down")]),
    }
    clients = {k: m.wrap(SimulatedOpenAI().client()) for k, m in meters.items()}
    for client in clients.values():
        for _ in range(50):
            client.chat.completions.create(**ask)
    diffs: dict[str, list[float]] = {"delivering": [], "down": []}
    names = list(clients)
    for round_ in range(calls // 30):
        order = names[round_ % 3:] + names[:round_ % 3]  # each arm first in turn
        times: dict[str, list[float]] = {k: [] for k in names}
        for name in order:
            client = clients[name]
            for _ in range(10):
                t = time.perf_counter()
                client.chat.completions.create(**ask)
                times[name].append(time.perf_counter() - t)
        for name in diffs:
            diffs[name].append(statistics.median(times[name]) - statistics.median(times["none"]))
    delivered = meters["delivering"].flush(timeout=60)
    [down] = meters["down"].health().deliveries
    held = down.queued
    for meter in meters.values():
        meter.close()
    out: dict[str, Any] = {"calls": calls, "delivered": delivered, "held_while_down": held}
    for name, values in diffs.items():
        quartiles = statistics.quantiles(values, n=4) if len(values) >= 4 else [0.0, 0.0, 0.0]
        out[name] = {"added_us_median": round(statistics.median(values) * 1e6, 1),
                     "added_us_iqr": [round(q * 1e6, 1) for q in (quartiles[0], quartiles[2])]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--calls", type=int, default=2000, help="calls timed for the caller's cost")
    parser.add_argument("--postgres", default=None, help="a PostgreSQL URL: measure delivery into it too")
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args()
    results: dict[str, Any] = {}
    receiver = Counting()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        http = throughput(args.events, args.threads, args.batch,
                          [HTTPJSON(receiver.url, max_batch=args.batch, name="http")], directory)
        stats = receiver.stats()
        http["unique_at_receiver"], http["received"] = stats["unique"], stats["received"]
        results["http"] = http
        print(f"HTTP receiver: {http['events']:,} events from {args.threads} threads, batches of {args.batch}: "
              f"{http['into_outbox_per_s']:,}/s into the outbox, {http['delivered_per_s']:,}/s delivered end to end "
              f"({http['seconds']} s); at the receiver {http['unique_at_receiver']:,} distinct of {http['received']:,} "
              f"received")
        if args.postgres:
            from metricaos_sdk.delivery.postgres import PostgreSQL

            table = f"bench_{int(time.time())}"
            pg = throughput(args.events, args.threads, args.batch,
                            [PostgreSQL(args.postgres, table=table, max_batch=args.batch)], directory / "pg")
            results["postgres"] = pg
            print(f"PostgreSQL: {pg['delivered_per_s']:,}/s delivered end to end ({pg['seconds']} s)")
        results["caller"] = cost = caller(args.calls, receiver, directory)
        for arm, label in (("delivering", "delivery running"), ("down", "the receiver down")):
            added = cost[arm]
            print(f"caller: a metered call with {label} costs {added['added_us_median']:+} µs vs no delivery (median "
                  f"of paired rounds; IQR {added['added_us_iqr'][0]:+} to {added['added_us_iqr'][1]:+} µs) over "
                  f"{args.calls:,} calls")
        print(f"caller: with the receiver down the outbox held {cost['held_while_down']:,} events, none lost")
    receiver.close()
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
