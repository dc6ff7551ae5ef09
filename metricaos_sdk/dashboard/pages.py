"""The page shell and the pieces every page is built of; every value that goes in is escaped here.

Numbers are written by :mod:`metricaos_sdk.formatting` and wrapped by :func:`num`, which marks them with
``data-metric="<source>:<path>"`` (where the number is in the JSON the CLI prints: ``usage:used``,
``report.customer:rows[].total.cost_usd`` …), ``data-format`` (the formatting helper that wrote it) and, for
a row of a list, ``data-key`` (the row's ``key``, ``customer_id`` or ``destination``) — so a test can check
each number on a page against the CLI's ``--json`` output. The CSS is ``dashboard.css`` (package data),
inlined: no file is fetched, no script runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from decimal import Decimal
from functools import lru_cache
from html import escape
from importlib import resources
from typing import Any

from ..formatting import count, quantity, usd, usd_per_call

__all__ = ["FORMATS", "amount_format", "card", "document", "error_page", "esc", "fragment", "num", "percent",
           "stat", "table", "utc"]


def esc(value: object) -> str:
    """Text or an attribute value, escaped (quotes too)."""
    return escape(str(value), quote=True)


def percent(value: float | Decimal) -> str:
    """A share as a percentage with one decimal: ``12.5%``."""
    return f"{float(value):.1%}"


def utc(value: datetime | str) -> str:
    """A moment as ``2026-12-01 00:00 UTC``."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return f"{moment:%Y-%m-%d %H:%M} UTC"


FORMATS: dict[str, Callable[[Any], str]] = {
    "usd": lambda v: usd(Decimal(v)), "usd_per_call": lambda v: usd_per_call(Decimal(v)),
    "quantity": lambda v: quantity(Decimal(v)), "count": lambda v: count(int(v)),
    "percent": lambda v: percent(float(v)), "points": lambda v: f"{Decimal(v)}%", "utc": utc,
    "epoch": lambda v: utc(datetime.fromtimestamp(float(v), timezone.utc)), "text": str,
}
"""How a page writes each kind of number (the name goes in ``data-format``)."""


def amount_format(unit: str) -> str:
    """The format of an amount in a quota unit: money for ``cost_usd``, else an exact quantity."""
    return "usd" if unit == "cost_usd" else "quantity"


def num(value: Any, fmt: str, metric: str | None = None, *, key: str | None = None, cls: str = "") -> str:
    """``value`` written with ``FORMATS[fmt]``, in a ``<span>`` marked with where it comes from; ``—`` for None."""
    if value is None:
        return '<span class="mx-na">—</span>'
    text = FORMATS[fmt](value)
    attrs = f' data-metric="{esc(metric)}" data-format="{esc(fmt)}"' if metric else ""
    if key is not None:
        attrs += f' data-key="{esc(key)}"'
    return f'<span class="mx-num{" " + esc(cls) if cls else ""}"{attrs}>{esc(text)}</span>'


def stat(label: str, value_html: str, note_html: str = "") -> str:
    """A labelled figure; ``value_html`` and ``note_html`` are markup (from :func:`num`, or text through
    :func:`esc`)."""
    extra = f'<div class="mx-stat-note">{note_html}</div>' if note_html else ""
    return (f'<div class="mx-stat"><div class="mx-stat-label">{esc(label)}</div>'
            f'<div class="mx-stat-value">{value_html}</div>{extra}</div>')


def card(title: str, body_html: str, *, cls: str = "") -> str:
    """A titled panel; ``body_html`` is markup."""
    heading = f"<h2>{esc(title)}</h2>" if title else ""
    return f'<section class="mx-card {esc(cls)}">{heading}{body_html}</section>'


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, right: Iterable[int] = (), empty: str) -> str:
    """A table; ``rows`` hold markup (escape text with :func:`esc`); columns in ``right`` align right."""
    right = set(right)
    body = ["<tr>" + "".join(f'<td class="mx-r">{c}</td>' if i in right else f"<td>{c}</td>"
                             for i, c in enumerate(row)) + "</tr>" for row in rows]
    if not body:
        return f'<p class="mx-empty">{esc(empty)}</p>'
    head = "".join(f'<th class="mx-r" scope="col">{esc(h)}</th>' if i in right else f'<th scope="col">{esc(h)}</th>'
                   for i, h in enumerate(headers))
    return f'<div class="mx-scroll"><table class="mx-table"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}' \
           f'</tbody></table></div>'


@lru_cache(maxsize=1)
def stylesheet() -> str:
    """The dashboard's CSS (every rule scoped under ``.mx``)."""
    return resources.files(__package__).joinpath("dashboard.css").read_text(encoding="utf-8")


def document(title: str, body_html: str) -> str:
    """A whole page: doctype, inline CSS, no script, a blank favicon (so the browser fetches nothing)."""
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<meta name="referrer" content="no-referrer"><link rel="icon" href="data:,">'
            f"<title>{esc(title)}</title><style>{stylesheet()}</style></head>"
            f'<body class="mx mx-page">{body_html}</body></html>')


def fragment(body_html: str) -> str:
    """The embeddable customer view: a ``<style>`` scoped under ``.mx`` and one ``<div class="mx mx-embed">`` —
    no ``<html>``, ``<head>`` or ``<body>``, to insert into a page as it is."""
    return f'<style>{stylesheet()}</style><div class="mx mx-embed" data-metricaos="customer">{body_html}</div>'


def error_page(status: int, title: str, message: str) -> str:
    """The page of a refused or failed request: the status, a title and the one-sentence reason."""
    return document(f"{status} {title}", f'<main class="mx-card mx-error"><div class="mx-brand">MetricaOS</div>'
                                         f'<h1>{status} {esc(title)}</h1><p>{esc(message)}</p></main>')
