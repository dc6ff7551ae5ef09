"""``metricaos prices``: explain a model; list the unpriced models of a store."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from click.testing import CliRunner

from metricaos_sdk.cli.prices import prices

DATA = Path(__file__).parent / "data" / "pricing"


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(prices, list(args))
    return result.exit_code, result.output


def test_explains_a_model() -> None:
    code, out = run("claude-sonnet-4-5-20250929", "--provider", "anthropic")
    assert code == 0
    assert "-> anthropic:claude-sonnet-4-5" in out and "starts_with 'claude-sonnet-4-5'" in out
    assert "input 3 (>200,000 tok: 6)" in out and "batch:" in out


def test_json() -> None:
    code, out = run("us.anthropic.claude-haiku-4-5-20251001-v1:0", "-p", "bedrock", "--json")
    info = json.loads(out)
    assert code == 0 and info["model_resolved"] == "regional.anthropic.claude-haiku-4-5-20251001-v1:0"
    assert info["current"]["prices"]["input_mtok"] == "1.1"  # Decimal as a string, never a float


def test_unknown_model_exits_1() -> None:
    code, out = run("gpt-from-the-future", "-p", "openai")
    assert code == 1 and "no price" in out


def test_with_a_rate_file() -> None:
    code, out = run("llama-3.3-70b-selfhosted", "--rates", str(DATA / "rates.toml"), "--json")
    info = json.loads(out)
    assert code == 0 and info["price_status"] == "override"
    assert info["rates"]["standard"][-1]["prices"]["requests_kcount"] == "0.2000"


def test_bad_rate_file_is_one_sentence(tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    path.write_text('[models."x"]\nimput = "1"\n', encoding="utf-8")
    code, out = run("x", "--rates", str(path))
    assert code == 1 and f"Error: {path}: model 'x' field 'imput' is not a known field" in out


def _store(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE events (provider TEXT, model TEXT, price_status TEXT, timestamp TEXT)")
    conn.executemany(
        "INSERT INTO events VALUES (?, ?, ?, ?)",
        [
            ("openai", "gpt-4o", "priced", "2026-11-01T00:00:00Z"),
            ("openai", "my-ft", "unpriced", "2026-11-01T00:00:00Z"),
            ("openai", "my-ft", "unpriced", "2026-11-02T00:00:00Z"),
            ("anthropic", "claude-sonnet-4-5", "unpriced", "2026-11-03T00:00:00Z"),  # priced since
        ],
    )
    conn.commit()
    conn.close()


def test_unpriced(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    _store(db)
    code, out = run("--unpriced", "--db", str(db), "--json")
    assert code == 0
    rows = json.loads(out)["unpriced"]
    assert rows == [
        {"provider": "openai", "model": "my-ft", "calls": 2, "last_seen": "2026-11-02T00:00:00Z", "priced_now": False},
        {
            "provider": "anthropic",
            "model": "claude-sonnet-4-5",
            "calls": 1,
            "last_seen": "2026-11-03T00:00:00Z",
            "priced_now": True,
        },
    ]
    code, out = run("--unpriced", "--db", str(db))
    assert code == 0 and "my-ft" in out


def test_unpriced_missing_db(tmp_path: Path) -> None:
    code, out = run("--unpriced", "--db", str(tmp_path / "nope.db"))
    assert (
        code == 1
        and out.strip() == f"Error: No metrics database at {tmp_path / 'nope.db'}: pass --db PATH or set METRICAOS_DB."
    )


def test_unpriced_wrong_db(tmp_path: Path) -> None:
    db = tmp_path / "other.db"
    sqlite3.connect(db).close()
    code, out = run("--unpriced", "--db", str(db))
    assert code == 1 and "no events table" in out


def test_usage_errors() -> None:
    assert run()[0] == 2
    assert run("gpt-4o", "--unpriced")[0] == 2
