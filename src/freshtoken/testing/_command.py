"""`freshtoken testserver`: its knob options are built from the `Knobs` fields, so a new knob
needs no code here."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any, TypeVar, get_args, get_type_hints

import click
from click.core import ParameterSource

from freshtoken.config._load import read_secret_file
from freshtoken.provider._endpoints import is_loopback_host
from freshtoken.testing._model import DEMO_CLIENT_ID, Client, Knobs
from freshtoken.testing._server import AuthServer

F = TypeVar("F", bound=Callable[..., Any])


def _knob_options(command: F) -> F:
    """One option per `Knobs` field: a flag for a bool (`--no-NAME` when it defaults to True),
    else a value of the field's type."""
    hints = get_type_hints(Knobs)
    for knob in reversed(fields(Knobs)):
        meta, default = knob.metadata, knob.default
        assert default is not MISSING, f"knob {knob.name} needs a default"
        hint = hints[knob.name]
        kind = next((t for t in get_args(hint) if t is not type(None)), hint)
        dashed = knob.name.replace("_", "-")
        settings: dict[str, Any] = {"help": meta["help"], "default": default}
        if kind is bool:
            flag = meta["flag"] or (f"--no-{dashed}" if default else f"--{dashed}")
            settings.update(is_flag=True, flag_value=not default)
        else:
            flag = meta["flag"] or f"--{dashed}"
            choices = meta["choices"]
            settings["type"] = click.Choice(choices) if choices else kind
            settings["show_default"] = bool(default)
            if choices and len(choices) > 3:  # the list would swamp the help; errors list it
                settings["metavar"] = "MODE"
        command = click.option(flag, knob.name, **settings)(command)
    return command


def _client_spec(value: str) -> Client:
    client_id, sep, rest = value.partition(":")
    if not sep or not client_id:
        raise click.BadParameter(
            "use ID:SECRET, ID:@FILE, ID:env=VAR, ID:jwks=@FILE, ID:tls=NAME or ID:cert=@FILE",
            param_hint="--client",
        )
    if rest.startswith("tls="):  # tls_client_auth: a certificate of the server's CA, CN=NAME
        return Client(client_id, None, auth_method="tls_client_auth",
                      tls_client_auth_subject_dn="CN=" + rest[4:])  # fmt: skip
    if rest.startswith("cert=@"):  # self_signed_tls_client_auth: this certificate
        from cryptography import x509

        from freshtoken.testing._tls import x5c_jwk

        try:
            cert = x509.load_pem_x509_certificate(Path(rest[6:]).read_bytes())
        except (OSError, ValueError) as exc:
            raise click.BadParameter(f"no PEM certificate in {rest[6:]}: {exc}") from None
        return Client(client_id, None, jwks=(x5c_jwk(cert),),
                      auth_method="self_signed_tls_client_auth")  # fmt: skip
    if rest.startswith("jwks=@"):  # a private_key_jwt client: its public keys (a JWKS file)
        try:
            keys = json.loads(Path(rest[6:]).read_text())["keys"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise click.BadParameter(
                f"no JWKS in {rest[6:]}: {exc}", param_hint="--client"
            ) from None
        return Client(client_id, None, jwks=tuple(keys), auth_method="private_key_jwt")
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
@click.option(
    "--client",
    "clients",
    multiple=True,
    help="ID:SECRET, ID:@FILE, ID:env=VAR, ID:jwks=@FILE (a private_key_jwt client and "
    "its JWKS), ID:tls=NAME (tls_client_auth: --tls writes ID.crt and ID.key, CN=NAME) or "
    "ID:cert=@FILE (self_signed_tls_client_auth) (repeatable). Default: demo-client.",
)
@click.option(
    "--tls",
    "tls_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Serve HTTPS with mutual TLS; write the CA to trust (ca.pem), and the tls= clients' "
    "certificates and keys, into this directory.",
)
@click.option(
    "--github-oidc",
    "federations",
    multiple=True,
    metavar="ID:AUDIENCE",
    help="Run the GitHub Actions OIDC token stand-in and take its tokens for AUDIENCE as "
    "client ID's (client assertion, JWT bearer, token exchange) (repeatable).",
)
@click.option("--genesys", is_flag=True, help="Answer as Genesys Cloud does.")
@click.option(
    "--github",
    is_flag=True,
    help="Also run the GitHub Actions secrets stand-in (its URL and token in the ready line).",
)
@_knob_options
@click.pass_context
def testserver(
    ctx: click.Context,
    /,
    host: str,
    port: int,
    clients: tuple[str, ...],
    genesys: bool,
    *,
    github: bool,
    tls_dir: Path | None,
    federations: tuple[str, ...],
    **knobs: Any,
) -> None:
    """Run the shipped test authorization server until SIGTERM or Ctrl-C.

    Prints one ready line: JSON with url, token_url, issuer, clients and pid (with --github,
    also github_api_url and github_token; with --tls, ca_file; with --github-oidc, the
    ACTIONS_ID_TOKEN_REQUEST_URL and _TOKEN a step would get).

    \b
    Example:
      freshtoken testserver --ttl 60 --genesys
    """
    if not is_loopback_host(host):
        raise click.BadParameter("the test server listens on loopback only", param_hint="--host")
    # Only the knobs given on the command line: the rest keep the defaults of the server, or
    # of its Genesys preset.
    given = {
        name: value
        for name, value in knobs.items()
        if ctx.get_parameter_source(name) is not ParameterSource.DEFAULT
    }
    registered = [_client_spec(spec) for spec in clients] or None
    if tls_dir is None and any(c.auth_method == "tls_client_auth" for c in registered or []):
        raise click.BadParameter("ID:tls=NAME clients need --tls DIR", param_hint="--client")
    factory = AuthServer.genesys if genesys else AuthServer
    server = factory(host=host, port=port, clients=registered, tls=bool(tls_dir), **given)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with contextlib.ExitStack() as running:
        running.enter_context(server)
        ready: dict[str, Any] = {
            "url": server.url,
            "token_url": server.token_url,
            "issuer": server.issuer,
            "clients": [c.client_id for c in (registered or [])] or [DEMO_CLIENT_ID],
            "pid": os.getpid(),
        }
        if github:
            from freshtoken.testing._github import GITHUB_TEST_TOKEN, GitHubSecrets

            stand_in = running.enter_context(GitHubSecrets(host=host))
            ready.update(github_api_url=stand_in.url, github_token=GITHUB_TEST_TOKEN)
        if tls_dir is not None:
            ready["ca_file"] = str(_write_tls(tls_dir, server, registered or []))
        if federations:
            ready.update(_github_oidc(running, server, host, federations))
        click.echo(json.dumps(ready), nl=True)
        sys.stdout.flush()
        stop.wait()


def _github_oidc(
    running: contextlib.ExitStack, server: AuthServer, host: str, federations: tuple[str, ...]
) -> dict[str, str]:
    """Start the OIDC token stand-in; the server takes its tokens as `--github-oidc` says."""
    from freshtoken.testing._github_oidc import GitHubOidc

    oidc = running.enter_context(GitHubOidc(host=host))
    for spec in federations:
        client_id, sep, audience = spec.partition(":")
        if not (sep and client_id and audience):
            raise click.BadParameter("use ID:AUDIENCE", param_hint="--github-oidc")
        server.trust_issuer(oidc.federation(client_id, audience))
    return oidc.env()


def _write_tls(folder: Path, server: AuthServer, clients: list[Client]) -> Path:
    """The CA to trust, and each tls_client_auth client's certificate and key (throw-away test
    keys, 0600), into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for client in clients:
        if client.auth_method == "tls_client_auth" and client.tls_client_auth_subject_dn:
            cert, key = server.issue_certificate(client.tls_client_auth_subject_dn[3:])
            (folder / f"{client.client_id}.crt").write_text(cert)
            fd = os.open(folder / f"{client.client_id}.key", os.O_WRONLY | os.O_CREAT, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(key)
    (folder / "ca.pem").write_text(server.ca_pem)
    return folder / "ca.pem"
