"""The business page: cost, revenue and credits by day; top customers, features, models and actions; margin
per customer; unpriced models and the estimated-usage share; where each delivery destination stands; alerts.

The numbers are :class:`~metricaos_sdk.reports.business.BusinessOverview`'s, the delivery outbox's and the
spike detector's, each marked with the CLI output it equals: ``report.<by>:`` (``metricaos report --by <by>
--since … --until … --json``), ``margin:`` (``metricaos margin --period … --json``), ``deliveries:``
(``metricaos deliveries status --json``), ``alerts:`` (``metricaos alerts --now … --json``) and ``business:``
(``/api/business``, for what no command prints alone: the period's revenue and revenue by day).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ..formatting import quantity, usd
from ..reports.usage_report import ReportRow
from . import charts
from .data import Period, Store
from .pages import card, esc, num, stat, table

__all__ = ["business_body"]

_TOP = 8


def _head(store: Store, period: Period) -> str:
    title = period.since.strftime("%B %Y") if period.is_month else period.since.strftime("%A %d %B %Y")
    unit = "month" if period.is_month else "day"
    current = store.clock().strftime("%Y-%m" if period.is_month else "%Y-%m-%d")
    links = [(f"‹ previous {unit}", period.step(-1).name), (f"this {unit}", current), (f"next {unit} ›",
                                                                                     period.step(1).name)]
    on = ' class="mx-on"'
    nav = "".join(f'<a href="/?period={esc(name)}"{on if name == period.name else ""}>{esc(label)}</a>'
                  for label, name in links)
    return (f'<header class="mx-top"><div><div class="mx-brand">MetricaOS · business overview</div>'
            f'<h1>{esc(title)}</h1><p class="mx-sub">{num(period.since.isoformat(), "utc")} to '
            f'{num(period.until.isoformat(), "utc")} · billable usage unless marked</p></div>'
            f'<nav class="mx-nav" aria-label="Period">{nav}</nav></header>')


def _stats(ov: Any) -> str:
    t = ov.total
    items = [
        stat("AI cost (billable)", num(t.billable.cost_usd, "usd", "report.day:total.billable.cost_usd"),
             "non-billable " + num(t.non_billable.cost_usd, "usd", "report.day:total.non_billable.cost_usd")),
        stat("Revenue", num(ov.revenue, "usd", "business:revenue") if ov.revenue is not None else "—",
             "from the price plans' invoices" if ov.revenue is not None else "no price plans"),
        stat("Credits", num(t.billable.credits, "quantity", "report.day:total.billable.credits")),
        stat("Calls", num(t.billable.requests, "count", "report.day:total.billable.requests"),
             num(t.billable.failed_requests, "count", "report.day:total.billable.failed_requests") + " failed"),
        stat("Tokens", num(t.billable.total_tokens, "count", "report.day:total.billable.total_tokens")),
        stat("Unpriced calls", num(ov.unpriced_share, "percent", "report.day:unpriced_share"),
             "cost unknown, not $0"),
        stat("Estimated usage", num(ov.estimated_share, "percent", "report.day:estimated_share"),
             "calls without reported usage"),
    ]
    return card("", f'<div class="mx-stats">{"".join(items)}</div>')


def _daily(ov: Any) -> str:
    days = [d.day for d in ov.by_day]
    series = [charts.Series("AI cost", [d.cost_usd for d in ov.by_day], charts.COLORS["cost"])]
    if any(d.revenue is not None for d in ov.by_day):
        series.append(charts.Series("Revenue", [d.revenue or Decimal(0) for d in ov.by_day], charts.COLORS["revenue"]))
    money = charts.daily_lines(days, series, usd, title="AI cost and revenue per day", axis_title="USD", width=540)
    credits = charts.daily_bars(days, [d.credits for d in ov.by_day], quantity,
                                title="Credits per day", axis_title="credits", color=charts.COLORS["credits"],
                                width=540, height=260)
    note = "" if len(series) > 1 else '<p class="mx-empty">Revenue by day is not known: only per period.</p>'
    return (f'<div class="mx-grid mx-g2">{card("AI cost per day" + (" and revenue" if len(series) > 1 else ""), money + note)}'
            f'{card("Credits per day", credits)}</div>')


def _bar(r: ReportRow, by: str) -> charts.Bar:
    """A row's AI cost; a cost that is partly unknown says how many calls had no price (never "$0" for them)."""
    t, where = r.total, f"report.{by}:rows[].total"
    if t.requests and t.unpriced_requests >= t.requests:
        return charts.Bar(r.key, 0, "", note="no price: {} calls", note_metric=f"{where}.unpriced_requests",
                          note_fmt="count", note_number=f"{t.unpriced_requests:,}", key=r.key)
    note = {"note": "+{} unpriced", "note_metric": f"{where}.unpriced_requests", "note_fmt": "count",
            "note_number": f"{t.unpriced_requests:,}"} if t.unpriced_requests else {}
    return charts.Bar(r.key, t.cost_usd, usd(t.cost_usd), metric=f"{where}.cost_usd", fmt="usd", key=r.key, **note)


def _top(rows: list[ReportRow], by: str, title: str, color: str) -> str:
    shown = [r for r in rows if r.total.requests][:_TOP]  # keys with calls: actions alone have no model
    svg = charts.hbars([_bar(r, by) for r in shown], title=f"{title}: AI cost", color=color, value_width=150)
    return card(title, svg)


def _actions(rows: list[ReportRow]) -> str:
    body = [[esc(r.key), num(r.total.requests, "count", "report.action:rows[].total.requests", key=r.key),
             num(r.total.cost_usd, "usd", "report.action:rows[].total.cost_usd", key=r.key),
             num(r.total.credits, "quantity", "report.action:rows[].total.credits", key=r.key)] for r in rows[:_TOP]]
    return card("Top actions", table(["Action", "Calls", "AI cost", "Credits"], body, right=(1, 2, 3),
                                     empty="No actions in this period."))


def _margins(ov: Any) -> str:
    rows = []
    for m in ov.margins:
        key = m.customer_id
        cls = "mx-neg" if m.margin < 0 else ""
        rows.append([f'<a href="/customer/{esc(_path(key))}">{esc(key)}</a>',
                     num(m.revenue, "usd", "margin:customers[].revenue", key=key),
                     num(m.cost_usd, "usd", "margin:customers[].cost_usd", key=key),
                     num(m.margin, "usd", "margin:customers[].margin", key=key, cls=cls),
                     num(m.margin_pct, "points", "margin:customers[].margin_pct", key=key, cls=cls)
                     if m.margin_pct is not None else "no revenue",
                     num(m.unpriced_requests, "count", "margin:customers[].unpriced_requests", key=key)])
    return card("Margin per customer", table(["Customer", "Revenue", "AI cost", "Margin", "Margin %", "Unpriced calls"],
                                             rows, right=(1, 2, 3, 4, 5), empty="No customers in this period."))


def _path(customer: str) -> str:
    from urllib.parse import quote

    return quote(customer, safe="")


def _unpriced(ov: Any) -> str:
    rows = [[esc(r.key), num(r.total.unpriced_requests, "count", "report.model:rows[].total.unpriced_requests", key=r.key),
             num(r.total.total_tokens, "count", "report.model:rows[].total.total_tokens", key=r.key)]
            for r in ov.unpriced_models]
    text = table(["Model", "Unpriced calls", "Tokens"], rows, right=(1, 2),
                 empty="Every model called has a price.")
    return card("Unpriced models", text + '<p class="mx-foot">Their cost is unknown and left out of every total: add '
                                          "their rates (see docs/pricing.md).</p>")


def _deliveries(statuses: list[dict[str, Any]] | None) -> str:
    if statuses is None:
        return card("Deliveries", '<p class="mx-empty">Delivery state lives in the SQLite file the meter records '
                                  "into; this dashboard reads a PostgreSQL store.</p>")
    rows = []
    for s in statuses:
        key = s["destination"]
        state = "failing" if s["failing_since"] else "queued" if s["queued"] else "ok" if s["delivered"] else "idle"

        def n(name: str, fmt: str = "count") -> str:
            return num(s[name], fmt, f"deliveries:[].{name}", key=key)  # noqa: B023 (used at once)

        last = n("last_delivery_at", "epoch") if s["last_delivery_at"] else "never"
        error = f'<div class="mx-err">{esc(s["last_error"])}</div>' if s["last_error"] else ""
        rows.append([f"{esc(key)}{error}", f'<span class="mx-pill mx-pill-{state}">{state}</span>', n("queued"),
                     n("delivered"), n("skipped"), n("failed"), n("retried"), last])
    return card("Deliveries", table(["Destination", "State", "Queued", "Delivered", "Skipped", "Parked", "Retries",
                                     "Last delivery"], rows, right=(2, 3, 4, 5, 6),
                                    empty="No destination has delivered from this store yet."))


def _alerts(spikes: list[Any]) -> str:
    rows = [[esc(s.dimension), esc(s.key),
             num(s.message, "text", f"alerts:spikes[{i}].message")] for i, s in enumerate(spikes[:10])]
    return card("Alerts (usage spikes now)", table(["Dimension", "Key", "What"], rows,
                                                   empty="No alerts: nothing is far above its own baseline."))


def business_body(store: Store, period: Period) -> str:
    """The business page's markup for ``period``."""
    ov = store.business(period)
    parts = [_head(store, period), _stats(ov), _daily(ov),
             f'<div class="mx-grid mx-g2">{_top(ov.top_customers, "customer", "Top customers", charts.COLORS["accent"])}'
             f'{_top(ov.top_features, "feature", "Top features", charts.COLORS["credits"])}</div>',
             f'<div class="mx-grid mx-g2">{_top(ov.top_models, "model", "Top models", charts.COLORS["cost"])}'
             f'{_actions(ov.top_actions)}</div>',
             _margins(ov),
             f'<div class="mx-grid mx-g2">{_unpriced(ov)}{_alerts(store.alerts())}</div>',
             _deliveries(store.deliveries())]
    foot = (f'<p class="mx-foot">Read-only view of {esc(store.source.description)} · as of '
            f'{esc(store.clock().strftime("%Y-%m-%d %H:%M UTC"))} · JSON: <a href="/api/business?period='
            f'{esc(period.name)}">/api/business</a></p>')
    return '<div class="mx-wrap">' + "".join(p if p.startswith(("<header", '<div class="mx-grid'))
                                             else f'<div class="mx-grid">{p}</div>' for p in parts) + foot + "</div>"
