"""The PostgreSQL destination: events into one table of a central database, where many hosts' usage meets.

The table has the local store's event schema with PostgreSQL's types (``metricaos_sdk/storage/postgres.py``);
it and its indexes are created on first use by migrations applied once, under an advisory lock. A batch goes
in one transaction: ``COPY`` (binary) into a temporary table, then ``INSERT … SELECT … ON CONFLICT (id) DO
NOTHING`` — an event delivered twice (the outbox sends at least once) stays one row. ``method="insert"`` sends
a multi-row ``INSERT … VALUES … ON CONFLICT (id) DO NOTHING`` instead (for poolers in transaction mode, where a
session's temporary table does not last; about a third slower at 500-1,000 events a batch).

A failure to connect, a connection lost (the server restarted, the backend terminated), a serialization failure
or a deadlock is a retry, on a new connection. A value PostgreSQL cannot store (a NUL in a text, a count past
``bigint``, a constraint of the DBA's) is a refusal: the worker splits the batch until that event is alone, and
parks it with PostgreSQL's message; the others are delivered. Anything else (a missing privilege, a column the
table lacks) is retried with its message, for an operator to fix. The password is never logged: messages and
``repr`` name the server as ``postgresql://user@host:port/dbname``.

Needs psycopg 3: ``pip install 'metricaos-sdk[postgres]'``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Literal

try:
    import psycopg
    from psycopg import sql
except ImportError as exc:  # pragma: no cover - exercised where psycopg is absent
    raise ImportError("The PostgreSQL destination needs psycopg 3: pip install 'metricaos-sdk[postgres]'") from exc

from .._fork import in_forked_child
from ..errors import ConfigurationError
from ..events import UsageEvent
from ..faults import safe_text
from ..storage.postgres import EVENT_COLUMNS, Table, event_values, migrate, parse_target, rollup_lock_key
from .destination import Result

__all__ = ["PostgreSQL"]

_STAGE = "metricaos_stage"

_INHERITED: list[psycopg.Connection[Any]] = []
"""Connections a forked child inherited: its parent's sessions. Kept (never closed: closing would end the
parent's session too; never collected: collecting warns) and never used."""


class PostgreSQL:
    """Deliver events into ``schema.table`` of the PostgreSQL database at ``url_or_conninfo``.

    ``url_or_conninfo`` is a libpq URL (``postgresql://user:password@host:5432/dbname?sslmode=require``) or
    key/value string (``host=… dbname=… user=…``); libpq's environment variables and password file apply as
    usual. The table is created if missing. ``max_batch`` events go in one transaction.
    """

    def __init__(self, url_or_conninfo: str, *, name: str = "postgres", schema: str = "public",
                 table: str = "metricaos_events", max_batch: int = 1000,
                 method: Literal["copy", "insert"] = "copy", connect_timeout: float = 10.0,
                 statement_timeout: float = 60.0) -> None:
        if max_batch < 1:
            raise ConfigurationError(f"max_batch={max_batch}: pass 1 or more events per transaction.")
        if method not in ("copy", "insert"):
            raise ConfigurationError(f"method={method!r} is not one we know: use 'copy' or 'insert'.")
        params, where, secrets = parse_target(url_or_conninfo)
        self.name = name
        self.max_batch = max_batch
        self.method = method
        self.table = Table(schema, table)
        self.where = where
        """The server, without credentials: what messages and ``repr`` show."""
        self._conninfo = url_or_conninfo
        self._secrets = secrets
        defaults: dict[str, Any] = {"connect_timeout": max(2, round(connect_timeout)),
                                    "application_name": "metricaos-sdk", "keepalives": 1, "keepalives_idle": 30,
                                    "keepalives_interval": 10, "keepalives_count": 3}
        self._connect_args = {k: v for k, v in defaults.items() if k not in params}
        self._statement_timeout_ms = int(statement_timeout * 1000)
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()
        columns = sql.SQL(", ").join(map(sql.Identifier, EVENT_COLUMNS))
        self._insert_one = sql.SQL("INSERT INTO {events} ({columns}) VALUES ({values}) ON CONFLICT (id) DO NOTHING").format(
            events=self.table.events, columns=columns,
            values=sql.SQL(", ").join([sql.Placeholder()] * len(EVENT_COLUMNS)))
        self._create_stage = sql.SQL("CREATE TEMPORARY TABLE {stage} ON COMMIT DELETE ROWS AS "
                                     "SELECT {columns} FROM {events} WITH NO DATA").format(
            stage=sql.Identifier(_STAGE), columns=columns, events=self.table.events)
        self._copy = sql.SQL("COPY pg_temp.{stage} ({columns}) FROM STDIN (FORMAT BINARY)").format(
            stage=sql.Identifier(_STAGE), columns=columns)
        self._from_stage = sql.SQL("INSERT INTO {events} ({columns}) SELECT {columns} FROM pg_temp.{stage} "
                                   "ON CONFLICT (id) DO NOTHING").format(
            events=self.table.events, columns=columns, stage=sql.Identifier(_STAGE))
        self._types: list[int] = []
        in_forked_child(self, PostgreSQL._forget_parents_connection)

    # -- the protocol -------------------------------------------------------------------------------
    def accepts(self, event: UsageEvent) -> str | None:
        return None

    def deliver(self, events: Sequence[UsageEvent]) -> Result:
        rows = [event_values(e) for e in events]
        with self._lock:
            try:
                conn = self._connection()
            except Exception as exc:
                return Result.again(f"could not connect to {self.where}: {self._message(exc)}")
            try:
                if self.method == "copy":
                    self._write_copy(conn, rows)
                else:
                    self._write_insert(conn, rows)
            except (psycopg.DataError, psycopg.IntegrityError, OverflowError) as exc:
                # A value the table cannot take (OverflowError: an int past bigint, found encoding it).
                return Result.refuse(self._message(exc))
            except Exception as exc:
                if conn.closed or conn.broken or not isinstance(exc, psycopg.DatabaseError):
                    self._drop()
                return Result.again(f"{self.where}: {self._message(exc)}")
        return Result.ok()

    def close(self) -> None:
        with self._lock:
            self._drop()

    def migrate(self) -> list[str]:
        """Apply the table's missing migrations now (the first delivery does otherwise); the names applied."""
        with self._lock:
            conn = self._open()
            try:
                return migrate(conn, self.table)
            finally:
                conn.close()

    def __repr__(self) -> str:  # never the password
        return f"PostgreSQL({self.where!r}, name={self.name!r}, table={str(self.table)!r})"

    # -- writing --------------------------------------------------------------------------------------
    def _write_copy(self, conn: psycopg.Connection[Any], rows: list[tuple[Any, ...]]) -> None:
        with conn.transaction(), conn.cursor() as cur:
            with cur.copy(self._copy) as copy:
                copy.set_types(self._types)
                for row in rows:
                    copy.write_row(row)
            # The rollups' advisory lock (m004) before the first row reaches the table, as _write_insert does: the
            # statement trigger takes it only after the INSERT has placed its rows, and a concurrent writer of an
            # overlapping batch waits on one of those rows while holding the lock — a deadlock PostgreSQL breaks
            # by failing one of them (seen in CI: the batch came back as a retry).
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (rollup_lock_key(self.table),))
            cur.execute(self._from_stage)  # the staged rows go at commit (ON COMMIT DELETE ROWS)

    def _write_insert(self, conn: psycopg.Connection[Any], rows: list[tuple[Any, ...]]) -> None:
        # One single-row statement for every row, pipelined by psycopg: one round trip a batch, and a statement
        # short enough for psycopg to parse once (a multi-row VALUES of 500 rows, 21,500 parameters, is
        # re-parsed on every execution, client-side: ~7x slower; see benchmarks/postgres.py).
        with conn.transaction(), conn.cursor() as cur:
            # Each statement's rows go into the table's rollups under one advisory lock (m004): taken before the
            # first row, never between two, or two writers could each hold what the other waits for.
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (rollup_lock_key(self.table),))
            cur.executemany(self._insert_one, rows)

    # -- the connection -------------------------------------------------------------------------------
    def _connection(self) -> psycopg.Connection[Any]:
        """The open connection, or a new one with the table migrated and the stage made."""
        if self._conn is not None and not self._conn.closed and not self._conn.broken:
            return self._conn
        self._drop()
        conn = self._open()
        try:
            migrate(conn, self.table)
            if self.method == "copy":
                with conn.transaction():
                    conn.execute(self._create_stage)
                    self._types = [r[0] for r in conn.execute(
                        "SELECT atttypid FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
                        "AND NOT attisdropped ORDER BY attnum", (f"pg_temp.{_STAGE}",))]
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def _open(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(self._conninfo, autocommit=True, **self._connect_args)
        try:
            conn.execute("SELECT set_config('statement_timeout', %s, false)", (str(self._statement_timeout_ms),))
        except BaseException:
            conn.close()
            raise
        return conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass  # a broken connection: nothing left to close

    def _forget_parents_connection(self) -> None:
        if self._conn is not None:
            _INHERITED.append(self._conn)
        self._conn = None
        self._lock = threading.Lock()

    def _message(self, exc: BaseException) -> str:
        """What went wrong, on one line, bounded, without the password: SQLSTATE and PostgreSQL's message."""
        diag = exc.diag if isinstance(exc, psycopg.Error) else None
        if diag is not None and diag.message_primary:
            text = f"{diag.sqlstate} {diag.message_primary}" if diag.sqlstate else diag.message_primary
            if diag.message_detail:
                text += f" ({diag.message_detail})"
        else:
            text = str(exc).strip() or type(exc).__name__
        text = f"{type(exc).__name__}: {text}"
        for secret in self._secrets:
            text = text.replace(secret, "<redacted>")
        return safe_text(text, 500)
