"""Inline SVG charts, drawn in Python: a gauge, a daily bar chart, a daily line chart and horizontal bars.

No script, no library, no external file: each function returns an ``<svg>`` element as text, sized by its
``viewBox`` so it scales to its container. Every chart has a ``<title>`` and a ``<desc>`` (what a screen reader
says), axes carry labelled ticks, and each bar or point has its own ``<title>`` with the exact value. Values
come in as exact numbers with their text already written by :mod:`metricaos_sdk.formatting`; floats are used
only for geometry. Every text is escaped here: callers pass plain strings.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from html import escape

__all__ = ["COLORS", "Bar", "Series", "daily_bars", "daily_lines", "gauge", "hbars", "nice_ticks"]

COLORS = {"ink": "#1f2933", "muted": "#66788a", "grid": "#e4e9ee", "axis": "#b8c4ce", "accent": "#3b5bdb",
          "ok": "#2b8a3e", "warn": "#e67700", "over": "#c92a2a", "track": "#edf0f3", "cost": "#e8590c",
          "revenue": "#2b8a3e", "credits": "#7048e8"}

_ids = itertools.count(1)


def _id(prefix: str) -> str:
    return f"mx-{prefix}-{next(_ids)}"


def _a(value: object) -> str:
    """An attribute value, escaped."""
    return escape(str(value), quote=True)


def _metric(metric: str | None, fmt: str | None = None, key: str | None = None) -> str:
    """The ``data-metric`` (and ``data-format``, ``data-key``) attributes of a value (see ``pages.num``)."""
    if not metric:
        return ""
    return (f' data-metric="{_a(metric)}"' + (f' data-format="{_a(fmt)}"' if fmt else "")
            + (f' data-key="{_a(key)}"' if key is not None else ""))


def _open(kind: str, width: int, height: int, title: str, desc: str) -> str:
    tid, did = _id(f"{kind}-t"), _id(f"{kind}-d")
    return (f'<svg class="mx-chart mx-chart-{kind}" viewBox="0 0 {width} {height}" width="{width}" '
            f'height="{height}" role="img" '
            f'aria-labelledby="{tid} {did}" xmlns="http://www.w3.org/2000/svg" '
            f'font-family="inherit" preserveAspectRatio="xMidYMid meet">'
            f'<title id="{tid}">{escape(title)}</title><desc id="{did}">{escape(desc)}</desc>')


def nice_ticks(top: float, count: int = 4) -> list[float]:
    """Round tick values from 0 to at least ``top`` (``count`` steps of 1, 2, 2.5 or 5 × 10ⁿ)."""
    if top <= 0 or not math.isfinite(top):
        return [0.0, 1.0]
    raw = top / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    steps = max(1, math.ceil(top / step - 1e-9))
    return [i * step for i in range(steps + 1)]


def gauge(share: float | None, value_text: str, caption: str, *, title: str) -> str:
    """A half-circle gauge of ``share`` (used / allowance; ``None`` when there is no limit): the percentage
    and ``value_text`` in the middle, ``caption`` (short) under it. Green to 80 %, amber to 100 %, red beyond."""
    width, height, cx, cy, r, stroke = 260, 156, 130, 122, 96, 20
    shown = 0.0 if share is None else max(0.0, min(share, 1.0))
    color = COLORS["accent"] if share is None else (
        COLORS["ok"] if share < 0.8 else COLORS["warn"] if share < 1.0 else COLORS["over"])

    def point(fraction: float) -> tuple[float, float]:
        angle = math.pi * (1 - fraction)
        return cx + r * math.cos(angle), cy - r * math.sin(angle)

    x0, y0 = point(0)
    x1, y1 = point(1)
    track = f'M {x0:.1f} {y0:.1f} A {r} {r} 0 0 1 {x1:.1f} {y1:.1f}'
    desc = caption if share is None else f"{share:.0%} of the allowance used: {caption}"
    out = [_open("gauge", width, height, title, desc),
           f'<path d="{track}" fill="none" stroke="{COLORS["track"]}" stroke-width="{stroke}" stroke-linecap="round"/>']
    if shown > 0:
        xe, ye = point(shown)
        out.append(f'<path d="M {x0:.1f} {y0:.1f} A {r} {r} 0 0 1 {xe:.1f} {ye:.1f}" fill="none" stroke="{color}" '
                   f'stroke-width="{stroke}" stroke-linecap="round"/>')
    percent = "no limit" if share is None else f"{share:.0%}"
    out.append(f'<text x="{cx}" y="{cy - 30}" text-anchor="middle" font-size="32" font-weight="650" '
               f'fill="{COLORS["ink"]}">{escape(percent)}</text>')
    out.append(f'<text x="{cx}" y="{cy - 6}" text-anchor="middle" font-size="12.5" '
               f'fill="{COLORS["muted"]}">{escape(value_text)}</text>')
    if caption:
        out.append(f'<text x="{cx}" y="{cy + 24}" text-anchor="middle" font-size="11.5" '
                   f'fill="{COLORS["muted"]}">{escape(caption)}</text>')
    out.append("</svg>")
    return "".join(out)


@dataclass(frozen=True)
class Series:
    """One line of :func:`daily_lines`: a name for the legend, a value per day, its colour."""

    name: str
    values: Sequence[Decimal | int]
    color: str


def _day_label(day: str) -> str:
    return day[5:] if len(day) >= 10 else day  # "2026-11-03" -> "11-03"


def _frame(days: Sequence[str], top: float, fmt: Callable[[Decimal], str], width: int, height: int,
           left: int, bottom: int, axis_title: str) -> tuple[list[str], Callable[[float], float], float]:
    """Gridlines, y ticks (written with ``fmt``), x labels and axis titles; returns them, the y scale and the
    width of a day's slot."""
    ticks = nice_ticks(top)
    plot_h = height - bottom - 16
    plot_w = width - left - 12
    scale_top = ticks[-1] or 1.0

    def y(v: float) -> float:
        return 16 + plot_h * (1 - v / scale_top)

    slot = plot_w / max(len(days), 1)
    out = []
    for t in ticks:
        out.append(f'<line x1="{left}" x2="{width - 12}" y1="{y(t):.1f}" y2="{y(t):.1f}" '
                   f'stroke="{COLORS["grid"]}" stroke-width="1"/>')
        out.append(f'<text x="{left - 6}" y="{y(t) + 4:.1f}" text-anchor="end" font-size="11" '
                   f'fill="{COLORS["muted"]}">{escape(fmt(Decimal(repr(t))))}</text>')
    every = max(1, math.ceil(len(days) / 10))
    for i, day in enumerate(days):
        if i % every == 0 or i == len(days) - 1 and len(days) <= 10:
            out.append(f'<text x="{left + slot * (i + 0.5):.1f}" y="{height - bottom + 16}" text-anchor="middle" '
                       f'font-size="11" fill="{COLORS["muted"]}">{escape(_day_label(day))}</text>')
    out.append(f'<line x1="{left}" x2="{width - 12}" y1="{y(0):.1f}" y2="{y(0):.1f}" stroke="{COLORS["axis"]}"/>')
    out.append(f'<text x="{left + plot_w / 2:.0f}" y="{height - 4}" text-anchor="middle" font-size="11" '
               f'fill="{COLORS["muted"]}">day (UTC)</text>')
    out.append(f'<text x="12" y="{16 + plot_h / 2:.0f}" text-anchor="middle" font-size="11" fill="{COLORS["muted"]}" '
               f'transform="rotate(-90 12 {16 + plot_h / 2:.0f})">{escape(axis_title)}</text>')
    return out, y, slot


def daily_bars(days: Sequence[str], values: Sequence[Decimal | int], fmt: Callable[[Decimal], str], *, title: str,
               axis_title: str, color: str = COLORS["accent"], width: int = 720, height: int = 240) -> str:
    """A bar per day (``days`` as ``YYYY-MM-DD``), y axis ticks written with ``fmt``; each bar's ``<title>`` has
    the day and its exact value."""
    left, bottom = 64, 38
    top = max((float(v) for v in values), default=0.0)
    total = sum((Decimal(v) for v in values), Decimal(0))
    desc = f"{len(days)} days from {days[0]} to {days[-1]}; {fmt(total)} in all." if days else "No days."
    out = [_open("bars", width, height, title, desc)]
    frame, y, slot = _frame(days, top, fmt, width, height, left, bottom, axis_title)
    out += frame
    gap = min(6.0, slot * 0.25)
    for i, (day, value) in enumerate(zip(days, values, strict=True)):
        v = float(value)
        y0 = y(v)
        h = max(y(0) - y0, 1.0 if v > 0 else 0.0)
        out.append(f'<g class="mx-bar"><title>{escape(day)}: {escape(fmt(Decimal(value)))}</title>'
                   f'<rect x="{left + slot * i + gap / 2:.1f}" y="{y(0) - h:.1f}" width="{max(slot - gap, 1):.1f}" '
                   f'height="{h:.1f}" rx="2" fill="{color}"/></g>')
    out.append("</svg>")
    return "".join(out)


def daily_lines(days: Sequence[str], series: Sequence[Series], fmt: Callable[[Decimal], str], *, title: str,
                axis_title: str, width: int = 720, height: int = 260) -> str:
    """A line per series over ``days``, with a legend; each point's ``<title>`` has the day, series and value."""
    left, bottom = 72, 38
    top = max((float(v) for s in series for v in s.values), default=0.0)
    desc = "; ".join(f"{s.name}: {fmt(sum((Decimal(v) for v in s.values), Decimal(0)))} in all" for s in series)
    out = [_open("lines", width, height + 22, title, f"{len(days)} days. {desc}.")]
    frame, y, slot = _frame(days, top, fmt, width, height, left, bottom, axis_title)
    out += frame
    legend_x = left
    for s in series:
        out.append(f'<rect x="{legend_x}" y="{height + 8}" width="12" height="12" rx="2" fill="{s.color}"/>'
                   f'<text x="{legend_x + 17}" y="{height + 18}" font-size="12" fill="{COLORS["ink"]}">'
                   f'{escape(s.name)}</text>')
        legend_x += 30 + 8 * len(s.name)
    for s in series:
        points = [(left + slot * (i + 0.5), y(float(v))) for i, v in enumerate(s.values)]
        if len(points) > 1:
            path = " ".join(f"{'M' if i == 0 else 'L'} {x:.1f} {yy:.1f}" for i, (x, yy) in enumerate(points))
            out.append(f'<path d="{path}" fill="none" stroke="{s.color}" stroke-width="2.2" stroke-linejoin="round"/>')
        for (x, yy), day, value in zip(points, days, s.values, strict=True):
            out.append(f'<g class="mx-point"><title>{escape(day)} {escape(s.name)}: {escape(fmt(Decimal(value)))}'
                       f'</title><circle cx="{x:.1f}" cy="{yy:.1f}" r="{3 if len(days) <= 45 else 1.5}" '
                       f'fill="{s.color}"/></g>')
    out.append("</svg>")
    return "".join(out)


@dataclass(frozen=True)
class Bar:
    """One row of :func:`hbars`: its label, value (for the length), the value's text, and where the value comes
    from (``data-metric``, ``data-format``, ``data-key``: see ``pages.num``)."""

    label: str
    value: Decimal | int
    text: str
    metric: str | None = None
    fmt: str | None = None
    key: str | None = None
    note: str = ""
    """Written after the value, muted (``+4 unpriced``)."""
    note_metric: str | None = None
    note_fmt: str | None = None
    note_number: str = ""
    """The number inside ``note`` that ``note_metric`` marks (``note`` is ``{}`` around it: ``+{} unpriced``)."""


def _note(b: Bar) -> str:
    if not b.note:
        return ""
    before, _, after = b.note.partition("{}")
    number = (f'<tspan{_metric(b.note_metric, b.note_fmt, b.key)}>{escape(b.note_number)}</tspan>'
              if b.note_number else "")
    return (f'<tspan font-weight="400" fill="{COLORS["muted"]}"> {escape(before)}{number}{escape(after)}</tspan>')


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def hbars(bars: Sequence[Bar], *, title: str, color: str = COLORS["accent"], width: int = 520,
          value_width: int = 110) -> str:
    """Horizontal bars, largest value the full width, the value written beside each bar (with its
    ``data-metric``); a long label is shortened, whole in the row's ``<title>``."""
    label_w, value_w, row_h = 140, value_width, 26
    height = max(len(bars), 1) * row_h + 8
    desc = "; ".join(f"{b.label}: {b.text}" for b in bars) or "Nothing to show."
    out = [_open("hbars", width, height, title, desc)]
    top = max((float(b.value) for b in bars), default=0.0) or 1.0
    span = width - label_w - value_w - 8
    if not bars:
        out.append(f'<text x="0" y="20" font-size="13" fill="{COLORS["muted"]}">Nothing in this period.</text>')
    for i, b in enumerate(bars):
        y = 4 + i * row_h
        w = max(span * max(float(b.value), 0.0) / top, 2.0 if float(b.value) > 0 else 0.0)
        out.append(f'<g class="mx-hbar"><title>{escape(b.label)}: {escape(b.text)}</title>'
                   f'<text x="{label_w - 8}" y="{y + 16}" text-anchor="end" font-size="12" fill="{COLORS["ink"]}">'
                   f'{escape(_clip(b.label, 22))}</text>'
                   f'<rect x="{label_w}" y="{y + 5}" width="{span:.1f}" height="14" rx="3" fill="{COLORS["track"]}"/>'
                   f'<rect x="{label_w}" y="{y + 5}" width="{w:.1f}" height="14" rx="3" fill="{color}"/>'
                   f'<text x="{label_w + span + 8}" y="{y + 16}" font-size="12" font-weight="600" '
                   f'fill="{COLORS["ink"]}"><tspan{_metric(b.metric, b.fmt, b.key)}>{escape(b.text)}</tspan>'
                   f'{_note(b)}</text></g>')
    out.append("</svg>")
    return "".join(out)
