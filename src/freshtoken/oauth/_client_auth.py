"""Client authentication at the token endpoint (RFC 6749 §2.3).

A method adds what it needs to the headers and the form, and gives a fingerprint of its
credential for the cache key, so that rotating a secret or a key starts a new cache entry. The
assertion methods (private_key_jwt, client_secret_jwt) are in `_jwt_auth.py`; they need the
endpoints (the assertion's audience), which every caller passes.
"""

from __future__ import annotations

import binascii
from typing import TYPE_CHECKING, Protocol
from urllib.parse import quote_plus

from freshtoken._log import remember_secret
from freshtoken._record import record
from freshtoken._secret import Secret, keyed_hash

if TYPE_CHECKING:
    from freshtoken.provider._endpoints import Endpoints


class ClientAuth(Protocol):
    @property
    def client_id(self) -> str: ...

    def apply(
        self, headers: dict[str, str], form: dict[str, str], endpoints: Endpoints | None = None
    ) -> None: ...
    def fingerprint(self, pepper: bytes) -> str:
        """A keyed hash of the credential ("" for none); never the credential itself."""
        ...


def credential(auth: ClientAuth) -> str:
    """What authenticates `auth` when it is not a shared secret (a key, certificate or
    assertion, as its `describe()` names it: method, algorithm, public thumbprint), else ""."""
    describe = getattr(auth, "describe", None)
    return str(describe()) if callable(describe) else ""


def _secret(value: Secret | str) -> Secret:
    return value if isinstance(value, Secret) else Secret(value)


def _basic(client_id: str, secret: Secret) -> str:
    # RFC 6749 §2.3.1: each part is form-encoded before base64, so ':' in an id survives.
    pair = f"{quote_plus(client_id)}:{quote_plus(secret.reveal())}"
    # base64.b64encode's own call: `base64` would cost every store hit 2.5 M instructions.
    return binascii.b2a_base64(pair.encode(), newline=False).decode()


class _Encoded:
    """The slot of the Basic credentials (`_basic`), worked out once from the fields, not for
    every request: no field itself (never compared nor shown)."""

    __slots__ = ("_encoded",)
    _encoded: str


@record
class _WithSecret(_Encoded):
    """A method that proves the client with its secret (a plain `str` is wrapped at once)."""

    client_id: str
    client_secret: Secret

    def __post_init__(self) -> None:
        object.__setattr__(self, "client_secret", _secret(self.client_secret))
        object.__setattr__(self, "_encoded", _basic(self.client_id, self.client_secret))
        # The value sent is a secret too: a server that echoes it back must not get it printed.
        remember_secret(self._encoded)

    def fingerprint(self, pepper: bytes) -> str:
        return keyed_hash(pepper, self.client_secret.reveal().encode()).hex()


@record
class ClientSecretBasic(_WithSecret):
    def apply(
        self, headers: dict[str, str], form: dict[str, str], endpoints: Endpoints | None = None
    ) -> None:
        headers["Authorization"] = "Basic " + self._encoded


@record
class ClientSecretPost(_WithSecret):
    def apply(
        self, headers: dict[str, str], form: dict[str, str], endpoints: Endpoints | None = None
    ) -> None:
        form["client_id"] = self.client_id
        form["client_secret"] = self.client_secret.reveal()


@record
class PublicClient:
    """`none`: a public client identifies itself but proves nothing."""

    client_id: str

    def apply(
        self, headers: dict[str, str], form: dict[str, str], endpoints: Endpoints | None = None
    ) -> None:
        form["client_id"] = self.client_id

    def fingerprint(self, pepper: bytes) -> str:
        return ""
