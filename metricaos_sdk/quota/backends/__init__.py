"""Where quota counters, reservations and customer settings live: in process, SQLite, Redis.

``RedisQuotaStore`` is imported when first named: most processes never use it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import QuotaStore
from .memory import InMemoryQuotaStore
from .sqlite import SQLiteQuotaStore

if TYPE_CHECKING:
    from .redis import RedisQuotaStore

__all__ = ["InMemoryQuotaStore", "QuotaStore", "RedisQuotaStore", "SQLiteQuotaStore"]


def __getattr__(name: str) -> Any:
    if name == "RedisQuotaStore":
        from .redis import RedisQuotaStore

        globals()[name] = RedisQuotaStore
        return RedisQuotaStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
