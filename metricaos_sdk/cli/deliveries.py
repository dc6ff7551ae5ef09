"""``metricaos deliver`` and ``metricaos deliveries``: move the outbox's events on, and see where they stand."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import click

from ..delivery.outbox import Outbox, Status
from ..errors import ConfigurationError
from ..storage.database import Database

__all__ = ["deliver", "deliveries"]

_DB = click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path), envvar="METRICAOS_DB",
                   default="metricaos.db", show_default=True, help="The SQLite file the meter records into.")


def _outbox(db_path: Path) -> Outbox:
    if not db_path.is_file():
        raise click.ClickException(f"No metrics database at {db_path}: pass --db PATH or set METRICAOS_DB.")
    try:
        Database(db_path)  # migrated (the delivery tables appear in m006)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None
    return Outbox(db_path)


def _when(epoch: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch)) if epoch else "never"


def _print(status: Status) -> None:
    line = (f"{status.destination}: {status.queued:,} queued, {status.delivered:,} delivered, "
            f"{status.skipped:,} skipped, {status.failed:,} failed (parked), {status.retried:,} retries")
    click.echo(line)
    click.echo(f"  last delivery: {_when(status.last_delivery_at)}"
               + (f"; failing since {_when(status.failing_since)}" if status.failing_since else "")
               + (f"; delivering: {status.holder}" if status.holder else ""))
    if status.last_error:
        click.echo(f"  last error: {status.last_error}")


@click.group()
def deliveries() -> None:
    """Where each delivery destination of a metrics database stands, and parked events sent again."""


@deliveries.command("status")
@_DB
@click.option("--json", "as_json", is_flag=True, help="Print JSON: one object per destination.")
def status(db_path: Path, as_json: bool) -> None:
    """Queued, delivered, skipped, failed (parked) and retried events per destination, and the last error."""
    outbox = _outbox(db_path)
    rows = outbox.status()
    outbox.close()
    if as_json:
        click.echo(json.dumps([asdict(s) for s in rows], indent=2))
        return
    if not rows:
        click.echo(f"No destination has delivered from {db_path} yet.")
    for row in rows:
        _print(row)


@deliveries.command("retry")
@_DB
@click.option("--destination", default=None, help="Only this destination's parked events (default: all).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: {\"retrying\": N}.")
def retry(db_path: Path, destination: str | None, as_json: bool) -> None:
    """Send the events a receiver refused (parked) again, at the next delivery round."""
    outbox = _outbox(db_path)
    if destination is not None and destination not in {s.destination for s in outbox.status()}:
        outbox.close()
        raise click.ClickException(f"No destination named {destination!r} in {db_path}: "
                                   "see `metricaos deliveries status`.")
    count = outbox.retry_parked(destination)
    outbox.close()
    if as_json:
        click.echo(json.dumps({"retrying": count}))
    else:
        click.echo(f"{count:,} parked event(s) will be sent again" + (f" to {destination}." if destination else "."))


@click.command()
@_DB
@click.option("--config", "config_path", type=click.Path(dir_okay=False, exists=True, path_type=Path), required=True,
              help="A TOML file naming the destinations (see docs/delivery.md).")
@click.option("--once", is_flag=True, help="Deliver what is committed now, then exit (for cron and serverless).")
@click.option("--timeout", type=click.FloatRange(min=0), default=60.0, show_default=True,
              help="With --once: give up after this many seconds (what is left stays queued).")
def deliver(db_path: Path, config_path: Path, once: bool, timeout: float) -> None:
    """Deliver a metrics database's events to the destinations in --config: until stopped, or --once."""
    from ..config import load_delivery_file
    from ..delivery.settings import destinations_from
    from ..delivery.worker import Delivery

    _outbox(db_path).close()
    try:
        destinations = destinations_from(load_delivery_file(config_path))
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None
    delivery = Delivery(str(db_path), destinations)
    if once:
        drained = delivery.flush(timeout)
        delivery.stop(0)
        outbox = Outbox(db_path)
        for row in outbox.status([d.name for d in destinations]):
            _print(row)
        outbox.close()
        if not drained:
            raise click.ClickException(f"Not everything was delivered within {timeout:g} s; it stays queued.")
        return
    delivery.start()
    click.echo(f"Delivering from {db_path} to {', '.join(d.name for d in destinations)}; Ctrl-C to stop.")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        click.echo("Stopping: delivering what is committed (up to 10 s) ...")
        delivery.stop(10.0)
