"""Print pip constraints that pin every direct dependency to the lowest version pyproject.toml allows.

    python3 scripts/oldest_constraints.py > oldest.txt
    pip install -e ".[test]" -c oldest.txt

Runtime dependencies and every extra (``test`` included; not ``bench``, the peers ``python -m benchmarks``
measures beside us, which are no part of what we support) are pinned to their ``>=`` bound, markers kept, so
CI can run the suite on the oldest releases a user may have (.ci/run). A lower bound that cannot be
installed, or does not work, is raised in pyproject.toml rather than worked around here.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
NOT_PINNED = {"bench"}
REQUIREMENT = re.compile(r"^\s*(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(?P<specs>[^;]*)(?:;(?P<marker>.*))?$")


def lowest(requirement: str) -> tuple[str, str, str] | None:
    """``(name, lowest version, marker)`` of a PEP 508 requirement, or ``None`` when it has no lower bound."""
    match = REQUIREMENT.match(requirement)
    if match is None:
        raise SystemExit(f"cannot read requirement {requirement!r}")
    for spec in match["specs"].split(","):
        spec = spec.strip()
        for operator in (">=", "==", "~="):
            if spec.startswith(operator):
                name = re.sub(r"[-_.]+", "-", match["name"]).lower()
                return name, spec[len(operator):].strip(), (match["marker"] or "").strip()
    return None


def constraints(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    requirements = list(project.get("dependencies", []))
    for name, extra in project.get("optional-dependencies", {}).items():
        if name not in NOT_PINNED:
            requirements.extend(extra)
    pins: dict[tuple[str, str], str] = {}
    for requirement in requirements:
        found = lowest(requirement)
        if found is None:
            continue
        name, version, marker = found
        if pins.setdefault((name, marker), version) != version:
            raise SystemExit(f"{name} has two lower bounds in pyproject.toml: {pins[(name, marker)]} and {version}")
    return [f"{name}=={version}" + (f"; {marker}" if marker else "") for (name, marker), version in pins.items()]


if __name__ == "__main__":
    print("# The lowest version pyproject.toml allows of each direct dependency (scripts/oldest_constraints.py).")
    print("\n".join(constraints()))
