"""`freshtoken token`: print a token from the running endpoint, the store or a new mint.

The one implementation: the click command (cli/_app.py) and the argv shortcut (cli/_main.py)
both call `print_token`. Nothing here imports click, and a cache hit imports no HTTP stack:
httpx is loaded only when a token must be minted."""

from __future__ import annotations

import os
import sys

from freshtoken.cli._formats import failure, mask_on_github, render


def print_token(
    min_ttl: float | None,
    fmt: str,
    *,
    github_env: str | None = None,
    profile: str | None = None,
    quiet: bool = False,
    verbose: int = 0,
) -> None:
    """Print a token valid for at least `min_ttl` seconds in `fmt`; on failure, say why on
    stderr (as JSON with --format json) and exit with the error's code."""
    from freshtoken._local_endpoint import (
        EndpointRefusal,
        ask,
        default_min_ttl,
        is_b64token,
        running_endpoint,
    )

    json_errors = fmt == "json"
    found = running_endpoint(profile)
    try:
        if found is not None:
            # Asked as JSON and rendered here, as a token from the store is: checked the same way.
            data = ask(*found, default_min_ttl() if min_ttl is None else min_ttl)
        else:
            # The store's side in a module of its own: a step asking the endpoint loads none
            # of it (its type names alone would import `typing`: 16 M instructions there).
            from freshtoken.cli._token_store import from_store_or_mint

            data = from_store_or_mint(min_ttl, profile, quiet, verbose)
    except EndpointRefusal as exc:
        raise failure(exc.error, exc.line, exc.hint, exc.exit_code, json_errors) from None
    except Exception as exc:
        from freshtoken._errors import FreshtokenError

        if not isinstance(exc, FreshtokenError):
            raise
        text = str(exc).split("\nhint: ", 1)[0]
        raise failure(exc.error, text, exc.hint, exc.exit_code, json_errors) from None
    access = str(data["access_token"])
    if not is_b64token(access):  # refused when it was minted; this is where it is written
        raise failure(
            "malformed_response",
            "the token holds characters outside RFC 6750's b64token and is not printed",
            "Shells, .env files and workflows would read them as syntax.",
            1,
            json_errors,
        )
    if fmt == "github":
        _github(access, data, github_env)
        return
    mask_on_github(access)
    sys.stdout.write(render(data, fmt) + "\n")
    sys.stdout.flush()


def _github(access: str, data: dict[str, object], env_name: str | None) -> None:
    """`token=` and `expires_at=` lines for $GITHUB_OUTPUT (and NAME= for $GITHUB_ENV): the
    token is a b64token, so no line break ends the value and no shell syntax is in it when a
    workflow pastes `${{ steps.x.outputs.token }}` into a `run:` script."""
    if env_name is not None and not (
        env_name.replace("_", "a").isalnum() and env_name.isascii() and not env_name[0].isdigit()
    ):
        raise failure(
            "invalid_configuration",
            f"--github-env {env_name[:40]!r} is not a variable name",
            "Letters, digits and _, not starting with a digit.",
            2,
        )
    output = os.environ.get("GITHUB_OUTPUT")
    if not output:
        raise failure(
            "invalid_configuration",
            "--format github needs $GITHUB_OUTPUT",
            "It is set inside a GitHub Actions step.",
            2,
        )
    sys.stdout.write(f"::add-mask::{access}\n")  # before the token is written anywhere
    sys.stdout.flush()
    with open(output, "a", encoding="utf-8") as handle:
        handle.write(f"token={access}\nexpires_at={data['expires_at']}\n")
    if env_name:
        target = os.environ.get("GITHUB_ENV")
        if not target:
            raise failure(
                "invalid_configuration",
                "--github-env needs $GITHUB_ENV",
                "It is set inside a GitHub Actions step.",
                2,
            )
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(f"{env_name}={access}\n")
