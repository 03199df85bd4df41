"""The store's commands: seed a refresh token, revoke, and show what is held."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from freshtoken import _build
from freshtoken._errors import ConfigurationError, OAuthError
from freshtoken.broker._key import settings_key
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


@click.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default=None,
    help="Default: a table on a terminal, plain lines otherwise.",
)
@click.pass_context
def status(ctx: click.Context, fmt: str | None) -> None:
    """What the store holds per cache key (never a token).

    \b
    Example:
      freshtoken status --format json
    """
    try:
        settings = run(ctx).settings()
        store = _build.store_for(settings)
        try:
            mine = settings_key(settings, store.pepper)
        except ConfigurationError:
            mine = None
        rows = []
        now = time.time()
        for key in store.list_keys():
            entry = store.load(key)
            if entry is None:
                continue
            left = entry.token.expires_in(now) if entry.token else None
            rows.append(
                {
                    "key": key[:12],
                    "this_profile": key == mine,
                    "expires_in": None if left is None else round(left),
                    "refresh_token": bool(entry.refresh_token),
                    "last_mint": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.last_mint))
                    if entry.last_mint
                    else None,
                    "mints": entry.mints,
                }
            )
    except OAuthError as exc:
        fail(exc)
    if fmt == "json":
        click.echo(json.dumps({"store": repr(store), "entries": rows}))
        return
    columns = ["key", "this_profile", "expires_in", "refresh_token", "last_mint", "mints"]
    if fmt == "table" or (fmt is None and sys.stdout.isatty()):
        from rich.console import Console
        from rich.table import Table

        table = Table(title=repr(store))
        for column in columns:
            table.add_column(column)
        for row in rows:
            table.add_row(*(str(row[c]) for c in columns))
        Console().print(table)
        return
    click.echo(repr(store))
    for row in rows:
        click.echo("  ".join(f"{c}={row[c]}" for c in columns))
