"""The customer view: what a product shows its own customer (the operator's ``/customer/<id>`` page and the
embeddable fragment). Every number is :class:`~metricaos_sdk.reports.customer.CustomerUsage`'s — what
``metricaos usage CUSTOMER --json`` prints — marked with ``data-metric="usage:<path>"``.

The fragment leaves out what is the product's business, not its customer's: the AI cost.
"""

from __future__ import annotations

from decimal import Decimal

from ..reports.customer import CustomerUsage
from ..reports.usage_report import Sums
from . import charts
from .pages import FORMATS, amount_format, card, esc, num, stat, table

__all__ = ["UNIT_FIELD", "customer_body", "num_text", "unit_label"]

_SHOWN = 12  # rows of a breakdown drawn; the rest are counted

UNIT_FIELD = {"tokens": "total_tokens", "requests": "requests", "cost_usd": "cost_usd", "credits": "credits"}
"""The field of a usage row (:class:`Sums`) that counts each quota unit."""


def unit_label(unit: str) -> str:
    """How a unit is named after an amount (money is written with its ``$``)."""
    return {"cost_usd": "", "requests": "calls"}.get(unit, unit)


def _unit_of(sums: Sums, unit: str) -> Decimal:
    return Decimal(getattr(sums, UNIT_FIELD.get(unit, "total_tokens")))


def _summary(u: CustomerUsage) -> str:
    fmt, label = amount_format(u.unit), unit_label(u.unit)
    share = u.used_share
    if u.allowance is not None:
        value = f"{num_text(u.used, fmt)} of {num_text(u.allowance, fmt)}"
    else:
        value = num_text(u.used, fmt)
    caption = f"{label} used this {u.period}".strip() if label else f"used this {u.period}"
    gauge = charts.gauge(share, value, caption, title=f"{u.customer_id}: allowance used")
    over = u.projected is not None and u.allowance is not None and u.projected > u.allowance
    stats = [
        stat(f"Used{' (' + label + ')' if label else ''}", num(u.used, fmt, "usage:used")),
        stat("Remaining", num(u.remaining, fmt, "usage:remaining") if u.allowance is not None else "no limit"),
        stat("Allowance", num(u.allowance, fmt, "usage:allowance") if u.allowance is not None else "none"),
        stat("Projected at period end", num(u.projected, fmt, "usage:projected", cls="mx-neg" if over else ""),
             "over the allowance at this rate" if over else "at the rate so far"),
        stat("Calls", num(u.totals.requests, "count", "usage:totals.requests")),
        stat("Tokens", num(u.totals.total_tokens, "count", "usage:totals.total_tokens")),
        stat("Credits", num(u.totals.credits, "quantity", "usage:totals.credits")),
    ]
    if u.overage:
        stats.insert(2, stat("Over the allowance", num(u.overage, fmt, "usage:overage", cls="mx-neg")))
    callout = (f'<div class="mx-callout mx-callout-{esc(u.at_limit)}"><strong>At the limit:</strong> '
               f'{esc(u.at_limit_text)}</div>')
    return (f'<div class="mx-grid mx-g-top"><section class="mx-card mx-gaugebox">{gauge}</section>'
            f'<section class="mx-card"><div class="mx-stats">{"".join(stats)}</div>{callout}</section></div>')


def num_text(value: Decimal, fmt: str) -> str:
    """``value`` as :func:`~.pages.num` writes it, as plain text (for chart labels)."""
    return FORMATS[fmt](value)


def _breakdown(u: CustomerUsage, which: str, title: str) -> str:
    rows = sorted(getattr(u, which), key=lambda r: (-_unit_of(r.billable, u.unit), r.key))
    field, fmt = UNIT_FIELD.get(u.unit, "total_tokens"), amount_format(u.unit)
    bars = [charts.Bar(r.key, _unit_of(r.billable, u.unit), num_text(_unit_of(r.billable, u.unit), fmt),
                       metric=f"usage:{which}[].{field}", fmt=fmt, key=r.key) for r in rows[:_SHOWN]]
    svg = charts.hbars(bars, title=f"{title} ({unit_label(u.unit) or 'USD'})")
    more = f'<p class="mx-empty">and {len(rows) - _SHOWN:,} more</p>' if len(rows) > _SHOWN else ""
    return card(title, svg + more)


def _history(u: CustomerUsage, width: int) -> str:
    fmt, label = amount_format(u.unit), unit_label(u.unit) or "USD"
    days = [r.key for r in u.by_day]
    values = [_unit_of(r.billable, u.unit) for r in u.by_day]
    svg = charts.daily_bars(days, values, lambda v: num_text(v, fmt), title=f"{label} per day this period",
                            axis_title=label, width=width)
    return card(f"Daily usage ({label})", svg)


def _actions(u: CustomerUsage, *, show_cost: bool) -> str:
    headers = ["When", "Action", "Calls", "Credits"] + (["AI cost"] if show_cost else [])
    rows = []
    for i, a in enumerate(u.recent_actions):
        row = [num(a.at.isoformat(), "utc", f"usage:recent_actions[{i}].at"), esc(a.name),
               num(a.calls, "count", f"usage:recent_actions[{i}].calls"),
               num(a.credits, "quantity", f"usage:recent_actions[{i}].credits")]
        if show_cost:
            row.append(num(a.cost_usd, "usd_per_call", f"usage:recent_actions[{i}].cost_usd"))
        rows.append(row)
    return card("Recent actions", table(headers, rows, right=range(2, len(headers)), empty="No actions this period."))


def _limits(u: CustomerUsage) -> str:
    rows = []
    for i, lim in enumerate(u.limits):
        fmt = amount_format(lim.unit)
        scope = lim.feature or "all features"
        rows.append([esc(f"{unit_label(lim.unit) or 'USD'} · {lim.period}"), esc(scope),
                     f'<span class="mx-badge mx-badge-{esc(lim.mode)}">{esc(lim.mode)}</span>',
                     num(lim.used, fmt, f"usage:limits[{i}].used"), num(lim.limit, fmt, f"usage:limits[{i}].limit"),
                     num(lim.remaining, fmt, f"usage:limits[{i}].remaining"),
                     num(lim.resets_at.isoformat(), "utc", f"usage:limits[{i}].resets_at")])
    return card("Limits", table(["Limit", "Scope", "At the limit", "Used", "Allowance", "Remaining", "Resets"], rows,
                                right=(3, 4, 5), empty="No limits: usage is not capped."))


def customer_body(u: CustomerUsage, *, embed: bool = False) -> str:
    """The customer view's markup: header, gauge and figures, what happens at the limit, the daily history,
    usage by feature and by user, limits and recent actions. ``embed`` leaves out the AI cost and the page
    chrome (for the fragment)."""
    plan = f'<span class="mx-badge">{esc(u.plan)} plan</span>' if u.plan else ""
    period = (f'{num(u.period_start.isoformat(), "utc", "usage:period_start")} to '
              f'{num(u.period_end.isoformat(), "utc", "usage:period_end")}')
    head = (f'<header class="mx-top"><div><div class="mx-brand">Usage this {esc(u.period)}</div>'
            f'<h1>{esc(u.customer_id)}{plan}</h1><p class="mx-sub">Billing period {period} · the allowance resets '
            f'{num(u.period_end.isoformat(), "utc", "usage:period_end")}</p></div>')
    if not embed:
        head += (f'<div class="mx-stat"><div class="mx-stat-label">AI cost this period</div><div class="mx-stat-value">'
                 f'{num(u.totals.cost_usd, "usd", "usage:totals.cost_usd")}</div></div>')
    head += "</header>"
    parts = [head, _summary(u), _history(u, 700 if embed else 1100),
             f'<div class="mx-grid mx-g2">{_breakdown(u, "by_feature", "By feature")}'
             f'{_breakdown(u, "by_user", "By user")}</div>']
    if u.limits:
        parts.append(_limits(u))
    parts.append(_actions(u, show_cost=not embed))
    if embed:
        return "".join(parts[:1]) + "".join(f'<div class="mx-section">{p}</div>' for p in parts[1:])
    return "".join(p if p.startswith('<div class="mx-grid') else f'<div class="mx-grid">{p}</div>' for p in parts)

