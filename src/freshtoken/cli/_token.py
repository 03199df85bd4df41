"""`freshtoken token`: print a token, from the parent endpoint, the store or a new mint."""

from __future__ import annotations

import json
import os

import click

from freshtoken._errors import ConfigurationError, OAuthError
from freshtoken.cli._common import fail, fail_with, run
from freshtoken.cli._formats import FORMATS, mask_on_github, render, token_json
from freshtoken.cli._parent import ParentError, fetch_from_parent
from freshtoken.config._settings import Settings


@click.command()
@click.option(
    "--min-ttl",
    type=float,
    default=None,
    metavar="S",
    help="Seconds the token must stay valid (default: 225, or half the lifetime of a "
    "shorter-lived token).",
)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="raw", show_default=True)
@click.option(
    "--github-env",
    metavar="NAME",
    help="With --format github: also write NAME=<token> to $GITHUB_ENV (it goes "
    "stale when the token expires; prefer calling freshtoken token again).",
)
@click.pass_context
def token(ctx: click.Context, min_ttl: float | None, fmt: str, github_env: str | None) -> None:
    """Print a token valid for at least --min-ttl seconds, from the cache when possible.

    \b
    Examples:
      curl -H "$(freshtoken token --format header)" https://api.mypurecloud.ie/api/v2/tokens/me
      freshtoken token --min-ttl 900 --format json
      eval "$(freshtoken token --format env)"   # export FRESHTOKEN_ACCESS_TOKEN=...
      freshtoken token --format dotenv > .env    # FRESHTOKEN_ACCESS_TOKEN=...
    """
    parent, key = os.environ.get("FRESHTOKEN_URL"), os.environ.get("FRESHTOKEN_KEY")
    try:
        if parent and key:
            data = json.loads(fetch_from_parent(parent, key, min_ttl))
        else:
            settings = run(ctx).settings()
            _warn_meaningless_scopes(settings)
            broker = run(ctx).broker(settings)
            try:
                result = broker.token(min_ttl)
            finally:
                broker.close()  # a refresh started for the next caller is finished, not lost
            data = token_json(result.access_token, result.token_type, result.expires_at)
    except ParentError as exc:
        fail_with(exc.error, exc.message, exc.hint, exc.exit_code, fmt == "json")
    except OAuthError as exc:
        fail(exc, fmt == "json")
    if fmt != "github":
        mask_on_github(str(data["access_token"]))
        click.echo(render(data, fmt))
        return
    _github(data, github_env)


def _warn_meaningless_scopes(settings: Settings) -> None:
    """One warning, as doctor says it: Genesys client credentials take no offline_access."""
    genesys = settings.region or settings.provider == "genesys"
    if genesys and "offline_access" in settings.scope:
        click.echo(
            "freshtoken: warning: offline_access is not a Genesys Cloud scope and client "
            "credentials never get a refresh token; none is needed (freshtoken mints a new "
            "token before the old one expires). Remove it from FRESHTOKEN_SCOPE.",
            err=True,
        )


def _github(data: dict[str, object], env_name: str | None) -> None:
    output = os.environ.get("GITHUB_OUTPUT")
    if not output:
        fail(
            ConfigurationError(
                "--format github needs $GITHUB_OUTPUT",
                hint="It is set inside a GitHub Actions step.",
            )
        )
    access = str(data["access_token"])
    click.echo(f"::add-mask::{access}")  # before the token is written anywhere
    with open(output, "a", encoding="utf-8") as handle:
        handle.write(f"token={access}\nexpires_at={data['expires_at']}\n")
    if env_name:
        target = os.environ.get("GITHUB_ENV")
        if not target:
            fail(
                ConfigurationError(
                    "--github-env needs $GITHUB_ENV", hint="It is set inside a GitHub Actions step."
                )
            )
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(f"{env_name}={access}\n")
