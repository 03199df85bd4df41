"""What a store keeps per cache key, and its serialised form."""

from __future__ import annotations

import json
from typing import Any

from freshtoken._record import record, record_fields, replace
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

    def vouches(self, method: str | None = None) -> bool | None:
        """`introspection_vouches` as learned by the client-authentication `method` (None:
        any): what one method learned says nothing of another's answers."""
        return self.introspection_vouches if method in (None, self.vouched_by) else None


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
    `generation` counts the writes of the entry, sealed with it (a store with a ledger sets it:
    `stores/_ledger.py`); `version` is managed by the store (compare-and-set), outside the
    payload.
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
    ledger (a 0600 file, stores/_ledger.py): 96 bits of a SHA-256 of a token of high entropy
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
