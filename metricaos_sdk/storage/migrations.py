"""Schema migrations, append-only: never edit one that has shipped, add the next.

Each is a named function applied once per database (recorded by sqlite-utils in ``_sqlite_migrations``).
Money is stored as TEXT holding an exact decimal, never as REAL.
"""

from __future__ import annotations

from sqlite_utils import Database, Migrations

__all__ = ["migrations"]

migrations = Migrations("metricaos")


@migrations()
def m001_events(db: Database) -> None:
    db.execute(
        """
        CREATE TABLE IF NOT EXISTS events (
            id TEXT PRIMARY KEY,
            schema_version INTEGER NOT NULL,
            timestamp TEXT NOT NULL,
            event_type TEXT NOT NULL,
            customer_id TEXT, user_id TEXT, workspace_id TEXT, feature TEXT, environment TEXT,
            tags TEXT NOT NULL DEFAULT '{}',
            provider TEXT NOT NULL, model TEXT, requested_model TEXT, endpoint TEXT NOT NULL,
            input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL,
            cached_input_tokens INTEGER NOT NULL, cache_write_tokens INTEGER NOT NULL,
            cache_write_5m_tokens INTEGER NOT NULL, cache_write_1h_tokens INTEGER NOT NULL,
            reasoning_tokens INTEGER NOT NULL, total_tokens INTEGER NOT NULL,
            web_search_requests INTEGER NOT NULL,
            usage_status TEXT NOT NULL, usage_problem TEXT,
            cost_usd TEXT, price_status TEXT NOT NULL, price_id TEXT, price_table_version TEXT,
            price_effective_from TEXT, service_tier TEXT,
            billable INTEGER NOT NULL, status TEXT NOT NULL, error_type TEXT, http_status INTEGER,
            streamed INTEGER NOT NULL, duration_ms REAL NOT NULL, attempts INTEGER NOT NULL,
            request_id TEXT, sdk_version TEXT NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX IF NOT EXISTS events_customer_time ON events (customer_id, timestamp)")
    db.execute("CREATE INDEX IF NOT EXISTS events_time ON events (timestamp)")


@migrations()
def m002_quotas(db: Database) -> None:
    # usage_daily is the quota ledger: one row per customer and UTC day, updated in the same transaction
    # as the event insert, so a pre-call check reads at most 31 rows instead of a month of events.
    db.execute(
        """
        CREATE TABLE IF NOT EXISTS quotas (
            customer_id TEXT NOT NULL,
            unit TEXT NOT NULL,
            period TEXT NOT NULL,
            limit_value TEXT NOT NULL,
            PRIMARY KEY (customer_id, unit)
        )
        """
    )
    db.execute(
        """
        CREATE TABLE IF NOT EXISTS usage_daily (
            customer_id TEXT NOT NULL,
            day TEXT NOT NULL,
            tokens INTEGER NOT NULL DEFAULT 0,
            requests INTEGER NOT NULL DEFAULT 0,
            cost_usd TEXT NOT NULL DEFAULT '0',
            PRIMARY KEY (customer_id, day)
        )
        """
    )
