"""`freshtoken testserver`: the shipped test authorization server on the command line."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from typing import Any

import click


def _client_spec(value: str) -> Any:
    from freshtoken.config._load import read_secret_file
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


@click.command()
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
    from freshtoken.provider._endpoints import is_loopback_host
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
