from __future__ import annotations

import os
from pathlib import Path

import pytest

from freshtoken import ConfigurationError, Settings, _build
from freshtoken.config._options import BY_KEY
from tests.helpers import CANARY_SECRET


def test_from_env_reads_every_name(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(CANARY_SECRET + "\n")
    settings = Settings.from_env(
        {
            "FRESHTOKEN_TOKEN_URL": "https://login.example.com/oauth/token",
            "FRESHTOKEN_CLIENT_ID": "cid",
            "FRESHTOKEN_CLIENT_SECRET_FILE": str(secret_file),
            "FRESHTOKEN_SCOPE": "  read   write ",
            "FRESHTOKEN_AUTH_METHOD": "client_secret_post",
            "FRESHTOKEN_RETRY_BUDGET": "12",
        }
    )
    assert settings.client_secret is not None
    assert settings.client_secret.reveal() == CANARY_SECRET
    assert settings.scope == ("read", "write")
    assert settings.auth_method == "client_secret_post"
    assert settings.retry_budget == 12.0
    assert settings.sources["client_secret"] == "$FRESHTOKEN_CLIENT_SECRET_FILE"
    assert CANARY_SECRET not in repr(settings)


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"FRESHTOKEN_CLIENT_SECRET": "a", "FRESHTOKEN_CLIENT_SECRET_FILE": "/x"}, "only one"),
        ({"FRESHTOKEN_CLIENT_SECRET_FILE": "/nonexistent/secret"}, "cannot be read"),
        ({"FRESHTOKEN_AUTH_METHOD": "private_key"}, "unknown auth method"),
        ({"FRESHTOKEN_RETRY_BUDGET": "-3"}, "positive number"),
        ({"FRESHTOKEN_READ_TIMEOUT": "soon"}, "positive number"),
    ],
)
def test_bad_environment_is_named(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env(env)
    assert needle in str(info.value)


def test_empty_secret_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ConfigurationError, match="empty file"):
        Settings.from_env({"FRESHTOKEN_CLIENT_SECRET_FILE": str(empty)})


def test_no_endpoint_and_no_client_id() -> None:
    with pytest.raises(ConfigurationError) as info:
        _build.endpoints(Settings(client_id="x"))
    assert "FRESHTOKEN_REGION" in info.value.hint
    with pytest.raises(ConfigurationError, match="no client id"):
        Settings().require_client_id()


def test_from_env_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRESHTOKEN_CLIENT_ID", "from-os")
    assert Settings.from_env().client_id == "from-os"
    assert os.environ["FRESHTOKEN_CLIENT_ID"] == "from-os"


@pytest.mark.parametrize(
    ("key", "table"),
    [("auth_method", _build.AUTH_METHODS), ("grant", _build.GRANTS)],
    ids=["auth_method", "grant"],
)
def test_every_choice_has_a_builder(key: str, table: dict[str, object]) -> None:
    assert set(BY_KEY[key].choices) == set(table)


@pytest.mark.parametrize(
    ("setting", "refreshes_after"),
    [(None, False), ("250", True)],
    ids=["library-default", "min_ttl-setting"],
)
def test_min_ttl_setting_is_what_a_caller_naming_none_is_promised(
    setting: str | None, refreshes_after: bool
) -> None:
    from freshtoken import TokenBroker
    from freshtoken.testing import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, AuthServer, FakeClock

    clock = FakeClock()
    with AuthServer(ttl=300) as server:
        env = {
            "FRESHTOKEN_TOKEN_URL": server.token_url,
            "FRESHTOKEN_CLIENT_ID": DEMO_CLIENT_ID,
            "FRESHTOKEN_CLIENT_SECRET": DEMO_CLIENT_SECRET,
            "FRESHTOKEN_STORE": "memory://",
        }
        if setting is not None:
            env["FRESHTOKEN_MIN_TTL"] = setting
        broker = TokenBroker.from_settings(Settings.from_env(env), clock=clock)
        try:
            first = broker.token()
            clock.advance(60)  # 240 s left: enough for the library's 60 s, not for 250 s
            second = broker.token()
            assert (second.access_token != first.access_token) is refreshes_after
            assert second.expires_at - clock.time() >= (250 if setting else 60)
        finally:
            broker.close()
