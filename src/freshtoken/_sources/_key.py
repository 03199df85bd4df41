"""Cache keys: everything that makes two tokens interchangeable, and nothing readable."""

from __future__ import annotations

import hashlib
import hmac
import json

from freshtoken._secret import Secret


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
