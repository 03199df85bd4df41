"""Cache keys: everything that makes two tokens interchangeable, and nothing readable."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import TYPE_CHECKING

from freshtoken._secret import Secret

if TYPE_CHECKING:
    from freshtoken.config._settings import Settings
    from freshtoken.oauth._grants import ClientCredentials


def cache_key(
    pepper: bytes,
    *,
    endpoint: str,
    client_id: str,
    grant: ClientCredentials | None,
    secret: Secret | None,
) -> str:
    """A keyed hash of what makes two tokens interchangeable: endpoint, client, the grant that
    mints them (None: refresh tokens only) and the secret. A rotated secret gives a new key
    (and so a fresh token); the key reveals neither the secret nor the client."""
    secret_mac = (
        hmac.new(pepper, secret.reveal().encode(), hashlib.sha256).hexdigest() if secret else ""
    )
    material = json.dumps(
        [
            endpoint,
            client_id,
            grant.name if grant else "refresh_token",
            sorted(set(grant.scope)) if grant else [],
            (grant.audience or "") if grant else "",
            (grant.resource or "") if grant else "",
            secret_mac,
        ]
    )
    return hmac.new(pepper, material.encode(), hashlib.sha256).hexdigest()[:40]


def settings_key(settings: Settings, pepper: bytes) -> str:
    """The key `TokenBroker.from_settings(settings)` uses, without building the broker."""
    endpoints = settings.endpoints()
    return cache_key(
        pepper,
        endpoint=endpoints.token_url if endpoints else str(settings.issuer),
        client_id=settings.require_client_id(),
        grant=settings.grant_for_broker(),
        secret=settings.client_secret if settings.auth_method != "none" else None,
    )
