"""Client authentication at the token endpoint (RFC 6749 §2.3).

A method adds what it needs to the headers and the form. private_key_jwt (RFC 7523) fits the
same shape: it will add `client_assertion_type` and a freshly signed `client_assertion`.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote_plus

from freshtoken._errors import ConfigurationError
from freshtoken._secret import Secret

AUTH_METHODS = ("client_secret_basic", "client_secret_post", "none")


class ClientAuth(Protocol):
    @property
    def client_id(self) -> str: ...

    def apply(self, headers: dict[str, str], form: dict[str, str]) -> None: ...


@dataclass(frozen=True, slots=True)
class ClientSecretBasic:
    client_id: str
    client_secret: Secret

    def apply(self, headers: dict[str, str], form: dict[str, str]) -> None:
        # RFC 6749 §2.3.1: each part is form-encoded before base64, so ':' in an id survives.
        pair = f"{quote_plus(self.client_id)}:{quote_plus(self.client_secret.reveal())}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()


@dataclass(frozen=True, slots=True)
class ClientSecretPost:
    client_id: str
    client_secret: Secret

    def apply(self, headers: dict[str, str], form: dict[str, str]) -> None:
        form["client_id"] = self.client_id
        form["client_secret"] = self.client_secret.reveal()


@dataclass(frozen=True, slots=True)
class PublicClient:
    """`none`: a public client identifies itself but proves nothing."""

    client_id: str

    def apply(self, headers: dict[str, str], form: dict[str, str]) -> None:
        form["client_id"] = self.client_id


def client_auth(method: str, client_id: str, client_secret: Secret | None) -> ClientAuth:
    """Build the client authentication named by `method`."""
    if method == "none":
        return PublicClient(client_id)
    if method not in AUTH_METHODS:
        raise ConfigurationError(
            f"unknown client authentication method {method!r}",
            hint=f"FRESHTOKEN_AUTH_METHOD must be one of: {', '.join(AUTH_METHODS)}.",
        )
    if not client_secret:
        raise ConfigurationError(
            f"{method} needs a client secret and none was given",
            hint="Set FRESHTOKEN_CLIENT_SECRET, or FRESHTOKEN_CLIENT_SECRET_FILE to a file "
            "holding it, or FRESHTOKEN_CLIENT_SECRET_KEYRING to an OS keyring entry.",
        )
    if method == "client_secret_post":
        return ClientSecretPost(client_id, client_secret)
    return ClientSecretBasic(client_id, client_secret)
