"""Cache keys: everything that makes two tokens interchangeable, and nothing readable."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import TYPE_CHECKING

from freshtoken._secret import Secret

if TYPE_CHECKING:
    from freshtoken._config import Settings


def cache_key(
    pepper: bytes,
    *,
    endpoint: str,
    client_id: str,
    grant: str,
    scope: tuple[str, ...],
    audience: str | None,
    resource: str | None,
    secret: Secret | None,
) -> str:
    """A keyed hash of the request's identity. A rotated secret gives a new key (and so a
    fresh token); the key reveals neither the secret nor the client."""
    secret_mac = (
        hmac.new(pepper, secret.reveal().encode(), hashlib.sha256).hexdigest() if secret else ""
    )
    material = json.dumps(
        [endpoint, client_id, grant, sorted(set(scope)), audience or "", resource or "", secret_mac]
    )
    return hmac.new(pepper, material.encode(), hashlib.sha256).hexdigest()[:40]


def settings_key(settings: Settings, pepper: bytes) -> str:
    """The key `TokenBroker.from_settings(settings)` uses, without building the broker."""
    endpoints = settings.endpoints()
    credentials = settings.grant == "client_credentials"
    return cache_key(
        pepper,
        endpoint=endpoints.token_url if endpoints else str(settings.issuer),
        client_id=settings.require_client_id(),
        grant=settings.grant,
        scope=settings.scope if credentials else (),
        audience=settings.audience if credentials else None,
        resource=settings.resource if credentials else None,
        secret=settings.client_secret if settings.auth_method != "none" else None,
    )
