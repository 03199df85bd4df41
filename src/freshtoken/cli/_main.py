"""The command line's entry point. A plain `freshtoken token` goes straight to its one
implementation (cli/_token.py) without loading click and every command module: a cache hit,
from the store or the running endpoint, costs little more than starting Python."""

from __future__ import annotations

import os
import sys
from types import FrameType

from freshtoken._platform import PYTHON_INJECTING
from freshtoken.cli._formats import FORMATS

# Options that would put a secret in argv, where every local user can read it (ps, /proc).
SECRET_OPTIONS = {
    "--client-secret": "FRESHTOKEN_CLIENT_SECRET or FRESHTOKEN_CLIENT_SECRET_FILE",
    "--secret": "FRESHTOKEN_CLIENT_SECRET or FRESHTOKEN_CLIENT_SECRET_FILE",
    "--password": "FRESHTOKEN_REDIS_PASSWORD or FRESHTOKEN_REDIS_PASSWORD_FILE",
    "--redis-password": "FRESHTOKEN_REDIS_PASSWORD or FRESHTOKEN_REDIS_PASSWORD_FILE",
    "--store-key": "FRESHTOKEN_STORE_KEY or FRESHTOKEN_STORE_KEY_FILE",
    "--token": "standard input or --file (seed-refresh-token)",
    "--access-token": "the local endpoint (freshtoken serve / exec)",
    "--refresh-token": "standard input or --file (seed-refresh-token)",
    "--key": "FRESHTOKEN_KEY (set by freshtoken exec)",
}


def refuse_secret_options(argv: list[str]) -> str | None:
    """The sentence refusing a secret on the command line, or None."""
    for arg in argv:
        if arg == "--":
            return None
        name = arg.split("=", 1)[0]
        if name in SECRET_OPTIONS:
            return (
                f"{name} would put a secret on the command line, where every user of this "
                f"machine can read it (ps, /proc/<pid>/cmdline). Use {SECRET_OPTIONS[name]} "
                "instead (a *_FILE may be - for standard input)."
            )
    return None


def _shortcut(argv: list[str]) -> dict[str, object] | None:
    """`print_token`'s arguments when argv is a `token` call that needs no click (the group's
    options --profile, -q, -v (-vv, --verbose) and --color, and its own --min-ttl, --format
    and --github-env, each spelled as click reads it); else None, and click parses it (help,
    errors, every other command)."""
    options: dict[str, object] = {}
    rest = list(argv)
    verbose = 0
    while rest and rest[0] != "token":
        name, eq, value = rest.pop(0).partition("=")
        if name in ("-q", "--quiet") and not eq:
            options["quiet"] = True
        elif name == "--verbose" and not eq:
            verbose += 1
        elif name[:2] == "-v" and set(name[1:]) == {"v"} and not eq:
            verbose += len(name) - 1
        elif name not in ("--profile", "--color") or (not eq and not rest):
            return None
        elif name == "--color":  # the token is printed as it is: no colour to choose
            if (value if eq else rest.pop(0)) not in ("auto", "always", "never"):
                return None
        else:
            options["profile"] = value if eq else rest.pop(0)
    if not rest:
        return None
    options.update(min_ttl=None, fmt="raw", verbose=verbose)
    rest.pop(0)
    while rest:
        name, eq, value = rest.pop(0).partition("=")
        if not eq:
            if not rest:
                return None
            value = rest.pop(0)
        if name == "--min-ttl":
            try:
                options["min_ttl"] = float(value)
            except ValueError:
                return None  # click says what is wrong with it
        elif name == "--format" and value in FORMATS:
            options["fmt"] = value
        elif name == "--github-env":
            options["github_env"] = value
        else:
            return None
    return options


def _interrupted(_signum: int, _frame: FrameType | None) -> None:
    """Ctrl-C: exit 130 (128 + SIGINT), as shells expect. Raised as SystemExit, which click
    leaves alone (it turns KeyboardInterrupt into "Aborted!" and exit 1); `finally` blocks run
    as they would for KeyboardInterrupt."""
    sys.exit(130)


def _exit_130_on_ctrl_c() -> None:
    """For the click path (the shortcut catches KeyboardInterrupt itself, and a store hit
    imports no `signal`)."""
    import signal

    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not when ignored (&)
        signal.signal(signal.SIGINT, _interrupted)


def main() -> None:
    argv = sys.argv[1:]
    refused = refuse_secret_options(argv)
    if refused:
        sys.stderr.write(f"freshtoken: {refused}\n")
        sys.exit(2)
    # Code of the job's choosing could run here: every command runs again isolated before it
    # reads a setting (not for PYTHONHOME alone, which may be what finds the standard library).
    exposed = not sys.flags.isolated and any(
        os.environ.get(name) for name in PYTHON_INJECTING - {"PYTHONHOME"}
    )
    if exposed or "serve" in argv or "exec" in argv:  # and long-lived: secrets out of environ
        from freshtoken.cli._hide import reexec_isolated

        reexec_isolated(argv)
    shortcut = _shortcut(argv)
    try:
        if shortcut is not None:
            from freshtoken.cli._token import print_token

            print_token(**shortcut)  # type: ignore[arg-type]
            return
        _exit_130_on_ctrl_c()
        from freshtoken.cli._app import cli

        cli(prog_name="freshtoken")
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:  # the reader went away (`freshtoken token | head -c 0`): say nothing
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    except Exception as exc:  # the one place where anything unforeseen becomes one line
        _unexpected(exc, argv)


def _unexpected(exc: Exception, argv: list[str]) -> None:
    from freshtoken._errors import FreshtokenError
    from freshtoken._log import describe

    if isinstance(exc, FreshtokenError):
        sys.stderr.write(f"freshtoken: {exc}\n")
        sys.exit(exc.exit_code)
    verbose = argv.count("--verbose") + sum(
        len(a) - 1 for a in argv if a.startswith("-v") and set(a[1:]) == {"v"}
    )
    if verbose >= 2:
        raise exc
    sys.stderr.write(
        f"freshtoken: unexpected error: {describe(exc)}\n"
        "hint: run the command again with -vv for the details (and report them).\n"
    )
    sys.exit(1)
