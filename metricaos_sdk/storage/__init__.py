"""SQLite storage shared by the SQLite sink and the SQLite quota store: one file, one schema."""

from .database import Database

__all__ = ["Database"]
