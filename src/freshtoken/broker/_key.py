"""Cache keys: everything that makes two tokens interchangeable, and nothing readable."""

from __future__ import annotations

import json

from freshtoken import _build
from freshtoken._secret import keyed_hash
from freshtoken.config._settings import Settings
from freshtoken.oauth._client_auth import ClientAuth
from freshtoken.oauth._grants import Grant

_REFRESH_ONLY = ("refresh_token",)


def cache_key(
    pepper: bytes,
    *,
    endpoint: str,
    auth: ClientAuth,
    grant: Grant | None,
    login: str | None = None,
) -> str:
    """A keyed hash of what makes two tokens interchangeable: endpoint, client, the grant that
    mints them (None: refresh tokens only), the client's credential and, when set, the `login`
    label (whose login: a public client has no credential to tell two people's logins apart).
    A rotated secret gives a new key (and so a fresh token); the key reveals neither the secret
    nor the client. Without a label the key is what it always was."""
    parts: list[object] = [
        endpoint,
        auth.client_id,
        list(grant.cache_material() if grant else _REFRESH_ONLY),
        auth.fingerprint(pepper),
    ]
    material = json.dumps(parts + ([["login", login]] if login else []))
    return keyed_hash(pepper, material.encode()).hex()[:40]


def settings_key(settings: Settings, pepper: bytes) -> str:
    """The key `TokenBroker.from_settings(settings)` uses, without building the broker."""
    endpoints = _build.endpoints(settings)
    return cache_key(
        pepper,
        endpoint=endpoints.token_url if endpoints else str(settings.issuer),
        auth=_build.client_auth(settings),
        grant=_build.grant(settings),
        login=settings.login,
    )
