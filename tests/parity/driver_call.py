"""Run a driver script in the official test-only environment: JSON in on stdin, JSON out."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

#: The driver of the official parse, metric and summary functions (medvision-bm 1.2.1).
OFFICIAL_DRIVER = Path(__file__).with_name("official_driver.py")


def call_driver(python: str, request: dict[str, Any], driver: Path = OFFICIAL_DRIVER) -> Any:
    """Send ``request`` to ``driver`` run by ``python``; fail the test (never skip) on error."""
    proc = subprocess.run(
        [python, str(driver)],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"official driver {driver.name} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout)
