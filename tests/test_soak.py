"""The short version of the endurance soak (bench/soak.py --short): followers through a proxy that
cuts their connections end with every byte exactly once; connect/disconnect cycles leave no file
descriptor, task or memory behind; mixed load keeps RSS flat and the log free of errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SOAK = Path(__file__).resolve().parent.parent / "bench" / "soak.py"


@pytest.mark.timeout(180)
@pytest.mark.parametrize("part", ["cuts", "cycles", "cycles-ws", "mixed"])
def test_soak_short(part: str) -> None:
    done = subprocess.run(
        [sys.executable, str(SOAK), part, "--short", "--json"],
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert done.stdout, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["errors"] == [], result
    assert done.returncode == 0, done.stderr
    if part == "cuts":
        assert result["cuts"] >= 60 and result["exact"] == result["followers"]
