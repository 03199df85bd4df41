"""The `freshtoken` command line: the group and its commands, one module per group. Heavy
modules are imported inside commands; the cache-hit paths never get here (see _main.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from freshtoken.cli._common import Context, setup_logging
from freshtoken.cli._completion import completion
from freshtoken.cli._demo import demo
from freshtoken.cli._doctor import doctor
from freshtoken.cli._login import login
from freshtoken.cli._serve import exec_, serve
from freshtoken.cli._status import status
from freshtoken.cli._store import revoke, seed_refresh_token
from freshtoken.cli._token import token


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="freshtoken")
@click.option(
    "--profile", metavar="NAME", help="Profile of freshtoken.toml (also $FRESHTOKEN_PROFILE)."
)
@click.option("-v", "--verbose", count=True, help="More detail on stderr (twice: debug).")
@click.option("-q", "--quiet", is_flag=True, help="Errors only.")
@click.option(
    "--color",
    type=click.Choice(["auto", "always", "never"]),
    default="auto",
    show_default=True,
    help="auto: only on a terminal, and never with $NO_COLOR set.",
)
@click.pass_context
def cli(ctx: click.Context, profile: str | None, verbose: int, quiet: bool, color: str) -> None:
    """Keep a valid OAuth 2.0 access token for every step of a pipeline.

    Configuration: FRESHTOKEN_* variables (they win), GENESYSCLOUD_REGION /
    GENESYSCLOUD_OAUTHCLIENT_ID / GENESYSCLOUD_OAUTHCLIENT_SECRET, and profiles in
    freshtoken.toml. Secrets never on the command line. Exit codes: 0 ok, 2 usage or
    configuration, 3 authorization refused, 4 token endpoint unavailable, 5 store unavailable.
    """
    ctx.obj = Context(profile, color)
    ctx.color = ctx.obj.use_color  # click.echo keeps or strips styles by this
    setup_logging(verbose, quiet)


class _Lazy(click.Command):
    """A command whose module is imported only when it runs (or shows its own help); until
    then, a name and a line for `freshtoken --help`."""

    def __init__(self, name: str, load: Callable[[], click.Command], short_help: str) -> None:
        super().__init__(name, short_help=short_help, add_help_option=False)
        self._load = load

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        return self._load().make_context(info_name, args, parent, **extra)


def _testserver() -> click.Command:
    # The test server's imports (http.server, the token records) would slow every command.
    from freshtoken.testing._command import testserver

    return testserver


for command in (
    token,
    serve,
    exec_,
    login,
    seed_refresh_token,
    revoke,
    status,
    doctor,
    demo,
    completion,
):
    cli.add_command(command)
cli.add_command(
    _Lazy("testserver", _testserver, "Run the shipped test authorization server until...")
)


def _keepalive() -> click.Command:
    from freshtoken.cli._keepalive import keepalive

    return keepalive


cli.add_command(
    _Lazy("keepalive", _keepalive, "Refresh once when the refresh token has been idle too...")
)
