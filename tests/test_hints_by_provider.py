"""Issue 15, item 4: error hints are generic for every server; the Genesys Cloud preset (a
region, or provider = "genesys") adds its own words."""

from __future__ import annotations

from pathlib import Path

import pytest

from freshtoken import (
    ClientCredentials,
    ClientSecretBasic,
    Endpoints,
    OAuthError,
    RetryPolicy,
    Secret,
    TokenClient,
)
from freshtoken.testing import AuthServer, Client
from tests._cli import cli_env, ft

CLIENTS = [
    Client("demo-client", "demo-secret", scopes=frozenset({"api.read"})),
    Client("code-only", "code-secret", grants=frozenset({"authorization_code"})),
]
# (client id, secret, scope, knobs) -> the error the server answers.
CASES = {
    "invalid_client": ("demo-client", "wrong-secret", (), {}),
    "invalid_scope": ("demo-client", "demo-secret", ("offline_access",), {}),
    "unauthorized_client": ("code-only", "code-secret", (), {}),
    "rate_limited": ("demo-client", "demo-secret", (), {"rate_limit": 1}),
}
# preset -> (provider, region) of the endpoints
PRESETS: dict[str, tuple[str | None, str | None]] = {
    "generic": (None, None),
    "provider": ("genesys", None),
    "region": ("genesys", "eu_west_1"),
}


def hint_of(server: AuthServer, case: str, preset: str) -> str:
    client_id, secret, scope, knobs = CASES[case]
    server.configure(**knobs)
    client = TokenClient(
        ClientSecretBasic(client_id, Secret(secret)),
        endpoints=Endpoints(
            server.token_url, provider=PRESETS[preset][0], region=PRESETS[preset][1]
        ),
        # Short only where a retry could outlast the rate limit's window: a refusal is not
        # retried, and a loaded machine must not turn it into a timeout.
        policy=RetryPolicy(budget=0.5 if knobs else 10.0),
    )
    if knobs:  # spend the window's one request
        TokenClient(
            ClientSecretBasic("demo-client", Secret("demo-secret")),
            endpoints=Endpoints(server.token_url),
        ).fetch(ClientCredentials())
    with pytest.raises(OAuthError) as info:
        client.fetch(ClientCredentials(scope))
    assert info.value.error == case
    return info.value.hint


@pytest.mark.parametrize("case", sorted(CASES))
def test_hints_name_genesys_only_with_its_preset(case: str) -> None:
    with AuthServer(clients=CLIENTS) as server:
        generic = hint_of(server, case, "generic")
    assert generic and "Genesys" not in generic
    for preset in ("provider", "region"):
        with AuthServer.genesys(clients=CLIENTS) as server:
            said = hint_of(server, case, preset)
        assert "Genesys Cloud" in said, (preset, said)


def test_the_command_line_hint_for_another_server(tmp_path: Path) -> None:
    with AuthServer(clients=CLIENTS) as server:
        env = cli_env(tmp_path, server, FRESHTOKEN_SCOPE="offline_access")
        out = ft(["token"], env, tmp_path)
        assert out.returncode == 3
        assert "invalid_scope" in out.stderr and "Remove it from FRESHTOKEN_SCOPE" in out.stderr
        assert "Genesys" not in out.stderr
        genesys = ft(
            ["token"],
            {**env, "FRESHTOKEN_PROVIDER": "genesys", "FRESHTOKEN_API_URL": server.url},
            tmp_path,
        )
        assert genesys.returncode == 3
        assert "Genesys Cloud client-credentials clients" in genesys.stderr


def test_the_hint_catalog_and_the_error_classes_agree() -> None:
    """One catalog keyed by error code: every error on the troubleshooting page has its entry
    there, and every entry belongs to an error class."""
    from freshtoken._hints import CATALOG
    from freshtoken.oauth._codes import error_classes

    codes = {cls.default_error for cls in error_classes()}
    listed = {cls.default_error for cls in error_classes() if cls.says}
    assert listed <= set(CATALOG), sorted(listed - set(CATALOG))
    assert set(CATALOG) <= codes, sorted(set(CATALOG) - codes)


def test_a_preset_without_a_region_names_no_empty_region() -> None:
    from freshtoken.provider._presets import words

    assert words("genesys", None, "region") == " (Genesys Cloud)"
    assert words("genesys", "eu_west_1", "region") == " (Genesys Cloud region eu_west_1)"
    assert words(None, None, "region") == ""
