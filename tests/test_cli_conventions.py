"""Command-line conventions users know from gh, aws and gcloud (issue 13): JSON errors, env and
dotenv output, colour, the probe endpoint, `serve --print-env`, the CLI's default margin.
Every test runs the real command in a subprocess (a pseudo-terminal where colour matters)."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from freshtoken import Settings, TokenBroker
from freshtoken._token import COMMAND_LINE, RefreshPolicy, Token
from freshtoken.testing import AuthServer, FakeClock
from tests._cli import cli_env, ft, ft_started, sealed_env
from tests.helpers import wait_until

FT = [sys.executable, "-m", "freshtoken"]


def in_pty(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str]:
    """Run freshtoken with a pseudo-terminal as stdin, stdout and stderr: (exit code, output)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([*FT, *args], env=env, cwd=cwd, stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    return proc.wait(timeout=60), b"".join(chunks).decode()


def clean(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr + result.stdout


# -- item 3: --format json applies to errors ------------------------------------------------
def test_token_json_error_is_one_object_on_stderr(tmp_path: Path, server: AuthServer) -> None:
    env = cli_env(tmp_path, server, FRESHTOKEN_CLIENT_SECRET="wrong-secret-42")
    out = ft(["token", "--format", "json"], env, tmp_path)
    clean(out)
    assert out.returncode == 3 and out.stdout == ""
    error = json.loads(out.stderr)
    assert set(error) == {"error", "message", "hint", "exit_code"}
    assert error["error"] == "invalid_client" and error["exit_code"] == 3 and error["hint"]
    assert "wrong-secret-42" not in out.stderr
    text = ft(["token"], env, tmp_path)  # without json: the line and its hint, as before
    assert text.returncode == 3 and text.stderr.startswith("freshtoken: ")
    assert "\nhint: " in text.stderr


def test_json_error_from_a_missing_parent_endpoint(tmp_path: Path) -> None:
    # The fast path (no click): the parent `exec` is gone.
    env = cli_env(tmp_path, None, FRESHTOKEN_URL="http://127.0.0.1:9", FRESHTOKEN_KEY="k" * 20)
    out = ft(["token", "--format", "json"], env, tmp_path)
    clean(out)
    error = json.loads(out.stderr)
    assert out.returncode == 4 == error["exit_code"]
    assert error["error"] == "local_endpoint_unavailable" and "exec" in error["hint"]
    assert "k" * 20 not in out.stderr


def test_status_json_error(tmp_path: Path) -> None:
    env = cli_env(tmp_path, None, FRESHTOKEN_STORE="bogus://x")
    out = ft(["status", "--format", "json"], env, tmp_path)
    clean(out)
    error = json.loads(out.stderr)
    assert out.returncode == 2 == error["exit_code"] and error["message"]


def test_doctor_json_failure_also_on_stderr(tmp_path: Path, server: AuthServer) -> None:
    env = cli_env(tmp_path, server, FRESHTOKEN_CLIENT_SECRET="wrong-secret-42")
    out = ft(["doctor", "--format", "json"], env, tmp_path)
    clean(out)
    assert out.returncode == 1
    assert any(c["state"] == "fail" for c in json.loads(out.stdout))  # the checklist
    error = json.loads(out.stderr)
    assert error["exit_code"] == 1 and error["error"] == "checks_failed" and error["hint"]
    assert "wrong-secret-42" not in out.stdout + out.stderr


# -- item 4: env and dotenv ----------------------------------------------------------------
def test_env_format_evals_in_a_shell(tmp_path: Path, server: AuthServer) -> None:
    env = cli_env(tmp_path, server)
    raw = ft(["token"], env, tmp_path).stdout.strip()
    script = 'eval "$(freshtoken token --format env)" && printf %s "$FRESHTOKEN_ACCESS_TOKEN"'
    shell = subprocess.run(
        ["sh", "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert shell.returncode == 0, shell.stderr
    assert shell.stdout == raw
    assert ft(["token", "--format", "env"], env, tmp_path).stdout == (
        f"export FRESHTOKEN_ACCESS_TOKEN={raw}\n"
    )
    dotenv = ft(["token", "--format", "dotenv"], env, tmp_path)
    assert dotenv.returncode == 0 and dotenv.stdout == f"FRESHTOKEN_ACCESS_TOKEN={raw}\n"


def test_shell_quote_round_trips() -> None:
    from freshtoken.cli._formats import export_line

    for value in ("plain", "with space", "it's", "$(rm -rf /)", 'a"b`c', ""):
        shell = subprocess.run(
            ["sh", "-c", f'{export_line("V", value)}; printf %s "$V"'],
            capture_output=True,
            text=True,
            check=True,
        )
        assert shell.stdout == value


# -- item 2 and 5: colour, and status ------------------------------------------------------
@pytest.mark.slow
def test_status_colour_only_on_a_terminal_without_no_color(
    tmp_path: Path, server: AuthServer
) -> None:
    env = cli_env(tmp_path, server)
    env.pop("NO_COLOR", None)
    env["TERM"] = "xterm"
    assert ft(["token"], env, tmp_path).returncode == 0
    code, coloured = in_pty(["status"], env, tmp_path)
    assert code == 0 and "\x1b[" in coloured
    for extra, args in (({"NO_COLOR": "1"}, ["status"]), ({}, ["--color", "never", "status"])):
        code, plain = in_pty(args, {**env, **extra}, tmp_path)
        assert code == 0 and "\x1b" not in plain, args
        assert "store: sqlite:///" in plain and "KEY" in plain
    piped = ft(["status"], env, tmp_path)
    assert piped.returncode == 0 and "\x1b" not in piped.stdout
    forced = ft(["--color", "always", "status"], env, tmp_path)
    assert "\x1b[" in forced.stdout


@pytest.mark.slow
def test_status_table_fits_80_columns_and_marks_expired(tmp_path: Path) -> None:
    with AuthServer(ttl=1) as server:
        env = cli_env(tmp_path, server)
        assert ft(["token", "--min-ttl", "0"], env, tmp_path).returncode == 0
        import time

        time.sleep(1.5)
        out = ft(["status"], env, tmp_path)
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert lines[0].startswith("store: sqlite:///") and "SQLiteStore" not in out.stdout
        assert lines[1].split()[:3] == ["KEY", "PROFILE", "EXPIRES"]
        assert "EXPIRED" in lines[2] and "this" in lines[2]
        assert all(len(line) <= 80 for line in lines[1:])
        data = json.loads(ft(["status", "--format", "json"], env, tmp_path).stdout)
        assert data["store"].startswith("sqlite:///") and data["entries"][0]["expired"]


def test_status_shows_no_store_password(tmp_path: Path) -> None:
    from freshtoken.cli._status import store_url
    from freshtoken.config._settings import Settings

    class Shown:
        pass

    settings = Settings.load(environ={"FRESHTOKEN_STORE": "redis://ci:pw-42@h:6379/0"})
    assert store_url(settings, Shown()) == "redis://ci:***@h:6379/0"  # type: ignore[arg-type]


# -- item 13: the command line's default margin --------------------------------------------
def test_cli_margin_is_225_s_or_half_the_lifetime() -> None:
    day = Token("t", "Bearer", expires_at=86400.0, issued_at=0.0)
    short = Token("t", "Bearer", expires_at=4.0, issued_at=0.0)
    assert COMMAND_LINE.min_ttl_for(day) == 225 and COMMAND_LINE.min_ttl_for(short) == 2
    assert RefreshPolicy().min_ttl_for(day) == 5  # the library default stays


def test_cli_broker_mints_before_handing_out_a_token_with_little_left(
    server: AuthServer, clock: FakeClock
) -> None:
    server.configure(ttl=600)  # refresh window: 150 s before expiry; CLI margin: 225 s
    broker = TokenBroker.client_credentials(
        token_url=server.token_url,
        client_id="demo-client",
        client_secret="demo-secret",
        refresh=COMMAND_LINE,
        clock=clock,
    )
    first = broker.token()
    clock.advance(400)  # 200 s left: enough for the library's 5 s, not for a shell step
    assert broker.token().access_token != first.access_token


def test_short_test_tokens_still_work_from_the_cli(tmp_path: Path) -> None:
    with AuthServer(ttl=4) as server:
        env = cli_env(tmp_path, server)
        first = ft(["token"], env, tmp_path)
        again = ft(["token"], env, tmp_path)
        assert first.returncode == again.returncode == 0, first.stderr + again.stderr
        assert first.stdout == again.stdout  # a 4-s token is shared (margin: 2 s)


# -- item 9: serve ---------------------------------------------------------------------------
def test_healthz_answers_probes_without_the_key(tmp_path: Path, server: AuthServer) -> None:
    env = cli_env(tmp_path, server)
    proc = subprocess.Popen(
        [*FT, "-q", "serve"], env=env, cwd=tmp_path, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        ready = json.loads(proc.stdout.readline())
        assert "$(cat " in ready["usage"] and ready["key_file"] in ready["usage"]
        health = httpx.get(ready["url"] + "/healthz")
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        assert httpx.get(ready["url"] + "/token").status_code == 401
        assert httpx.get(ready["url"] + "/metrics").status_code == 401
        key = Path(ready["key_file"]).read_text()
        shell = subprocess.run(
            ["sh", "-c", ready["usage"].replace("curl ", "curl -s ", 1) + "?format=raw"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert shell.stdout.startswith("at_") or shell.stdout.strip(), shell.stderr
        assert key not in json.dumps(ready)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_serve_print_env(tmp_path: Path, server: AuthServer) -> None:
    env = cli_env(tmp_path, server)
    proc = subprocess.Popen(
        [*FT, "-q", "serve", "--proxy", server.url, "--print-env"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(3)]
        assert [line.split("=")[0] for line in lines] == [
            "export FRESHTOKEN_URL",
            "export FRESHTOKEN_KEY",
            "export FRESHTOKEN_PROXY_URL",
        ]
        script = "".join(lines) + "freshtoken token --format header"
        shell = subprocess.run(
            ["sh", "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
        assert shell.returncode == 0, shell.stderr
        assert shell.stdout.startswith("Authorization: Bearer ")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_serve_help_says_how_to_read_the_key(tmp_path: Path) -> None:
    out = ft(["serve", "--help"], cli_env(tmp_path), tmp_path)
    assert "$(cat" in out.stdout and "--print-env" in out.stdout and "/healthz" in out.stdout


# -- item 11: a mistyped exec ----------------------------------------------------------------
def test_exec_without_dashes_shows_the_right_form(tmp_path: Path, server: AuthServer) -> None:
    env = cli_env(tmp_path, server)
    swallowed = ft(["exec", "--proxy", "npm", "run", "build"], env, tmp_path)
    clean(swallowed)
    assert swallowed.returncode == 2
    assert "freshtoken exec --proxy -- npm run build" in swallowed.stderr
    nothing = ft(["exec"], env, tmp_path)
    clean(nothing)
    assert nothing.returncode == 2 and "-- COMMAND" in nothing.stderr
    no_upstream = ft(["exec", "--proxy", "--", "true"], env, tmp_path)
    clean(no_upstream)
    assert no_upstream.returncode == 2
    assert "freshtoken exec --proxy https://api.example.com -- COMMAND" in no_upstream.stderr
    assert "demo-secret" not in swallowed.stderr + nothing.stderr + no_upstream.stderr


# -- item 1: completion ----------------------------------------------------------------------
def test_completion_scripts(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    for shell in ("bash", "zsh", "fish"):
        out = ft(["completion", shell], env, tmp_path)
        assert out.returncode == 0 and "_FRESHTOKEN_COMPLETE" in out.stdout, shell
    words = {**env, "_FRESHTOKEN_COMPLETE": "bash_complete", "COMP_WORDS": "freshtoken to"}
    answer = ft([], {**words, "COMP_CWORD": "1"}, tmp_path)
    assert "plain,token" in answer.stdout.splitlines()
    assert ft(["completion", "tcsh"], env, tmp_path).returncode == 2


# -- item 7: offline_access with the Genesys preset -------------------------------------------
def test_token_warns_once_about_offline_access_for_genesys(tmp_path: Path) -> None:
    with AuthServer.genesys(ttl=300) as server:
        env = cli_env(
            tmp_path, server, FRESHTOKEN_REGION="eu_west_1", FRESHTOKEN_SCOPE="offline_access"
        )
        out = ft(["token"], env, tmp_path)
        clean(out)
        assert out.stderr.count("offline_access is not a Genesys Cloud scope") == 1
        quiet = ft(["token"], {**env, "FRESHTOKEN_SCOPE": ""}, tmp_path)
        assert "offline_access" not in quiet.stderr


# -- item 6: doctor --------------------------------------------------------------------------
def test_doctor_stops_after_a_name_that_does_not_resolve(tmp_path: Path) -> None:
    import time

    env = cli_env(
        tmp_path,
        None,
        FRESHTOKEN_TOKEN_URL="https://no-such-host.invalid/oauth/token",
        FRESHTOKEN_CLIENT_ID="demo-client",
        FRESHTOKEN_CLIENT_SECRET="demo-secret",
    )
    started = time.monotonic()
    out = ft(["doctor", "--format", "json"], env, tmp_path)
    clean(out)
    assert time.monotonic() - started < 15  # no retrying for the whole budget
    checks = json.loads(out.stdout)
    assert checks[-1]["title"] == "no-such-host.invalid does not resolve"
    assert out.returncode == 1 == json.loads(out.stderr)["exit_code"]


def test_doctor_checks_store_and_margin(tmp_path: Path, server: AuthServer) -> None:
    env = cli_env(tmp_path, server)
    good = ft(["doctor"], env, tmp_path)
    assert good.returncode == 0, good.stdout
    assert "✓ the store is writable" in good.stdout
    assert "✓ a margin of 225 s fits the 3600-s lifetime" in good.stdout
    too_long = ft(["doctor", "--min-ttl", "4000"], env, tmp_path)
    assert too_long.returncode == 1 and "does not fit a token living 3600 s" in too_long.stdout


# -- item 10: -v says what minted, never a token --------------------------------------------
def test_verbose_logs_each_mint_in_one_line(tmp_path: Path, server: AuthServer) -> None:
    env = cli_env(tmp_path, server)
    out = ft(["-v", "token", "--format", "json"], env, tmp_path)
    assert out.returncode == 0, out.stderr
    token = json.loads(out.stdout)["access_token"]
    [line] = [x for x in out.stderr.splitlines() if "minted a token" in x]
    assert "client demo-client" in line and "lives 3600s" in line and "none held" in line
    assert token not in out.stderr and "demo-secret" not in out.stderr
    shared = ft(["-v", "token", "--min-ttl", "3000"], env, tmp_path)  # from the store
    assert "adopted a token another holder stored for client demo-client" in shared.stderr
    again = ft(["-v", "token", "--min-ttl", "3599.9"], env, tmp_path)  # too close: a new one
    assert "too close to expiry for min_ttl 3599.9s" in again.stderr
    assert token not in shared.stderr + again.stderr


def test_relative_paths_in_a_configuration_file_mean_next_to_it(
    tmp_path: Path, server: AuthServer
) -> None:
    folder = tmp_path / "conf"
    folder.mkdir()
    (folder / "secret.txt").write_text("demo-secret\n")
    config = folder / "freshtoken.toml"
    config.write_text(
        f'[default]\ntoken_url = "{server.token_url}"\nclient_id = "demo-client"\n'
        'client_secret_file = "secret.txt"\nstore = "sqlite:tokens/t.db"\n'
    )
    config.chmod(0o600)
    elsewhere = tmp_path / "work"
    elsewhere.mkdir()
    env = cli_env(tmp_path, FRESHTOKEN_CONFIG=str(config))
    out = ft(["token"], env, elsewhere)
    assert out.returncode == 0, out.stderr
    assert (folder / "tokens" / "t.db").exists() and not (elsewhere / "tokens").exists()


def test_vv_logs_each_http_exchange_without_secrets(tmp_path: Path, server: AuthServer) -> None:
    out = ft(["-vv", "token"], cli_env(tmp_path, server), tmp_path)
    assert out.returncode == 0, out.stderr
    assert f"POST {server.token_url} -> HTTP 200" in out.stderr
    assert out.stdout.strip() not in out.stderr and "demo-secret" not in out.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("args", [["token"], ["-v", "token"]], ids=["shortcut", "click"])
def test_ctrl_c_during_token_exits_130(tmp_path: Path, args: list[str]) -> None:
    """Ctrl-C while a token is minted: 130 (128 + SIGINT) as shells expect, not 1."""
    with AuthServer(latency=30.0) as server:
        caller = ft_started(args, cli_env(tmp_path, server), tmp_path)
        wait_until(lambda: bool(server.stats()["inflight_ages"]))  # the mint reached it
        caller.send_signal(signal.SIGINT)
        out, err = caller.communicate(timeout=20)
        server.configure(latency=0.0)
    assert caller.returncode == 130, err
    assert out == "" and "Traceback" not in err and "Aborted!" not in err


def test_a_token_from_another_hosts_future_is_warned_about_once_per_call(
    tmp_path: Path,
) -> None:
    """A host whose clock is 120 s ahead stored the token: one warning, not one per look."""
    import time

    with AuthServer(ttl=3600) as server:
        env = sealed_env(tmp_path, server)
        settings = Settings.load(environ=env, cwd=tmp_path)
        ahead = FakeClock(time.time() + 120)
        with TokenBroker.from_settings(settings, clock=ahead) as broker:
            broker.token()
        out = ft(["token"], env, tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stderr.count("in this machine's future") == 1, out.stderr  # before: 3
