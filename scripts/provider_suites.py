#!/usr/bin/env python
"""Run the openai and anthropic SDKs' own test suites bare, then with every client metered, and compare.

    python scripts/provider_suites.py [--sdk openai|anthropic|all] [--workdir DIR] [-k EXPR] [--keep]

For each SDK, in the current interpreter:

1. the installed version is read (``importlib.metadata``) and that exact sdist is fetched from PyPI
   (``pip download --no-deps --no-binary :all:``) and extracted into the work dir;
2. the test dependencies its suite needs and this environment lacks are installed: the sdist's ``dev``
   dependency group and its extras (type checkers and stubs left out), at its lock file's versions
   (``requirements-dev.lock`` or ``uv.lock``) where they install here. A constraints file keeps every
   installed package at its version or above, and openai, anthropic, httpx2 and pydantic exactly at theirs;
3. the suite runs with pytest and the sdist's own configuration (``-p no:cacheprovider``, 2 xdist workers),
   once bare and once "wrapped": with a small plugin, written to the work dir and loaded with ``-p``, that
   patches the client classes' ``__init__`` so that every client constructed is passed through ``wrap`` of
   one process-wide ``metricaos_sdk.Meter(sink=MemorySink())`` (a client it refuses with TypeError is left
   as it was);
4. the tests whose outcome differs are run again on their own, both ways, to tell a difference that
   reproduces from one that depends on the run (flaky, or on test order);
5. the tests that pass bare and fail wrapped (and the reverse) are printed with the first line of their
   failure; every run's JUnit XML and log, and ``summary.json``, are kept in ``<workdir>/results``.

The generated API-resource tests (``tests/api_resources``) talk to the SDK's mock server at
``TEST_API_BASE_URL`` (default http://127.0.0.1:4010), which is built from an OpenAPI spec the sdists do
not ship. When nothing listens there they are left out (and listed as such in the summary);
``--api-resources`` runs them anyway (they then fail both ways, each after the SDK's retries, ~1 s apiece).

Run it in a venv of its own (``python -m venv .venv-suites && .venv-suites/bin/pip install -e ".[test]"``): the
SDKs' test dependencies it installs (pytest-asyncio among them) change how this project's own suite runs.

It takes about 40 minutes on 2 cores (openai ~12 minutes a run, anthropic ~6, plus installs and reruns).
It is a report, not a gate: it exits 0 whenever it completed, whatever the differences, and it is not run
in CI. It uses only the public ``metricaos_sdk.Meter`` and ``MemorySink``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the script runs on the repo's interpreters, 3.10 among them
    import tomli as tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

SDKS = ("openai", "anthropic")

CLIENT_CLASSES = {
    "openai": ("OpenAI", "AsyncOpenAI", "AzureOpenAI", "AsyncAzureOpenAI"),
    "anthropic": ("Anthropic", "AsyncAnthropic", "AnthropicBedrock", "AsyncAnthropicBedrock",
                  "AnthropicVertex", "AsyncAnthropicVertex"),
}

# Held exactly at their installed versions while test dependencies are installed (others: never downgraded).
PROTECTED = ("openai", "anthropic", "httpx2", "httpcore2", "pydantic", "pydantic-core")

# Development tools that no test imports or runs: type checkers (pyright and ty download or compile
# toolchains of their own) and typing stubs.
NOT_TEST_DEPENDENCIES = ("pyright", "ty", "mypy")

# Extras whose packages need hardware or system libraries no test here uses (sounddevice needs PortAudio).
SKIPPED_EXTRAS = ("voice_helpers",)

API_RESOURCES = "tests/api_resources"
WORKERS = 2
RUN_TIMEOUT_S = 3 * 3600

# Environment variables that would point a suite at real services or change the meter's defaults.
SCRUBBED_ENV_PREFIXES = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID",
                         "OPENAI_ADMIN_KEY", "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL",
                         "AZURE_OPENAI_", "METRICAOS_")

PLUGIN_MODULE = "metricaos_wrap_plugin"
PLUGIN_SOURCE = '''\
"""pytest plugin written by scripts/provider_suites.py: every provider client is metered.

Patches the ``__init__`` of the provider SDK's client classes so that each client, once constructed, is
passed through ``wrap`` of one process-wide ``Meter(sink=MemorySink())``. A client the meter refuses
(TypeError: a platform it does not support) is left as it was. The outermost ``__init__`` wraps: a
subclass calling ``super().__init__()`` (AzureOpenAI on OpenAI) is wrapped once, complete.

``Meter.faults`` counts only what the meter itself catches (sink, quota, worker); the interception layer
(observe.py, taps.py, eventstream.py) and pricing log their faults without counting them there. So every
WARNING-or-worse record of the ``metricaos_sdk`` logger is counted too, by level and first line.
"""

import functools
import importlib
import json
import logging
import os
from collections import Counter

import metricaos_sdk

SDK = os.environ["METRICAOS_SUITES_SDK"]
CLASS_NAMES = json.loads(os.environ["METRICAOS_SUITES_CLASSES"])
STATS_DIR = os.environ.get("METRICAOS_SUITES_STATS_DIR")

METER = metricaos_sdk.Meter(sink=metricaos_sdk.MemorySink())
WRAPPED = Counter()
REFUSED = Counter()
LOGGED = Counter()
_constructing = set()


class _CountingHandler(logging.Handler):
    def emit(self, record):
        try:
            first = record.getMessage().splitlines()[0][:240]
        except Exception:
            first = str(record.msg)[:240]
        LOGGED[f"{record.levelname}: {first}"] += 1


logging.getLogger("metricaos_sdk").addHandler(_CountingHandler(logging.WARNING))


def _metered_init(cls, original):
    @functools.wraps(original)
    def __init__(self, *args, **kwargs):
        key = id(self)
        if key in _constructing:  # a super().__init__() of a client already being constructed
            return original(self, *args, **kwargs)
        _constructing.add(key)
        try:
            original(self, *args, **kwargs)
        finally:
            _constructing.discard(key)
        try:
            METER.wrap(self)
        except TypeError:
            REFUSED[type(self).__qualname__] += 1
        else:
            WRAPPED[type(self).__qualname__] += 1

    return __init__


def _patch_client_classes():
    module = importlib.import_module(SDK)
    patched = []
    for name in CLASS_NAMES:
        try:
            cls = getattr(module, name)
        except (AttributeError, ImportError):
            continue
        cls.__init__ = _metered_init(cls, cls.__init__)
        patched.append(name)
    return patched


PATCHED = _patch_client_classes()


def pytest_report_header(config):
    where = os.path.dirname(metricaos_sdk.__file__)
    return f"metricaos: {SDK} clients metered: {', '.join(PATCHED)} (metricaos_sdk {metricaos_sdk.__version__} at {where})"


def pytest_sessionfinish(session):
    if not STATS_DIR:
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    stats = {
        "metricaos_sdk": f"{metricaos_sdk.__version__} at {os.path.dirname(metricaos_sdk.__file__)}",
        "patched": PATCHED,
        "wrapped": dict(WRAPPED),
        "refused": dict(REFUSED),
        "events": len(METER.events()),
        "faults": METER.faults,
        "logged": dict(LOGGED),
    }
    os.makedirs(STATS_DIR, exist_ok=True)
    with open(os.path.join(STATS_DIR, f"{worker}-{os.getpid()}.json"), "w") as f:
        json.dump(stats, f)
'''


@dataclass
class CaseResult:
    outcome: str  # passed, failed, error, skipped
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome == "passed"

    @property
    def broken(self) -> bool:
        return self.outcome in ("failed", "error")


@dataclass
class Run:
    name: str
    junit: str
    log: str
    returncode: int | None = None
    wall_s: float = 0.0
    timed_out: bool = False
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class Difference:
    test_id: str
    bare: str
    wrapped: str
    message: str
    reproduced_alone: bool | None = None
    rerun_message: str = ""


# -- fetching the sdists ---------------------------------------------------------------------------------


def installed_version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def fetch_sdist(dist: str, version: str, workdir: Path) -> Path:
    """Download ``dist==version``'s sdist from PyPI and extract it; returns the source tree (reused if there)."""
    source = workdir / "src" / f"{dist}-{version}"
    if (source / "pyproject.toml").exists():
        return source
    downloads = workdir / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--quiet",
                    "--dest", str(downloads), f"{dist}=={version}"], check=True)
    archives = sorted(downloads.glob(f"{dist}-{version}.tar.gz")) + sorted(downloads.glob(f"{dist}-{version}.zip"))
    if not archives:
        raise SystemExit(f"pip download left no sdist of {dist}=={version} in {downloads}")
    source.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=source.parent) as tmp:
        if archives[0].suffix == ".zip":
            shutil.unpack_archive(archives[0], tmp)
        else:
            with tarfile.open(archives[0]) as tar:
                if hasattr(tarfile, "data_filter"):
                    tar.extractall(tmp, filter="data")
                else:  # pragma: no cover - Python < 3.11.4
                    tar.extractall(tmp)  # noqa: S202 - an sdist from PyPI
        (top,) = Path(tmp).iterdir()
        top.rename(source)
    return source


# -- test dependencies --------------------------------------------------------------------------------------


def dependency_group(pyproject: dict[str, Any], name: str) -> list[str]:
    """A PEP 735 dependency group, its ``include-group`` entries expanded."""
    groups = pyproject.get("dependency-groups", {})
    found: list[str] = []
    for entry in groups.get(name, []):
        if isinstance(entry, dict) and "include-group" in entry:
            found += dependency_group(pyproject, entry["include-group"])
        elif isinstance(entry, str):
            found.append(entry)
    return found


def is_test_dependency(requirement: Requirement) -> bool:
    name = canonicalize_name(requirement.name)
    return name not in NOT_TEST_DEPENDENCIES and not name.endswith("-stubs") and not name.startswith("types-")


def suite_requirements(source: Path) -> list[Requirement]:
    """What the suite needs besides the SDK itself: the ``dev`` group and the extras, for this interpreter."""
    pyproject = tomllib.loads((source / "pyproject.toml").read_text())
    project = pyproject.get("project", {})
    wanted = dependency_group(pyproject, "dev")
    for extra, requirements in project.get("optional-dependencies", {}).items():
        if extra not in SKIPPED_EXTRAS:
            wanted += requirements
    own_name = canonicalize_name(project.get("name", ""))
    found: dict[str, Requirement] = {}
    for line in wanted:
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        if canonicalize_name(requirement.name) == own_name or not is_test_dependency(requirement):
            continue
        found.setdefault(str(requirement), requirement)
    return list(found.values())


def lock_pins(source: Path) -> dict[str, str]:
    """The versions the SDK's own development lock file resolved (``requirements-dev.lock`` or ``uv.lock``)."""
    pins: dict[str, str] = {}
    lock = source / "requirements-dev.lock"
    if lock.exists():
        for line in lock.read_text().splitlines():
            line = line.strip()
            if not line or line.startswith(("#", "-")):
                continue
            requirement = Requirement(line)
            if requirement.marker is not None and not requirement.marker.evaluate():
                continue
            pinned = [s.version for s in requirement.specifier if s.operator == "=="]
            if pinned:
                pins[canonicalize_name(requirement.name)] = pinned[0]
        return pins
    lock = source / "uv.lock"
    if lock.exists():
        versions: dict[str, set[str]] = {}
        for package in tomllib.loads(lock.read_text()).get("package", []):
            if "version" in package:
                versions.setdefault(canonicalize_name(package["name"]), set()).add(package["version"])
        pins = {name: found.pop() for name, found in versions.items() if len(found) == 1}  # forks: no one pin
    return pins


def unmet(requirement: Requirement) -> bool:
    """Whether ``requirement`` (with its extras) needs installing: missing, or installed below what it asks.

    An installed version newer than the one asked for is kept (it is never downgraded)."""
    have = installed_version(requirement.name)
    if have is None:
        return True
    if not requirement.specifier.contains(have, prereleases=True):
        floors = [Version(s.version) for s in requirement.specifier
                  if s.operator in (">=", ">", "==", "~=") and "*" not in s.version]
        if any(Version(have) < floor for floor in floors):
            return True
    for extra in requirement.extras:
        for line in metadata.requires(requirement.name) or []:
            needed = Requirement(line)
            if needed.marker is not None and needed.marker.evaluate({"extra": extra}) \
                    and not needed.marker.evaluate({"extra": ""}) and unmet(needed):
                return True
    return False


def no_downgrade_constraints(workdir: Path) -> Path:
    """A pip constraints file: every installed distribution at its version or above (nothing is downgraded),
    and the SDKs, httpx2 and pydantic exactly at theirs (never changed)."""
    lines = {}
    for dist in metadata.distributions():
        name, have = dist.metadata["Name"], dist.version
        if name and have:
            exact = canonicalize_name(name) in PROTECTED
            lines[canonicalize_name(name)] = f"{canonicalize_name(name)}{'==' if exact else '>='}{have}"
    path = workdir / "no-downgrade-constraints.txt"
    path.write_text("\n".join(sorted(lines.values())) + "\n")
    return path


def pip_install(requirements: list[str], constraints: Path) -> bool:
    command = [sys.executable, "-m", "pip", "install", "--quiet", "-c", str(constraints), *requirements]
    return subprocess.run(command).returncode == 0


def install_test_dependencies(source: Path, workdir: Path) -> dict[str, Any]:
    """Install what the suite needs and the environment lacks; returns what was asked, installed, refused."""
    missing = [r for r in suite_requirements(source) if unmet(r)]
    pins = lock_pins(source)
    pinned: list[str] = []
    for requirement in missing:
        version = pins.get(canonicalize_name(requirement.name))
        if version is not None and requirement.specifier.contains(version, prereleases=True):
            extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
            pinned.append(f"{requirement.name}{extras}=={version}")
        else:
            pinned.append(str(requirement))
    report: dict[str, Any] = {"missing": [str(r) for r in missing], "installed": [], "failed": []}
    if not missing:
        return report
    constraints = no_downgrade_constraints(workdir)
    print(f"installing {len(missing)} test dependencies: {' '.join(pinned)}", flush=True)
    if pip_install(pinned, constraints):
        report["installed"] = pinned
        return report
    print("the lock file's versions do not install together here; trying the declared ranges", flush=True)
    loose = [str(r) for r in missing]
    if pip_install(loose, constraints):
        report["installed"] = loose
        return report
    for line in loose:  # one by one: install what can be, list what cannot
        (report["installed"] if pip_install([line], constraints) else report["failed"]).append(line)
    return report


# -- running a suite -----------------------------------------------------------------------------------------


def mock_server_listening(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=1):
            return True
    except OSError:
        return False


def suite_uses_xdist(source: Path) -> bool:
    pyproject = tomllib.loads((source / "pyproject.toml").read_text())
    names = {canonicalize_name(Requirement(r).name) for r in dependency_group(pyproject, "dev")}
    return "pytest-xdist" in names and installed_version("pytest-xdist") is not None


def write_plugin(workdir: Path) -> Path:
    directory = workdir / "plugin"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{PLUGIN_MODULE}.py").write_text(PLUGIN_SOURCE)
    return directory


def suite_environment(sdk: str, plugin_dir: Path, stats_dir: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED_ENV_PREFIXES)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(plugin_dir), env.get("PYTHONPATH")]))
    env["METRICAOS_SUITES_SDK"] = sdk
    env["METRICAOS_SUITES_CLASSES"] = json.dumps(CLIENT_CLASSES[sdk])
    if stats_dir is not None:
        env["METRICAOS_SUITES_STATS_DIR"] = str(stats_dir)
    return env


def run_pytest(sdk: str, source: Path, run: Run, *, wrapped: bool, args: list[str], plugin_dir: Path,
               stats_dir: Path | None = None) -> Run:
    """Run pytest in the sdist with its own configuration; ``wrapped`` loads the metering plugin."""
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--junitxml={run.junit}", "-q", *args]
    if wrapped:
        command[3:3] = ["-p", PLUGIN_MODULE]
    env = suite_environment(sdk, plugin_dir, stats_dir)
    ids = [a for a in args if "::" in a and not a.startswith("-")]
    shown = [a for a in command[1:] if a not in ids] + ([f"<{len(ids)} test ids>"] if ids else [])
    print(f"  {run.name}: {' '.join(shown)}", flush=True)
    Path(run.junit).unlink(missing_ok=True)  # a run that dies before writing must not read an old file
    started = time.monotonic()
    with open(run.log, "w") as log:
        process = subprocess.Popen(command, cwd=source, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            run.returncode = process.wait(timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            run.timed_out = True
            os.killpg(process.pid, signal.SIGTERM)
            try:
                run.returncode = process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                run.returncode = process.wait()
    run.wall_s = round(time.monotonic() - started, 1)
    return run


# -- reading and comparing results --------------------------------------------------------------------


def first_line(text: str | None) -> str:
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()
    return ""


def node_id(source: Path, classname: str, name: str) -> str:
    """pytest's node id from a JUnit testcase: ``classname`` is the node id's file (dotted, without ``.py``)
    followed by its classes, so the longest dotted prefix that names a file in the sdist is the file."""
    parts = classname.split(".") if classname else []
    path, rest = "", parts
    for cut in range(len(parts), 0, -1):
        candidate = Path(*parts[:cut]).with_suffix(".py")
        if (source / candidate).is_file():
            path, rest = candidate.as_posix(), parts[cut:]
            break
    return "::".join([p for p in [path, *rest, name] if p])


def read_junit(path: str, source: Path) -> dict[str, CaseResult]:
    """Every testcase of a JUnit XML file, by node id; a test reported twice keeps its worse outcome."""
    if not os.path.exists(path):
        return {}
    results: dict[str, CaseResult] = {}
    rank = {"passed": 0, "skipped": 1, "failed": 2, "error": 3}
    for case in ET.parse(path).getroot().iter("testcase"):
        result = CaseResult("passed")
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = "failed" if child.tag == "failure" else "error"
                message = first_line(child.get("message")) or first_line(child.text)
                if rank[outcome] > rank[result.outcome]:
                    result = CaseResult(outcome, message)
            elif child.tag == "skipped" and result.outcome == "passed":
                result = CaseResult("skipped", first_line(child.get("message")))
        test_id = node_id(source, case.get("classname", ""), case.get("name", ""))
        previous = results.get(test_id)
        if previous is None or rank[result.outcome] > rank[previous.outcome]:
            results[test_id] = result
    return results


def count_outcomes(results: dict[str, CaseResult]) -> dict[str, int]:
    counts = {"passed": 0, "failed": 0, "error": 0, "skipped": 0}
    for result in results.values():
        counts[result.outcome] += 1
    counts["total"] = len(results)
    return counts


def differences(bare: dict[str, CaseResult], wrapped: dict[str, CaseResult]) -> dict[str, list[Difference]]:
    """Tests that pass bare and fail wrapped, the reverse, and those that ran in one run only."""
    found: dict[str, list[Difference]] = {"pass_bare_fail_wrapped": [], "fail_bare_pass_wrapped": [],
                                          "only_bare": [], "only_wrapped": []}
    for test_id in sorted(bare.keys() | wrapped.keys()):
        b, w = bare.get(test_id), wrapped.get(test_id)
        if b is None or w is None:
            key = "only_wrapped" if b is None else "only_bare"
            present = w if b is None else b
            assert present is not None
            found[key].append(Difference(test_id, b.outcome if b else "absent", w.outcome if w else "absent",
                                         present.message))
        elif b.ok and w.broken:
            found["pass_bare_fail_wrapped"].append(Difference(test_id, b.outcome, w.outcome, w.message))
        elif b.broken and w.ok:
            found["fail_bare_pass_wrapped"].append(Difference(test_id, b.outcome, w.outcome, b.message))
    return found


def rerun_alone(sdk: str, source: Path, results_dir: Path, plugin_dir: Path, found: dict[str, list[Difference]],
                extra_args: list[str]) -> dict[str, Run]:
    """Run the differing tests again, serially and on their own, bare and wrapped; marks each Difference."""
    rechecked = [d for d in found["pass_bare_fail_wrapped"] + found["fail_bare_pass_wrapped"]
                 if "::" in d.test_id]  # a collection error's id names no test to select
    if not rechecked:
        return {}
    ids = [d.test_id for d in rechecked]
    serial = ["-n", "0"] if suite_uses_xdist(source) else []
    runs: dict[str, Run] = {}
    outcome: dict[str, dict[str, CaseResult]] = {}
    for mode in ("bare", "wrapped"):
        run = Run(f"{mode} rerun", str(results_dir / f"{sdk}-{mode}-rerun.xml"), str(results_dir / f"{sdk}-{mode}-rerun.log"))
        run_pytest(sdk, source, run, wrapped=mode == "wrapped", args=[*serial, *extra_args, *ids], plugin_dir=plugin_dir)
        outcome[mode] = read_junit(run.junit, source)
        run.counts = count_outcomes(outcome[mode])
        runs[mode] = run
    for difference in rechecked:
        b, w = outcome["bare"].get(difference.test_id), outcome["wrapped"].get(difference.test_id)
        if b is None or w is None:
            continue  # not found again: left as unknown
        if difference in found["pass_bare_fail_wrapped"]:
            difference.reproduced_alone = b.ok and w.broken
            difference.rerun_message = w.message
        else:
            difference.reproduced_alone = b.broken and w.ok
            difference.rerun_message = b.message
    return runs


def plugin_stats(stats_dir: Path) -> dict[str, Any]:
    """The wrapped run's plugin statistics, summed over its processes (xdist workers)."""
    total: dict[str, Any] = {"metricaos_sdk": None, "patched": [], "wrapped": {}, "refused": {}, "events": 0,
                             "faults": 0, "logged": {}}
    for path in sorted(stats_dir.glob("*.json")):
        stats = json.loads(path.read_text())
        total["metricaos_sdk"] = stats["metricaos_sdk"]
        total["patched"] = sorted(set(total["patched"]) | set(stats["patched"]))
        for key in ("wrapped", "refused"):
            for name, n in stats[key].items():
                total[key][name] = total[key].get(name, 0) + n
        total["events"] += stats["events"]
        total["faults"] += stats["faults"]
        for line, n in stats.get("logged", {}).items():
            total["logged"][line] = total["logged"].get(line, 0) + n
    return total


# -- one SDK, end to end ---------------------------------------------------------------------------------


def check_sdk(sdk: str, workdir: Path, results_dir: Path, plugin_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    version = installed_version(sdk)
    if version is None:
        print(f"{sdk}: not installed in {sys.executable}; skipped", flush=True)
        return {"version": None, "skipped": "not installed"}
    print(f"== {sdk} {version}", flush=True)
    source = fetch_sdist(sdk, version, workdir)
    install = install_test_dependencies(source, workdir)
    pytest_args: list[str] = []
    left_out: list[dict[str, str]] = []
    mock_url = os.environ.get("TEST_API_BASE_URL", "http://127.0.0.1:4010")
    if (source / API_RESOURCES).is_dir() and not args.api_resources and not mock_server_listening(mock_url):
        pytest_args.append(f"--ignore={API_RESOURCES}")
        left_out.append({"path": API_RESOURCES, "reason": f"needs the SDK's mock server at {mock_url} (built from an "
                                                          "OpenAPI spec the sdist does not ship); nothing listens there"})
    if suite_uses_xdist(source):
        pytest_args += ["-n", str(WORKERS)]
    if args.k:
        pytest_args += ["-k", args.k]

    stats_dir = results_dir / f"{sdk}-wrapped-stats"
    shutil.rmtree(stats_dir, ignore_errors=True)
    runs = {mode: Run(mode, str(results_dir / f"{sdk}-{mode}.xml"), str(results_dir / f"{sdk}-{mode}.log"))
            for mode in ("bare", "wrapped")}
    results: dict[str, dict[str, CaseResult]] = {}
    for mode, run in runs.items():
        run_pytest(sdk, source, run, wrapped=mode == "wrapped", args=pytest_args, plugin_dir=plugin_dir,
                   stats_dir=stats_dir if mode == "wrapped" else None)
        results[mode] = read_junit(run.junit, source)
        run.counts = count_outcomes(results[mode])
        print(f"  {mode}: {run.counts} in {run.wall_s:.0f} s (pytest exit {run.returncode})", flush=True)

    found = differences(results["bare"], results["wrapped"])
    rerun_args = [a for a in pytest_args if a.startswith("--ignore=")]
    reruns = rerun_alone(sdk, source, results_dir, plugin_dir, found, rerun_args)
    return {
        "version": version,
        "source": str(source),
        "test_dependencies": install,
        "left_out": left_out,
        "pytest_args": pytest_args,
        "runs": {name: asdict(run) for name, run in runs.items()},
        "reruns": {name: asdict(run) for name, run in reruns.items()},
        "plugin": plugin_stats(stats_dir),
        **{key: [asdict(d) for d in diffs] for key, diffs in found.items()},
    }


# -- the report ----------------------------------------------------------------------------------------------


def describe_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{counts.get(k, 0)} {k}" for k in ("passed", "failed", "error", "skipped"))


def print_report(summary: dict[str, Any]) -> None:
    width = shutil.get_terminal_size((120, 40)).columns
    headings = {
        "pass_bare_fail_wrapped": "pass bare, fail wrapped",
        "fail_bare_pass_wrapped": "fail bare, pass wrapped",
        "only_bare": "ran bare only",
        "only_wrapped": "ran wrapped only",
    }
    for sdk, report in summary["sdks"].items():
        print()
        if report.get("version") is None:
            print(f"{sdk}: skipped ({report.get('skipped')})")
            continue
        runs = report["runs"]
        print(f"{sdk} {report['version']}")
        for mode in ("bare", "wrapped"):
            run = runs[mode]
            note = " (timed out)" if run["timed_out"] else ""
            print(f"  {mode:8} {describe_counts(run['counts'])}  [{run['wall_s']:.0f} s]{note}")
        plugin = report["plugin"]
        print(f"  metricaos_sdk {plugin['metricaos_sdk']}")
        print(f"  clients metered: {plugin['wrapped']}; refused by wrap (left bare): {plugin['refused']}; "
              f"events recorded: {plugin['events']}; metering faults (Meter.faults): {plugin['faults']}")
        logged = plugin.get("logged", {})
        errors = sum(n for line, n in logged.items() if not line.startswith("WARNING:"))
        print(f"  metricaos_sdk log records: {sum(logged.values())} (ERROR or worse: {errors})")
        for line, n in sorted(logged.items(), key=lambda item: -item[1])[:15]:
            print(textwrap.shorten(f"{n:6} {line}", width=max(40, width - 4), placeholder=" …", initial_indent="    "))
        for item in report["left_out"]:
            print(f"  left out: {item['path']}: {item['reason']}")
        for key, heading in headings.items():
            rows = report[key]
            if not rows:
                continue
            print(f"  {heading} ({len(rows)}):")
            print(f"    {'alone':6} {'bare':7} {'wrapped':7} test / first line of the failure")
            for row in rows:
                alone = {True: "yes", False: "no", None: "-"}[row["reproduced_alone"]]
                print(f"    {alone:6} {row['bare']:7} {row['wrapped']:7} {row['test_id']}")
                if row["message"]:
                    print(textwrap.shorten(row["message"], width=max(40, width - 8), placeholder=" …",
                                           initial_indent="        "))
    print()
    print(f"JUnit XML, logs and summary.json: {summary['results_dir']}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sdk", choices=(*SDKS, "all"), default="all", help="which SDK's suite to run (default: all)")
    parser.add_argument("--workdir", type=Path, help="where sdists, the plugin and results go (default: a new "
                                                     "directory under /tmp)")
    parser.add_argument("-k", metavar="EXPR", help="pytest -k expression, applied to both runs")
    parser.add_argument("--keep", action="store_true", help="keep the downloaded and extracted sdists (the results "
                                                            "directory is always kept)")
    parser.add_argument("--api-resources", action="store_true",
                        help="run tests/api_resources even when no mock server listens on TEST_API_BASE_URL")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="provider-suites-", dir="/tmp"))).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    results_dir = workdir / "results"
    results_dir.mkdir(exist_ok=True)
    plugin_dir = write_plugin(workdir)
    started = time.monotonic()
    summary: dict[str, Any] = {"python": sys.executable, "workdir": str(workdir), "results_dir": str(results_dir),
                               "sdks": {}}
    for sdk in SDKS if args.sdk == "all" else (args.sdk,):
        summary["sdks"][sdk] = check_sdk(sdk, workdir, results_dir, plugin_dir, args)
    summary["wall_s"] = round(time.monotonic() - started, 1)
    (results_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print_report(summary)
    print(f"wall time: {summary['wall_s'] / 60:.1f} min")
    if not args.keep:
        for name in ("src", "downloads"):
            shutil.rmtree(workdir / name, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
