"""Every Python, shell and TOML example in the README and docs/ runs (extracted, never copied),
bound to the shipped test server: `url` and `region` in Python, `FRESHTOKEN_TOKEN_URL` (which
wins over the region) and the few placeholders in `BINDINGS` in shell."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import redis as redis_client

from freshtoken.config._load import _profile_values
from freshtoken.testing import AuthServer
from tests._cli import BIN, cli_env
from tests._redis import RedisProcess, free_port
from tests.helpers import require, require_module

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
SHELL = _blocks("bash")
# The README's first block is the CI command itself and the demo (tests/test_docs_and_demo.py).
OPENING = "./scripts/demo.sh", "./scripts/test.sh"
SHELL_EXAMPLES = [(w, c) for w, c in SHELL if not c.startswith(OPENING)]
# Placeholder in the docs -> what the test binds it to ({tmp}, {redis} filled in per run).
BINDINGS = {
    "FRESHTOKEN_CLIENT_ID=...": "FRESHTOKEN_CLIENT_ID=demo-client",
    "/run/secrets/client_secret": "{tmp}/client_secret",
    "rediss://ci@redis.internal:6380/0": "{redis}",
    "/run/secrets/redis": "{tmp}/redis_password",
    "/run/secrets/freshtoken-store-key": "{tmp}/store_key",
}
REDIS_PASSWORD = "acl-pass-examples"


def test_there_are_examples() -> None:
    assert len(PYTHON) >= 3 and TOML


# An example that imports the Genesys Cloud SDK is slow: the import alone takes seconds.
@pytest.mark.parametrize(
    ("where", "code"),
    [
        pytest.param(
            w, c, id=w, marks=[pytest.mark.slow] if "PureCloudPlatformClientV2" in c else []
        )
        for w, c in PYTHON
    ],
)
def test_python_example_runs(
    where: str, code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if "PureCloudPlatformClientV2" in code:
        require_module("PureCloudPlatformClientV2")
    with AuthServer() as server:
        monkeypatch.setenv("FRESHTOKEN_TOKEN_URL", server.token_url)
        monkeypatch.setenv("FRESHTOKEN_CLIENT_ID", "demo-client")
        monkeypatch.setenv("FRESHTOKEN_CLIENT_SECRET", "demo-secret")
        monkeypatch.setenv("FRESHTOKEN_STORE", f"sqlite://{tmp_path}/t.db")
        namespace = {
            "url": server.url + "/api/echo",
            "region": server.url,
            "token_url": server.token_url,
            "__name__": "example",
        }
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


def test_the_readme_opens_with_the_two_commands() -> None:
    first = SHELL[0][1]
    assert SHELL[0][0] == "README.md#1"
    assert [line.split()[0] for line in first.strip().splitlines()] == list(OPENING)
    assert "scripts/test.sh" in (ROOT / ".ci" / "run").read_text()


def test_trying_it_locally_reaches_a_first_token(tmp_path: Path) -> None:
    """The README's "Try it locally" block after its first command (the demo, which installs
    into .venv-demo): the shipped stand-in in the background, then a first token from it."""
    block = next(code for where, code in SHELL if "testserver" in code and "README" in where)
    first, rest = block.split("\n", 1)
    assert first.startswith("./scripts/demo.sh")
    port = str(free_port())
    code = rest.replace(".venv-demo/bin/", BIN + "/").replace("8400", port)
    out = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", "trap 'kill $(jobs -p)' EXIT\n" + code],
        env=cli_env(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1])["access_token"].startswith("at_")


def test_every_binding_is_used() -> None:
    shell = "\n".join(code for _, code in SHELL_EXAMPLES)
    assert SHELL_EXAMPLES and all(placeholder in shell for placeholder in BINDINGS)


def acl_redis(folder: Path) -> RedisProcess:
    folder.mkdir()
    return RedisProcess(
        folder,
        ("user", f"ci on >{REDIS_PASSWORD} ~freshtoken:* &* +@all"),
        ("user", "default off"),
    ).start()


@pytest.mark.parametrize(("where", "code"), SHELL_EXAMPLES, ids=[w for w, _ in SHELL_EXAMPLES])
def test_shell_example_runs(where: str, code: str, tmp_path: Path) -> None:
    """The block runs in bash, then `freshtoken token` in the same shell proves the
    configuration it set up works; a `npm run build` runs a real npm project calling the API."""
    if "npm " in code:
        require("npm")
        require("node")  # the build script the test's package.json runs
    (tmp_path / "client_secret").write_text("demo-secret\n")
    (tmp_path / "redis_password").write_text(REDIS_PASSWORD + "\n")
    (tmp_path / "store_key").write_text(base64.b64encode(os.urandom(32)).decode())
    for name in ("client_secret", "redis_password", "store_key"):
        (tmp_path / name).chmod(0o600)
    project = tmp_path / "project"
    project.mkdir()
    check = (
        "const e = process.env;"
        " fetch(e.FRESHTOKEN_PROXY_URL + '/api/v2/tokens/me',"
        " {headers: {'X-Freshtoken-Key': e.FRESHTOKEN_KEY}})"
        ".then(r => process.exit(r.status === 200 ? 0 : 1))"
    )
    (project / "package.json").write_text(
        json.dumps({"name": "build", "private": True, "scripts": {"build": f'node -e "{check}"'}})
    )
    with contextlib.ExitStack() as stack:
        redis = None
        if any(p in code for p, v in BINDINGS.items() if "{redis}" in v):
            redis = acl_redis(tmp_path / "redis")
            stack.callback(redis.stop)
        redis_url = redis.url.replace("redis://", "redis://ci@") if redis else ""
        for placeholder, value in BINDINGS.items():
            code = code.replace(placeholder, value.format(tmp=tmp_path, redis=redis_url))
        server = stack.enter_context(AuthServer())
        env = cli_env(
            tmp_path,
            None,
            FRESHTOKEN_TOKEN_URL=server.token_url,  # wins over the blocks' region
            FRESHTOKEN_PROXY_UPSTREAM=server.url,
        )
        if "FRESHTOKEN_CLIENT_ID" not in code:  # else the block sets the client itself
            env.update(FRESHTOKEN_CLIENT_ID="demo-client", FRESHTOKEN_CLIENT_SECRET="demo-secret")
        out = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", code + "\nfreshtoken token --format json"],
            env=env,
            cwd=project,
            capture_output=True,
            text=True,
            timeout=60,
        )
        stats = server.stats()
        keys = redis_keys(redis) if redis else []
    assert out.returncode == 0, (where, out.stdout, out.stderr)
    assert json.loads(out.stdout.strip().splitlines()[-1])["access_token"].startswith("at_")
    assert stats["tokens_minted"] >= 1 and stats["api_401"] == 0, stats
    if "npm run build" in code:
        assert stats["api_200"] >= 1, stats
    if redis:  # the token went to the test Redis, under freshtoken's prefix
        assert keys and all(k.startswith("freshtoken:") for k in keys), keys


def redis_keys(server: RedisProcess) -> list[str]:
    with redis_client.Redis(
        port=server.port, username="ci", password=REDIS_PASSWORD, decode_responses=True
    ) as client:
        return [str(k) for k in client.keys("*")]
