"""Packaging: what the install installs, that CI runs exactly the README's commands, the ``wattgpu`` command, and
that no test or bench script edits the import path (they rely on the installed package)."""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
TEST_TOOLS = {"pytest", "playwright", "ruff"}


def _name(requirement: str) -> str:
    return re.split(r"[=<>!~\[; ]", requirement, maxsplit=1)[0].lower()


def readme_command(what: str) -> str:
    """The command in README.md's quick-start table for ``what`` ('install', 'run the app', 'run the tests')."""
    text = (ROOT / "README.md").read_text()
    found = re.findall(rf"^\| {re.escape(what)} \| `([^`]+)` \|$", text, flags=re.M)
    assert len(found) == 1, f"README.md's quick start has no single '{what}' row"
    return found[0]


def test_ci_runs_exactly_the_readme_install_and_test_commands():
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    for what in ("install", "run the tests"):
        assert readme_command(what) in ci_lines, f".ci/run does not run README's '{what}' command verbatim"
    assert ci_lines.index(readme_command("install")) < ci_lines.index(readme_command("run the tests"))


def test_the_install_command_installs_the_runtime_only():
    assert readme_command("install").endswith("pip install -r requirements.txt")
    assert [line for line in (ROOT / "requirements.txt").read_text().splitlines()
            if line and not line.startswith("#")] == ["-e ."]
    runtime = {_name(r) for r in PROJECT["dependencies"]}
    assert not runtime & TEST_TOOLS, "test tools belong in the `test` extra"
    assert {"streamlit", "duckdb", "xgboost-cpu", "shap", "pyarrow"} <= runtime
    assert {_name(r) for r in PROJECT["optional-dependencies"]["test"]} >= TEST_TOOLS
    assert "-e .[test]" in (ROOT / "requirements-test.txt").read_text().splitlines()
    assert "requirements-test.txt" in readme_command("run the tests")


def test_every_dependency_is_pinned_exactly():
    """CI must install the versions the committed models and the shipped evaluation were made with."""
    pins = [*PROJECT["dependencies"], *(r for extra in PROJECT["optional-dependencies"].values() for r in extra)]
    loose = [r for r in pins if not re.fullmatch(r"[A-Za-z0-9_.\-]+==[0-9][0-9A-Za-z.]*", r.split(";")[0].strip())]
    assert not loose, f"not pinned with ==: {loose}"


def test_console_script_points_at_the_cli():
    module, _, attr = PROJECT["scripts"]["wattgpu"].partition(":")
    assert callable(getattr(importlib.import_module(module), attr))


def _installed():
    """The installed distribution; its metadata in the checkout (``wattgpu.egg-info``, left by a build) is not one."""
    found = [d for d in importlib.metadata.distributions(name="wattgpu") if Path(d.locate_file("")).resolve() != ROOT]
    if not found:
        pytest.skip("the wattgpu package is not installed in this environment (README: pip install -r "
                    "requirements.txt); the other packaging tests still run")
    return found[0]


def test_installed_package_is_this_checkout_and_its_command_runs():
    dist = _installed()
    assert dist.version == PROJECT["version"]
    script = Path(sys.executable).parent / "wattgpu"
    assert script.exists(), f"no {script}: the console script was not installed"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "WATTGPU_DB")}
    # run from elsewhere, so the package is found through the install, not the current folder
    done = subprocess.run([str(script), "template"], capture_output=True, text=True, cwd="/", env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    module = subprocess.run([sys.executable, "-m", "wattgpu_core", "template"], capture_output=True, text=True,
                            cwd="/", env=env, timeout=120)
    assert done.stdout == module.stdout and done.stdout.startswith("llm,gpu,")
    where = subprocess.run([sys.executable, "-c", "import wattgpu_core; print(wattgpu_core.__file__)"],
                           capture_output=True, text=True, cwd="/", env=env, timeout=120)
    assert Path(where.stdout.strip()).resolve().is_relative_to(ROOT), "the install does not point at this checkout"


def _edits_import_path(tree: ast.AST) -> list[int]:
    """Lines that touch ``sys.path`` (insert, assign, slice) or set PYTHONPATH for a child process."""
    lines = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and node.attr == "path" and isinstance(node.value, ast.Name)
                and node.value.id == "sys"):
            lines.append(node.lineno)
        elif isinstance(node, ast.keyword) and node.arg == "PYTHONPATH":
            lines.append(node.value.lineno)
    return lines


@pytest.mark.parametrize("folder", ["bench", "tests"])
def test_no_script_edits_the_import_path(folder):
    found = [f"{path.relative_to(ROOT)}:{line}" for path in sorted((ROOT / folder).rglob("*.py"))
             for line in _edits_import_path(ast.parse(path.read_text()))]
    assert not found, "the package is installed (pip install -e .); remove these import path edits: " + ", ".join(found)
