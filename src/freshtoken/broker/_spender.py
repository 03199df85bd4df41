"""A refresh that outlives its caller: a single-use refresh token is presented by a process of
its own (`python -I -m freshtoken.broker._spender`, in a session of its own), which writes the
outcome, the new token or the error, into the store whatever happens to the caller. The store
is the only channel: the caller waits for that process to end (within its deadline), then reads
the entry as it reads any other holder's outcome.

A CI step that is cancelled, or a caller killed with its process group, leaves the spender
running: servers finish a refresh whose client went away, and the new refresh token is stored
instead of being lost with the caller. The caller's lock is not needed meanwhile: the mark
(phase `spending`, its owner, until `phase_until`) keeps every other holder from the token, and
the spender writes compare-and-set against the marked entry.

The spender builds client and store from the caller's `Settings`, sent (secrets included) as
JSON over a socket pair (on POSIX; Windows, without /proc, uses its stdin and stdout): never in
argv, its environment, a pipe or a file, and only once the spender has said that it is
non-dumpable (its first line), so that no other process of the user can read them from `/proc`
(see _handover.py). It runs isolated (`python -I`). Only a broker built from settings
with a store of its own that outlives the process (SQLite, Redis) uses it: a memory store dies
with the caller anyway, and hand-built parts cannot be rebuilt elsewhere.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from typing import IO, Any

from freshtoken import _build
from freshtoken._errors import FreshtokenError, OAuthError, TokenUnavailableError
from freshtoken._handover import SELF_EXE, pair
from freshtoken._log import redact
from freshtoken._platform import only_on_pythonpath, undumpable
from freshtoken._record import replace
from freshtoken._secret import Secret
from freshtoken._token import RefreshPolicy
from freshtoken.broker._minters import Minted
from freshtoken.broker._renewal import HeldEntry, Renewal, changed_under_lock
from freshtoken.broker._shared import SharedCache
from freshtoken.config._options import OPTIONS
from freshtoken.config._settings import Settings
from freshtoken.oauth._codes import error_classes
from freshtoken.provider._presets import ALIAS_PREFIXES
from freshtoken.stores import Entry, TokenStore
from freshtoken.stores._entry import SPENDING, unmarked
from freshtoken.stores._failopen import FailOpenStore

MODULE = "freshtoken.broker._spender"
#: Variables the spender must not see: its settings come on its socket; these may carry secrets.
_PREFIXES = ("FRESHTOKEN_", *ALIAS_PREFIXES)
#: The spender's first line: it is non-dumpable, the request may come.
READY = b"ready\n"


def mark_of(entry: Entry) -> str:
    """Which spend an error recorded in the store belongs to: the mark's owner and version."""
    return f"{entry.phase_owner}@{entry.version}"


class SpendProcess:
    """The caller's side: `RefreshTokenMinter.elsewhere` for a broker built from `settings`."""

    #: What Python's start and imports may take on a busy machine (0.2 to 1.2 s measured).
    startup = 3.0

    def __init__(
        self,
        settings: Settings,
        store: TokenStore,
        *,
        key: str,
        fallback: bool,
        scope_check: str,
    ) -> None:
        self.settings = settings
        self.store = store
        self.request = {"key": key, "fallback": fallback, "check": scope_check}

    @staticmethod
    def usable(settings: Settings) -> bool:
        """Whether the configured store outlives this process (memory:// does not), and an
        isolated interpreter finds freshtoken (not when only PYTHONPATH brings it)."""
        return not only_on_pythonpath() and not (settings.store or "").startswith("memory:")

    def ready(self) -> bool:
        """Whether the spender sees the store this process uses now (not while this process
        uses its own cache because the shared store failed: then it presents it itself)."""
        return not isinstance(self.store, FailOpenStore) or self.store.sharing

    def __call__(self, held: HeldEntry, attempt_deadline: float) -> Minted:
        marked = held.entry
        assert marked is not None
        wall = time.time() - time.monotonic()  # the spender counts its deadlines in wall time
        request = {
            **self.request,
            # Every setting's value, secrets revealed (for the spender's socket only).
            "settings": {
                o.key: v.reveal() if isinstance(v := getattr(self.settings, o.key), Secret) else v
                for o in OPTIONS
            },
            "owner": marked.phase_owner,
            "version": marked.version,
            "attempt_deadline": wall + attempt_deadline,
            "deadline": wall + held.deadline,
        }
        env = {k: v for k, v in os.environ.items() if not k.startswith(_PREFIXES)}
        sent = time.monotonic()
        try:
            started = _run(json.dumps(request).encode(), env, held.deadline)
        except TimeoutError:
            raise TokenUnavailableError(
                "the refresh is still in flight, in a process of its own that stores the new "
                "token when the server answers",
                hint="Try again in a moment; `freshtoken status` shows the entry.",
            ) from None
        except OSError as exc:
            started = f"({exc})"
        if started is not True:  # it never had the request: the token was not presented
            held.write(unmarked(marked))
            raise TokenUnavailableError(
                f"could not start the process that presents the refresh token {started}; it "
                "was not presented, and stays good",
                hint="Check that `python -I -m freshtoken.broker._spender` can run here.",
            )
        return settled(held, marked, sent)


def settled(held: HeldEntry, marked: Entry, sent: float) -> Minted:
    """What the spender of `marked` stored: its token, or its error raised."""
    now = held.reload()
    failure = json.loads(now.failure) if now is not None and now.failure else {}
    if failure.get("mark") == mark_of(marked):
        kinds = {cls.default_error: cls for cls in error_classes()}
        raise kinds.get(failure.get("error", ""), OAuthError)(
            failure.get("message", "the refresh failed in its own process"),
            error=failure.get("error"),
            description=failure.get("description"),
            status=failure.get("status"),
            retryable=failure.get("retryable"),
            hint=failure.get("hint", ""),
            retry_after=failure.get("retry_after"),
        )
    if now is not None and now.version == marked.version:
        raise TokenUnavailableError(
            "the process presenting the refresh token ended without an answer in the store; the "
            "token counts as spent until "
            f"{time.strftime('%H:%M:%S', time.localtime(marked.phase_until))}",
            hint="It was killed, or crashed, while the server was answering. Try again "
            "after that instant; `freshtoken status` shows the entry.",
        )
    if now is None or now.token is None or now.phase == SPENDING:
        raise changed_under_lock()
    if now.last_mint <= marked.last_mint:
        raise changed_under_lock()
    # Sent when the spender sent it (the token's issued_at), on this process's clock.
    mono = time.monotonic()
    sent = max(sent, min(mono, mono - (time.time() - now.token.issued_at)))
    return Minted(now.token, now.refresh_token, sent, refreshed=True, stored=now)


def _run(request: bytes, env: dict[str, str], deadline: float) -> bool | str:
    """Start the spender (isolated: -I), give it `request` once it is non-dumpable, and wait
    until it ends: True, or why it never had the request. OSError: it could not start;
    TimeoutError: it is still at work at `deadline` (time.monotonic), left to finish."""
    argv = [sys.executable, "-I", "-m", MODULE]
    deadline = max(deadline, time.monotonic() + 0.1)
    if sys.platform == "win32":  # no /proc to read a pipe through; no fds to pass either
        proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
        )
        try:
            out, _ = proc.communicate(request, timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            threading.Thread(target=proc.communicate, daemon=True).start()  # reaps it
            raise TimeoutError from None
        return out.startswith(READY) or f"(exit {proc.returncode})"
    ours, theirs = pair()
    with ours:
        with theirs:
            proc = subprocess.Popen(
                [*argv, str(theirs.fileno())],
                executable=SELF_EXE,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),),
                env=env,
                start_new_session=True,  # not killed with the caller's process group
            )
        try:
            started = _converse(ours, request, deadline)
        except TimeoutError:
            threading.Thread(target=proc.wait, daemon=True).start()  # reaps it
            raise
    try:
        code: int | None = proc.wait(max(deadline - time.monotonic(), 0.1))
    except subprocess.TimeoutExpired:  # it closed its socket, and is ending: reaped later
        threading.Thread(target=proc.wait, daemon=True).start()
        code = None
    return started or f"(exit {code})"


def _converse(sock: socket.socket, request: bytes, deadline: float) -> bool:
    """Send `request` once the spender said it is non-dumpable, then wait until it closes
    `sock`; whether it had the request."""
    said = b""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        sock.settimeout(remaining)
        chunk = sock.recv(4096)  # TimeoutError at the deadline
        if not chunk:
            return said.startswith(READY)
        if said.startswith(READY):
            continue
        said += chunk
        if said.startswith(READY):
            try:
                sock.sendall(request)
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                return False  # it is gone already, without the request


# -- the spender's side --------------------------------------------------------------------


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
