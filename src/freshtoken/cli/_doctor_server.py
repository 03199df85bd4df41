"""What `freshtoken doctor` says about the server: the endpoints in use (each with where it came
from) and what was learned about the server.

A new line in "what was learned" is one function `(Seen) -> Check | None` added to `LEARNED`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from freshtoken._log import redact_url
from freshtoken.broker._promise import describe
from freshtoken.broker._unfinished import vouching

if TYPE_CHECKING:
    from freshtoken._token import Token
    from freshtoken.broker._broker import TokenBroker
    from freshtoken.config._settings import Settings
    from freshtoken.provider._endpoints import Endpoints


@dataclass
class Check:
    state: str  # ok | fail | info
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
    said = describe(seen.settings.rotation_revokes_access, seen.broker.store.load(seen.broker.key))
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
    listed = seen.endpoints.grant_types
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


LEARNED: list[Callable[[Seen], Check | None]] = [_provider, _rotation, _vouching, _grants_listed]


def learned(seen: Seen) -> list[Check]:
    return [line for fact in LEARNED if (line := fact(seen)) is not None]
