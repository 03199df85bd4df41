"""`freshtoken serve` and `freshtoken exec`: the local endpoint (and proxy) for other steps."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import click

from freshtoken._errors import ConfigurationError, FreshtokenError
from freshtoken.cli._common import fail, run
from freshtoken.config._options import secret_variables
from freshtoken.config._settings import Settings


def _upstream(proxy: str | None, settings: Settings) -> str | None:
    if proxy is None:
        return None
    from freshtoken._build import proxy_upstream
    from freshtoken.provider._endpoints import check_url

    if proxy == "auto":
        proxy = proxy_upstream(settings)
        if proxy is None:
            raise ConfigurationError(
                "--proxy has no upstream",
                hint="Give it one: freshtoken exec --proxy https://api.example.com -- COMMAND "
                "(or serve --proxy URL), or set FRESHTOKEN_PROXY_UPSTREAM, FRESHTOKEN_API_URL, "
                "or FRESHTOKEN_REGION for a provider preset's API host.",
            )
    return check_url(proxy, "--proxy")


def _listen(value: str) -> tuple[str, int]:
    from freshtoken.provider._endpoints import is_loopback_host

    host, _, port = value.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not is_loopback_host(host):
        raise ConfigurationError(
            f"--listen {value!r} is not a loopback address with a port",
            hint="The local endpoint serves tokens: it listens on loopback only, e.g. "
            "127.0.0.1:8765 (or use --socket PATH).",
        )
    return host, int(port)


def _private_settings(ctx: click.Context) -> Settings:
    """The settings, with the secrets the re-executed command took out of its environment
    (see cli/_hide.py); from now on the process is non-dumpable."""
    from freshtoken.cli._hide import take_secrets

    hidden = take_secrets()  # non-dumpable first
    return run(ctx).settings({**os.environ, **hidden})


def _limits(settings: Settings) -> dict[str, Any]:
    return {
        "max_connections": settings.serve_max_connections,
        "idle_timeout": settings.serve_idle_timeout,
    }


PROXY_HELP = (
    "Also run an authenticating proxy to URL (default: FRESHTOKEN_PROXY_UPSTREAM, "
    "or the API host of a provider preset's region)."
)


@click.command()
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
@click.option(
    "--print-env",
    is_flag=True,
    help="Print export lines (FRESHTOKEN_URL, FRESHTOKEN_KEY, FRESHTOKEN_PROXY_URL) instead of "
    "the JSON ready line, for CI systems other than GitHub. This prints the key on stdout: "
    "send it to a 0600 file, not to a log.",
)
@click.pass_context
def serve(
    ctx: click.Context,
    listen: str,
    socket_path: Path | None,
    proxy: str | None,
    key_file: Path | None,
    print_env: bool,
) -> None:
    """Serve tokens on a local endpoint until SIGTERM or Ctrl-C.

    GET /token[?min_ttl=S&format=raw|header|env|dotenv], /metrics: every request carries the
    key from the key file (X-Freshtoken-Key or Authorization: Bearer); read it with
    $(cat KEY_FILE). GET /healthz answers without the key (ok or degraded, for probes).
    Prints one JSON ready line (url, key_file, pid, proxy_url, usage).

    \b
    Examples:
      freshtoken serve --key-file "$RUNNER_TEMP/ft.key" &
      curl -H "X-Freshtoken-Key: $(cat "$RUNNER_TEMP/ft.key")" "$URL/token?format=raw"
      (umask 077; freshtoken serve --proxy --print-env > ft.env &)   # then: . ./ft.env
    """
    from freshtoken.local._server import LocalServer

    try:
        settings = _private_settings(ctx)
        address = _listen(listen)
        upstream = _upstream(proxy, settings)
        broker = run(ctx).broker(settings).start()
        server = LocalServer(
            broker,
            listen=address,
            socket_path=socket_path,
            upstream=upstream,
            key_file=key_file,
            **_limits(settings),
        ).start()
    except FreshtokenError as exc:
        fail(exc)
    except FileExistsError as exc:
        fail(
            ConfigurationError(
                f"--key-file {exc.filename} exists already", hint="Remove it, or name another file."
            )
        )
    stop = threading.Event()
    for sig in _STOPPING:
        signal.signal(sig, lambda *_: stop.set())
    if print_env:
        from freshtoken.cli._formats import export_line

        for name, value in server.child_env().items():
            click.echo(export_line(name, value))
    else:
        click.echo(json.dumps({**server.ready(), "usage": _usage(server.url, server.key_file)}))
    sys.stdout.flush()
    stop.wait()
    server.stop()  # no new request; the key file removed
    # Runners and containers kill about 10 s after SIGTERM. A refresh in flight with a shared
    # store runs in a process of its own, which stores its outcome without serve.
    broker.close(wait=_LAST_REFRESH_WAIT)


#: The signals that end `serve` cleanly: a terminal closed (SIGHUP) too.
_STOPPING: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT)
if sys.platform != "win32":
    _STOPPING += (signal.SIGHUP,)
#: Seconds `serve` waits for a refresh in flight when it ends.
_LAST_REFRESH_WAIT = 1.0


def _check_exec_form(proxy: str | None, command: tuple[str, ...]) -> None:
    """A mistyped exec gets the right form: the command after --, --proxy's URL before it."""
    from freshtoken.cli._formats import shell_quote

    if proxy not in (None, "auto") and "://" not in str(proxy):
        words = " ".join(shell_quote(word) for word in (str(proxy), *command))
        raise ConfigurationError(
            f"--proxy took {proxy!r} as its upstream URL",
            hint=f"Put -- before the command: freshtoken exec --proxy -- {words} "
            f"(or give the upstream: freshtoken exec --proxy https://api.example.com -- {words}).",
        )
    if not command:
        raise ConfigurationError(
            "exec needs a command to run",
            hint="freshtoken exec [--proxy [URL]] [--env NAME] -- COMMAND [ARGS...], "
            "e.g. freshtoken exec --proxy -- npm run build",
        )


def _usage(url: str, key_file: Path) -> str:
    """How to ask the endpoint from a shell, reading the key from its file."""
    from freshtoken.cli._formats import shell_quote

    header = f'-H "X-Freshtoken-Key: $(cat {shell_quote(str(key_file))})"'
    if url.startswith("unix:"):
        return f"curl --unix-socket {shell_quote(url[5:])} {header} http://localhost/token"
    return f"curl {header} {url}/token"


@click.command(
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
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
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
    from freshtoken._build import credential_variables
    from freshtoken.local._server import LocalServer

    try:
        _check_exec_form(proxy, command)
        settings = _private_settings(ctx)
        upstream = _upstream(proxy, settings)
        broker = run(ctx).broker(settings).start()
        server = LocalServer(broker, upstream=upstream, **_limits(settings)).start()
        kept = secret_variables() | credential_variables(settings)
        env = {k: v for k, v in os.environ.items() if k not in kept}
        env.update(server.child_env())
        if env_name:
            env[env_name] = broker.token().access_token
    except FreshtokenError as exc:
        fail(exc)
    try:
        child = subprocess.Popen(list(command), env=env)
    except OSError as exc:
        server.stop()
        broker.close()
        click.echo(f"freshtoken: cannot run {command[0]!r}: {exc.strerror}", err=True)
        sys.exit(127)
    relayed = [signal.SIGTERM, signal.SIGINT]
    if sys.platform != "win32":
        relayed.append(signal.SIGHUP)
    for sig in relayed:
        signal.signal(sig, lambda number, _frame: child.send_signal(number))
    code = child.wait()
    server.stop()
    broker.close()
    sys.exit(code if code >= 0 else 128 - code)
