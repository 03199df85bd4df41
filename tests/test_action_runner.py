"""Issue 12, item 4: the composite action run the way a runner runs it.

Every step of action.yml in order, its `${{ inputs.* }}` and `${{ runner.temp }}` substituted,
with $GITHUB_ENV, $GITHUB_PATH and $GITHUB_OUTPUT honoured between steps, then a later step that
uses only what the action exported. The runner's Python is a stand-in that must stay untouched.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from freshtoken import AuthorizationCode, RefreshTokenGrant
from freshtoken.testing import GITHUB_TEST_TOKEN, AuthServer, GitHubSecrets
from tests._attack import hostile_environment
from tests._cli import cli_env
from tests.helpers import assert_no_leak, make_client, stop_process

ROOT = Path(__file__).parent.parent
EXPR = re.compile(r"\$\{\{\s*([\w.-]+)\s*\}\}")
SINK = "github-secret://acme/pipeline/FT_REFRESH"
pytestmark = pytest.mark.slow  # installs the package into a fresh virtual environment


def _scalar(text: str) -> str:
    text = text.strip()
    if text[:1] in "\"'" and text[-1:] == text[:1]:
        return text[1:-1]
    return text


def read_action() -> tuple[dict[str, str], list[dict[str, object]]]:
    """Input defaults and steps of action.yml (the subset of YAML it uses; anything else in
    a step fails the test)."""
    lines = [ln for ln in (ROOT / "action.yml").read_text().splitlines() if ln.strip()]
    defaults: dict[str, str] = {}
    steps: list[dict[str, object]] = []
    section, current_input = "", ""
    step: dict[str, object] | None = None
    for line in lines:
        if line.lstrip().startswith("#"):
            continue
        indent = len(line) - len(line.lstrip())
        if indent == 0:
            section = line.rstrip(":")
        elif section == "inputs" and indent == 2:
            current_input = line.strip().rstrip(":")
            defaults[current_input] = ""
        elif section == "inputs" and indent == 4 and line.strip().startswith("default:"):
            defaults[current_input] = _scalar(line.split(":", 1)[1])
        elif section == "runs" and line.startswith("    - "):
            step = {"env": {}}
            steps.append(step)
            key, _, value = line[6:].partition(":")
            step[key] = _scalar(value)
        elif section == "runs" and step is not None and indent == 6:
            key, _, value = line.strip().partition(":")
            assert key in ("name", "id", "shell", "working-directory", "env", "run"), key
            if key != "env":
                step[key] = _scalar(value)
        elif section == "runs" and step is not None and indent == 8:
            key, _, value = line.strip().partition(":")
            env = step["env"]
            assert isinstance(env, dict)
            env[key] = _scalar(value)
    return defaults, steps


def _pairs(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    return dict(ln.split("=", 1) for ln in path.read_text().splitlines() if "=" in ln)


class Runner:
    """Runs the action's steps as a runner does, then later steps of the job."""

    def __init__(self, tmp: Path, base_env: dict[str, str]) -> None:
        self.tmp, self.base_env = tmp, base_env
        self.temp = tmp / "runner-temp"
        self.temp.mkdir(exist_ok=True)
        self.files = {n: tmp / f"github-{n}" for n in ("env", "path", "output")}
        self.outputs: dict[str, dict[str, str]] = {}

    def env(self, extra: dict[str, str]) -> dict[str, str]:
        env = {**self.base_env, **_pairs(self.files["env"]), **extra}
        paths = self.files["path"].read_text().split() if self.files["path"].exists() else []
        env["PATH"] = os.pathsep.join([*reversed(paths), env["PATH"]])
        env.update({f"GITHUB_{n.upper()}": str(p) for n, p in self.files.items()})
        env["RUNNER_TEMP"] = str(self.temp)
        env["GITHUB_ACTIONS"] = "true"
        return env

    def run(
        self, script: str, extra: dict[str, str], cwd: Path
    ) -> subprocess.CompletedProcess[str]:
        self.files["output"].write_text("")
        return subprocess.run(
            ["bash", "-e", "-c", script],
            env=self.env(extra),
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=600,
        )

    def use_action(self, action: Path, inputs: dict[str, str]) -> list[str]:
        defaults, steps = read_action()
        given = {**defaults, **inputs}
        printed: list[str] = []

        def sub(text: str) -> str:
            def one(m: re.Match[str]) -> str:
                what = m.group(1)
                if what == "runner.temp":
                    return str(self.temp)
                assert what.startswith("inputs."), what
                return given[what.removeprefix("inputs.")]

            return EXPR.sub(one, text)

        for step in steps:
            assert step["shell"] == "bash"
            env = {k: sub(str(v)) for k, v in dict(step["env"]).items()}  # type: ignore[call-overload]
            env["GITHUB_ACTION_PATH"] = str(action)
            cwd = Path(sub(str(step.get("working-directory", str(self.tmp)))))
            done = self.run(sub(str(step["run"])), env, cwd)
            assert done.returncode == 0, f"{step['name']}:\n{done.stdout}\n{done.stderr}"
            printed += done.stdout.splitlines()
            if "id" in step:
                self.outputs[str(step["id"])] = _pairs(self.files["output"])
        return printed


def _site_packages(python: Path) -> dict[str, float]:
    root = Path(
        subprocess.check_output(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            text=True,
        ).strip()
    )
    return {str(p): p.stat().st_mtime for p in root.rglob("*")}


def _checkout(tmp_path: Path) -> Path:
    """The action's checkout (a copy: building it must not write into this worktree)."""
    action = tmp_path / "action"
    listed = subprocess.check_output(["git", "ls-files"], cwd=ROOT, text=True).split()
    for name in listed:
        if (ROOT / name).is_file():
            (action / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, action / name)
    return action


def _runner_python(tmp_path: Path) -> Path:
    """The runner's Python: a stand-in whose site-packages must not change."""
    runner_py = tmp_path / "runner-python"
    subprocess.run([sys.executable, "-m", "venv", str(runner_py)], check=True)
    return runner_py


def _base_env(tmp_path: Path, runner_py: Path, **extra: str) -> dict[str, str]:
    base = cli_env(tmp_path, PATH=f"{runner_py / 'bin'}{os.pathsep}{os.environ['PATH']}", **extra)
    base.pop("VIRTUAL_ENV", None)
    return base


def test_the_action_as_a_runner_runs_it(tmp_path: Path) -> None:
    action = _checkout(tmp_path)
    runner_py = _runner_python(tmp_path)
    before = _site_packages(runner_py / "bin" / "python3")
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    (workspace / "freshtoken.toml").write_text('[default]\ntoken_url = "https://evil.test/t"\n')
    with AuthServer.genesys(ttl=300) as server:
        base = _base_env(tmp_path, runner_py)
        # The workflow's `env: PYTHONPATH: src`, a pull request's click.py, json.py and
        # sitecustomize.py there, and a PYTHONSTARTUP (issue 23): none runs in serve.
        hostile, ran = hostile_environment(tmp_path, "demo-secret", site=True)
        base.update(hostile)
        runner = Runner(tmp_path, base)
        printed = runner.use_action(
            action,
            {
                "provider": "genesys",
                "token-url": server.token_url,
                "api-url": server.url,
                "client-id": "demo-client",
                "client-secret": "demo-secret",
                "margin": "200",
            },
        )
        exported = _pairs(runner.files["env"])
        pid = int(exported["FRESHTOKEN_SERVE_PID"])
        try:
            key = exported["FRESHTOKEN_KEY"]
            assert f"::add-mask::{key}" in printed
            assert runner.outputs["serve"]["url"] == exported["FRESHTOKEN_URL"]
            assert runner.outputs["serve"]["proxy-url"] == exported["FRESHTOKEN_PROXY_URL"]
            assert "demo-secret" not in "\n".join(printed)
            later_config = Path(exported["FRESHTOKEN_CONFIG"]).read_text()
            assert "demo-secret" not in later_config
            assert "min_ttl = 200.0" in later_config  # the margin input, for later steps too
            # A later step: only what the action exported, no secret in its environment.
            later = runner.run(
                "command -v freshtoken\n"
                "freshtoken token\n"
                "freshtoken status --format json\n"
                'curl -sf -H "X-Freshtoken-Key: $FRESHTOKEN_KEY" '
                '"$FRESHTOKEN_PROXY_URL/api/v2/tokens/me"\n',
                {},
                workspace,
            )
            assert later.returncode == 0, later.stderr
            where, token, status, me = later.stdout.strip().splitlines()
            assert f"::add-mask::{token}" in later.stderr  # masked before it was printed
            assert where.startswith(str(runner.temp / "freshtoken-venv-"))
            headers = {"Authorization": f"Bearer {token}"}
            assert httpx.get(server.url + "/api/v2/tokens/me", headers=headers).status_code == 200
            assert json.loads(status)["entries"]  # the same store as serve
            assert json.loads(me)["id"] == "demo-client"
            assert server.stats()["tokens_minted"] == 1  # the evil.test file was not read
            # Used again in the same job: the virtual environment is reused, not reinstalled.
            venv = Path(where).parent.parent
            stamp = (venv / "bin" / "freshtoken").stat().st_mtime
            again = runner.run(
                'bash "$GITHUB_ACTION_PATH/scripts/action-install.sh"',
                {"GITHUB_ACTION_PATH": str(action)},
                runner.temp,
            )
            assert again.returncode == 0, again.stderr
            assert (venv / "bin" / "freshtoken").stat().st_mtime == stamp
        finally:
            stop_process(pid)
    # Later steps' `freshtoken` (the console script, without the secret) may import them.
    records = [line.split() for line in ran.read_text().splitlines()] if ran.exists() else []
    assert not [r for r in records if r[1] == str(pid) or r[2] == "True"], records
    assert _site_packages(runner_py / "bin" / "python3") == before  # the runner's Python untouched


def test_the_action_with_a_refresh_token_writes_every_rotation_back(tmp_path: Path) -> None:
    """The refresh-token workflow through the action: the grant, seed and sink inputs; the
    serve it starts spends the seed once and writes the rotated token to the GitHub secret
    (the shipped stand-in) before a later step gets the access token; no refresh token is
    printed, exported or written to the later steps' configuration."""
    action = _checkout(tmp_path)
    runner_py = _runner_python(tmp_path)
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    with AuthServer(ttl=300) as server, GitHubSecrets() as github:
        seed = make_client(server).fetch(AuthorizationCode(server.issue_code("demo-client")))
        assert seed.refresh_token
        github.set_value(SINK, seed.refresh_token)
        runner = Runner(tmp_path, _base_env(tmp_path, runner_py, GITHUB_API_URL=github.url))
        printed = runner.use_action(
            action,
            {
                "token-url": server.token_url,
                "api-url": server.url,  # the proxy's upstream
                "client-id": "demo-client",
                "client-secret": "demo-secret",
                "grant": "refresh_token",
                "refresh-token": seed.refresh_token,
                "refresh-token-sink": SINK,
                "github-token": GITHUB_TEST_TOKEN,
            },
        )
        exported = _pairs(runner.files["env"])
        pid = int(exported["FRESHTOKEN_SERVE_PID"])
        try:
            later = runner.run("freshtoken token\n", {}, workspace)
            assert later.returncode == 0, later.stderr
            token = later.stdout.strip()
            headers = {"Authorization": f"Bearer {token}"}
            assert httpx.get(server.url + "/api/v2/tokens/me", headers=headers).status_code == 200
            grants = [r["form"]["grant_type"] for r in server.token_requests()]
            assert grants == ["authorization_code", "refresh_token"]  # the seed's login, one spend
            rotated = github.value(SINK)
            assert rotated and rotated != seed.refresh_token
            assert server.active_refresh_tokens("demo-client") == 1  # the written one lives
            # The rotated token works: the next run, seeded from the secret, can spend it.
            assert make_client(server).fetch(RefreshTokenGrant(rotated)).access_token
            seen = "\n".join(
                line
                for line in [
                    *printed,
                    *later.stderr.splitlines(),
                    runner.files["env"].read_text(),
                    Path(exported["FRESHTOKEN_CONFIG"]).read_text(),
                ]
                if not line.startswith("::add-mask::")  # the runner's mask, never shown
            )
            assert_no_leak("the action's output", seen, seed.refresh_token, rotated, "demo-secret")
            assert GITHUB_TEST_TOKEN not in seen
            # The grant input: with the chain broken (a logout), a call through the proxy is
            # refused and no client-credentials token stands in for the user's.
            server.revoke_all()
            refused = runner.run(
                'curl -s -o /dev/null -w "%{http_code}" -H "X-Freshtoken-Key: $FRESHTOKEN_KEY" '
                '"$FRESHTOKEN_PROXY_URL/api/v2/tokens/me"\n',
                {},
                workspace,
            )
            assert refused.stdout != "200", refused.stderr
            grants = [r["form"]["grant_type"] for r in server.token_requests()]
            assert "client_credentials" not in grants, grants
        finally:
            stop_process(pid)


def test_every_input_becomes_a_known_setting_and_is_documented() -> None:
    """An input whose variable no setting reads would be dropped without a word; an input the
    docs do not name cannot be found."""
    from freshtoken.config._load import unknown_variables

    text = (ROOT / "action.yml").read_text()
    passed = dict(re.findall(r"(FRESHTOKEN_[A-Z_]+): \$\{\{ inputs\.([a-z-]+) \}\}", text))
    assert len(passed) > 30
    assert unknown_variables(dict.fromkeys(passed, "x")) == []
    documented = (ROOT / "docs" / "github-action.md").read_text()
    missing = [name for name in passed.values() if f"`{name}`" not in documented]
    assert missing == []
