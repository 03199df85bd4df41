"""The `freshtoken` command line. Heavy modules are imported inside commands, so that a cache
hit stays close to the cost of starting Python."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from typing import Any, NoReturn

import click

from freshtoken._errors import (
    AuthorizationError,
    ConfigurationError,
    MalformedResponseError,
    OAuthError,
    StoreError,
)

EXIT_OK, EXIT_USAGE, EXIT_REFUSED, EXIT_UNAVAILABLE, EXIT_STORE = 0, 2, 3, 4, 5


def exit_code_for(error: OAuthError) -> int:
    """The documented exit code of an error (see README, 'Exit codes')."""
    if isinstance(error, ConfigurationError):
        return EXIT_USAGE
    if isinstance(error, StoreError):
        return EXIT_STORE
    if isinstance(error, AuthorizationError):
        return EXIT_REFUSED
    if isinstance(error, MalformedResponseError):
        return EXIT_UNAVAILABLE
    return EXIT_UNAVAILABLE


def fail(error: OAuthError) -> NoReturn:
    click.echo(f"freshtoken: {error}", err=True)
    sys.exit(exit_code_for(error))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="freshtoken")
def cli() -> None:
    """Keep a valid OAuth 2.0 access token for every step of a pipeline."""


@cli.command()
@click.option(
    "--min-ttl",
    type=float,
    default=None,
    help="Seconds the token must stay valid (default: a small margin).",
)
def token(min_ttl: float | None) -> None:
    """Print an access token for the configured client.

    Configured by environment: FRESHTOKEN_TOKEN_URL (or FRESHTOKEN_ISSUER, or
    FRESHTOKEN_REGION for Genesys Cloud), FRESHTOKEN_CLIENT_ID, FRESHTOKEN_CLIENT_SECRET
    (or FRESHTOKEN_CLIENT_SECRET_FILE), FRESHTOKEN_SCOPE, FRESHTOKEN_STORE. The token comes
    from the shared store while it is valid for --min-ttl; a new one is minted otherwise.

    \b
    Example:
      export FRESHTOKEN_REGION=eu_west_1 FRESHTOKEN_CLIENT_ID=...
      curl -H "Authorization: Bearer $(freshtoken token)" https://api.mypurecloud.ie/api/v2/tokens/me
    """
    from freshtoken._sources._broker import TokenBroker

    try:
        result = TokenBroker.from_env().token(min_ttl)
    except OAuthError as exc:
        fail(exc)
    click.echo(result.access_token)


def _client_spec(value: str) -> Any:
    from freshtoken._config import read_secret_file
    from freshtoken.testing import Client

    client_id, sep, rest = value.partition(":")
    if not sep or not client_id:
        raise click.BadParameter("use ID:SECRET, ID:@FILE or ID:env=VAR", param_hint="--client")
    if rest.startswith("@"):
        secret = read_secret_file(rest[1:], "--client").reveal()
    elif rest.startswith("env="):
        secret = os.environ.get(rest[4:], "")
        if not secret:
            raise click.BadParameter(
                f"environment variable {rest[4:]} is empty or unset", param_hint="--client"
            )
    else:
        secret = rest
    return Client(client_id, secret or None)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Loopback address.")
@click.option("--port", default=0, show_default=True, help="0 picks a free port.")
@click.option("--ttl", default=3600.0, show_default=True, help="Access-token lifetime (s).")
@click.option(
    "--client",
    "clients",
    multiple=True,
    help="ID:SECRET, ID:@FILE or ID:env=VAR (repeatable). Default: demo-client.",
)
@click.option("--genesys", is_flag=True, help="Answer as Genesys Cloud does.")
@click.option(
    "--refresh-on-client-credentials",
    is_flag=True,
    help="Issue refresh tokens on client_credentials (as Keycloak can).",
)
@click.option("--no-rotate", is_flag=True, help="Keep refresh tokens on refresh.")
@click.option("--no-reuse-detection", is_flag=True, help="Do not revoke on reuse.")
@click.option("--error-style", type=click.Choice(["rfc6749", "genesys"]), default=None)
@click.option("--failure-rate", default=0.0, help="Share of token requests answered 503.")
@click.option("--fail-first", default=0, help="Answer the first N token requests 503.")
@click.option("--latency", default=0.0, help="Seconds added to every token request.")
@click.option("--rate-limit", default=0, help="Token requests allowed per window (0: off).")
@click.option("--rate-window", default=60.0, show_default=True)
@click.option("--rate-limit-style", type=click.Choice(["genesys", "429"]), default=None)
@click.option("--api-rate-limit", default=0, help="Protected-API requests per minute (0: off).")
@click.option("--malformed", default=None, help="Answer token requests malformed (see docs).")
@click.option("--narrow-scope", is_flag=True, help="Grant only the allowed part of a scope.")
@click.option(
    "--abandon-on-disconnect",
    is_flag=True,
    help="After --latency, drop requests whose client has gone.",
)
def testserver(
    host: str,
    port: int,
    ttl: float,
    clients: tuple[str, ...],
    genesys: bool,
    refresh_on_client_credentials: bool,
    no_rotate: bool,
    no_reuse_detection: bool,
    error_style: str | None,
    failure_rate: float,
    fail_first: int,
    latency: float,
    rate_limit: int,
    rate_window: float,
    rate_limit_style: str | None,
    api_rate_limit: int,
    malformed: str | None,
    narrow_scope: bool,
    abandon_on_disconnect: bool,
) -> None:
    """Run the shipped test authorization server until SIGTERM or Ctrl-C.

    Prints one ready line: JSON with url, token_url, issuer, clients and pid.

    \b
    Example:
      freshtoken testserver --ttl 60 --genesys
    """
    from freshtoken._provider._endpoints import is_loopback_host
    from freshtoken.testing import MALFORMED, AuthServer

    if not is_loopback_host(host):
        raise click.BadParameter("the test server listens on loopback only", param_hint="--host")
    if malformed is not None and malformed not in MALFORMED:
        raise click.BadParameter(f"one of {', '.join(sorted(MALFORMED))}", param_hint="--malformed")
    knobs: dict[str, Any] = {
        "ttl": ttl,
        "refresh_on_client_credentials": refresh_on_client_credentials,
        "rotate_refresh_tokens": not no_rotate,
        "reuse_detection": not no_reuse_detection,
        "failure_rate": failure_rate,
        "fail_first": fail_first,
        "latency": latency,
        "rate_limit": rate_limit,
        "rate_window": rate_window,
        "api_rate_limit": api_rate_limit,
        "malformed": malformed,
        "narrow_scope": narrow_scope,
        "abandon_on_disconnect": abandon_on_disconnect,
    }
    if error_style:
        knobs["error_style"] = error_style
    if rate_limit_style:
        knobs["rate_limit_style"] = rate_limit_style
    registered = [_client_spec(spec) for spec in clients] or None
    factory = AuthServer.genesys if genesys else AuthServer
    server = factory(host=host, port=port, clients=registered, **knobs)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with server:
        ready = {
            "url": server.url,
            "token_url": server.token_url,
            "issuer": server.issuer,
            "clients": [c.client_id for c in (registered or [])] or ["demo-client"],
            "pid": os.getpid(),
        }
        click.echo(json.dumps(ready), nl=True)
        sys.stdout.flush()
        stop.wait()


def main() -> None:
    cli(prog_name="freshtoken")
