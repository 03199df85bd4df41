"""The spender: `python -I -m freshtoken.broker._spender`, the process of its own in which a
marked refresh token is presented (its caller's side is `SpendProcess`, broker/_refresh.py). It
becomes non-dumpable, says so (its first line), reads its request (the caller's settings,
secrets included) from the socket it was given, presents the token through the one transaction's
`Renewal.renew`, and writes the outcome, or the error, into the store, whatever happened to the
caller meanwhile.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import IO, Any

from freshtoken import _build
from freshtoken._errors import FreshtokenError, TokenUnavailableError
from freshtoken._log import redact
from freshtoken._platform import undumpable
from freshtoken._record import replace
from freshtoken._token import RefreshPolicy
from freshtoken.broker._refresh import READY, mark_of
from freshtoken.broker._renewal import Renewal
from freshtoken.broker._shared import SharedCache
from freshtoken.config._settings import Settings
from freshtoken.stores import Entry, TokenStore
from freshtoken.stores._entry import unmarked


def spend(request: dict[str, Any]) -> None:
    """Present the marked refresh token; store the outcome, or the error, in the store."""
    given: dict[str, Any] = {
        k: tuple(v) if isinstance(v, list) else v for k, v in request["settings"].items()
    }
    settings = Settings(**given)
    parts = _build.broker_parts(settings)
    client, store = parts["client"], parts["store"]
    key = request["key"]
    try:
        entry = store.load(key)
        if entry is None or (entry.version, entry.phase_owner) != (
            request["version"],
            request["owner"],
        ):
            return  # the mark is gone: nothing presented (the caller sees another entry)
        mark = mark_of(entry)
        try:
            mono = time.monotonic() - time.time()
            attempt_deadline = mono + request["attempt_deadline"]
            if attempt_deadline <= time.monotonic():  # too late: not presented, still good
                store.save(key, unmarked(entry), entry.version)
                raise TokenUnavailableError(
                    "the call's deadline came before the refresh token could be presented; it "
                    "was not, and stays good",
                    hint="The machine is too busy to start a process in time, or the call's "
                    "budget (FRESHTOKEN_RETRY_BUDGET) is too short.",
                )
            # A late answer (a slow server, this process paused) is read and stored until the
            # mark's deadline, written to the sink by then too: the caller may have given up,
            # but the server rotated the token, and this answer is the only copy of the new one.
            answer_by = max(mono + entry.phase_until, attempt_deadline)
            reading = max(client.timeouts.read, answer_by - time.monotonic())
            client.timeouts = replace(client.timeouts, read=reading)
            cache = SharedCache(
                store,
                key,
                client,
                policy=RefreshPolicy(),
                clock=client.clock,
                rotation=settings.rotation_revokes_access,
            )
            renewal = Renewal(
                cache,
                client,
                parts["grant"] if request["fallback"] else None,
                owner=request["owner"],
                sink=parts["sink"],  # a rotated refresh token is written back from here
                wait_timeout=settings.retry_budget,
                scope_check="warn" if request["check"] == "warn" else "raise",
            )
            renewal.renew(
                entry,
                max(mono + request["deadline"], answer_by),
                "spent in its own process",
                # The caller marked it: presented with no new mark, its answer read until the
                # mark's deadline (no one presents the token before it).
                lambda held: renewal.minter.present(held, attempt_deadline, answer_by),
            )
        except FreshtokenError as exc:
            _record(store, key, mark, exc)
        except Exception as exc:  # recorded, not shown: the caller says what happened
            why = f"the refresh failed in its own process ({redact(repr(exc))})"
            _record(store, key, mark, TokenUnavailableError(why))
    finally:
        store.close()
        client.close()


def _record(store: TokenStore, key: str, mark: str, exc: FreshtokenError) -> None:
    """Write `exc` into the entry, for the caller whose mark was `mark`."""
    said = {
        "mark": mark,
        "kind": type(exc).__name__,  # the class, as the caller raises it again
        "error": exc.error,
        "message": redact(exc.message),
        "description": exc.description and redact(exc.description),
        "status": exc.status,
        "retryable": exc.retryable,
        "hint": redact(exc.hint),
        "retry_after": exc.retry_after,
    }
    for _ in range(5):
        entry = store.load(key)
        if entry is None:
            entry = Entry(None)
        if store.save(key, replace(entry, failure=json.dumps(said)), entry.version) is not None:
            return


def main() -> None:
    undumpable()  # before the secrets come: other processes of this user cannot read them
    if len(sys.argv) > 1:  # the socket to the caller (POSIX)
        fd = int(sys.argv[1])
        os.set_inheritable(fd, False)  # not for the sink's program
        out: IO[bytes] = open(fd, "wb", closefd=False)  # noqa: SIM115
        source: IO[bytes] = open(fd, "rb", closefd=False)  # noqa: SIM115
    else:
        out, source = sys.stdout.buffer, sys.stdin.buffer
    out.write(READY)  # the caller sends the request after this line
    out.flush()
    spend(json.loads(source.read()))


if __name__ == "__main__":
    main()
