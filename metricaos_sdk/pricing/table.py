"""RateTable: resolve ``(provider, model)`` once, then price every call with a dict hit plus integer arithmetic."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import fields
from datetime import date, datetime, timezone
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal
from importlib import resources
from typing import Any

from ..faults import log_fault, safe_text
from ..usage import Usage
from . import matching
from .entries import Entry, Found, apply_overrides, bundled_entry, find, parse_prices
from .overrides import (
    FallbackSpec,
    OverrideSet,
    _Where,
    load_overrides,
    parse_price_set,
    user_version,
)
from .quote import PriceQuote, RateFileError
from .rates import Period, Rates, compile_rates
from .windows import select

__all__ = ["RateTable"]

log = logging.getLogger("metricaos_sdk")
_DATA_FILE = "_generated_rates.json"
_MISS: Any = object()
_BUNDLED_LOCK = threading.Lock()
_CACHE_LIMIT = 8192
_UTC = timezone.utc
_OUR_PROVIDERS = ("openai", "azure_openai", "anthropic", "bedrock", "vertex")


_EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)  # scaleb() never rounds in this context
_new = object.__new__
_set = tuple(getattr(PriceQuote, f.name).__set__ for f in fields(PriceQuote))


def _new_quote(cost: Decimal, period: Period, model_id: str | None) -> PriceQuote:
    # PriceQuote(...) on a frozen slots dataclass costs ~1 µs in object.__setattr__ calls; the slot descriptors
    # set the same fields in half that. The hot path only: everything else uses the normal constructor.
    quote = _new(PriceQuote)
    s_cost, s_status, s_id, s_version, s_from, s_model = _set
    s_cost(quote, cost)
    s_status(quote, period.status)
    s_id(quote, period.price_id)
    s_version(quote, period.table_version)
    s_from(quote, period.start)
    s_model(quote, model_id)
    return quote


def _utc_day(at: datetime | date | None) -> date:
    if at is None:
        return datetime.now(_UTC).date()
    if isinstance(at, datetime):
        tz = at.tzinfo
        return (at if tz is None or tz is _UTC else at.astimezone(_UTC)).date()  # naive = UTC, as genai-prices
    return at


class RateTable:
    """Prices of LLM calls. Immutable: ``with_*`` methods return a new table sharing the bundled data."""

    def __init__(
        self,
        data: Mapping[str, Any],
        overrides: OverrideSet | None = None,
        fallback: FallbackSpec | None = None,
        deployments: Mapping[str, str] | None = None,
    ) -> None:
        self._data = data
        self.version: str = data["table_version"]
        self._overrides = overrides
        self._fallback_spec = fallback
        self._deployments = dict(deployments or {})
        self._deployments_lower = {k.strip().lower(): v for k, v in self._deployments.items()}
        self._cache: dict[tuple[str, str], Entry | None] = {}
        self._compiled: dict[tuple[str, str, int], Rates] = {}
        self._lock = threading.Lock()
        self._fallback: Entry | None = self._build_fallback(fallback) if fallback else None
        self._unpriced = PriceQuote(None, "unpriced", None, self.version, None, None)

    # --- construction -------------------------------------------------------------------------------------------
    _bundled: RateTable | None = None

    @classmethod
    def bundled(cls) -> RateTable:
        """The table generated from genai-prices and shipped with the SDK (loaded once per process)."""
        table = RateTable._bundled
        if table is None:
            with _BUNDLED_LOCK:
                table = RateTable._bundled
                if table is None:
                    text = resources.files(__package__).joinpath(_DATA_FILE).read_text(encoding="utf-8")
                    table = RateTable._bundled = RateTable(json.loads(text))
        return table

    @classmethod
    def coerce(cls, value: RateTable | str | os.PathLike[str] | Mapping[str, Any] | None) -> RateTable:
        """``None`` -> bundled; a ``.toml``/``.json`` path or a mapping -> bundled with those overrides."""
        if value is None:
            return cls.bundled()
        if isinstance(value, RateTable):
            return value
        return cls.bundled().with_overrides(value)

    def with_overrides(self, overrides: str | os.PathLike[str] | Mapping[str, Any]) -> RateTable:
        """This table with user rates on top (see :mod:`.overrides` for the format)."""
        parsed = load_overrides(overrides, matching.PROVIDER_ALIASES)
        for key, entries in parsed.entries.items():
            for entry in entries:
                if entry.factor is not None and not any(
                    self._find(p, key) for p in (entry.providers or (*_OUR_PROVIDERS, None))
                ):
                    field = "discount" if entry.factor <= 1 else "multiplier"
                    raise RateFileError(
                        f"{parsed.source}: model {entry.key!r} field {field!r} needs a bundled price "
                        "to apply to, and the table has none for this name (give its rates instead)."
                    )
        if self._overrides is not None:  # later overrides win, name by name
            parsed = OverrideSet(
                {**self._overrides.entries, **parsed.entries},
                parsed.fallback or self._overrides.fallback,
                {**self._overrides.deployments, **parsed.deployments},
                f"{self._overrides.version}+{parsed.version.removeprefix('user:')}",
                parsed.source,
            )
        return RateTable(
            self._data, parsed, parsed.fallback or self._fallback_spec, {**self._deployments, **parsed.deployments}
        )

    def with_fallback(
        self, rates: str | Mapping[str, Any] | None = None, *, provider: str | None = None, **prices: Any
    ) -> RateTable:
        """Price unknown models (``price_status="fallback"``) like ``rates``: a model name (``"gpt-4o"``), a mapping
        of rates (``{"input": "5", "output": "15"}``) or the same as keywords; ``None`` and no keywords: no fallback."""
        if isinstance(rates, str):
            spec: FallbackSpec | None = FallbackSpec(None, rates, provider, "with_fallback()")
        elif rates is not None or prices:
            raw = {**(rates or {}), **prices}
            spec = FallbackSpec(
                parse_price_set(raw, _Where("with_fallback()", "fallback")), None, None, "with_fallback()"
            )
        else:
            spec = None
        return RateTable(self._data, self._overrides, spec, self._deployments)

    def maps_deployment(self, name: str) -> bool:
        """Whether ``name`` is an Azure deployment in this table's deployment map (any case)."""
        return name.strip().lower() in self._deployments_lower

    def with_deployments(self, mapping: Mapping[str, str]) -> RateTable:
        """Azure OpenAI deployment name -> model name (``{"prod-chat": "gpt-4.1-mini"}``), added to existing ones."""
        return RateTable(self._data, self._overrides, self._fallback_spec, {**self._deployments, **mapping})

    def _build_fallback(self, spec: FallbackSpec) -> Entry:
        if spec.model is not None:
            entry = self._resolve(spec.provider or "", spec.model)
            if entry is None:
                raise RateFileError(
                    f"{spec.source}: model 'fallback' field 'model' names {spec.model!r}, "
                    "which is not in the rate table."
                )

            def again(p: Period) -> Period:
                return p.derive(price_id=lambda pid: f"fallback:{pid}", status="fallback")

            return Entry(
                "",
                entry.source,
                tuple(map(again, entry.standard)),
                {k: tuple(map(again, v)) for k, v in entry.variants.items()},
                [f"fallback: priced like {entry.model_id!r}"],
            )
        assert spec.prices is not None
        period = Period(
            None, compile_rates(spec.prices), "fallback:user", "fallback", user_version(spec.prices), spec.prices
        )
        return Entry("", "user", (period,), steps=["fallback rate"])

    # --- resolution (first sight of a name only) ------------------------------------------------------------------
    def _find(self, provider: str | None, name: str) -> Found | None:
        return find(self._data, provider, name)

    def _rates(self, source: str, model: Mapping[str, Any], index: int) -> Rates:
        key = (source, model["id"], index)
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = self._compiled[key] = compile_rates(parse_prices(model["prices"][index]))
        return compiled

    def _resolve(self, provider: str, model: str) -> Entry | None:
        prov = matching.canonical_provider(provider)
        name, steps = model, []
        if prov == "azure_openai" and self._deployments:
            mapped = self._deployments.get(name) or self._deployments_lower.get(name.strip().lower())
            if mapped:
                steps.append(f"Azure deployment {name!r} -> {mapped!r}")
                name = mapped
        found = self._find(None if prov in matching.GUESSED else prov, name)
        if found and prov in matching.GUESSED:
            found = (*found[:3], [f"{prov} routes models to their providers: priced as the name's provider",
                                  *found[3]])
        if found and "unpriced" in found[1]:  # matched a model the table cannot price (placeholder)
            found = None
        entry = bundled_entry((*found[:3], steps + found[3]), self.version, self._rates) if found else None
        if self._overrides is not None:
            keys = [name.strip().lower()] + ([entry.model_id.lower()] if entry else [])
            for key in dict.fromkeys(keys):
                matches = tuple(
                    e for e in self._overrides.entries.get(key, ()) if e.providers is None or prov in e.providers
                )
                if matches:
                    return apply_overrides(entry, matches, self._overrides.version)
        if entry is None and prov in matching.SELF_HOSTED:
            return self._self_hosted(prov, name)
        return entry

    def _self_hosted(self, provider: str, model: str) -> Entry:
        """A model on a server of the user's own without a rate of theirs: cost 0, said so by its status."""
        period = Period(None, compile_rates({}), f"self_hosted:{provider}", "self_hosted", self.version, {})
        return Entry(model, "self_hosted", (period,),
                     steps=[f"{provider} is self-hosted: cost 0 unless the rate file gives {model!r} a rate"])

    def _lookup(self, provider: str, model: str) -> Entry | None:
        try:
            entry = self._resolve(provider, model)
        except Exception:
            log_fault(log, f"could not resolve a price for {provider} model {safe_text(repr(model), 120)}",
                      level=logging.WARNING)
            entry = None
        with self._lock:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[(provider, model)] = entry
        return entry

    # --- the hot path ---------------------------------------------------------------------------------------------
    def price(
        self,
        provider: str,
        model: str,
        usage: Usage,
        *,
        at: datetime | date | None = None,
        service_tier: str | None = None,
        batch: bool = False,
        requests: int = 1,
    ) -> PriceQuote:
        """Price one call. Never raises: a bad input gives an ``"unpriced"`` quote and a log record."""
        try:
            entry = self._cache.get((provider, model), _MISS)
            if entry is _MISS:
                entry = self._lookup(provider, model)
            if entry is None:
                entry = self._fallback
                if entry is None:
                    return self._unpriced
            if service_tier == "batch":
                batch, service_tier = True, None
            if at is not None and type(at) is not datetime and not isinstance(at, date):
                raise TypeError(f"at= must be a datetime, a date or None, not {type(at).__name__}")
            return self._quote(entry, at, usage, service_tier, batch, requests, provider, model)
        except Exception:
            log_fault(log, f"pricing {provider} model {safe_text(repr(model), 120)} failed", level=logging.WARNING)
            return self._unpriced

    def _quote(
        self,
        entry: Entry,
        at: datetime | date | None,
        usage: Usage,
        service_tier: str | None,
        batch: bool,
        requests: int,
        provider: str,
        model: str,
    ) -> PriceQuote:
        if entry.variants:
            v = entry.variants
            periods = v.get((batch, service_tier)) or v.get((bool(batch), None)) or entry.standard
        else:
            periods = entry.standard
        period = periods[-1]
        if period.start is not None:  # dated rows: find the one in force on the call's UTC day
            day = _utc_day(at)
            if day < period.start:
                for period in reversed(periods):
                    if period.start is None or day >= period.start:
                        break
                else:  # an override that starts later, on a model the bundled table does not know
                    if self._fallback is None or entry is self._fallback:
                        return self._unpriced
                    return self._quote(self._fallback, day, usage, service_tier, batch, requests, provider, model)
        if period.windows:  # priced by time of day: the window holding the call's moment in the row's zone
            period = select(period, at)
        r = period.rates
        if r.tiers:
            tokens = usage.input_tokens
            for threshold, tier in r.tiers:
                if tokens > threshold:
                    r = tier
                    break
        cr, cw, cw5, cw1 = (
            usage.cached_input_tokens,
            usage.cache_write_tokens,
            usage.cache_write_5m_tokens,
            usage.cache_write_1h_tokens,
        )
        rs, web = usage.reasoning_tokens, usage.web_search_requests
        plain_in = usage.input_tokens - cr - cw
        plain_cw = cw - cw5 - cw1
        plain_out = usage.output_tokens - rs
        # ints only (a float count raises in `|` and lands in price()'s except); `|` of ints is < 0 iff one is
        if plain_in < 0 or plain_cw < 0 or plain_out < 0 or (cr | cw5 | cw1 | rs | web | requests) < 0:
            return self._bad_usage(provider, model, usage, entry)
        r_in, r_cr, r_cw, r_cw5, r_cw1, r_out, r_rs, r_web, r_req, exp = r.vector
        total = (
            r_in * plain_in
            + r_cr * cr
            + r_cw * plain_cw
            + r_cw5 * cw5
            + r_cw1 * cw1
            + r_out * plain_out
            + r_rs * rs
            + r_web * web
            + r_req * requests
        )
        if type(total) is not int:  # a float or Decimal token count: refuse rather than price a binary float
            return self._bad_usage(provider, model, usage, entry)
        return _new_quote(Decimal(total).scaleb(-exp, _EXACT), period, entry.model_id or None)

    def _bad_usage(self, provider: str, model: str, usage: Any, entry: Entry) -> PriceQuote:
        problems = usage.problems() if isinstance(usage, Usage) else [f"not a Usage: {type(usage).__name__}"]
        log.warning(
            "metricaos_sdk: cannot price %s model %s: %s",
            provider,
            safe_text(repr(model), 120),
            "; ".join(problems) or "requests is negative or a count is not an integer",
        )
        return PriceQuote(None, "unpriced", None, self.version, None, entry.model_id or None)

    def explain(self, provider: str | None, model: str) -> dict[str, Any]:
        """How ``model`` resolves and every rate row it can be priced at (what ``metricaos prices`` prints)."""
        from .explain import explain

        return explain(self, provider, model)
