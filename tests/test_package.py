"""The package as users get it: the wheel and sdist built from this checkout, the wheel
installed into a clean virtual environment, and nothing of freshtoken loaded into pytest."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests._cli import cli_env

ROOT = Path(__file__).parent.parent
pytestmark = pytest.mark.slow  # builds, then installs into a fresh virtual environment


def run(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> str:
    out = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert out.returncode == 0, (args, out.stdout, out.stderr)
    return out.stdout + out.stderr


def test_the_built_wheel_installs_and_runs_from_a_clean_environment(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    dist = tmp_path / "dist"
    run([sys.executable, "-m", "build", "--outdir", str(dist), str(ROOT)], tmp_path, env)
    (wheel,) = dist.glob("freshtoken-0.1.0-*.whl")
    (sdist,) = dist.glob("freshtoken-0.1.0.tar.gz")

    with tarfile.open(sdist) as archive:  # what the tests read travels with them
        names = {n.split("/", 1)[1] for n in archive.getnames() if "/" in n}
    assert {"LICENSE", "README.md", "action.yml", "docs/configuration.md"} <= names
    assert {"tests/test_examples.py", "scripts/demo.sh", "docs/examples/keepalive.yml"} <= names
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read("freshtoken-0.1.0.dist-info/METADATA").decode()
        entry_points = archive.read("freshtoken-0.1.0.dist-info/entry_points.txt").decode()
    assert "License-Expression: Apache-2.0" in metadata
    assert "Classifier: Programming Language :: Python :: 3.11" in metadata
    assert "pytest11" not in entry_points  # nothing registers itself with pytest

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)], tmp_path, env)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    run([*pip, "--disable-pip-version-check", str(wheel), "pytest"], tmp_path, env)
    freshtoken = str(venv / "bin" / "freshtoken")
    assert "0.1.0" in run([freshtoken, "--version"], tmp_path, env)
    demo = run([freshtoken, "demo", "--duration", "4", "--ttl", "2", "--plain"], tmp_path, env)
    assert "freshtoken: 0 failed calls" in demo
    # The shipped stand-in from the plain install, and a first token from it.
    server = subprocess.Popen(
        [freshtoken, "testserver"], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        ready = json.loads(server.stdout.readline())
        first = {**env, "FRESHTOKEN_TOKEN_URL": ready["token_url"], "FRESHTOKEN_STORE": "memory://"}
        first |= {"FRESHTOKEN_CLIENT_ID": "demo-client", "FRESHTOKEN_CLIENT_SECRET": "demo-secret"}
        assert run([freshtoken, "token"], tmp_path, first).startswith("at_")
    finally:
        server.terminate()
        server.wait(timeout=10)

    project = tmp_path / "project"  # an empty project: its pytest loads no freshtoken plugin
    project.mkdir()
    (project / "test_nothing.py").write_text("def test_nothing() -> None:\n    pass\n")
    trace = run([str(venv / "bin" / "pytest"), "--trace-config", "-q"], project, env)
    assert "PLUGIN registered" in trace  # the trace is there, and names no freshtoken module
    assert "freshtoken" not in trace.replace(str(tmp_path), "")
