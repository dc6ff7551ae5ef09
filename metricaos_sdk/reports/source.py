"""Where reports read events: the SDK's SQLite file, or the PostgreSQL table the delivery destination fills.

Reports are written once, as SQL with ``?`` parameters over the events table's columns (the same names in both
stores, :data:`~metricaos_sdk.storage.rows.EVENT_COLUMNS`); an :class:`EventSource` runs them in its own dialect
and supplies the few expressions that differ — the UTC day or hour of ``timestamp`` (ISO text in SQLite,
``timestamptz`` in PostgreSQL), how a moment is passed as a parameter, and the exact sum of ``cost_usd``
(:mod:`.exact`).

A SQLite source opens the file read-only (:class:`~metricaos_sdk.storage.database.Database` with
``read_only=True``): a report never writes the store it reads, and may read a file another process is writing.
"""

from __future__ import annotations

import os
import queue
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Protocol, TypeVar

from ..errors import ConfigurationError
from .exact import POSTGRES_COST, POSTGRES_CREDITS, SQLITE_COST, SQLITE_CREDITS, ExactSum

__all__ = ["EventSource", "PostgresSource", "Rollup", "SQLiteSource", "open_source", "run_all"]

T = TypeVar("T")


@dataclass(frozen=True)
class Rollup:
    """A store's per-day rollup of the events (SQLite migration m011, PostgreSQL m004_report_rollup): its table,
    how a NULL key is stored, the aggregates that sum its money exactly, and a day as a query parameter."""

    table: str
    """Per day, customer, feature, model, provider, environment, action name, billable flag and kind."""
    users_table: str
    """Per day, customer, user, billable flag and kind (users crossed with the other keys would be too many)."""
    null: str
    """SQL literal a NULL key is stored as (``0`` in SQLite, ``chr(1)`` in PostgreSQL)."""
    money: tuple[str, ...]
    """The cost aggregates, then the credit ones, in the shape of :class:`~.exact.ExactSum`'s."""
    day: Callable[[date], Any]


class EventSource(Protocol):
    """A store of events that reports can query. Implementations: :class:`SQLiteSource`, :class:`PostgresSource`."""

    dialect: str
    """``"sqlite"`` or ``"postgres"``."""
    table: str
    """The events table's name, quoted, as it goes in a query."""
    description: str
    """Where the events are, for messages (never a password)."""
    rollup: Rollup | None
    """The per-day rollup whole days are read from instead of the events, when the store has one."""

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of ``sql`` (``?`` parameters)."""

    def day(self, column: str = "timestamp") -> str:
        """SQL: the UTC day of a timestamp column, as ``YYYY-MM-DD`` text."""

    def hour(self, column: str = "timestamp") -> str:
        """SQL: the UTC hour of a timestamp column, as ``YYYY-MM-DDTHH`` text."""

    def moment(self, value: datetime) -> Any:
        """A moment as a query parameter comparable with ``timestamp``."""

    def cost_sum(self) -> ExactSum:
        """The exact-sum expressions of ``cost_usd`` for this dialect."""

    def credit_sum(self) -> ExactSum:
        """The exact-sum expressions of ``credits`` for this dialect."""

    def close(self) -> None:
        """Release the connection."""


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ConfigurationError(f"{value.isoformat()} has no time zone: pass an aware datetime (UTC).")
    return value.astimezone(timezone.utc)


class SQLiteSource:
    """The events of a SQLite file the meter records into, read-only."""

    dialect = "sqlite"
    table = "events"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        from ..storage.database import Database

        self.path = Path(path)
        if not self.path.is_file():
            raise ConfigurationError(f"No metrics database at {self.path}: pass --db PATH or set METRICAOS_DB.")
        self._db = Database(self.path, read_only=True)  # raises here, with the fix, if the file cannot be read
        self._idle: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._idle.put(self._db)
        self._opened = [self._db]
        self._opened_lock = threading.Lock()
        self.description = str(self.path)
        found = self.query("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN "
                           "('report_daily', 'report_daily_users')")
        self.rollup = _SQLITE_ROLLUP if found[0][0] == 2 else None  # a file not migrated yet: the events are read

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        # A connection per query in flight, kept for the next: SQLite runs a query without the GIL, so a page's
        # reports run in parallel (:func:`run_all`), where one shared connection would serialise them.
        try:
            db = self._idle.get_nowait()
        except queue.Empty:
            from ..storage.database import Database

            db = Database(self.path, read_only=True)
            with self._opened_lock:
                self._opened.append(db)
        try:
            with db.lock:
                return db.connection().execute(sql, tuple(params)).fetchall()
        finally:
            self._idle.put(db)

    def day(self, column: str = "timestamp") -> str:
        return f"substr({column}, 1, 10)"

    def hour(self, column: str = "timestamp") -> str:
        return f"substr({column}, 1, 13)"

    def moment(self, value: datetime) -> Any:
        return _utc(value).isoformat()  # stored timestamps are UTC isoformat() text: they compare as text

    def cost_sum(self) -> ExactSum:
        return SQLITE_COST

    def credit_sum(self) -> ExactSum:
        return SQLITE_CREDITS

    def close(self) -> None:
        with self._opened_lock:
            opened, self._opened = self._opened, []
        for db in opened:
            db.close()


_SQLITE_ROLLUP = Rollup("report_daily", "report_daily_users", "0", ("sum(cost_high)", "sum(cost_low)", "sum(cost_slow)", "sum(credits_high)",
                                              "sum(credits_low)", "sum(credits_slow)"), date.isoformat)

_PARAM = re.compile(r"\?")


class PostgresSource:
    """The events of the PostgreSQL table the delivery destination fills (``schema.table``). Needs psycopg 3."""

    dialect = "postgres"

    def __init__(self, url: str, *, schema: str = "public", table: str = "metricaos_events") -> None:
        try:
            import psycopg
            from psycopg import sql as psql
        except ImportError:
            raise ConfigurationError("Reading a PostgreSQL store needs psycopg 3: pip install "
                                     "'metricaos-sdk[postgres]'.") from None
        from ..faults import safe_text
        from ..storage.postgres import parse_target

        params, self.description, secrets = parse_target(url)
        try:
            self._conn = psycopg.connect(url, autocommit=True, connect_timeout=int(params.get("connect_timeout") or 10))
        except psycopg.Error as exc:
            diag = getattr(exc, "diag", None)
            reason = (diag.message_primary if diag is not None and diag.message_primary
                      else str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
            for secret in secrets:
                reason = reason.replace(secret, "<redacted>")
            raise ConfigurationError(f"Cannot connect to the PostgreSQL store {self.description} "
                                     f"({safe_text(reason, 200)}): check the URL and that the server is up.") from None
        self.table = psql.Identifier(schema, table).as_string(self._conn)
        self._lock = threading.Lock()
        found = self.query("SELECT to_regclass(?)", (self.table,))
        if not found or found[0][0] is None:
            self._conn.close()
            raise ConfigurationError(f"{self.description} has no events table {schema}.{table}: deliver events to it "
                                     f"first (the PostgreSQL destination creates it), or pass the right --table.")
        from ..storage.postgres import Table

        daily = Table(schema, table).sibling("daily").as_string(self._conn)
        users = Table(schema, table).sibling("daily_users").as_string(self._conn)
        has_daily = self.query("SELECT to_regclass(?)", (users,))[0][0] is not None
        self.rollup = Rollup(daily, users, "chr(1)", ("sum(cost_usd)", "sum(credits)"), lambda d: d) if has_daily else None

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock, self._conn.cursor() as cur:
            cur.execute(_PARAM.sub("%s", sql.replace("%", "%%")), tuple(params))
            return cur.fetchall() if cur.description is not None else []

    def day(self, column: str = "timestamp") -> str:
        return f"to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD')"

    def hour(self, column: str = "timestamp") -> str:
        return f"to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24')"

    def moment(self, value: datetime) -> Any:
        return _utc(value)

    def cost_sum(self) -> ExactSum:
        return POSTGRES_COST

    def credit_sum(self) -> ExactSum:
        return POSTGRES_CREDITS

    def close(self) -> None:
        self._conn.close()


def run_all(calls: Mapping[str, Callable[[], T]], *, workers: int = 4) -> dict[str, T]:
    """Run independent report calls on a few threads (each query of a SQLite source releases the GIL while it
    runs); their results by name. The first exception is raised once all have finished."""
    if len(calls) <= 1:
        return {name: call() for name, call in calls.items()}
    with ThreadPoolExecutor(max_workers=min(workers, len(calls)), thread_name_prefix="metricaos-report") as pool:
        futures = {name: pool.submit(call) for name, call in calls.items()}
        return {name: future.result() for name, future in futures.items()}


def open_source(where: str | os.PathLike[str], *, table: str = "metricaos_events", schema: str = "public") -> EventSource:
    """An event source for a SQLite file path or a ``postgresql://`` URL (``table`` and ``schema`` name its
    events table). Raises :class:`~metricaos_sdk.ConfigurationError` with the fix when it cannot be read."""
    text = os.fspath(where)
    if text.startswith(("postgresql://", "postgres://")) or (_CONNINFO.match(text) and not Path(text).exists()):
        return PostgresSource(text, schema=schema, table=table)
    return SQLiteSource(text)


_CONNINFO = re.compile(r"^\s*[a-z_]+\s*=")
"""A ``key=value`` connection string (``host=db dbname=metrics``): never taken for a file name, nor echoed."""
