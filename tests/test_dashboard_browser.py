"""The dashboard in a real browser: Debian's chromium driven by Playwright, against a server on 127.0.0.1.

The store is a few thousand realistic events (``write_sample``) over the last 25 days, with quota plans (soft
credits, hard tokens), price plans (so there is revenue), delivery state and a burst of calls in the current
hour. Every number a page shows carries ``data-metric="<source>:<path>"``; each is checked against the output
of the real CLI (``metricaos usage|report|margin|deliveries status|alerts … --json``) formatted the way the page
says it is. The clock is pinned (``now=``) for the server and the CLI alike: projections depend on it.

Skipped, with the reason, without playwright or chromium — except under ``CI=true``, where that fails.
Screenshots go to ``tmp_path``; ``METRICAOS_DASHBOARD_SCREENSHOTS=1`` also copies them into ``docs/``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import urllib.request
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from metricaos_sdk.cli import cli
from metricaos_sdk.dashboard import make_server, mint_customer_token
from metricaos_sdk.formatting import count, quantity, usd, usd_per_call

CHROMIUM = os.environ.get("METRICAOS_TEST_CHROMIUM", "/usr/bin/chromium")
SECRET = "test-secret-0123456789-abcdefghij"
ADMIN = "admin-token-0123456789-abcdefghij"
DOCS = Path(__file__).resolve().parents[1] / "docs"


def _need_browser() -> None:
    reason = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        reason = "playwright is not installed: pip install -e '.[test]'"
    if reason is None and not os.access(CHROMIUM, os.X_OK):
        reason = f"no chromium at {CHROMIUM}: run eval \"$(bash scripts/chromium.sh)\" (or set METRICAOS_TEST_CHROMIUM)"
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the browser tests: {reason}")
        pytest.skip(reason)


def build_store(path: Path, now: datetime) -> Path:
    """A realistic store at ``path`` as of ``now``: events, quota plans, price plans, delivery state."""
    from metricaos_sdk import Billing, Charge, Meter, PricePlan
    from metricaos_sdk.delivery.outbox import Outbox
    from metricaos_sdk.storage.database import Database
    from metricaos_sdk.storage.rows import EVENT_COLUMNS, event_to_row
    from metricaos_sdk.testing.sample import sample_events, write_sample

    anchor = (now - timedelta(days=25)).replace(minute=0, second=0, microsecond=0)
    write_sample(path, 4000, start=anchor, days=25)
    since_hour = (now - now.replace(minute=0, second=0, microsecond=0)).total_seconds()
    burst_at = now - timedelta(seconds=max(1.0, min(600.0, since_hour - 1)))
    db = Database(path)
    with db.transaction() as conn:  # a burst for one customer in the current hour: a spike to alert on
        rows = [event_to_row(e) for e in sample_events(600, seed=99, start=burst_at, days=0, customers=3)
                if e.customer_id == "cus_c"]
        conn.executemany(f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES "
                         f"({', '.join('?' * len(EVENT_COLUMNS))})", rows)
    db.close()
    meter = Meter(path)
    meter.plans.define("pro", credits=1500, on_limit="soft")
    meter.plans.define("starter", tokens=4_000_000, on_limit="hard")
    meter.plans.define("scale", credits=400, on_limit="overage", overage_price_usd="0.02")
    for customer, plan in (("cus_a", "pro"), ("cus_b", "starter"), ("cus_c", "scale")):
        meter.customers.assign(customer, plan, anchor=anchor)
    meter.close()
    with Billing(path) as billing:
        growth = PricePlan("growth", base_price="49", charges=[Charge("credits", included=500, unit_price="0.05")])
        for customer in ("cus_a", "cus_b", "cus_c", "cus_d"):
            billing.subscribe(customer, growth, at=date(anchor.year, anchor.month, 1) - timedelta(days=40))
    outbox = Outbox(path)
    pending = outbox.batch("openmeter", 3000)
    outbox.settle("openmeter", pending, delivered=len(pending) - 12, skipped=12)
    pending = outbox.batch("stripe", 200)
    outbox.settle("stripe", pending, delivered=len(pending) - 3, skipped=0,
                  parked=[(p, "HTTP 400: no Stripe customer is mapped to this customer id") for p in pending[:3]])
    outbox.failed("stripe", "HTTP 503 from api.stripe.com: service unavailable")
    outbox.close()
    return path


@pytest.fixture(scope="module")
def now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, now: datetime) -> Path:
    _need_browser()
    return build_store(tmp_path_factory.mktemp("dashboard") / "metricaos.db", now)


@pytest.fixture(scope="module")
def server(store: Path, now: datetime) -> Iterator[str]:
    srv = make_server(str(store), host="127.0.0.1", port=0, secret=SECRET, admin_token=ADMIN, now=now)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv.url
    srv.shutdown()
    srv.server_close()
    thread.join()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    _need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        chromium.close()


def cli_json(*args: str) -> Any:
    result = CliRunner().invoke(cli, [*args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def fetch_json(url: str, token: str | None = ADMIN) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read())


class Visit:
    """A page opened in a fresh browser context, with what the browser reported."""

    def __init__(self, browser: Any, url: str, *, admin: bool = True, size: tuple[int, int] = (1280, 900)) -> None:
        headers = {"Authorization": f"Bearer {ADMIN}"} if admin else {}
        self.context = browser.new_context(extra_http_headers=headers,
                                           viewport={"width": size[0], "height": size[1]})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.response = self.page.goto(url)

    def close(self) -> None:
        self.context.close()


def _utc(value: Any) -> str:
    if isinstance(value, (int, float)):
        value = datetime.fromtimestamp(value, timezone.utc)
    elif isinstance(value, str):
        value = datetime.fromisoformat(value)
    return f"{value:%Y-%m-%d %H:%M} UTC"


# How a page writes each kind of number, from the SDK's formatting rule (independently of the dashboard's code).
FORMAT = {
    "usd": lambda v: usd(Decimal(str(v))), "usd_per_call": lambda v: usd_per_call(Decimal(str(v))),
    "quantity": lambda v: quantity(Decimal(str(v))), "count": lambda v: count(int(v)),
    "percent": lambda v: f"{float(v):.1%}", "points": lambda v: f"{Decimal(str(v))}%", "utc": _utc, "epoch": _utc,
    "text": str,
}
_SEGMENT = re.compile(r"^(\w*)(?:\[(\d*)\])?$")


def resolve(document: Any, path: str, key: str | None) -> Any:
    """The value at ``path`` (``rows[].total.cost_usd``: ``[]`` is the row whose key is ``key``; ``[3]`` the
    fourth) in a CLI JSON document."""
    value = document
    for segment in path.split("."):
        match = _SEGMENT.match(segment)
        assert match, f"bad metric path {path!r}"
        name, index = match.groups()
        if name:
            value = value[name]
        if index == "":
            found = [r for r in value if key in (r.get("key"), r.get("customer_id"), r.get("destination"))]
            assert len(found) == 1, f"{path} [{key}]: {len(found)} rows match"
            value = found[0]
        elif index is not None:
            value = value[int(index)]
    return value


def check_numbers(page: Any, sources: dict[str, Any]) -> dict[str, int]:
    """Every marked number equals its CLI value, formatted; every figure and numeric cell is marked."""
    marked = page.eval_on_selector_all("[data-metric]", "els => els.map(e => ({m: e.dataset.metric, "
                                       "f: e.dataset.format, k: e.dataset.key ?? null, t: e.textContent.trim()}))")
    seen: dict[str, int] = {}
    for item in marked:
        source, _, path = item["m"].partition(":")
        assert source in sources, f"{item['m']}: no CLI output named {source!r} to check against"
        expected = FORMAT[item["f"]](resolve(sources[source], path, item["k"]))
        assert item["t"] == expected, f"{item['m']} [{item['k']}] shows {item['t']!r}, the CLI says {expected!r}"
        seen[source] = seen.get(source, 0) + 1
    unmarked = page.eval_on_selector_all(
        ".mx-stat-value, td.mx-r", "els => els.filter(e => /\\d/.test(e.textContent) && "
        "!e.querySelector('[data-metric]')).map(e => e.textContent)")
    assert unmarked == [], f"numbers shown without data-metric: {unmarked}"
    return seen


def _shot(page: Any, tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    page.screenshot(path=str(target), full_page=True)
    assert target.stat().st_size > 10_000
    if os.environ.get("METRICAOS_DASHBOARD_SCREENSHOTS") == "1":
        shutil.copyfile(target, DOCS / name)
    return target


def _busiest_month(store: Path) -> str:
    report = cli_json("report", "--db", str(store), "--by", "day")
    months: dict[str, int] = {}
    for row in report["rows"]:
        months[row["key"][:7]] = months.get(row["key"][:7], 0) + row["total"]["events"]
    return max(months, key=lambda m: (months[m], m))


def test_customer_page_shows_the_cli_numbers(browser: Any, server: str, store: Path, now: datetime,
                                             tmp_path: Path) -> None:
    usage = cli_json("usage", "cus_a", "--db", str(store), "--now", now.isoformat())
    assert usage["plan"] == "pro" and usage["allowance"] == "1500" and Decimal(usage["used"]) > 0
    assert fetch_json(f"{server}api/customer/cus_a") == usage
    visit = Visit(browser, f"{server}customer/cus_a")
    try:
        assert visit.response.status == 200
        page = visit.page
        assert page.locator("h1").first.inner_text().startswith("cus_a")
        assert page.locator("svg.mx-chart-gauge title").first.text_content() == "cus_a: allowance used"
        assert page.locator("svg.mx-chart-bars g.mx-bar").count() == len(usage["by_day"])
        assert usage["at_limit_text"] in page.locator(".mx-callout").inner_text()
        seen = check_numbers(page, {"usage": usage})
        assert seen["usage"] >= 20 + len(usage["by_feature"]) + len(usage["by_user"][:12])
        _shot(page, tmp_path, "dashboard-customer.png")
        assert visit.errors == []
    finally:
        visit.close()


def test_business_page_shows_the_cli_numbers(browser: Any, server: str, store: Path, now: datetime,
                                             tmp_path: Path) -> None:
    month = _busiest_month(store)
    start = datetime.strptime(month, "%Y-%m")
    end = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    window = ["--since", start.strftime("%Y-%m-%d"), "--until", end.strftime("%Y-%m-%d")]
    db = ["--db", str(store)]
    sources = {f"report.{by}": cli_json("report", *db, "--by", by, *window)
               for by in ("day", "customer", "feature", "model", "action")}
    sources["margin"] = cli_json("margin", *db, "--period", month)
    sources["deliveries"] = cli_json("deliveries", "status", *db)
    sources["alerts"] = cli_json("alerts", *db, "--now", now.isoformat())
    sources["business"] = overview = fetch_json(f"{server}api/business?period={month}")
    assert overview["margins"] == sources["margin"]["customers"]
    assert overview["top_customers"] == sources["report.customer"]["rows"][:10]
    assert {d["destination"] for d in sources["deliveries"]} == {"openmeter", "stripe"}

    visit = Visit(browser, f"{server}?period={month}")
    try:
        assert visit.response.status == 200
        page = visit.page
        seen = check_numbers(page, sources)
        assert seen["margin"] >= 5 * 4 and seen["deliveries"] >= 2 * 6 and seen["report.customer"] >= 4
        assert seen.get("alerts", 0) == min(len(sources["alerts"]["spikes"]), 10)
        assert page.locator("svg.mx-chart-lines").count() == 1
        assert "stripe" in page.locator("text=HTTP 503 from api.stripe.com").first.inner_text()
        _shot(page, tmp_path, "dashboard-business.png")
        assert visit.errors == []
    finally:
        visit.close()


def test_admin_token_in_a_link_becomes_a_cookie(browser: Any, server: str) -> None:
    visit = Visit(browser, f"{server}customer/cus_b?token={ADMIN}", admin=False)
    try:
        assert visit.response.status == 200
        assert "token=" not in visit.page.url  # redirected without it
        assert visit.page.goto(f"{server}business").status == 200  # the cookie opens the other pages
        assert visit.errors == []
    finally:
        visit.close()
    refused = Visit(browser, f"{server}customer/cus_b", admin=False)
    try:
        assert refused.response.status == 401
        assert "admin token" in refused.page.locator("p").inner_text()
    finally:
        refused.close()


def test_embed_shows_only_its_customer(browser: Any, server: str, store: Path, now: datetime,
                                       tmp_path: Path) -> None:
    usage = cli_json("usage", "cus_b", "--db", str(store), "--now", now.isoformat(), "--customer-view")
    token = mint_customer_token(SECRET, "cus_b", 600)
    served = fetch_json(f"{server}api/customer?token={token}", token=None)
    assert served == usage
    assert "cost_usd" not in json.dumps(served)  # what the calls cost the product is not the customer's to see
    visit = Visit(browser, f"{server}embed/customer?token={token}", admin=False, size=(820, 900))
    try:
        assert visit.response.status == 200
        page = visit.page
        html = page.content()
        assert "cus_b" in html
        for other in ("cus_a", "cus_c", "cus_d", "cus_e"):
            assert other not in html
        seen = check_numbers(page, {"usage": usage})
        assert seen["usage"] >= 15
        assert page.locator("[data-metric='usage:totals.cost_usd']").count() == 0  # no AI cost for the customer
        assert visit.errors == []
    finally:
        visit.close()

    # Inside someone else's page: the fragment keeps its look, the host page keeps its own.
    with urllib.request.urlopen(f"{server}embed/customer?token={token}") as response:
        fragment = response.read().decode()
    assert "<html" not in fragment and fragment.startswith("<style>")
    host = Visit(browser, "about:blank", admin=False, size=(1100, 900))
    try:
        host.page.set_content(
            "<!doctype html><html><head><style>body{font-family:Georgia,serif;background:#fafafa;margin:0}"
            "h1{color:#b00;font-size:40px}.card{border:4px solid red}</style></head><body>"
            "<header><h1 id='host-title'>Acme account</h1><p class='card' id='host-p'>Your plan</p></header>"
            f"<main style='padding:24px'><div id='slot'>{fragment}</div></main></body></html>")
        styles = host.page.evaluate(
            "() => ({host: getComputedStyle(document.getElementById('host-title')).fontSize, "
            "hostColor: getComputedStyle(document.getElementById('host-title')).color, "
            "embed: getComputedStyle(document.querySelector('.mx h1')).fontSize, "
            "embedColor: getComputedStyle(document.querySelector('.mx h1')).color, "
            "hostBorder: getComputedStyle(document.getElementById('host-p')).borderTopWidth})")
        assert styles == {"host": "40px", "hostColor": "rgb(187, 0, 0)", "embed": "24px",
                          "embedColor": "rgb(31, 41, 51)", "hostBorder": "4px"}
        _shot(host.page, tmp_path, "dashboard-embed.png")
        assert host.errors == []
    finally:
        host.close()


def test_bad_customer_tokens_are_refused(browser: Any, server: str, now: datetime) -> None:
    good = mint_customer_token(SECRET, "cus_b", 600)
    payload = good.split(".")[1]
    forged = mint_customer_token(SECRET, "cus_a", 600).split(".")[1]
    cases = {
        "tampered": (f"embed/customer?token=v1.{forged}.{good.split('.')[2]}", 401, "signature"),
        "expired": (f"embed/customer?token={mint_customer_token(SECRET, 'cus_b', 60, now=datetime.now(timezone.utc) - timedelta(hours=2))}",
                    401, "expired"),
        "wrong secret": (f"embed/customer?token={mint_customer_token('another-secret-0123456789', 'cus_b', 600)}",
                         401, "signature"),
        "malformed": (f"embed/customer?token=v1.{payload}", 401, "malformed"),
        "missing": ("embed/customer", 401, "needs a customer token"),
        "other customer": (f"embed/customer?token={good}&customer=cus_a", 403, "another customer"),
        "admin page": (f"customer/cus_a?token={good}", 403, "opens only"),
    }
    for name, (path, status, words) in cases.items():
        visit = Visit(browser, f"{server}{path}", admin=False)
        try:
            assert visit.response.status == status, name
            text = visit.page.locator("body").inner_text()
            assert words in text, (name, text)
            assert "cus_a" not in text.replace("customer=cus_a", "") or name == "admin page", name
            assert SECRET not in visit.page.content()
        finally:
            visit.close()
    request = urllib.request.Request(f"{server}api/customer?token=v1.{forged}.{good.split('.')[2]}")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request)
    assert refused.value.code == 401
    assert json.loads(refused.value.read())["error"].startswith("The customer token's signature does not match")
