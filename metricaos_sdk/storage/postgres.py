"""The PostgreSQL event store: its schema, as append-only migrations, and UsageEvent <-> row conversion.

Where many hosts' events meet (``metricaos_sdk.delivery.postgres`` delivers into it; reports read it). One
table holds the events, a column per :class:`~metricaos_sdk.UsageEvent` field in ``EVENT_COLUMNS`` order, with
PostgreSQL's own types: money as ``numeric`` (exact, never a float), the time as ``timestamptz``, tags as
``jsonb``, counts as ``bigint``, flags as ``boolean``; ``id`` is the primary key, on which every insert
deduplicates. Needs psycopg 3: ``pip install 'metricaos-sdk[postgres]'``.

Migrations are named functions, applied once per events table and recorded in ``metricaos_migrations`` in the
table's schema (``target`` is the table's name: several tables can share a schema). Never edit one that has
shipped; add the next. They run under a transaction-scoped advisory lock (one per schema), so processes that
start together apply each exactly once and the others wait for it, then find nothing left to do.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timezone
from typing import Any

try:
    import psycopg
    from psycopg import sql
    from psycopg.types.json import Jsonb
except ImportError as exc:  # pragma: no cover - exercised where psycopg is absent
    raise ImportError("The PostgreSQL store needs psycopg 3: pip install 'metricaos-sdk[postgres]'") from exc

from ..events import UsageEvent
from .rows import EVENT_COLUMNS

__all__ = ["EVENT_COLUMNS", "MIGRATIONS", "SECRET_KEYS", "Table", "event_values", "migrate", "parse_target", "pending", "rollup_lock_key",
           "row_to_event"]

MIGRATIONS_TABLE = "metricaos_migrations"

Migration = Callable[["psycopg.Connection[Any]", "Table"], None]
MIGRATIONS: dict[str, Migration] = {}
"""Every migration, by name, in the order they apply."""


@dataclass(frozen=True, slots=True)
class Table:
    """Where the events are: ``schema.name``. Names are quoted as identifiers wherever they are used."""

    schema: str = "public"
    name: str = "metricaos_events"

    @property
    def events(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name)

    @property
    def migrations(self) -> sql.Identifier:
        return sql.Identifier(self.schema, MIGRATIONS_TABLE)

    def _named(self, suffix: str) -> str:
        name = f"{self.name}_{suffix}"
        while len(name.encode()) > 63:  # PostgreSQL's names are at most 63 bytes
            name = name[:-1]
        return name

    def index(self, suffix: str) -> sql.Identifier:
        """An index of the table, named after it."""
        return sql.Identifier(self._named(suffix))

    def sibling(self, suffix: str) -> sql.Identifier:
        """A table beside the events table, named after it (``metricaos_events_daily``)."""
        return sql.Identifier(self.schema, self._named(suffix))

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}"


def migration(fn: Migration) -> Migration:
    if fn.__name__ in MIGRATIONS:
        raise ValueError(f"a migration named {fn.__name__} exists already")
    MIGRATIONS[fn.__name__] = fn
    return fn


@migration
def m001_events(conn: psycopg.Connection[Any], table: Table) -> None:
    # The columns of the SQLite store's events table after its m004, in the same order, typed for PostgreSQL.
    conn.execute(sql.SQL(
        """
        CREATE TABLE IF NOT EXISTS {events} (
            id text PRIMARY KEY,
            schema_version bigint NOT NULL,
            timestamp timestamptz NOT NULL,
            event_type text NOT NULL,
            customer_id text, user_id text, workspace_id text, feature text, environment text,
            tags jsonb NOT NULL DEFAULT '{{}}'::jsonb,
            provider text NOT NULL, model text, requested_model text, endpoint text NOT NULL,
            input_tokens bigint NOT NULL, output_tokens bigint NOT NULL,
            cached_input_tokens bigint NOT NULL, cache_write_tokens bigint NOT NULL,
            cache_write_5m_tokens bigint NOT NULL, cache_write_1h_tokens bigint NOT NULL,
            reasoning_tokens bigint NOT NULL, total_tokens bigint NOT NULL,
            web_search_requests bigint NOT NULL,
            usage_status text NOT NULL, usage_problem text,
            cost_usd numeric, price_status text NOT NULL, price_id text, price_table_version text,
            price_effective_from date, service_tier text,
            billable boolean NOT NULL, status text NOT NULL, error_type text, http_status bigint,
            streamed boolean NOT NULL, duration_ms double precision NOT NULL, attempts bigint NOT NULL,
            request_id text, sdk_version text NOT NULL,
            credits numeric, credit_rule text, overage numeric, overage_cost_usd numeric
        )
        """).format(events=table.events))
    # What reports ask: one customer's events over a period; everyone's over a period.
    conn.execute(sql.SQL("CREATE INDEX IF NOT EXISTS {name} ON {events} (customer_id, timestamp)").format(
        name=table.index("customer_time"), events=table.events))
    conn.execute(sql.SQL("CREATE INDEX IF NOT EXISTS {name} ON {events} (timestamp)").format(
        name=table.index("time"), events=table.events))


@migration
def m002_event_actions(conn: psycopg.Connection[Any], table: Table) -> None:
    # The SQLite store's m007: actions, custom usage and the billable rule that decided (issue 13).
    conn.execute(sql.SQL(
        "ALTER TABLE {events} ADD COLUMN IF NOT EXISTS action_id text, ADD COLUMN IF NOT EXISTS parent_action_id text, "
        "ADD COLUMN IF NOT EXISTS action_name text, ADD COLUMN IF NOT EXISTS unit text, "
        "ADD COLUMN IF NOT EXISTS quantity numeric, ADD COLUMN IF NOT EXISTS billable_rule text, "
        "ADD COLUMN IF NOT EXISTS action_calls bigint").format(events=table.events))
    conn.execute(sql.SQL("CREATE INDEX IF NOT EXISTS {name} ON {events} (action_id)").format(
        name=table.index("action"), events=table.events))


@migration
def m003_event_server(conn: psycopg.Connection[Any], table: Table) -> None:
    # The SQLite store's m010 (issue 15): the server host a call went to, and the cost the provider reported.
    conn.execute(sql.SQL(
        "ALTER TABLE {events} ADD COLUMN IF NOT EXISTS server_address text, "
        "ADD COLUMN IF NOT EXISTS provider_cost_usd numeric").format(events=table.events))


_ROLLUP_KEYS = ("day", "customer_id", "feature", "model", "provider", "environment", "action_name", "billable", "is_call")
_ROLLUP_USER_KEYS = ("day", "customer_id", "user_id", "billable", "is_call")
_ROLLUP_SUMS = ("events", "input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens",
                "reasoning_tokens", "total_tokens", "unpriced", "estimated", "failed", "cost_usd", "credits")
_KEY_SQL = {"day": "(timestamp AT TIME ZONE 'UTC')::date", "billable": "billable",
            "is_call": "event_type NOT IN ('action', 'outcome', 'usage')"}
_KEY_TYPES = {"day": "date", "billable": "boolean", "is_call": "boolean"}


@migration
def m004_report_rollup(conn: psycopg.Connection[Any], table: Table) -> None:
    # The SQLite store's m011 (issue 14): the reports' per-day rollups — ``<table>_daily`` per UTC day, customer,
    # feature, model, provider, environment, action name, billable flag and kind (LLM call or not), and
    # ``<table>_daily_users`` per day, customer and user — with the event count, token sums, unpriced / estimated /
    # failed counts and the exact numeric sums of cost and credits. A statement-level trigger adds each INSERT's new
    # rows (its transition table: rows an ON CONFLICT skipped are not in it), aggregated once per statement, under a
    # transaction-scoped advisory lock of the table's own: inserts that each upsert several rollup rows (one
    # statement per event, as the destination's insert method sends them) would otherwise deadlock on them. NULL
    # keys are stored as chr(1), which no identifier holds (an empty string stays itself). The events table is
    # append-only; rows deleted or updated by hand are not taken out. Filled here from the events already there,
    # under the migration's lock.
    function = table.sibling("report_rollup")
    body = []
    for suffix, keys in (("daily", _ROLLUP_KEYS), ("daily_users", _ROLLUP_USER_KEYS)):
        rollup = table.sibling(suffix)
        key_columns = sql.SQL(", ").join(
            sql.SQL("{} {} NOT NULL").format(sql.Identifier(k), sql.SQL(_KEY_TYPES.get(k, "text"))) for k in keys)
        conn.execute(sql.SQL(
            "CREATE TABLE IF NOT EXISTS {rollup} ({keys}, events bigint NOT NULL, input_tokens bigint NOT NULL, "
            "output_tokens bigint NOT NULL, cached_input_tokens bigint NOT NULL, cache_write_tokens bigint NOT NULL, "
            "reasoning_tokens bigint NOT NULL, total_tokens bigint NOT NULL, unpriced bigint NOT NULL, "
            "estimated bigint NOT NULL, failed bigint NOT NULL, cost_usd numeric NOT NULL, credits numeric NOT NULL, "
            "PRIMARY KEY ({names}))").format(rollup=rollup, keys=key_columns,
                                              names=sql.SQL(", ").join(map(sql.Identifier, keys))))
        conn.execute(sql.SQL("CREATE INDEX IF NOT EXISTS {name} ON {rollup} (customer_id, day)").format(
            name=table.index(f"{suffix}_customer"), rollup=rollup))
        order = sql.SQL(", ").join(sql.SQL(str(i + 1)) for i in range(len(keys)))
        aggregate = sql.SQL(
            "SELECT {keys}, count(*), sum(input_tokens), sum(output_tokens), sum(cached_input_tokens), "
            "sum(cache_write_tokens), sum(reasoning_tokens), sum(total_tokens), count(*) FILTER (WHERE cost_usd IS NULL), "
            "count(*) FILTER (WHERE usage_status = 'estimated'), count(*) FILTER (WHERE status <> 'ok'), "
            "coalesce(sum(cost_usd), 0), coalesce(sum(credits), 0) FROM {source} GROUP BY {order} ORDER BY {order}")
        keys_sql = sql.SQL(", ").join(sql.SQL(_KEY_SQL.get(k, f"coalesce({k}, chr(1))")) for k in keys)
        columns = sql.SQL(", ").join(map(sql.Identifier, keys + _ROLLUP_SUMS))
        conn.execute(sql.SQL("INSERT INTO {rollup} ({columns}) {select} ON CONFLICT DO NOTHING").format(
            rollup=rollup, columns=columns, select=aggregate.format(keys=keys_sql, source=table.events, order=order)))
        updates = sql.SQL(", ").join(
            sql.SQL("{c} = {r}.{c} + excluded.{c}").format(c=sql.Identifier(c), r=rollup) for c in _ROLLUP_SUMS)
        body.append(sql.SQL("INSERT INTO {rollup} ({columns}) {select} ON CONFLICT ({names}) DO UPDATE SET {updates};")
                    .format(rollup=rollup, columns=columns,
                            select=aggregate.format(keys=keys_sql, source=sql.SQL("inserted"), order=order),
                            names=sql.SQL(", ").join(map(sql.Identifier, keys)), updates=updates))
    lock = rollup_lock_key(table)
    conn.execute(sql.SQL(
        "CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $body$ BEGIN "
        "PERFORM pg_advisory_xact_lock({lock}); {body} RETURN NULL; END $body$").format(
            function=function, lock=sql.Literal(lock), body=sql.SQL(" ").join(body)))
    conn.execute(sql.SQL(
        "CREATE TRIGGER {name} AFTER INSERT ON {events} REFERENCING NEW TABLE AS inserted "
        "FOR EACH STATEMENT EXECUTE FUNCTION {function}()").format(
            name=table.index("report_rollup"), events=table.events, function=function))


SECRET_KEYS = ("password", "sslpassword")
"""Connection parameters never shown: not in a message, a log line or a ``repr``."""


def parse_target(url_or_conninfo: str) -> tuple[dict[str, Any], str, tuple[str, ...]]:
    """A PostgreSQL URL or ``key=value`` connection string parsed: its parameters, how to show it
    (``postgresql://user@host:port/dbname``, never the password) and the secret values a message must not hold.
    Raises :class:`~metricaos_sdk.ConfigurationError` — without quoting the string, which may hold the password —
    when it is neither."""
    from psycopg.conninfo import conninfo_to_dict

    from ..errors import ConfigurationError
    from ..faults import safe_text

    try:
        params = conninfo_to_dict(url_or_conninfo)
    except psycopg.Error:  # its message quotes the string
        raise ConfigurationError("That is not a PostgreSQL URL or connection string: pass "
                                 "postgresql://user@host:port/dbname, or host=… dbname=….") from None
    user, port, dbname = params.get("user"), params.get("port"), params.get("dbname")
    host = params.get("host") or params.get("hostaddr") or ""
    text = "postgresql://" + (f"{user}@" if user else "") + str(host) + (f":{port}" if port else "")
    where = safe_text(text + (f"/{dbname}" if dbname else ""))
    return params, where, tuple(str(params[k]) for k in SECRET_KEYS if params.get(k))


def rollup_lock_key(table: Table) -> int:
    """The transaction-scoped advisory lock under which the rollups of ``table`` are updated (m004). A writer
    that inserts events one statement at a time takes it first, before any row: otherwise it could hold an event
    row another writer waits for while waiting for the lock that writer holds."""
    return int.from_bytes(hashlib.sha256(f"metricaos_sdk.rollup:{table}".encode()).digest()[:8], "big", signed=True)


def _lock_key(schema: str) -> int:
    """The advisory lock that serialises migrations in ``schema`` (a signed 64-bit key of our own)."""
    digest = hashlib.sha256(f"metricaos_sdk.migrations:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def pending(conn: psycopg.Connection[Any], table: Table) -> list[str]:
    """The migrations not yet applied to ``table`` (read without a lock: a hint, not a decision)."""
    with conn.transaction():
        exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL",
                              (sql.Identifier(table.schema, MIGRATIONS_TABLE).as_string(conn),)).fetchone()
        if not exists or not exists[0]:
            return list(MIGRATIONS)
        done = {r[0] for r in conn.execute(sql.SQL("SELECT name FROM {} WHERE target = %s").format(table.migrations),
                                           (table.name,))}
    return [name for name in MIGRATIONS if name not in done]


def migrate(conn: psycopg.Connection[Any], table: Table) -> list[str]:
    """Apply the migrations ``table`` lacks, each once whatever the number of processes doing the same; the
    names applied here. ``conn`` must be in autocommit mode (each migration run is one transaction of ours)."""
    if not pending(conn, table):
        return []
    applied = []
    with conn.transaction():
        # A migration may fill a table from every event already there (m004): no statement timeout of the
        # connection's (the destination sets one for deliveries) may cut it off and leave the upgrade undone.
        conn.execute("SET LOCAL statement_timeout = 0")
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key(table.schema),))
        # Created only when missing: CREATE SCHEMA IF NOT EXISTS needs the right to create schemas even when
        # the schema exists, which a role that may only write to its own schema lacks.
        if conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (table.schema,)).fetchone() is None:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(table.schema)))
        conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} (target text NOT NULL, name text NOT NULL, "
                             "applied_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (target, name))")
                     .format(table.migrations))
        done = {r[0] for r in conn.execute(sql.SQL("SELECT name FROM {} WHERE target = %s").format(table.migrations),
                                           (table.name,))}
        for name, fn in MIGRATIONS.items():
            if name in done:
                continue
            fn(conn, table)
            conn.execute(sql.SQL("INSERT INTO {} (target, name) VALUES (%s, %s)").format(table.migrations),
                         (table.name, name))
            applied.append(name)
    return applied


def event_values(event: UsageEvent) -> tuple[Any, ...]:
    """The event's column values in ``EVENT_COLUMNS`` order, as psycopg adapts them (pure)."""
    values = event.__dict__
    row = list(values.values()) if tuple(values) == EVENT_COLUMNS else [values[n] for n in EVENT_COLUMNS]
    row[_I_TAGS] = Jsonb(row[_I_TAGS])
    return tuple(row)


_I_TAGS = EVENT_COLUMNS.index("tags")


def row_to_event(row: Mapping[str, Any]) -> UsageEvent:
    """An event back from a row read with psycopg (a ``dict_row``, or any mapping of column to value)."""
    data = {name: row[name] for name in EVENT_COLUMNS}
    data["timestamp"] = data["timestamp"].astimezone(timezone.utc)
    return UsageEvent.model_validate(data)
