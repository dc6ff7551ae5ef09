"""A real PostgreSQL for the PostgreSQL destination's tests, a schema of its own per test, and a TCP proxy that
can take the server away (connections cut, then refused) and bring it back."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "postgres-server.sh"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def answers(url: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def _installed() -> bool:
    return bool(shutil.which("initdb") or list(Path("/usr/lib/postgresql").glob("*/bin/initdb")))


def server_url() -> Iterator[str]:
    """For a session fixture: ``METRICAOS_TEST_POSTGRES_URL`` (set by ``scripts/postgres-server.sh``), else a cluster started here with
    that script when PostgreSQL is installed (never installing it), stopped at the end of the session."""
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install -e '.[test]')")
    url = os.environ.get("METRICAOS_TEST_POSTGRES_URL")
    if url:
        if not answers(url):
            pytest.fail(f"METRICAOS_TEST_POSTGRES_URL={url} is set but no PostgreSQL answers there")
        yield url
        return
    if not _installed():
        pytest.skip("no PostgreSQL: METRICAOS_TEST_POSTGRES_URL is unset and PostgreSQL is not installed "
                    "(run `eval \"$(bash scripts/postgres-server.sh)\"`)")
    workdir = tempfile.mkdtemp(prefix="metricaos-test-postgres-")
    env = {**os.environ, "METRICAOS_POSTGRES_PORT": str(_free_port()), "METRICAOS_POSTGRES_DIR": workdir,
           "METRICAOS_POSTGRES_INSTALL": "0"}
    done = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        shutil.rmtree(workdir, ignore_errors=True)
        pytest.skip(f"no PostgreSQL: METRICAOS_TEST_POSTGRES_URL is unset and scripts/postgres-server.sh could not "
                    f"start one: {done.stderr.strip().splitlines()[-1:]}")
    url = done.stdout.strip().rpartition("=")[2]
    try:
        yield url
    finally:
        pid_file = Path(workdir) / "data" / "postmaster.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text().split()[0])
            os.kill(pid, signal.SIGINT)  # a fast shutdown
            for _ in range(200):
                if not pid_file.exists():
                    break
                time.sleep(0.05)
        shutil.rmtree(workdir, ignore_errors=True)


def own_schema(postgres_url: str) -> Iterator[str]:
    """For a fixture: a schema name for one test alone (created by the destination's migrations), dropped afterwards."""
    import psycopg

    name = f"test_{uuid.uuid4().hex[:10]}"
    yield name
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def with_params(url: str, **params: str) -> str:
    """``url`` with query parameters added (application_name=…, options=…)."""
    from urllib.parse import quote, urlencode

    return url + ("&" if "?" in url else "?") + urlencode(params, quote_via=quote)  # libpq reads %20, not +


class Proxy:
    """A TCP forwarder from 127.0.0.1:``port`` to the server: ``down()`` cuts every connection and refuses new
    ones (the server is gone, as far as a client can tell); ``up()`` listens again on the same port."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = _free_port()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self.accepted = 0
        self.up()

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._sockets = self._sockets, []
        if listener is not None:
            listener.close()
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by down()
            try:
                server = socket.create_connection(("127.0.0.1", self.upstream_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    server.close()
                    return
                self._sockets += [client, server]
                self.accepted += 1
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
