"""The three quota stores agree: the same reserve/settle/release arithmetic, expiry, marks and settings."""

from __future__ import annotations

import sqlite3
import time
import uuid
from decimal import Decimal

import pytest
import sqlite_utils

from metricaos_sdk import InMemoryQuotaStore, Meter, SQLiteQuotaStore
from metricaos_sdk.quota.reservations import Bucket, Demand, plan_reservation
from metricaos_sdk.storage.migrations import migrations
from tests.quota_support import STORES, redis_url  # noqa: F401  (fixture)

FAR = time.time() + 86_400


@pytest.fixture(params=STORES)
def store(request, tmp_path):
    if request.param == "memory":
        yield InMemoryQuotaStore()
    elif request.param == "sqlite":
        s = SQLiteQuotaStore(tmp_path / "q.db")
        yield s
        s.close()
    else:
        from metricaos_sdk import RedisQuotaStore

        s = RedisQuotaStore.from_url(request.getfixturevalue("redis_url"), prefix=f"t-{uuid.uuid4().hex[:8]}:")
        yield s
        s.close()


def test_reserve_is_all_or_nothing(store):
    small, big = Bucket("small", 5, FAR), Bucket("big", 100, FAR)
    ok = store.reserve("c", "r1", [Demand(4, (small,)), Demand(40, (big,))], lease=60)
    assert ok.ok and [b.free for b in ok.balances] == [5, 100]
    refused = store.reserve("c", "r2", [Demand(40, (big,)), Demand(4, (small,))], lease=60)
    assert not refused.ok and refused.failed == 1
    assert store.balances("c", [small, big]) == {"small": (0, 4), "big": (0, 40)}  # r2 held nothing
    assert store.open_reservations("c") == 1 and store.open_reservations("other") == 0


def test_settle_replaces_the_estimate_with_the_actual(store):
    b = Bucket("b", 100, FAR)
    assert store.reserve("c", "r1", [Demand(30, (b,))], lease=60).ok
    settled = store.settle("c", "r1", [Demand(12, (b,))])
    assert settled.balances[0].used == 12 and settled.balances[0].reserved == 0 and settled.overflow == (0,)
    assert store.balances("c", [b]) == {"b": (12, 0)}
    # Settling twice (a retried settle) must not hold anything again; a settle without a reservation counts.
    store.settle("c", "r1", [Demand(0, (b,))])
    assert store.open_reservations("c") == 0


def test_release_gives_everything_back(store):
    b = Bucket("b", 10, FAR)
    assert store.reserve("c", "r1", [Demand(10, (b,))], lease=60).ok
    assert not store.reserve("c", "r2", [Demand(1, (b,))], lease=60).ok
    store.release("c", "r1")
    store.release("c", "r1")  # idempotent
    assert store.reserve("c", "r3", [Demand(10, (b,))], lease=60).ok


def test_drawdown_order_and_overflow(store):
    grant, period = Bucket("grant", 50, FAR - 10), Bucket("period", 100, FAR)
    demand = (grant, period)
    assert store.reserve("c", "r1", [Demand(60, demand, overflow=1)], lease=60).ok
    assert store.balances("c", [grant, period]) == {"grant": (0, 50), "period": (0, 10)}
    settled = store.settle("c", "r1", [Demand(170, demand, overflow=1)])  # 20 more than both allow
    assert settled.overflow == (20,) and settled.balances[0].used == 170
    assert store.balances("c", [grant, period]) == {"grant": (50, 0), "period": (120, 0)}
    # A soft (not enforced) demand is held even beyond the limit.
    assert store.reserve("c", "r2", [Demand(5, demand, enforce=False, overflow=1)], lease=60).ok


def test_expired_reservations_hold_nothing(store):
    b = Bucket("b", 10, FAR)
    assert store.reserve("c", "stale", [Demand(10, (b,))], lease=0).ok
    assert store.open_reservations("c") == 0
    assert store.reserve("c", "fresh", [Demand(10, (b,))], lease=60).ok


def test_large_amounts_stay_exact(store):
    b = Bucket("usd", 10**16, FAR)  # $10M in nano-dollars
    store.settle("c", "r", [Demand(1_234_567_890_123_457, (b,))])
    assert store.balances("c", [b])["usd"] == (1_234_567_890_123_457, 0)


def test_marks_fire_once(store):
    assert store.mark_once("c", "alert:80", FAR) is True
    assert store.mark_once("c", "alert:80", FAR) is False
    assert store.mark_once("d", "alert:80", FAR) is True


def test_settings_and_version(store):
    v0 = store.config_version()
    store.put_config("plan", "starter", '{"a": 1}')
    assert store.config_version() != v0
    assert store.get_config("plan", "starter") == '{"a": 1}' and store.list_config("plan") == {"starter": '{"a": 1}'}
    store.put_config("plan", "starter", None)
    assert store.get_config("plan", "missing") is None and store.list_config("plan") == {}


def test_pure_arithmetic_never_holds_on_refusal():
    b = Bucket("b", 10, FAR)
    outcome, hold = plan_reservation([Demand(11, (b,))], {}, {})
    assert not outcome.ok and hold == {}


def test_upgrade_carries_set_quota_limits_over(db_path):
    db = sqlite_utils.Database(db_path)
    migrations.apply(db, stop_before="m003_quota_reservations")
    db.execute("INSERT INTO quotas VALUES ('cus_old', 'tokens', 'month', '5000')")
    db.execute("INSERT INTO quotas VALUES ('cus_old', 'cost_usd', 'day', '1.50')")
    today = time.strftime("%Y-%m-%d", time.gmtime())
    db.execute("INSERT INTO usage_daily VALUES ('cus_old', ?, 1200, 3, '0.25')", [today])
    db.conn.commit()
    db.conn.close()
    meter = Meter(db_path)
    assert [(q.unit, q.limit, q.period) for q in meter.customers.limits_of("cus_old")] == [
        ("cost_usd", 1.5, "day"), ("tokens", 5000, "month")]
    limits = meter.usage("cus_old").limits
    assert [(lim.unit, lim.used) for lim in limits] == [("tokens", 1200), ("cost_usd", Decimal("0.25"))]
    columns = {r[1] for r in sqlite3.connect(db_path).execute("PRAGMA table_info(events)")}
    assert {"credits", "credit_rule", "overage", "overage_cost_usd"} <= columns
    meter.close()
