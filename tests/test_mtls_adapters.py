"""Certificate-bound tokens through the library's adapters and the Genesys SDK integration
(RFC 8705 §3; issue 25): against the shipped test server's HTTPS listener, whose API refuses a
bound token over a connection without its certificate."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from freshtoken import MemoryStore, TokenBroker
from freshtoken._errors import ConfigurationError
from freshtoken.config._settings import Settings
from freshtoken.testing import AuthServer
from tests._certs import mtls_env
from tests.helpers import require_module


@pytest.fixture
def broker(mtls_server: AuthServer, tmp_path: Path) -> TokenBroker:
    settings = Settings.from_env(mtls_env(tmp_path, mtls_server))
    return TokenBroker.from_settings(settings, store=MemoryStore())


def _thumbprint(broker: TokenBroker) -> str:
    return broker.client.auth.certificate.thumbprint  # type: ignore[attr-defined, no-any-return]


def _minted(server: AuthServer) -> int:
    return int(server.stats()["minted"]["ca"]["client_credentials"])


def test_httpx_sends_a_bound_token_over_the_brokers_certificate(
    mtls_server: AuthServer, broker: TokenBroker
) -> None:
    api = mtls_server.url + "/api/echo"
    assert broker.client.tls is not None
    with httpx.Client(auth=broker.httpx_auth(), verify=broker.client.tls) as client:
        answer = client.get(api)
        assert answer.status_code == 200
        assert answer.json()["cnf"] == {"x5t#S256": _thumbprint(broker)}
        mtls_server.revoke_all()  # a refused token over the certificate: one new token, sent again
        assert client.get(api).status_code == 200
    assert _minted(mtls_server) == 2
    # Without the certificate the adapter says so, instead of minting a token to no avail.
    with pytest.raises(ConfigurationError, match="did not present it") as error:
        httpx.get(api, auth=broker.httpx_auth())
    assert _thumbprint(broker) in str(error.value)
    assert "verify=broker.client.tls" in str(error.value.hint)
    assert _minted(mtls_server) == 2


def test_httpx_async_sends_a_bound_token_over_the_brokers_certificate(
    mtls_server: AuthServer, broker: TokenBroker
) -> None:
    api = mtls_server.url + "/api/echo"

    async def call(verify: object) -> httpx.Response:
        async with httpx.AsyncClient(auth=broker.httpx_auth(), verify=verify) as client:  # type: ignore[arg-type]
            return await client.get(api)

    assert asyncio.run(call(broker.client.tls)).json()["cnf"]["x5t#S256"] == _thumbprint(broker)
    with pytest.raises(ConfigurationError, match="did not present it"):
        asyncio.run(call(True))
    assert _minted(mtls_server) == 1


def test_requests_session_presents_the_certificate(
    mtls_server: AuthServer, broker: TokenBroker, tmp_path: Path
) -> None:
    requests = require_module("requests")
    api = mtls_server.url + "/api/echo"
    with broker.requests_session() as session:
        answer = session.get(api)
        assert answer.status_code == 200, answer.text
        assert answer.json()["cnf"] == {"x5t#S256": _thumbprint(broker)}
        mtls_server.revoke_all()
        assert session.get(api).status_code == 200  # retried once over the certificate
    assert _minted(mtls_server) == 2
    with pytest.raises(ConfigurationError, match="did not present it") as error:
        requests.get(api, auth=broker.requests_auth(), verify=str(tmp_path / "ca.pem"))
    assert "broker.requests_session()" in str(error.value.hint)
    assert _minted(mtls_server) == 2


def test_without_mutual_tls_the_session_is_a_plain_one() -> None:
    require_module("requests")
    with AuthServer() as server:
        broker = TokenBroker.client_credentials(
            token_url=server.token_url, client_id="demo-client", client_secret="demo-secret"
        )
        with broker.requests_session() as session:
            assert session.get(server.url + "/api/echo").status_code == 200
            server.revoke_all()
            assert session.get(server.url + "/api/echo").status_code == 200
        assert server.stats()["tokens_minted"] == 2


@pytest.mark.slow  # importing the Genesys Cloud SDK alone takes seconds
def test_the_genesys_sdk_client_presents_the_certificate(
    mtls_server: AuthServer, broker: TokenBroker
) -> None:
    sdk = require_module("PureCloudPlatformClientV2")
    from freshtoken.integrations.genesys import api_client

    client = api_client(broker, mtls_server.url)
    sdk.TokensApi(client).head_tokens_me()  # raises ApiException on a 401
    mtls_server.revoke_all()
    sdk.TokensApi(client).head_tokens_me()
    assert _minted(mtls_server) == 2
    assert mtls_server.stats()["api_401"] == 1
