"""``metricaos demo``: run a simulated AI app offline and print its usage report."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import click


@click.command()
@click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="SQLite file to record into (default: a fresh temporary file).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def demo(db_path: Path | None, as_json: bool) -> None:
    """Run a small simulated support app (real openai client, simulated provider, no key, no network)
    through the meter and print the usage report per customer."""
    from .._demo_app import CUSTOMERS, run_demo
    from ..meter import Meter

    with tempfile.TemporaryDirectory() as tmp:
        path = db_path or Path(tmp) / "metricaos-demo.db"
        with Meter(path) as meter:
            result = run_demo(meter)
            summaries = [meter.usage(customer) for customer in CUSTOMERS]
        if as_json:
            click.echo(json.dumps({"calls": result.calls, "refused": result.refused,
                                   "customers": [s.model_dump(mode="json") for s in summaries]}, indent=2))
            return
        click.echo(f"Metered {result.calls} LLM calls into {path if db_path else 'a temporary SQLite file'}.\n")
        for summary in summaries:
            click.echo(str(summary) + "\n")
        for refusal in result.refused:
            click.echo(f"QuotaExceeded: {refusal}")
