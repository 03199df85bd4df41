"""A refresh token that another holder marked as being spent and never settled: its attempt is
waited out while the store is watched for the outcome, then judged by what introspection can
vouch for. An unknown outcome counts as spent: the token is never presented while an earlier
attempt may still be in flight, and never presented again on a guess.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from freshtoken._clock import Clock
from freshtoken._errors import TokenUnavailableError
from freshtoken._log import logger
from freshtoken.stores import Entry

if TYPE_CHECKING:
    from freshtoken.oauth._client import TokenClient

#: How often a holder waiting out another's attempt looks for its stored outcome (s).
POLL = 0.1


def wait_out(
    entry: Entry, reload: Callable[[], Entry | None], clock: Clock, deadline: float
) -> Entry | None:
    """Wait until `entry`'s attempt surely ended, or the store holds something else (the
    process spending it stored the outcome); the entry then (`entry` itself if unchanged).
    Raises TokenUnavailableError when `deadline` (monotonic) comes first."""
    while (left := entry.phase_until - clock.time()) > 0:
        now = clock.monotonic()
        if now >= deadline:
            raise TokenUnavailableError(
                f"a refresh started earlier (by this or another process) may still be in "
                f"flight at the server "
                f"for {left:.0f}s more; its refresh token is not presented again before then "
                "(that could revoke the whole login)",
                hint="Try again after that; the process spending it stores the new token as "
                "soon as the server answers. `freshtoken status` shows the entry.",
            )
        clock.sleep(min(POLL, left, deadline - now))
        current = reload()
        if current is None or current.version != entry.version:
            return current
    return entry


def judge(
    client: TokenClient, entry: Entry, fallback: str | None, vouched: bool | None
) -> str | None:
    """After the attempt surely ended with no outcome stored: the refresh token to present
    again (introspection says it is unspent), or None (spent, or unknown with a `fallback`
    grant to mint with instead). Unknown without a fallback raises, keeping the token: it may
    still be the live one. `vouched`: whether introspection vouches for refresh tokens, as
    learned by the method asking now."""
    refresh = entry.refresh_token
    assert refresh is not None
    # Active is proof whatever else was learned; inactive only from a server that vouches.
    active = client.introspect(refresh) if vouched is not False else None
    if active:
        logger.warning(
            "resuming a refresh left unfinished by another holder: the server says its "
            "refresh token is still unspent"
        )
        return refresh
    spent = active is False and vouched is True
    if spent or fallback:
        logger.warning(
            "a refresh token was presented by a holder that never stored the answer, and the "
            "server %s; it is not presented again (that could revoke the whole login). %s",
            "reports it spent" if spent else "cannot tell whether it was spent",
            f"Falling back to {fallback}." if fallback else "Seed a new refresh token.",
        )
        return None
    why = (
        "introspection gave no answer"
        if active is None and vouched is not False
        else f"introspection is not known to vouch for refresh tokens with {client.auth_method}"
    )
    raise TokenUnavailableError(
        "a refresh token was presented by a holder that never stored the answer, and "
        f"whether the server spent it cannot be told ({why}); it is kept, but not presented "
        "again (if it was spent, that would revoke the whole login)",
        retryable=False,
        hint="Seed a refresh token from a fresh login (`freshtoken seed-refresh-token`). If you "
        "know the earlier attempt never reached the server, seeding this same one again "
        "clears the mark. `freshtoken status` shows the entry.",
    )
