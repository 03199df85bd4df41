"""Canary secrets must never appear in errors, reprs or log records."""

from __future__ import annotations

import logging

import pytest

from freshtoken import (
    ClientCredentials,
    ClientSecretBasic,
    ClientSecretPost,
    Endpoints,
    InvalidClientError,
    InvalidGrantError,
    RefreshTokenGrant,
    RetryPolicy,
    Secret,
    Settings,
    TokenClient,
)
from freshtoken._log import redact
from freshtoken.testing import AuthServer, Client
from tests.helpers import CANARY_SECRET

CANARY_REFRESH = "canary-refresh-7a7a7a7a7a"


def test_canaries_never_leak(all_logs: pytest.LogCaptureFixture) -> None:
    with AuthServer(clients=[Client("c1", "the-right-one")], fail_first=1) as server:
        texts: list[str] = []
        for auth in (
            ClientSecretBasic("c1", Secret(CANARY_SECRET)),
            ClientSecretPost("c1", Secret(CANARY_SECRET)),
        ):
            client = TokenClient(
                auth,
                endpoints=Endpoints(server.token_url),
                policy=RetryPolicy(budget=2, base=0.01, cap=0.01),
            )
            texts += [repr(auth), repr(client)]
            with pytest.raises(InvalidClientError) as info:
                client.fetch(ClientCredentials())
            texts += [str(info.value), repr(info.value), info.value.hint]
        good = TokenClient(
            ClientSecretBasic("c1", Secret("the-right-one")), endpoints=Endpoints(server.token_url)
        )
        grant = RefreshTokenGrant(CANARY_REFRESH)
        texts.append(repr(grant))
        with pytest.raises(InvalidGrantError) as grant_info:
            good.fetch(grant)
        texts += [str(grant_info.value), repr(grant_info.value)]
        token = good.fetch(ClientCredentials())
        texts += [repr(token), str(token)]
    settings = Settings.from_env(
        {
            "FRESHTOKEN_CLIENT_ID": "c1",
            "FRESHTOKEN_CLIENT_SECRET": CANARY_SECRET,
            "FRESHTOKEN_TOKEN_URL": "https://x.example/t",
        }
    )
    texts.append(repr(settings))
    texts += [r.getMessage() for r in all_logs.records]
    texts.append(all_logs.text)
    assert any("retrying" in t for t in texts)  # the logs were really captured
    secrets = (CANARY_SECRET, CANARY_REFRESH, token.access_token)
    assert [(t, s) for t in texts for s in secrets if s in t] == []


def test_redaction_filter_scrubs_known_and_shaped_secrets(
    all_logs: pytest.LogCaptureFixture,
) -> None:
    Secret("canary-registered-42424242")
    log = logging.getLogger("freshtoken")
    log.warning("sent %s", "canary-registered-42424242")
    log.warning("header Authorization: Bearer abc.def-ghi and Basic Zm9vOmJhcg==")
    log.warning('body {"access_token": "xyz123456789", "refresh_token":"rrr999999"}')
    log.warning("form client_secret=topsecret999&refresh_token=rt_live_1")
    text = all_logs.text
    shown = [
        leaked
        for leaked in (
            "canary-registered",
            "abc.def-ghi",
            "Zm9vOmJhcg",
            "xyz123456789",
            "rrr999999",
            "topsecret999",
            "rt_live_1",
        )
        if leaked in text
    ]
    assert shown == []
    assert text.count("***") >= 6
    assert redact("nothing secret here") == "nothing secret here"
