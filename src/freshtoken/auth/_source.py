"""The interfaces every consumer needs (after golang/oauth2's TokenSource)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import ssl

    from freshtoken._token import Token


@runtime_checkable
class TokenSource(Protocol):
    def token(self, min_ttl: float | None = None) -> Token:
        """A token valid for at least `min_ttl` seconds."""
        ...


@runtime_checkable
class RenewableSource(TokenSource, Protocol):
    """A source that can be told a token was refused, and serves asyncio too."""

    async def atoken(self, min_ttl: float | None = None) -> Token: ...
    def invalidate(self, token: Token) -> None:
        """`token` got a 401: forget it if it is still the one handed out."""
        ...


class CertificateBinding(Protocol):
    """What the HTTP adapters know of a client certificate the tokens may be bound to (RFC
    8705 §3): what to present, and the error when a bound token went without it."""

    @property
    def tls(self) -> ssl.SSLContext:
        """The token client's own context, presenting the certificate."""
        ...

    @property
    def thumbprint(self) -> str: ...
    def ssl_context(self) -> ssl.SSLContext:
        """A new context presenting the certificate."""
        ...

    def refused(self, fix: str) -> Exception: ...


def binding(source: object) -> CertificateBinding | None:
    """The binding of a source's tokens: a TokenBroker's minting over mutual TLS, else None
    (an EndpointSource's endpoint hands out no bound token)."""
    found: CertificateBinding | None = getattr(getattr(source, "client", None), "binding", None)
    return found
