"""User rates: negotiated discounts, fine-tunes, self-hosted models, a fallback rate and Azure deployments.

A rate file is TOML or JSON (a ``Mapping`` of the same shape works too)::

    [models."ft:gpt-4o-mini-2024-07-18:acme::9xYz"]     # a name as your code sends it, or a canonical model id
    input = "0.30"                                      # dollars per million tokens
    output = "1.20"
    cached_input = "0.15"

    [models."gpt-4o"]                                   # a negotiated discount on the bundled price
    discount = "0.20"                                   # 20% off every rate, tiers and batch included
    provider = "azure_openai"                           # optional: only for this provider (or a list)
    effective_from = 2025-07-01                         # optional: calls before this use the bundled rate

    [models."llama-3.3-70b-selfhosted"]
    per_request = "0.0004"                              # dollars per request

    [fallback]                                          # unknown models: charged at this rate (or model = "gpt-4o")
    input = "5"
    output = "15"

    [deployments]                                       # Azure OpenAI deployment name -> model
    "prod-chat" = "gpt-4.1-mini"

    [models."deepseek-flash"]                           # priced by time of day (docs/pricing.md)
    provider = "deepseek"
    zone = "Asia/Shanghai"                              # the windows' times are read in this zone
    name = "off-peak"                                   # optional: the rates outside every window
    input = "0.15"
    cached_input = "0.003"
    output = "0.60"
    [[models."deepseek-flash".windows]]
    name = "peak"                                       # price ids end in ~peak / ~off-peak
    start = "09:00"                                     # inclusive, local time
    end = "12:00"                                       # exclusive; an end before the start runs past midnight
    days = ["mon", "tue", "wed", "thu", "fri"]          # optional: weekdays of the local date
    multiplier = "2"                                    # or the rates that differ inside the window

A model's value may also be a list of such tables with different ``effective_from`` dates. Numbers are read as
``Decimal`` (never binary floats); a malformed file raises :class:`RateFileError` naming the file, model and field.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, time, tzinfo
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from .quote import RateFileError
from .rates import PRICE_KEYS, scale_price_set
from .windows import clock_text, overlap, parse_clock, parse_days, parse_zone

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = [
    "FallbackSpec",
    "OverrideEntry",
    "OverrideSet",
    "WindowSpec",
    "load_overrides",
    "parse_price_set",
    "user_version",
]

ALIASES = {
    "input": "input_mtok",
    "output": "output_mtok",
    "cached_input": "cache_read_mtok",
    "cache_read": "cache_read_mtok",
    "cache_write": "cache_write_mtok",
    "cache_write_5m": "cache_write_5m_mtok",
    "cache_write_1h": "cache_write_1h_mtok",
    "reasoning": "output_reasoning_mtok",
    "web_search_per_1k": "web_searches_kcount",
    "per_1k_requests": "requests_kcount",
}
_META = ("provider", "effective_from", "discount", "multiplier", "zone", "windows", "name")
_WINDOW_META = ("start", "end", "days", "name", "multiplier")
_FIELDS = (*PRICE_KEYS, *ALIASES, "per_request")
_TOP = ("models", "fallback", "deployments")


@dataclass(frozen=True)
class WindowSpec:
    """A validated time-of-day window of a rate file: local ``[start, end)`` seconds, weekdays, full price set."""

    start: int
    end: int
    days: frozenset[int] | None
    label: str  # its ``name``, else ``"09:00-12:00"``: the price id suffix ``~label``
    prices: Mapping[str, Any]


@dataclass(frozen=True)
class OverrideEntry:
    key: str
    providers: frozenset[str] | None
    start: date | None
    prices: Mapping[str, Any] | None  # replacement price set, or
    factor: Decimal | None  # multiplier applied to the bundled price
    zone: tzinfo | None = None  # where the windows' times are read
    windows: tuple[WindowSpec, ...] = ()  # time-of-day rates; ``prices`` applies outside them
    label: str | None = None  # ``name`` of the rates outside the windows (price id suffix ``~label``)


@dataclass(frozen=True)
class FallbackSpec:
    prices: Mapping[str, Any] | None
    model: str | None
    provider: str | None
    source: str  # where it was written, for error messages


@dataclass(frozen=True)
class OverrideSet:
    entries: Mapping[str, tuple[OverrideEntry, ...]]  # lower-cased name -> entries sorted by start
    fallback: FallbackSpec | None
    deployments: Mapping[str, str]
    version: str  # "user:<hash>"
    source: str  # file path or "rates mapping", for error messages


class _Where:
    def __init__(self, source: str, model: str | None = None) -> None:
        self.source, self.model = source, model

    def fail(self, field: str | None, problem: str) -> RateFileError:
        where = f"model {self.model!r}" if self.model is not None else "the file"
        what = f" field {field!r}" if field else ""
        return RateFileError(f"{self.source}: {where}{what} {problem}.")


def _decimal(value: Any, where: _Where, field: str) -> Decimal:
    if isinstance(value, bool):
        raise where.fail(field, f"must be a decimal number, not {value!r}")
    try:
        # A float is taken at its shortest repr ("0.1" stays 0.1): it is what the user typed.
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        raise where.fail(field, f"must be a decimal number, not {value!r}") from None
    if not number.is_finite() or number < 0:
        raise where.fail(field, f"must be a finite non-negative number, not {value!r}")
    return number


def _price(value: Any, where: _Where, field: str) -> Any:
    if isinstance(value, Mapping):
        if set(value) != {"base", "tiers"} or not isinstance(value["tiers"], list):
            raise where.fail(field, "must be a number or a table with 'base' and a 'tiers' list of [start, price]")
        tiers = []
        for tier in value["tiers"]:
            if not isinstance(tier, (list, tuple)) or len(tier) != 2 or not isinstance(tier[0], int):
                raise where.fail(field, f"has a tier {tier!r} that is not [start_tokens, price]")
            tiers.append([tier[0], _decimal(tier[1], where, field)])
        return {"base": _decimal(value["base"], where, field), "tiers": sorted(tiers)}
    return _decimal(value, where, field)


def parse_price_set(raw: Mapping[str, Any], where: _Where, *, allow: tuple[str, ...] = ()) -> dict[str, Any]:
    """Validate the price fields of one table; unknown fields are errors (a typo must not price at 0)."""
    prices: dict[str, Any] = {}
    for field, value in raw.items():
        if field in allow:
            continue
        if field == "per_request":
            prices["requests_kcount"] = _decimal(value, where, field) * 1000
        elif field in ALIASES or field in PRICE_KEYS:
            prices[ALIASES.get(field, field)] = _price(value, where, field)
        else:
            raise where.fail(field, f"is not a known field (use one of: {', '.join(_FIELDS + allow)})")
    return prices


def _date(value: Any, where: _Where) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise where.fail("effective_from", f"must be a date like 2025-01-31, not {value!r}") from None


def _entry(key: str, raw: Any, where: _Where, providers_known: Mapping[str, str]) -> OverrideEntry:
    if not isinstance(raw, Mapping):
        raise where.fail(None, f"must be a table of rates, not {type(raw).__name__}")
    provider = raw.get("provider")
    providers: frozenset[str] | None = None
    if provider is not None:
        names = [provider] if isinstance(provider, str) else provider
        if not isinstance(names, list) or any(
            not isinstance(p, str) or p.lower() not in providers_known for p in names
        ):
            raise where.fail("provider", f"must name providers among {sorted(set(providers_known.values()))}")
        providers = frozenset(providers_known[p.lower()] for p in names)
    start = _date(raw["effective_from"], where) if "effective_from" in raw else None
    factor = None
    if "discount" in raw and "multiplier" in raw:
        raise where.fail("discount", "cannot be combined with 'multiplier'")
    if "discount" in raw:
        discount = _decimal(raw["discount"], where, "discount")
        if discount > 1:
            raise where.fail("discount", f"is a fraction between 0 and 1 (0.2 = 20% off), not {raw['discount']!r}")
        factor = 1 - discount
    elif "multiplier" in raw:
        factor = _decimal(raw["multiplier"], where, "multiplier")
    prices = parse_price_set(raw, where, allow=_META)
    if factor is not None and prices:
        written = next(f for f in raw if f not in _META)
        raise where.fail(written, "cannot be combined with a discount or multiplier")
    if factor is None and not prices:
        raise where.fail(None, "has no rate (give input/output rates, per_request, or a discount)")
    label = raw.get("name")
    if label is not None and (not isinstance(label, str) or not _LABEL.match(label)):
        raise where.fail(
            "name", f"must be a short label of letters, digits, '-' or '_' (like \"off-peak\"), not {label!r}"
        )
    if "windows" not in raw:
        if "zone" in raw:
            raise where.fail("zone", "is only read with 'windows' (add the windows it is for, or remove it)")
        if label is not None:
            raise where.fail("name", "names the rates outside time-of-day windows, and this rate has no 'windows'")
        return OverrideEntry(key, providers, start, prices or None, factor)
    if factor is not None:
        raise where.fail(
            "windows",
            "need rates of their own, not a discount (a discount on a bundled time-of-day "
            "price already applies to every window)",
        )
    if "zone" not in raw:
        raise where.fail("windows", "need a 'zone' to read their times in (e.g. zone = \"Asia/Shanghai\")")
    try:
        zone = parse_zone(raw["zone"])
    except ValueError:
        raise where.fail(
            "zone",
            f'is not a time zone: {raw["zone"]!r} (use an IANA name such as "Asia/Shanghai", '
            '"UTC", or an offset such as "+08:00")',
        ) from None
    windows = _windows(raw["windows"], prices, where)
    return OverrideEntry(key, providers, start, prices, None, zone, windows, label)


_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")


def _windows(raw: Any, base: Mapping[str, Any], where: _Where) -> tuple[WindowSpec, ...]:
    """Validate ``windows``: a list of tables with start, end, optional days and name, and rates or a multiplier."""
    if not isinstance(raw, list) or not raw or not all(isinstance(w, Mapping) for w in raw):
        raise where.fail(
            "windows", 'must be a list of tables ([[models."<name>".windows]] in TOML), each with start, end and rates'
        )
    out: list[WindowSpec] = []
    for n, window in enumerate(raw, 1):
        field = f"windows[{n}]"
        for needed in ("start", "end"):
            if needed not in window:
                raise where.fail(field, f"has no '{needed}' (give start and end as local times like \"09:00\")")
        try:
            begin = parse_clock(window["start"])
        except ValueError:
            raise where.fail(f"{field}.start", f'must be a time of day like "09:00", not {window["start"]!r}') from None
        try:
            end = parse_clock(window["end"], end=True)
        except ValueError:
            raise where.fail(
                f"{field}.end", f'must be a time of day like "12:00" (or "24:00"), not {window["end"]!r}'
            ) from None
        if begin == end % 86_400:
            raise where.fail(
                field,
                f"starts and ends at {clock_text(begin)} (a window needs two different times; "
                "for the whole day give the rate without windows)",
            )
        days = None
        if "days" in window:
            try:
                days = parse_days(window["days"]) if isinstance(window["days"], list) else None
            except ValueError:
                days = None
            if days is None:
                raise where.fail(f"{field}.days", f'must list weekdays such as ["mon", "fri"], not {window["days"]!r}')
        label = window.get("name", f"{clock_text(begin)}-{clock_text(end)}")
        if "name" in window and (not isinstance(label, str) or not _LABEL.match(label)):
            raise where.fail(
                f"{field}.name", f"must be a short label of letters, digits, '-' or '_' (like \"peak\"), not {label!r}"
            )
        rates = parse_price_set(window, where, allow=_WINDOW_META)
        if "multiplier" in window:
            if rates:
                raise where.fail(f"{field}.multiplier", "cannot be combined with rates (give one or the other)")
            prices = scale_price_set(base, _decimal(window["multiplier"], where, f"{field}.multiplier"))
        elif rates:
            prices = {**base, **rates}  # a window states the rates that differ inside it
        else:
            raise where.fail(field, "has no rate (give the rates that differ inside it, or a multiplier)")
        for m, other in enumerate(out, 1):
            if overlap((begin, end, days), (other.start, other.end, other.days)):
                raise where.fail(
                    field,
                    f"({clock_text(begin)}-{clock_text(end)}) overlaps window {m} "
                    f"({clock_text(other.start)}-{clock_text(other.end)}) (make the windows disjoint, "
                    "or give them different days)",
                )
        out.append(WindowSpec(begin, end, days, label, prices))
    return tuple(out)


def _read(path: Path) -> Any:
    source = str(path)
    try:
        raw_bytes = path.read_bytes()
    except OSError as exc:
        raise RateFileError(f"{source}: the rate file cannot be read ({exc.strerror or exc}).") from None
    try:
        if path.suffix.lower() == ".json":
            return json.loads(raw_bytes.decode("utf-8"), parse_float=Decimal)
        if path.suffix.lower() == ".toml":
            return tomllib.loads(raw_bytes.decode("utf-8"), parse_float=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RateFileError(f"{source}: the file is not valid {path.suffix[1:].upper()} ({exc}).") from None
    raise RateFileError(f"{source}: a rate file must end in .toml or .json.")


def _canonical(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, (Decimal, date, time, float)):
        return str(value)
    return value


def load_overrides(
    value: str | os.PathLike[str] | Mapping[str, Any], providers_known: Mapping[str, str]
) -> OverrideSet:
    """Parse and validate a rate file or mapping; raises :class:`RateFileError` on the first problem."""
    if isinstance(value, Mapping):
        source, data = "rates mapping", value
    else:
        source, data = str(value), _read(Path(value))
    top = _Where(source)
    if not isinstance(data, Mapping):
        raise top.fail(None, "must hold a table at the top level")
    for key in data:
        if key not in _TOP:
            raise top.fail(key, f"is not a known section (use {', '.join(_TOP)})")
    models = data.get("models", {})
    if not isinstance(models, Mapping):
        raise top.fail("models", "must be a table of model name -> rates")
    entries: dict[str, list[OverrideEntry]] = {}
    for key, raw in models.items():
        where = _Where(source, key)
        items = raw if isinstance(raw, list) else [raw]
        parsed = [_entry(str(key), item, where, providers_known) for item in items]
        starts = [e.start for e in parsed]
        if len(set(starts)) != len(starts):
            raise where.fail("effective_from", "repeats a date (each rate of a model needs its own effective_from)")
        entries.setdefault(str(key).strip().lower(), []).extend(parsed)
    fallback = None
    if "fallback" in data:
        raw = data["fallback"]
        where = _Where(source, "fallback")
        if isinstance(raw, str):
            fallback = FallbackSpec(None, raw, None, source)
        elif isinstance(raw, Mapping) and "model" in raw:
            provider = raw.get("provider")
            extra = set(raw) - {"model", "provider"}
            if extra:
                raise where.fail(min(extra), "cannot be combined with 'model'")
            fallback = FallbackSpec(None, str(raw["model"]), str(provider) if provider else None, source)
        elif isinstance(raw, Mapping):
            fallback = FallbackSpec(parse_price_set(raw, where) or None, None, None, source)
            if fallback.prices is None:
                raise where.fail(None, "has no rate")
        else:
            raise where.fail(None, "must be a model name or a table of rates")
    deployments = data.get("deployments", {})
    if not isinstance(deployments, Mapping) or not all(isinstance(v, str) for v in deployments.values()):
        raise _Where(source, "deployments").fail(None, "must map deployment names to model names")
    ordered = {
        k: tuple(sorted(v, key=lambda e: (e.start is not None, e.start or date.min))) for k, v in entries.items()
    }
    return OverrideSet(ordered, fallback, {str(k): v for k, v in deployments.items()}, user_version(data), source)


def user_version(data: Any) -> str:
    """``"user:<hash>"``: the same user rates give the same version, so an event can be re-priced."""
    return "user:" + hashlib.sha256(json.dumps(_canonical(data), sort_keys=True).encode()).hexdigest()[:12]
