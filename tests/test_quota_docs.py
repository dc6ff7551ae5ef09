"""docs/quotas.md's examples and examples/quotas.py run as written."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_python_block_of_the_quotas_page_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "quotas.md").read_text(), re.S)
    assert len(blocks) >= 8
    namespace: dict = {}
    exec(compile("\n".join(blocks), "docs/quotas.md", "exec"), namespace)
    out = capsys.readouterr().out
    assert "Customer cus_hard has used 2,000 of 2,000 credits this month on the starter plan" in out
    assert "[(None, None), (None, None), (Decimal('50'), Decimal('0.100'))]" in out
    assert "2024-02-29 15:00:00+00:00 2024-03-31 15:00:00+00:00" in out


def test_the_quotas_example_runs(capsys):
    runpy.run_path(str(ROOT / "examples" / "quotas.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "20 admitted, 108 refused" in out
    assert "for summarize_document" in out and "on starter" in out
