"""``metricaos invoice``: a customer's invoice for a period, from the price plans stored in the database."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import click

from ..billing import Billing, Invoice
from ..errors import ConfigurationError

__all__ = ["invoice"]


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def invoice_json(inv: Invoice) -> dict[str, Any]:
    """The invoice as JSON-ready data (money and quantities as exact strings)."""
    def q(quantities: Any) -> dict[str, str]:
        return {k: str(v) for k, v in quantities.as_dict().items()}

    return {
        "customer_id": inv.customer_id, "plan": inv.plan, "currency": inv.currency,
        "period_start": inv.period_start.isoformat(), "period_end": inv.period_end.isoformat(),
        "total": str(inv.total), "cost_usd": str(inv.cost_usd), "margin": _money(inv.margin), "seats": str(inv.seats),
        "lines": [{"kind": line.kind, "description": line.description, "amount": str(line.amount),
                   "quantity": _money(line.quantity), "unit": line.unit, "unit_price": _money(line.unit_price),
                   "feature": line.feature, "action": line.action,
                   "events_where": line.events.sql()[0] if line.events else None,
                   "events_params": line.events.sql()[1] if line.events else None,
                   "adjustments": list(line.adjustments)} for line in inv.lines],
        "stages": {name: (q(getattr(inv.stages, name)) if getattr(inv.stages, name) is not None else None)
                   for name in ("raw", "metered", "billable", "invoiced")},
        "by_feature": {k: {"revenue": str(b.revenue), "cost_usd": str(b.cost_usd), "margin": _money(b.margin)}
                       for k, b in inv.by_feature.items()},
        "by_action": {k: {"revenue": str(b.revenue), "cost_usd": str(b.cost_usd), "margin": _money(b.margin)}
                      for k, b in inv.by_action.items()},
    }


@click.command()
@click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path), envvar="METRICAOS_DB",
              default="metricaos.db", show_default=True, help="The SQLite file the meter records into.")
@click.option("--customer", required=True, help="The customer to invoice.")
@click.option("--period", required=True, help="A month (2026-11), a day (2026-11-05) or a year (2026).")
@click.option("--plan", default=None, help="A stored price plan to price with (default: the customer's subscription).")
@click.option("--json", "as_json", is_flag=True, help="Print the invoice as JSON (money as exact strings).")
def invoice(db_path: Path, customer: str, period: str, plan: str | None, as_json: bool) -> None:
    """A customer's invoice for a period: lines traceable to their events, the four stages, and the margin."""
    if not db_path.is_file():
        raise click.ClickException(f"No metrics database at {db_path}: pass --db PATH or set METRICAOS_DB.")
    try:
        with Billing(db_path) as billing:
            inv = billing.invoice(customer, period, plan=plan)
            explanation = inv.explain() if inv.charges else None
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(invoice_json(inv), indent=2))
        return
    click.echo(str(inv))
    if explanation:
        click.echo(f"  why: {explanation}")
