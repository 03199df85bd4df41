"""What a store keeps per cache key: the entry, its serialised and sealed (AES-256-GCM) forms,
and what this host saw of it (the ledger, kept outside the store).

A store that lost an entry (Redis restarted without persistence or flushed, an eviction, a
deleted SQLite file, junk written over it) looks like a fresh one from inside; one whose entry
was replaced by an older sealed copy looks current. Measured against the ledger (per cache key:
the highest generation seen, fingerprints of the refresh tokens seen replaced), a refresh token
this host saw replaced is never taken back as current, and a store that once held an entry and
now holds none says so. The generation is sealed in the entry: a writer without the store key
cannot raise an old copy's. The ledger is advisory: one that cannot be read or written knows
nothing, and everything works as it did without it.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from typing import Any

from freshtoken._errors import StoreError
from freshtoken._log import logger
from freshtoken._platform import PRIVATE_OPEN_FLAGS, check_private_dir, open_private
from freshtoken._record import record, record_fields, replace
from freshtoken._secret import keyed_hash
from freshtoken._token import Token


@record
class ServerFacts:
    """What was learned about the server of a cache key. Kept apart from the token: every
    rewrite of the entry (a mint, a seed, a spend) carries it over whole.

    `lifetime`: how long its tokens live (0: not known yet).
    `revokes_on_rotation`: whether rotating the refresh token revokes the previous access token
    (None: not known).
    `introspection_vouches`: True when its introspection said active for a live refresh token
    (its "inactive" then means spent), False when it said inactive for one (it cannot tell),
    None when not known yet; `vouched_by` names the client-authentication method that asked
    (a server may see only the tokens issued to the method asking).
    `client_refused`: when (wall time) the server last refused this client's authentication
    (0: not since its last token); a refresh token is then not presented before a check.
    """

    lifetime: float = 0.0
    revokes_on_rotation: bool | None = None
    introspection_vouches: bool | None = None
    vouched_by: str | None = None
    client_refused: float = 0.0


#: The phases of an entry. Idle: nobody is at work on it.
IDLE = "idle"
#: A holder about to rotate the refresh token closed the token to new promises.
CLOSING = "closing"
#: `phase_owner` presented the refresh token and has not stored the outcome; the server may
#: still be processing it until `phase_until` (wall time): it is not presented again before.
SPENDING = "spending"
#: The refresh token (rotated) is not yet written to the refresh-token sink; no access token
#: is held meanwhile, and the next mint writes it first.
WRITING_BACK = "writing_back"
PHASES = (IDLE, CLOSING, SPENDING, WRITING_BACK)


@record
class Entry:
    """The shared state of one cache key.

    `refresh_token` is kept apart from the access token (callers never see it).
    `phase` says what is under way (`PHASES`), `phase_owner` who does it, `phase_until` until
    when it may go on.
    `past`: fingerprints of the refresh tokens this entry held before (its chain's elders and
    any seed it replaced): a seed among them is older than `refresh_token` and is ignored.
    `promised` (wall time) is the latest instant a caller was promised `token` stays valid:
    for a server that revokes the previous access token on rotation, no rotation before it.
    `facts`: what was learned about the server (`ServerFacts`).
    `failure` is the error a detached spender met, for the caller whose mark it names (JSON).
    `generation` counts the writes of the entry, sealed with it (a store with a `Ledger` sets
    it); `version` is managed by the store (compare-and-set), outside the payload.
    """

    token: Token | None
    refresh_token: str | None = None
    phase: str = IDLE
    phase_owner: str | None = None
    phase_until: float = 0.0
    mints: int = 0
    last_mint: float = 0.0
    past: tuple[str, ...] = ()
    promised: float = 0.0
    facts: ServerFacts = ServerFacts()
    failure: str | None = None
    generation: int = 0
    version: int = 0

    def __repr__(self) -> str:
        return (
            f"Entry(token={self.token!r}, refresh_token="
            f"{'held' if self.refresh_token else 'none'}, phase={self.phase}, "
            f"owner={self.phase_owner!r}, mints={self.mints}, version={self.version})"
        )


def unmarked(entry: Entry) -> Entry:
    """`entry` once a spend settled without a new token: its token (if any) stays closed to
    new promises, as it was for the rotation; a holder of the store's lock opens it again."""
    phase = CLOSING if entry.token is not None else IDLE
    return replace(entry, phase=phase, phase_owner=None, phase_until=0.0)


def encode(entry: Entry) -> bytes:
    """`entry` as JSON, its keys named as its fields (the version is the store's)."""
    token = entry.token
    data: dict[str, Any] = {
        name: getattr(entry, name) for name in record_fields(Entry) if name != "version"
    }
    data["token"] = (
        None
        if token is None
        else {
            "access_token": token.access_token,
            "token_type": token.token_type,
            "expires_at": token.expires_at,
            "issued_at": token.issued_at,
            "scope": None if token.scope is None else list(token.scope),
        }
    )
    data["past"] = list(entry.past)
    data["facts"] = {name: getattr(entry.facts, name) for name in record_fields(ServerFacts)}
    return json.dumps(data, separators=(",", ":")).encode()


#: The short keys entries had before they were named as the fields (read, never written).
_SHORT = {"rt": "refresh_token", "sp": "phase_owner", "n": "mints", "lm": "last_mint"}
_SHORT |= {"su": "phase_until", "pr": "past"}
_SHORT_TOKEN = {"at": "access_token", "tt": "token_type", "exp": "expires_at", "iat": "issued_at"}
_SHORT_FACTS = {"lt": "lifetime", "rv": "revokes_on_rotation", "iv": "introspection_vouches"}


def _named(data: dict[str, Any]) -> dict[str, Any]:
    """An entry written with short keys, in the named form."""
    named = {long: data[short] for short, long in _SHORT.items() if short in data}
    t = data["t"]
    named["token"] = (
        None
        if t is None
        else {
            **{long: t[short] for short, long in _SHORT_TOKEN.items()},
            "scope": t["scope"],
        }
    )
    named["facts"] = {long: data[short] for short, long in _SHORT_FACTS.items() if short in data}
    # The phase was a combination: a spender's name, a write-back flag, a negative promise.
    promised = float(data.get("pm", 0.0))
    named["promised"] = abs(promised)
    named["phase"] = (
        SPENDING
        if data.get("sp") is not None
        else WRITING_BACK
        if data.get("wb")
        else CLOSING
        if promised < 0
        else IDLE
    )
    return named


def decode(payload: bytes, version: int) -> Entry:
    """Raises ValueError (or KeyError/TypeError) on anything that is not an encoded entry."""
    data = json.loads(payload)
    if "t" in data:
        data = _named(data)
    t, facts = data["token"], data.get("facts") or {}
    revokes, vouches = facts.get("revokes_on_rotation"), facts.get("introspection_vouches")
    phase = str(data.get("phase", IDLE))
    if phase not in PHASES:
        raise ValueError(f"an entry in an unknown phase: {phase!r}")
    return Entry(
        token=None
        if t is None
        else Token(
            access_token=str(t["access_token"]),
            token_type=str(t["token_type"]),
            expires_at=float(t["expires_at"]),
            issued_at=float(t["issued_at"]),
            scope=None if t["scope"] is None else tuple(t["scope"]),
        ),
        refresh_token=data["refresh_token"],
        phase=phase,
        phase_owner=None if data.get("phase_owner") is None else str(data["phase_owner"]),
        phase_until=float(data.get("phase_until", 0.0)),
        mints=int(data.get("mints", 0)),
        last_mint=float(data.get("last_mint", 0.0)),
        version=version,
        past=tuple(str(p) for p in data.get("past", ())),
        promised=float(data.get("promised", 0.0)),
        facts=ServerFacts(
            lifetime=float(facts.get("lifetime", 0.0)),
            revokes_on_rotation=None if revokes is None else bool(revokes),
            introspection_vouches=None if vouches is None else bool(vouches),
            vouched_by=None if facts.get("vouched_by") is None else str(facts["vouched_by"]),
            client_refused=float(facts.get("client_refused", 0.0)),
        ),
        failure=None if data.get("failure") is None else str(data["failure"]),
        generation=int(data.get("generation", 0)),
    )


#: How many fingerprints of earlier refresh tokens an entry keeps (the first is always kept:
#: it is the seed a job's later steps see again in their environment).
PAST_KEPT = 64


def fingerprint(refresh_token: str) -> str:
    """A short, one-way name of a refresh token, kept inside sealed entries and in the per-host
    ledger (a 0600 file, `Ledger`): 96 bits of a SHA-256 of a token of high entropy
    tell whether a token was seen before, never what it is."""
    # SHA-256 by cryptography's OpenSSL, which a store loads anyway (the ledger fingerprints the
    # refresh token of every hit): hashlib would load the system's too, 8 M instructions.
    from cryptography.hazmat.primitives import hashes

    digest = hashes.Hash(hashes.SHA256())
    digest.update(refresh_token.encode("utf-8", "surrogatepass"))
    return digest.finalize().hex()[:24]


def with_past(past: tuple[str, ...], old: str | None, new: str | None) -> tuple[str, ...]:
    """`past` once `old` is replaced by `new` (nothing changes when they are the same)."""
    if old is None or old == new:
        return past
    mark = fingerprint(old)
    if mark in past:
        return past
    grown = (*past, mark)
    return grown if len(grown) <= PAST_KEPT else (grown[0], *grown[-(PAST_KEPT - 1) :])


_VERSION = b"\x01"
_NONCE = 12


class Envelope:
    """Seals entries with AES-256-GCM; the cache key is bound in as associated data, so an
    entry copied under another key fails to open. With a `ledger`, an entry is sealed with its
    next generation and an opened one is checked against what this host saw."""

    #: What this host saw of the store's entries (None: nothing is kept).
    ledger: Ledger | None = None

    def __init__(self, key: bytes) -> None:
        # The binding's AESGCM is `ciphers.aead`'s, whose package import (every cipher and mode)
        # costs a store hit 52 M instructions; tests/test_startup.py checks they are one class.
        from cryptography.hazmat.bindings._rust import openssl

        if len(key) != 32:
            raise ValueError("an AES-256 key is 32 bytes")
        self._aead = openssl.aead.AESGCM(key)
        # Cache keys are hashed with a key derived from this one: they reveal nothing.
        self.pepper = keyed_hash(key, b"freshtoken cache-key v1")

    def __repr__(self) -> str:
        return "Envelope(key=***)"

    def seal(self, cache_key: str, payload: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        return _VERSION + nonce + self._aead.encrypt(nonce, payload, cache_key.encode())

    def open(self, cache_key: str, blob: bytes) -> bytes:
        """Raises ValueError when the blob was tampered with or sealed with another key."""
        if len(blob) < 1 + _NONCE + 16 or blob[:1] != _VERSION:
            raise ValueError("not a freshtoken envelope")
        try:
            return self._aead.decrypt(blob[1 : 1 + _NONCE], blob[1 + _NONCE :], cache_key.encode())
        except Exception as exc:
            from cryptography.exceptions import InvalidTag  # only when it fails: 30 M otherwise

            if not isinstance(exc, InvalidTag):
                raise
            raise ValueError("entry failed authentication (tampered, or another key)") from None

    def seal_entry(self, cache_key: str, entry: Entry) -> tuple[bytes, Callable[[], None]]:
        """`entry` sealed with its next generation (one past any the ledger saw), and what to
        call once it is stored (it notes the entry in the ledger, if any)."""
        if (ledger := self.ledger) is None:
            return self.seal(cache_key, encode(entry)), lambda: None
        seen = ledger.seen(cache_key).generation
        entry = replace(entry, generation=max(entry.generation, seen) + 1)
        return self.seal(cache_key, encode(entry)), lambda: ledger.note(cache_key, entry)

    def open_entry(self, cache_key: str, blob: bytes, version: int) -> Entry | None:
        """The entry sealed in `blob`, or None (with a warning) when it cannot be read, or is
        an older copy than the ledger saw holding a refresh token it saw replaced (rolled back:
        that token was spent). A store is a cache: an unreadable entry only means a new token."""
        try:
            entry = decode(self.open(cache_key, blob), version)
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning(
                "dropping a token-store entry that cannot be read (%s); a new token will be "
                "obtained",
                exc,
            )
            return None
        if (ledger := self.ledger) is None:
            return entry
        seen, refresh = ledger.seen(cache_key), entry.refresh_token
        older = entry.generation < seen.generation
        if older and refresh is not None and fingerprint(refresh) in seen.past:
            logger.warning(
                "dropping a token-store entry older than one this host saw (rolled back to an "
                "earlier copy): its refresh token was spent"
            )
            return None
        ledger.note(cache_key, entry)
        return entry


#: How many fingerprints of replaced refresh tokens are kept per cache key.
KEPT = 256
#: A cache key is hex: a file name as it is (anything else is no key of ours). Spelled out:
#: `string` compiles a regular expression at import (3 M instructions on every store hit).
_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_HEX = frozenset("0123456789abcdef")


def _safe(key: str) -> bool:
    return 0 < len(key) <= 128 and set(key) <= _SAFE


@record
class Seen:
    """What a host saw under one cache key: the highest generation, the fingerprint of the
    refresh token held at it, and those of the refresh tokens seen replaced. A record, not a
    NamedTuple: that compiles each (string) annotation, 10 M instructions on every store hit."""

    generation: int = 0
    current: str = ""
    past: tuple[str, ...] = ()


def _parse(data: object) -> Seen | None:
    """The ledger file's `data`, or None when it is not one this code wrote (damaged, or
    written by hand): a value out of range would fail later, in every command."""
    if not isinstance(data, dict):
        return None
    generation, current, past = data.get("generation"), data.get("current") or "", data.get("past")
    if type(generation) is not int or not 0 <= generation < 2**63:
        return None
    if not (current == "" or _mark(current)) or not isinstance(past, list):
        return None
    return Seen(generation, current, tuple(past)) if all(_mark(p) for p in past) else None


def _mark(value: object) -> bool:
    """A fingerprint: 24 lowercase hex digits."""
    return isinstance(value, str) and len(value) == 24 and set(value) <= _HEX


class Ledger:
    """The ledger of one store, a file per cache key in `directory` (created private)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = os.fspath(directory)  # os.path's calls: pathlib costs a hit 6 M
        self._read: dict[str, tuple[tuple[int, int, int], Seen]] = {}  # key -> (file, seen)
        self._warned = False

    def __repr__(self) -> str:
        return f"Ledger({self.directory!r})"

    def seen(self, key: str) -> Seen:
        """What this host saw under `key` (nothing when the ledger cannot be read)."""
        if not _safe(key):
            return Seen()
        path = os.path.join(self.directory, key)
        try:
            info = os.lstat(path)
            stamp = (info.st_ino, info.st_mtime_ns, info.st_size)
            if (cached := self._read.get(key)) and cached[0] == stamp:
                return cached[1]  # every write is a new file: the same one says the same
            check_private_dir(self.directory)
            with os.fdopen(open_private(path, os.O_RDONLY, "store ledger file"), "rb") as handle:
                seen = _parse(json.loads(handle.read(1 << 20)))
        except FileNotFoundError:
            return Seen()
        except (OSError, ValueError, RecursionError, StoreError) as exc:
            self._trouble(path, "read", exc)
            return Seen()
        if seen is None:
            self._trouble(path, "read", ValueError("not a freshtoken ledger"))
            return Seen()
        self._read[key] = (stamp, seen)
        return seen

    def _trouble(self, path: str, action: str, exc: BaseException) -> None:
        """Warn once per ledger: it is advisory, and a command still works without it."""
        if self._warned:
            return
        self._warned = True
        reason = exc.message if isinstance(exc, StoreError) else str(exc)[:200]
        logger.warning(
            "the store ledger %s cannot be %s (%s): rollbacks of the store are not detected "
            "from it. Delete it (rm -r %s) if it is damaged; it is written again",
            path,
            action,
            reason,
            self.directory,
        )

    def note(self, key: str, entry: Entry) -> None:
        """Remember what `entry` (just loaded or stored) shows: its generation, its refresh
        token (when it is the newest seen) and the ones it replaced."""
        seen = self.seen(key)
        newest = entry.generation >= seen.generation
        current = fingerprint(entry.refresh_token) if entry.refresh_token else ""
        grown = tuple(p for p in entry.past if p not in seen.past)
        now = Seen(
            max(seen.generation, entry.generation),
            current if newest else seen.current,
            (*seen.past, *grown)[-KEPT:],
        )
        if now == seen or not _safe(key):
            return
        data = {"generation": now.generation, "current": now.current, "past": now.past}
        tmp = os.path.join(self.directory, f".{key}.{os.urandom(4).hex()}")
        target = os.path.join(self.directory, key)
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            check_private_dir(self.directory)  # else another user could plant what it says
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | PRIVATE_OPEN_FLAGS, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump(data, handle)
            os.replace(tmp, target)
        except (OSError, StoreError) as exc:
            self._trouble(target, "written", exc)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def forget(self, key: str) -> None:
        """Forget `key`: its entry was removed on purpose (`freshtoken revoke`), not lost."""
        self._read.pop(key, None)
        if _safe(key):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(self.directory, key))
