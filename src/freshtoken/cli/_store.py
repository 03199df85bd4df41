"""The store's commands: seed a refresh token and revoke (status: cli/_status.py)."""

from __future__ import annotations

from pathlib import Path

import click

from freshtoken._errors import EXIT_USAGE, FreshtokenError
from freshtoken.cli._common import fail, fail_with, run


@click.command("seed-refresh-token")
@click.option(
    "--file",
    "path",
    type=click.Path(path_type=Path),
    help="Read the refresh token from this file (default: standard input).",
)
@click.pass_context
def seed_refresh_token(ctx: click.Context, path: Path | None) -> None:
    """Store a refresh token from a one-time login; the next mint spends it.

    \b
    Example:
      freshtoken seed-refresh-token < refresh_token.txt
    """
    from freshtoken.config._load import read_secret_file

    try:
        value = read_secret_file(str(path) if path else "-", "the refresh token")
        run(ctx).broker().seed_refresh_token(value.reveal())
    except FreshtokenError as exc:
        fail(exc)
    click.echo("refresh token stored; it is spent (and rotated) on the next mint", err=True)


_FIX = "set FRESHTOKEN_REVOCATION_URL to the server's RFC 7009 revocation endpoint"


@click.command()
@click.pass_context
def revoke(ctx: click.Context) -> None:
    """Revoke this profile's tokens at the server, then drop them from the store.

    RFC 7009 where the server has a revocation endpoint (FRESHTOKEN_REVOCATION_URL, else
    discovered); with a provider preset that has a revoke call of its own (`DELETE
    /api/v2/tokens/me` for a region), that call with the token itself. Exits 0 only when the
    server confirmed every revocation (or nothing was stored); 2, keeping the tokens, when no
    way to revoke them is known; 1 when the server did not confirm (the tokens are dropped all
    the same).

    \b
    Example:
      FRESHTOKEN_REVOCATION_URL=https://idp.example.com/o/revoke_token/ freshtoken revoke
    """
    outcome = {
        True: "revoked",
        False: "not confirmed by the server",
        None: "this server has no way to revoke it",
    }
    try:
        broker = run(ctx).broker()
        if broker.store.load(broker.key) is None:
            click.echo("nothing stored for this profile")
            return
        endpoints = broker.client.endpoints()  # discovery first: a failure drops nothing
        if (way := endpoints.revocation()) is None:
            fail_with(
                "no_revocation_endpoint",
                f"no revocation endpoint is known for {endpoints.issuer or endpoints.token_url}"
                "; nothing was revoked or dropped",
                ("Its metadata lists none" if endpoints.issuer else "None is configured")
                + f": {_FIX}, then run freshtoken revoke again.",
                EXIT_USAGE,
            )
        done = broker.revoke()
    except FreshtokenError as exc:
        fail(exc)
    if not done:
        click.echo("nothing stored for this profile")
        return
    said = "; ".join(f"{kind}: {outcome[ok]}" for kind, ok in done.items())
    click.echo(said + "; dropped from the store")
    if not all(ok is True for ok in done.values()):
        hint = ["the tokens not revoked stay valid at the server until they expire"]
        if False in done.values():
            hint.append(
                f"{way[0]} (from {way[1]}) refused or did not answer: check that it is the "
                f"server's revocation endpoint, or {_FIX}"
            )
        if None in done.values():
            hint.append(f"if the server has a revocation endpoint, {_FIX}")
        click.echo("hint: " + "; ".join(hint) + ".", err=True)
        raise SystemExit(1)
