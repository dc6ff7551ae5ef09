"""Customer tokens (mint, verify, every way to refuse one) and the dashboard's access rules, without a browser:
the HTTP server on 127.0.0.1 is spoken to with urllib."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from metricaos_sdk.cli import cli
from metricaos_sdk.dashboard import TokenError, make_server, mint_customer_token, verify_customer_token
from metricaos_sdk.dashboard import tokens as token_module
from metricaos_sdk.dashboard.server import is_loopback, redact
from metricaos_sdk.errors import ConfigurationError

SECRET = "s3cret-for-tests-0123456789abcdef"
ADMIN = "admin-for-tests-0123456789abcdef"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _signed(payload: bytes, secret: str = SECRET) -> str:
    """A token over any payload, signed correctly (to reach the checks after the signature)."""
    head = f"v1.{_b64(payload)}"
    return f"{head}.{_b64(hmac.new(secret.encode(), head.encode(), hashlib.sha256).digest())}"


# -- tokens -----------------------------------------------------------------------------------------

def test_a_token_round_trips_and_is_compact() -> None:
    token = mint_customer_token(SECRET, "cus_a", 3600, now=NOW)
    version, payload, signature = token.split(".")
    assert version == "v1" and len(token) < 140
    assert set(payload + signature) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    claims = verify_customer_token(SECRET, token, NOW + timedelta(seconds=3599))
    assert claims.customer_id == "cus_a"
    assert claims.expires_at == NOW + timedelta(hours=1) and claims.issued_at == NOW
    assert verify_customer_token(SECRET.encode(), token, (NOW + timedelta(minutes=5)).timestamp()).customer_id == "cus_a"


def test_any_customer_id_round_trips() -> None:
    for customer in ("客户 ä/b?c=d&e", "a.b.c", '<b>"x"</b>', "x" * 300):
        token = mint_customer_token(SECRET, customer, 60, now=NOW)
        assert verify_customer_token(SECRET, token, NOW).customer_id == customer


def test_expiry_is_exact() -> None:
    token = mint_customer_token(SECRET, "cus_a", 60, now=NOW)
    assert verify_customer_token(SECRET, token, NOW + timedelta(seconds=59)).customer_id == "cus_a"
    with pytest.raises(TokenError) as exc:
        verify_customer_token(SECRET, token, NOW + timedelta(seconds=60))
    assert exc.value.reason == "expired" and exc.value.status == 401
    assert str(exc.value) == "The customer token expired at 2026-11-20 12:01:00 UTC: mint a new one."


def _refusal(token: str | None, secret: str = SECRET) -> TokenError:
    with pytest.raises(TokenError) as exc:
        verify_customer_token(secret, token, NOW)
    assert exc.value.status == 401
    message = str(exc.value)
    assert SECRET not in message and (not token or len(token) < 8 or token not in message)
    assert message.endswith(".") and message.count(". ") == 0  # one sentence
    return exc.value


def test_tampered_and_foreign_tokens_fail_the_signature() -> None:
    token = mint_customer_token(SECRET, "cus_a", 600, now=NOW)
    version, payload, signature = token.split(".")
    other = mint_customer_token(SECRET, "cus_b", 600, now=NOW).split(".")[1]
    longer = mint_customer_token(SECRET, "cus_a", 10**9, now=NOW).split(".")[1]
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    for bad in (f"v1.{other}.{signature}", f"v1.{longer}.{signature}", f"v1.{payload}.{flipped}",
                f"v1.{payload}.{signature[:-4]}"):
        assert _refusal(bad).reason == "signature"
    assert _refusal(token, secret="another-secret-0123456789").reason == "signature"


def test_malformed_tokens_are_refused_as_malformed() -> None:
    token = mint_customer_token(SECRET, "cus_a", 600, now=NOW)
    _, payload, signature = token.split(".")
    for bad in ("abc", "v1", f"v1.{payload}", f"v2.{payload}.{signature}", f"{token}.x", "v1..", "v1.!!!.abc",
                f"v1.{payload}=.{signature}", "v1." + "A" * 5000 + ".x",
                _signed(b"not json"), _signed(b"[1, 2]"), _signed(b'{"c": "cus_a", "e": 9999999999}'),
                _signed(b'{"c": "", "e": 9999999999, "i": 0}'), _signed(b'{"c": 5, "e": 9999999999, "i": 0}'),
                _signed(b'{"c": "cus_a", "e": "9999999999", "i": 0}'), _signed(b'{"c": "cus_a", "e": true, "i": 0}'),
                _signed(b"\xff\xfe")):
        assert _refusal(bad).reason == "malformed", bad[:40]
    assert _refusal(None).reason == "missing"
    assert _refusal("").reason == "missing"


def test_the_signature_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(token_module.hmac, "compare_digest", spy)
    token = mint_customer_token(SECRET, "cus_a", 600, now=NOW)
    verify_customer_token(SECRET, token, NOW)
    assert len(calls) == 1 and len(calls[0][0]) == len(calls[0][1]) == 32


def test_bad_arguments_are_one_sentence_configuration_errors() -> None:
    for secret, customer, ttl in ((None, "c", 60), ("short", "c", 60), (SECRET, "", 60), (SECRET, "c", 0),
                                  (SECRET, "c", -5), (SECRET, "c", 1.5), (SECRET, "c", True)):
        with pytest.raises(ConfigurationError) as exc:
            mint_customer_token(secret, customer, ttl, now=NOW)  # type: ignore[arg-type]
        message = str(exc.value)
        assert "short" not in message.replace("shorter", "")  # a secret is never echoed
        assert message.endswith(".") and message.count(". ") == 0
    with pytest.raises(ConfigurationError, match="no time zone"):
        verify_customer_token(SECRET, "v1.a.b", datetime(2026, 1, 1))


# -- access -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from metricaos_sdk.storage.database import Database
    from metricaos_sdk.storage.rows import EVENT_COLUMNS, event_to_row
    from metricaos_sdk.testing.sample import sample_events, write_sample

    path = write_sample(tmp_path_factory.mktemp("access") / "metricaos.db", 300, start=NOW - timedelta(days=10),
                        days=9)
    odd = next(iter(sample_events(1, seed=3, start=NOW - timedelta(days=1), days=0)))
    db = Database(path)
    with db.transaction() as conn:  # a customer id a page must escape
        conn.execute(f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES ({', '.join('?' * len(EVENT_COLUMNS))})",
                     event_to_row(odd.model_copy(update={"customer_id": '<b id="x">cus</b>'})))
    db.close()
    return path


def _serve(store: Path, **options: Any) -> Iterator[str]:
    srv = make_server(str(store), now=NOW, **options)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv.url
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join()


@pytest.fixture(scope="module")
def guarded(store: Path) -> Iterator[str]:
    yield from _serve(store, secret=SECRET, admin_token=ADMIN)


@pytest.fixture(scope="module")
def open_local(store: Path) -> Iterator[str]:
    yield from _serve(store)


def get(url: str, *, method: str = "GET", **headers: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, method=method, headers=headers)
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def test_non_loopback_needs_an_admin_token(store: Path) -> None:
    for host in ("0.0.0.0", "192.168.1.20", "", "::", "example.com"):
        with pytest.raises(ConfigurationError) as exc:
            make_server(str(store), host=host, port=0)
        assert "without an admin token" in str(exc.value) and str(exc.value).count(". ") == 0
    result = CliRunner().invoke(cli, ["dashboard", "--db", str(store), "--host", "0.0.0.0", "--port", "0"])
    assert result.exit_code == 1
    assert "will not listen on 0.0.0.0 without an admin token: pass --token" in result.output
    assert [is_loopback(h) for h in ("127.0.0.1", "127.5.5.5", "::1", "[::1]", "localhost", "0.0.0.0", "10.0.0.1")] \
        == [True, True, True, True, True, False, False]
    with pytest.raises(ConfigurationError, match="admin token is shorter"):
        make_server(str(store), admin_token="short")


def test_admin_routes_need_the_admin_token(guarded: str) -> None:
    customer_token = mint_customer_token(SECRET, "cus_a", 600, now=datetime.now(timezone.utc))
    for path in ("", "business", "customer/cus_a", "api/business", "api/customer/cus_a", "api/report?by=model",
                 "api/deliveries", "api/alerts"):
        status, headers, body = get(guarded + path)
        assert status == 401 and headers["WWW-Authenticate"] == "Bearer", path
        assert get(guarded + path, Authorization=f"Bearer {ADMIN}")[0] == 200, path
        assert get(guarded + path, Authorization="Bearer wrong-token-0123456789")[0] == 401, path
        status, _, body = get(guarded + path, Authorization=f"Bearer {customer_token}")
        assert status == 403 and b"opens only /embed/customer" in body, path
    status, headers, body = get(guarded + "api/business")
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body)["error"].startswith("This page needs the dashboard's admin token")
    status, headers, _ = get(guarded + f"customer/cus_a?token={ADMIN}&x=1")
    assert status == 303 and headers["Location"] == "/customer/cus_a?x=1"
    cookie = headers["Set-Cookie"].split(";")[0]
    assert ADMIN not in cookie and "HttpOnly" in headers["Set-Cookie"]
    assert get(guarded + "business", Cookie=cookie)[0] == 200
    assert get(guarded + "business", Cookie=cookie[:-1] + ("0" if cookie[-1] != "0" else "1"))[0] == 401
    assert get(guarded + "business", Cookie=f"{cookie.split('=')[0]}=caf\u00e9")[0] == 401


def test_customer_tokens_open_only_their_customer(guarded: str) -> None:
    token = mint_customer_token(SECRET, "cus_b", 600, now=datetime.now(timezone.utc))
    status, headers, body = get(guarded + f"api/customer?token={token}")
    assert status == 200 and json.loads(body)["customer_id"] == "cus_b"
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert json.loads(get(guarded + "api/customer", Authorization=f"Bearer {token}")[2])["customer_id"] == "cus_b"
    assert get(guarded + f"api/customer?token={token}&customer_id=cus_b")[0] == 200
    for asked in ("customer=cus_a", "customer_id=cus_a"):
        status, _, body = get(guarded + f"api/customer?token={token}&{asked}")
        assert status == 403 and json.loads(body)["error"] == ("This token opens another customer's usage, not the "
                                                               "one asked for.")
    status, headers, body = get(guarded + f"embed/customer?token={token}")
    assert status == 200 and body.startswith(b"<style>") and b"cus_b" in body and b"cus_a" not in body
    assert "frame-ancestors" not in headers["Content-Security-Policy"]
    framed = get(guarded + f"embed/customer?token={token}&frame=1")[2]
    assert framed.startswith(b"<!doctype html>") and b"cus_a" not in framed
    expired = mint_customer_token(SECRET, "cus_b", 60, now=datetime.now(timezone.utc) - timedelta(minutes=2))
    status, _, body = get(guarded + f"api/customer?token={expired}")
    assert status == 401 and "expired" in json.loads(body)["error"]
    status, _, body = get(guarded + f"embed/customer?token={expired}")
    assert status == 401 and b"<!doctype html>" in body and b"expired" in body
    assert get(guarded + f"api/customer?token={ADMIN}")[0] == 401  # the admin token is not a customer token


def test_without_a_secret_customer_tokens_are_off_and_loopback_is_open(open_local: str) -> None:
    token = mint_customer_token(SECRET, "cus_a", 600, now=datetime.now(timezone.utc))
    status, _, body = get(open_local + f"api/customer?token={token}")
    assert status == 503 and "start it with --secret" in json.loads(body)["error"]
    assert get(open_local + "business")[0] == 200 and get(open_local + "api/customer/cus_a")[0] == 200


def test_errors_and_headers(guarded: str) -> None:
    auth = {"Authorization": f"Bearer {ADMIN}"}
    status, headers, body = get(guarded + "nope", **auth)
    assert status == 404 and b"<!doctype html>" in body
    status, headers, body = get(guarded + "api/nope", **auth)
    assert status == 404 and "error" in json.loads(body)
    status, headers, _ = get(guarded + "business", method="POST", **auth)
    assert status == 405 and headers["Allow"] == "GET, HEAD"
    for path, words in (("?period=2026-13", "is not a period"), ("api/report?by=colour", "is not a dimension")):
        status, _, body = get(guarded + path, **auth)
        assert status == 400 and words.encode() in body, path
    status, headers, body = get(guarded + "business", method="HEAD", **auth)
    assert status == 200 and body == b"" and int(headers["Content-Length"]) > 1000
    assert headers["X-Frame-Options"] == "DENY" and "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert "script-src" not in headers["Content-Security-Policy"] and headers["Cache-Control"] == "no-store"
    assert get(guarded + "healthz")[0] == 200


def test_pages_escape_what_they_show(guarded: str) -> None:
    status, _, body = get(guarded + "customer/%3Cb%20id%3D%22x%22%3Ecus%3C%2Fb%3E", Authorization=f"Bearer {ADMIN}")
    assert status == 200
    assert b'<b id="x">' not in body and b"&lt;b id=&quot;x&quot;&gt;cus&lt;/b&gt;" in body
    business = get(guarded + "?period=2026-11", Authorization=f"Bearer {ADMIN}")[2]
    assert b'<b id="x">' not in business and b"&lt;b id=&quot;x&quot;&gt;" in business


def test_tokens_never_reach_the_log(guarded: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="metricaos_sdk.dashboard")
    token = mint_customer_token(SECRET, "cus_a", 600, now=datetime.now(timezone.utc))
    get(guarded + f"embed/customer?token={token}")
    get(guarded + f"business?x=1&token={ADMIN}")
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "embed/customer?token=[redacted]" in text and "business?x=1&token=[redacted]" in text
    assert token not in text and ADMIN not in text
    assert redact("/a?TOKEN=abc&b=token") == "/a?TOKEN=[redacted]&b=token"


def test_the_cli_mints_tokens_the_dashboard_accepts() -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["dashboard-token", "cus_a", "--ttl", "120", "--url", "http://127.0.0.1:8000"],
                           env={"METRICAOS_DASHBOARD_SECRET": SECRET})
    assert result.exit_code == 0, result.output
    token, embed, api = result.stdout.split()
    assert verify_customer_token(SECRET, token).customer_id == "cus_a"
    assert embed == f"http://127.0.0.1:8000/embed/customer?token={token}" and api.endswith(f"api/customer?token={token}")
    shown = json.loads(runner.invoke(cli, ["dashboard-token", "cus_b", "--secret", SECRET, "--json"]).stdout)
    assert verify_customer_token(SECRET, shown["token"]).customer_id == shown["customer_id"] == "cus_b"
    missing = runner.invoke(cli, ["dashboard-token", "cus_a"], env={"METRICAOS_DASHBOARD_SECRET": ""})
    assert missing.exit_code == 1 and "Customer tokens need a secret: pass --secret" in missing.output
    short = runner.invoke(cli, ["dashboard-token", "cus_a", "--secret", "tiny-secret"])
    assert short.exit_code == 1 and "tiny-secret" not in short.output and "shorter than 16" in short.output


def test_hardening_from_review(tmp_path):
    """Found in review: DNS rebinding of an open loopback dashboard, tokens that never expire under --now, a
    percent-encoded token name kept in the access log, a period at the end of the calendar."""
    import http.client
    import threading
    from datetime import datetime, timedelta, timezone

    from metricaos_sdk.dashboard import make_server, mint_customer_token
    from metricaos_sdk.dashboard.server import redact
    from metricaos_sdk.testing.sample import write_sample

    db = write_sample(tmp_path / "s.db", 50, days=2)
    pinned = datetime(2026, 11, 2, tzinfo=timezone.utc)
    secret = "s" * 32
    httpd = make_server(db, port=0, now=pinned, secret=secret)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    port = httpd.server_address[1]

    def get(path: str, host: str) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", path, headers={"Host": host})
        status = conn.getresponse().status
        conn.close()
        return status

    try:
        assert get("/api/report?by=model", f"127.0.0.1:{port}") == 200
        assert get("/api/report?by=model", f"localhost:{port}") == 200
        assert get("/api/report?by=model", f"[::1]:{port}") == 200
        assert get("/api/report?by=model", "attacker.example") == 421
        assert get("/api/report?by=model", f"attacker.example:{port}") == 421
        expired = mint_customer_token(secret, "cus_a", 60, now=datetime.now(timezone.utc) - timedelta(hours=2))
        assert get(f"/api/customer?token={expired}", f"127.0.0.1:{port}") == 401  # real time, not the pinned clock
        fresh = mint_customer_token(secret, "cus_a", 600)
        assert get(f"/api/customer?token={fresh}", "anything.example") == 200  # customer tokens need no loopback name
        assert get("/?period=9999-12-31", f"127.0.0.1:{port}") == 400
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert "SECRETVALUE" not in redact("GET /api/customer?to%6Ben=SECRETVALUE&x=1 HTTP/1.1")
    assert "SECRETVALUE" not in redact("GET /?TOKEN=SECRETVALUE HTTP/1.1")
