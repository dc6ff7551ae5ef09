"""``metricaos demo``: run a simulated AI app offline and print its usage report."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import click

from ..errors import ConfigurationError
from ..formatting import plural


@click.command()
@click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="SQLite file to record into (default: a fresh temporary file).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def demo(db_path: Path | None, as_json: bool) -> None:
    """Run a small simulated support app (real openai client, simulated provider, no key, no network)
    through the meter and print the usage report per customer."""
    from .._demo_app import CUSTOMERS, run_demo
    from ..meter import Meter
    from ..reports import combine, totals_text

    with tempfile.TemporaryDirectory() as tmp:
        path = db_path or Path(tmp) / "metricaos-demo.db"
        try:
            meter = Meter(path)
        except ConfigurationError as exc:
            raise click.ClickException(str(exc)) from exc
        with meter:
            result = run_demo(meter)
            summaries = [meter.usage(customer) for customer in CUSTOMERS]
        if as_json:
            click.echo(json.dumps({"calls": result.calls, "refused": result.refused,
                                   "customers": [s.model_dump(mode="json") for s in summaries]}, indent=2))
            return
        click.echo(f"Metered {result.calls} LLM calls into {path if db_path else 'a temporary SQLite file'}.\n")
        for summary in summaries:
            click.echo(str(summary))
            for refusal in result.refusals.get(summary.customer_id, []):
                click.echo(f"  refused — QuotaExceeded: {refusal}")
            click.echo()
        grand = combine(s.totals for s in summaries)
        click.echo(f"All {len(summaries)} customers: {totals_text(grand)}; "
                   f"{plural(len(result.refused), 'call')} refused before sending.")
