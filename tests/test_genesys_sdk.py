"""The real Genesys Cloud SDK, pointed at the shipped server, kept fresh by a broker."""

from __future__ import annotations

import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from freshtoken.testing import AuthServer
from tests.helpers import assert_no_leak, make_broker, require_module

pytestmark = pytest.mark.slow  # importing the Genesys Cloud SDK alone takes seconds


@pytest.fixture
def sdk() -> ModuleType:
    return require_module("PureCloudPlatformClientV2")


def api_client(*args: Any, **kwargs: Any) -> Any:
    from freshtoken.integrations.genesys import api_client  # needs the SDK

    return api_client(*args, **kwargs)


def test_no_401_reaches_the_caller_over_several_lifetimes(tmp_path: Path, sdk: ModuleType) -> None:
    log = tmp_path / "sdk.log"
    config = sdk.Configuration()
    config.logger.log_level = sdk.logger.LogLevel.LTrace
    config.logger.log_to_console = False
    config.logger.log_file_path = str(log)
    try:
        with AuthServer.genesys(ttl=2) as server:
            broker = make_broker(server)
            client = api_client(broker, server.url, min_ttl=0.5)
            tokens = sdk.TokensApi(client)
            end = time.monotonic() + 6  # three lifetimes, and at least 30 calls
            calls = 0
            while time.monotonic() < end or calls < 30:
                tokens.head_tokens_me()  # raises ApiException on a 401
                calls += 1
                time.sleep(0.1)
            server.revoke_all()  # a token that is refused although not expired
            tokens.head_tokens_me()
            stats = server.stats()
            issued = broker.current
    finally:
        config.logger.log_level = sdk.logger.LogLevel.LNone
    assert calls >= 30
    assert stats["api_401"] == 1  # only the revoked one, answered by one new token
    assert stats["tokens_minted"] <= 6 / 1 + 2
    assert issued is not None
    text = log.read_text()
    assert "[REDACTED]" in text  # the SDK logged, and kept the header out
    assert_no_leak("the SDK's debug log", text, issued.access_token)  # nor any other token


def test_a_second_401_in_one_call_goes_back_to_the_caller(sdk: ModuleType) -> None:
    with AuthServer.genesys(ttl=3600) as server:
        client = api_client(make_broker(server), server.url, min_ttl=0.5)
        sdk.TokensApi(client).head_tokens_me()
        server.configure(ttl=0.000001)  # every new token is dead on arrival
        server.revoke_all()
        with pytest.raises(sdk.rest.ApiException) as info:
            sdk.TokensApi(client).head_tokens_me()
        assert info.value.status == 401
        assert server.stats()["api_401"] == 2


def test_a_region_gives_the_genesys_api_host(sdk: ModuleType) -> None:
    with AuthServer.genesys() as server:
        client = api_client(make_broker(server), "eu-west-1")
    assert client.host == "https://api.mypurecloud.ie"


def test_the_configured_region_or_api_url_by_default(
    sdk: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from freshtoken._errors import ConfigurationError

    monkeypatch.chdir(tmp_path)  # no freshtoken.toml found
    monkeypatch.setenv("FRESHTOKEN_CONFIG", str(tmp_path / "none.toml"))
    (tmp_path / "none.toml").write_text("")
    for name in ("FRESHTOKEN_API_URL", "FRESHTOKEN_REGION", "GENESYSCLOUD_REGION"):
        monkeypatch.delenv(name, raising=False)
    with AuthServer.genesys() as server:
        broker = make_broker(server)
        with pytest.raises(ConfigurationError, match="needs a region or an API URL"):
            api_client(broker)
        monkeypatch.setenv("FRESHTOKEN_REGION", "eu_west_1")
        assert api_client(broker).host == "https://api.mypurecloud.ie"
        monkeypatch.setenv("FRESHTOKEN_API_URL", server.url)
        assert api_client(broker).host == server.url
