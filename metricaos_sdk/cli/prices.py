"""``metricaos prices``: the rates a model resolves to and why; models seen in the store without a price."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import click

__all__ = ["prices"]


def _fmt_prices(prices: dict[str, Any]) -> str:
    parts = []
    for key, value in prices.items():
        label = key.removesuffix("_mtok").replace("_kcount", "/1k")
        if isinstance(value, dict):
            tiers = ", ".join(f">{start:,} tok: {price}" for start, price in value["tiers"])
            parts.append(f"{label} {value['base']} ({tiers})")
        else:
            parts.append(f"{label} {value}")
    return "  ".join(parts) or "(free)"


def _print_explanation(info: dict[str, Any]) -> None:
    query = info["query"]
    where = f" ({query['provider']})" if query["provider"] else ""
    if not info["resolved"]:
        click.echo(
            f"{query['model']}{where}: no price in table {info['table_version']} "
            f"-> calls are recorded as {info['price_status']}."
        )
    else:
        click.echo(
            f"{query['model']}{where} -> {info['source']}:{info['model_resolved']}"
            f"  [{info['price_status']}, table {info['table_version']}]"
        )
    for step in info.get("steps", []):
        click.echo(f"  why: {step}")
    for note in info.get("notes", []):
        click.echo(f"  note: {note}")
    if info.get("names"):
        click.echo("  also written as: " + ", ".join(info["names"]))
    if info.get("rates"):
        click.echo("  rates (USD per million tokens; /1k = per 1,000):")
    for context, rows in info.get("rates", {}).items():
        click.echo(f"    {context}:")
        for row in rows:
            start = row["effective_from"] or "first price"
            click.echo(f"      from {start:<11}  {_fmt_prices(row['prices'])}   [{row['price_id']}]")


def _unpriced_rows(db: Path) -> list[dict[str, Any]]:
    if not db.is_file():
        raise click.ClickException(f"No metrics database at {db}: pass --db PATH or set METRICAOS_DB.")
    try:
        conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise click.ClickException(f"Cannot open {db} read-only: {exc}.") from None
    try:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(events)")}
        if not {"provider", "model", "price_status"} <= columns:
            raise click.ClickException(f"{db} has no events table with provider, model and price_status columns.")
        last = ", MAX(timestamp)" if "timestamp" in columns else ", NULL"
        rows = conn.execute(
            f"SELECT provider, model, COUNT(*){last} FROM events WHERE price_status = 'unpriced' "
            "GROUP BY provider, model ORDER BY COUNT(*) DESC, provider, model"
        ).fetchall()
    except sqlite3.Error as exc:
        raise click.ClickException(f"Cannot read {db}: {exc}.") from None
    finally:
        conn.close()
    return [{"provider": p, "model": m, "calls": n, "last_seen": t} for p, m, n, t in rows]


@click.command()
@click.argument("model", required=False)
@click.option(
    "--provider",
    "-p",
    help="The provider an event records: openai, azure_openai, anthropic, bedrock, vertex, anthropic_foundry, "
    "anthropic_aws, anthropic_google_cloud, deepseek, groq, mistral_ai, x_ai, gcp.gemini, openrouter, together, "
    "fireworks, ollama, vllm, litellm (default: guess from MODEL).",
)
@click.option("--unpriced", is_flag=True, help="List models seen in the store that have no price.")
@click.option(
    "--db",
    "db_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="SQLite store for --unpriced (default: METRICAOS_DB or metricaos.db).",
)
@click.option(
    "--rates",
    "rates_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="A .toml/.json rate file to apply on top of the bundled table.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def prices(
    model: str | None,
    provider: str | None,
    unpriced: bool,
    db_path: Path | None,
    rates_path: Path | None,
    as_json: bool,
) -> None:
    """Show the rates MODEL resolves to and why, or (--unpriced) the models seen in the store without a price.

    Exits with status 1 when MODEL has no price.
    """
    from ..pricing import RateFileError, RateTable

    try:
        table = RateTable.coerce(rates_path)
    except RateFileError as exc:
        raise click.ClickException(str(exc)) from None
    if unpriced:
        if model:
            raise click.UsageError("Give either MODEL or --unpriced, not both.")
        if db_path is None:
            from ..config import MeterConfig

            db_path = Path(MeterConfig.from_env().database)
        rows = _unpriced_rows(db_path)
        for row in rows:  # a model may have gained a price since: say so
            info = table.explain(row["provider"], row["model"] or "")
            row["priced_now"] = bool(info["resolved"])
        if as_json:
            click.echo(
                json.dumps({"database": str(db_path), "table_version": table.version, "unpriced": rows}, indent=2)
            )
            return
        if not rows:
            click.echo(f"Every call in {db_path} has a price.")
            return
        click.echo(f"{'provider':<14} {'model':<48} {'calls':>7}  priced now")
        for row in rows:
            click.echo(
                f"{row['provider'] or '':<14} {row['model'] or '(none)':<48} {row['calls']:>7}  "
                f"{'yes' if row['priced_now'] else 'no'}"
            )
        return
    if not model:
        raise click.UsageError("Give a MODEL, or --unpriced.")
    info = table.explain(provider, model)
    if as_json:
        click.echo(json.dumps(info, indent=2))
    else:
        _print_explanation(info)
    if not info["resolved"] and info["price_status"] == "unpriced":
        raise SystemExit(1)
