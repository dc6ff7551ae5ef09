"""What the pages show, read the way the CLI reads it (so a page and ``--json`` agree by construction).

One :class:`Store` per server: the event source (a SQLite file, read-only, or a PostgreSQL table), the SQLite
file that holds the quota, billing and delivery tables when there is one, and the clock. Every function here
calls the report the CLI calls — :func:`~metricaos_sdk.reports.customer.customer_usage`,
:func:`~metricaos_sdk.reports.business.business_overview`, :func:`~metricaos_sdk.reports.usage_report.usage_report`,
``Outbox.status`` — and returns its result object untouched: pages format it, endpoints serve its ``as_json()``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from ..reports.source import EventSource, open_source
from ..reports.usage_report import Filters, UsageReport, usage_report

__all__ = ["Period", "Store", "parse_period"]


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Period:
    """The period a business page covers, as ``metricaos margin --period`` takes it: a month (``2026-11``) or a
    day (``2026-11-05``), UTC, ``[since, until)``."""

    name: str
    since: datetime
    until: datetime

    @property
    def is_month(self) -> bool:
        return len(self.name) == 7

    def step(self, by: int) -> Period:
        """The period ``by`` months (or days) before or after this one."""
        if not self.is_month:
            return parse_period((self.since + timedelta(days=by)).strftime("%Y-%m-%d"), self.since)
        index = self.since.year * 12 + self.since.month - 1 + by
        return parse_period(f"{index // 12:04d}-{index % 12 + 1:02d}", self.since)


def parse_period(text: str | None, now: datetime) -> Period:
    """``2026-11`` (a month) or ``2026-11-05`` (a day), UTC; None: the month ``now`` is in."""
    from ..errors import ConfigurationError

    if text is None:
        text = now.astimezone(timezone.utc).strftime("%Y-%m")
    try:
        if not "1970" <= text[:4] <= "9998":  # the pages link the periods before and after: both must exist
            raise ValueError(text)
        if len(text) == 7:
            start = datetime.strptime(text, "%Y-%m").replace(tzinfo=timezone.utc)
            end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
            return Period(text, start, end)
        if len(text) == 10:
            start = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=timezone.utc)
            return Period(text, start, start + timedelta(days=1))
    except (ValueError, OverflowError):
        pass
    raise ConfigurationError(f"period={text[:40]!r} is not a period: use a month (2026-11) or a day (2026-11-05).")


@dataclass
class Store:
    """The event source and the SQLite file beside it (``database``: quota, billing and delivery tables;
    None for a PostgreSQL source), with the clock pages use for "now"."""

    source: EventSource
    database: Path | None
    clock: Callable[[], datetime] = field(default=_utc_now)

    @classmethod
    def open(cls, where: str | os.PathLike[str], *, table: str = "metricaos_events",
             now: datetime | None = None) -> Store:
        """The store at a SQLite path or a ``postgresql://`` URL (:func:`open_source`; ``table`` is a PostgreSQL
        store's events table, ``schema.table`` or ``table``); ``now`` pins the clock."""
        schema, _, name = table.rpartition(".")
        source = open_source(where, table=name, schema=schema or "public")
        database = Path(os.fspath(where)) if source.dialect == "sqlite" else None
        clock = (lambda: now) if now is not None else _utc_now
        return cls(source, database, clock)

    def close(self) -> None:
        self.source.close()

    def customer(self, customer_id: str) -> Any:
        """``metricaos usage CUSTOMER``: the customer's :class:`CustomerUsage` now, with their plan and limits."""
        from ..reports.customer import customer_usage, limits_for

        now = self.clock()
        plan, limits = limits_for(self.database, customer_id, now) if self.database is not None else (None, [])
        return customer_usage(self.source, customer_id, now=now, limits=limits, plan=plan)

    def report(self, by: str, period: Period) -> UsageReport:
        """``metricaos report --by BY --since … --until …``: usage grouped by one dimension over ``period``."""
        return usage_report(self.source, by, Filters(since=period.since, until=period.until))

    def revenue(self, period: Period) -> dict[str, Any] | None:
        """Revenue per customer in ``period`` from the invoices of their price plans (what ``metricaos margin
        --period`` uses); None for a PostgreSQL store (the price plans live in the SQLite file)."""
        if self.database is None:
            return None
        from ..reports.margin import invoice_revenue

        return invoice_revenue(self.database, period.name)

    def business(self, period: Period) -> Any:
        """The :class:`~metricaos_sdk.reports.business.BusinessOverview` of ``period``, revenue from the invoices."""
        from ..reports.business import business_overview

        return business_overview(self.source, since=period.since, until=period.until, revenue=self.revenue(period))

    def deliveries(self) -> list[dict[str, Any]] | None:
        """``metricaos deliveries status --json``: where each destination stands (None without a SQLite file)."""
        if self.database is None:
            return None
        from ..delivery.outbox import Outbox

        outbox = Outbox(self.database)
        try:
            return [asdict(s) for s in outbox.status()]
        finally:
            outbox.close()

    def alerts(self) -> list[Any]:
        """``metricaos alerts --now NOW``: the spikes of the latest window under the default
        :class:`~metricaos_sdk.reports.alerts.SpikeRules`, most severe first."""
        from ..reports.alerts import detect_spikes

        return detect_spikes(self.source, now=self.clock())
