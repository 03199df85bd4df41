"""The real Genesys Cloud SDK, pointed at the shipped server, kept fresh by a broker."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from freshtoken.testing import AuthServer
from tests.helpers import make_broker

sdk = pytest.importorskip("PureCloudPlatformClientV2")
from freshtoken.integrations.genesys import api_client  # noqa: E402


def test_no_401_reaches_the_caller_over_several_lifetimes(tmp_path: Path) -> None:
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
            end = time.monotonic() + 6  # three lifetimes
            calls = 0
            while time.monotonic() < end:
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
    assert issued.access_token not in log.read_text()
    assert "[REDACTED]" in log.read_text()  # the SDK logged, and kept the header out


def test_a_second_401_in_one_call_goes_back_to_the_caller() -> None:
    with AuthServer.genesys(ttl=3600) as server:
        client = api_client(make_broker(server), server.url, min_ttl=0.5)
        sdk.TokensApi(client).head_tokens_me()
        server.configure(ttl=0.000001)  # every new token is dead on arrival
        server.revoke_all()
        with pytest.raises(sdk.rest.ApiException) as info:
            sdk.TokensApi(client).head_tokens_me()
        assert info.value.status == 401
        assert server.stats()["api_401"] == 2


def test_a_region_gives_the_genesys_api_host() -> None:
    with AuthServer.genesys() as server:
        client = api_client(make_broker(server), "eu-west-1")
    assert client.host == "https://api.mypurecloud.ie"
