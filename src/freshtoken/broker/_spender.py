"""A refresh that outlives its caller: a single-use refresh token is presented by a process of
its own (`python -m freshtoken.broker._spender`, in a session of its own), which stores the
server's answer whatever happens to the caller, and reports it to the caller on its stdout.

A CI step that is cancelled, or a caller killed with its process group, leaves the spender
running: servers finish a refresh whose client went away, and the new refresh token is stored
instead of being lost with the caller. The caller's lock is not needed meanwhile: the mark
(`spending` until `spending_until`) keeps every other holder from the token, and the spender
writes compare-and-set against the marked entry.

The spender rebuilds client and store from the caller's `Settings`, sent (secrets included) as
JSON over a socket pair (on POSIX; Windows, without /proc, uses its stdin and stdout): never in
argv, its environment, a pipe or a file, and only once the spender has said that it is
non-dumpable (its first line), so that no other process of the user can read them from `/proc`
(see _handover.py). It runs isolated (`python -I`). Only a broker built from settings
with a store of its own that outlives the process (SQLite, Redis) uses it: a memory store dies
with the caller anyway, and hand-built parts cannot be rebuilt elsewhere.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import fields, replace
from typing import IO, Any

from freshtoken import _build, _errors
from freshtoken._errors import OAuthError, StoreError, TokenUnavailableError
from freshtoken._handover import SELF_EXE, pair
from freshtoken._log import logger, redact
from freshtoken._platform import undumpable
from freshtoken._secret import Secret
from freshtoken.broker._minters import GrantMinter, Held, Minted, RefreshTokenMinter
from freshtoken.broker._policy import RefreshPolicy
from freshtoken.broker._renewal import Renewal, changed_under_lock
from freshtoken.broker._shared import SharedCache
from freshtoken.config._options import SettingValues
from freshtoken.config._settings import Settings
from freshtoken.stores import Entry
from freshtoken.stores._entry import token_data, token_from_data

MODULE = "freshtoken.broker._spender"
#: Variables the spender must not see: its settings come on its socket; these may carry secrets.
_PREFIXES = ("FRESHTOKEN_", "GENESYSCLOUD_")


def settings_json(settings: Settings) -> dict[str, Any]:
    """Every setting's value, secrets revealed (for the spender's socket only)."""
    values: dict[str, Any] = {}
    for f in fields(SettingValues):
        value = getattr(settings, f.name)
        values[f.name] = value.reveal() if isinstance(value, Secret) else value
    return values


def settings_from_json(values: dict[str, Any]) -> Settings:
    given: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return Settings(**given)


class SpendProcess:
    """The caller's side: `RefreshTokenMinter.elsewhere` for a broker built from `settings`."""

    #: What Python's start and imports may take on a busy machine (0.2 to 1.2 s measured).
    startup = 3.0

    def __init__(
        self,
        settings: Settings,
        *,
        key: str,
        fallback: bool,
        scope: tuple[str, ...],
        scope_check: str,
    ) -> None:
        self.settings = settings
        self.request = {"key": key, "fallback": fallback, "scope": scope, "check": scope_check}

    @staticmethod
    def usable(settings: Settings) -> bool:
        """Whether the configured store outlives this process (memory:// does not)."""
        return not (settings.store or "").startswith("memory:")

    def __call__(self, held: Held, attempt_deadline: float, here: Callable[[], Minted]) -> Minted:
        marked = held.entry
        assert marked is not None
        wall = time.time() - time.monotonic()  # the spender counts its deadlines in wall time
        request = {
            **self.request,
            "settings": settings_json(self.settings),
            "owner": marked.spending,
            "version": marked.version,
            "attempt_deadline": wall + attempt_deadline,
            "deadline": wall + held.deadline,
            "log_level": logger.getEffectiveLevel(),
        }
        env = {k: v for k, v in os.environ.items() if not k.startswith(_PREFIXES)}
        sent = time.monotonic()
        try:
            out, code = _run(json.dumps(request).encode(), env, held.deadline)
        except OSError as exc:
            logger.warning("could not start a process to spend the refresh token (%s)", exc)
            return here()
        except TimeoutError:
            raise TokenUnavailableError(
                "the refresh is still in flight, in a process of its own that stores the new "
                "token when the server answers",
                hint="Try again in a moment; `freshtoken status` shows the entry.",
            ) from None
        report: dict[str, Any] = {}
        for line in out.decode(errors="replace").splitlines():
            try:
                report.update(json.loads(line))
            except ValueError:
                continue
        for level, text in report.get("log", []):
            logger.log(level, "%s", text)
        if report.get("stale"):
            now = held.reload()
            if now is not None and (now.version, now.spending) == (marked.version, marked.spending):
                return here()  # it sees another store than this process (one failed open)
            raise changed_under_lock()
        if report.get("late"):
            raise TokenUnavailableError(
                "the call's deadline came before the refresh token could be presented; it was "
                "not, and stays good",
                hint="The machine is too busy to start a process in time, or the call's budget "
                "(FRESHTOKEN_RETRY_BUDGET) is too short.",
            )
        if not report.get("presenting"):
            # It ended before presenting the token (it could not start, or came too late).
            logger.warning(
                "the process spending the refresh token ended before presenting it (exit %s%s);"
                " presenting it from this process",
                code,
                f": {report['error'].get('message')}" if "error" in report else "",
            )
            return here()
        if "error" in report:
            raise _error(report["error"])
        if "token" not in report:
            raise TokenUnavailableError(
                f"the process presenting the refresh token ended without an answer (exit "
                f"{code}); the token counts as spent until "
                f"{time.strftime('%H:%M:%S', time.localtime(marked.spending_until))}",
                hint="It was killed, or crashed, while the server was answering. Try again "
                "after that instant; `freshtoken status` shows the entry.",
            )
        token = token_from_data(report["token"])
        if report.get("sent") is not None:  # when the spender sent it, on this clock
            sent = max(sent, time.monotonic() - (time.time() - report["sent"]))
        # Stored already; storing it again here is a no-op that also covers a store write
        # the spender could not make.
        return Minted(token, report.get("refresh_token"), sent, refreshed=report["refreshed"])


def _run(request: bytes, env: dict[str, str], deadline: float) -> tuple[bytes, int | None]:
    """Start the spender (isolated: -I), give it `request` once it is non-dumpable, and return
    everything it said and its exit code. OSError: it could not start; TimeoutError: it is
    still at work at `deadline` (time.monotonic), left to finish on its own."""
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
        return out, proc.returncode
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
            out = _converse(ours, request, deadline)
        except TimeoutError:
            threading.Thread(target=proc.wait, daemon=True).start()  # reaps it
            raise
    try:
        code: int | None = proc.wait(max(deadline - time.monotonic(), 0.1))
    except subprocess.TimeoutExpired:  # it closed its socket, and is ending: reaped later
        threading.Thread(target=proc.wait, daemon=True).start()
        code = None
    return out, code


def _converse(sock: socket.socket, request: bytes, deadline: float) -> bytes:
    """What the spender says on `sock` until it closes it; `request` is sent after its first
    line (it is non-dumpable from then on)."""
    said = bytearray()
    sent = False
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        sock.settimeout(remaining)
        chunk = sock.recv(65536)  # TimeoutError at the deadline
        if not chunk:
            return bytes(said)
        said += chunk
        if not sent and b"\n" in said:
            sent = True
            try:
                sock.sendall(request)
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # it is gone already: what it said tells the rest


def _error(said: dict[str, Any]) -> OAuthError:
    cls = getattr(_errors, said.get("class", ""), None)
    if not (isinstance(cls, type) and issubclass(cls, OAuthError)):
        cls = TokenUnavailableError
    return cls(
        said.get("message", "the refresh failed in its own process"),
        error=said.get("error"),
        description=said.get("description"),
        status=said.get("status"),
        retryable=said.get("retryable"),
        hint=said.get("hint", ""),
        retry_after=said.get("retry_after"),
    )


# -- the spender's side --------------------------------------------------------------------


class _Reporter(logging.Handler):
    """Sends the spender's log lines, and then its outcome, to the caller's pipe."""

    def __init__(self, out: IO[str]) -> None:
        super().__init__()
        self.out = out
        self.lines: list[tuple[int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.levelno, redact(record.getMessage())))

    def say(self, message: dict[str, Any]) -> None:
        try:
            self.out.write(json.dumps(message) + "\n")
            self.out.flush()
        except (OSError, ValueError):
            pass  # the caller is gone: the outcome is in the store all the same


class _Marked:
    """A minter for a token the caller marked: presents it, no new mark."""

    def __init__(
        self,
        minter: RefreshTokenMinter,
        attempt_deadline: float,
        say: Callable[[dict[str, Any]], None],
    ) -> None:
        self.minter = minter
        self.attempt_deadline = attempt_deadline
        self.say = say

    def mint(self, held: Held) -> Minted:
        self.say({"presenting": True})
        return self.minter.present(held, self.attempt_deadline)


def spend(request: dict[str, Any], reporter: _Reporter) -> dict[str, Any]:
    """Present the marked refresh token and store the outcome; what to report."""
    settings = settings_from_json(request["settings"])
    parts = _build.broker_parts(settings)
    client, store = parts["client"], parts["store"]
    try:
        key = request["key"]
        entry = store.load(key)
        if entry is None or (entry.version, entry.spending) != (
            request["version"],
            request["owner"],
        ):
            return {"stale": True}  # the mark is gone: nothing presented
        mono = time.monotonic() - time.time()
        attempt_deadline = mono + request["attempt_deadline"]
        if attempt_deadline <= time.monotonic():  # too late: not presented, still good
            store.save(key, replace(entry, spending=None), entry.version)
            return {"late": True}
        grant = parts["grant"] if request["fallback"] else None
        scope = tuple(request["scope"])
        minter = RefreshTokenMinter(
            client,
            GrantMinter(client, grant) if grant is not None else None,
            scope=scope,
            owner=request["owner"],
            sink=parts["sink"],  # a rotated refresh token is written back from here
        )
        cache = SharedCache(
            store,
            key,
            policy=RefreshPolicy(),
            clock=client.clock,
            label=f"client {client.auth.client_id} at {client.identity()}",
        )
        renewal = Renewal(
            cache,
            _Marked(minter, attempt_deadline, reporter.say),
            wait_timeout=settings.retry_budget,
            requested_scope=scope,
            identity=client.identity(),
            scope_check="warn" if request["check"] == "warn" else "raise",
        )
        try:
            deadline = mono + request["deadline"]
            kept, sent = renewal.renew(entry, deadline, "spent in its own process")
        except OAuthError as exc:
            return {"error": _said(exc)}
        sent_at = None if sent is None else sent - mono
        return {**_outcome(kept, cache.counts["refreshes"] > 0), "sent": sent_at}
    finally:
        store.close()
        client.close()


def _said(exc: OAuthError) -> dict[str, Any]:
    return {
        "class": type(exc).__name__,
        "message": exc.message,
        "error": exc.error,
        "description": exc.description,
        "status": exc.status,
        "retryable": exc.retryable,
        "hint": exc.hint,
        "retry_after": exc.retry_after,
    }


def _outcome(kept: Entry, refreshed: bool) -> dict[str, Any]:
    token = kept.token
    if token is None:
        raise StoreError("the spender stored no token", hint="Try again.")
    return {
        "token": token_data(token),
        "refresh_token": kept.refresh_token,
        "refreshed": refreshed,
    }


def main() -> None:
    undumpable()  # before the secrets come: other processes of this user cannot read them
    if len(sys.argv) > 1:  # the socket to the caller (POSIX)
        fd = int(sys.argv[1])
        os.set_inheritable(fd, False)  # not for the sink's program
        out: IO[str] = open(fd, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
        source: IO[bytes] = open(fd, "rb", closefd=False)  # noqa: SIM115
    else:
        out, source = sys.stdout, sys.stdin.buffer
    reporter = _Reporter(out)
    reporter.say({"ready": True})  # the caller sends the request after this line
    try:
        request = json.loads(source.read())
        logger.addHandler(reporter)
        # Warnings only: the caller logs the rest of what happened itself.
        logger.setLevel(max(int(request.get("log_level", 0)), logging.WARNING))
        logger.propagate = False
        report = spend(request, reporter)
    except OAuthError as exc:
        report = {"error": _said(exc)}
    except Exception as exc:  # reported, not shown: the caller says what happened
        report = {
            "error": {"message": f"the refresh failed in its own process ({redact(repr(exc))})"}
        }
    reporter.say({**report, "log": reporter.lines})


if __name__ == "__main__":
    main()
