"""The `freshtoken` command line: the group and its commands, one module per group. Heavy
modules are imported inside commands; a plain `freshtoken token` never gets here (_main.py)."""

from __future__ import annotations

from typing import Any

import click

from freshtoken._log import to_stderr
from freshtoken.cli._common import Context, run
from freshtoken.cli._formats import FORMATS
from freshtoken.provider._presets import ALIASES

HELP = f"""Keep a valid OAuth 2.0 access token for every step of a pipeline.

    Configuration: FRESHTOKEN_* variables (they win), {" / ".join(ALIASES)}, and profiles in
    freshtoken.toml. Secrets never on the command line. Exit codes: 0 ok, 2 usage or
    configuration, 3 authorization refused, 4 token endpoint unavailable, 5 store unavailable.
    """


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, help=HELP)
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
    """The group: options every command shares (its help is HELP)."""
    ctx.obj = Context(profile, color)
    ctx.color = ctx.obj.use_color  # click.echo keeps or strips styles by this
    to_stderr(verbose, quiet)


@click.command()
@click.option(
    "--min-ttl",
    type=float,
    default=None,
    metavar="S",
    help="Seconds the token must stay valid (default: the command line's margin, "
    "docs/promises.md).",
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

    Inside `freshtoken exec`/`serve`, or after the GitHub Action (FRESHTOKEN_URL and
    FRESHTOKEN_KEY set, no client secret), the token comes from the running endpoint.

    \b
    Examples:
      curl -H "$(freshtoken token --format header)" https://api.mypurecloud.ie/api/v2/tokens/me
      freshtoken token --min-ttl 900 --format json
      eval "$(freshtoken token --format env)"   # export FRESHTOKEN_ACCESS_TOKEN=...
      freshtoken token --format dotenv > .env    # FRESHTOKEN_ACCESS_TOKEN=...
    """
    from freshtoken.cli._token import print_token

    print_token(min_ttl, fmt, github_env=github_env, profile=run(ctx).profile)


class _Lazy(click.Command):
    """A command whose module is imported only when it runs (or shows its own help); until
    then, a name and a line for `freshtoken --help`."""

    def __init__(self, name: str, short_help: str) -> None:
        super().__init__(name, short_help=short_help, add_help_option=False)

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        return load_command(str(self.name)).make_context(info_name, args, parent, **extra)


#: name -> (module, attribute, the line `freshtoken --help` shows): each command's module is
#: imported only when the command runs or shows its own help (tests/test_cli.py keeps the lines
#: equal to the commands' own).
COMMANDS = {
    "completion": ("_completion", "completion", "Print the completion script for SHELL (what..."),
    "demo": ("_demo", "demo", "Show the 15-minute build in seconds: a naive..."),
    "doctor": ("_doctor", "doctor", "Check configuration, endpoint, credentials,..."),
    "exec": ("_serve", "exec_", "Run COMMAND with a private local endpoint alive for..."),
    "keepalive": ("_keepalive", "keepalive", "Refresh once when the refresh token has been..."),
    "login": ("_login", "login", "Log in as a user once; the refresh token goes into..."),
    "revoke": ("_store", "revoke", "Revoke this profile's tokens at the server, then..."),
    "seed-refresh-token": ("_store", "seed_refresh_token", "Store a refresh token from a..."),
    "serve": ("_serve", "serve", "Serve tokens on a local endpoint until SIGTERM or..."),
    "status": ("_status", "status", "What the store holds per cache key (never a token);..."),
    "testserver": ("testing", "testserver", "Run the shipped test authorization server until..."),
}  # fmt: skip


def load_command(name: str) -> click.Command:
    module, attribute, _ = COMMANDS[name]
    package = "freshtoken.testing._command" if module == "testing" else f"freshtoken.cli.{module}"
    import importlib

    command: click.Command = getattr(importlib.import_module(package), attribute)
    return command


cli.add_command(token)
for _name, (_, _, _line) in COMMANDS.items():
    cli.add_command(_Lazy(_name, _line))
