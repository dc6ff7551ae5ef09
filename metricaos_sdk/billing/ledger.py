"""The adjustments ledger: credit notes, refunds, goodwill grants, credit packs, exclusions and reversals.

Append-only, in the same SQLite file as the events (migration m008): there is no update or delete — the
tables' triggers refuse both, so a correction is a new entry. Every entry says who made it, why, when it
was recorded and which period it applies to, and carries an idempotency ``key``: recording the same key
again returns the first entry (a retried request never adjusts twice); the same key with different content
is refused.

Kinds, and what each does to the *invoiced* stage only (raw, metered and billable never move):

============== =================================================================================
``credit_note`` an amount of money off the invoice (a negative line)
``refund``      money paid back (a negative line, listed apart from credit notes)
``grant``       a goodwill grant: ``amount`` of a meter (credits …) added to the period's allowance
``pack``        a prepaid credit pack bought: a line at the pack's price, its credits added to the allowance
``exclude``     events left out of the invoice, with the reason (a bug, a test, a disputed run)
``reverse``     outcomes reversed (the ticket was reopened; a human took over): left out like an exclusion
============== =================================================================================
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any, Literal

from ..errors import ConfigurationError
from ..storage.database import Database
from .money import Amount, check_money, check_quantity
from .periods import moment

__all__ = ["ADJUSTMENT_KINDS", "EVENT_KINDS", "Adjustment", "AdjustmentKind", "Ledger"]

AdjustmentKind = Literal["credit_note", "refund", "grant", "pack", "exclude", "reverse"]
ADJUSTMENT_KINDS: tuple[str, ...] = ("credit_note", "refund", "grant", "pack", "exclude", "reverse")
EVENT_KINDS: tuple[str, ...] = ("exclude", "reverse")
"""Kinds that name events (and leave them out of the invoice) rather than carry an amount."""


@dataclass(frozen=True)
class Adjustment:
    """One ledger entry. ``amount`` is money (``unit`` a currency) for credit notes, refunds and packs, a
    quantity of a meter (``unit`` = ``credits`` …) for grants, and None for exclusions and reversals, which
    name ``event_ids``. ``seq`` orders entries as they were recorded."""

    seq: int
    key: str
    customer_id: str
    kind: AdjustmentKind
    reason: str
    actor: str
    applies_at: datetime
    recorded_at: datetime
    amount: Decimal | None = None
    unit: str | None = None
    event_ids: tuple[str, ...] = ()
    details: dict[str, str] = field(default_factory=dict)


def _text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"Every adjustment needs {what} (a non-empty string): say {what} so the ledger can "
                                 f"answer for it later.")
    return value


class Ledger:
    """The append-only adjustments ledger of one database (``Billing.ledger``)."""

    def __init__(self, database: Database) -> None:
        self.database = database

    # -- recording -------------------------------------------------------------------------------------
    def credit_note(self, customer_id: str, amount: Amount, *, currency: str = "USD", reason: str, by: str, key: str,
                    applies_at: datetime | date | None = None) -> Adjustment:
        """Take ``amount`` of money off the customer's invoice for the period containing ``applies_at`` (now)."""
        return self._record(customer_id, "credit_note", reason=reason, by=by, key=key, applies_at=applies_at,
                            amount=check_money(amount, "credit note amount"), unit=_currency(currency))

    def refund(self, customer_id: str, amount: Amount, *, currency: str = "USD", reason: str, by: str, key: str,
               applies_at: datetime | date | None = None) -> Adjustment:
        """Record ``amount`` paid back to the customer (a negative line on the period's invoice)."""
        return self._record(customer_id, "refund", reason=reason, by=by, key=key, applies_at=applies_at,
                            amount=check_money(amount, "refund amount"), unit=_currency(currency))

    def grant(self, customer_id: str, amount: Amount, *, meter: str = "credits", reason: str, by: str, key: str,
              applies_at: datetime | date | None = None) -> Adjustment:
        """A goodwill grant: ``amount`` of ``meter`` added to the allowance of the period containing ``applies_at``."""
        return self._record(customer_id, "grant", reason=reason, by=by, key=key, applies_at=applies_at,
                            amount=check_quantity(amount, "grant amount", positive=True), unit=meter)

    def buy_pack(self, customer_id: str, pack: str, *, credits: Amount, price: Amount, currency: str = "USD",
                 by: str, key: str, reason: str = "credit pack purchase",
                 applies_at: datetime | date | None = None) -> Adjustment:
        """A prepaid credit pack bought: billed at ``price`` and ``credits`` added to the period's allowance.

        ``Billing.buy_pack`` fills ``credits`` and ``price`` from the customer's price plan."""
        return self._record(customer_id, "pack", reason=reason, by=by, key=key, applies_at=applies_at,
                            amount=check_money(price, "pack price"), unit=_currency(currency),
                            details={"pack": pack, "credits": str(check_quantity(credits, "pack credits", positive=True))})

    def exclude(self, customer_id: str, event_ids: Iterable[str], *, reason: str, by: str, key: str) -> Adjustment:
        """Leave the given events of the customer out of their invoice (whatever period they fall in)."""
        return self._record(customer_id, "exclude", reason=reason, by=by, key=key, event_ids=event_ids)

    def reverse_outcome(self, customer_id: str, event_id: str, *, reason: str, by: str, key: str) -> Adjustment:
        """Reverse an outcome (the ticket was reopened): the outcome event is no longer invoiced. The event
        itself is never edited; it stays in the raw, metered and billable stages."""
        return self._record(customer_id, "reverse", reason=reason, by=by, key=key, event_ids=[event_id])

    # -- reading ---------------------------------------------------------------------------------------
    def entries(self, customer_id: str | None = None, *, since: datetime | None = None,
                until: datetime | None = None) -> list[Adjustment]:
        """Entries in the order recorded, optionally of one customer and applying in ``[since, until)``."""
        where: list[str] = []
        params: list[str] = []
        if customer_id is not None:
            where.append("customer_id = ?")
            params.append(customer_id)
        if since is not None:
            where.append("applies_at >= ?")
            params.append(moment(since, "since").isoformat())
        if until is not None:
            where.append("applies_at < ?")
            params.append(moment(until, "until").isoformat())
        sql = "SELECT * FROM billing_adjustments" + (f" WHERE {' AND '.join(where)}" if where else "") + " ORDER BY seq"
        conn = self.database.connection()
        with self.database.lock:
            cursor = conn.execute(sql, params)
            names = [d[0] for d in cursor.description]
            return [_adjustment(dict(zip(names, row, strict=True))) for row in cursor.fetchall()]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.entries())

    # -- the one write -----------------------------------------------------------------------------------
    def _record(self, customer_id: str, kind: str, *, reason: str, by: str, key: str,
                applies_at: datetime | date | None = None, amount: Decimal | None = None, unit: str | None = None,
                event_ids: Iterable[str] = (), details: dict[str, str] | None = None) -> Adjustment:
        _text(customer_id, "a customer_id")
        _text(reason, "a reason (why)")
        _text(by, "an actor (by= who)")
        _text(key, "an idempotency key (key=, e.g. the ticket or payment id)")
        if isinstance(event_ids, str):
            event_ids = [event_ids]
        ids = tuple(dict.fromkeys(event_ids))
        if kind in EVENT_KINDS and not ids:
            raise ConfigurationError(f"An {kind} adjustment needs at least one event id: pass the ids of the events "
                                     "to leave out (UsageEvent.id).")
        now = datetime.now(timezone.utc)
        row = {"key": key, "customer_id": customer_id, "kind": kind, "amount": None if amount is None else str(amount),
               "unit": unit, "event_ids": json.dumps(list(ids)), "reason": reason, "actor": by,
               "applies_at": moment(applies_at, "applies_at").isoformat(), "recorded_at": now.isoformat(),
               "details": json.dumps(details or {}, sort_keys=True)}
        with self.database.transaction() as conn:
            existing = _row(conn, key)
            if existing is not None:
                return _same(existing, row)
            if ids:
                _check_events(conn, customer_id, kind, ids)
            cursor = conn.execute(f"INSERT INTO billing_adjustments ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                                  list(row.values()))
            seq = cursor.lastrowid
            conn.executemany("INSERT OR IGNORE INTO billing_adjusted_events (event_id, seq, customer_id) VALUES (?, ?, ?)",
                             [(i, seq, customer_id) for i in ids])
            created = _row(conn, key)
        assert created is not None
        return created


def _currency(code: str) -> str:
    if not isinstance(code, str) or len(code) != 3 or not code.isalpha():
        raise ConfigurationError(f"currency must be a 3-letter ISO 4217 code such as 'USD', got {code!r}.")
    return code.upper()


def _row(conn: sqlite3.Connection, key: str) -> Adjustment | None:
    cursor = conn.execute("SELECT * FROM billing_adjustments WHERE key = ?", (key,))
    found = cursor.fetchone()
    if found is None:
        return None
    return _adjustment(dict(zip([d[0] for d in cursor.description], found, strict=True)))


def _same(existing: Adjustment, row: dict[str, Any]) -> Adjustment:
    """The entry already recorded under the key, if ``row`` says the same thing; else a ConfigurationError."""
    again = (row["customer_id"], row["kind"], row["amount"], row["unit"], tuple(json.loads(row["event_ids"])),
             row["reason"], row["actor"], json.loads(row["details"]))
    first = (existing.customer_id, existing.kind, None if existing.amount is None else str(existing.amount),
             existing.unit, existing.event_ids, existing.reason, existing.actor, existing.details)
    if again != first:
        raise ConfigurationError(f"The adjustment key {row['key']!r} was already used, for a different adjustment "
                                 f"(#{existing.seq}, {existing.kind} for {existing.customer_id}): use a new key for a "
                                 "new adjustment; the ledger is append-only.")
    return existing


def _check_events(conn: sqlite3.Connection, customer_id: str, kind: str, ids: Sequence[str]) -> None:
    found: dict[str, tuple[str | None, str]] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        for event_id, owner, event_type in conn.execute(
                f"SELECT id, customer_id, event_type FROM events WHERE id IN ({', '.join('?' * len(chunk))})", chunk):
            found[event_id] = (owner, event_type)
    missing = [i for i in ids if i not in found]
    if missing:
        raise ConfigurationError(f"No event {missing[0]!r} in the store ({len(missing)} of {len(ids)} ids unknown): "
                                 "pass ids of recorded events (UsageEvent.id), after meter.flush().")
    foreign = [i for i in ids if found[i][0] != customer_id]
    if foreign:
        raise ConfigurationError(f"Event {foreign[0]!r} belongs to customer {found[foreign[0]][0]!r}, not "
                                 f"{customer_id!r}: adjust each customer's own events.")
    if kind == "reverse":
        wrong = [i for i in ids if found[i][1] != "outcome"]
        if wrong:
            raise ConfigurationError(f"Event {wrong[0]!r} is a {found[wrong[0]][1]!r} event, not an outcome: reverse "
                                     "outcomes only (meter.record_outcome); leave other events out with exclude().")


def _adjustment(row: dict[str, Any]) -> Adjustment:
    return Adjustment(seq=row["seq"], key=row["key"], customer_id=row["customer_id"], kind=row["kind"],
                      reason=row["reason"], actor=row["actor"], applies_at=datetime.fromisoformat(row["applies_at"]),
                      recorded_at=datetime.fromisoformat(row["recorded_at"]),
                      amount=None if row["amount"] is None else Decimal(row["amount"]), unit=row["unit"],
                      event_ids=tuple(json.loads(row["event_ids"])), details=json.loads(row["details"]))
