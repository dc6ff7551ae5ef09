"""``metricaos dashboard`` and ``metricaos dashboard-token``: serve the read-only dashboard; mint a customer token."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone

import click

from ..errors import ConfigurationError
from .reports import parse_moment

__all__ = ["dashboard", "dashboard_token"]

_SECRET = click.option("--secret", envvar="METRICAOS_DASHBOARD_SECRET", show_envvar=True, default=None,
                       help="The secret customer tokens are signed with (16+ characters; prefer the environment "
                            "variable: a command line is visible to other users).")


@click.command()
@click.option("--db", "db", envvar="METRICAOS_DB", default="metricaos.db", show_default=True,
              help="The SQLite file the meter records into, or a postgresql:// URL of the delivered events table.")
@click.option("--table", default="metricaos_events", show_default=True,
              help="The events table, for a PostgreSQL --db (schema.table or table).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="The address to listen on; anything but loopback needs --token.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="The port (0: any free one).")
@_SECRET
@click.option("--token", "admin_token", envvar="METRICAOS_DASHBOARD_TOKEN", show_envvar=True, default=None,
              help="The admin token the business and customer pages ask for (16+ characters); required off loopback.")
@click.option("--now", default=None, help="Show the store as of this moment (ISO 8601 or a day; UTC) [default: now].")
def dashboard(db: str, table: str, host: str, port: int, secret: str | None, admin_token: str | None,
              now: str | None) -> None:
    """Serve the read-only dashboard: the business page, each customer's page, and the embeddable customer view
    opened by customer tokens (see docs/dashboard.md)."""
    from ..dashboard import make_server

    moment = parse_moment(now, "--now")
    try:
        server = make_server(db, host=host, port=port, secret=secret, admin_token=admin_token, now=moment,
                             table=table)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"Cannot listen on {host}:{port} ({exc.strerror or exc}): pick another --port "
                                   f"or --host.") from None
    logger = logging.getLogger("metricaos_sdk.dashboard")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    click.echo(f"MetricaOS dashboard of {server.app.store.source.description} at {server.url} (read-only); "
               f"Ctrl-C to stop.")
    click.echo("  admin pages: " + ("need the admin token (open a page once with ?token=… or send Authorization: "
                                    "Bearer …)" if admin_token else "open to this machine (loopback, no --token)"))
    click.echo("  customer embed: " + (f"{server.url}embed/customer?token=… (mint with `metricaos dashboard-token`)"
                                       if secret else "off (no --secret)"))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("Stopping.")
    finally:
        server.server_close()


@click.command("dashboard-token")
@click.argument("customer")
@click.option("--ttl", type=click.IntRange(min=1), default=3600, show_default=True,
              help="Seconds until the token expires.")
@_SECRET
@click.option("--url", default=None, help="The dashboard's base URL: print the embed and JSON URLs too.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: token, customer_id, expires_at (and URLs).")
def dashboard_token(customer: str, ttl: int, secret: str | None, url: str | None, as_json: bool) -> None:
    """Mint a token that opens CUSTOMER's embeddable usage view and JSON on the dashboard, for --ttl seconds.

    A product's backend runs this (or calls ``metricaos_sdk.dashboard.mint_customer_token``) per page view and
    hands the token to the customer's browser; it opens that customer's usage only."""
    from ..dashboard import mint_customer_token

    now = datetime.now(timezone.utc)
    try:
        token = mint_customer_token(secret or "", customer, ttl, now=now)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None
    base = url.rstrip("/") + "/" if url else None
    links = {"embed_url": f"{base}embed/customer?token={token}", "api_url": f"{base}api/customer?token={token}"} \
        if base else {}
    if as_json:
        expires = datetime.fromtimestamp(int(now.timestamp()) + ttl, timezone.utc)
        click.echo(json.dumps({"token": token, "customer_id": customer, "expires_at": expires.isoformat(), **links},
                              indent=2))
        return
    click.echo(token)
    for link in links.values():
        click.echo(link)
