"""Customer tokens: what a product's backend gives its frontend so the dashboard shows one customer's usage.

A token is ``v1.<payload>.<signature>``, both parts unpadded URL-safe base64 (so it goes in a query string as
it is). The payload is compact JSON, ``{"c": customer_id, "e": expiry, "i": issued}`` (epoch seconds); the
signature is HMAC-SHA256 under the dashboard's secret of the text ``v1.<payload>`` — the version is signed too.
The token is not encrypted: anyone holding it can read the customer id and the expiry, and nothing else; only
the holder of the secret can make one, and a changed byte anywhere makes it invalid.

:func:`verify_customer_token` checks the signature first (in constant time), then the payload, then the
expiry, and raises :class:`TokenError` saying which failed — never echoing the token or the secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from ..errors import ConfigurationError, MetricaOSError

__all__ = ["MIN_SECRET_LENGTH", "CustomerToken", "TokenError", "check_secret", "mint_customer_token",
           "verify_customer_token"]

VERSION = "v1"
MIN_SECRET_LENGTH = 16
"""Characters a secret needs at least (32 random ones are recommended: ``secrets.token_urlsafe(32)``)."""
_MAX_TOKEN = 4096  # a token longer than this is not one of ours: refused before any decoding


class TokenError(MetricaOSError):
    """A customer token was missing, malformed, altered, signed with another secret, or expired.

    ``status`` is the HTTP status the dashboard answers with (401); ``reason`` one of ``missing``,
    ``malformed``, ``signature``, ``expired``."""

    def __init__(self, reason: str, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class CustomerToken:
    """What a verified token says: whose usage it opens, and until when."""

    customer_id: str
    expires_at: datetime
    issued_at: datetime


def check_secret(secret: str | bytes | None) -> bytes:
    """The secret as bytes; :class:`ConfigurationError` when it is missing or shorter than
    :data:`MIN_SECRET_LENGTH` (the message never contains it)."""
    if not secret:
        raise ConfigurationError("Customer tokens need a secret: pass --secret or set METRICAOS_DASHBOARD_SECRET.")
    raw = secret.encode() if isinstance(secret, str) else bytes(secret)
    if len(raw) < MIN_SECRET_LENGTH:
        raise ConfigurationError(f"The customer-token secret is shorter than {MIN_SECRET_LENGTH} characters: use "
                                 f"32 random ones (python -c 'import secrets; print(secrets.token_urlsafe(32))' makes some).")
    return raw


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not text or any(c not in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_" for c in text):
        raise ValueError("not unpadded URL-safe base64")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: bytes, signed: str) -> bytes:
    return hmac.new(secret, signed.encode("ascii"), hashlib.sha256).digest()


def _epoch(now: datetime | float | None) -> float:
    if now is None:
        return time.time()
    if isinstance(now, datetime):
        if now.tzinfo is None:
            raise ConfigurationError(f"{now.isoformat()} has no time zone: pass an aware datetime (UTC).")
        return now.timestamp()
    return float(now)


def mint_customer_token(secret: str | bytes, customer_id: str, ttl_seconds: int,
                        *, now: datetime | float | None = None) -> str:
    """A token that opens ``customer_id``'s embed and JSON for ``ttl_seconds`` from ``now`` (default: now)."""
    key = check_secret(secret)
    if not isinstance(customer_id, str) or not customer_id:
        raise ConfigurationError("A customer token needs a customer id (a non-empty string).")
    if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int) or ttl_seconds <= 0:
        raise ConfigurationError(f"ttl_seconds={ttl_seconds!r} is not a positive whole number of seconds.")
    issued = int(_epoch(now))
    payload = json.dumps({"c": customer_id, "e": issued + ttl_seconds, "i": issued}, separators=(",", ":"),
                         ensure_ascii=False)
    signed = f"{VERSION}.{_b64(payload.encode('utf-8'))}"
    return f"{signed}.{_b64(_sign(key, signed))}"


def verify_customer_token(secret: str | bytes, token: str | None, now: datetime | float | None = None) -> CustomerToken:
    """The customer a token opens, if it is ours, intact and unexpired at ``now``; else :class:`TokenError`."""
    key, moment = check_secret(secret), _epoch(now)
    if not token:
        raise TokenError("missing", "This page needs a customer token (?token=…): mint one with "
                                    "mint_customer_token() or `metricaos dashboard-token CUSTOMER`.")
    malformed = TokenError("malformed", "The customer token is malformed: expected v1.<payload>.<signature> as "
                                        "minted by mint_customer_token().")
    if len(token) > _MAX_TOKEN:
        raise malformed
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != VERSION:
        raise malformed
    try:
        payload_raw, signature = _unb64(parts[1]), _unb64(parts[2])
    except (ValueError, binascii.Error):
        raise malformed from None
    if not hmac.compare_digest(signature, _sign(key, f"{parts[0]}.{parts[1]}")):
        raise TokenError("signature", "The customer token's signature does not match: it was altered, or signed "
                                      "with another secret.")
    try:
        payload = json.loads(payload_raw.decode("utf-8"))
        customer, expires, issued = payload["c"], payload["e"], payload["i"]
    except (ValueError, KeyError, TypeError):
        raise malformed from None
    if not (isinstance(customer, str) and customer and all(isinstance(x, int) and not isinstance(x, bool)
                                                           for x in (expires, issued))):
        raise malformed
    if moment >= expires:
        when = datetime.fromtimestamp(expires, timezone.utc)
        raise TokenError("expired", f"The customer token expired at {when:%Y-%m-%d %H:%M:%S} UTC: mint a new one.")
    return CustomerToken(customer_id=customer, expires_at=datetime.fromtimestamp(expires, timezone.utc),
                         issued_at=datetime.fromtimestamp(issued, timezone.utc))
