"""Spike alerts: a customer, user, feature or model whose usage in the latest hour or day is far above its own
baseline (the method, its defaults and how to tune them: ``docs/alerts.md``).

Per watched dimension, one SQL aggregate sums the metric per key and UTC window over the scored window and the
``baseline`` windows before it; a window without events counts as 0. Each key's value ``x`` is scored against
its own baseline ``b`` (oldest first), upward only:

- ``mad``: ``(x − median(b)) / scale``, ``scale = 1.4826 × median(|bᵢ − median(b)|)``, or when that MAD is 0,
  ``1.2533 × mean(|bᵢ − median(b)|)``.
- ``ewma``: ``m ← b₁, v ← 0``; per later window ``d = bᵢ − m; m ← m + α·d; v ← (1 − α)·(v + α·d²)``;
  ``(x − m) / √v``.

The floor: ``scale ≥ max(floor_ratio × |centre|, min_value / threshold)`` — a flat baseline never divides by
zero. The guard: a key is scored only with ``min_windows`` baseline windows that had events and ``x ≥
min_value``. The scored window is the one ``now`` falls in, as it stands (never prorated), or at an exact
boundary the one that just ended. LLM calls count requests, tokens and cost; product events only credits.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Context, Decimal, InvalidOperation, localcontext
from typing import Any

from ..errors import ConfigurationError
from ..events import PRODUCT_EVENT_TYPES
from ..formatting import count, quantity, usd
from .exact import ExactSum, tidy
from .source import EventSource
from .usage_report import DIMENSIONS, NONE

__all__ = ["DEFAULT_MIN_VALUE", "METHODS", "METRICS", "WATCHABLE", "WINDOWS", "Spike", "SpikeRules", "detect_spikes",
           "window_text"]

log = logging.getLogger("metricaos_sdk")

WINDOWS: dict[str, timedelta] = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
"""The window sizes, aligned on UTC hours and days."""
METRICS = ("cost_usd", "total_tokens", "requests", "credits")
"""What can spike: LLM calls' cost, tokens and count, or every event's credits."""
METHODS = ("mad", "ewma")
WATCHABLE = tuple(name for name, column in DIMENSIONS.items() if column is not None)
"""The dimensions a spike can be found in (every report dimension but ``day`` and ``hour``)."""
DEFAULT_MIN_VALUE: dict[str, Decimal] = {"cost_usd": Decimal("0.50"), "total_tokens": Decimal(20_000),
                                         "requests": Decimal(20), "credits": Decimal(20)}
"""The smallest value of a window that can alert, per metric, when ``SpikeRules.min_value`` is not set."""

MAD_SCALE = Decimal("1.4826")
MEAN_AD_SCALE = Decimal("1.2533")
_MATH = Context(prec=40)
_SHOWN = Decimal("1e-12")  # baselines and scales are reported to the pico-unit, like exact sums
_PRODUCT = "(" + ", ".join(f"'{t}'" for t in sorted(PRODUCT_EVENT_TYPES)) + ")"
_BUCKET_FORMAT = {"hour": "%Y-%m-%dT%H", "day": "%Y-%m-%d"}


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)) or not math.isfinite(value):
        raise ConfigurationError(f"{name} {value!r} is not a number: pass a finite number, such as "
                                 f"{getattr(SpikeRules, name)}.")
    return float(value)


def _whole(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(f"{name} {value!r} is not a whole number of windows: pass an integer, such as 14.")
    return value


@dataclass(frozen=True)
class SpikeRules:
    """What counts as a spike. Every value is checked when the rules are made (a
    :class:`~metricaos_sdk.ConfigurationError` says what is wrong and how to fix it)."""

    by: tuple[str, ...] = ("customer", "user", "feature", "model")
    """The dimensions watched: any of :data:`WATCHABLE`."""
    window: str = "hour"
    """``hour`` or ``day``: the window scored, and the size of each baseline window (UTC-aligned)."""
    metric: str = "cost_usd"
    """``cost_usd``, ``total_tokens``, ``requests`` (LLM calls) or ``credits`` (every event)."""
    method: str = "mad"
    """``mad`` (robust z-score around the median) or ``ewma`` (exponentially weighted mean and deviation)."""
    threshold: float = 5.0
    """The score from which a window is a spike (deviations of the baseline's scale above its centre)."""
    baseline: int = 14
    """How many windows before the scored one make the baseline (3 to 1000)."""
    min_windows: int | None = None
    """How many baseline windows must have events for a key to be scored (default: half the baseline)."""
    min_value: Decimal | None = None
    """The smallest scored-window value that can alert (default: :data:`DEFAULT_MIN_VALUE` of the metric)."""
    alpha: float = 0.2
    """The EWMA weight of each newer window (0 < alpha < 1; larger follows recent windows faster)."""
    floor_ratio: float = 0.1
    """The scale is never below this share of the baseline's centre (nor below ``min_value / threshold``)."""

    def __post_init__(self) -> None:
        by = (self.by,) if isinstance(self.by, str) else tuple(self.by)
        if not by:
            raise ConfigurationError("by is empty: watch at least one dimension, such as by=('customer',).")
        for name in by:
            if name not in WATCHABLE:
                raise ConfigurationError(f"by {name!r} is not a dimension spikes can be found in: use one of "
                                         f"{', '.join(WATCHABLE)}.")
        set_ = object.__setattr__  # frozen: the checked values are stored once, here
        set_(self, "by", tuple(dict.fromkeys(by)))
        for name, allowed in (("window", tuple(WINDOWS)), ("metric", METRICS), ("method", METHODS)):
            if getattr(self, name) not in allowed:
                raise ConfigurationError(f"{name} {getattr(self, name)!r} is not supported: use one of "
                                         f"{', '.join(allowed)}.")
        threshold = _number("threshold", self.threshold)
        if threshold <= 0:
            raise ConfigurationError(f"threshold {self.threshold!r} is not above 0: pass a positive score, such as 5.")
        set_(self, "threshold", threshold)
        baseline = _whole("baseline", self.baseline)
        if not 3 <= baseline <= 1000:
            raise ConfigurationError(f"baseline {baseline} is outside 3 to 1000 windows: pass a baseline in that "
                                     f"range, such as 14 (use day windows for a longer history).")
        # min_windows and min_value stay None when not given (their defaults follow baseline and metric, also
        # after dataclasses.replace); required_windows and required_value are what the guard uses
        if self.min_windows is not None and not 0 <= _whole("min_windows", self.min_windows) <= baseline:
            raise ConfigurationError(f"min_windows {self.min_windows} is outside 0 to the baseline's {baseline} "
                                     f"windows: pass a number in that range, or a longer baseline.")
        if self.min_value is not None:
            try:
                min_value = None if isinstance(self.min_value, bool) else Decimal(str(self.min_value))
            except InvalidOperation:
                min_value = None
            if min_value is None or not min_value.is_finite() or min_value <= 0:
                raise ConfigurationError(f"min_value {self.min_value!r} is not a positive number: pass the smallest "
                                         f"value that may alert, such as {DEFAULT_MIN_VALUE[self.metric]} for "
                                         f"{self.metric}.")
            set_(self, "min_value", min_value)
        alpha = _number("alpha", self.alpha)
        if not 0 < alpha < 1:
            raise ConfigurationError(f"alpha {self.alpha!r} is not between 0 and 1: pass a weight such as 0.2.")
        set_(self, "alpha", alpha)
        floor_ratio = _number("floor_ratio", self.floor_ratio)
        if floor_ratio < 0:
            raise ConfigurationError(f"floor_ratio {self.floor_ratio!r} is negative: pass 0 or more, such as 0.1.")
        set_(self, "floor_ratio", floor_ratio)

    @property
    def required_windows(self) -> int:
        """The guard's baseline windows with events: ``min_windows``, or half the baseline (at least 1)."""
        return max(1, self.baseline // 2) if self.min_windows is None else self.min_windows

    @property
    def required_value(self) -> Decimal:
        """The guard's smallest value: ``min_value``, or the metric's :data:`DEFAULT_MIN_VALUE`."""
        return DEFAULT_MIN_VALUE[self.metric] if self.min_value is None else self.min_value

    @property
    def size(self) -> timedelta:
        """The length of one window."""
        return WINDOWS[self.window]

    def current_window(self, now: datetime) -> tuple[datetime, datetime]:
        """Start and end of the window scored at ``now``: the one ``now`` falls in, or at an exact boundary the
        one that just ended."""
        now = as_utc(now)
        start = now.replace(minute=0, second=0, microsecond=0)
        if self.window == "day":
            start = start.replace(hour=0)
        if start == now:
            start -= self.size
        return start, start + self.size

    def as_json(self) -> dict[str, Any]:
        """JSON-ready, with the guard's values in force; ``min_value`` as an exact string."""
        return {"by": list(self.by), "window": self.window, "metric": self.metric, "method": self.method,
                "threshold": self.threshold, "baseline": self.baseline, "min_windows": self.required_windows,
                "min_value": str(self.required_value), "alpha": self.alpha, "floor_ratio": self.floor_ratio}


@dataclass(frozen=True)
class Spike:
    """A key whose scored window is far above its own baseline."""

    dimension: str
    key: str
    """The key (``(none)`` for events without one; ``(unknown)`` for a call without a model)."""
    window: str
    window_start: datetime
    window_end: datetime
    """The end of the window; usage is counted up to ``min(window_end, now)`` (see ``partial``)."""
    partial: bool
    """Whether the window was still in progress: ``value`` is its usage so far."""
    metric: str
    value: int | Decimal
    """Exact: an ``int`` for requests and tokens, a ``Decimal`` for cost and credits."""
    baseline: Decimal
    """The median (``mad``) or the EWMA mean (``ewma``) of the baseline windows."""
    scale: Decimal
    """The deviation the score is measured in, after the floor."""
    score: float
    method: str
    threshold: float
    baseline_windows: int
    """How many baseline windows had events."""

    @property
    def id(self) -> tuple[str, str, datetime]:
        """What makes a spike the same spike: dimension, key and window."""
        return self.dimension, self.key, self.window_start

    @property
    def message(self) -> str:
        """One line for people."""
        centre = "median" if self.method == "mad" else "EWMA mean"
        so_far = " so far" if self.partial else ""
        return (f"{self.dimension} {self.key}: {_amount(self.metric, self.value)} "
                f"{window_text(self.window, self.window_start)}{so_far}, against a {centre} of "
                f"{_amount(self.metric, self.baseline, False)} per {self.window}: score {self.score:.1f} "
                f"({self.method}, threshold {self.threshold:g}).")

    def as_json(self) -> dict[str, Any]:
        """JSON-ready: money, credits, baseline and scale as exact decimal strings; times in ISO 8601."""
        return {"dimension": self.dimension, "key": self.key, "window": self.window,
                "window_start": self.window_start.isoformat(), "window_end": self.window_end.isoformat(),
                "partial": self.partial, "metric": self.metric,
                "value": self.value if isinstance(self.value, int) else str(self.value),
                "baseline": str(self.baseline), "scale": str(self.scale), "score": round(self.score, 6),
                "method": self.method, "threshold": self.threshold, "baseline_windows": self.baseline_windows,
                "message": self.message}


def _amount(metric: str, value: int | Decimal, noun: bool = True) -> str:
    if metric == "cost_usd":
        return f"cost {usd(value)}" if noun else usd(value)
    text = count(value) if isinstance(value, int) else quantity(tidy(value))
    return f"{text} {'tokens' if metric == 'total_tokens' else metric}" if noun else text


def window_text(window: str, start: datetime) -> str:
    """The window from ``start``, for people: ``in the hour from 2026-11-20 11:00 UTC``, ``on 2026-11-20 (UTC)``."""
    return f"in the hour from {start:%Y-%m-%d %H:%M} UTC" if window == "hour" else f"on {start:%Y-%m-%d} (UTC)"


def as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ConfigurationError(f"now {value.isoformat()} has no time zone: pass an aware datetime (UTC).")
    return value.astimezone(timezone.utc)


def detect_spikes(source: EventSource, rules: SpikeRules | None = None, *, now: datetime | None = None) -> list[Spike]:
    """The spikes at ``now`` (default: the current time) under ``rules`` (default :class:`SpikeRules`), most
    severe first: one SQL aggregate per watched dimension, each key scored against its own baseline."""
    rules = SpikeRules() if rules is None else rules
    if not isinstance(rules, SpikeRules):
        raise ConfigurationError(f"rules must be a SpikeRules, like SpikeRules(window='day'); got "
                                 f"{type(rules).__name__}.")
    now = datetime.now(timezone.utc) if now is None else as_utc(now)
    start, end = rules.current_window(now)
    since = start - rules.baseline * rules.size
    spikes = []
    for dimension in rules.by:
        for key, (values, counts) in _series(source, rules, dimension, since, now).items():
            spike = _score(rules, dimension, key, values, counts, start, end, partial=now < end)
            if spike is not None:
                spikes.append(spike)
    spikes.sort(key=lambda s: (-s.score, s.dimension, s.key))
    return spikes


def _series(source: EventSource, rules: SpikeRules, dimension: str, since: datetime,
            until: datetime) -> dict[str, tuple[list[Decimal], list[int]]]:
    """Per key: the metric and the event count of each window from ``since`` (zero-filled), the scored last."""
    column = DIMENSIONS[dimension]
    bucket = source.hour() if rules.window == "hour" else source.day()
    where = "timestamp >= ? AND timestamp < ?" + ("" if rules.metric == "credits" else
                                                   f" AND event_type NOT IN {_PRODUCT}")
    params = [source.moment(since), source.moment(until)]
    exact: ExactSum | None = {"cost_usd": source.cost_sum(), "credits": source.credit_sum()}.get(rules.metric)
    sums: tuple[str, ...] = exact.aggregates if exact is not None else (
        ("sum(total_tokens)",) if rules.metric == "total_tokens" else ())  # requests: the count(*) itself
    sql = (f"SELECT {column}, {bucket}, {', '.join(('count(*)', *sums))} FROM {source.table} WHERE {where} "
           f"GROUP BY 1, 2")
    empty = "(unknown)" if dimension == "model" else NONE
    n = rules.baseline + 1
    out: dict[str, tuple[list[Decimal], list[int]]] = {}

    def slot(key: Any, text: Any) -> tuple[list[Decimal], list[int], int] | None:
        try:
            at = datetime.strptime(str(text), _BUCKET_FORMAT[rules.window]).replace(tzinfo=timezone.utc)
        except ValueError:
            return None  # a timestamp the store could not have written: not ours to score
        index = (at - since) // rules.size
        if not 0 <= index < n:
            return None
        values, counts = out.setdefault(empty if key is None else str(key), ([Decimal(0)] * n, [0] * n))
        return values, counts, index

    left_out = False
    for row in source.query(sql, params):
        found = slot(row[0], row[1])
        if found is None:
            continue
        values, counts, index = found
        counts[index] += int(row[2])
        if exact is None:
            values[index] += Decimal(int(row[3] or 0) if sums else int(row[2]))
        else:
            value, slow = exact.value(tuple(row[3:]))
            values[index] += value
            left_out |= bool(slow)
    if left_out and exact is not None and exact.slow is not None:  # the few amounts SQL cannot sum exactly
        for key, text, value in source.query(f"SELECT {column}, {bucket}, {rules.metric} FROM {source.table} "
                                             f"WHERE {where} AND {exact.slow}", params):
            found = slot(key, text)
            if found is not None:
                found[0][found[2]] += Decimal(value)
    return out


def _median(values: Sequence[Decimal]) -> Decimal:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _centre_and_scale(rules: SpikeRules, history: Sequence[Decimal]) -> tuple[Decimal, Decimal]:
    if rules.method == "mad":
        centre = _median(history)
        deviations = [abs(v - centre) for v in history]
        scale = MAD_SCALE * _median(deviations)
        if not scale:
            scale = MEAN_AD_SCALE * sum(deviations, Decimal(0)) / len(deviations)
        return centre, scale
    alpha = Decimal(str(rules.alpha))
    mean, variance = history[0], Decimal(0)
    for value in history[1:]:
        diff = value - mean
        mean += alpha * diff
        variance = (1 - alpha) * (variance + alpha * diff * diff)
    return mean, variance.sqrt()


def _score(rules: SpikeRules, dimension: str, key: str, values: list[Decimal], counts: list[int],
           start: datetime, end: datetime, *, partial: bool) -> Spike | None:
    current, history = values[-1], values[:-1]
    with_data = sum(1 for c in counts[:-1] if c)
    if with_data < rules.required_windows or current < rules.required_value:
        return None  # the guard: too little history, or too little usage to matter
    with localcontext(_MATH):
        centre, scale = _centre_and_scale(rules, history)
        floor = max(Decimal(str(rules.floor_ratio)) * abs(centre), rules.required_value / Decimal(str(rules.threshold)))
        scale = max(scale, floor)
        score = float((current - centre) / scale)
    if score < rules.threshold:
        return None
    whole = rules.metric in ("requests", "total_tokens")
    return Spike(dimension=dimension, key=key, window=rules.window, window_start=start, window_end=end,
                 partial=partial, metric=rules.metric, value=int(current) if whole else tidy(current),
                 baseline=_shown(centre), scale=_shown(scale), score=score, method=rules.method,
                 threshold=rules.threshold, baseline_windows=with_data)


def _shown(value: Decimal) -> Decimal:
    return tidy(value.quantize(_SHOWN, context=_MATH))
