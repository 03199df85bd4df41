"""The Python API as a newcomer meets it: one line to a working broker, plain `str` secrets,
a default grant that mints, and `from_env()` reading what the command line reads."""

from __future__ import annotations

import ast
import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import requests

import freshtoken
from freshtoken import ClientSecretBasic, Endpoints, Secret, TokenBroker, TokenClient
from freshtoken.testing import AuthServer


def test_one_line_with_a_str_secret_mints_once_then_serves_from_the_cache(
    server: AuthServer,
) -> None:
    broker = TokenBroker.client_credentials(
        token_url=server.token_url, client_id="demo-client", client_secret="demo-secret"
    )
    first = broker.token()
    assert broker.token().access_token == first.access_token
    assert server.stats()["tokens_minted"] == 1
    assert "demo-secret" not in repr(broker) and "demo-secret" not in repr(broker.client.auth)


def test_one_line_drives_httpx_sync_and_async_and_requests(server: AuthServer) -> None:
    broker = TokenBroker.client_credentials(
        token_url=server.token_url,
        client_id="demo-client",
        client_secret="demo-secret",
        scope="read write",
    )
    api = server.url + "/api/v2/tokens/me"
    assert httpx.get(api, auth=broker.httpx_auth()).status_code == 200

    async def call() -> int:
        async with httpx.AsyncClient(auth=broker.httpx_auth()) as client:
            return (await client.get(api)).status_code

    assert asyncio.run(call()) == 200
    assert requests.get(api, auth=broker.requests_auth(), timeout=10).status_code == 200
    assert server.stats()["tokens_minted"] == 1


def test_a_str_secret_is_accepted_wherever_a_secret_is(server: AuthServer) -> None:
    auth = ClientSecretBasic("demo-client", "demo-secret")  # type: ignore[arg-type]
    assert isinstance(auth.client_secret, Secret)
    settings = freshtoken.Settings(client_id="demo-client", client_secret="demo-secret")  # type: ignore[arg-type]
    assert isinstance(settings.client_secret, Secret)
    assert "demo-secret" not in repr(settings)
    client = TokenClient(auth, endpoints=Endpoints(server.token_url))
    assert TokenBroker(client).token().access_token  # the default grant mints


def test_refresh_tokens_only_is_said_explicitly(server: AuthServer) -> None:
    client = TokenClient(
        ClientSecretBasic("demo-client", Secret("demo-secret")),
        endpoints=Endpoints(server.token_url),
    )
    with pytest.raises(freshtoken.InvalidGrantError, match="no refresh token is held"):
        TokenBroker(client, grant=None).token()


def test_from_env_reads_a_profile_as_the_command_line_does(
    tmp_path: Path, server: AuthServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "freshtoken.toml"
    config.write_text(f'[ci]\ntoken_url = "{server.token_url}"\nclient_id = "demo-client"\n')
    config.chmod(0o600)
    for name in ("FRESHTOKEN_TOKEN_URL", "FRESHTOKEN_CLIENT_ID", "FRESHTOKEN_STORE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FRESHTOKEN_CONFIG", str(config))
    monkeypatch.setenv("FRESHTOKEN_PROFILE", "ci")
    monkeypatch.setenv("FRESHTOKEN_CLIENT_SECRET", "demo-secret")
    monkeypatch.setenv("FRESHTOKEN_STORE", "memory://")
    broker = TokenBroker.from_env()
    assert isinstance(broker, TokenBroker)  # not the running endpoint: none is set
    assert broker.token().access_token
    assert broker.client.identity() == server.token_url


def test_the_public_names_are_listed_once_and_load_lazily() -> None:
    package = Path(freshtoken.__file__)
    stub = ast.parse(package.with_suffix(".pyi").read_text(encoding="utf-8"))
    typed = {
        alias.name: str(node.module)
        for node in stub.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert typed == vars(freshtoken)["_LAZY"]  # what type checkers see is what loads
    assert sorted(freshtoken.__all__) == sorted([*typed, "__version__"])
    for name in freshtoken.__all__:
        assert getattr(freshtoken, name) is not None
    source = package.read_text(encoding="utf-8")
    assert "import ast" not in source and "typing" not in source  # nothing parsed, nothing heavy


def test_a_misspelt_variable_is_named_by_from_env_too(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, server: AuthServer
) -> None:
    for name in [n for n in os.environ if n.startswith("FRESHTOKEN_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("FRESHTOKEN_TOKEN_URL", server.token_url)
    monkeypatch.setenv("FRESHTOKEN_CLIENT_ID", "demo-client")
    monkeypatch.setenv("FRESHTOKEN_CLIENT_SECRET", "demo-secret")
    monkeypatch.setenv("FRESHTOKEN_STORE", "memory://")
    monkeypatch.setenv("FRESHTOKEN_CLIENTSECRET", "x")
    with freshtoken.TokenBroker.from_env() as broker:
        assert broker.token().access_token
    said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("did you mean FRESHTOKEN_CLIENT_SECRET?" in line for line in said), said


def test_importing_the_broker_loads_no_http_stack() -> None:
    code = (
        "import sys, freshtoken; freshtoken.TokenBroker; freshtoken.EndpointSource; "
        "freshtoken.Settings; print(sorted(m for m in ('httpx', 'rich', 'nacl', 'click', "
        "'asyncio') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_one_error_tree_with_its_own_root() -> None:
    """Server answers, configuration, store and sink errors are siblings under one root, and
    the module's drawing of the tree names every class in it."""
    from freshtoken import _errors
    from freshtoken.oauth._codes import error_classes

    root = freshtoken.FreshtokenError
    for sibling in (_errors.ConfigurationError, _errors.StoreError, _errors.SinkError):
        assert sibling.__bases__ == (root,)
        assert not issubclass(sibling, freshtoken.OAuthError)
    assert freshtoken.OAuthError.__bases__ == (root,)
    assert all(issubclass(cls, root) for cls in error_classes())
    drawing = _errors.__doc__ or ""
    own = [cls.__name__ for cls in error_classes() if cls.__module__ == _errors.__name__]
    assert [name for name in own if name not in drawing] == []
