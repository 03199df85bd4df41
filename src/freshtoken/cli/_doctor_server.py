"""What `freshtoken doctor` says about the server: the endpoints in use (each with where it came
from), what its discovery document says it supports (and where the configured client
authentication is not among it), and what was learned about the server.

A new line in "what was learned" is one function `(Seen) -> Check | None` added to `LEARNED`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from freshtoken._log import redact_url
from freshtoken.cli._status import vouching
from freshtoken.oauth._response import unverified_claims
from freshtoken.oauth._tls_auth import TLS_METHODS

if TYPE_CHECKING:
    from freshtoken._token import Token
    from freshtoken.broker._broker import TokenBroker
    from freshtoken.config._settings import Settings
    from freshtoken.provider._endpoints import Endpoints
    from freshtoken.stores import Entry


@dataclass
class Check:
    state: str  # ok | fail | warn | info
    title: str
    fix: str = ""


@dataclass(frozen=True)
class Seen:
    """What doctor has in hand once a token was minted (or adopted from the store)."""

    settings: Settings
    endpoints: Endpoints
    broker: TokenBroker
    token: Token


def duration(seconds: float) -> str:
    """A lifetime for people: seconds below a minute ("3 s"), else minutes ("5 min")."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = seconds / 60
    return f"{minutes:.0f} min" if minutes >= 10 or minutes.is_integer() else f"{minutes:.1f} min"


def _url(url: str, source: str | None) -> str:
    return redact_url(url) + (f"  (from {source})" if source else "")


def endpoint_lines(endpoints: Endpoints) -> list[Check]:
    """The token, introspection and revocation endpoints in use, and where each came from."""
    lines = [
        Check("info", "token endpoint: " + _url(endpoints.token_url, endpoints.source("token_url")))
    ]
    if endpoints.introspection_url:
        lines.append(
            Check(
                "info",
                "introspection: "
                + _url(endpoints.introspection_url, endpoints.source("introspection_url")),
            )
        )
    else:
        lines.append(
            Check(
                "info",
                "introspection: not available (set FRESHTOKEN_INTROSPECTION_URL if the server "
                "has an RFC 7662 endpoint)",
            )
        )
    if (way := endpoints.revocation()) is not None:
        lines.append(Check("info", "revocation: " + _url(*way)))
    else:
        lines.append(
            Check(
                "info",
                "revocation: not available: freshtoken revoke cannot revoke at the server (set "
                "FRESHTOKEN_REVOCATION_URL if it has an RFC 7009 endpoint)",
            )
        )
    return lines


_UNDER_REPORTS = "; a server that answers anyway under-reports it"


def supported(endpoints: Endpoints, method: str, alg: str | None) -> list[Check]:
    """What the discovery document says the token endpoint supports (RFC 8414 §2, RFC 8705
    §3.3); the configured method or signing algorithm not among it is a warning, not a
    failure: servers under-report, and the token request tells."""
    if not endpoints.metadata:
        read = any(src.startswith(("https://", "http://")) for _name, src in endpoints.sources)
        said = (
            "the discovery document says nothing of the methods and algorithms it supports"
            if read
            else "no discovery document read (FRESHTOKEN_ISSUER not set, or the endpoints set "
            "directly)"
        )
        return [Check("info", "server metadata: " + said)]
    checks = []
    methods = endpoints.listed("token_endpoint_auth_methods_supported")
    if methods is not None:
        checks.append(Check("info", "server supports client authentication: " + ", ".join(methods)))
        if method not in methods:
            checks.append(
                Check(
                    "warn",
                    f"the discovery document's token_endpoint_auth_methods_supported does not list "
                    f"{method}, the configured method",
                    f"The server may refuse it (invalid_client){_UNDER_REPORTS}. Check the "
                    "client's registration, or set FRESHTOKEN_AUTH_METHOD to a listed method.",
                )
            )
    algs = endpoints.listed("token_endpoint_auth_signing_alg_values_supported")
    if algs is not None and method in ("private_key_jwt", "client_secret_jwt"):
        checks.append(Check("info", "server takes assertions signed with: " + ", ".join(algs)))
        if alg is not None and alg not in algs:
            checks.append(
                Check(
                    "warn",
                    f"the discovery document's token_endpoint_auth_signing_alg_values_supported "
                    f"does not list {alg}, the configured signing algorithm",
                    f"The server may refuse the assertion{_UNDER_REPORTS}. Set "
                    f"FRESHTOKEN_SIGNING_ALG to a listed one the key allows.",
                )
            )
    bound = dict(endpoints.metadata).get("tls_client_certificate_bound_access_tokens")
    if isinstance(bound, bool):
        does = "binds" if bound else "does not bind"
        checks.append(
            Check(
                "info",
                f"server {does} access tokens to client certificates "
                "(tls_client_certificate_bound_access_tokens)",
            )
        )
    elif method in TLS_METHODS:
        checks.append(
            Check(
                "info",
                "server metadata does not say whether it binds access "
                "tokens to client certificates",
            )
        )
    return checks


def _provider(seen: Seen) -> Check:
    region = seen.endpoints.region
    if preset := seen.endpoints.preset:
        where = f" (region {region})" if region else ""
        return Check(
            "info", f"learned: provider preset {preset.title}{where}: its hints and revoke"
        )
    return Check("info", "learned: no provider preset: generic OAuth 2.0 hints and revoke")


#: "What was learned about the server": one line each, None to say nothing.
def _rotation(seen: Seen) -> Check | None:
    """For a refresh token: whether rotating it revokes the previous access token."""
    said = describe_rotation(
        seen.settings.rotation_revokes_access, seen.broker.store.load(seen.broker.key)
    )
    return Check("info", said) if said else None


def _vouching(seen: Seen) -> Check | None:
    """For a refresh token: whether introspection can tell a spent one from a live one."""
    entry = seen.broker.store.load(seen.broker.key)
    if entry is None or entry.refresh_token is None:
        return None
    return Check("info", f"introspection vouches for refresh tokens: {vouching(entry)}")


def _grants_listed(seen: Seen) -> Check | None:
    """A discovery document that omits a grant in use: noted, never refused (servers
    under-report: client_credentials and refresh_token work where some leave them out)."""
    listed = seen.endpoints.listed("grant_types_supported")
    if listed is None:
        return None
    entry = seen.broker.store.load(seen.broker.key)
    used = {seen.settings.grant} | ({"refresh_token"} if entry and entry.refresh_token else set())
    missing = sorted(used - set(listed))
    if not missing:
        return None
    return Check(
        "info",
        f"the discovery document's grant_types_supported leaves out {', '.join(missing)}, "
        "which this server answered anyway: it under-reports (nothing is refused for that)",
    )


def _bound(seen: Seen) -> Check | None:
    """Under mutual TLS: whether the token is bound to the certificate (RFC 8705 §3: `cnf`
    with `x5t#S256`, in a JWT's claims or the introspection answer); where neither says, it
    is treated as bound."""
    binding = seen.broker.client.binding
    if binding is None:
        return None  # no certificate presented: no token can be bound to one
    value = seen.token.access_token
    where, cnf = "its claims", (unverified_claims(value) or {}).get("cnf")
    if not isinstance(cnf, dict) and seen.endpoints.introspection_url:
        where, cnf = "introspection", (seen.broker.client.introspection(value) or {}).get("cnf")
    thumbprint = cnf.get("x5t#S256") if isinstance(cnf, dict) else None
    if thumbprint is None:
        return Check(
            "info",
            f"the token is treated as bound to the client certificate "
            f"(x5t#S256 {binding.thumbprint}): neither its claims nor introspection "
            "say; API calls go through the proxy or present the certificate",
        )
    if thumbprint != binding.thumbprint:
        return Check(
            "warn",
            f"the token is bound to another certificate (cnf x5t#S256 {thumbprint}, from "
            f"{where}) than the configured one ({binding.thumbprint})",
            "Check FRESHTOKEN_CLIENT_CERT_FILE: API calls presenting this one will be refused.",
        )
    return Check(
        "info",
        f"the token is bound to the client certificate (cnf x5t#S256 "
        f"{thumbprint}, from {where}): API calls go through the proxy or present "
        "the certificate",
    )


LEARNED: list[Callable[[Seen], Check | None]] = [
    _provider,
    _rotation,
    _vouching,
    _grants_listed,
    _bound,
]


def learned(seen: Seen) -> list[Check]:
    return [line for fact in LEARNED if (line := fact(seen)) is not None]


def describe_rotation(mode: str, entry: Entry | None) -> str | None:
    """What is known of the server's rotation, and what follows (for `doctor`); None when
    nothing rotates (no refresh token held)."""
    learned = entry.facts.revokes_on_rotation if entry is not None else None
    if entry is None or entry.refresh_token is None:
        return None
    if mode != "auto":
        known = f"{mode} (FRESHTOKEN_ROTATION_REVOKES_ACCESS)"
    elif learned is not None:
        known = f"{'yes' if learned else 'no'} (learned through introspection)"
    else:
        known = "not known yet (introspection tells, after a rotation), assumed yes"
    kept = mode == "yes" or (mode == "auto" and learned is not False)
    then = "a rotation waits until no token handed out is promised valid any more"
    return f"rotating the refresh token revokes the previous access token: {known}; " + (
        then if kept else "rotations do not wait"
    )
