"""Every Python and TOML example in the README and docs/ runs (extracted, never copied), with
`url` and `region` bound to the shipped test server."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from freshtoken._config import _profile_values
from freshtoken.testing import AuthServer

ROOT = Path(__file__).parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _blocks(language: str) -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        for i, block in enumerate(
            re.findall(rf"```{language}\n(.*?)```", page.read_text(), re.DOTALL)
        ):
            found.append((f"{page.name}#{i + 1}", block))
    return found


PYTHON = _blocks("python")
TOML = _blocks("toml")


def test_there_are_examples() -> None:
    assert len(PYTHON) >= 3 and TOML


@pytest.mark.parametrize(("where", "code"), PYTHON, ids=[w for w, _ in PYTHON])
def test_python_example_runs(
    where: str, code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if "PureCloudPlatformClientV2" in code:
        pytest.importorskip("PureCloudPlatformClientV2")
    with AuthServer() as server:
        monkeypatch.setenv("FRESHTOKEN_TOKEN_URL", server.token_url)
        monkeypatch.setenv("FRESHTOKEN_CLIENT_ID", "demo-client")
        monkeypatch.setenv("FRESHTOKEN_CLIENT_SECRET", "demo-secret")
        monkeypatch.setenv("FRESHTOKEN_STORE", f"sqlite://{tmp_path}/t.db")
        namespace = {"url": server.url + "/api/echo", "region": server.url, "__name__": "example"}
        exec(compile(code, where, "exec"), namespace)
        if re.search(r"(?<![.\w])(url|region)\b", code):  # it called our API, and the token worked
            stats = server.stats()
            assert stats["api_200"] >= 1 and stats["api_401"] == 0, (where, stats)


@pytest.mark.parametrize(("where", "text"), TOML, ids=[w for w, _ in TOML])
def test_toml_example_is_a_valid_configuration(where: str, text: str, tmp_path: Path) -> None:
    path = tmp_path / "freshtoken.toml"
    path.write_text(text)
    for profile in tomllib.loads(text):
        assert _profile_values(path, profile), (where, profile)  # no unknown or secret keys
