"""The README's quick start runs as written (against a mocked API), and examples/quickstart.py is it."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

from tests.fake_openai import FakeOpenAI

ROOT = Path(__file__).resolve().parents[1]


def quickstart_block() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_example_file_is_the_readme_quick_start():
    example = (ROOT / "examples" / "quickstart.py").read_text()
    body = example.split('"""', 2)[2].lstrip("\n")
    assert body == quickstart_block()


def test_readme_commands_are_the_ones_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    commands = re.findall(r"```bash\n(.*?)\n```", readme, re.S)[:2]
    assert "metricaos demo" in commands[0] and "pytest" in commands[1]
    for command in commands:
        assert command in ci


def test_quick_start_runs_as_written(router, tmp_path, monkeypatch, capsys):
    FakeOpenAI().mount(router)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-quickstart")
    script = tmp_path / "quickstart.py"
    script.write_text(quickstart_block())
    namespace = runpy.run_path(str(script), run_name="__main__")
    out = capsys.readouterr().out
    assert "cus_123" in out and "used 1,500 of 50,000" in out
    assert "gpt-4.1-mini-2025-04-14 1200 300 0.0006528" in out
    namespace["meter"].close()
    assert (tmp_path / "metricaos.db").exists()


def test_quick_start_refuses_when_the_quota_is_spent(router, tmp_path, monkeypatch, capsys):
    route = FakeOpenAI().mount(router)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-quickstart")
    script = tmp_path / "quickstart.py"
    script.write_text(quickstart_block().replace("tokens=50_000", "tokens=0"))
    namespace = runpy.run_path(str(script), run_name="__main__")
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("cus_123 0 0 ")  # customer_id, limit, used, resets_at
    assert route.call_count == 0
    namespace["meter"].close()
