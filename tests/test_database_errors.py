"""A database path that cannot be used raises ConfigurationError naming the path and the fix; read-only mode.

The read-only cases need a process that file permissions apply to. As a normal user that is this one; as
root (containers, CI), chmod stops nothing, so those tests run their probe as root without the
capabilities that bypass permissions (``setpriv``, util-linux), and are skipped where that is impossible.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlite_utils

from metricaos_sdk import ConfigurationError, Meter
from metricaos_sdk.storage.database import Database
from metricaos_sdk.storage.migrations import migrations
from metricaos_sdk.testing import SimulatedOpenAI

GARBAGE = bytes(range(256)) * 16  # 4 KiB that is not a SQLite header


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def recorded_database(path: Path, calls: int = 2) -> Path:
    """A real metricaos database holding ``calls`` events, closed (no -wal or -shm file left)."""
    with Meter(path) as meter:
        client = meter.wrap(SimulatedOpenAI().client())
        for _ in range(calls):
            client.chat.completions.create(model="gpt-4.1-mini", messages=[{"role": "user", "content": "hi"}])
    for suffix in ("-wal", "-shm"):
        assert not Path(f"{path}{suffix}").exists()
    return path


# -- paths that cannot be a database ----------------------------------------------------------------

def test_a_parent_that_is_a_file(tmp_path):
    (tmp_path / "notes.txt").write_text("not a directory")
    for path in (tmp_path / "notes.txt" / "metricaos.db", tmp_path / "notes.txt" / "sub" / "metricaos.db"):
        for opener in (Database, Meter):
            with pytest.raises(ConfigurationError) as info:
                opener(path)
            assert str(info.value) == (f"Cannot open the database {path}: {tmp_path / 'notes.txt'} is a file, not a "
                                       "directory; choose a path in a directory (or move that file away).")
    assert (tmp_path / "notes.txt").read_text() == "not a directory"


def test_a_directory(tmp_path):
    with pytest.raises(ConfigurationError) as info:
        Meter(tmp_path)
    assert str(info.value) == (f"Cannot open the database {tmp_path}: it is a directory; pass a file path such as "
                               f"{tmp_path / 'metricaos.db'}.")


@pytest.mark.parametrize("content", [GARBAGE, b"id,customer\n1,cus_1\n"], ids=["random bytes", "a csv file"])
def test_a_file_that_is_not_a_sqlite_database(tmp_path, content):
    path = tmp_path / "metricaos.db"
    path.write_bytes(content)
    for opener in (Database, Meter, lambda p: Database(p, read_only=True)):
        with pytest.raises(ConfigurationError) as info:
            opener(path)
        assert str(info.value) == (f"{path} is not a SQLite database (or it is damaged): pass the path of a metricaos "
                                   "database, or a path that does not exist yet to create one.")
        assert isinstance(info.value.__cause__, sqlite3.DatabaseError)  # SQLite's own words stay on the chain
    assert path.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metricaos.db"]


# -- read-only mode: works with any permissions -------------------------------------------------------

def test_read_only_mode_reads_and_never_writes(tmp_path):
    path = recorded_database(tmp_path / "metricaos.db")
    before = digest(path)
    db = Database(path, read_only=True)
    assert db.connection().execute("SELECT count(*) FROM events").fetchone() == (2,)
    assert db.sqlite_utils()["events"].count == 2
    with pytest.raises(ConfigurationError, match=r"opened read-only and cannot be written: open it with Database\(path\)"):
        db.transaction()
    with pytest.raises(sqlite3.OperationalError):
        db.connection().execute("DELETE FROM events")
    db.close()
    assert digest(path) == before
    assert Database(path).connection().execute("SELECT count(*) FROM events").fetchone() == (2,)


def test_read_only_mode_never_creates_a_database(tmp_path):
    path = tmp_path / "missing" / "metricaos.db"
    with pytest.raises(ConfigurationError) as info:
        Database(path, read_only=True)
    assert str(info.value) == f"There is no database at {path}: check the path (a read-only open never creates one)."
    assert list(tmp_path.iterdir()) == []


def test_read_only_mode_refuses_an_older_schema_and_leaves_it_unmigrated(tmp_path):
    path = tmp_path / "old.db"
    old = sqlite_utils.Database(path)
    migrations.apply(old, stop_before="m004_event_credits")
    old.close()
    with pytest.raises(ConfigurationError) as info:
        Database(path, read_only=True)
    message = str(info.value)
    assert message.startswith(f"The database {path} was written by an older metricaos-sdk and needs migrating (")
    assert "m004_event_credits" in message
    assert message.endswith("which a read-only open cannot do: open it once with Database(path) or Meter(path) as a "
                            "user who may write it.")
    assert "m004_event_credits" in {m.name for m in migrations.pending(sqlite_utils.Database(path))}


def test_read_only_mode_reads_a_database_only_later_migrations_would_change(tmp_path):
    """m005 drops tables nothing reads: a database of the previous release opens read-only as it is."""
    path = tmp_path / "previous.db"
    previous = sqlite_utils.Database(path)
    migrations.apply(previous, stop_before="m005_drop_m002_quota_tables")
    previous.close()
    database = Database(path, read_only=True)
    assert database.connection().execute("SELECT count(*) FROM events").fetchone() == (0,)
    assert "m005_drop_m002_quota_tables" in {m.name for m in migrations.pending(sqlite_utils.Database(path))}


def test_read_only_mode_refuses_a_newer_schema(tmp_path):
    path = recorded_database(tmp_path / "metricaos.db", calls=0)
    Database(path).sqlite_utils()["_sqlite_migrations"].insert(
        {"migration_set": "metricaos", "name": "m999_from_the_future", "applied_at": "2099-01-01"})
    with pytest.raises(ConfigurationError) as info:
        Database(path, read_only=True)
    assert str(info.value) == (f"The database {path} was written by a newer metricaos-sdk (migration "
                               "m999_from_the_future is unknown to this version): upgrade metricaos-sdk to read it.")


def test_read_only_mode_refuses_a_sqlite_database_that_is_not_ours(tmp_path):
    path = tmp_path / "other.db"
    sqlite_utils.Database(path)["things"].insert({"id": 1})
    with pytest.raises(ConfigurationError) as info:
        Database(path, read_only=True)
    assert str(info.value) == (f"{path} is a SQLite database but not a metricaos one (it has no metricaos tables): "
                               "pass the path of a database written by Meter(path).")


# -- permissions: probed in a process that chmod applies to --------------------------------------------

PROBE = """
import json, sys
from metricaos_sdk import ConfigurationError, Meter
from metricaos_sdk.storage.database import Database
path, how = sys.argv[1], sys.argv[2]
try:
    if how == "meter":
        Meter(path).close()
        print(json.dumps({"opened": True}))
    else:
        db = Database(path, read_only=how == "read_only")
        rows = db.connection().execute("SELECT count(*) FROM events").fetchone()[0]
        print(json.dumps({"opened": True, "rows": rows}))
except ConfigurationError as exc:
    print(json.dumps({"opened": False, "error": str(exc)}))
"""


def _unprivileged(*args: str) -> list[str]:
    """A command line that runs as a process file permissions apply to, or skips the test."""
    if not hasattr(os, "geteuid"):
        pytest.skip("POSIX permissions only")
    if os.geteuid() != 0:
        return list(args)
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root, where chmod does not stop writes, and setpriv (util-linux) is not "
                    "installed to drop the capabilities that let root ignore it")
    return [setpriv, "--inh-caps=-all", "--bounding-set=-all", *args]


@pytest.fixture
def restore_modes(tmp_path) -> Iterator[list[Path]]:
    """Paths to make writable again after the test (so tmp_path can be deleted as a normal user)."""
    paths: list[Path] = []
    yield paths
    for path in paths:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)


def probe(path: Path, how: str) -> dict[str, object]:
    """Open ``path`` (``write``, ``read_only`` or ``meter``) in a process permissions apply to."""
    done = subprocess.run(_unprivileged(sys.executable, "-c", PROBE, str(path), how), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr  # a traceback would fail here: every outcome is one JSON line
    result: dict[str, object] = json.loads(done.stdout)
    return result


@pytest.fixture
def chmod_applies(tmp_path, restore_modes) -> None:
    """Skip unless a 0o444 file really refuses writes to the probing process."""
    canary = tmp_path / "chmod-canary"
    canary.write_text("x")
    canary.chmod(0o444)
    restore_modes.append(canary)
    code = f"open({str(canary)!r}, 'a')"
    done = subprocess.run(_unprivileged(sys.executable, "-c", code), capture_output=True, text=True, timeout=60)
    if done.returncode == 0:
        pytest.skip("chmod does not stop writes here (root whose capabilities cannot be dropped)")


def test_a_read_only_file(tmp_path, chmod_applies, restore_modes):
    path = recorded_database(tmp_path / "metricaos.db")
    before = digest(path)
    path.chmod(0o444)
    restore_modes.append(path)
    expected = (f"Cannot write to the database {path}: the file is read-only for this user; make it writable, or open "
                "it with Database(path, read_only=True) to read reports.")
    assert probe(path, "write") == {"opened": False, "error": expected}
    assert probe(path, "meter") == {"opened": False, "error": expected}
    assert probe(path, "read_only") == {"opened": True, "rows": 2}
    assert digest(path) == before


def test_a_wal_file_left_read_only_by_a_reader(tmp_path, chmod_applies, restore_modes):
    # A reader of a WAL database creates its -wal and -shm files with the database file's mode; once the
    # file is made writable again, SQLite would open it read-only without a word because of them.
    path = recorded_database(tmp_path / "metricaos.db")
    path.chmod(0o444)
    restore_modes.append(path)
    assert probe(path, "read_only") == {"opened": True, "rows": 2}
    path.chmod(0o644)
    left = [p for p in (Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists() and not p.stat().st_mode & stat.S_IWUSR]
    assert left, "SQLite no longer leaves the reader's -wal/-shm files behind read-only"
    restore_modes.extend(left)
    assert probe(path, "write") == {"opened": False, "error": (
        f"Cannot write to the database {path}: {left[0]} is read-only for this user; make it writable, or open it "
        "with Database(path, read_only=True) to read reports.")}


def test_a_read_only_directory(tmp_path, chmod_applies, restore_modes):
    directory = tmp_path / "reports"
    path = recorded_database(directory / "metricaos.db")
    before = digest(path)
    directory.chmod(0o555)
    restore_modes.append(directory)
    expected = (f"Cannot write to the database {path}: its directory {directory} is read-only for this user (SQLite "
                "creates files beside the database); make it writable, or open it with Database(path, read_only=True) "
                "to read reports.")
    assert probe(path, "write") == {"opened": False, "error": expected}
    assert probe(path, "meter") == {"opened": False, "error": expected}
    assert probe(path, "read_only") == {"opened": True, "rows": 2}  # an immutable snapshot: nothing can write it here
    assert digest(path) == before
    assert not Path(f"{path}-wal").exists() and not Path(f"{path}-shm").exists()


def test_a_new_database_in_a_read_only_directory(tmp_path, chmod_applies, restore_modes):
    directory = tmp_path / "locked"
    directory.mkdir()
    directory.chmod(0o555)
    restore_modes.append(directory)
    path = directory / "metricaos.db"
    assert probe(path, "write") == {"opened": False, "error": (
        f"Cannot write to the database {path}: its directory {directory} is read-only for this user (SQLite creates "
        "files beside the database); make it writable, or open it with Database(path, read_only=True) to read reports.")}
    nested = directory / "sub" / "metricaos.db"
    assert probe(nested, "meter") == {"opened": False, "error": (
        f"Cannot create the directory {directory / 'sub'} for the database {nested} (Permission denied): create it, "
        "or choose a path in a directory this user may write.")}
    assert list(directory.iterdir()) == []
