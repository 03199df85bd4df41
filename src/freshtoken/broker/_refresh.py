"""Spending a refresh token: `RefreshTokenMinter.mint(held)`, called by `Renewal.renew` under
the store's lock with the entry it holds (`HeldEntry`, written by compare-and-set). The token is
marked as being spent (phase `spending`, its owner, until when), presented at most once, and a
rotated one is written to the sink (if any) before the new access token is handed out; None says
that the grant is to mint instead (the server refused the token, or it was lost).

Where the store outlives the caller (SQLite, Redis; a broker built from settings), the marked
token is presented by a process of its own (`SpendProcess`, the child's side in _spender.py),
which stores the outcome or the error whatever happens to the caller: the caller waits for it to
end, then reads the entry as it reads any other holder's outcome. Its settings (secrets
included) travel on a socket pair once it is non-dumpable, never in argv, environment, pipe or
file (see _handover.py). A spend another holder left unsettled: _unsettled.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from freshtoken._errors import (
    FreshtokenError,
    InvalidGrantError,
    OAuthError,
    StoreError,
    TokenUnavailableError,
)
from freshtoken._handover import SELF_EXE
from freshtoken._log import logger
from freshtoken._platform import only_on_pythonpath
from freshtoken._record import replace
from freshtoken._secret import Secret
from freshtoken._token import Token
from freshtoken.broker._unsettled import judge, wait_out
from freshtoken.oauth._grants import RefreshTokenGrant
from freshtoken.stores import Entry
from freshtoken.stores._entry import (
    IDLE,
    SPENDING,
    WRITING_BACK,
    ServerFacts,
    unmarked,
    with_past,
)
from freshtoken.stores._spent import unreachable

if TYPE_CHECKING:
    from freshtoken.broker._renewal import HeldEntry
    from freshtoken.config._settings import Settings
    from freshtoken.oauth._client import TokenClient
    from freshtoken.sinks import RefreshTokenSink

#: The spender's module, and its first line: it is non-dumpable, the request may come.
SPENDER = "freshtoken.broker._spender"
READY = b"ready\n"


@dataclass(frozen=True, slots=True)
class Minted:
    """A new token, the refresh token to keep (None: none), whether one was spent, and the
    monotonic instant its request was sent (its expiry counts from there)."""

    token: Token
    refresh_token: str | None
    sent: float
    refreshed: bool = False
    #: The entry as stored already, with this token: by another holder (not `refreshed`:
    #: nothing was minted here), or by this holder's spender (`refreshed`).
    stored: Entry | None = None


def vouches(facts: ServerFacts, method: str | None = None) -> bool | None:
    """Whether introspection vouches for refresh tokens, as learned by the client
    authentication `method` (None: any): what one method learned says nothing of another's."""
    return facts.introspection_vouches if method in (None, facts.vouched_by) else None


def changed_under_lock() -> StoreError:
    """Someone else wrote the entry while this process held its lock: it must not go on."""
    return StoreError(
        "the store entry changed while this process held its lock",
        hint="A lock lease expired mid-mint, or the store failed over; it is retried.",
    )


class RefreshTokenMinter:
    """Presents the held refresh token exactly once; None when the grant named `fallback` is
    to mint instead (None: there is no grant, refresh tokens only). A rotated refresh token is
    written to `sink` before the mint returns; when that fails, the store keeps it marked
    pending (and no access token), the call fails, and the next mint writes it first."""

    def __init__(
        self,
        client: TokenClient,
        fallback: str | None,
        *,
        scope: tuple[str, ...],
        owner: str,
        sink: RefreshTokenSink | None = None,
    ) -> None:
        self.client = client
        self.fallback = fallback
        self.scope = scope
        self.owner = owner
        self.sink = sink
        #: Where a marked refresh token is presented (None: in this process).
        self.elsewhere: SpendProcess | None = None

    def mint(self, held: HeldEntry) -> Minted | None:
        entry = held.entry
        if entry is not None and entry.phase == WRITING_BACK and entry.refresh_token is not None:
            self._write_back(held, entry.refresh_token)  # the last rotation's, never written
            entry = held.entry
        vouched = vouches(entry.facts, self.client.auth_method) if entry else None
        if entry is not None and entry.phase == SPENDING and entry.refresh_token is not None:
            now = wait_out(entry, held.reload, self.client.clock, held.deadline)
            if now is None or now.version != entry.version:  # its outcome was stored
                stored = now and now.token and now.phase != SPENDING
                if stored and now and now.token and now.last_mint > entry.last_mint:
                    return Minted(now.token, now.refresh_token, 0.0, stored=now)
                return self.mint(held)  # settled without a new token: start over from it
            if judge(self.client, entry, self.fallback, vouched) is None:
                gone = with_past(entry.past, entry.refresh_token, None)
                held.write(replace(unmarked(entry), refresh_token=None, past=gone))
                return None
            vouched = True  # it said active
        refresh = entry.refresh_token if entry else None
        if refresh is not None:
            return self._spend(held, refresh, vouched)
        return None

    def _spend(self, held: HeldEntry, refresh: str, vouched: bool | None) -> Minted | None:
        """Mark the refresh token as being spent in the store, then present it (in a process
        of its own when there is one). The attempt gets one connect and one read timeout (plus
        the time that process may take to start), or the call's deadline if sooner; the mark
        says until when the server may still be processing it: one read timeout more."""
        assert held.entry is not None
        # A refresh token is presented only as the shared store hands it over, and only once
        # its mark is stored there: not from this process's stand-in for a store that failed.
        self._require_sharing(held)
        if self.sink is not None:
            self.sink.prepare(held.deadline)  # a sink that cannot work costs no refresh token
        if vouched is None:
            # Unmarked, the token is live as far as anyone knows: whether introspection says
            # so tells whether it can vouch for refresh tokens (asked until known).
            vouched = self.client.introspect(refresh)
        if refused := max(held.entry.facts.client_refused, self.client.refused_at):
            # On some servers a refresh with failing client authentication burns the token.
            self.client.require_authentication(refused)
        clock, timeouts = self.client.clock, self.client.timeouts
        now = clock.monotonic()
        elsewhere = self.elsewhere
        start = elsewhere.startup if elsewhere is not None else 0.0
        attempt_deadline = min(held.deadline, now + start + timeouts.connect + timeouts.read)
        facts = replace(
            held.entry.facts, introspection_vouches=vouched, vouched_by=self.client.auth_method
        )
        until = clock.time() + (attempt_deadline - now) + timeouts.read
        held.write(
            replace(
                held.entry,
                refresh_token=refresh,
                phase=SPENDING,
                phase_owner=self.owner,
                phase_until=until,
                facts=facts,
                failure=None,
            )
        )
        self._require_sharing(held)  # the mark went to the stand-in: the shared store failed
        if not held.locked():
            # Our lease ran out (this process was paused): another holder may be spending it.
            raise TokenUnavailableError(
                "the store's lock was lost before the refresh token was presented; it was not",
                hint="This process was paused or slow past the lock's lease; it will retry.",
            )
        if elsewhere is not None:
            return elsewhere(held, attempt_deadline)
        return self.present(held, attempt_deadline)

    @staticmethod
    def _require_sharing(held: HeldEntry) -> None:
        if not held.sharing():
            assert held.entry is not None
            if held.entry.phase == SPENDING:  # only this process's stand-in holds the mark
                with contextlib.suppress(StoreError):
                    held.write(unmarked(held.entry))
            raise unreachable()

    def present(
        self, held: HeldEntry, attempt_deadline: float, answer_by: float | None = None
    ) -> Minted | None:
        """Present the marked refresh token by `attempt_deadline` (its answer read until
        `answer_by`, if later); settle the mark where the outcome is known."""
        marked = held.entry
        assert marked is not None
        refresh = marked.refresh_token
        assert refresh is not None
        try:
            sent = self.client.clock.monotonic()
            grant = RefreshTokenGrant(refresh, self.scope)
            token = self.client.fetch(grant, attempt_deadline, answer_by)
        except InvalidGrantError as exc:
            # What introspection said about a token that was not live teaches nothing.
            vouched = marked.facts.introspection_vouches or None
            held.write(
                replace(
                    unmarked(marked),
                    refresh_token=None,
                    facts=replace(marked.facts, introspection_vouches=vouched),
                    past=with_past(marked.past, refresh, None),
                )
            )
            if self.fallback is None:
                raise
            logger.warning(
                "refresh token refused (%s); falling back to %s. %s",
                exc.error,
                self.fallback,
                exc.hint,
            )
            return None
        except FreshtokenError as exc:
            from freshtoken.oauth._response import surely_unprocessed

            if surely_unprocessed(exc):  # the server never saw it: it is still unspent
                held.write(unmarked(marked))
            raise
        # A server that does not rotate answers without a new one: the old one stays good.
        rotated = token.refresh_token or refresh
        if rotated != refresh:
            self._write_back(held, rotated)  # before anyone is handed the new access token
        return Minted(token, rotated, sent, refreshed=True)

    def _write_back(self, held: HeldEntry, refresh: str) -> None:
        """Write `refresh` to the sink by the call's deadline. On failure store it as the
        entry's refresh token, marked pending and with no access token (so that no caller is
        served before it is written), and raise."""
        if self.sink is None:
            return
        entry = held.entry
        assert entry is not None
        try:
            self.sink.write(refresh, held.deadline)
        except FreshtokenError as exc:
            logger.warning("could not write the new refresh token to %s: %s", self.sink.name, exc)
            past = with_past(entry.past, entry.refresh_token, refresh)
            pending = replace(entry, token=None, refresh_token=refresh, phase=WRITING_BACK)
            held.write(replace(pending, phase_owner=None, phase_until=0.0, past=past))
            raise
        if entry.phase == WRITING_BACK:
            held.write(replace(entry, phase=IDLE))


def mark_of(entry: Entry) -> str:
    """Which spend an error recorded in the store belongs to: the mark's owner and version."""
    return f"{entry.phase_owner}@{entry.version}"


class SpendProcess:
    """`RefreshTokenMinter.elsewhere` for a broker built from `settings`: presents the marked
    refresh token in `python -I -m freshtoken.broker._spender`, in a session of its own (not
    killed with the caller's process group), and reads its outcome from the store."""

    #: What Python's start and imports may take on a busy machine (0.2 to 1.2 s measured).
    startup = 3.0

    def __init__(self, settings: Settings, *, key: str, fallback: bool, scope_check: str) -> None:
        self.settings = settings
        self.request = {"key": key, "fallback": fallback, "check": scope_check}

    @staticmethod
    def usable(settings: Settings) -> bool:
        """Whether the configured store outlives this process (memory:// does not), and an
        isolated interpreter finds freshtoken (not when only PYTHONPATH brings it)."""
        return not only_on_pythonpath() and not (settings.store or "").startswith("memory:")

    def __call__(self, held: HeldEntry, attempt_deadline: float) -> Minted:
        from freshtoken.config._options import OPTIONS
        from freshtoken.provider._presets import ALIAS_PREFIXES

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
        # Not the variables that may carry secrets: its settings come on its socket.
        hidden = ("FRESHTOKEN_", *ALIAS_PREFIXES)
        env = {k: v for k, v in os.environ.items() if not k.startswith(hidden)}
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
                hint=f"Check that `python -I -m {SPENDER}` can run here.",
            )
        return settled(held, marked, sent)


def settled(held: HeldEntry, marked: Entry, sent: float) -> Minted:
    """What the spender of `marked` stored: its token, or its error raised."""
    now = held.reload()
    failure = json.loads(now.failure) if now is not None and now.failure else {}
    if failure.get("mark") == mark_of(marked):
        from freshtoken.oauth._codes import error_classes

        # Its class by name (codes are shared, and a server's own code names no class).
        kinds: dict[str, type[FreshtokenError]] = {c.__name__: c for c in error_classes()}
        said = {k: failure.get(k) for k in ("error", "description", "status", "retryable")}
        raise kinds.get(failure.get("kind") or "", OAuthError)(
            failure.get("message", "the refresh failed in its own process"),
            **said,
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
    """Start the spender, give it `request` once it is non-dumpable, and wait until it ends:
    True, or why it never had the request. OSError: it could not start; TimeoutError: it is
    still at work at `deadline` (time.monotonic), left to finish."""
    argv = [sys.executable, "-I", "-m", SPENDER]
    deadline = max(deadline, time.monotonic() + 0.1)
    if sys.platform == "win32":  # no /proc to read a pipe through; no fds to pass either
        proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
        )
        try:
            out, _ = proc.communicate(request, timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            _reap(proc.communicate)
            raise TimeoutError from None
        return out.startswith(READY) or f"(exit {proc.returncode})"
    ours, theirs = socket.socketpair()
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
            _reap(proc.wait)
            raise
    try:
        code: int | None = proc.wait(max(deadline - time.monotonic(), 0.1))
    except subprocess.TimeoutExpired:  # it closed its socket, and is ending
        _reap(proc.wait)
        code = None
    return started or f"(exit {code})"


def _reap(wait: Callable[[], object]) -> None:
    """Let a spender still at work finish: `wait` for it in a thread, off the caller's path."""
    threading.Thread(target=wait, daemon=True).start()


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
