#!/usr/bin/env python
"""Regenerate ``metricaos_sdk/pricing/_generated_rates.json`` from the installed genai-prices snapshot.

    pip install -U genai-prices        # the maintained, dated price snapshot (a build/test dependency only)
    python scripts/build_rates.py      # rewrites the file; --check exits 1 if it is out of date

The output is deterministic (same genai-prices version -> same bytes); tests pin its sha256, so after a refresh
update ``EXPECTED_SHA256`` in ``tests/test_pricing_data.py`` in the same commit and read the diff.

What is kept: every model of genai-prices' ``openai``, ``azure``, ``anthropic``, ``aws`` (Bedrock) and ``google``
(Vertex) providers, plus the providers Azure falls back to and the OpenAI-compatible providers named by base URL
(DeepSeek, Groq, Mistral, xAI, Gemini, OpenRouter, Together, Fireworks), that is priced per token (``input_mtok`` or
``output_mtok``). For each model and each request context (standard, batch, each service tier, and their
combinations) the build asks genai-prices itself for the prices in force on every date a price changes, and
stores the distinct rows. Price keys the SDK's ``Usage`` cannot carry (audio/image tokens, file-search calls)
are dropped and listed per model; models not priced per token are kept as unpriced placeholders and listed.

Time of day: genai-prices states it as ``TimeOfDateConstraint(start_time, end_time)`` prices in UTC (DeepSeek's
peak hours). For such a model the build asks genai-prices for the price at every window boundary of each date
row, so a row becomes ``[start, index, [[from, to, index], ...]]``: the rates most of the day, and the windows
where others apply, written in the provider's zone (``PROVIDER_ZONES``; a fixed offset, so the conversion from
genai-prices' UTC times is exact) and stored as the model's ``zone``.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from genai_prices import types as gp
from genai_prices.data import providers as gp_providers


def _load_rates_module() -> Any:
    # Load rates.py on its own: importing the metricaos_sdk package would import the whole SDK.
    import importlib.util

    spec = importlib.util.spec_from_file_location("_metricaos_rates", ROOT / "metricaos_sdk" / "pricing" / "rates.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_rates = _load_rates_module()
PRICE_KEYS, context_key, genai_context = _rates.PRICE_KEYS, _rates.context_key, _rates.genai_context

OUTPUT = ROOT / "metricaos_sdk" / "pricing" / "_generated_rates.json"

# Our provider name -> genai-prices provider id. Order matters only for guessing a provider from a model name.
PROVIDERS = {
    "openai": "openai",
    "azure_openai": "azure",
    "anthropic": "anthropic",
    "bedrock": "aws",
    "vertex": "google",
}
# Providers reachable only through another's fallback list (Azure serves DeepSeek, Grok and Kimi models).
EXTRA_SOURCES = {"deepseek": "deepseek", "x-ai": "x-ai", "moonshotai": "moonshotai"}
# OpenAI-compatible providers, named by the client's base URL (metricaos_sdk/providers/hosts.py): our name ->
# genai-prices id. Their models are stored under the genai-prices id (or the name a source already has: Google's
# models are the ``vertex`` source), so a model resold elsewhere keeps one price id (``x-ai:grok-3``). Each
# chain records the provider's ``api_pattern``: a test checks it matches the base URL that names the provider.
COMPATIBLE = {
    "deepseek": "deepseek",
    "groq": "groq",
    "mistral_ai": "mistral",
    "x_ai": "x-ai",
    "gcp.gemini": "google",
    "openrouter": "openrouter",
    "together": "together",
    "fireworks": "fireworks",
}
# Service tiers providers echo (OpenAI and Anthropic), plus any genai-prices knows; each is built with and
# without batch.
SERVICE_TIERS = ("default", "auto", "flex", "priority", "scale", "fast", "standard")
EPOCH = date(1970, 1, 1)
DAY = 86_400
# The zone a provider publishes its hours in, as a fixed offset (seconds east of UTC). DeepSeek: Beijing time,
# UTC+8 (China has kept no daylight saving since 1991), per api-docs.deepseek.com/quick_start/pricing.
PROVIDER_ZONES = {"deepseek": 8 * 3600}


def _money(value: Decimal) -> str:
    return format(value, "f")


def _clause(clause: Any) -> dict[str, Any]:
    if isinstance(clause, gp.ClauseOr):
        return {"or": [_clause(c) for c in clause.or_]}
    if isinstance(clause, gp.ClauseAnd):
        return {"and": [_clause(c) for c in clause.and_]}
    for kind in ("equals", "starts_with", "ends_with", "contains", "regex"):
        if hasattr(clause, kind):
            return {kind: getattr(clause, kind)}
    raise TypeError(f"unknown genai-prices match clause {clause!r}")


def _literals(clause: Any) -> list[str]:
    if isinstance(clause, gp.ClauseOr):
        return [s for c in clause.or_ for s in _literals(c)]
    if isinstance(clause, gp.ClauseAnd):
        return [s for c in clause.and_ for s in _literals(c)]
    return [v for k in ("equals", "starts_with", "ends_with", "contains") if (v := getattr(clause, k, None))]


def _flatten(prices: gp.ModelPrice) -> tuple[dict[str, Any], set[str]]:
    flat: dict[str, Any] = {}
    dropped: set[str] = set()
    for key, value in prices.__dict__.items():
        if key.startswith("_") or value is None:
            continue
        if key not in PRICE_KEYS:
            dropped.add(key)
        elif isinstance(value, gp.TieredPrices):
            flat[key] = {"base": _money(value.base), "tiers": [[t.start, _money(t.price)] for t in value.tiers]}
        else:
            flat[key] = _money(value)
    return flat, dropped


def _constraints(model: gp.ModelInfo) -> list[Any]:
    found = [c.constraint for c in model.prices] if isinstance(model.prices, list) else []
    return found + [v.constraint for v in model.price_variants or ()]


def _utc_seconds(value: time) -> int:
    """A genai-prices constraint time (naive = UTC) as seconds after UTC midnight."""
    if value.tzinfo is not None:
        value = datetime.combine(EPOCH, value).astimezone(timezone.utc).time()
    return value.hour * 3600 + value.minute * 60 + value.second


def _clock(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:02d}:{minutes:02d}" + (f":{secs:02d}" if secs else "")


def _windows(segments: list[list[int]], offset: int) -> tuple[int, list[list[Any]]]:
    """A day cut at every window boundary, ``[[from, to, index], ...]`` in UTC seconds -> the index that prices
    most of the day, and the runs priced otherwise as ``[from, to, index]`` in local time (offset seconds)."""
    length: dict[int, int] = {}
    for start, end, index in segments:
        length[index] = length.get(index, 0) + end - start
    base = max(length, key=lambda i: (length[i], -[s[2] for s in segments].index(i)))
    runs: list[list[int]] = []
    for start, end, index in segments:
        if runs and runs[-1][2] == index and runs[-1][1] == start:
            runs[-1][1] = end
        else:
            runs.append([start, end, index])
    if len(runs) > 1 and runs[0][2] == runs[-1][2] and runs[0][0] == 0 and runs[-1][1] == DAY:
        runs[0][0] = runs.pop()[0]  # one window across UTC midnight
    windows = [[(a + offset) % DAY, (b + offset) % DAY or (DAY if a + offset < DAY <= b + offset else 0), i]
               for a, b, i in runs if i != base]
    windows.sort(key=lambda w: w[0])
    return base, [[_clock(a), _clock(b), i] for a, b, i in windows]


def _build_model(model: gp.ModelInfo, provider: gp.Provider, all_providers: list[gp.Provider],
                 zone_offset: int = 0) -> dict[str, Any]:
    dates = sorted({c.start_date for c in _constraints(model) if isinstance(c, gp.StartDateConstraint)})
    timed = [c for c in _constraints(model) if isinstance(c, gp.TimeOfDateConstraint)]
    bounds = sorted({0, *(_utc_seconds(c.start_time) for c in timed), *(_utc_seconds(c.end_time) for c in timed)})
    bounds = [b for b in bounds if b < DAY]
    probes = [EPOCH, *dates]
    dropped: set[str] = set()
    contexts = [(False, None), (True, None)] + [(b, t) for t in SERVICE_TIERS for b in (False, True)]
    known_tiers = {v.when["service_tier"] for v in model.price_variants or () if "service_tier" in v.when}
    contexts += [(b, t) for t in sorted(known_tiers - set(SERVICE_TIERS)) for b in (False, True)]
    price_sets: list[dict[str, Any]] = []
    rates: dict[str, list[list[Any]]] = {}
    timed_rows = False

    def index_at(when: datetime, context: dict[str, str] | None) -> int:
        nonlocal dropped
        flat, lost = _flatten(model.get_prices(when, context))
        dropped |= lost
        if flat not in price_sets:
            price_sets.append(flat)
        return price_sets.index(flat)

    for batch, tier in contexts:
        rows: list[list[Any]] = []
        for probe in probes:
            midnight = datetime(probe.year, probe.month, probe.day, tzinfo=timezone.utc)
            context = genai_context(batch, tier) or None
            # The price at each window boundary of the day (genai-prices' own answer), segment by segment.
            segments = [[b, (bounds[n + 1] if n + 1 < len(bounds) else DAY),
                         index_at(midnight + timedelta(seconds=b), context)] for n, b in enumerate(bounds)]
            index, windows = _windows(segments, zone_offset)
            row: list[Any] = [None if probe == EPOCH else probe.isoformat(), index]
            if windows:
                row.append(windows)
                timed_rows = True
            if not rows or rows[-1][1:] != row[1:]:
                rows.append(row)
        key = context_key(batch, tier)
        # The runtime looks a context up, then "batch" (for batch contexts), then "standard": store only news.
        inherited = rates.get("batch", rates.get("standard")) if batch and key != "batch" else rates.get("standard")
        if key not in rates and rows != inherited:
            rates[key] = rows
    names = sorted({model.id, *_literals(model.match)})
    names = [n for n in names if provider.find_model(n, all_providers=all_providers) is model]
    entry: dict[str, Any] = {"id": model.id, "name": model.name, "match": _clause(model.match), "names": names}
    if model.deprecated:
        entry["deprecated"] = True
    if dropped:
        entry["dropped_price_keys"] = sorted(dropped)
    if timed_rows:
        sign = "-" if zone_offset < 0 else "+"
        entry["zone"] = f"{sign}{abs(zone_offset) // 3600:02d}:{abs(zone_offset) % 3600 // 60:02d}"
    entry["prices"] = price_sets
    entry["rates"] = rates
    return entry


def _token_priced(model: gp.ModelInfo) -> bool:
    first = model.prices if isinstance(model.prices, gp.ModelPrice) else model.prices[-1].prices
    keys = {k for k, v in first.__dict__.items() if v is not None}
    return not keys or bool(keys & {"input_mtok", "output_mtok"})


def build() -> dict[str, Any]:
    by_id = {p.id: p for p in gp_providers}
    sources: dict[str, list[dict[str, Any]]] = {}
    skipped: list[dict[str, str]] = []
    names = {**PROVIDERS, **EXTRA_SOURCES}
    names.update({gid: gid for gid in COMPATIBLE.values() if gid not in names.values()})
    ours = {gid: name for name, gid in names.items()}
    for name, gid in names.items():
        provider = by_id[gid]
        models = []
        for model in provider.models:
            reason = None if _token_priced(model) else "not priced per token"
            if reason:
                # Kept as a placeholder so its names still stop the search (unpriced) instead of falling
                # through to a later model whose rule also matches.
                skipped.append({"provider": name, "model": model.id, "reason": reason})
                models.append({"id": model.id, "name": model.name, "match": _clause(model.match), "unpriced": reason})
            else:
                models.append(_build_model(model, provider, gp_providers, PROVIDER_ZONES.get(gid, 0)))
        sources[name] = models
    chains = {}
    for name, gid in PROVIDERS.items():
        fallback = [ours[f] for f in by_id[gid].fallback_model_providers or () if f in ours]
        chains[name] = {"genai_prices_id": gid, "fallback": fallback}
    for name, gid in COMPATIBLE.items():
        chain: dict[str, Any] = {"genai_prices_id": gid, "fallback": [], "api_pattern": by_id[gid].api_pattern}
        if ours[gid] != name:
            chain["source"] = ours[gid]
        chains[name] = chain
    guess = {name: _clause(by_id[gid].model_match) for name, gid in PROVIDERS.items() if by_id[gid].model_match}
    all_dates = [
        c.start_date
        for p in names.values()
        for m in by_id[p].models
        for c in _constraints(m)
        if isinstance(c, gp.StartDateConstraint)
    ]
    gp_version = version("genai-prices")
    return {
        "_comment": "generated — do not edit. Regenerate with: python scripts/build_rates.py",
        "format": 1,
        "source": f"genai-prices {gp_version}",
        "table_version": f"genai-prices-{gp_version}+{max(all_dates).isoformat()}",
        "providers": chains,
        "model_match": guess,
        "sources": sources,
        "skipped": skipped,
    }


def render() -> str:
    return json.dumps(build(), indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the bundled file is out of date")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is out of date: run python scripts/build_rates.py", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text, encoding="utf-8")
    data = json.loads(text)
    count = sum(1 for v in data["sources"].values() for m in v if "rates" in m)
    print(f"wrote {args.output.relative_to(ROOT)}: {count} models, table {data['table_version']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
