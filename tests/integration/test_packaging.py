"""The installed service is the wheel, not this checkout: every other test imports the source
tree, so a module the wheel leaves out (a new subpackage setup.py does not name) passes them all
and fails only after `pip install .` — as consumers.mail and projections.postgres once did."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import ROOT

ROOTS = ("domain", "projections", "api", "consumers", "alphabet")


def test_the_wheel_holds_every_module_and_the_console_files(tmp_path: Path) -> None:
    # From a copy without build/ and *.egg-info: setuptools would reuse what an earlier build
    # left there and pass a wheel a fresh clone cannot make.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        "build", "*.egg-info", ".tox", ".git", "node_modules", "data", "test-artifacts",
        "__pycache__", ".venv"))
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir",
         str(tmp_path), str(source)],
        capture_output=True, text=True, timeout=600,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    [wheel] = tmp_path.glob("alphabet_events-*.whl")
    inside = set(zipfile.ZipFile(wheel).namelist())
    wanted = {str(path.relative_to(ROOT)) for root in ROOTS for path in (ROOT / root).rglob("*")
              if path.is_file() and "__pycache__" not in path.parts
              and (path.suffix == ".py" or "console_files" in path.parts)}
    assert wanted, "the source roots hold no modules"
    assert wanted - inside == set()
