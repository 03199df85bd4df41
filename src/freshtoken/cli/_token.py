"""`freshtoken token`: print a token from the running endpoint, the store or a new mint.

The one implementation: the click command (cli/_app.py) and the argv shortcut (cli/_main.py)
both call `print_token`. Nothing here imports click, and a cache hit imports no HTTP stack:
httpx is loaded only when a token must be minted."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from freshtoken.cli._formats import (
    failure,
    mask_on_github,
    render,
    token_json,
)

if TYPE_CHECKING:
    from freshtoken._token import Token
    from freshtoken.broker._policy import RefreshPolicy
    from freshtoken.config._settings import Settings


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
            data = _from_store_or_mint(min_ttl, profile, quiet, verbose)
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


def _from_store_or_mint(
    min_ttl: float | None, profile: str | None, quiet: bool, verbose: int
) -> dict[str, object]:
    """The stored token when the broker would hand it out without work (the peek reads the
    store without building a client), else the broker's; settings are read once."""
    from freshtoken._log import logger, to_stderr
    from freshtoken.broker._policy import COMMAND_LINE, with_margin
    from freshtoken.config._load import unknown_variables
    from freshtoken.config._settings import Settings

    to_stderr(verbose, quiet)  # the argv shortcut's (after click's group, nothing changes)
    settings = Settings.load(profile=profile)
    for line in unknown_variables(os.environ):  # doctor says it too
        logger.warning("warning: %s", line)
    if advice := settings.offline_access_advice():
        logger.warning("warning: %s", advice)
    policy = with_margin(COMMAND_LINE, settings.min_ttl)
    try:
        token = cached_token(settings, min_ttl, policy)
    except OSError:
        token = None  # the broker's own path reports a store it cannot open
    if token is None:
        from freshtoken.broker._broker import TokenBroker

        broker = TokenBroker.from_settings(settings, refresh=COMMAND_LINE)
        try:
            token = broker.token(min_ttl)
        finally:
            broker.close()  # a refresh started for the next caller is finished, not lost
    return token_json(token.access_token, token.token_type, token.expires_at)


def cached_token(
    settings: Settings, min_ttl: float | None, policy: RefreshPolicy | None = None
) -> Token | None:
    """The stored token when it is valid for `min_ttl` and not yet due for refresh: a cache hit
    without the network stack, before httpx and click are loaded. Only a token the broker itself
    would hand out without work is served; anything else goes the full way (and a refresh due
    now is done there, not skipped)."""
    import time

    from freshtoken import _build
    from freshtoken._log import logger
    from freshtoken.broker._key import settings_key
    from freshtoken.broker._policy import (
        FUTURE_TOLERANCE,
        RefreshPolicy,
        ahead_warning,
        covered,
        guards,
        stored_left,
    )

    if settings.store and not settings.store.startswith("sqlite:"):
        # A new process has an empty memory store; a Redis store is left to the full path,
        # so that an unreachable one costs one timeout and one warning, not two.
        return None
    store = _build.store_for(settings)
    try:
        entry = store.load(settings_key(settings, store.pepper))
    finally:
        store.close()
    token = entry.token if entry is not None else None
    policy = policy or RefreshPolicy()
    now = time.time()
    if token is None or entry is None or not policy.servable(token, now, min_ttl):
        return None
    if guards(settings.rotation_revokes_access, entry) and not covered(
        entry, now, policy.min_ttl_for(token, min_ttl)
    ):
        return None  # the full way promises it (this peek does not write)
    window = policy.window(token.lifetime)
    if (ahead := token.issued_at - now) > FUTURE_TOLERANCE:
        logger.warning("%s", ahead_warning(ahead, 0.0, window))
    logger.info(
        "adopted a token another holder stored for client %s: %.0fs left",
        settings.client_id,
        stored_left(token, now, window=window),
    )
    return token


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
