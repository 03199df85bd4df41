"""The store's commands: seed a refresh token and revoke (status: cli/_status.py)."""

from __future__ import annotations

from pathlib import Path

import click

from freshtoken._errors import OAuthError
from freshtoken.cli._common import fail, run


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
    except OAuthError as exc:
        fail(exc)
    click.echo("refresh token stored; it is spent (and rotated) on the next mint", err=True)


@click.command()
@click.pass_context
def revoke(ctx: click.Context) -> None:
    """Revoke this profile's tokens at the server, then drop them from the store.

    RFC 7009 where the server has a revocation endpoint; for Genesys Cloud (a region, or
    provider = "genesys") `DELETE /api/v2/tokens/me` with the token itself. Exits 0 only when
    the server confirmed every revocation (or nothing was stored), 1 otherwise.

    \b
    Example:
      freshtoken --profile ci revoke
    """
    outcome = {
        True: "revoked",
        False: "not confirmed by the server",
        None: "this server has no way to revoke it",
    }
    try:
        done = run(ctx).broker().revoke()
    except OAuthError as exc:
        fail(exc)
    if not done:
        click.echo("nothing stored for this profile")
        return
    said = "; ".join(f"{kind}: {outcome[ok]}" for kind, ok in done.items())
    click.echo(said + "; dropped from the store")
    if not all(ok is True for ok in done.values()):
        raise SystemExit(1)
