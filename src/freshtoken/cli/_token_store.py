"""`freshtoken token`'s store side (cli/_token.py calls it): the stored token when the broker
would hand it out without work, read without building a client, else the broker's. Apart from
cli/_token.py so that a step asking the running endpoint loads none of it."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from freshtoken.cli._formats import token_json

if TYPE_CHECKING:
    from freshtoken._token import RefreshPolicy, Token
    from freshtoken.config._settings import Settings


def from_store_or_mint(
    min_ttl: float | None, profile: str | None, quiet: bool, verbose: int
) -> dict[str, object]:
    """The stored token when the broker would hand it out without work (the peek reads the
    store without building a client), else the broker's; settings are read once."""
    from freshtoken._log import logger, to_stderr
    from freshtoken._token import COMMAND_LINE, with_margin
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
    from freshtoken._token import FUTURE_TOLERANCE, RefreshPolicy, ahead_warning, stored_left
    from freshtoken.broker._key import settings_key
    from freshtoken.broker._shared import covered, guards

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
