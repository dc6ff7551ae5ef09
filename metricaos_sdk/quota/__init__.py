"""Quotas: limits per customer and period, checked before each call."""

from .check import check_quotas, quota_status
from .limits import Quota, UsageTotals, period_bounds
from .store import InMemoryQuotaStore, QuotaStore

__all__ = ["InMemoryQuotaStore", "Quota", "QuotaStore", "UsageTotals", "check_quotas", "period_bounds", "quota_status"]
