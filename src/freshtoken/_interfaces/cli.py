"""The `freshtoken` command line. Heavy modules are imported inside commands; the cache-hit
path inside `exec` children never gets here (see _fast.py)."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from freshtoken._errors import (
    AuthorizationError,
    ConfigurationError,
    OAuthError,
    StoreError,
)
from freshtoken._interfaces._fast import (
    FORMATS,
    ParentError,
    fetch_from_parent,
    render,
    token_json,
)

if TYPE_CHECKING:
    from freshtoken._config import Settings
    from freshtoken._sources._broker import TokenBroker

EXIT_OK, EXIT_USAGE, EXIT_REFUSED, EXIT_UNAVAILABLE, EXIT_STORE = 0, 2, 3, 4, 5


def secret_variables() -> frozenset[str]:
    """Never handed to a child of `exec`: it gets the local endpoint, not the credentials."""
    from freshtoken._config import GENESYS_ENV, OPTIONS

    return frozenset(
        [o.env + sfx.upper() for o in OPTIONS if o.kind == "secret" for sfx in o.sources]
        + [name for name, key in GENESYS_ENV.items() if key == "client_secret"]
    )


def exit_code_for(error: OAuthError) -> int:
    """The documented exit code of an error (README, 'Exit codes')."""
    if isinstance(error, ConfigurationError):
        return EXIT_USAGE
    if isinstance(error, StoreError):
        return EXIT_STORE
    if isinstance(error, AuthorizationError):
        return EXIT_REFUSED
    return EXIT_UNAVAILABLE


def fail(error: OAuthError) -> NoReturn:
    click.echo(f"freshtoken: {error}", err=True)
    sys.exit(exit_code_for(error))


@dataclass
class Context:
    profile: str | None

    def settings(self) -> Settings:
        from freshtoken._config import Settings

        return Settings.load(profile=self.profile)

    def broker(self, settings: Settings | None = None) -> TokenBroker:
        from freshtoken._sources._broker import TokenBroker

        return TokenBroker.from_settings(settings or self.settings())


def _logging(verbose: int, quiet: bool) -> None:
    from freshtoken._log import logger

    level = (
        logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("freshtoken: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="freshtoken")
@click.option(
    "--profile", metavar="NAME", help="Profile of freshtoken.toml (also $FRESHTOKEN_PROFILE)."
)
@click.option("-v", "--verbose", count=True, help="More detail on stderr (twice: debug).")
@click.option("-q", "--quiet", is_flag=True, help="Errors only.")
@click.pass_context
def cli(ctx: click.Context, profile: str | None, verbose: int, quiet: bool) -> None:
    """Keep a valid OAuth 2.0 access token for every step of a pipeline.

    Configuration: FRESHTOKEN_* variables (they win), GENESYSCLOUD_REGION /
    GENESYSCLOUD_OAUTHCLIENT_ID / GENESYSCLOUD_OAUTHCLIENT_SECRET, and profiles in
    freshtoken.toml. Secrets never on the command line. Exit codes: 0 ok, 2 usage or
    configuration, 3 authorization refused, 4 token endpoint unavailable, 5 store unavailable.
    """
    ctx.obj = Context(profile)
    _logging(verbose, quiet)


def _run(ctx: click.Context) -> Context:
    obj: Context = ctx.find_object(Context)  # type: ignore[assignment]
    return obj


@cli.command()
@click.option(
    "--min-ttl",
    type=float,
    default=None,
    metavar="S",
    help="Seconds the token must stay valid (default: a small margin).",
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
    """
    parent, key = os.environ.get("FRESHTOKEN_URL"), os.environ.get("FRESHTOKEN_KEY")
    try:
        if parent and key:
            data = json.loads(fetch_from_parent(parent, key, min_ttl))
        else:
            broker = _run(ctx).broker()
            try:
                result = broker.token(min_ttl)
            finally:
                broker.close()  # a refresh started for the next caller is finished, not lost
            data = token_json(result.access_token, result.token_type, result.expires_at)
    except ParentError as exc:
        click.echo(f"freshtoken: {exc}", err=True)
        sys.exit(exc.exit_code)
    except OAuthError as exc:
        fail(exc)
    if fmt != "github":
        click.echo(render(data, fmt))
        return
    _github(data, github_env)


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


def _upstream(proxy: str | None, settings: Settings) -> str | None:
    if proxy is None:
        return None
    from freshtoken._provider._endpoints import check_url
    from freshtoken._provider._genesys import genesys_region

    if proxy == "auto":
        proxy = settings.proxy_upstream or (
            genesys_region(settings.region).api_base_url if settings.region else None
        )
        if proxy is None:
            raise ConfigurationError(
                "--proxy has no upstream",
                hint="Give it one (--proxy https://api.example.com), or set "
                "FRESHTOKEN_PROXY_UPSTREAM, or FRESHTOKEN_REGION for the Genesys API host.",
            )
    return check_url(proxy, "--proxy")


def _listen(value: str) -> tuple[str, int]:
    from freshtoken._provider._endpoints import is_loopback_host

    host, _, port = value.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not is_loopback_host(host):
        raise ConfigurationError(
            f"--listen {value!r} is not a loopback address with a port",
            hint="The local endpoint serves tokens: it listens on loopback only, e.g. "
            "127.0.0.1:8765 (or use --socket PATH).",
        )
    return host, int(port)


PROXY_HELP = (
    "Also run an authenticating proxy to URL (default: FRESHTOKEN_PROXY_UPSTREAM, "
    "or the Genesys API host of the region)."
)


@cli.command()
@click.option(
    "--listen",
    default="127.0.0.1:0",
    show_default=True,
    help="Loopback address and port (0: a free port).",
)
@click.option(
    "--socket",
    "socket_path",
    type=click.Path(path_type=Path),
    help="Serve on a Unix socket (mode 0600) instead.",
)
@click.option(
    "--proxy", is_flag=False, flag_value="auto", default=None, metavar="[URL]", help=PROXY_HELP
)
@click.option(
    "--key-file",
    type=click.Path(path_type=Path),
    help="Where to write the request key (0600). Default: a private temp dir.",
)
@click.pass_context
def serve(
    ctx: click.Context,
    listen: str,
    socket_path: Path | None,
    proxy: str | None,
    key_file: Path | None,
) -> None:
    """Serve tokens on a local endpoint until SIGTERM or Ctrl-C.

    GET /token[?min_ttl=S], /healthz, /metrics; every request carries the key from the key
    file (X-Freshtoken-Key or Authorization: Bearer). Prints one JSON ready line.

    \b
    Example:
      freshtoken serve --proxy &   # then: curl -H "X-Freshtoken-Key: $KEY" $URL/token
    """
    from freshtoken._interfaces._local import LocalServer

    try:
        settings = _run(ctx).settings()
        address = _listen(listen)
        upstream = _upstream(proxy, settings)
        broker = _run(ctx).broker(settings).start()
        server = LocalServer(
            broker, listen=address, socket_path=socket_path, upstream=upstream, key_file=key_file
        ).start()
    except OAuthError as exc:
        fail(exc)
    except FileExistsError as exc:
        fail(
            ConfigurationError(
                f"--key-file {exc.filename} exists already", hint="Remove it, or name another file."
            )
        )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    click.echo(json.dumps(server.ready()))
    sys.stdout.flush()
    stop.wait()
    server.stop()
    broker.close()


@cli.command(
    "exec", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False}
)
@click.option(
    "--env",
    "env_name",
    metavar="NAME",
    help="Also export a token as $NAME at start (it goes stale; prefer "
    "`freshtoken token` or $FRESHTOKEN_URL/token in the command).",
)
@click.option(
    "--proxy", is_flag=False, flag_value="auto", default=None, metavar="[URL]", help=PROXY_HELP
)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_context
def exec_(
    ctx: click.Context, env_name: str | None, proxy: str | None, command: tuple[str, ...]
) -> None:
    """Run COMMAND with a private local endpoint alive for its whole life.

    COMMAND gets FRESHTOKEN_URL ($FRESHTOKEN_URL/token answers), FRESHTOKEN_KEY and, with
    --proxy, FRESHTOKEN_PROXY_URL; never the client secret. Returns COMMAND's exit code.

    \b
    Example:
      freshtoken exec --proxy -- npm run build
    """
    from freshtoken._interfaces._local import LocalServer

    try:
        settings = _run(ctx).settings()
        upstream = _upstream(proxy, settings)
        broker = _run(ctx).broker(settings).start()
        server = LocalServer(broker, upstream=upstream).start()
        env = {k: v for k, v in os.environ.items() if k not in secret_variables()}
        env.update(server.child_env())
        if env_name:
            env[env_name] = broker.token().access_token
    except OAuthError as exc:
        fail(exc)
    try:
        child = subprocess.Popen(list(command), env=env)
    except OSError as exc:
        server.stop()
        broker.close()
        click.echo(f"freshtoken: cannot run {command[0]!r}: {exc.strerror}", err=True)
        sys.exit(127)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda number, _frame: child.send_signal(number))
    code = child.wait()
    server.stop()
    broker.close()
    sys.exit(code if code >= 0 else 128 - code)


@cli.command("seed-refresh-token")
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
    from freshtoken._config import read_secret_file

    try:
        value = read_secret_file(str(path) if path else "-", "the refresh token")
        _run(ctx).broker().seed_refresh_token(value.reveal())
    except OAuthError as exc:
        fail(exc)
    click.echo("refresh token stored; it is spent (and rotated) on the next mint", err=True)


@cli.command()
@click.pass_context
def revoke(ctx: click.Context) -> None:
    """Revoke this profile's tokens at the server (RFC 7009, where it has the endpoint), then
    drop them from the store.

    \b
    Example:
      freshtoken --profile ci revoke
    """
    try:
        broker = _run(ctx).broker()
        entry = broker.store.load(broker.key)
        said = []
        if entry is not None:
            for value, hint in (
                (entry.token.access_token if entry.token else None, "access_token"),
                (entry.refresh_token, "refresh_token"),
            ):
                if value:
                    accepted = broker.client.revoke(value, hint)
                    said.append(
                        f"{hint}: "
                        + {
                            True: "revoked",
                            False: "refused by the server",
                            None: "no revocation endpoint",
                        }[accepted]
                    )
            broker.store.delete(broker.key)
    except OAuthError as exc:
        fail(exc)
    click.echo(
        "; ".join(said) + "; dropped from the store" if said else "nothing stored for this profile"
    )


@cli.command()
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
        settings = _run(ctx).settings()
        store = settings.open_store()
        try:
            mine = _run(ctx).broker(settings).key
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


@cli.command()
@click.option(
    "--build-minutes",
    type=float,
    default=15.0,
    show_default=True,
    help="How long the job runs, to judge the token lifetime against.",
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.pass_context
def doctor(ctx: click.Context, build_minutes: float, fmt: str) -> None:
    """Check configuration, endpoint, credentials, lifetime, scopes and store; each line says
    how to fix what fails. Exits 1 when anything fails.

    \b
    Example:
      freshtoken doctor --build-minutes 15
    """
    from freshtoken._interfaces._doctor import run_checks

    checks = run_checks(_run(ctx).profile, build_minutes)
    if fmt == "json":
        click.echo(json.dumps([c.__dict__ for c in checks]))
    else:
        for check in checks:
            mark = {"ok": "✓", "fail": "✗", "info": "i"}[check.state]
            click.echo(f"{mark} {check.title}" + (f"\n    → {check.fix}" if check.fix else ""))
    sys.exit(1 if any(c.state == "fail" for c in checks) else 0)


@cli.command()
@click.option(
    "--duration",
    type=click.IntRange(4, 600),
    default=24,
    show_default=True,
    help="Seconds the compressed build runs.",
)
@click.option(
    "--ttl",
    type=click.FloatRange(1, 60),
    default=4.0,
    show_default=True,
    help="Token lifetime on the demo servers (Genesys' is 86400 s by default).",
)
@click.option("--plain", is_flag=True, help="Line-by-line output (the default off a terminal).")
def demo(duration: int, ttl: float, plain: bool) -> None:
    """Show the 15-minute build in seconds: a naive pipeline against freshtoken.

    Two Genesys-like test servers (short token lifetime, token-endpoint rate limit on); the
    naive steps mint once (the token dies mid-build) or per call (the rate limit answers 400);
    the freshtoken steps share one token from Python, the shell, the local proxy and Node.
    Exits 0 only if the freshtoken side had no failed call.

    \b
    Example:
      freshtoken demo --duration 12 --ttl 3
    """
    from freshtoken._interfaces._demo import run

    sys.exit(run(duration, ttl, plain or not sys.stdout.isatty()))


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


cli.add_command(
    _Lazy("testserver", _testserver, "Run the shipped test authorization server until...")
)


def main() -> None:
    from freshtoken._interfaces._fast import main as entry

    entry()
