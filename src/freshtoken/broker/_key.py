"""Cache keys: everything that makes two tokens interchangeable, and nothing readable."""

from __future__ import annotations

import hashlib
import hmac
import json

from freshtoken import _build
from freshtoken.config._settings import Settings
from freshtoken.oauth._client_auth import ClientAuth
from freshtoken.oauth._grants import Grant

_REFRESH_ONLY = ("refresh_token",)


def cache_key(pepper: bytes, *, endpoint: str, auth: ClientAuth, grant: Grant | None) -> str:
    """A keyed hash of what makes two tokens interchangeable: endpoint, client, the grant that
    mints them (None: refresh tokens only) and the client's credential. A rotated secret gives
    a new key (and so a fresh token); the key reveals neither the secret nor the client."""
    material = json.dumps(
        [
            endpoint,
            auth.client_id,
            list(grant.cache_material() if grant else _REFRESH_ONLY),
            auth.fingerprint(pepper),
        ]
    )
    return hmac.new(pepper, material.encode(), hashlib.sha256).hexdigest()[:40]


def settings_key(settings: Settings, pepper: bytes) -> str:
    """The key `TokenBroker.from_settings(settings)` uses, without building the broker."""
    endpoints = _build.endpoints(settings)
    return cache_key(
        pepper,
        endpoint=endpoints.token_url if endpoints else str(settings.issuer),
        auth=_build.client_auth(settings),
        grant=_build.grant(settings),
    )
