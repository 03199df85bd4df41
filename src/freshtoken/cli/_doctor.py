"""`freshtoken doctor`: a checklist, each failing line with its fix. Secrets are never shown."""

from __future__ import annotations

import json
import os
import socket
import sys
from urllib.parse import urlsplit

import click

from freshtoken import _build
from freshtoken._errors import FreshtokenError
from freshtoken._local_endpoint import EndpointRefusal, ask, get, running_endpoint
from freshtoken._log import one_line, redact_url
from freshtoken._token import CLI_MIN_TTL
from freshtoken.cli._common import fail_with, run
from freshtoken.cli._doctor_server import (
    Check,
    Seen,
    duration,
    endpoint_lines,
    learned,
    supported,
)
from freshtoken.cli._status import store_url
from freshtoken.config._load import unknown_variables
from freshtoken.config._options import OPTIONS
from freshtoken.config._settings import Settings
from freshtoken.oauth._client_auth import credential
from freshtoken.provider._presets import words
from freshtoken.stores import TokenStore


def _configuration(settings: Settings) -> list[Check]:
    checks = [Check("ok", f"configuration loaded (profile {settings.profile or 'default'})")]
    for option in OPTIONS:
        source = settings.sources.get(option.key)
        if source is None:
            continue
        if option.kind == "secret":
            shown = "set"
        else:
            value = getattr(settings, option.key)
            shown = redact_url(" ".join(value) if isinstance(value, tuple) else str(value))
        checks.append(Check("info", f"{option.key} = {shown}  (from {source})"))
    return checks


def _client_auth(settings: Settings) -> list[Check]:
    """The client authentication; for an assertion, its algorithm and key's thumbprint, and
    the public JWK to register (never the private key)."""
    auth = _build.client_auth(settings)
    described = credential(auth)
    shown = described or settings.auth_method
    checks = [Check("ok" if described else "info", f"client authentication {shown}")]
    if jwk := getattr(auth, "jwk", None):
        checks.append(Check("info", "public JWK to register: " + json.dumps(jwk)))
    return checks


def _method(settings: Settings) -> str:
    """The client authentication method in use (a platform's client assertion is sent as
    private_key_jwt's)."""
    return "private_key_jwt" if settings.client_assertion else settings.auth_method


def _endpoint(settings: Settings) -> Check:
    endpoints = _build.endpoints(settings)
    url = endpoints.token_url if endpoints else settings.issuer or ""
    host = urlsplit(url).hostname or ""
    port = urlsplit(url).port or (443 if url.startswith("https") else 80)
    try:
        with socket.create_connection((host, port), timeout=5):
            pass
    except socket.gaierror:
        return Check(
            "fail",
            f"{host} does not resolve",
            "Check the token URL or region spelling, and this machine's DNS.",
        )
    except OSError as exc:
        return Check(
            "fail",
            f"{host}:{port} does not answer ({exc.strerror})",
            "Check the network path (firewall, HTTPS_PROXY/NO_PROXY) and the port.",
        )
    where = words(endpoints.provider, endpoints.region, "region") if endpoints else ""
    return Check("ok", f"{host}:{port} resolves and answers{where}")


def _writable(settings: Settings, store: TokenStore, key: str) -> Check:
    """The minted token reached the store (a fail-open store would have kept it locally)."""
    if getattr(store, "_down", False):
        return Check(
            "fail",
            "the store is not writable: tokens are kept in this process only",
            "Check the store's path and permissions (SQLite) or its server (Redis).",
        )
    if (settings.store or "").startswith("memory:"):
        return Check("info", "memory:// store: tokens are shared within one process only")
    fresh = _build.store_for(settings)
    try:
        stored = fresh.load(key) is not None
    finally:
        fresh.close()
    if stored:
        return Check("ok", "the store is writable (the new token is shared)")
    return Check(
        "fail",
        "the store is not writable: the new token was not saved",
        "Check the store's path and permissions (SQLite) or its server (Redis).",
    )


def _margin(lifetime: float, min_ttl: float | None) -> Check:
    """Does the margin callers ask for (--min-ttl, else the min_ttl setting, else the CLI's)
    fit the lifetime?"""
    margin = min_ttl if min_ttl is not None else min(CLI_MIN_TTL, 0.5 * lifetime)
    if margin >= lifetime:
        return Check(
            "fail",
            f"a margin of {margin:g} s does not fit a token living {lifetime:g} s",
            "Ask for less (--min-ttl), or lengthen the OAuth client's token lifetime.",
        )
    if margin > 0.5 * lifetime:
        return Check(
            "info",
            f"a margin of {margin:g} s is over half the {lifetime:g}-s lifetime: "
            "most calls will mint a new token",
        )
    return Check("ok", f"a margin of {margin:g} s fits the {lifetime:g}-s lifetime")


def _lifetime(lifetime: float, build_minutes: float) -> Check:
    """Does a token outlive the build? (Either way steps must ask freshtoken, never keep one.)"""
    shown, build = duration(lifetime), duration(build_minutes * 60)
    if lifetime >= build_minutes * 60:
        return Check("ok", f"a token lives {shown}, the build {build}")
    return Check(
        "info",
        f"a token lives {shown}, less than the {build} build: steps must ask "
        "freshtoken (token, serve, exec), never keep one token for the build",
    )


def _unknown_variables() -> list[Check]:
    return [
        Check("info", line, "Fix its spelling, or remove it.")
        for line in unknown_variables(os.environ)
    ]


def _endpoint_checks(
    url: str, key: str, build_minutes: float, min_ttl: float | None
) -> list[Check]:
    """A step that has the running endpoint and no client secret: check that endpoint (the
    secret, the server and the store are serve's, checked where serve runs)."""
    checks = [
        Check(
            "ok",
            f"using the running endpoint {url} (FRESHTOKEN_URL; this step holds no client "
            "secret: the freshtoken serve that set it mints and shares the token)",
        ),
        *_unknown_variables(),
    ]
    try:
        about = json.loads(get(url, key, "/status", timeout=10))
        checks.append(Check("ok", f"it serves {about['client']}, store entry {about['cache_key']}"))
        data = ask(url, key, min_ttl, timeout=60)
    except EndpointRefusal as exc:
        return [*checks, Check("fail", exc.message, exc.hint)]
    except (ValueError, KeyError):
        return [
            *checks,
            Check(
                "fail",
                "the endpoint did not answer like freshtoken serve",
                "Check that FRESHTOKEN_URL names the endpoint serve printed.",
            ),
        ]
    expires_at = float(str(data["expires_at"]))
    lifetime = expires_at - float(str(data.get("issued_at", expires_at)))
    left = float(str(data["expires_in"]))
    checks.append(Check("ok", f"it handed out a token valid for {duration(left)}"))
    if lifetime > 0:
        checks += [_lifetime(lifetime, build_minutes), _margin(lifetime, min_ttl)]
    return checks


def run_checks(
    profile: str | None, build_minutes: float, min_ttl: float | None = None
) -> list[Check]:
    """Every check that applies; stops early only when nothing further can be checked."""
    from freshtoken.broker._broker import TokenBroker

    found = running_endpoint(profile)
    if found is not None:
        return _endpoint_checks(*found, build_minutes, min_ttl)
    try:
        settings = Settings.load(profile=profile)
        settings.require_client_id()
    except FreshtokenError as exc:
        return [Check("fail", f"configuration: {exc.message}", exc.hint)]
    checks = _configuration(settings) + _unknown_variables()
    try:
        checks.extend(_client_auth(settings))
        checks.append(_endpoint(settings))
    except FreshtokenError as exc:
        return [*checks, Check("fail", exc.message, exc.hint)]
    if checks[-1].title.endswith("does not resolve"):
        return checks  # a token request would only retry for the whole budget
    if advice := settings.offline_access_advice():
        checks.append(
            Check("fail", "scope asks for offline_access with client credentials", advice)
        )
    try:
        store = _build.store_for(settings)
        shown = store_url(settings, store)
        checks.append(Check("ok", f"store {shown} opens; entries sealed with AES-256-GCM"))
        broker = TokenBroker.from_settings(settings, store=store)
        endpoints = broker.client.endpoints()
        checks.extend(endpoint_lines(endpoints))
        alg = getattr(broker.client.auth, "alg", None)
        checks.extend(supported(endpoints, _method(settings), alg))
        token = broker.token()
    except FreshtokenError as exc:  # with its error code and HTTP status
        return [*checks, Check("fail", str(exc).split("\nhint: ", 1)[0], exc.hint)]
    checks.append(_writable(settings, store, broker.key))
    checks.append(_margin(token.lifetime, settings.min_ttl if min_ttl is None else min_ttl))
    checks.append(_lifetime(token.lifetime, build_minutes))
    if token.scope is None:
        roles = words(settings.provider, settings.region, "no_scope_stated")
        checks.append(Check("info", "the server states no granted scope" + roles))
    else:
        missing = sorted(set(settings.scope) - set(token.scope))
        checks.append(
            Check(
                "fail",
                f"scopes not granted: {one_line(' '.join(missing))}",
                "Allow them on the client, or stop asking for them.",
            )
            if missing
            else Check("ok", f"granted scope: {one_line(' '.join(token.scope)) or '(none)'}")
        )
    entry = broker.store.load(broker.key)
    checks.append(
        Check(
            "info",
            "a refresh token is held"
            if entry and entry.refresh_token
            else "no refresh token held (client credentials need none)",
        )
    )
    return checks + learned(Seen(settings, endpoints, broker, token))


@click.command()
@click.option(
    "--build-minutes",
    type=float,
    default=15.0,
    show_default=True,
    help="How long the job runs, to judge the token lifetime against.",
)
@click.option(
    "--min-ttl",
    type=float,
    default=None,
    metavar="S",
    help="The margin your steps ask for, checked against the lifetime (default: the CLI's).",
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.pass_context
def doctor(ctx: click.Context, build_minutes: float, min_ttl: float | None, fmt: str) -> None:
    """Check configuration, endpoint, credentials, lifetime, scopes and store; each line says
    how to fix what fails. Exits 1 when anything fails.

    \b
    Example:
      freshtoken doctor --build-minutes 15
    """
    checks = run_checks(run(ctx).profile, build_minutes, min_ttl)
    failed = [c for c in checks if c.state == "fail"]
    if fmt == "json":
        click.echo(json.dumps([c.__dict__ for c in checks]))
        if failed:  # errors follow --format json: one object on stderr, same exit code
            fail_with(
                "checks_failed",
                f"{len(failed)} check(s) failed: " + "; ".join(c.title for c in failed),
                failed[0].fix,
                1,
                json_errors=True,
            )
    else:
        for check in checks:
            mark = {"ok": "✓", "fail": "✗", "warn": "!", "info": "i"}[check.state]
            click.echo(f"{mark} {check.title}" + (f"\n    → {check.fix}" if check.fix else ""))
    sys.exit(1 if failed else 0)
