"""Schema migrations, append-only: never edit one that has shipped, add the next.

Each is a named function applied once per database (recorded by sqlite-utils in ``_sqlite_migrations``).
Money is stored as TEXT holding an exact decimal, never as REAL.
"""

from __future__ import annotations

from sqlite_utils import Database, Migrations

__all__ = ["migrations"]

migrations = Migrations("metricaos")

READ_NEEDS = "m004_event_credits"
"""The last migration a read-only open needs applied: every column reports read exists after it. Later ones
(m005 only drops unused tables) can wait for the next writable open. Move it when a migration changes what is read."""


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


@migrations()
def m003_quota_reservations(db: Database) -> None:
    # Quotas that hold under concurrency (metricaos_sdk/quota/): counters per bucket (a period's allowance,
    # a grant, a rate window) and the reservations of calls in flight, both in integer store units, plus
    # the customers' settings as JSON documents. usage_daily stays as the sink's per-day ledger.
    db.execute(
        """
        CREATE TABLE IF NOT EXISTS quota_used (
            customer_id TEXT NOT NULL,
            bucket TEXT NOT NULL,
            used INTEGER NOT NULL DEFAULT 0,
            expires_at REAL NOT NULL,
            PRIMARY KEY (customer_id, bucket)
        )
        """
    )
    db.execute(
        """
        CREATE TABLE IF NOT EXISTS quota_reservations (
            id TEXT NOT NULL,
            customer_id TEXT NOT NULL,
            bucket TEXT NOT NULL,
            amount INTEGER NOT NULL,
            expires_at REAL NOT NULL,
            PRIMARY KEY (id, bucket)
        )
        """
    )
    db.execute("CREATE INDEX IF NOT EXISTS quota_reservations_bucket ON quota_reservations (customer_id, bucket)")
    db.execute("CREATE INDEX IF NOT EXISTS quota_reservations_expiry ON quota_reservations (expires_at)")
    db.execute(
        """
        CREATE TABLE IF NOT EXISTS quota_marks (
            customer_id TEXT NOT NULL,
            mark TEXT NOT NULL,
            expires_at REAL NOT NULL,
            PRIMARY KEY (customer_id, mark)
        )
        """
    )
    db.execute("CREATE TABLE IF NOT EXISTS quota_config (kind TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL, "
               "PRIMARY KEY (kind, name))")
    db.execute("CREATE TABLE IF NOT EXISTS quota_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)")
    # Limits set with set_quota() by m002's version carry over as the customers' own limits.
    db.execute(
        """
        INSERT OR IGNORE INTO quota_config (kind, name, value)
        SELECT 'customer', customer_id,
               json_object('limits', json_group_object(unit, json_object('limit', limit_value, 'period', period)))
        FROM quotas GROUP BY customer_id
        """
    )
    # … with their use so far this period, from the per-day ledger (counters otherwise start at zero).
    db.execute(
        """
        INSERT OR IGNORE INTO quota_used (customer_id, bucket, used, expires_at)
        SELECT q.customer_id, 'own:' || q.unit || ':*:' || q.period || ':' || p.start_epoch,
               CASE q.unit WHEN 'tokens' THEN SUM(d.tokens) WHEN 'requests' THEN SUM(d.requests)
                    ELSE CAST(SUM(CAST(d.cost_usd AS REAL)) * 1000000000 + 0.999 AS INTEGER) END,
               p.end_epoch + 86400
        FROM quotas q
        JOIN (SELECT 'month' AS period, date('now', 'start of month') AS first_day,
                     CAST(strftime('%s', date('now', 'start of month')) AS INTEGER) AS start_epoch,
                     CAST(strftime('%s', date('now', 'start of month', '+1 month')) AS INTEGER) AS end_epoch
              UNION ALL
              SELECT 'day', date('now'), CAST(strftime('%s', date('now')) AS INTEGER),
                     CAST(strftime('%s', date('now', '+1 day')) AS INTEGER)) p ON p.period = q.period
        JOIN usage_daily d ON d.customer_id = q.customer_id AND d.day >= p.first_day
        GROUP BY q.customer_id, q.unit
        """
    )


@migrations()
def m004_event_credits(db: Database) -> None:
    # Money-like amounts as exact decimal TEXT, like cost_usd.
    for column in ("credits", "credit_rule", "overage", "overage_cost_usd"):
        db.execute(f"ALTER TABLE events ADD COLUMN {column} TEXT")


@migrations()
def m005_drop_m002_quota_tables(db: Database) -> None:
    # m002's quotas and usage_daily: m003 carried their limits and this period's use over to the quota_*
    # tables, and nothing has written or read them since. Dropped so the schema holds only what is used.
    db.execute("DROP TABLE IF EXISTS quotas")
    db.execute("DROP TABLE IF EXISTS usage_daily")


@migrations()
def m006_delivery(db: Database) -> None:
    # The outbox (metricaos_sdk/delivery/): the events table is the queue, in rowid order (SQLite serialises
    # writers, so rowid order is commit order); per destination a cursor — the last rowid it has settled —
    # and a lease, so one process on the file delivers at a time; and the events a receiver refused, parked
    # with its reason until they are retried. Nothing is ever dropped.
    db.execute(
        """
        CREATE TABLE IF NOT EXISTS delivery_state (
            destination TEXT PRIMARY KEY,
            cursor INTEGER NOT NULL DEFAULT 0,
            holder TEXT,
            lease_until REAL NOT NULL DEFAULT 0,
            delivered INTEGER NOT NULL DEFAULT 0,
            skipped INTEGER NOT NULL DEFAULT 0,
            retried INTEGER NOT NULL DEFAULT 0,
            failing_since REAL,
            last_error TEXT,
            last_delivery_at REAL
        )
        """
    )
    db.execute(
        """
        CREATE TABLE IF NOT EXISTS delivery_failures (
            destination TEXT NOT NULL,
            event_rowid INTEGER NOT NULL,
            event_id TEXT NOT NULL,
            reason TEXT NOT NULL,
            parked_at REAL NOT NULL,
            state TEXT NOT NULL DEFAULT 'parked',
            PRIMARY KEY (destination, event_rowid)
        )
        """
    )
    db.execute("CREATE INDEX IF NOT EXISTS delivery_failures_state ON delivery_failures (destination, state)")
