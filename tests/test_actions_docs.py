"""docs/actions.md's examples and examples/actions.py run as written."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_python_block_of_the_actions_page_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "actions.md").read_text(), re.S)
    assert len(blocks) >= 6
    exec(compile("\n".join(blocks), "docs/actions.md", "exec"), {})
    out = capsys.readouterr().out
    assert "action 50 3\n50\n" in out and "error True" in out and "250 0\nTrue" in out
    assert "[('usage', 'page', Decimal('12'), Decimal('6')), ('outcome', 'resolved_ticket', Decimal('1'), Decimal('25'))]" in out
    assert "[(False, 'environment demo'), (False, 'tag background=true')]" in out


def test_the_actions_example_runs(capsys):
    runpy.run_path(str(ROOT / "examples" / "actions.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "refused before any call: 25 credits left" in out and "used 175 of 200 credits" in out
    assert "3 calls, 50 credits" in out
