"""RFC 8414 / OpenID Connect discovery, as a sans-IO exchange, cached per issuer.

An issuer with a path (`https://host/o`) may publish its metadata at several places, each
listing a different part of what it has (django-oauth-toolkit's OIDC document names no
revocation endpoint, its RFC 8414 one does): the documents are read in order, only those that
name the configured issuer are trusted, and the first to name an endpoint wins it.
"""

from __future__ import annotations

import threading
from urllib.parse import urlsplit, urlunsplit

import httpx

from freshtoken._errors import ConfigurationError, FreshtokenError, MalformedResponseError
from freshtoken._http import Exchange, json_object
from freshtoken._log import logger
from freshtoken.provider._endpoints import Endpoints, check_url

_CACHE_SECONDS = 3600.0
_cache: dict[str, tuple[float, Endpoints]] = {}
_cache_lock = threading.Lock()

_RFC8414 = "/.well-known/oauth-authorization-server"
_OIDC = "/.well-known/openid-configuration"
#: metadata name -> Endpoints field.
_FIELDS = {
    "token_endpoint": "token_url",
    "revocation_endpoint": "revocation_url",
    "introspection_endpoint": "introspection_url",
    "authorization_endpoint": "authorization_url",
    "device_authorization_endpoint": "device_authorization_url",
}
#: What doctor shows of the metadata: lists (RFC 8414 §2) and RFC 8705 §3.3's flag.
FACTS = (
    "grant_types_supported",
    "token_endpoint_auth_methods_supported",
    "token_endpoint_auth_signing_alg_values_supported",
    "tls_client_certificate_bound_access_tokens",
)
#: The endpoints a client calls itself: those whose RFC 8705 §5 aliases are taken.
_ALIASED = ("token_url", "revocation_url", "introspection_url", "device_authorization_url")
#: Once these are known the remaining documents are not fetched.
_WANTED = ("token_url", "revocation_url", "introspection_url")


def metadata_urls(issuer: str) -> list[str]:
    """Where the metadata may be, in the order read. RFC 8414 inserts the well-known segment
    before the issuer's path (§3.1); many servers append it, as OIDC does; RFC 8414 §5 notes the
    inserted form for OIDC too. An issuer without a path has two places."""
    parts = urlsplit(issuer.rstrip("/"))
    path = parts.path
    paths = (_RFC8414 + path, path + _RFC8414, path + _OIDC, _OIDC + path)
    return list(dict.fromkeys(urlunsplit((parts.scheme, parts.netloc, p, "", "")) for p in paths))


def cached(issuer: str, now: float) -> Endpoints | None:
    with _cache_lock:
        hit = _cache.get(issuer)
    return hit[1] if hit and now - hit[0] < _CACHE_SECONDS else None


def _untrusted(meta: dict[str, object] | None, url: str, issuer: str) -> FreshtokenError | None:
    """Why the document at `url` cannot be used, or None."""
    if meta is None:
        return MalformedResponseError(
            f"discovery document at {url} is not a JSON object",
            hint=f"Check that {issuer} is the issuer URL of an OAuth/OIDC server.",
        )
    if str(meta.get("issuer", "")).rstrip("/") != issuer.rstrip("/"):
        return ConfigurationError(
            f"discovery document at {url} names issuer {meta.get('issuer')!r}",
            hint="RFC 8414 requires the metadata's issuer to equal the configured one: set "
            "FRESHTOKEN_ISSUER to exactly that value.",
        )
    return None


def _is_openid(meta: dict[str, object]) -> bool:
    """The document is an OpenID provider's: it has what OpenID Connect Discovery §3 requires
    of one, or lists the openid scope."""
    scopes = meta.get("scopes_supported")
    return "id_token_signing_alg_values_supported" in meta or (
        isinstance(scopes, list) and "openid" in scopes
    )


def _merge(
    meta: dict[str, object],
    url: str,
    found: dict[str, tuple[str, str]],
    facts: dict[str, tuple[str, ...] | bool],
    aliases: dict[str, tuple[str, str]],
) -> None:
    """Add what the trusted document at `url` says: the first document to say a thing wins."""
    for name in FACTS:
        said = meta.get(name)
        if name not in facts and isinstance(said, list | bool):
            facts[name] = tuple(str(x) for x in said) if isinstance(said, list) else said
    listed = meta.get("mtls_endpoint_aliases")
    for key, name in _FIELDS.items():
        value = meta.get(key)
        if isinstance(value, str) and name not in found:
            found[name] = (check_url(value, f"discovered {key}"), url)
        alias = listed.get(key) if isinstance(listed, dict) else None
        if isinstance(alias, str) and name in _ALIASED and name not in aliases:
            aliases[name] = (check_url(alias, f"discovered mtls_endpoint_aliases {key}"), url)


def discover(issuer: str, now: float) -> Exchange[Endpoints]:
    """Read the issuer's metadata documents, merge what the trusted ones say, and check it."""
    check_url(issuer, "FRESHTOKEN_ISSUER")
    found: dict[str, tuple[str, str]] = {}  # field -> (URL, the document that named it)
    tried: list[str] = []
    refused: list[FreshtokenError] = []  # in the order met; the first is raised if nothing is found
    untrusted: list[str] = []
    openid = False
    facts: dict[str, tuple[str, ...] | bool] = {}
    aliases: dict[str, tuple[str, str]] = {}  # field -> (URL, the document that named it)
    whole = True
    for url in metadata_urls(issuer):
        try:
            reply = yield httpx.Request("GET", url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            # Every form is on the issuer's host and shares the caller's budget: the next
            # would fail alike.
            tried.append(f"{url}: {type(exc).__name__}")
            whole = False
            break
        assert reply is not None
        if reply.status != 200:
            tried.append(f"{url}: HTTP {reply.status}")
            continue
        meta = json_object(reply.body)
        if problem := _untrusted(meta, url, issuer):
            refused.append(problem)
            untrusted.append(problem.message)
            tried.append(f"{url}: {problem.message}")
            continue
        assert meta is not None
        if not isinstance(meta.get("token_endpoint"), str):
            refused.append(
                MalformedResponseError(
                    f"discovery document at {url} has no token_endpoint",
                    status=reply.status,
                    hint=f"Check that {issuer} is the issuer URL of an OAuth/OIDC server.",
                )
            )
        openid = openid or _is_openid(meta)
        _merge(meta, url, found, facts, aliases)
        if all(name in found for name in _WANTED):
            break
    if "token_url" not in found:
        if refused:
            raise refused[0]
        raise ConfigurationError(
            f"no discovery document found for issuer {issuer}",
            hint="Tried " + "; ".join(tried) + ". Check FRESHTOKEN_ISSUER, or set "
            "FRESHTOKEN_TOKEN_URL directly.",
            error="discovery_failed",
        ) from None
    for message in untrusted:
        logger.warning("%s: not trusted, ignored", message)
    endpoints = Endpoints(
        token_url=found["token_url"][0],
        issuer=issuer,
        openid=openid,
        metadata=tuple(facts.items()),
        mtls_aliases=tuple((name, url, doc) for name, (url, doc) in aliases.items()),
        **{name: url for name, (url, _doc) in found.items() if name != "token_url"},
        sources=tuple((name, doc) for name, (_url, doc) in found.items()),
    )
    if whole:  # a document cut off by a failure is read again next time
        with _cache_lock:
            _cache[issuer] = (now, endpoints)
    return endpoints


__all__ = ["cached", "discover", "metadata_urls"]
