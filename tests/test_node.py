"""Issue 12, item 3: the Node recipes of docs/node.md, run exactly as the page shows them,
with the real `purecloud-platform-client-v2` from npm, over several token lifetimes with no 401.

Without node or npm the tests skip, except under `CI=true`, where they fail and say why."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from freshtoken.testing import AuthServer
from tests._cli import cli_env
from tests.helpers import missing, require

ROOT = Path(__file__).parent.parent
SDK = "purecloud-platform-client-v2@262"  # the major version the recipes are tested with
TTL, SECONDS = 2.0, 7.0  # about three and a half token lifetimes
RECIPE = re.compile(r"<!-- recipe: (\S+) -->\n```js\n(.*?)```", re.S)


def recipes() -> dict[str, str]:
    return dict(RECIPE.findall((ROOT / "docs" / "node.md").read_text()))


@pytest.fixture(scope="session")
def node_modules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The SDK installed from npm once per session, into a folder of this test run."""
    node, npm = require("node"), require("npm")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True)
    if int(version.stdout.strip().lstrip("v").split(".")[0]) < 18:
        missing("node", f"Node {version.stdout.strip()} is older than 18 (no fetch)")
    folder = tmp_path_factory.mktemp("npm")
    installed = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--prefix", str(folder), SDK],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert installed.returncode == 0, f"npm install {SDK} failed:\n{installed.stderr[-2000:]}"
    return folder / "node_modules"


def test_the_page_has_the_three_recipes() -> None:
    assert set(recipes()) == {"fetch-proxy.js", "sdk-proxy.js", "sdk-endpoint.js"}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fetch-proxy.js", "sdk-proxy.js", "sdk-endpoint.js"])
def test_recipe_over_several_lifetimes(name: str, node_modules: Path, tmp_path: Path) -> None:
    script = tmp_path / name
    script.write_text(recipes()[name])
    with AuthServer.genesys(ttl=TTL) as server:
        env = cli_env(
            tmp_path,
            server,
            FRESHTOKEN_PROVIDER="genesys",
            FRESHTOKEN_API_URL=server.url,
            GENESYS_API_URL=server.url,
            NODE_PATH=str(node_modules),
            HOME=str(tmp_path),  # the SDK reads ~/.genesyscloudjavascript/config
        )
        proxy = ["--proxy"] if "proxy" in name else []
        command = ["node", str(script), str(SECONDS)]
        run = subprocess.run(
            [sys.executable, "-m", "freshtoken", "exec", *proxy, "--", *command],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stderr
        calls = json.loads(run.stdout.strip().splitlines()[-1])["calls"]
        stats = server.stats()
    assert calls >= 20
    assert stats["api_401"] == 0  # not one call refused
    assert stats["api_200"] == calls
    # Shared, not one per call: refresh ahead renews in the last half of a 2 s token's life.
    assert 3 <= stats["tokens_minted"] <= SECONDS / (TTL / 2) + 2, stats
