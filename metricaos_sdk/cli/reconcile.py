"""``metricaos reconcile FILE``: our metered cost by UTC day and model against the provider's own cost export."""

from __future__ import annotations

import json
import sys
from datetime import date, datetime, timezone
from pathlib import Path

import click

from ..errors import ConfigurationError
from ..formatting import count, plural, usd
from ..reports.reconcile import Progress, Reconciliation, parse_costs, parse_tolerance, reconcile
from ..reports.source import open_source

__all__ = ["reconcile_command", "reconciliation_text"]

_SIZED = ("no_model_charges", "estimated_usage", "unattributed_calls")
"""Explanations whose own amount is printed beside them (the unpriced calls' estimate is in their text)."""


def _moment(value: str | None, option: str) -> datetime | None:
    """``2026-11-01`` (midnight UTC) or an ISO time (UTC when it names no zone)."""
    if value is None:
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
        moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        raise click.ClickException(f"{option} {value!r} is not a date: pass 2026-11-01 or "
                                   f"2026-11-01T12:00:00Z.") from None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


def reconciliation_text(result: Reconciliation, name: str, where: str) -> str:
    """The reconciliation as printed: a line per day and model, its explanations indented below it, the total."""
    since = result.since.date().isoformat() if result.since else "the start"
    until = result.until.date().isoformat() if result.until else "now"
    out = [f"{name} ({result.format}) against {result.provider} calls in {where}, {since} to {until} (UTC, end "
           f"exclusive); tolerance {result.tolerance}", ""]
    width = max([len(r.label) for r in result.rows] + [5])
    head = f"{'day':<10}  {'model':<{width}}  {'provider':>12}  {'ours':>12}  {'difference':>12}  status"
    out += [head, "-" * len(head)]
    for r in result.rows:
        theirs = usd(r.provider_amount) if r.provider_amount is not None else "-"
        diff = ("+" if r.difference > 0 else "") + usd(r.difference)
        out.append(f"{r.day.isoformat():<10}  {r.label:<{width}}  {theirs:>12}  {usd(r.our_amount):>12}  "
                   f"{diff:>12}  {r.status.replace('_', ' ')}")
        for e in r.explanations:
            size = [plural(e.calls, "call")] if e.calls else []
            size += [f"{count(e.tokens)} tokens"] if e.tokens else []
            size += [usd(e.amount)] if e.amount is not None and e.kind in _SIZED else []
            share = f": {'+' if e.explains > 0 else ''}{usd(e.explains)}" if e.explains else ""
            out.append(f"{'':<10}    - {e.text}{' (' + ', '.join(size) + ')' if size else ''}{share}")
    total = result.provider_total - result.our_total
    out += ["-" * len(head),
            f"{'total':<10}  {'':<{width}}  {usd(result.provider_total):>12}  {usd(result.our_total):>12}  "
            f"{('+' if total > 0 else '') + usd(total):>12}  {'matches' if result.matches else 'differs'}"]
    return "\n".join(out)


@click.command("reconcile")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--db", "db", envvar="METRICAOS_DB", default="metricaos.db", show_default=True,
              help="The SQLite file the meter records into, or a postgresql:// URL of the delivered events.")
@click.option("--provider", default=None,
              help="The events.provider to compare with (default: the file's, openai or anthropic).")
@click.option("--since", default=None, help="First day (UTC, inclusive; default: the export's first day).")
@click.option("--until", default=None, help="End (UTC, exclusive; default: the day after the export's last).")
@click.option("--tolerance", default="0.01,1%", show_default=True,
              help="A difference that still matches: dollars (0.01), a share of the provider's amount (1%), or both "
                   "(whichever is larger).")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON (money as exact strings).")
def reconcile_command(file: Path, db: str, provider: str | None, since: str | None, until: str | None,
                      tolerance: str, as_json: bool) -> None:
    """Our metered cost by UTC day and model against the provider's cost export FILE (OpenAI Costs API JSON or
    console CSV, Anthropic cost report JSON), with what explains each difference."""
    try:
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"Cannot read {file} as UTF-8 text ({exc}): pass the export as saved.") from None
    stderr = sys.stderr
    # click draws a bar only on a terminal; hidden also drops the label it would print once when piped.
    with click.progressbar(length=1000, label=f"Reconciling {file.name}", file=stderr,
                           hidden=not stderr.isatty()) as bar:
        state = {"done": 0}

        def advance(start: int, share: int) -> Progress:
            def report(fraction: float) -> None:
                target = start + int(share * fraction)
                if target > state["done"]:
                    bar.update(target - state["done"])
                    state["done"] = target
            return report

        try:
            window = (_moment(since, "--since"), _moment(until, "--until"))
            costs = parse_costs(text, str(file), progress=advance(0, 400))
            source = open_source(db)
            try:
                result = reconcile(source, costs, provider=provider, since=window[0], until=window[1],
                                   tolerance=parse_tolerance(tolerance), progress=advance(400, 600))
            finally:
                source.close()
        except ConfigurationError as exc:
            raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(result.as_json(), indent=2))
    else:
        click.echo(reconciliation_text(result, file.name, source.description))
