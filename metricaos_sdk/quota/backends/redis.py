"""RedisQuotaStore: quotas shared by every host that reaches one Redis, each step one Lua script.

Reserve, settle and release run as scripts (see ``redis_lua.py``), so they are atomic without locks or
retries; all of a customer's keys share a hash slot (``{customer}``), so the store works on Redis Cluster
too. Lease ends use the Redis server's clock (``TIME``), never the hosts' clocks. Settings are hashes per
kind with a version counter.

Needs the ``redis`` package (``pip install 'metricaos-sdk[redis]'``). The meter's store has short connection
and socket timeouts (``MeterConfig.quota_timeout``): a Redis outage costs a call that long at most before the
meter fails open (or closed, as configured), and calls skip it for a back-off after that; :meth:`patient` gives
the same store with a one-second timeout for work off the call path.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from ..reservations import Balance, Bucket, Demand, Reserved, Settled
from .redis_lua import BALANCES, RELEASE, RESERVE, SETTLE, SETTLE_ONCE

__all__ = ["RedisQuotaStore"]


class RedisQuotaStore:
    """Quota counters, reservations and settings in Redis. ``prefix`` namespaces every key."""

    answers_can_be_lost = True
    """A script can run while its reply is lost (a timeout): the engine settles at most once per call id."""

    def __init__(self, client: Any, *, prefix: str = "metricaos:") -> None:
        self.client = client
        self.prefix = prefix
        self._patient: RedisQuotaStore | None = None
        self._reserve = client.register_script(RESERVE)
        self._settle = client.register_script(SETTLE)
        self._settle_once = client.register_script(SETTLE_ONCE)
        self._release = client.register_script(RELEASE)
        self._balances = client.register_script(BALANCES)

    @classmethod
    def from_url(cls, url: str, *, prefix: str = "metricaos:", timeout: float = 1.0, **kwargs: Any) -> RedisQuotaStore:
        """Connect to ``redis://host:port/db`` (``rediss://`` for TLS)."""
        import redis

        client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                      decode_responses=True, **kwargs)
        return cls(client, prefix=prefix)

    def patient(self, timeout: float = 1.0) -> RedisQuotaStore:
        """The same store over its own connections, with ``timeout`` seconds to connect and answer."""
        if self._patient is None:
            import redis

            pool = self.client.connection_pool
            kwargs = {**pool.connection_kwargs, "socket_timeout": timeout, "socket_connect_timeout": timeout}
            client = redis.Redis(connection_pool=redis.ConnectionPool(connection_class=pool.connection_class, **kwargs))
            self._patient = RedisQuotaStore(client, prefix=self.prefix)
        return self._patient

    def _keys(self, customer_id: str) -> list[str]:
        base = f"{self.prefix}{{{customer_id}}}"
        return [f"{base}:r", f"{base}:a", f"{base}:x"]

    def _encode(self, customer_id: str, demands: Sequence[Demand]) -> tuple[list[str], list[Any]]:
        keys = self._keys(customer_id)
        index: dict[str, int] = {}
        args: list[Any] = [len(demands)]
        for d in demands:
            args += [d.amount, int(d.enforce), d.overflow, len(d.buckets)]
            for b in d.buckets:
                if b.key not in index:
                    keys.append(f"{keys[0][:-2]}:u:{b.key}")
                    index[b.key] = len(keys)  # Lua's KEYS are 1-based
                args += [index[b.key], b.key, b.limit, int(b.expires_at * 1000)]
        return keys, args

    def reserve(self, customer_id: str, reservation_id: str, demands: Sequence[Demand], lease: float) -> Reserved:
        keys, args = self._encode(customer_id, demands)
        out = [int(v) for v in self._reserve(keys=keys, args=[reservation_id, int(lease * 1000), *args])]
        balances = tuple(Balance(*out[i:i + 3]) for i in range(2, len(out), 3))
        return Reserved(bool(out[0]), balances, None if out[0] else out[1])

    def settle(self, customer_id: str, reservation_id: str, demands: Sequence[Demand]) -> Settled:
        keys, args = self._encode(customer_id, demands)
        out = [int(v) for v in self._settle(keys=keys, args=[reservation_id, 0, *args])]
        rows = [out[i:i + 4] for i in range(0, len(out), 4)]
        return Settled(tuple(Balance(*r[:3]) for r in rows), tuple(r[3] for r in rows))

    def settle_once(self, customer_id: str, settlement_id: str, demands: Sequence[Demand],
                    expires_at: float) -> Settled | None:
        """``settle``, at most once per ``settlement_id`` until ``expires_at`` (None: settled before), in one script."""
        keys, args = self._encode(customer_id, demands)
        keys.append(f"{keys[0][:-2]}:m:settled:{settlement_id}")
        expiry = max(int(expires_at * 1000), int(time.time() * 1000) + 1)
        out = [int(v) for v in self._settle_once(keys=keys, args=[settlement_id, expiry, *args])]
        if not out:
            return None
        rows = [out[i:i + 4] for i in range(0, len(out), 4)]
        return Settled(tuple(Balance(*r[:3]) for r in rows), tuple(r[3] for r in rows))

    def release(self, customer_id: str, reservation_id: str) -> None:
        self._release(keys=self._keys(customer_id), args=[reservation_id, 0, 0])

    def balances(self, customer_id: str, buckets: Sequence[Bucket]) -> dict[str, tuple[int, int]]:
        keys = self._keys(customer_id)
        out = [int(v) for v in self._balances(keys=keys + [f"{keys[0][:-2]}:u:{b.key}" for b in buckets],
                                              args=[b.key for b in buckets])]
        return {b.key: (out[2 * i], out[2 * i + 1]) for i, b in enumerate(buckets)}

    def open_reservations(self, customer_id: str | None = None) -> int:
        now_ms = int(time.time() * 1000)
        if customer_id is not None:
            return int(self.client.zcount(self._keys(customer_id)[2], f"({now_ms}", "+inf"))
        return sum(int(self.client.zcount(k, f"({now_ms}", "+inf"))
                   for k in self.client.scan_iter(match=f"{self.prefix}{{*}}:x", count=500))

    def mark_once(self, customer_id: str, mark: str, expires_at: float) -> bool:
        key = f"{self.prefix}{{{customer_id}}}:m:{mark}"
        return bool(self.client.set(key, 1, nx=True, pxat=max(int(expires_at * 1000), int(time.time() * 1000) + 1)))

    def config_version(self) -> int:
        return int(self.client.get(f"{self.prefix}config:version") or 0)

    def get_config(self, kind: str, name: str) -> str | None:
        return self.client.hget(f"{self.prefix}config:{kind}", name)  # type: ignore[no-any-return]

    def list_config(self, kind: str) -> dict[str, str]:
        return dict(self.client.hgetall(f"{self.prefix}config:{kind}"))

    def put_config(self, kind: str, name: str, value: str | None) -> None:
        pipe = self.client.pipeline(transaction=True)
        if value is None:
            pipe.hdel(f"{self.prefix}config:{kind}", name)
        else:
            pipe.hset(f"{self.prefix}config:{kind}", name, value)
        pipe.incr(f"{self.prefix}config:version")
        pipe.execute()

    def close(self) -> None:
        self.client.close()
        if self._patient is not None:
            self._patient.close()
