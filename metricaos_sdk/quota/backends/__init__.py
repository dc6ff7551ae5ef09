"""Where quota counters, reservations and customer settings live: in process, SQLite, Redis."""

from .base import QuotaStore
from .memory import InMemoryQuotaStore
from .redis import RedisQuotaStore
from .sqlite import SQLiteQuotaStore

__all__ = ["InMemoryQuotaStore", "QuotaStore", "RedisQuotaStore", "SQLiteQuotaStore"]

