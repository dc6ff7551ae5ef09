"""Resolution of a name to rate rows: runs once per ``(provider, model)``; :class:`~.table.RateTable` caches it.

An :class:`Entry` holds the rows of every request context (standard, batch, service tiers) of one model, with
user overrides spliced in from their dates and the steps that explain how the name was found.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from . import matching
from .overrides import OverrideEntry
from .rates import Period, Rates, compile_rates, parse_context_key, scale_price_set
from .windows import Window, parse_clock, parse_zone

__all__ = ["Entry", "apply_overrides", "bundled_entry", "find", "parse_prices"]

GUESS_ORDER = ("anthropic", "vertex", "openai")  # genai-prices' provider order for guessing by model name
SCAN_ORDER = ("openai", "anthropic", "bedrock", "vertex", "azure_openai")
Found = tuple[str, Mapping[str, Any], bool, list[str]]  # source, model record, reached via a reseller, steps


@dataclass
class Entry:
    """What a ``(provider, model)`` resolved to: rate rows per request context, and how it was found."""

    model_id: str
    source: str  # the provider whose price list holds the model (azure_openai may resolve to openai's rows)
    standard: tuple[Period, ...]
    variants: dict[tuple[bool, str | None], tuple[Period, ...]] = field(default_factory=dict)
    steps: list[str] = field(default_factory=list)  # how the name was resolved, for explain()
    model: Mapping[str, Any] | None = None  # the bundled model record


def parse_prices(raw: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, Mapping):
            out[key] = {"base": Decimal(value["base"]), "tiers": [[int(s), Decimal(p)] for s, p in value["tiers"]]}
        else:
            out[key] = Decimal(value)
    return out


def clip(periods: tuple[Period, ...], start: date | None) -> list[Period]:
    """The rows in force from ``start`` on, the first one restarted at ``start``."""
    if start is None:
        return list(periods)
    active = [p for p in periods if p.start is None or p.start <= start]
    head = active[-1] if active else periods[0]
    return [head.derive(start=start), *(p for p in periods if p.start is not None and p.start > start)]


def splice(base: tuple[Period, ...], start: date | None, new: list[Period]) -> tuple[Period, ...]:
    keep = [p for p in base if start is not None and (p.start is None or p.start < start)]
    return tuple(keep + new)


def find(data: Mapping[str, Any], provider: str | None, name: str) -> Found | None:
    """The bundled model ``name`` resolves to for ``provider`` (``None``: guess the provider from the name)."""
    if provider is None:
        guess = next(
            (p for p in GUESS_ORDER if matching.clause_matches(data["model_match"][p], name.strip().lower())),
            None,
        )
        order = (guess, *(p for p in SCAN_ORDER if p != guess)) if guess else SCAN_ORDER
    elif provider not in data["providers"]:
        return None  # a provider without prices here (self-hosted, openai-compatible)
    else:
        order = (provider,)
    candidates = list(matching.candidate_names(name))
    for prov in order:  # every spelling with the likeliest provider before the next provider
        for candidate, how in candidates:
            chain = data["providers"][prov]
            own = chain.get("source", prov)  # where its models are stored (gcp.gemini: Google's, as vertex)
            for source, via_fallback in [(own, False)] + [(f, True) for f in chain["fallback"]]:
                model = matching.find_first(data["sources"][source], candidate)
                if model is not None:
                    steps = [f"{how}: {candidate!r}"] if how else []
                    if provider is None:
                        steps.append(f"provider guessed from the name: {prov}")
                    if via_fallback:
                        steps.append(f"{prov} resells {source}'s model; its batch/tier variants do not apply")
                    steps.append(
                        f"{source} model {model['id']!r} matched by "
                        f"{matching.describe_clause(model['match'], candidate)}"
                    )
                    return source, model, via_fallback, steps
    return None


def bundled_entry(found: Found, version: str, rates: Callable[[str, Mapping[str, Any], int], Rates]) -> Entry:
    """The rows of a bundled model; a model reached through a reseller (Azure -> OpenAI) gets standard rows
    only, as genai-prices ignores the request context there.

    A row is ``[start, price index]`` or, priced by time of day, ``[start, price index, windows]`` with windows
    ``[[from, to, price index], ...]`` read in the model's ``zone`` (see scripts/build_rates.py)."""
    source, model, via_fallback, steps = found
    zone = parse_zone(model["zone"]) if "zone" in model else None

    def rows(ctx: str, label: str | None) -> tuple[Period, ...]:
        standard = model["rates"]["standard"]
        out = []
        for row in model["rates"][ctx]:
            start, index, spans = row[0], row[1], (row[2] if len(row) > 2 else [])
            day = date.fromisoformat(start) if start else None
            base = [r[1:] for r in standard if r[0] is None or (start is not None and r[0] <= start)][-1]
            pid = (
                f"{source}:{model['id']}"
                + (f"@{start}" if start else "")
                + (f"#{label}" if label and [index, *([spans] if spans else [])] != base else "")
            )
            period = Period(day, rates(source, model, index), pid, "priced", version, model["prices"][index])
            if spans:
                windows = []
                for begin, end, inner in spans:
                    span = f"{begin}-{end}"
                    inside = Period(
                        day, rates(source, model, inner), f"{pid}~{span}", "priced", version, model["prices"][inner]
                    )
                    windows.append(Window(parse_clock(begin), parse_clock(end, end=True), None, inside, span))
                period.windows, period.zone = tuple(windows), zone
            out.append(period)
        return tuple(out)

    standard = rows("standard", None)
    variants = (
        {} if via_fallback else {parse_context_key(ctx): rows(ctx, ctx) for ctx in model["rates"] if ctx != "standard"}
    )
    if variants:
        tiers = {t for _, t in variants} | {None}
        for batch in (False, True):
            for tier in tiers:
                variants.setdefault((batch, tier), variants.get((batch, None)) or standard)
    return Entry(model["id"], source, standard, variants, steps, model)


def _override_rows(ov: OverrideEntry, periods: tuple[Period, ...], version: str) -> list[Period]:
    """The rows an override puts in place of ``periods`` from its start on."""
    if ov.factor is None:
        assert ov.prices is not None
        suffix = f"@{ov.start.isoformat()}" if ov.start else ""
        pid = f"override:{ov.key}{suffix}"
        period = Period(
            ov.start,
            compile_rates(ov.prices),
            pid + (f"~{ov.label}" if ov.label else ""),
            "override",
            version,
            ov.prices,
        )
        if ov.windows:
            period.zone = ov.zone
            period.windows = tuple(
                Window(
                    w.start,
                    w.end,
                    w.days,
                    Period(ov.start, compile_rates(w.prices), f"{pid}~{w.label}", "override", version, w.prices),
                    w.label,
                )
                for w in ov.windows
            )
        return [period]
    factor = ov.factor
    return [
        p.derive(
            price_id=lambda pid: f"override:{ov.key}({pid})",
            status="override",
            prices=lambda source: scale_price_set(parse_prices(source), factor),
        )
        for p in clip(periods, ov.start)
    ]


def apply_overrides(entry: Entry | None, overrides: tuple[OverrideEntry, ...], version: str) -> Entry | None:
    """``entry`` (``None``: a model the bundled table does not know) with user overrides spliced in."""
    for ov in overrides:  # sorted by start: each one takes over from its date
        if entry is None:
            if ov.factor is not None:
                raise ValueError(f"override {ov.key!r} is a discount but the model has no bundled price")
            entry = Entry(ov.key, "user", tuple(_override_rows(ov, (), version)))
        else:
            entry = Entry(
                entry.model_id,
                entry.source,
                splice(entry.standard, ov.start, _override_rows(ov, entry.standard, version)),
                {k: splice(v, ov.start, _override_rows(ov, v, version)) for k, v in entry.variants.items()},
                list(entry.steps),
                entry.model,
            )
        kind = "rates" if ov.factor is None else f"x{ov.factor} of the bundled price"
        entry.steps.append(f"user override {ov.key!r}: {kind}" + (f" from {ov.start}" if ov.start else ""))
    return entry
