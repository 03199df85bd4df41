"""Settings in, working parts out: endpoints, client authentication, token client, grant and
store. The one module that sees every layer below the broker; the extension tables live here.

A new client-authentication method is a class in `oauth/_client_auth.py` and a row in
`AUTH_METHODS`; a new grant a class in `oauth/_grants.py` and a row in `GRANTS`; a new store a
module in `stores/` and a row in `stores.SCHEMES`; a new refresh-token sink a module in `sinks/`
and a row in `sinks.SCHEMES`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from freshtoken._clock import SYSTEM_CLOCK, Clock
from freshtoken._errors import ConfigurationError
from freshtoken._secret import Secret
from freshtoken.config._settings import Settings
from freshtoken.oauth._client_auth import (
    ClientAuth,
    ClientSecretBasic,
    ClientSecretPost,
    PublicClient,
)
from freshtoken.oauth._grants import ClientCredentials, Grant, JwtBearer, TokenExchange
from freshtoken.provider._endpoints import Endpoints, check_url
from freshtoken.provider._presets import REGIONAL, preset_of
from freshtoken.stores import TokenStore, open_store

if TYPE_CHECKING:
    from freshtoken.oauth._assertions import AssertionSource
    from freshtoken.oauth._client import TokenClient
    from freshtoken.oauth._jws import SigningKey
    from freshtoken.oauth._tls_auth import ClientCertificate
    from freshtoken.provider._presets import Preset
    from freshtoken.provider._regions import Region
    from freshtoken.sinks import RefreshTokenSink


def _secret_of(settings: Settings) -> Secret:
    if not settings.client_secret:
        raise ConfigurationError(
            "this client authentication needs a client secret and none was given",
            hint="Set FRESHTOKEN_CLIENT_SECRET, or FRESHTOKEN_CLIENT_SECRET_FILE to a file "
            "holding it, or FRESHTOKEN_CLIENT_SECRET_KEYRING to an OS keyring entry.",
        )
    return settings.client_secret


def _private_key_jwt(settings: Settings) -> ClientAuth:
    if not settings.client_key:
        raise ConfigurationError(
            "private_key_jwt needs the client's private key and none was given",
            hint="Set FRESHTOKEN_CLIENT_KEY_FILE to a PEM private key file (or "
            "FRESHTOKEN_CLIENT_KEY_KEYRING to an OS keyring entry holding it).",
        )
    # Here, not at the top: the assertion methods load cryptography's key serialization, which
    # a store hit (the command line reads the cache key through this module) never needs.
    from freshtoken.oauth._jws import load_key
    from freshtoken.oauth._jwt_auth import PrivateKeyJwt

    key = load_key(
        settings.client_key, settings.client_key_passphrase, settings.label("client_key")
    )
    return PrivateKeyJwt(
        settings.require_client_id(),
        key,
        alg=settings.signing_alg or None,
        key_id=settings.client_key_id,
        audience=settings.assertion_audience,
        certificate=_certificate(settings, key) if settings.client_cert else None,
    )


def _certificate(settings: Settings, key: SigningKey) -> ClientCertificate:
    """The client certificate of `key` (client_cert), checked to be that key's."""
    from freshtoken.oauth._tls_auth import ClientCertificate, load_chain

    assert settings.client_cert is not None
    return ClientCertificate(load_chain(settings.client_cert, settings.label("client_cert")), key)


def _tls(method: str) -> Callable[[Settings], ClientAuth]:
    def build(settings: Settings) -> ClientAuth:
        if not (settings.client_cert and settings.client_key):
            raise ConfigurationError(
                f"{method} needs the client certificate and its private key",
                hint="Set FRESHTOKEN_CLIENT_CERT_FILE to the PEM certificate and "
                "FRESHTOKEN_CLIENT_KEY_FILE to its PEM private key (docs/mutual-tls.md).",
            )
        from freshtoken.oauth._jws import load_key
        from freshtoken.oauth._tls_auth import TlsClientAuth

        key = load_key(
            settings.client_key, settings.client_key_passphrase, settings.label("client_key")
        )
        return TlsClientAuth(settings.require_client_id(), _certificate(settings, key), method)

    return build


def _client_secret_jwt(settings: Settings) -> ClientAuth:
    from freshtoken.oauth._jwt_auth import ClientSecretJwt

    return ClientSecretJwt(
        settings.require_client_id(),
        _secret_of(settings),
        alg=settings.signing_alg or "HS256",
        audience=settings.assertion_audience,
    )


#: auth_method -> how to build it from the settings.
AUTH_METHODS: dict[str, Callable[[Settings], ClientAuth]] = {
    "client_secret_basic": lambda s: ClientSecretBasic(s.require_client_id(), _secret_of(s)),
    "client_secret_post": lambda s: ClientSecretPost(s.require_client_id(), _secret_of(s)),
    "none": lambda s: PublicClient(s.require_client_id()),
    "private_key_jwt": _private_key_jwt,
    "client_secret_jwt": _client_secret_jwt,
    "tls_client_auth": _tls("tls_client_auth"),
    "self_signed_tls_client_auth": _tls("self_signed_tls_client_auth"),
}


def _source(settings: Settings, key: str) -> AssertionSource:
    """The platform assertion the setting `key` names (file:PATH, github-actions:AUDIENCE)."""
    spec = getattr(settings, key)
    if not spec:
        raise ConfigurationError(
            f"the {settings.grant} grant needs {settings.label(key)}",
            hint=f"Set {settings.label(key)} to file:PATH or github-actions:AUDIENCE "
            "(docs/workload-identity.md).",
        )
    from freshtoken.oauth._assertions import assertion_source

    return assertion_source(spec, settings.label(key), os.environ)


def _token_exchange(s: Settings) -> Grant:
    actor = _source(s, "actor_token") if s.actor_token else None
    return TokenExchange(_source(s, "subject_token"), s.subject_token_type,
                         s.requested_token_type, s.audience, s.resource, s.scope, actor,
                         s.actor_token_type)  # fmt: skip


#: grant -> what mints a token when no refresh token is held (None: refresh tokens only).
GRANTS: dict[str, Callable[[Settings], Grant | None]] = {
    "client_credentials": lambda s: ClientCredentials(s.scope, s.audience, s.resource),
    "refresh_token": lambda s: None,
    "jwt_bearer": lambda s: JwtBearer(_source(s, "assertion"), s.scope),
    "token_exchange": _token_exchange,
}


def endpoints(settings: Settings) -> Endpoints | None:
    """The endpoints when known without the network; None when discovery is needed.

    A region, or the provider setting, selects a provider preset (provider/_presets.py);
    `api_url` and `token_url` then point it anywhere (a gateway, the shipped test server)."""
    preset = preset_of(settings.provider, settings.region)
    region = _region(preset, settings.region)
    api_url = settings.api_url or (region.api_base_url if region else None)
    if settings.api_url:
        check_url(settings.api_url, settings.label("api_url"))
    if preset and not region and not (settings.token_url and api_url):
        token, api = (preset.urls.get(k, "").format(domain="<domain>") for k in _PRESET_URLS)
        raise ConfigurationError(
            f"the {preset.name} provider without a region needs a token URL and an API URL",
            hint=f"Set FRESHTOKEN_TOKEN_URL ({token}) and FRESHTOKEN_API_URL ({api}), or "
            f"FRESHTOKEN_REGION (e.g. {preset.example_region}).",
        )
    urls: dict[str, Any] = {}
    sources: tuple[tuple[str, str], ...] = ()
    if preset:
        from freshtoken.provider._regions import preset_urls

        urls, sources = preset_urls(preset, region, settings.token_url)
    if settings.issuer and not settings.token_url:
        check_url(settings.issuer, settings.label("issuer"))
        pinned(settings)  # checked before anything is sent
        return None
    token_url = settings.token_url or urls.pop("token_url", None)
    if not token_url:
        raise ConfigurationError(
            "no token endpoint configured",
            hint="Set FRESHTOKEN_TOKEN_URL, or FRESHTOKEN_ISSUER (discovery), or "
            f"FRESHTOKEN_REGION ({REGIONAL.title}, e.g. {REGIONAL.example_region}).",
        )
    return Endpoints(
        token_url=token_url,
        api_base_url=api_url,
        region=region.key if region else None,
        provider=preset.name if preset else None,
        sources=sources,
        **urls,
    ).pinned(pinned(settings))


_PRESET_URLS = ("token_url", "api_base_url")


def pinned(settings: Settings) -> dict[str, tuple[str, str]]:
    """The endpoint URLs set by configuration (they win over discovery): field -> (URL, where
    it was set). Each is checked against the URL safety rule."""
    found: dict[str, tuple[str, str]] = {}
    for key in ("token_url", "introspection_url", "revocation_url"):
        if (value := getattr(settings, key)) is not None:
            found[key] = (check_url(value, settings.label(key)), settings.label(key))
    return found


def proxy_upstream(settings: Settings) -> str | None:
    """Where `serve --proxy` forwards by default: the proxy_upstream setting, else the API URL
    (api_url, or the API host of a preset's region); None when none is known."""
    if settings.proxy_upstream:
        return settings.proxy_upstream
    if settings.api_url:
        return settings.api_url
    region = _region(preset_of(settings.provider, settings.region), settings.region)
    return region.api_base_url if region else None


def _region(preset: Preset | None, value: str | None) -> Region | None:
    """The preset's region `value` names (None without both). Its table is imported here: a
    client configured by its URLs (a store hit's cache key) reads none."""
    if not (preset and value):
        return None
    from freshtoken.provider._regions import resolve_region

    return resolve_region(preset, value)


def client_auth(settings: Settings) -> ClientAuth:
    if settings.client_assertion:
        return _platform_assertion(settings)
    # Settings accept only the option's choices; a test keeps them equal to this table.
    return AUTH_METHODS[settings.auth_method](settings)


def _platform_assertion(settings: Settings) -> ClientAuth:
    """A client assertion the platform issued (FRESHTOKEN_CLIENT_ASSERTION): what
    private_key_jwt sends, signed by someone else."""
    if "auth_method" in settings.sources and settings.auth_method != "private_key_jwt":
        raise ConfigurationError(
            f"{settings.label('client_assertion')} is a client assertion, and "
            f"{settings.label('auth_method')} is {settings.auth_method}",
            hint="Unset FRESHTOKEN_AUTH_METHOD (or set it to private_key_jwt), or unset "
            "FRESHTOKEN_CLIENT_ASSERTION.",
        )
    from freshtoken.oauth._assertions import PlatformAssertion, assertion_source

    spec = str(settings.client_assertion)
    source = assertion_source(spec, settings.label("client_assertion"), os.environ)
    return PlatformAssertion(settings.require_client_id(), source)


def grant(settings: Settings) -> Grant | None:
    """What mints a token when no refresh token is held (None: refresh tokens only)."""
    return GRANTS[settings.grant](settings)


def token_client(settings: Settings, clock: Clock = SYSTEM_CLOCK) -> TokenClient:
    """A client for the configured endpoint, credentials and timeouts."""
    # httpx only once a client is built: the command line's store peek needs none.
    from freshtoken._http import Timeouts
    from freshtoken.oauth._client import RetryPolicy, TokenClient

    found = endpoints(settings)
    return TokenClient(
        client_auth(settings),
        endpoints=found,
        issuer=None if found else settings.issuer,
        pinned=None if found else pinned(settings),
        policy=RetryPolicy(budget=settings.retry_budget),
        timeouts=Timeouts(connect=settings.connect_timeout, read=settings.read_timeout),
        clock=clock,
    )


def store_for(settings: Settings) -> TokenStore:
    """The configured store."""
    return open_store(
        settings.store,
        settings.store_key,
        redis_password=settings.redis_password,
        redis_prefix=settings.redis_prefix,
        timeout=settings.redis_timeout,
        lease=settings.redis_lease,
        fail=settings.store_fail,
    )


def credential_variables(settings: Settings) -> frozenset[str]:
    """The platform's credential variables the assertion settings use (GitHub's OIDC request
    token): like the secrets, never in the environment of a program freshtoken starts (`exec`'s
    child, a `command:` sink's)."""
    from freshtoken.oauth._assertions import credential_variables as of_sources

    specs = (settings.client_assertion, settings.assertion)
    return of_sources((*specs, settings.subject_token, settings.actor_token))


def sink_for(
    settings: Settings, clock: Clock = SYSTEM_CLOCK, environ: Mapping[str, str] | None = None
) -> RefreshTokenSink | None:
    """The configured refresh-token sink, None when there is none. The GitHub API base is
    `$GITHUB_API_URL` (set on GitHub Actions runners; GitHub Enterprise Server's own)."""
    if not settings.refresh_token_sink:
        return None
    from freshtoken._http import Timeouts
    from freshtoken.sinks import GITHUB_API, SinkOptions, open_sink

    env = os.environ if environ is None else environ
    withheld = credential_variables(settings)
    options = SinkOptions(
        github_token=settings.github_token,
        github_api_url=env.get("GITHUB_API_URL", "").strip() or GITHUB_API,
        timeouts=Timeouts(connect=settings.connect_timeout, read=settings.read_timeout),
        clock=clock,
        environ={k: v for k, v in env.items() if k not in withheld},
    )
    return open_sink(settings.refresh_token_sink, options)


def broker_parts(
    settings: Settings, clock: Clock | None = None, *, store: TokenStore | None = None
) -> dict[str, Any]:
    """`TokenBroker`'s arguments for these settings: client, grant, store and sink."""
    return {
        "client": token_client(settings, clock or SYSTEM_CLOCK),
        "grant": grant(settings),
        "store": store if store is not None else store_for(settings),
        "sink": sink_for(settings, clock or SYSTEM_CLOCK),
    }
