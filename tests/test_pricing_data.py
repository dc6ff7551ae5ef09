"""The bundled rate file: pinned, generated, reproducible, and loaded without genai-prices."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA_FILE = ROOT / "metricaos_sdk" / "pricing" / "_generated_rates.json"
# Update in the same commit as a regenerated file (python scripts/build_rates.py), after reading the diff.
EXPECTED_SHA256 = "ed82480b62df23408bdb2c3550a29229244f12991bb2e6e97741fdda2cd28a74"


def _build_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_rates", ROOT / "scripts" / "build_rates.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_checksum_is_pinned() -> None:
    assert hashlib.sha256(DATA_FILE.read_bytes()).hexdigest() == EXPECTED_SHA256


def test_marked_generated() -> None:
    data = json.loads(DATA_FILE.read_text(encoding="utf-8"))
    assert "generated — do not edit" in data["_comment"]
    assert "scripts/build_rates.py" in data["_comment"]


def test_rebuild_from_installed_genai_prices_is_identical() -> None:
    import genai_prices

    data = json.loads(DATA_FILE.read_text(encoding="utf-8"))
    if data["source"] != f"genai-prices {genai_prices.__version__}":
        pytest.fail(
            f"the bundled file was built from {data['source']}, genai-prices {genai_prices.__version__} is "
            "installed: run python scripts/build_rates.py and update EXPECTED_SHA256"
        )
    assert _build_script().render() == DATA_FILE.read_text(encoding="utf-8")


def test_covers_the_providers_and_current_models() -> None:
    data = json.loads(DATA_FILE.read_text(encoding="utf-8"))
    assert list(data["providers"]) == ["openai", "azure_openai", "anthropic", "bedrock", "vertex", "deepseek", "groq",
                                       "mistral_ai", "x_ai", "gcp.gemini", "openrouter", "together", "fireworks"]
    ids = {(p, m["id"]) for p, models in data["sources"].items() for m in models if "rates" in m}
    for expected in [
        ("openai", "gpt-4.1-mini"),
        ("openai", "gpt-4o"),
        ("openai", "o3"),
        ("openai", "gpt-5"),
        ("openai", "text-embedding-3-small"),
        ("anthropic", "claude-sonnet-4-5"),
        ("anthropic", "claude-opus-4-1"),
        ("anthropic", "claude-haiku-4-5"),
        ("bedrock", "regional.anthropic.claude-sonnet-4-5-20250929-v1:0"),
        ("vertex", "claude-sonnet-4-5"),
        ("azure_openai", "o3-2025-04-16"),
        ("openrouter", "openai/gpt-4o"),
        ("x-ai", "grok-3-mini"),
        ("groq", "llama-3.3-70b-versatile"),
        ("mistral", "mistral-small-latest"),
        ("together", "meta-llama/Llama-3.3-70B-Instruct-Turbo"),
        ("fireworks", "llama-v3p1-8b-instruct"),
        ("vertex", "gemini-2.5-flash"),
    ]:
        assert expected in ids
    for models in data["sources"].values():
        for model in models:
            for rows in model.get("rates", {}).values():
                starts = [start for start, *_ in rows]
                assert starts[0] is None if rows is model["rates"]["standard"] else True
                assert starts[1:] == sorted(starts[1:])


def test_runtime_does_not_import_genai_prices() -> None:
    code = (
        "import sys\n"
        "from metricaos_sdk.pricing import RateTable\n"
        "from metricaos_sdk.usage import Usage\n"
        "assert RateTable.bundled().price('openai', 'gpt-4o', Usage(input_tokens=1)).cost_usd\n"
        "assert 'genai_prices' not in sys.modules, 'genai_prices was imported'\n"
    )
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], check=False, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    for source in (ROOT / "metricaos_sdk" / "pricing").glob("*.py"):
        assert "genai_prices" not in source.read_text(encoding="utf-8"), source
