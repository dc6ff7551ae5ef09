"""Instructions per call, bare vs wrapped, counted by valgrind's callgrind: repeatable where wall time is not.

    python benchmarks/instructions.py [--calls 100] [--case plain|stream|responses|anthropic] [--sink sqlite|null]

Wall-clock figures on a shared 2-core VM swing by ±10–50 % between runs; callgrind counts the instructions
the process executes, the same for the same code and inputs. Each client runs twice, with ``warm`` and
``warm + calls`` calls, and the difference is divided by ``calls`` so start-up and warm-up cancel out; the
four runs go two at a time (a few minutes in all).

Two figures: the caller's thread (what the call itself pays; the same from run to run to a few hundred
instructions) and all threads (the SQLite writer's commits added: under valgrind's slowdown it commits
smaller batches than at full speed, so its share varies between runs and overstates the real one).
``--sink null`` meters into a sink that drops events: the wrapper's own cost, without recording.
Needs ``valgrind`` (Debian: ``apt-get install valgrind``).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent

CHILD = """
import sys, tempfile
sys.path.insert(0, {here!r})
from pathlib import Path
import overhead
from metricaos_sdk import Meter
mode, n, case, sink = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
if case == "anthropic":
    make_client, call = overhead.anthropic_client_for, overhead.anthropic_stream_call
    handler = overhead.make_anthropic_handler(200)
else:
    make_client, handler = overhead.client_for, overhead.make_handler(200)
    call = {{"plain": overhead.plain_call, "stream": overhead.stream_call,
            "responses": overhead.responses_stream_call}}[case]
meter = None
if mode == "bare":
    client = make_client(handler)
else:
    if sink == "null":
        meter = Meter(sink=overhead.NullSink())
    else:
        meter = Meter(Path(tempfile.mkdtemp()) / "instructions.db")
    client = meter.wrap(make_client(handler))
context = meter.context(customer_id="cus_bench", feature="bench") if meter else None
if context is not None:
    context.__enter__()
for _ in range(n):
    call(client)
if meter is not None:
    meter.close()
"""


CASES = {"plain": "chat plain", "stream": "chat stream 200 chunks", "responses": "responses stream 200 chunks",
         "anthropic": "anthropic stream 200 deltas"}


def count(mode: str, n: int, case: str, sink: str) -> tuple[int, int]:
    """Instructions executed by the main thread, and by all threads."""
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "child.py"
        script.write_text(CHILD.format(here=str(HERE)))
        out = subprocess.run(
            ["valgrind", "--tool=callgrind", "--separate-threads=yes", f"--callgrind-out-file={tmp}/cg.out",
             sys.executable, str(script), mode, str(n), case, sink],
            capture_output=True, text=True, check=True, env={**os.environ, "PYTHONHASHSEED": "0"},
        )
        match = re.search(r"Collected : (\d+)", out.stderr)
        main = re.search(r"^summary: (\d+)", (Path(tmp) / "cg.out-01").read_text(), re.M)
    if match is None or main is None:
        raise SystemExit(f"callgrind printed no total:\n{out.stderr[-2000:]}")
    return int(main.group(1)), int(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--warm", type=int, default=20)
    parser.add_argument("--case", choices=tuple(CASES), default="plain", help="what one call is (overhead.py's cases)")
    parser.add_argument("--stream", action="store_true", help="the same as --case stream")
    parser.add_argument("--sink", choices=("sqlite", "null"), default="sqlite")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed: apt-get install valgrind")
    case = "stream" if args.stream else args.case
    runs = [(mode, n) for mode in ("bare", "wrapped") for n in (args.warm, args.warm + args.calls)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        totals = dict(zip(runs, pool.map(lambda run: count(run[0], run[1], case, args.sink), runs), strict=True))
    kind = CASES[case]
    kind += "" if args.sink == "sqlite" else f" ({args.sink} sink)"
    print(kind)
    for i, scope in enumerate(("caller's thread", "all threads")):
        per_call = {mode: (totals[mode, args.warm + args.calls][i] - totals[mode, args.warm][i]) / args.calls
                    for mode in ("bare", "wrapped")}
        bare, wrapped = per_call["bare"], per_call["wrapped"]
        print(f"  {scope:16} bare {bare:,.0f} instructions/call, wrapped {wrapped:,.0f}, "
              f"overhead {wrapped - bare:,.0f} ({(wrapped - bare) / bare * 100:+.1f} %)")


if __name__ == "__main__":
    main()
