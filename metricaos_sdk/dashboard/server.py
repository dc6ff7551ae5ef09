"""The dashboard's HTTP server: the standard library's ``ThreadingHTTPServer``, routes, access and errors.

Routes (``GET`` and ``HEAD`` only; anything else is 405)::

    /  and /business          business page                      admin
    /customer/<id>            one customer's page                admin
    /api/business?period=     BusinessOverview.as_json()         admin
    /api/customer/<id>        CustomerUsage.as_json()            admin
    /api/report?by=&period=   UsageReport.as_json()              admin
    /api/deliveries           `metricaos deliveries status --json`  admin
    /api/alerts               `metricaos alerts --json`'s spikes    admin
    /embed/customer?token=    the customer fragment (HTML)       customer token
    /api/customer?token=      CustomerUsage.as_json(include_cost=False)  customer token
    /healthz                  {"ok": true}                       anyone

Access: *admin* routes are open on a loopback address when no admin token is set; with one (required to bind
anything but loopback) they need it — ``Authorization: Bearer TOKEN``, or ``?token=TOKEN`` once, which sets an
HttpOnly cookie and redirects to the same page without it. *Customer-token* routes need a token minted with
the secret (:mod:`.tokens`); the customer comes from the verified token alone, and a token never opens an admin
route. Errors are JSON (``{"error": …}``) under ``/api/`` and a small page elsewhere, with the right status.
Access lines go to the ``metricaos_sdk.dashboard`` logger with every token in a URL replaced by ``[redacted]``.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from ..errors import ConfigurationError
from . import pages
from .business_page import business_body
from .customer_page import customer_body
from .data import Store, parse_period
from .tokens import TokenError, check_secret, verify_customer_token

__all__ = ["Dashboard", "DashboardServer", "HTTPError", "Response", "is_loopback", "make_server"]

log = logging.getLogger("metricaos_sdk.dashboard")

_COOKIE = "metricaos_dashboard"
_TOKEN_IN_URL = re.compile(r"((?:^|[?&])token=)[^&\s\"]*", re.IGNORECASE)
_ADMIN_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; "
              "frame-ancestors 'none'")
_EMBED_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
_MIN_ADMIN_TOKEN = 16


class HTTPError(Exception):
    """A request the dashboard refuses or cannot answer: the status and a one-sentence reason."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


@dataclass
class Response:
    """What a route answers."""

    status: int
    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)


def is_loopback(host: str) -> bool:
    """Whether ``host`` only listens on this machine (``127.0.0.1``, ``::1``, ``localhost``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _html(status: int, text: str, **headers: str) -> Response:
    return Response(status, text.encode("utf-8"), "text/html; charset=utf-8", dict(headers))


def _json(value: Any, status: int = 200) -> Response:
    return Response(status, (json.dumps(value, indent=2) + "\n").encode("utf-8"), "application/json")


class Dashboard:
    """The routes over one :class:`~.data.Store`, independent of the HTTP server (``handle`` is a pure
    request → :class:`Response` function, so it can be tested without a socket)."""

    def __init__(self, store: Store, *, secret: str | bytes | None = None, admin_token: str | None = None) -> None:
        self.store = store
        self.secret = check_secret(secret) if secret else None
        if admin_token is not None and len(admin_token) < _MIN_ADMIN_TOKEN:
            raise ConfigurationError(f"The admin token is shorter than {_MIN_ADMIN_TOKEN} characters: use 32 random "
                                     f"ones (python -c 'import secrets; print(secrets.token_urlsafe(32))' makes some).")
        self._admin = hashlib.sha256(admin_token.encode()).digest() if admin_token else None
        self._session = (hmac.new(admin_token.encode(), b"metricaos-dashboard-session", hashlib.sha256).hexdigest()
                         if admin_token else None)
        admin, customer, anyone = "admin", "customer", "anyone"
        self.routes: dict[str, tuple[str, Callable[[dict[str, str], dict[str, str], str], Response]]] = {
            "/": (admin, self.business_page), "/business": (admin, self.business_page),
            "/api/business": (admin, self.business_api), "/api/report": (admin, self.report_api),
            "/api/deliveries": (admin, self.deliveries_api), "/api/alerts": (admin, self.alerts_api),
            "/customer/": (admin, self.customer_page), "/api/customer/": (admin, self.customer_api),
            "/embed/customer": (customer, self.embed), "/api/customer": (customer, self.customer_api_token),
            "/healthz": (anyone, lambda query, headers, customer: _json({"ok": True})),
        }
        """Path (a prefix when it ends with ``/`` and is not ``/``: the rest is a customer id) → who may open it,
        and the route, called with the query, the headers and that customer id (``""`` for other paths)."""

    # -- access ---------------------------------------------------------------------------------------
    def _admin_ok(self, path: str, query: dict[str, str], headers: dict[str, str]) -> Response | None:
        """None when the request may open an admin route; else the redirect that sets the cookie."""
        if self._admin is None:
            return None
        given = query.get("token") or _bearer(headers)
        if given is None:
            cookie = _cookies(headers.get("cookie", "")).get(_COOKIE)
            if cookie is not None and self._session and hmac.compare_digest(cookie.encode(), self._session.encode()):
                return None
            raise HTTPError(401, "This page needs the dashboard's admin token: open it with ?token=ADMIN_TOKEN or "
                                 "send Authorization: Bearer ADMIN_TOKEN.", {"WWW-Authenticate": "Bearer"})
        if hmac.compare_digest(hashlib.sha256(given.encode()).digest(), self._admin):
            if "token" in query:  # from a link: keep the token out of the address bar and the history
                rest = urlencode({k: v for k, v in query.items() if k != "token"})
                where = path + (f"?{rest}" if rest else "")
                return Response(303, b"", "text/plain", {"Location": where, "Set-Cookie": (
                    f"{_COOKIE}={self._session}; HttpOnly; SameSite=Strict; Path=/")})
            return None
        if self.secret is not None and given.startswith("v1."):
            try:
                verify_customer_token(self.secret, given, _real_now())
            except TokenError:
                pass
            else:
                raise HTTPError(403, "A customer token opens only /embed/customer and /api/customer, not this page.")
        raise HTTPError(401, "The admin token is wrong: use the --token value (METRICAOS_DASHBOARD_TOKEN) the "
                             "dashboard was started with.", {"WWW-Authenticate": "Bearer"})

    def _customer_of(self, query: dict[str, str], headers: dict[str, str]) -> str:
        """The customer id of a verified customer token (the only place it comes from)."""
        if self.secret is None:
            raise HTTPError(503, "Customer tokens are not enabled on this dashboard: start it with --secret or "
                                 "METRICAOS_DASHBOARD_SECRET.")
        try:
            # Tokens expire in real time, whatever moment --now pins the reports to.
            claims = verify_customer_token(self.secret, query.get("token") or _bearer(headers), _real_now())
        except TokenError as exc:
            raise HTTPError(exc.status, str(exc)) from None
        for name in ("customer", "customer_id"):
            if name in query and query[name] != claims.customer_id:
                raise HTTPError(403, "This token opens another customer's usage, not the one asked for.")
        return claims.customer_id

    # -- routes -------------------------------------------------------------------------------------
    def handle(self, path: str, query: dict[str, str], headers: dict[str, str]) -> Response:
        """Answer a GET of ``path`` (as sent: percent-encoded) with ``query`` and lower-cased ``headers``;
        raises :class:`HTTPError` for a refused request."""
        route, customer = self.routes.get(path), ""
        if route is None:
            prefix = next((p for p in ("/customer/", "/api/customer/") if path.startswith(p)), None)
            if prefix is not None:
                route, customer = self.routes[prefix], _customer_id(path, prefix)
        if route is None:
            raise HTTPError(404, f"Nothing here: {unquote(path)[:80]} is not a dashboard page (try / or "
                                 f"/customer/<id>).")
        access, answer = route
        if access == "admin":
            if self._admin is None and not _loopback_host(headers.get("host", "")):
                # Open to this machine without a token: a page elsewhere could rebind its own name to 127.0.0.1
                # and read this one, so only requests addressed to a loopback name are answered.
                raise HTTPError(421, "Without --token the dashboard answers only requests addressed to localhost, "
                                     "127.0.0.1 or [::1]: open it by one of those names, or start it with --token.")
            redirect = self._admin_ok(path, query, headers)
            if redirect is not None:
                return redirect
        return answer(query, headers, customer)

    def business_page(self, query: dict[str, str], headers: dict[str, str], customer: str) -> Response:
        period = parse_period(query.get("period"), self.store.clock())
        body = business_body(self.store, period)
        return _html(200, pages.document(f"Business overview {period.name} · MetricaOS", body))

    def customer_page(self, query: dict[str, str], headers: dict[str, str], customer: str) -> Response:
        view = self.store.customer(customer)
        body = f'<div class="mx-wrap">{customer_body(view)}{_foot(self.store)}</div>'
        return _html(200, pages.document(f"{customer} · usage · MetricaOS", body))

    def customer_api(self, query: dict[str, str], headers: dict[str, str], customer: str) -> Response:
        return _json(self.store.customer(customer).as_json())

    def business_api(self, query: dict[str, str], headers: dict[str, str], customer: str) -> Response:
        return _json(self.store.business(parse_period(query.get("period"), self.store.clock())).as_json())

    def report_api(self, query: dict[str, str], headers: dict[str, str], customer: str) -> Response:
        by = query.get("by", "customer")
        return _json(self.store.report(by, parse_period(query.get("period"), self.store.clock())).as_json())

    def deliveries_api(self, query: dict[str, str], headers: dict[str, str], customer: str) -> Response:
        return _json(self.store.deliveries() or [])

    def alerts_api(self, query: dict[str, str], headers: dict[str, str], customer: str) -> Response:
        return _json({"now": self.store.clock().isoformat(), "spikes": [s.as_json() for s in self.store.alerts()]})

    def embed(self, query: dict[str, str], headers: dict[str, str], _: str) -> Response:
        customer = self._customer_of(query, headers)  # from the verified token, never from the request
        text = pages.fragment(customer_body(self.store.customer(customer), embed=True))
        if query.get("frame") == "1":  # for an <iframe>: the same fragment in a minimal document
            text = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
                    f'content="width=device-width, initial-scale=1"><meta name="referrer" content="no-referrer">'
                    f'<link rel="icon" href="data:,"><title>Usage · {pages.esc(customer)}</title></head>'
                    f'<body style="margin:0">{text}</body></html>')
        return _html(200, text)

    def customer_api_token(self, query: dict[str, str], headers: dict[str, str], _: str) -> Response:
        return _json(self.store.customer(self._customer_of(query, headers)).as_json(include_cost=False))


def _foot(store: Store) -> str:
    return (f'<p class="mx-foot">Read-only view of {pages.esc(store.source.description)} · as of '
            f'{pages.esc(pages.utc(store.clock()))} · <a href="/">business overview</a></p>')


def _customer_id(path: str, prefix: str) -> str:
    rest = path[len(prefix):]
    if not rest or "/" in rest:  # an id with a "/" comes percent-encoded (%2F)
        raise HTTPError(404, "Name one customer: /customer/<customer id, percent-encoded>.")
    return unquote(rest)


def _bearer(headers: dict[str, str]) -> str | None:
    value = headers.get("authorization", "")
    return value[7:].strip() or None if value[:7].lower() == "bearer " else None


def _cookies(header: str) -> dict[str, str]:
    out = {}
    for part in header.split(";"):
        name, _, value = part.strip().partition("=")
        if name:
            out[name] = value
    return out


def redact(text: str) -> str:
    """``text`` (a request line, a URL) with the value of every ``token`` parameter — however its name is
    percent-encoded — replaced by ``[redacted]``."""
    def query(match: re.Match[str]) -> str:
        pairs = parse_qsl(match.group(1), keep_blank_values=True)
        if not any(name.lower() == "token" for name, _ in pairs):
            return match.group(0)
        return "?" + "&".join(f"{quote(n)}={'[redacted]' if n.lower() == 'token' else quote(v)}" for n, v in pairs)

    return _QUERY.sub(query, _TOKEN_IN_URL.sub(r"\1[redacted]", text))


_QUERY = re.compile(r"\?([^\s\"#]*)")


def _loopback_host(host: str) -> bool:
    """Whether a ``Host`` header names this machine by a loopback name (``localhost:8000``, ``127.0.0.1``,
    ``[::1]:8000``)."""
    host = host.strip().lower()
    name = host[1:host.find("]")] if host.startswith("[") else host.rsplit(":", 1)[0]
    if name in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _real_now() -> datetime:
    return datetime.now(timezone.utc)


class _Handler(BaseHTTPRequestHandler):
    server: DashboardServer
    server_version = "MetricaOS-dashboard"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    timeout = 30  # an idle or slow client's connection is closed, not kept open with a thread on it

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._answer(head=False)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(head=True)

    def _refuse_method(self) -> None:
        self._send(self._error(405, "Only GET and HEAD: the dashboard is read-only.", {"Allow": "GET, HEAD"}), False)

    do_POST = do_PUT = do_DELETE = do_PATCH = _refuse_method  # noqa: N815

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
        path = urlsplit(self.path).path
        if path.startswith("/api/"):
            response = _json({"error": message, "status": status}, status)
        else:
            response = _html(status, pages.error_page(status, HTTPStatus(status).phrase, message))
        response.headers.update(headers or {})
        return response

    def _answer(self, *, head: bool) -> None:
        if not self.server.slots.acquire(timeout=10):  # a few pages at a time: each may read a million events
            self._send(self._error(503, "The dashboard is busy: try again in a moment.", {"Retry-After": "5"}), head)
            return
        try:
            self._answer_now(head=head)
        finally:
            self.server.slots.release()

    def _answer_now(self, *, head: bool) -> None:
        parts = urlsplit(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        try:
            response = self.server.app.handle(parts.path, query, headers)
        except HTTPError as exc:
            response = self._error(exc.status, exc.message, exc.headers)
        except ConfigurationError as exc:  # bad input (a period, a dimension) or a store that cannot be read
            response = self._error(400, str(exc))
        except Exception:
            log.exception("dashboard: %s failed", redact(self.path))
            response = self._error(500, "The dashboard could not answer this request; the server log says why.")
        self._send(response, head)

    def _send(self, response: Response, head: bool) -> None:
        self.send_response(response.status)
        embed = urlsplit(self.path).path in ("/embed/customer", "/api/customer")
        defaults = {"Content-Type": response.content_type, "Content-Length": str(len(response.body)),
                    "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
                    "Content-Security-Policy": _EMBED_CSP if embed else _ADMIN_CSP}
        if embed:
            defaults["Access-Control-Allow-Origin"] = "*"  # bearer tokens, no cookies: any origin may read it
        else:
            defaults["X-Frame-Options"] = "DENY"
        for name, value in {**defaults, **response.headers}.items():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        log.info("%s %s", self.address_string(), redact(format % args))


class DashboardServer(ThreadingHTTPServer):
    """A threading HTTP server of one :class:`Dashboard`; ``url`` is where it listens."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], app: Dashboard, *, concurrency: int = 8) -> None:
        self.app = app
        self.slots = threading.BoundedSemaphore(concurrency)
        """Requests answered at once; the others wait (up to 10 s, then 503)."""
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else str(host)
        shown = f"[{name}]" if ":" in name else name
        return f"http://{shown}:{port}/"

    def server_close(self) -> None:
        super().server_close()
        self.app.store.close()


def make_server(where: str | Store, *, host: str = "127.0.0.1", port: int = 0, secret: str | bytes | None = None,
                admin_token: str | None = None, now: datetime | None = None,
                table: str = "metricaos_events") -> DashboardServer:
    """A dashboard server over the store at ``where`` (a SQLite path or ``postgresql://`` URL, or a
    :class:`~.data.Store`), bound to ``host:port`` (port 0: any free one), not yet serving — call
    ``serve_forever()``. Refuses (:class:`ConfigurationError`) to bind anything but loopback without an
    ``admin_token``. ``secret`` enables customer tokens; ``now`` pins the clock (reports as of that moment)."""
    if not is_loopback(host) and not admin_token:
        raise ConfigurationError(f"The dashboard will not listen on {host or 'every address'} without an admin token: "
                                 f"pass --token or set METRICAOS_DASHBOARD_TOKEN (or bind 127.0.0.1).")
    store = where if isinstance(where, Store) else Store.open(where, table=table, now=now)
    try:
        return DashboardServer((host, port), Dashboard(store, secret=secret, admin_token=admin_token))
    except BaseException:
        store.close()
        raise
