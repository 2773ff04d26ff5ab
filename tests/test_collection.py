"""Every test folder is collected by the README's test command (`python -m pytest`).

pytest's default `norecursedirs` skips folders such as `build`, `dist` and dot-folders; a test
folder it never enters protects nothing, so this walks `tests/` and asks pytest itself.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_test_folder_is_collected() -> None:
    folders = {p.parent.relative_to(ROOT).as_posix() for p in (ROOT / "tests").rglob("test_*.py")}
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    collected = {
        line.split("::", 1)[0].rsplit("/", 1)[0] for line in out.splitlines() if "::" in line
    }
    assert folders, "no test files found"
    missing = sorted(folders - collected)
    assert not missing, f"test folders pytest never collects: {missing}"
