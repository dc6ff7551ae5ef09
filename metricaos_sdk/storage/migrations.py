"""Schema migrations, append-only: never edit one that has shipped, add the next.

Each is a named function applied once per database (recorded by sqlite-utils in ``_sqlite_migrations``).
Money is stored as TEXT holding an exact decimal, never as REAL.
"""

from __future__ import annotations

from sqlite_utils import Database, Migrations

from .rollup_expressions import (
    _M009_KEYS,
    _M009_VALUE_KEYS,
    _M011_KEYS,
    _M011_SUMS,
    _M011_USER_KEYS,
    _m009_charged,
    _m009_row,
    _m009_values,
    _m011_row,
)

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


@migrations()
def m007_event_actions(db: Database) -> None:
    # Issue 13 (actions, custom usage, billable rules): which action an event belongs to, custom usage's unit
    # and quantity (exact decimal TEXT, like cost_usd), and the billable rule that decided. Existing rows are
    # LLM calls outside any action: every new column is NULL for them, which is what the event model defaults to.
    for column in ("action_id", "parent_action_id", "action_name", "unit", "quantity", "billable_rule"):
        db.execute(f"ALTER TABLE events ADD COLUMN {column} TEXT")
    db.execute("ALTER TABLE events ADD COLUMN action_calls INTEGER")
    db.execute("CREATE INDEX IF NOT EXISTS events_action ON events (action_id)")


@migrations()
def m008_billing(db: Database) -> None:
    # Billing (metricaos_sdk/billing/): the adjustments ledger — credit notes, refunds, grants, packs, exclusions
    # and reversals of events — append-only (triggers refuse UPDATE and DELETE), deduplicated on a caller's key;
    # (seq is the rowid: never reused, as nothing is deleted); the events each adjustment names, indexed, so an invoice leaves them out in SQL; the price plans; and each
    # customer's subscription timeline (plan and seats from a moment on). Amounts are exact decimal TEXT.
    db.execute(
        """
        CREATE TABLE IF NOT EXISTS billing_adjustments (
            seq INTEGER PRIMARY KEY,
            key TEXT NOT NULL UNIQUE,
            customer_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            amount TEXT,
            unit TEXT,
            event_ids TEXT NOT NULL DEFAULT '[]',
            reason TEXT NOT NULL,
            actor TEXT NOT NULL,
            applies_at TEXT NOT NULL,
            recorded_at TEXT NOT NULL,
            details TEXT NOT NULL DEFAULT '{}'
        )
        """
    )
    db.execute("CREATE INDEX IF NOT EXISTS billing_adjustments_customer ON billing_adjustments (customer_id, applies_at)")
    db.execute(
        """
        CREATE TABLE IF NOT EXISTS billing_adjusted_events (
            event_id TEXT NOT NULL,
            seq INTEGER NOT NULL REFERENCES billing_adjustments (seq),
            customer_id TEXT NOT NULL,
            PRIMARY KEY (event_id, seq)
        )
        """
    )
    db.execute("CREATE INDEX IF NOT EXISTS billing_adjusted_events_customer ON billing_adjusted_events (customer_id)")
    for table in ("billing_adjustments", "billing_adjusted_events"):
        for action in ("UPDATE", "DELETE"):
            db.execute(f"CREATE TRIGGER IF NOT EXISTS {table}_no_{action.lower()} BEFORE {action} ON {table} "
                       f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: record a new adjustment instead'); END")
    db.execute("CREATE TABLE IF NOT EXISTS billing_plans (name TEXT PRIMARY KEY, definition TEXT NOT NULL, "
               "defined_at TEXT NOT NULL)")
    db.execute(
        """
        CREATE TABLE IF NOT EXISTS billing_subscriptions (
            customer_id TEXT NOT NULL,
            effective_at TEXT NOT NULL,
            plan TEXT,
            seats INTEGER NOT NULL DEFAULT 1,
            recorded_at TEXT NOT NULL,
            PRIMARY KEY (customer_id, effective_at)
        )
        """
    )


@migrations()
def m009_billing_rollup(db: Database) -> None:
    # Issue 13's speed target: invoices and replays read a per-day rollup of the events instead of sorting a
    # month of them. billing_daily: per month, customer, feature, action name, unit, billable flag, kind of event
    # (call, call_in_action, action = outermost, nested_action, usage, outcome) and UTC day, the event count,
    # token sums, and cost / credits / quantity summed as integers of a small unit (pico-dollars, micro-units)
    # with the largest number of decimal places and the largest magnitude seen, so a reader knows whether the
    # integer sum is exact (else it sums the events exactly instead). billing_daily_values: the events that carry
    # credits, counted per distinct value a credit rule reads (tokens, cost, quantity), so a replay re-rates
    # under candidate rules exactly — each distinct value rated and rounded once, times its count. Both are
    # kept by one AFTER INSERT trigger on events (a row INSERT OR IGNORE skips fires nothing), in the same
    # transaction as the insert, and filled here from the events already recorded. NULL keys are stored as the
    # integer 0 (the columns have no type affinity, so it never equals a text value). Exclusions and reversals
    # are not in the rollup: readers look the named events up and take them out.
    keys = ", ".join(_M009_KEYS)
    db.execute(
        f"""
        CREATE TABLE IF NOT EXISTS billing_daily (
            month, customer_id, feature, action_name, unit, billable, kind, day,
            events INTEGER NOT NULL, input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL,
            tokens INTEGER NOT NULL, unpriced INTEGER NOT NULL,
            cost_small INTEGER NOT NULL, cost_places INTEGER NOT NULL, cost_max REAL NOT NULL,
            credits_small INTEGER NOT NULL, credits_places INTEGER NOT NULL, credits_max REAL NOT NULL,
            quantity_small INTEGER NOT NULL, quantity_places INTEGER NOT NULL, quantity_max REAL NOT NULL,
            first TEXT NOT NULL, last TEXT NOT NULL,
            PRIMARY KEY ({keys})
        ) WITHOUT ROWID
        """
    )
    value_keys = ", ".join(_M009_VALUE_KEYS)
    db.execute(f"CREATE TABLE IF NOT EXISTS billing_daily_values ({value_keys}, events INTEGER NOT NULL, "
               f"PRIMARY KEY ({value_keys})) WITHOUT ROWID")
    summed = ("events", "input_tokens", "output_tokens", "tokens", "unpriced", "cost_small", "credits_small",
              "quantity_small")
    maxed = ("cost_places", "cost_max", "credits_places", "credits_max", "quantity_places", "quantity_max", "last")
    new, old = _m009_row("NEW."), _m009_row("")
    updates = ", ".join([f"{c} = {c} + excluded.{c}" for c in summed] + [f"{c} = max({c}, excluded.{c})" for c in maxed]
                        + ["first = min(first, excluded.first)"])
    values_new = _m009_values("NEW.")
    db.execute(
        f"""
        CREATE TRIGGER IF NOT EXISTS events_billing_rollup AFTER INSERT ON events BEGIN
            INSERT INTO billing_daily ({', '.join(new)}) VALUES ({', '.join(new.values())})
            ON CONFLICT ({keys}) DO UPDATE SET {updates};
            INSERT INTO billing_daily_values ({value_keys}, events)
            SELECT {', '.join(values_new.values())}, 1 WHERE {_m009_charged("NEW.")}
            ON CONFLICT ({value_keys}) DO UPDATE SET events = events + 1;
        END
        """
    )
    aggregate = {c: (f"SUM({e})" if c in summed else f"MIN({e})" if c == "first" else f"MAX({e})")
                 for c, e in old.items() if c not in _M009_KEYS}
    db.execute(f"INSERT OR IGNORE INTO billing_daily ({', '.join(old)}) SELECT "
               f"{', '.join(old[k] for k in _M009_KEYS)}, {', '.join(aggregate.values())} FROM events "
               f"GROUP BY {', '.join(old[k] for k in _M009_KEYS)}")
    values_old = _m009_values("")
    db.execute(f"INSERT OR IGNORE INTO billing_daily_values ({value_keys}, events) SELECT "
               f"{', '.join(values_old.values())}, COUNT(*) FROM events WHERE {_m009_charged('')} "
               f"GROUP BY {', '.join(values_old.values())}")


@migrations()
def m010_event_server(db: Database) -> None:
    # Issue 15 (OpenAI-compatible providers): the server host a call was sent to (``api.deepseek.com``,
    # ``localhost:11434``) and the cost the provider itself reported (exact decimal TEXT, like cost_usd). Existing
    # rows are NULL in both, which is what the event model defaults to.
    db.execute("ALTER TABLE events ADD COLUMN server_address TEXT")
    db.execute("ALTER TABLE events ADD COLUMN provider_cost_usd TEXT")


@migrations()
def m011_report_rollup(db: Database) -> None:
    # Issue 14 (reports and the dashboard): a report over a million events must take under 2 s, a dashboard page
    # under 1 s, and a GROUP BY over the events table reads every wide row (2.5 s for a million). Two rollups per
    # UTC day hold the event count, the token sums, the unpriced / estimated / failed counts, and cost and credits
    # as exact integer pico-unit halves with a count of the amounts that do not fit (readers sum those events
    # again as Decimal): report_daily per customer, feature, model, provider, environment, action name, billable
    # flag and kind (LLM call or not); report_daily_users per customer and user — users are many, and crossed with
    # the other keys they would make the rollup as large as the events. Kept by an AFTER INSERT trigger on events,
    # in the insert's transaction, and filled here from the events already recorded. NULL keys are stored as the
    # integer 0, as in billing_daily.
    for table, keys in (("report_daily", _M011_KEYS), ("report_daily_users", _M011_USER_KEYS)):
        columns = ", ".join(keys)
        db.execute(f"CREATE TABLE IF NOT EXISTS {table} ({columns}, "
                   + ", ".join(f"{c} INTEGER NOT NULL" for c in _M011_SUMS) + f", PRIMARY KEY ({columns})) WITHOUT ROWID")
        db.execute(f"CREATE INDEX IF NOT EXISTS {table}_customer ON {table} (customer_id, day)")
        old = _m011_row("", keys)
        db.execute(f"INSERT OR IGNORE INTO {table} ({', '.join(old)}) SELECT "
                   + ", ".join(old[k] for k in keys) + ", " + ", ".join(f"sum({old[c]})" for c in _M011_SUMS)
                   + f" FROM events GROUP BY {', '.join(old[k] for k in keys)}")
    updates = ", ".join(f"{c} = {c} + excluded.{c}" for c in _M011_SUMS)
    body = ""
    for table, keys in (("report_daily", _M011_KEYS), ("report_daily_users", _M011_USER_KEYS)):
        new = _m011_row("NEW.", keys)
        body += (f"INSERT INTO {table} ({', '.join(new)}) VALUES ({', '.join(new.values())}) "
                 f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}; ")
    db.execute(f"CREATE TRIGGER IF NOT EXISTS events_report_rollup AFTER INSERT ON events BEGIN {body}END")
