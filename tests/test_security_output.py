"""What freshtoken prints: a Redis password in the store URL (doctor, exec children), and text a
hostile token endpoint chooses (workflow commands for CI logs, echoed encodings of the
credential)."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote_plus

import pytest
import redis

from freshtoken.testing import AuthServer
from tests._attack import Listener, http_answer
from tests._cli import cli_env, ft
from tests._redis import RedisProcess

REDIS_PASSWORD = "canary-redis-pw-9b3f1a"
STORE_KEY = "S2V5S2V5S2V5S2V5S2V5S2V5S2V5S2V5S2V5S2V5S2U="
# A secret with characters that form and URL encoding change.
ODD_SECRET = "canary secret/+=&7c1e"


@pytest.fixture
def acl_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    folder = tmp_path / "redis"
    folder.mkdir()
    process = RedisProcess(
        folder,
        ("user", f"ci on >{REDIS_PASSWORD} ~freshtoken:* &* +@all"),
        ("user", "default off"),
    ).start()
    yield process
    process.stop()


@pytest.mark.slow
@pytest.mark.parametrize("where", ["userinfo", "query"])
def test_the_redis_password_in_the_store_url_is_never_shown(
    tmp_path: Path, server: AuthServer, acl_redis: RedisProcess, where: str
) -> None:
    """In the userinfo (`redis://ci:PW@host`) or the query (`?password=PW`, which redis-py
    honours too): doctor, status and errors show the URL with `***` for the password."""
    at = f"127.0.0.1:{acl_redis.port}/0"
    if where == "userinfo":
        store, shown = f"redis://ci:{REDIS_PASSWORD}@{at}", f"redis://ci:***@{at}"
    else:
        store = f"redis://{at}?username=ci&password={REDIS_PASSWORD}"
        shown = f"redis://{at}?username=ci&password=***"
    env = cli_env(tmp_path, server, FRESHTOKEN_STORE=store, FRESHTOKEN_STORE_KEY=STORE_KEY)
    doctor = ft(["-vv", "doctor"], env, tmp_path)
    child = ft(["-vv", "exec", "--", "env"], env, tmp_path)
    status = ft(["-vv", "status", "--format", "json"], env, tmp_path)
    # A wrong password: the error names the store, not the password.
    wrong = ft(
        ["-vv", "token"],
        {**env, "FRESHTOKEN_STORE": store.replace("pw", "px"), "FRESHTOKEN_STORE_FAIL": "closed"},
        tmp_path,
    )
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert f"store = {shown}" in doctor.stdout
    assert json.loads(status.stdout)["store"] == shown
    assert child.returncode == 0, child.stderr
    assert "FRESHTOKEN_STORE=" not in child.stdout and "FRESHTOKEN_URL=" in child.stdout
    assert status.returncode == 0 and json.loads(status.stdout)["entries"]
    assert wrong.returncode == 2  # wrong credentials are a configuration error, not an outage
    for out in (doctor, child, status, wrong):
        assert REDIS_PASSWORD not in out.stdout + out.stderr
        assert REDIS_PASSWORD.replace("pw", "px") not in out.stdout + out.stderr


def _hostile_answers(client_id: str, secret: str) -> list[bytes]:
    basic = base64.b64encode(f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()).decode()
    injected = "\n::warning::injected by the server\r\n::add-mask::x\u2028::error::y"
    return [
        http_answer(
            401,
            json.dumps(
                {"error": "invalid_client" + injected, "error_description": f"got {basic}"}
            ).encode(),
        ),
        http_answer(
            400,
            json.dumps(
                {
                    "error": "invalid_request",
                    "error_description": f"form had {quote_plus(secret)}{injected}",
                }
            ).encode(),
        ),
        http_answer(502, f"<html>upstream said {basic}{injected}</html>".encode()),
        http_answer(302, b"", f"Location: http://127.0.0.1/x{basic}\u0085::warning::z"),
    ]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_server_text_cannot_write_ci_log_commands_nor_echo_the_credential(
    tmp_path: Path, method: str
) -> None:
    basic = base64.b64encode(f"demo-client:{quote_plus(ODD_SECRET)}".encode()).decode()
    for answer in _hostile_answers("demo-client", ODD_SECRET):
        with Listener(answer) as endpoint:
            env = cli_env(
                tmp_path,
                FRESHTOKEN_TOKEN_URL=endpoint.url + "/oauth/token",
                FRESHTOKEN_CLIENT_ID="demo-client",
                FRESHTOKEN_CLIENT_SECRET=ODD_SECRET,
                FRESHTOKEN_AUTH_METHOD=method,
                FRESHTOKEN_RETRY_BUDGET="0.5",
            )
            out = ft(["-vv", "token"], env, tmp_path)
            assert endpoint.connections >= 1  # the answer was really given
        printed = out.stdout + out.stderr
        assert out.returncode != 0
        assert not re.search(r"(?m)^\s*::", printed), printed
        assert "\u2028" not in printed and "\u0085" not in printed
        sent = (ODD_SECRET, quote_plus(ODD_SECRET), *([basic] if "basic" in method else []))
        for form in sent:  # every form in which the secret was sent
            assert form not in printed, (form, printed)


def test_the_documented_redis_acl_keeps_other_writers_off_the_entries(
    tmp_path: Path, server: AuthServer
) -> None:
    """docs/security.md's ACL: freshtoken works with exactly those rights, and another user of
    the same Redis (the writer that could roll back or delete a rotating login's entry) cannot
    read, delete, overwrite or replace freshtoken's keys."""
    folder = tmp_path / "redis"
    folder.mkdir()
    process = RedisProcess(
        folder,
        (
            "user",
            f"freshtoken on >{REDIS_PASSWORD} resetkeys ~freshtoken:* resetchannels -@all "
            "+@read +@write +@scripting +ping +info",
        ),
        ("user", "other on >other-pw resetkeys ~other:* -@all +@read +@write +@keyspace"),
        ("user", "default off"),
    ).start()
    try:
        at = f"127.0.0.1:{process.port}/0"
        env = cli_env(
            tmp_path,
            server,
            FRESHTOKEN_STORE=f"redis://freshtoken@{at}",
            FRESHTOKEN_REDIS_PASSWORD=REDIS_PASSWORD,
            FRESHTOKEN_STORE_KEY=STORE_KEY,
            FRESHTOKEN_STORE_FAIL="closed",
        )
        first, again = (ft(["token"], env, tmp_path) for _ in range(2))
        assert first.returncode == 0, first.stderr
        assert again.stdout == first.stdout and server.stats()["tokens_minted"] == 1
        owner = redis.Redis.from_url(f"redis://freshtoken:{REDIS_PASSWORD}@{at}")
        keys = list(owner.scan_iter(match="freshtoken:*"))
        owner.close()
        assert keys
        other = redis.Redis.from_url(f"redis://other:other-pw@{at}")
        attacks: list[Callable[[], object]] = [
            lambda: other.delete(*keys),
            lambda: other.set(keys[0], b"junk"),
            lambda: other.restore(keys[0], 0, b"x", replace=True),
            lambda: other.get(keys[0]),
        ]
        for attack in attacks:
            with pytest.raises(redis.exceptions.NoPermissionError):
                attack()
        other.close()
        assert ft(["token"], env, tmp_path).stdout == first.stdout
    finally:
        process.stop()
