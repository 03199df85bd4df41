"""The project's files never point into the workspace around it (its facts live in docs/)."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_no_file_points_outside_the_project() -> None:
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    needle = "shared" + "/reference"  # split so that this file does not match itself
    offenders = [
        name
        for name in tracked
        if (ROOT / name).is_file()
        and any(
            bad in (ROOT / name).read_text(errors="replace") for bad in (needle, "../" + "shared")
        )
    ]
    assert offenders == []


def test_the_genesys_facts_carry_their_sources() -> None:
    page = (ROOT / "docs" / "genesys.md").read_text()
    for fact in ("offline_access", "DELETE /api/v2/tokens/me", "86400", "HTTP 400, not 429"):
        assert fact in page
    assert page.count("HIGH") > 5 and "UNVERIFIED" in page
