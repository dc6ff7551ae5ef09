"""The ``metricaos`` command line: one click group, one module per command group."""

from __future__ import annotations

import click

from .._version import __version__
from .alerts import alerts
from .dashboard import dashboard, dashboard_token
from .deliveries import deliver, deliveries
from .demo import demo
from .invoice import invoice
from .prices import prices
from .reconcile import reconcile_command
from .reports import events, export, margin, report, usage

__all__ = ["cli"]


@click.group()
@click.version_option(__version__, prog_name="metricaos")
def cli() -> None:
    """Meter LLM calls: usage, cost, quotas, and delivery to the systems that bill them."""


cli.add_command(alerts)
cli.add_command(dashboard)
cli.add_command(dashboard_token)
cli.add_command(demo)
cli.add_command(deliver)
cli.add_command(deliveries)
cli.add_command(invoice)
cli.add_command(prices)
cli.add_command(reconcile_command)
for _command in (report, usage, events, export, margin):
    cli.add_command(_command)
