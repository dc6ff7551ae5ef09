"""``metricaos report``, ``usage``, ``events``, ``export`` and ``margin``: what the recorded events say, without code.

Every command reads a store given by ``--db`` (or ``METRICAOS_DB``): the SQLite file the meter records into, or
the ``postgresql://`` URL of the table the PostgreSQL destination fills. ``--json`` prints what the dashboard
serves, money as exact decimal strings.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, TypeVar

import click

from ..errors import ConfigurationError
from ..formatting import count, quantity, usd
from ..reports.source import EventSource, open_source
from ..reports.usage_report import DIMENSIONS, Filters, ReportRow, UsageReport, usage_report

__all__ = ["events", "export", "margin", "report", "usage"]

T = TypeVar("T")

DB_OPTION = click.option(
    "--db", "db", envvar="METRICAOS_DB", default="metricaos.db", show_default=True,
    help="The SQLite file the meter records into, or a postgresql:// URL of the delivered events table.")
TABLE_OPTION = click.option("--table", default="metricaos_events", show_default=True,
                            help="The events table, for a PostgreSQL --db (schema.table or table).")
JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print JSON (money as exact decimal strings).")


def parse_moment(value: str | None, name: str) -> datetime | None:
    """``2026-11-05`` (00:00 UTC that day) or an ISO 8601 moment (UTC when it names no zone)."""
    if value is None:
        return None
    try:
        if len(value) == 10:
            d = date.fromisoformat(value)
            return datetime(d.year, d.month, d.day, tzinfo=timezone.utc)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date or time: use 2026-11-05 or 2026-11-05T14:00:00Z.",
                                 param_hint=name) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def parse_period(value: str) -> tuple[datetime, datetime]:
    """A month ``2026-11`` (or a day ``2026-11-05``) as its UTC ``[start, end)``."""
    try:
        if len(value) == 7:
            start = datetime.strptime(value, "%Y-%m").replace(tzinfo=timezone.utc)
            end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
            return start, end
        day = parse_moment(value, "--period")
        assert day is not None
        return day, day + timedelta(days=1)
    except (ValueError, click.BadParameter):
        raise click.BadParameter(f"{value!r} is not a period: use a month (2026-11) or a day (2026-11-05).",
                                 param_hint="--period") from None


@contextmanager
def opened(db: str, table: str = "metricaos_events") -> Iterator[EventSource]:
    """The store behind ``--db``, closed afterwards; a store that cannot be read is a one-line CLI error."""
    schema, _, name = table.rpartition(".")
    try:
        source = open_source(db, table=name, schema=schema or "public")
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        yield source
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        source.close()


def progress(items: Iterable[T], length: int, label: str) -> Iterator[T]:
    """``items`` with a progress bar on stderr when it is a terminal, and nothing at all when it is not."""
    if not sys.stderr.isatty():
        yield from items
        return
    with click.progressbar(items, length=length, label=label, file=sys.stderr) as bar:
        yield from bar


def _row_text(row: ReportRow) -> str:
    t = row.total
    text = (f"{t.requests:>9,} calls {t.total_tokens:>14,} tokens "
            f"({count(t.input_tokens)} in, {count(t.cached_input_tokens)} cached, "
            f"{count(t.cache_write_tokens)} cache-write, {count(t.output_tokens)} out, "
            f"{count(t.reasoning_tokens)} reasoning)  {usd(t.cost_usd):>12}  {quantity(t.credits)} credits")
    if row.non_billable.events:
        text += (f"  [billable {usd(row.billable.cost_usd)} / {count(row.billable.requests)} calls; non-billable "
                 f"{usd(row.non_billable.cost_usd)} / {count(row.non_billable.requests)} calls]")
    notes = []
    if t.unpriced_requests:
        notes.append(f"{count(t.unpriced_requests)} unpriced ({t.unpriced_share:.1%})")
    if t.estimated_requests:
        notes.append(f"{count(t.estimated_requests)} estimated ({t.estimated_share:.1%})")
    if t.failed_requests:
        notes.append(f"{count(t.failed_requests)} failed")
    return text + (f"  — {', '.join(notes)}" if notes else "")


def report_text(rep: UsageReport) -> str:
    """The report as text: one line per key, then the total."""
    width = max([len(r.key) for r in rep.rows] + [5])
    since, until = (m.astimezone(timezone.utc) if m else None for m in (rep.filters.since, rep.filters.until))
    lines = [f"Usage by {rep.by}" + (f" from {since:%Y-%m-%d %H:%M} UTC" if since else "")
             + (f" until {until:%Y-%m-%d %H:%M} UTC" if until else "")]
    lines += [f"  {r.key:<{width}}  {_row_text(r)}" for r in rep.rows]
    lines.append(f"  {'total':<{width}}  {_row_text(rep.total)}")
    return "\n".join(lines)


@click.command()
@DB_OPTION
@TABLE_OPTION
@click.option("--by", "by", type=click.Choice(list(DIMENSIONS)), default="customer", show_default=True,
              help="What to group by.")
@click.option("--since", help="From this day or moment (inclusive; UTC).")
@click.option("--until", help="Until this day or moment (exclusive; UTC).")
@click.option("--customer", help="Only this customer's events.")
@click.option("--feature", help="Only this feature's events.")
@click.option("--model", help="Only this model's calls.")
@click.option("--environment", help="Only events of this environment.")
@JSON_OPTION
def report(db: str, table: str, by: str, since: str | None, until: str | None, customer: str | None,
           feature: str | None, model: str | None, environment: str | None, as_json: bool) -> None:
    """Tokens (each kind), requests, cost and credits grouped by customer, user, feature, model, provider, day,
    hour, environment or action; billable and non-billable apart; unpriced and estimated shares shown."""
    filters = Filters(since=parse_moment(since, "--since"), until=parse_moment(until, "--until"), customer=customer,
                      feature=feature, model=model, environment=environment)
    with opened(db, table) as source:
        rep = usage_report(source, by, filters)
    if as_json:
        click.echo(json.dumps(rep.as_json(), indent=2))
    else:
        click.echo(report_text(rep))


@click.command()
@DB_OPTION
@TABLE_OPTION
@click.argument("customer")
@click.option("--now", help="Compute as of this moment (default: now; UTC).")
@click.option("--customer-view", is_flag=True,
              help="Leave out what the calls cost you (cost_usd): what the customer's dashboard token is shown.")
@JSON_OPTION
def usage(db: str, table: str, customer: str, now: str | None, customer_view: bool, as_json: bool) -> None:
    """What CUSTOMER sees: plan, billing period, allowance, used, remaining, overage, by feature and user, recent
    history, projected end-of-period usage, and what happens at the limit."""
    from ..reports.customer import customer_usage, limits_for

    moment = parse_moment(now, "--now") or datetime.now(timezone.utc)
    with opened(db, table) as source:
        plan, limits = (limits_for(db, customer, moment) if source.dialect == "sqlite" else (None, []))
        view = customer_usage(source, customer, now=moment, limits=limits, plan=plan)
    if as_json:
        click.echo(json.dumps(view.as_json(include_cost=not customer_view), indent=2))
    else:
        click.echo(view.text(include_cost=not customer_view))


def iter_events(source: EventSource, filters: Filters, *, limit: int | None = None, newest_first: bool = False,
                batch: int = 5000) -> Iterator[dict[str, Any]]:
    """The events ``filters`` selects as JSON-ready dicts (``UsageEvent.model_dump(mode="json")``), read a batch
    at a time by keyset (timestamp, id), so a listing of millions holds one batch in memory."""
    from ..events import UsageEvent
    from ..storage.rows import EVENT_COLUMNS, events_from_rows

    names = list(EVENT_COLUMNS)
    columns = ", ".join(names)
    where, params = filters.where(source)
    order = "DESC" if newest_first else "ASC"
    after: tuple[Any, Any] | None = None
    left = limit
    while left is None or left > 0:
        page = batch if left is None else min(batch, left)
        cond = where
        extra: list[Any] = []
        if after is not None:
            op = "<" if newest_first else ">"
            keyset = f"(timestamp {op} ? OR (timestamp = ? AND id {op} ?))"
            cond = f"{where} AND {keyset}" if where else f"WHERE {keyset}"
            extra = [after[0], after[0], after[1]]
        rows = source.query(f"SELECT {columns} FROM {source.table} {cond} ORDER BY timestamp {order}, id {order} "
                            f"LIMIT {page}", [*params, *extra])
        if not rows:
            return
        if source.dialect == "sqlite":
            built = events_from_rows(names, rows)
        else:
            built = [UsageEvent.model_validate(dict(zip(names, r, strict=True))) for r in rows]
        for event in built:
            yield event.model_dump(mode="json")
        after = (rows[-1][names.index("timestamp")], rows[-1][names.index("id")])
        if left is not None:
            left -= len(rows)
        if len(rows) < page:
            return


@click.command()
@DB_OPTION
@TABLE_OPTION
@click.option("--customer", help="Only this customer's events.")
@click.option("--user", help="Only this user's events.")
@click.option("--feature", help="Only this feature's events.")
@click.option("--model", help="Only this model's calls.")
@click.option("--status", type=click.Choice(["ok", "error", "cancelled"]), help="Only calls that ended so.")
@click.option("--since", help="From this day or moment (inclusive; UTC).")
@click.option("--until", help="Until this day or moment (exclusive; UTC).")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="At most this many, newest first.")
@JSON_OPTION
def events(db: str, table: str, customer: str | None, user: str | None, feature: str | None, model: str | None,
           status: str | None, since: str | None, until: str | None, limit: int, as_json: bool) -> None:
    """Recorded events, newest first; ``--json`` prints one JSON object per line."""
    filters = Filters(since=parse_moment(since, "--since"), until=parse_moment(until, "--until"), customer=customer,
                      user=user, feature=feature, model=model, status=status)
    with opened(db, table) as source:
        for e in iter_events(source, filters, limit=limit, newest_first=True):
            if as_json:
                click.echo(json.dumps(e))
                continue
            cost = "unpriced" if e["cost_usd"] is None else usd(Decimal(e["cost_usd"]))
            what = e["model"] or e.get("action_name") or e.get("unit") or e["event_type"]
            click.echo(f"{e['timestamp'][:19]}  {e['event_type']:<15} {e['customer_id'] or '-':<12} "
                       f"{e['feature'] or '-':<12} {what:<22} {e['status']:<9} {e['total_tokens']:>9,} tokens  {cost}"
                       + ("" if e["billable"] else "  (not billable)"))


_INVOICE_COLUMNS = ["customer_id", "period_start", "period_end", "plan", "currency", "kind", "description", "feature",
                    "action", "quantity", "unit", "unit_price", "amount"]
_STAGES = ("raw", "metered", "billable", "invoiced")


@click.command()
@DB_OPTION
@TABLE_OPTION
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl", "invoice"]), required=True,
              help="csv / jsonl: the events; invoice: invoice lines per customer with the four stages (CSV).")
@click.option("--period", help="A month (2026-11) or a day (2026-11-05); default: everything (invoice: required).")
@click.option("--customer", help="Only this customer.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), default="-",
              help="Write here instead of stdout.")
def export(db: str, table: str, fmt: str, period: str | None, customer: str | None, output: str) -> None:
    """Export the events (CSV or JSON lines) or the period's invoice lines (``--format invoice``)."""
    bounds = parse_period(period) if period else (None, None)
    if fmt == "invoice" and period is None:
        raise click.BadParameter("an invoice export needs a period: pass --period 2026-11.", param_hint="--period")
    with opened(db, table) as source, click.open_file(output, "w", encoding="utf-8", atomic=output != "-") as out:
        if fmt == "invoice":
            if source.dialect != "sqlite":
                raise click.ClickException("Invoices are computed from the SQLite file the meter records into (its "
                                           "price plans live there): pass that file as --db.")
            _export_invoices(db, period or "", customer, out)
            return
        filters = Filters(since=bounds[0], until=bounds[1], customer=customer)
        total = usage_report(source, "customer", filters).total.total.events
        rows = progress(iter_events(source, filters), total, "Exporting events")
        if fmt == "jsonl":
            for e in rows:
                out.write(json.dumps(e) + "\n")
            return
        from ..storage.rows import EVENT_COLUMNS

        writer = csv.writer(out)
        writer.writerow(EVENT_COLUMNS)
        for e in rows:
            writer.writerow(["" if e[c] is None else json.dumps(e[c], sort_keys=True) if isinstance(e[c], dict)
                             else e[c] for c in EVENT_COLUMNS])


def _export_invoices(db: str, period: str, customer: str | None, out: Any) -> None:
    from ..billing import Billing

    writer = csv.writer(out)
    stage_columns = [f"{stage}_{name}" for stage in _STAGES for name in ("events", "requests", "tokens", "cost_usd",
                                                                         "credits")]
    writer.writerow(_INVOICE_COLUMNS + stage_columns)
    with Billing(db) as billing:
        customers = [customer] if customer else billing.subscriptions.customers()
        for cid in progress(customers, len(customers), "Invoicing"):
            inv = billing.invoice(cid, period)
            stages = []
            for stage in _STAGES:
                q = getattr(inv.stages, stage)
                values = q.as_dict() if q is not None else {}
                stages += [values.get(name, "") for name in ("events", "requests", "tokens", "cost_usd", "credits")]
            for line in inv.lines:
                writer.writerow([cid, inv.period_start.isoformat(), inv.period_end.isoformat(), inv.plan, inv.currency,
                                 line.kind, line.description, line.feature or "", line.action or "",
                                 "" if line.quantity is None else line.quantity, line.unit or "",
                                 "" if line.unit_price is None else line.unit_price, line.amount, *stages])


@click.command()
@DB_OPTION
@TABLE_OPTION
@click.option("--period", required=True, help="A month (2026-11) or a day (2026-11-05).")
@click.option("--revenue", "revenue_file", type=click.Path(dir_okay=False),
              help="A CSV of customer_id,revenue[,period]; default: the invoices of the customers' price plans.")
@JSON_OPTION
def margin(db: str, table: str, period: str, revenue_file: str | None, as_json: bool) -> None:
    """Revenue against AI cost per customer and the gross margin, negative-margin customers first."""
    from ..reports.margin import invoice_revenue, margins, read_revenue

    start, end = parse_period(period)
    try:
        if revenue_file:
            revenue = read_revenue(revenue_file, period=period)
        elif db.startswith(("postgresql://", "postgres://")):
            raise click.ClickException("Without --revenue the revenue comes from the invoices of the SQLite file the "
                                       "meter records into: pass --revenue revenue.csv for a PostgreSQL store.")
        else:
            revenue = invoice_revenue(db, period)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None
    with opened(db, table) as source:
        rows = margins(source, revenue, since=start, until=end)
    if as_json:
        click.echo(json.dumps({"period": period, "customers": [m.as_json() for m in rows]}, indent=2))
        return
    click.echo(f"Margin {period} (revenue {'from ' + revenue_file if revenue_file else 'from the price plans'})")
    for m in rows:
        pct = "no revenue" if m.margin_pct is None else f"{m.margin_pct}%"
        flag = "  ← negative" if m.margin < 0 else ""
        unpriced = f"  ({count(m.unpriced_requests)} unpriced calls: cost understated)" if m.unpriced_requests else ""
        click.echo(f"  {m.customer_id:<16} revenue {usd(m.revenue):>12}  AI cost {usd(m.cost_usd):>12}  "
                   f"margin {usd(m.margin):>12} ({pct}){flag}{unpriced}")
