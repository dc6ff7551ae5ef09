"""``metricaos alerts``: customers, users, features or models whose latest hour or day is far above their baseline."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import click

from ..errors import ConfigurationError
from ..reports.alerts import WATCHABLE, SpikeRules, detect_spikes, window_text
from ..reports.source import open_source

__all__ = ["alerts"]


def _moment(text: str | None) -> datetime:
    if text is None:
        return datetime.now(timezone.utc)
    value = text.strip()
    try:
        at = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value)
    except ValueError:
        raise click.ClickException(f"--now {text!r} is not an ISO 8601 moment: pass one like "
                                   f"2026-11-15T10:00:00Z.") from None
    return at.replace(tzinfo=timezone.utc) if at.tzinfo is None else at.astimezone(timezone.utc)


@click.command()
@click.option("--db", "where", envvar="METRICAOS_DB", default="metricaos.db", show_default=True,
              help="The SQLite file the meter records into, or a postgresql:// URL of the delivered events.")
@click.option("--by", multiple=True, metavar="DIMENSION",
              help=f"A dimension to watch, repeatable: {', '.join(WATCHABLE)} "
                   f"[default: {', '.join(SpikeRules.by)}].")
@click.option("--window", default=SpikeRules.window, show_default=True,
              help="hour or day: the window scored, and the size of each baseline window (UTC).")
@click.option("--metric", default=SpikeRules.metric, show_default=True,
              help="cost_usd, total_tokens, requests (LLM calls) or credits (every event).")
@click.option("--method", default=SpikeRules.method, show_default=True,
              help="mad (robust z-score around the median) or ewma (exponentially weighted mean and deviation).")
@click.option("--threshold", type=float, default=SpikeRules.threshold, show_default=True,
              help="The score from which a window is a spike.")
@click.option("--baseline", type=int, default=SpikeRules.baseline, show_default=True,
              help="How many windows before the scored one make the baseline.")
@click.option("--min-windows", type=int, default=None,
              help="Baseline windows that must have events for a key to be scored [default: half the baseline].")
@click.option("--min-value", default=None,
              help="The smallest value that may alert [default: 0.50 cost_usd, 20000 tokens, 20 requests or credits].")
@click.option("--alpha", type=float, default=SpikeRules.alpha, show_default=True,
              help="The EWMA weight of each newer window (ewma only).")
@click.option("--now", "now_text", default=None, metavar="ISO",
              help="Evaluate at this moment (ISO 8601; no zone means UTC) for reproducible output [default: now].")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: the rules, the scored window and the spikes.")
def alerts(where: str, by: tuple[str, ...], window: str, metric: str, method: str, threshold: float, baseline: int,
           min_windows: int | None, min_value: str | None, alpha: float, now_text: str | None, as_json: bool) -> None:
    """Spikes: keys whose usage in the latest hour or day is far above their own baseline, most severe first."""
    now = _moment(now_text)
    try:
        rules = SpikeRules(by=by or SpikeRules.by, window=window, metric=metric, method=method, threshold=threshold,
                           baseline=baseline, min_windows=min_windows, min_value=min_value,  # type: ignore[arg-type]
                           alpha=alpha)
        source = open_source(where)
        try:
            spikes = detect_spikes(source, rules, now=now)
        finally:
            source.close()
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None
    start, end = rules.current_window(now)
    if as_json:
        click.echo(json.dumps({"now": now.isoformat(), "window_start": start.isoformat(),
                               "window_end": end.isoformat(), "partial": now < end, "rules": rules.as_json(),
                               "spikes": [s.as_json() for s in spikes]}, indent=2))
        return
    when = window_text(rules.window, start)
    how = (f"{rules.metric} by {', '.join(rules.by)}; {rules.method}, threshold {rules.threshold:g}, "
           f"baseline {rules.baseline} {rules.window}s")
    if not spikes:
        click.echo(f"No spikes {when} ({how}).")
        return
    click.echo(f"{len(spikes)} spike{'' if len(spikes) == 1 else 's'} {when} ({how}):")
    for spike in spikes:
        click.echo(f"  {spike.message}")
