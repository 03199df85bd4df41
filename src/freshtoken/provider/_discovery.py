"""RFC 8414 / OpenID Connect discovery, as a sans-IO exchange, cached per issuer."""

from __future__ import annotations

import threading
from urllib.parse import urlsplit, urlunsplit

import httpx

from freshtoken._errors import ConfigurationError, MalformedResponseError
from freshtoken._http import Exchange, json_object
from freshtoken.provider._endpoints import Endpoints, check_url

_CACHE_SECONDS = 3600.0
_cache: dict[str, tuple[float, Endpoints]] = {}
_cache_lock = threading.Lock()


def metadata_urls(issuer: str) -> list[str]:
    """RFC 8414 puts the well-known segment before the issuer's path; OIDC appends it."""
    parts = urlsplit(issuer.rstrip("/"))
    path = parts.path
    rfc8414 = urlunsplit(
        (parts.scheme, parts.netloc, "/.well-known/oauth-authorization-server" + path, "", "")
    )
    oidc = urlunsplit(
        (parts.scheme, parts.netloc, path + "/.well-known/openid-configuration", "", "")
    )
    return [rfc8414, oidc]


def cached(issuer: str, now: float) -> Endpoints | None:
    with _cache_lock:
        hit = _cache.get(issuer)
    return hit[1] if hit and now - hit[0] < _CACHE_SECONDS else None


def _optional_url(meta: dict[str, object], name: str) -> str | None:
    value = meta.get(name)
    return check_url(value, f"discovered {name}") if isinstance(value, str) else None


def discover(issuer: str, now: float) -> Exchange[Endpoints]:
    """Fetch the issuer's metadata (first form that answers 200) and check it."""
    check_url(issuer, "FRESHTOKEN_ISSUER")
    tried: list[str] = []
    for url in metadata_urls(issuer):
        try:
            reply = yield httpx.Request("GET", url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            tried.append(f"{url}: {type(exc).__name__}")
            continue
        assert reply is not None
        if reply.status != 200:
            tried.append(f"{url}: HTTP {reply.status}")
            continue
        meta = json_object(reply.body)
        if meta is None or not isinstance(meta.get("token_endpoint"), str):
            raise MalformedResponseError(
                f"discovery document at {url} has no token_endpoint",
                status=reply.status,
                hint=f"Check that {issuer} is the issuer URL of an OAuth/OIDC server.",
            )
        if str(meta.get("issuer", "")).rstrip("/") != issuer.rstrip("/"):
            raise ConfigurationError(
                f"discovery document at {url} names issuer {meta.get('issuer')!r}",
                hint="RFC 8414 requires the metadata's issuer to equal the configured one: set "
                "FRESHTOKEN_ISSUER to exactly that value.",
            )
        endpoints = Endpoints(
            token_url=check_url(meta["token_endpoint"], "discovered token_endpoint"),
            issuer=issuer,
            revocation_url=_optional_url(meta, "revocation_endpoint"),
            introspection_url=_optional_url(meta, "introspection_endpoint"),
            authorization_url=_optional_url(meta, "authorization_endpoint"),
            device_authorization_url=_optional_url(meta, "device_authorization_endpoint"),
        )
        with _cache_lock:
            _cache[issuer] = (now, endpoints)
        return endpoints
    raise ConfigurationError(
        f"no discovery document found for issuer {issuer}",
        hint="Tried " + "; ".join(tried) + ". Check FRESHTOKEN_ISSUER, or set "
        "FRESHTOKEN_TOKEN_URL directly.",
        error="discovery_failed",
    ) from None


__all__ = ["cached", "discover", "metadata_urls"]
