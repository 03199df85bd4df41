"""The command line's entry point, and its fast path: `freshtoken token` inside `exec`/`serve`
children asks the parent's local endpoint with the standard library alone (no click, no
httpx), so a cache hit costs little more than starting Python."""

from __future__ import annotations

import os
import sys

from freshtoken.cli._formats import TEXT_FORMATS, error_json, mask_on_github, render, token_json
from freshtoken.cli._parent import ParentError, fetch_from_parent

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


def _fast_args(argv: list[str]) -> tuple[float | None, str] | None:
    """(min_ttl, format) when argv is a plain `token` call the fast path can serve."""
    if not argv or argv[0] != "token":
        return None
    min_ttl: float | None = None
    fmt = "raw"
    rest = argv[1:]
    while rest:
        name, eq, value = rest.pop(0).partition("=")
        if not eq:
            if not rest:
                return None
            value = rest.pop(0)
        if name == "--min-ttl":
            try:
                min_ttl = float(value)
            except ValueError:
                return None
        elif name == "--format" and (value == "json" or value in TEXT_FORMATS):
            fmt = value
        else:
            return None
    return min_ttl, fmt


def main() -> None:
    argv = sys.argv[1:]
    refused = refuse_secret_options(argv)
    if refused:
        sys.stderr.write(f"freshtoken: {refused}\n")
        sys.exit(2)
    if "serve" in argv or "exec" in argv:  # long-lived: keep secrets out of the environment
        from freshtoken.cli._hide import reexec_without_secrets

        reexec_without_secrets(argv)
    parent, key = os.environ.get("FRESHTOKEN_URL"), os.environ.get("FRESHTOKEN_KEY")
    fast = _fast_args(argv)
    if fast is not None and not (parent and key) and _print_cached(*fast):
        return
    if fast is not None and parent and key:
        on_github = os.environ.get("GITHUB_ACTIONS") == "true"
        try:
            # On GitHub the token is masked first: fetched as JSON, so that it can be named.
            body = fetch_from_parent(parent, key, fast[0], "json" if on_github else fast[1])
        except ParentError as exc:
            if fast[1] == "json":  # errors follow --format json too
                sys.stderr.write(error_json(exc.error, exc.message, exc.hint, exc.exit_code))
                sys.stderr.write("\n")
            else:
                sys.stderr.write(f"freshtoken: {exc}\n")
            sys.exit(exc.exit_code)
        if on_github:
            import json

            data = json.loads(body)
            mask_on_github(str(data["access_token"]))
            body = render(data, fast[1]).encode()
        sys.stdout.buffer.write(body if body.endswith(b"\n") else body + b"\n")
        return
    from freshtoken.cli._app import cli

    try:
        cli(prog_name="freshtoken")
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # the one place where anything unforeseen becomes one line
        _unexpected(exc, argv)


def _unexpected(exc: Exception, argv: list[str]) -> None:
    from freshtoken._errors import OAuthError
    from freshtoken._log import describe

    if isinstance(exc, OAuthError):
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


def _print_cached(min_ttl: float | None, fmt: str) -> bool:
    """Serve a plain `freshtoken token` from the store, without loading httpx and click."""
    from freshtoken._errors import OAuthError
    from freshtoken.broker._peek import cached_token
    from freshtoken.broker._policy import COMMAND_LINE, with_margin
    from freshtoken.config._settings import Settings

    try:
        settings = Settings.load()
        token = cached_token(settings, min_ttl, with_margin(COMMAND_LINE, settings.min_ttl))
    except (OAuthError, OSError):
        return False  # the full command reports it, with its hint and exit code
    if token is None:
        return False
    data = token_json(token.access_token, token.token_type, token.expires_at)
    mask_on_github(token.access_token)
    sys.stdout.write(render(data, fmt) + "\n")
    return True
