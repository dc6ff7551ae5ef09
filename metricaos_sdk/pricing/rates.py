"""Compiled rate rows: the arithmetic behind a price, precomputed so a lookup is a dict hit plus integer maths.

A *price set* is a flat mapping of price keys (genai-prices' names, dollars per million tokens unless noted)::

    input_mtok  output_mtok  cache_read_mtok  cache_write_mtok  cache_write_5m_mtok  cache_write_1h_mtok
    output_reasoning_mtok  web_searches_kcount (per 1,000)  requests_kcount (per 1,000)

Each value is a ``Decimal`` or a tiered price ``{"base": Decimal, "tiers": [[start, Decimal], ...]}``: when the
call's *total* input tokens exceed ``start``, every token of the call is priced at that tier (the way Anthropic,
OpenAI and Google bill long context, and the way genai-prices computes it).

A token bucket whose key is missing is priced at its parent's rate (cache reads and writes at ``input_mtok``, the
1-hour and 5-minute writes at ``cache_write_mtok``, reasoning at ``output_mtok``) — genai-prices' leaf rule.
Rates are turned into integers scaled by ``10**scale`` so a price is a handful of int multiplications and one
exact ``Decimal`` at the end.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, tzinfo
from decimal import Decimal
from typing import Any

__all__ = [
    "PRICE_KEYS",
    "Period",
    "Rates",
    "compile_rates",
    "context_key",
    "genai_context",
    "parse_context_key",
    "scale_price_set",
]

PRICE_KEYS = (
    "input_mtok",
    "output_mtok",
    "cache_read_mtok",
    "cache_write_mtok",
    "cache_write_5m_mtok",
    "cache_write_1h_mtok",
    "output_reasoning_mtok",
    "web_searches_kcount",
    "requests_kcount",
)
_PER_THOUSAND = frozenset({"web_searches_kcount", "requests_kcount"})


class Rates:
    """Integer rates of one price set at one long-context level, in units of ``10**-exp`` dollars per token."""

    __slots__ = ("cr", "cw", "cw1h", "cw5", "exp", "inp", "out", "reason", "req", "tiers", "vector", "web")

    def __init__(self, leaves: Mapping[str, Decimal], tiers: tuple[tuple[int, Rates], ...] = ()) -> None:
        places = max([0, *(-int(v.as_tuple().exponent) for v in leaves.values())])
        # Integer dollars-per-million scaled by 10**places; per-1,000 prices become per-million by * 1000.
        ints = {k: int(v.scaleb(places)) for k, v in leaves.items()}
        self.exp = 6 + places
        self.inp, self.out = ints["input_mtok"], ints["output_mtok"]
        self.cr, self.cw = ints["cache_read_mtok"], ints["cache_write_mtok"]
        self.cw5, self.cw1h = ints["cache_write_5m_mtok"], ints["cache_write_1h_mtok"]
        self.reason = ints["output_reasoning_mtok"]
        self.web, self.req = ints["web_searches_kcount"] * 1000, ints["requests_kcount"] * 1000
        self.tiers = tiers  # ((threshold, Rates), ...) highest threshold first
        # All of it in one tuple: the hot path unpacks it in one step.
        self.vector = (
            self.inp,
            self.cr,
            self.cw,
            self.cw5,
            self.cw1h,
            self.out,
            self.reason,
            self.web,
            self.req,
            self.exp,
        )


class Period:
    """One rate row: the rates in force from ``start`` (``None``: from the beginning) until the next row.

    A row priced by time of day also has ``windows`` (:class:`~.windows.Window`, each with a row of its own) read
    in ``zone``: :func:`~.windows.select` picks the one holding a call's moment, else this row prices it."""

    __slots__ = ("price_id", "rates", "source", "start", "status", "table_version", "windows", "zone")

    def __init__(
        self,
        start: date | None,
        rates: Rates,
        price_id: str,
        status: str,
        table_version: str,
        source: Mapping[str, Any],
        windows: tuple[Any, ...] = (),
        zone: tzinfo | None = None,
    ) -> None:
        self.start = start
        self.rates = rates
        self.price_id = price_id
        self.status = status
        self.table_version = table_version
        self.source = source  # the price set as written (for explain)
        self.windows = windows  # (Window, ...): first match wins
        self.zone = zone

    def derive(
        self,
        *,
        start: date | None | object = ...,
        price_id: Callable[[str], str] | None = None,
        status: str | None = None,
        prices: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None,
    ) -> Period:
        """A copy (windows included) restarted at ``start``, with price ids, status or prices mapped."""
        from .windows import Window

        def one(p: Period, day: date | None) -> Period:
            source = prices(p.source) if prices else p.source
            return Period(
                day,
                compile_rates(source) if prices else p.rates,
                price_id(p.price_id) if price_id else p.price_id,
                status or p.status,
                p.table_version,
                source,
            )

        day = self.start if start is ... else start
        copy = one(self, day)  # type: ignore[arg-type]
        copy.zone = self.zone
        copy.windows = tuple(
            Window(w.start, w.end, w.days, one(w.period, day), w.label)  # type: ignore[arg-type]
            for w in self.windows
        )
        return copy


def _leaves(prices: Mapping[str, Decimal]) -> dict[str, Decimal]:
    zero = Decimal(0)
    inp = prices.get("input_mtok", zero)
    out = prices.get("output_mtok", zero)
    cw = prices.get("cache_write_mtok", inp)
    return {
        "input_mtok": inp,
        "output_mtok": out,
        "cache_read_mtok": prices.get("cache_read_mtok", inp),
        "cache_write_mtok": cw,
        "cache_write_5m_mtok": prices.get("cache_write_5m_mtok", cw),
        "cache_write_1h_mtok": prices.get("cache_write_1h_mtok", cw),
        "output_reasoning_mtok": prices.get("output_reasoning_mtok", out),
        "web_searches_kcount": prices.get("web_searches_kcount", zero),
        "requests_kcount": prices.get("requests_kcount", zero),
    }


def _at_level(value: Any, level: int | None) -> Decimal:
    if isinstance(value, Mapping):
        price: Decimal = value["base"]
        if level is not None:
            for start, tier_price in value["tiers"]:
                if start <= level:
                    price = tier_price
        return price
    return value  # type: ignore[no-any-return]


def compile_rates(prices: Mapping[str, Any]) -> Rates:
    """Compile a validated price set (values ``Decimal`` or tiered mappings) into :class:`Rates`."""
    thresholds = sorted({int(start) for v in prices.values() if isinstance(v, Mapping) for start, _ in v["tiers"]})
    tiers = tuple((t, Rates(_leaves({k: _at_level(v, t) for k, v in prices.items()}))) for t in reversed(thresholds))
    return Rates(_leaves({k: _at_level(v, None) for k, v in prices.items()}), tiers)


def scale_price_set(prices: Mapping[str, Any], factor: Decimal) -> dict[str, Any]:
    """Every price (tiers included) multiplied by ``factor`` exactly — a negotiated discount."""
    out: dict[str, Any] = {}
    for key, value in prices.items():
        if isinstance(value, Mapping):
            out[key] = {"base": value["base"] * factor, "tiers": [[s, p * factor] for s, p in value["tiers"]]}
        else:
            out[key] = value * factor
    return out


# --- request context -------------------------------------------------------------------------------------------
# service_tier values as providers echo them. OpenAI: default/flex/priority/scale/auto/fast; Anthropic:
# standard/priority/batch (batch == the Message Batches API), and fast mode, which Anthropic reports as
# usage.speed == "fast": pass service_tier="fast" for it.


def genai_context(batch: bool, service_tier: str | None) -> dict[str, str]:
    """The genai-prices ``price_context`` equivalent to ``price(..., batch=, service_tier=)``."""
    ctx: dict[str, str] = {}
    if batch or service_tier == "batch":
        ctx["processing"] = "batch"
    if service_tier and service_tier != "batch":
        ctx["service_tier"] = service_tier
        if service_tier == "fast":
            ctx["speed"] = "fast"
    return ctx


def context_key(batch: bool, service_tier: str | None) -> str:
    """Key of a request context in the generated file: ``"standard"``, ``"batch"``, ``"flex"``, ``"batch+flex"``."""
    if service_tier == "batch":
        batch, service_tier = True, None
    parts = (["batch"] if batch else []) + ([service_tier] if service_tier else [])
    return "+".join(parts) or "standard"


def parse_context_key(key: str) -> tuple[bool, str | None]:
    parts = key.split("+")
    batch = parts[0] == "batch"
    rest = parts[1:] if batch else parts
    return batch, (rest[0] if rest and rest[0] != "standard" else None)
