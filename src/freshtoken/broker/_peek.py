"""A cache hit without the network stack: what `freshtoken token` serves from the store before
it loads httpx and click. Only a token the broker itself would hand out without work is served;
anything else goes the full way (and a refresh due now is done there, not skipped)."""

from __future__ import annotations

import time

from freshtoken import _build
from freshtoken._log import logger
from freshtoken._token import Token
from freshtoken.broker._key import settings_key
from freshtoken.broker._policy import (
    FUTURE_TOLERANCE,
    RefreshPolicy,
    ahead_warning,
    covered,
    guards,
    stored_left,
)
from freshtoken.config._settings import Settings


def cached_token(
    settings: Settings, min_ttl: float | None, policy: RefreshPolicy | None = None
) -> Token | None:
    """The stored token when it is valid for `min_ttl` and not yet due for refresh."""
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
