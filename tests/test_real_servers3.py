"""Issue 24: what a third independent server does differently at the token endpoint, each as a
knob of the test server (refusals without a body, its own error words, a scope client
credentials require, a 404 token URL), and what freshtoken says about it."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from freshtoken import (
    AuthorizationCode,
    ClientCredentials,
    ClientSecretBasic,
    ClientSecretPost,
    Endpoints,
    OAuthError,
    RefreshTokenGrant,
    RetryPolicy,
    Secret,
    TokenBroker,
    TokenClient,
)
from freshtoken._errors import InvalidClientError, TokenUnavailableError
from freshtoken.stores._sqlite import SQLiteStore
from freshtoken.testing import AuthServer, Client, FakeClock
from tests._cli import cli_env, ft

POST_ONLY = Client("post-only", "post-secret", auth_method="client_secret_post")
CODE_ONLY = Client("code-only", "code-secret", grants=frozenset({"authorization_code"}))
DEMO = Client("demo-client", "demo-secret")
URL_HINT = "Check that the URL is the token endpoint"


def _client(
    server: AuthServer, client: Client = DEMO, secret: str | None = None, *, post: bool = False
) -> TokenClient:
    method = ClientSecretPost if post else ClientSecretBasic
    return TokenClient(
        method(client.client_id, Secret(secret or client.secret or "")),
        endpoints=Endpoints(server.token_url),
        policy=RetryPolicy(budget=5.0),
    )


def _refused(client: TokenClient, grant: object = None) -> OAuthError:
    with pytest.raises(OAuthError) as caught:
        client.fetch(grant or ClientCredentials(("api",)))  # type: ignore[arg-type]
    return caught.value


# (client, secret, Basic or post, scope) -> each refusal the third server answers 403, no body
REFUSALS = {
    "bad secret": (DEMO, "wrong-secret", False, ("api",)),
    "unknown client": (Client("nobody", "x"), None, False, ("api",)),
    "wrong method": (POST_ONLY, None, False, ("api",)),
    "no scope": (DEMO, None, False, ()),
    "grant not enabled": (CODE_ONLY, None, False, ("api",)),
}


@pytest.mark.parametrize("status", [403, 401])
@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_refusal_without_a_body_is_the_client_refused_not_a_wrong_url(
    case: str, status: int
) -> None:
    client, secret, post, scope = REFUSALS[case]
    knobs: dict[str, Any] = {"bare_refusals": True, "client_credentials_need_scope": True}
    knobs["bare_refusal_status"] = status
    with AuthServer(clients=[DEMO, POST_ONLY, CODE_ONLY], **knobs) as server:
        error = _refused(_client(server, client, secret, post=post), ClientCredentials(scope))
        assert error.status == status
        assert f"refused this client with HTTP {status} and an empty body" in error.message
        assert URL_HINT not in error.hint
        for cause in ("client secret", "FRESHTOKEN_AUTH_METHOD", "scope", "grant not enabled"):
            assert cause in error.hint, (cause, error.hint)
        if case == "no scope":
            assert "this server may require one for client credentials" in error.hint
        assert error.exit_code == 3
        assert not error.retryable
        assert server.stats()["token_requests"] == 1  # a refusal is not retried


def test_client_credentials_work_with_basic_and_post_where_the_method_matches() -> None:
    with AuthServer(clients=[DEMO, POST_ONLY], bare_refusals=True) as server:
        assert _client(server, DEMO).fetch(ClientCredentials(("api",))).access_token
        assert _client(server, POST_ONLY, post=True).fetch(ClientCredentials()).access_token


def test_a_failed_refresh_without_a_body_names_the_refresh_and_the_client() -> None:
    with AuthServer(bare_refusals=True) as server:
        error = _refused(_client(server), RefreshTokenGrant("rt_not-a-real-one"))
        assert error.status == 400
        assert "refused the refresh_token request with HTTP 400 and an empty body" in str(error)
        assert URL_HINT not in error.hint
        assert "refresh token was spent" in error.hint
        assert "authentication" in error.hint


# the server's word -> (the standard code it means, words from that code's hint)
WORDS = {
    "invalid_code": ("invalid_grant", "refresh token or authorization code was refused"),
    "scope_invalid": ("invalid_scope", "A requested scope is not allowed"),
    "authorization_type_invalid": ("unsupported_grant_type", "may not use the"),
}


def test_nonstandard_error_words_get_the_hint_of_the_code_they_mean() -> None:
    clients = [Client("demo-client", "demo-secret", scopes=frozenset({"api"})), CODE_ONLY]
    with AuthServer(clients=clients, error_style="nonstandard") as server:
        seen = {
            (e := _refused(_client(server, clients[0]), RefreshTokenGrant("rt_x"))).error: e,
            (e := _refused(_client(server, clients[0]), ClientCredentials(("admin",)))).error: e,
            (e := _refused(_client(server, CODE_ONLY))).error: e,
        }
    assert set(seen) == set(WORDS)
    for word, (meant, words) in WORDS.items():
        assert f"{word} is this server's word for {meant}" in seen[word].hint
        assert words in seen[word].hint
        assert seen[word].exit_code == 3


@pytest.mark.parametrize("suffix", ["/oauth/token/", ""], ids=["trailing slash", "issuer"])
def test_a_token_url_that_answers_404_is_named_with_what_to_try(
    tmp_path: Path, suffix: str
) -> None:
    with AuthServer() as server:
        env = cli_env(tmp_path, server, FRESHTOKEN_TOKEN_URL=server.url + suffix)
        out = ft(["token"], env, tmp_path)
        assert out.returncode == 3, out.stderr
        assert "HTTP 404" in out.stderr
        assert "hint: " in out.stderr and "Try " in out.stderr
        if suffix:
            assert f"{server.token_url} (without the trailing slash)" in out.stderr
        else:
            assert "set FRESHTOKEN_ISSUER to it" in out.stderr
        doctor = ft(["doctor"], env, tmp_path)
        assert doctor.returncode == 1
        assert "HTTP 404" in doctor.stdout


def test_a_404_under_a_known_issuer_names_its_discovery_document() -> None:
    with AuthServer() as server:
        client = TokenClient(
            ClientSecretBasic("demo-client", Secret("demo-secret")),
            endpoints=Endpoints(server.url + "/token", issuer=server.issuer),
            policy=RetryPolicy(budget=5.0),
        )
        error = _refused(client)
        assert error.status == 404
        assert f"{server.issuer}/.well-known/openid-configuration" in error.hint


def test_offline_access_with_client_credentials_is_warned_about_on_every_server(
    tmp_path: Path,
) -> None:
    with AuthServer() as server:
        env = cli_env(tmp_path, server, FRESHTOKEN_SCOPE="api offline_access")
        out = ft(["token"], env, tmp_path)
        assert out.returncode == 0, out.stderr
        assert out.stderr.count("a client-credentials answer carries none") == 1
        assert "freshtoken login" in out.stderr  # what to do instead
        doctor = ft(["doctor"], env, tmp_path)
        assert "✗ scope asks for offline_access with client credentials" in doctor.stdout
        # With a user's refresh token (after `freshtoken login`) offline_access is right.
        login_env = {**env, "FRESHTOKEN_GRANT": "refresh_token"}
        assert "offline_access" not in ft(["token"], login_env, tmp_path).stderr


def test_doctor_says_a_refused_client_may_need_a_scope(tmp_path: Path) -> None:
    with AuthServer(bare_refusals=True, client_credentials_need_scope=True) as server:
        doctor = ft(["doctor"], cli_env(tmp_path, server), tmp_path)
        assert doctor.returncode == 1
        assert "refused this client with HTTP 403" in doctor.stdout
        assert "this server may require one for client credentials" in doctor.stdout
        assert URL_HINT not in doctor.stdout


def test_authentication_fails_checks_the_client_without_spending_the_refresh_token() -> None:
    """Item 6: on the third server a refresh presented with a wrong secret disables the refresh
    token for its owner too; `authentication_fails` asks introspection first, which spends
    nothing."""
    with AuthServer(bare_refusals=True, failed_auth_burns_refresh=True) as server:

        def client(secret: str, introspection: bool = True) -> TokenClient:
            where = server.url + "/oauth/introspect" if introspection else None
            return TokenClient(
                ClientSecretBasic("demo-client", Secret(secret)),
                endpoints=Endpoints(server.token_url, introspection_url=where),
                policy=RetryPolicy(budget=5.0),
            )

        code = server.issue_code("demo-client", ("api",))
        refresh = client("demo-secret").fetch(AuthorizationCode(code)).refresh_token
        assert refresh is not None
        assert client("rotated-secret").authentication_fails() is True
        assert client("demo-secret").authentication_fails() is False
        assert client("demo-secret", introspection=False).authentication_fails() is None
        assert server.active_refresh_tokens("demo-client") == 1  # nothing spent
        # What the check prevents: presenting it with the failing secret burns it.
        _refused(client("rotated-secret"), RefreshTokenGrant(refresh))
        assert server.active_refresh_tokens("demo-client") == 0


def test_doctor_notes_a_discovery_document_that_under_reports_grants(tmp_path: Path) -> None:
    """Item 10: an issuer with a path, metadata only where the server puts it, and a
    grant_types_supported without client_credentials: the token is had, doctor notes it."""
    with AuthServer(mount="/o", metadata_grants="authorization_code") as server:
        env = cli_env(tmp_path, FRESHTOKEN_ISSUER=server.issuer)
        env |= {"FRESHTOKEN_CLIENT_ID": "demo-client", "FRESHTOKEN_CLIENT_SECRET": "demo-secret"}
        assert ft(["token"], env, tmp_path).returncode == 0
        doctor = ft(["doctor"], env, tmp_path)
        assert doctor.returncode == 0, doctor.stdout
        assert "grant_types_supported leaves out client_credentials" in doctor.stdout
        assert f"(from {server.url}/.well-known/oauth-authorization-server/o)" in doctor.stdout


def _broker(server: AuthServer, store: SQLiteStore, secret: str, *, post: bool = False) -> Any:
    method = ClientSecretPost if post else ClientSecretBasic
    client = TokenClient(
        method("demo-client", Secret(secret)),
        endpoints=Endpoints(server.token_url, introspection_url=server.url + "/oauth/introspect"),
        policy=RetryPolicy(budget=5.0),
    )
    return TokenBroker(client, grant=None, store=store)


def test_a_refresh_token_is_not_presented_while_the_server_refuses_the_client(
    tmp_path: Path,
) -> None:
    """Item 6: the server's administrator rotated the secret; the job still has the old one.
    The first refresh is refused (and, on this server, burns its token). Another process of
    the job, with a new login's refresh token, checks the credentials first, with a request
    that spends nothing, and presents nothing."""
    with AuthServer(failed_auth_burns_refresh=True) as server:
        store = SQLiteStore(tmp_path / "t.db")
        broker = _broker(server, store, "demo-secret")
        code = server.issue_code("demo-client", ("api",))
        broker.seed_refresh_token(_client(server).fetch(AuthorizationCode(code)).refresh_token)
        broker.invalidate(broker.token())  # introspection learned to vouch: no longer asked
        server.register(Client("demo-client", "rotated-at-the-server"))
        with pytest.raises(InvalidClientError):
            broker.token()  # the refusal that teaches it (that token is burnt here)
        assert server.active_refresh_tokens("demo-client") == 0
        fixed = _client(server, secret="rotated-at-the-server")
        second = fixed.fetch(AuthorizationCode(server.issue_code("demo-client", ("api",))))
        assert second.refresh_token
        later = _broker(server, store, "demo-secret")  # the job's next step, same old secret
        later.seed_refresh_token(second.refresh_token)
        with pytest.raises(InvalidClientError) as caught:
            later.token()
        assert "the refresh token was not presented" in caught.value.message
        assert "FRESHTOKEN_CLIENT_SECRET" in caught.value.hint
        assert server.active_refresh_tokens("demo-client") == 1  # the new login's lives
        assert fixed.fetch(RefreshTokenGrant(second.refresh_token)).access_token
        assert server.stats()["reuse_detections"] == 0


def test_without_introspection_a_recent_refusal_holds_the_refresh_token_back(
    tmp_path: Path,
) -> None:
    """Item 6 where nothing can check the credentials without spending (no introspection
    endpoint): a refusal within the last hour keeps the refresh token unpresented; an older
    one (a passing fault of the server, perhaps) no longer does, with a warning."""
    clock = FakeClock(time.time())

    def broker(secret: str) -> Any:
        client = TokenClient(
            ClientSecretBasic("demo-client", Secret(secret)),
            endpoints=Endpoints(server.token_url),  # no introspection endpoint
            policy=RetryPolicy(budget=5.0),
            clock=clock,
        )
        return TokenBroker(client, grant=None, store=store)

    with AuthServer(failed_auth_burns_refresh=True) as server:
        store = SQLiteStore(tmp_path / "t.db")
        first = broker("demo-secret")
        code = server.issue_code("demo-client", ("api",))
        first.seed_refresh_token(_client(server).fetch(AuthorizationCode(code)).refresh_token)
        first.invalidate(first.token())
        server.register(Client("demo-client", "rotated-at-the-server"))
        with pytest.raises(InvalidClientError):
            first.token()  # refused by the server: that token is burnt here
        refreshes = server.stats()["refreshes"]
        fixed = _client(server, secret="rotated-at-the-server")
        second = fixed.fetch(AuthorizationCode(server.issue_code("demo-client", ("api",))))
        assert second.refresh_token
        later = broker("demo-secret")  # the job's next step, same old secret
        later.seed_refresh_token(second.refresh_token)
        for _ in range(2):  # holding it back does not restart the hour
            clock.advance(1700)
            with pytest.raises(InvalidClientError) as caught:
                later.token()
            assert "no introspection endpoint" in caught.value.message
            assert "the refresh token was not presented" in caught.value.message
            assert server.stats()["refreshes"] == refreshes
        assert fixed.fetch(RefreshTokenGrant(second.refresh_token)).access_token  # it lived
        clock.advance(300)  # the refusal is over an hour old: presented again
        with pytest.raises(InvalidClientError) as caught:
            later.token()
        assert caught.value.status is not None  # the server's own refusal this time
        assert server.stats()["refreshes"] == refreshes + 1


def test_a_rotated_secret_never_burns_a_new_refresh_token(tmp_path: Path) -> None:
    """Item 6, the first refresh after the secret was rotated: introspection, asked whether it
    vouches, refuses the client (401); the credentials are checked again, spending nothing,
    and the refresh token is not presented."""
    with AuthServer(bare_refusals=True, failed_auth_burns_refresh=True) as server:
        code = server.issue_code("demo-client", ("api",))
        seed = _client(server).fetch(AuthorizationCode(code)).refresh_token
        assert seed
        broker = _broker(server, SQLiteStore(tmp_path / "t.db"), "rotated-secret")
        broker.seed_refresh_token(seed)
        with pytest.raises(InvalidClientError) as caught:
            broker.token()
        assert "the refresh token was not presented" in caught.value.message
        assert server.stats()["refreshes"] == 0
        assert server.active_refresh_tokens("demo-client") == 1


def test_inactive_to_another_authentication_method_is_not_proof_of_spent(
    tmp_path: Path,
) -> None:
    """Item 11: a server whose introspection sees only the tokens issued to the method asking.
    A holder that authenticates with post learned that introspection vouches, then died with
    the token marked (never sent); a holder with Basic hears "inactive", which is "cannot
    tell": the token is kept, and the post holder resumes the chain."""
    with AuthServer(introspection_sees_own_method_only=True) as server:
        store = SQLiteStore(tmp_path / "t.db")
        post = _broker(server, store, "demo-secret", post=True)
        code = server.issue_code("demo-client", ("api",))
        seed = _client(server, post=True).fetch(AuthorizationCode(code)).refresh_token
        assert seed
        post.seed_refresh_token(seed)
        assert post.token().access_token  # learns that introspection vouches, with post
        entry = store.load(post.key)
        assert entry is not None and entry.refresh_token
        assert (entry.facts.introspection_vouches, entry.facts.vouched_by) == (
            True,
            "ClientSecretPost",
        )
        dead = replace(entry, token=None, phase="spending", phase_owner="dead", phase_until=0.0)
        assert store.save(post.key, dead, entry.version) is not None
        basic = _broker(server, store, "demo-secret")
        assert basic.key == post.key
        with pytest.raises(TokenUnavailableError) as caught:
            basic.token()
        assert "cannot be told" in caught.value.message
        assert "ClientSecretBasic" in caught.value.message
        kept = store.load(post.key)
        assert kept is not None and kept.refresh_token == entry.refresh_token
        again = _broker(server, store, "demo-secret", post=True)
        assert again.token().access_token  # active to the method that vouched: resumed
        stats = server.stats()
        assert (stats["refreshes"], stats["reuse_detections"]) == (2, 0)
        assert server.active_refresh_tokens("demo-client") == 1
