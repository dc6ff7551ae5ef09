"""The dashboard: server-rendered pages and JSON endpoints over :mod:`metricaos_sdk.reports` (``metricaos dashboard``).

Standard library only (``http.server``), no build step, no script, nothing fetched from a CDN: each page is
HTML with inline CSS and inline SVG charts drawn in Python, computed by the same report functions the CLI
prints, so a page, its JSON endpoint and ``metricaos … --json`` agree. It only reads the store. A product
embeds one customer's usage with a signed, expiring customer token (:func:`mint_customer_token`); see
``docs/dashboard.md``.
"""

from .server import Dashboard, DashboardServer, make_server
from .tokens import CustomerToken, TokenError, mint_customer_token, verify_customer_token

__all__ = ["CustomerToken", "Dashboard", "DashboardServer", "TokenError", "make_server", "mint_customer_token",
           "verify_customer_token"]
