"""scripts/demo.sh installs only what the demo needs (issue 12, item 6)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests._cli import cli_env

ROOT = Path(__file__).parent.parent
pytestmark = pytest.mark.slow  # installs the package into a fresh virtual environment


def test_demo_installs_only_what_it_needs(tmp_path: Path) -> None:
    """scripts/demo.sh in a virtual environment of its own: the package and rich, no
    development tools (issue 12, item 6)."""
    venv = tmp_path / "demo-venv"
    out = subprocess.run(
        ["bash", str(ROOT / "scripts" / "demo.sh"), "--duration", "4", "--ttl", "2", "--plain"],
        env=cli_env(tmp_path, FRESHTOKEN_VENV=str(venv)),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    # It ends by saying where freshtoken is (not on PATH) and the next command to try.
    assert f"freshtoken is installed in {venv / 'bin'}" in out.stderr
    assert f"{venv / 'bin'}/freshtoken testserver" in out.stderr
    listed = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "list", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    names = {p["name"].lower() for p in json.loads(listed)}
    assert {"freshtoken", "rich"} <= names
    assert not names & {"pytest", "mypy", "ruff", "purecloudplatformclientv2", "keyring"}
