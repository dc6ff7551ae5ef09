"""Sinks: where finished events go."""

from .base import EventQuery, Sink
from .memory import MemorySink
from .sqlite import SQLiteSink

__all__ = ["EventQuery", "MemorySink", "SQLiteSink", "Sink"]
