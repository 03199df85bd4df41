"""The demo runs to a green verdict; the configuration reference matches the code."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from freshtoken._token import COMMAND_LINE, RefreshPolicy, Token
from freshtoken.cli._docs import configuration_markdown, troubleshooting_markdown
from freshtoken.config._options import OPTIONS
from tests._cli import cli_env

ROOT = Path(__file__).parent.parent


def test_the_configuration_reference_is_generated_from_the_code() -> None:
    assert (ROOT / "docs" / "configuration.md").read_text() == configuration_markdown(), (
        "regenerate: python -m freshtoken.cli._docs > docs/configuration.md"
    )


def test_the_troubleshooting_page_is_generated_from_the_hints() -> None:
    page = (ROOT / "docs" / "troubleshooting.md").read_text()
    assert page == troubleshooting_markdown(), (
        "regenerate: python -m freshtoken.cli._docs troubleshooting > docs/troubleshooting.md"
    )
    assert "region eu_west_1" in page and "offline_access" in page


def test_every_variable_the_code_reads_is_documented() -> None:
    documented = (ROOT / "docs" / "configuration.md").read_text()
    source = "\n".join(p.read_text() for p in (ROOT / "src").rglob("*.py"))
    read = set(re.findall(r'"(FRESHTOKEN_[A-Z_]+)"', source)) - {
        "FRESHTOKEN_URL",
        "FRESHTOKEN_KEY",
        "FRESHTOKEN_PROXY_URL",  # set for children
        "FRESHTOKEN_ACCESS_TOKEN",  # --format env output
    }
    # Most names come from the table itself (Option.env); these are the ones spelled out.
    assert read, "the search found no variable names"
    assert [o.env for o in OPTIONS if f"`{o.env}`" not in documented] == []
    undocumented = [
        v for v in read if v not in documented and v.removesuffix("_FILE") not in documented
    ]
    assert undocumented == []
    assert [v for v in ("FRESHTOKEN_PROFILE", "FRESHTOKEN_CONFIG") if v not in documented] == []


@pytest.mark.slow
def test_demo_fast_mode_is_green(tmp_path: Path) -> None:
    # The README's main-job command itself, in this virtual environment, in its fast mode.
    out = subprocess.run(
        [
            *("bash", str(ROOT / "scripts" / "demo.sh")),
            *("--duration", "6", "--ttl", "2", "--format", "json"),
        ],
        env=cli_env(tmp_path, FRESHTOKEN_VENV=sys.prefix),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.strip().splitlines()
    counts = json.loads(lines[-2])
    assert lines[-1].startswith("freshtoken: 0 failed calls")
    # Calls spread over three 2-s lifetimes (a busy machine makes fewer of them).
    assert counts["python"]["ok"] > 3 and "fail" not in counts["python"]
    assert counts["proxy"]["ok"] > 3 and "fail" not in counts["proxy"]
    assert counts["naive-once"].get("fail", 0) > 0  # the token died mid-build
    assert counts["naive-per-call"].get("fail", 0) > 0  # the rate limit said 400
    assert lines[0].startswith("calls ok/failed so far, per step: ")  # labelled, off a terminal


def test_the_default_margins_are_the_documented_ones() -> None:
    """docs/promises.md is the one home of the default margins; the code must agree."""

    text = (ROOT / "docs" / "promises.md").read_text(encoding="utf-8")
    rows = re.findall(
        r"\| (\d+) s(?: \(as google-auth\))?, at most (a quarter|half) of the lifetime", text
    )
    assert len(rows) == 2, rows
    day = Token("t", "Bearer", expires_at=86400.0, issued_at=0.0)
    short = Token("t", "Bearer", expires_at=4.0, issued_at=0.0)
    fraction = {"a quarter": 0.25, "half": 0.5}
    for (seconds, part), policy in zip(rows, (RefreshPolicy(), COMMAND_LINE), strict=True):
        assert policy.min_ttl_for(day) == float(seconds)
        assert policy.min_ttl_for(short) == 4.0 * fraction[part]


def test_the_readme_is_short_and_links_every_page_of_the_docs() -> None:
    """The README is the front page (at most 10 KB); the reference lives in docs/, every page
    of which it links (a new page needs a line in its "Documentation" list)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.encode()) <= 10_000
    pages = sorted(p.name for p in (ROOT / "docs").glob("*.md"))
    assert [p for p in pages if f"](docs/{p})" not in readme] == []
    assert "| --- |" not in readme and "|---|" not in readme  # tables only in docs/
