"""The benchmark suite in one run: ours, the floor and the peers side by side on the same mocked provider.

    python -m benchmarks [--quick] [--json PATH] [--calls 2000] [--chunks 200] [--seconds 1.0]

Call cases (plain chat sync and async, a chat stream, a Responses stream, an Anthropic stream) run every variant
of ``variants.py`` in a process of its own — bare, metered by us, the floor (one no-op httpx2 response hook; one
that also parses the usage) and each peer that is installed — and interleave them in short rounds, A B C … then
… C B A, so drift on the machine hits all. Per variant: median and p95 wall time per call, CPU per call in the
caller's thread (``time.thread_time``) and in the whole process (``time.process_time``: background exporters and
writers included), and the overhead against bare. Each variant's spans / events are counted after each case:
one per call is "ok", anything else is reported as broken (a peer that records nothing is not fast).

Also: calls/s through one client shared by 1, 8 and 32 threads; the import time of ``metricaos_sdk`` (and of
each peer) after ``import openai``, in fresh interpreters; price lookups, ours vs genai-prices ``calc_price``,
LiteLLM ``completion_cost`` and tokencost. ``--quick`` makes every case a few calls (CI: it runs everything and
asserts nothing about time). Peers: ``pip install -e '.[bench]'``; nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import variants  # noqa: E402

PACKAGES = ("metricaos-sdk", "openai", "anthropic", "httpx2", "httpx", "pydantic", "genai-prices", "litellm",
            "tokencost", "opentelemetry-api", "opentelemetry-sdk", "opentelemetry-instrumentation",
            "opentelemetry-instrumentation-openai-v2", "opentelemetry-util-genai",
            "opentelemetry-instrumentation-openai", "opentelemetry-instrumentation-anthropic", "langfuse", "wrapt")
CALL_CASES = {"chat-sync": "chat plain, sync", "chat-async": "chat plain, async", "chat-stream": "chat stream",
              "responses-stream": "responses stream", "anthropic-stream": "anthropic stream"}
THREADS = (1, 8, 32)
PEER_IMPORTS = {"otel-openai-v2": "opentelemetry.instrumentation.openai_v2",
                "openllmetry": "opentelemetry.instrumentation.openai", "langfuse": "langfuse.openai"}


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "implementation": platform.python_implementation(), "os": platform.platform(),
            "load_average_at_start": [round(x, 2) for x in load] if load else None}


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


class Worker:
    """One variant's process, driven a command at a time (only one worker runs at once)."""

    def __init__(self, name: str, chunks: int) -> None:
        self.name = name
        self.proc = subprocess.Popen([sys.executable, str(HERE / "variants.py"), name, str(chunks)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.ask_line()

    def ask_line(self) -> dict[str, Any]:
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line:
            self.proc.wait(timeout=30)
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise RuntimeError(f"{self.name} exited: {err.strip().splitlines()[-1] if err.strip() else 'no output'}")
        return json.loads(line)

    def ask(self, **cmd: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self.ask_line()

    def close(self) -> str:
        if self.proc.poll() is None:
            self.ask_quiet()
        err = self.proc.stderr.read() if self.proc.stderr else ""
        return err

    def ask_quiet(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def _check(row: dict[str, Any], produced: int, made: int, name: str) -> None:
    row["records"], row["calls_made"] = produced, made
    if name == "bare":
        row.update(records=None, status="ok")
    else:
        row["status"] = "ok" if produced == made else f"broken: {produced} records for {made} calls"


def _interleaved(workers: list[Worker], rounds: int, ask) -> dict[str, list[dict[str, Any]]]:
    got: dict[str, list[dict[str, Any]]] = {w.name: [] for w in workers}
    for i in range(rounds):
        for w in workers if i % 2 == 0 else workers[::-1]:
            got[w.name].append(ask(w))
    return got


def call_case(case: str, workers: list[Worker], calls: int, per_round: int) -> dict[str, Any]:
    warm = max(calls // 20, 3)
    before = {w.name: w.ask(op="count")["count"] for w in workers}
    for w in workers:
        w.ask(op="run", case=case, calls=warm)
    rounds = max(calls // per_round, 2)
    got = _interleaved(workers, rounds, lambda w: w.ask(op="run", case=case, calls=per_round))
    rows = []
    for w in workers:
        wall = sorted(ns / 1000 for batch in got[w.name] for ns in batch["wall_ns"])
        n = len(wall)
        row = {"variant": w.name, "median_us": round(statistics.median(wall), 1),
               "p95_us": round(wall[min(int(n * 0.95), n - 1)], 1),
               "thread_cpu_us": round(sum(b["thread_ns"] for b in got[w.name]) / n / 1000, 1),
               "process_cpu_us": round(sum(b["process_ns"] for b in got[w.name]) / n / 1000, 1), "calls": n}
        _check(row, w.ask(op="count")["count"] - before[w.name], warm + n, w.name)
        rows.append(row)
    bare = rows[0]
    for row in rows:
        row["value"], row["baseline_value"], row["unit"] = row["median_us"], bare["median_us"], "µs/call"
        for key in ("median_us", "thread_cpu_us", "process_cpu_us"):
            d = row[key] - bare[key]
            row[f"overhead_{key}"] = round(d, 1)
        row["overhead_pct"] = round(row["overhead_median_us"] / bare["median_us"] * 100, 1)
    return {"rows": rows, "rounds": rounds, "calls_per_round": per_round, "warm_up_calls": warm}


def threads_case(threads: int, workers: list[Worker], seconds: float, rounds: int) -> dict[str, Any]:
    before = {w.name: w.ask(op="count")["count"] for w in workers}
    # warm: threads started, caches filled
    warm = {w.name: w.ask(op="threads", threads=threads, seconds=min(seconds, 0.2))["calls"] for w in workers}
    got = _interleaved(workers, rounds, lambda w: w.ask(op="threads", threads=threads, seconds=seconds))
    rows = []
    for w in workers:
        made = sum(g["calls"] for g in got[w.name])
        rate = made / sum(g["seconds"] for g in got[w.name])
        row = {"variant": w.name, "calls_per_s": round(rate, 1), "value": round(rate, 1), "unit": "calls/s"}
        _check(row, w.ask(op="count")["count"] - before[w.name], warm[w.name] + made, w.name)
        rows.append(row)
    for row in rows:
        row["baseline_value"] = rows[0]["calls_per_s"]
        row["overhead_pct"] = round((1 - row["calls_per_s"] / rows[0]["calls_per_s"]) * 100, 1)
    return {"rows": rows, "rounds": rounds, "seconds_per_round": seconds}


def _import_us(statement: str) -> float:
    code = ("import time, openai\nt = time.perf_counter()\n" + statement + "\n"
            "print((time.perf_counter() - t) * 1e6)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1])


def import_case(repeats: int, peers: list[str]) -> dict[str, Any]:
    targets = {"bare": "pass", "metricaos": "import metricaos_sdk"}
    targets.update({p: f"import {PEER_IMPORTS[p]}" for p in peers if p in PEER_IMPORTS})
    times: dict[str, list[float]] = {name: [] for name in targets}
    for i in range(repeats):  # interleaved, as the calls are
        for name in targets if i % 2 == 0 else list(targets)[::-1]:
            times[name].append(_import_us(targets[name]))
    openai_us = statistics.median(
        float(subprocess.run([sys.executable, "-c", "import time; t = time.perf_counter(); import openai; "
                              "print((time.perf_counter() - t) * 1e6)"], capture_output=True, text=True,
                             check=True).stdout) for _ in range(repeats))
    rows = []
    for name, samples in times.items():
        extra = statistics.median(samples)
        rows.append({"variant": name, "after_openai_us": round(extra, 1), "value": round(openai_us + extra, 1),
                     "baseline_value": round(openai_us, 1), "unit": "µs to import, openai included",
                     "overhead_us": round(extra, 1), "overhead_pct": round(extra / openai_us * 100, 1),
                     "status": "ok"})
    trace = subprocess.run([sys.executable, "-X", "importtime", "-c", "import openai; import metricaos_sdk"],
                           capture_output=True, text=True, check=True).stderr
    started, ours = False, []
    for line in trace.splitlines():  # the modules metricaos_sdk pulled in, after openai's were loaded
        if "|" not in line or line.startswith("import time: self"):
            continue
        self_us, cumulative, name = (part.strip() for part in line.removeprefix("import time:").split("|"))
        if started:
            ours.append((int(self_us), name))
        elif name == "openai":
            started = True
    top = [{"module": n, "self_us": s} for s, n in sorted(ours, reverse=True)[:10]]
    return {"rows": rows, "repeats": repeats, "slowest_modules_after_openai": top}


def pricing_case(quick: bool) -> dict[str, Any]:
    from decimal import Decimal

    import pricing  # the shared inputs and timing loop of benchmarks/pricing.py

    from metricaos_sdk.pricing import RateTable

    label, provider, gp_provider, model, usage, batch, tier = pricing.CASES[0]
    table = RateTable.bundled()
    impls: dict[str, Any] = {"metricaos": lambda: table.price(provider, model, usage, at=pricing.AT).cost_usd}
    gu, skipped = pricing._genai_usage(usage), []
    impls["genai-prices"] = lambda: pricing.genai_prices.calc_price(
        gu, model, provider_id=gp_provider, genai_request_timestamp=pricing.AT).total_price
    try:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # the bundled map: never fetched
        import litellm

        response = litellm.ModelResponse(model=model, usage={
            "prompt_tokens": usage.input_tokens, "completion_tokens": usage.output_tokens,
            "total_tokens": usage.input_tokens + usage.output_tokens,
            "prompt_tokens_details": {"cached_tokens": usage.cached_input_tokens}})
        impls["litellm"] = lambda: litellm.completion_cost(completion_response=response, model=model,
                                                           custom_llm_provider="openai")
    except ImportError:
        skipped.append({"variant": "litellm", "reason": "litellm is not installed"})
    try:
        import tokencost

        impls["tokencost"] = lambda: (tokencost.calculate_cost_by_tokens(usage.input_tokens, model, "input")
                                      + tokencost.calculate_cost_by_tokens(usage.output_tokens, model, "output"))
    except ImportError:
        skipped.append({"variant": "tokencost", "reason": "tokencost is not installed"})
    costs = {name: Decimal(str(fn())) for name, fn in impls.items()}  # warm, and the answers to compare
    calls = {"metricaos": 2000, "genai-prices": 100, "litellm": 50, "tokencost": 500}
    rounds = 3 if quick else 15
    times: dict[str, list[float]] = {name: [] for name in impls}
    gc.disable()
    try:
        for i in range(rounds):
            for name in impls if i % 2 == 0 else list(impls)[::-1]:
                times[name].append(pricing._per_call_us(impls[name], calls[name] // (10 if quick else 1)))
    finally:
        gc.enable()
    ours = statistics.median(times["metricaos"])
    rows = [{"variant": name, "median_us": round(statistics.median(t), 2), "value": round(statistics.median(t), 2),
             "baseline_value": round(ours, 2), "unit": "µs/price", "times_ours": round(statistics.median(t) / ours, 1),
             "cost_usd": str(costs[name]), "agrees_with_ours": costs[name] == costs["metricaos"], "status": "ok"}
            for name, t in times.items()]
    return {"rows": rows, "skipped": skipped, "input": label, "rounds": rounds}


def _print(case: dict[str, Any]) -> None:
    print(f"\n{case['case']}")
    for row in case["rows"]:
        name = f"  {row['variant']:<18}"
        if case["kind"] == "call":
            print(f"{name} median {row['median_us']:8.1f} µs  p95 {row['p95_us']:8.1f}  thread CPU "
                  f"{row['thread_cpu_us']:8.1f}  process CPU {row['process_cpu_us']:8.1f}  overhead "
                  f"{row['overhead_median_us']:+7.1f} µs ({row['overhead_pct']:+6.1f} %)  {row['status']}")
        elif case["kind"] == "threads":
            print(f"{name} {row['calls_per_s']:9.1f} calls/s  ({-row['overhead_pct']:+6.1f} % vs bare)  {row['status']}")
        elif case["kind"] == "import":
            print(f"{name} {row['overhead_us'] / 1000:7.1f} ms after import openai ({row['overhead_pct']:+.0f} % of "
                  f"openai's {row['baseline_value'] / 1000:.0f} ms)")
        else:
            print(f"{name} {row['median_us']:9.2f} µs/price  {row['times_ours']:7.1f}x ours  cost {row['cost_usd']}"
                  f"{'' if row['agrees_with_ours'] else '  (differs from ours)'}")
    for skip in case.get("skipped", []):
        print(f"  {skip['variant']:<18} skipped: {skip['reason']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few calls per case: runs in seconds, for CI")
    parser.add_argument("--json", type=Path, help="write the machine, versions and every row here")
    parser.add_argument("--calls", type=int, default=2000, help="plain calls per variant (streams: a tenth)")
    parser.add_argument("--chunks", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=1.0, help="per round of the threaded case")
    args = parser.parse_args()
    calls, seconds, repeats = (20, 0.05, 3) if args.quick else (args.calls, args.seconds, 15)
    report: dict[str, Any] = {"command": " ".join(["python -m benchmarks", *sys.argv[1:]]), "machine": machine(),
                              "packages": versions(), "quick": args.quick, "chunks": args.chunks, "cases": []}
    print(f"{report['machine']['cpu']}, {report['machine']['cores']} cores, Python {report['machine']['python']}, "
          f"{report['machine']['os']}; load {report['machine']['load_average_at_start']}")
    workers, unavailable = [], []
    for name in variants.VARIANTS:
        reason = variants.missing(name)
        if reason is None:
            try:
                workers.append(Worker(name, args.chunks))
                continue
            except RuntimeError as e:
                reason = f"broken: {e}"
        unavailable.append({"variant": name, "reason": reason})
    try:
        for case, title in CALL_CASES.items():
            here = [w for w in workers if variants.covers(w.name, case)]
            n = calls if case.startswith("chat-") and "stream" not in case else max(calls // 10, 5)
            result = call_case(case, here, n, per_round=10 if n == calls and not args.quick else 2)
            skipped = unavailable + [{"variant": w.name, "reason": "does not instrument this API"}
                                     for w in workers if w not in here]
            chunked = f" of {args.chunks} chunks" if "stream" in case else ""
            report["cases"].append({"case": title + chunked, "id": case, "kind": "call", **result, "skipped": skipped})
            _print(report["cases"][-1])
        for t in THREADS:
            result = threads_case(t, workers, seconds, rounds=2)
            report["cases"].append({"case": f"chat plain, {t} thread{'s' * (t > 1)} sharing one client",
                                    "id": f"threads-{t}", "kind": "threads", **result, "skipped": unavailable})
            _print(report["cases"][-1])
    finally:
        for w in workers:
            err = w.close()
            if "metricaos_sdk:" in err:
                print(f"{w.name} logged: {err.strip()[-500:]}", file=sys.stderr)
    peers = [w.name for w in workers if w.name in variants.PEERS]
    report["cases"].append({"case": "import after `import openai` (fresh interpreter)", "id": "import",
                            "kind": "import", **import_case(repeats, peers), "skipped": unavailable})
    _print(report["cases"][-1])
    report["cases"].append({"case": "price one call (gpt-4.1-mini, 1200 in / 1024 cached / 300 out)",
                            "id": "pricing", "kind": "pricing", **pricing_case(args.quick)})
    _print(report["cases"][-1])
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
